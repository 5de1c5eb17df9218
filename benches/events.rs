//! Event encoding as a sync does it: drafting each event of a changeset (`changeset_drafts`)
//! and encoding it as its CloudEvents line (`EventSource::encode`), for a first sync (every
//! member joins) and for a resync after 1% of the directory changed.
//!
//! `cargo bench --bench events`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

mod support;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orgsync::diff::{diff, Changeset};
use orgsync::events::{changeset_drafts, EventSource};
use orgsync::model::Snapshot;

fn event_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("events");
    group.sample_size(10);
    let source = EventSource::new("ww0123456789abcdef");
    let time = Utc::now();
    for (members, departments) in support::SIZES {
        let pulled = support::pulled(members, departments, 0.01);
        let changesets: [(&str, Changeset); 2] = [
            (
                "first_sync",
                diff(&Snapshot::default(), pulled.before.clone()),
            ),
            ("changed_1pct", diff(&pulled.before, pulled.after.clone())),
        ];
        for (name, changes) in &changesets {
            group.throughput(Throughput::Elements(
                changeset_drafts(changes).count() as u64
            ));
            group.bench_function(BenchmarkId::new(format!("encode/{name}"), members), |b| {
                b.iter(|| {
                    changeset_drafts(changes)
                        .zip(1..)
                        .map(|(draft, seq)| source.encode(&draft, seq, Some("7"), time).len())
                        .sum::<usize>()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, event_benches);
criterion_main!(benches);
