//! Lookup matching: how long orgsync takes to link host users by asking WeCom whose their
//! mobiles and emails are (`user/getuserid`, `user/get_userid_by_email`), for a corp whose app
//! receives no mobiles, and how many calls that costs.
//!
//! ```sh
//! cargo build --release --bin orgsync --example bench_lookups
//! target/release/examples/bench_lookups --host-users 10000 --latency-ms 0,30
//! ```
//!
//! For each latency it starts a fresh tenant (`orgsync simulator --members N
//! --withhold-sensitive`, so the mirror has no mobiles), syncs it, and imports host users that
//! the mirror alone cannot link (no names): most with the mobile of a member, some with only a
//! member's business email, the rest with mobiles nobody has. It then times `orgsync sync`,
//! which runs the lookups after its (empty) run and prints what they asked, and checks every
//! link with `orgsync match report --json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "support/sim.rs"]
mod sim;
#[path = "support/tenant.rs"]
mod tenant;

use std::fmt::Write as _;
use std::time::Instant;

use clap::Parser;
use serde_json::Value;
use sim::Sim;
use tenant::{run, Tenant};

#[derive(Parser)]
#[command(about = "lookup matching of unlinked host users: calls made and time taken")]
struct Args {
    /// Members of the generated company.
    #[arg(long, default_value_t = 20_000)]
    members: usize,
    /// Host users to look up.
    #[arg(long, default_value_t = 10_000)]
    host_users: usize,
    /// The fraction of host users with only a member's business email (no mobile).
    #[arg(long, default_value_t = 0.1)]
    email: f64,
    /// The fraction with a mobile no member has (each a failed lookup).
    #[arg(long, default_value_t = 0.05)]
    strangers: f64,
    /// Lookups in flight at once (`matching.lookup_concurrency`).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The simulator's `latency_ms` (added to every `/cgi-bin` answer); one run per value.
    #[arg(long, value_delimiter = ',', default_value = "0,30")]
    latency_ms: Vec<u64>,
}

fn main() {
    let args = Args::parse();
    assert!(
        args.host_users <= args.members,
        "--host-users must not exceed --members"
    );
    let strangers = (args.host_users as f64 * args.strangers) as usize;
    let by_email = (args.host_users as f64 * args.email) as usize;
    let by_mobile = args.host_users - strangers - by_email;
    println!(
        "{} members, mobiles withheld; {} host users: {by_mobile} by mobile, {by_email} by email, \
         {strangers} strangers; concurrency {}",
        args.members, args.host_users, args.concurrency
    );
    println!("latency_ms,calls,found,not_found,links_phone,links_email,seconds,lookups_per_s");
    for &latency in &args.latency_ms {
        // The budget covers every stranger: this measures the lookups, not the budget.
        let extra = format!(
            "[matching]\nlookup_failure_budget = {}\nlookup_concurrency = {}\n",
            strangers + 1,
            args.concurrency
        );
        let tenant = Tenant::synced_with(args.members, &["--withhold-sensitive"], &extra, &[]);
        let sim = Sim::new(&tenant.api_base);
        let directory = sim.directory();
        let users = directory["users"].as_array().unwrap();
        let mut csv = "id,mobile,email\n".to_owned();
        for (n, user) in users.iter().take(by_mobile).enumerate() {
            writeln!(csv, "m{n},{},", user["mobile"].as_str().unwrap()).unwrap();
        }
        for (n, user) in users.iter().skip(by_mobile).take(by_email).enumerate() {
            writeln!(csv, "e{n},,{}", user["biz_mail"].as_str().unwrap()).unwrap();
        }
        for n in 0..strangers {
            // The generator never hands out 174 numbers: nobody in the company has one.
            writeln!(csv, "s{n},174{n:08},").unwrap();
        }
        let file = tenant.path("host-users.csv");
        std::fs::write(&file, csv).unwrap();
        run(
            &tenant.config,
            &["host-users", "import", file.to_str().unwrap()],
        );
        sim.set_latency(latency);

        let started = Instant::now();
        let output = run(&tenant.config, &["sync"]);
        let seconds = started.elapsed().as_secs_f64();
        // "userid lookups: N asked, F found, M not found; ..."
        let line = output
            .lines()
            .find(|line| line.starts_with("userid lookups:"))
            .unwrap_or_else(|| panic!("no lookups in the sync's output:\n{output}"));
        let numbers: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let (calls, found, missed) = (numbers[0], numbers[1], numbers[2]);

        let report: Value =
            serde_json::from_str(&run(&tenant.config, &["match", "report", "--json"])).unwrap();
        let links = &report["links"];
        assert_eq!(links["phone"].as_u64(), Some(by_mobile as u64), "{line}");
        assert_eq!(links["email"].as_u64(), Some(by_email as u64), "{line}");
        assert_eq!(report["lookups"]["pending"], 0, "{line}");
        println!(
            "{latency},{calls},{found},{missed},{},{},{seconds:.2},{:.0}",
            links["phone"],
            links["email"],
            calls as f64 / seconds
        );
    }
}
