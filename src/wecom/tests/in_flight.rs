//! Passes of many calls settle under WeCom's concurrency cap (45033) instead of hitting it again
//! and again.

use std::collections::BTreeSet;

use orgsync_simulator::{Endpoint, Fault};

use super::sim::{client, flat_tenant, reach, requests};
use crate::targeted;
use crate::wecom::pull;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callback_runs_reread_lowers_its_concurrency_after_a_45033() {
    let sim = flat_tenant(60).await;
    let client = client(&sim.api_base());
    let mirror = pull(&client, 1, None, 4, |_| {}).await.unwrap().snapshot;
    let userids: BTreeSet<String> = mirror.members.values().map(|m| m.userid.clone()).collect();
    sim.inject(Fault::Errcode(45033).on(Endpoint::UserGet));

    let (reread, report) = targeted::reread(&client, mirror.clone(), &userids, reach(1), 4)
        .await
        .unwrap();

    assert_eq!((report.members_read, reread), (60, mirror));
    let in_flight: Vec<usize> = requests(&sim, Endpoint::UserGet)
        .iter()
        .map(|r| r.in_flight)
        .collect();
    assert_eq!(in_flight.len(), 61, "60 members and the one call repeated");
    // The first dozen requests span the change; after them at most 3 are in flight.
    assert!(in_flight[12..].iter().all(|&n| n <= 3), "{in_flight:?}");
}
