//! Event encoding: drafting the events of a changeset (`changeset_events`) and encoding each as
//! its CloudEvents line (`EventSource::encode`), for a first sync (every member joins) and for a
//! resync after 1% of the directory changed.
//!
//! `cargo bench --bench events`

mod support;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orgsync::diff::{diff, Changeset};
use orgsync::events::{changeset_events, EventSource};
use orgsync::model::Snapshot;

fn event_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("events");
    group.sample_size(10);
    let source = EventSource::new("ww0123456789abcdef");
    let time = Utc::now();
    for (members, departments) in support::SIZES {
        let pulled = support::pulled(members, departments, 0.01);
        let changesets: [(&str, Changeset); 2] = [
            ("first_sync", diff(&Snapshot::default(), &pulled.before)),
            ("changed_1pct", diff(&pulled.before, &pulled.after)),
        ];
        for (name, changes) in &changesets {
            let drafts = changeset_events(changes);
            group.throughput(Throughput::Elements(drafts.len() as u64));
            group.bench_function(BenchmarkId::new(format!("draft/{name}"), members), |b| {
                b.iter(|| changeset_events(changes))
            });
            group.bench_function(BenchmarkId::new(format!("encode/{name}"), members), |b| {
                b.iter(|| {
                    drafts
                        .iter()
                        .zip(1..)
                        .map(|(draft, seq)| source.encode(draft, seq, Some("7"), time).len())
                        .sum::<usize>()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, event_benches);
criterion_main!(benches);
