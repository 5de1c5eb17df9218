//! A host application's own account list, derived from a simulated directory the way a real
//! one differs from WeCom, for the tests and the benchmarks of matching and of whole syncs.
//! Test support, shared by path with `benches/` and `examples/`.

use orgsync::model::host_user::HostUser;
use orgsync_simulator::Directory;

/// One host account per member, in the member's order, varied by position in 20ths:
/// mobiles in every format (55%), names only (10%), a mobile shared with a relative (5%),
/// an outdated mobile that contradicts the name (5%), people not in WeCom at all (5%),
/// accounts with neither name nor mobile (5%) and names padded with odd whitespace (5%).
/// Account ids are `1000000` upwards, so they never look like userids.
pub fn host_users(directory: &Directory) -> Vec<HostUser> {
    directory
        .users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let (name, mobile) = (&user.name, &user.mobile);
            let spaced = |sep: &str| {
                let (head, rest) = mobile.split_at(mobile.len().min(3));
                let (mid, tail) = rest.split_at(rest.len().min(4));
                format!("{head}{sep}{mid}{sep}{tail}")
            };
            let (name, mobile) = match i % 20 {
                0..=5 => (Some(name.clone()), Some(format!("+86 {}", spaced("-")))),
                6..=7 => (Some(name.clone()), Some(format!("(+86) {}", spaced(" ")))),
                8..=9 => (Some(name.clone()), Some(format!("0086{mobile}"))),
                10..=12 => (Some(name.clone()), Some(mobile.clone())),
                13..=14 => (Some(name.clone()), None),
                15 => (
                    Some(format!("{name}（家属）")),
                    Some(directory.users[i - 1].mobile.clone()),
                ),
                16 => (Some(name.clone()), Some(format!("199{i:08}"))),
                17 => (
                    Some(format!("外部{i}")),
                    Some(format!("+1 415 555 {:04}", i % 10_000)),
                ),
                18 => (None, None),
                _ => (Some(format!(" {name}\u{3000}")), Some(spaced(" "))),
            };
            HostUser {
                id: (1_000_000 + i).to_string(),
                name,
                mobile,
                email: None,
            }
        })
        .collect()
}
