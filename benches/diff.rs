//! The diff alone: pulled snapshot against the mirror's, for a first sync (empty mirror), a
//! resync with nothing changed, and one after 1% of the directory changed.
//!
//! `cargo bench --bench diff`

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orgsync::diff::diff;
use orgsync::model::Snapshot;

fn diff_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("diff");
    // At 100,000 members one diff takes a good fraction of a second.
    group.sample_size(10);
    let empty = Snapshot::default();
    for (members, departments) in support::SIZES {
        let pulled = support::pulled(members, departments, 0.01);
        group.throughput(Throughput::Elements(members as u64));
        group.bench_function(BenchmarkId::new("first_sync", members), |b| {
            b.iter(|| diff(&empty, &pulled.before))
        });
        group.bench_function(BenchmarkId::new("no_change", members), |b| {
            b.iter(|| diff(&pulled.before, &pulled.before))
        });
        group.bench_function(BenchmarkId::new("changed_1pct", members), |b| {
            b.iter(|| diff(&pulled.before, &pulled.after))
        });
    }
    group.finish();
}

criterion_group!(benches, diff_benches);
criterion_main!(benches);
