//! The diff alone: pulled snapshot against the mirror's, for a first sync (empty mirror), a
//! resync with nothing changed, and one after 1% of the directory changed.
//!
//! `cargo bench --bench diff`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

mod support;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
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
        // The diff consumes the pull; each iteration gets its own copy, made outside the timing.
        let cases = [
            ("first_sync", &empty, &pulled.before),
            ("no_change", &pulled.before, &pulled.before),
            ("changed_1pct", &pulled.before, &pulled.after),
        ];
        for (name, mirror, pull) in cases {
            group.bench_function(BenchmarkId::new(name, members), |b| {
                b.iter_batched(
                    || pull.clone(),
                    |pull| diff(mirror, pull),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, diff_benches);
criterion_main!(benches);
