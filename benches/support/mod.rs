//! Inputs for the micro-benchmarks: snapshots of generated directories, pulled through the real
//! client from the in-repo simulator so that they hold exactly what a sync would diff.

use orgsync::model::Snapshot;
use orgsync::wecom::{self, ClientSettings, Secret, WecomClient};
use orgsync_simulator::{Directory, Simulator};

/// A directory pulled twice: as generated, and after `fraction` of it changed.
pub struct Pulled {
    pub before: Snapshot,
    pub after: Snapshot,
}

/// The benchmark sizes: members, and one department per 20 of them, as in the end-to-end bench.
pub const SIZES: [(usize, usize); 2] = [(10_000, 500), (100_000, 5_000)];

pub fn pulled(members: usize, departments: usize, fraction: f64) -> Pulled {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let simulator = Simulator::start(Directory::generate(2024, departments, members))
            .await
            .expect("the simulator starts");
        let before = pull(&simulator).await;
        simulator.edit(|directory| directory.mutate(2025, fraction));
        let after = pull(&simulator).await;
        Pulled { before, after }
    })
}

async fn pull(simulator: &Simulator) -> Snapshot {
    let directory = simulator.directory();
    let client = WecomClient::new(ClientSettings::new(
        simulator.api_base(),
        directory.corp_id,
        Secret::new(&directory.corp_secret),
    ))
    .expect("a client");
    wecom::pull(&client, 1, None, 4, |_| {})
        .await
        .expect("the pull succeeds")
        .snapshot
}
