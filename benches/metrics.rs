//! The cost of a `/metrics` scrape's text (the store's counts aside) and of counting on the
//! command path.
//!
//! `cargo bench --bench metrics`

use std::sync::Arc;
use std::time::Duration;

use atlas_drops::drop::command::{CommandType, RejectionClass};
use atlas_drops::drop::event::EventKind;
use atlas_drops::drop::rules::Refusal;
use atlas_drops::metrics::{ExpiryCause, Exposition, Gauges, Metrics, Outcome};
use criterion::{criterion_group, criterion_main, Criterion};

/// Metrics as a running service has them: every command type counted, refusals and rejections,
/// latencies, four partitions' lag.
fn busy() -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    for kind in CommandType::ALL {
        metrics.command(Some(kind), Outcome::Applied);
        metrics.command(Some(kind), Outcome::Refused(Refusal::OutOfRange));
    }
    metrics.command(None, Outcome::Rejected(RejectionClass::Malformed));
    metrics.event(&EventKind::Expired { equipment_id: 0 });
    metrics.expired(ExpiryCause::Timeout, 3);
    for millis in [1, 3, 8, 15, 40, 90, 300] {
        metrics.command_latency(Duration::from_millis(millis));
    }
    for partition in 0..4 {
        metrics.consumer_lag("COMMAND_TOPIC_DROP", partition, 12);
    }
    metrics
}

const GAUGES: Gauges = Gauges {
    live_drops: 10_000,
    reserved_drops: 120,
    outbox_events: 0,
};

fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    let metrics = busy();
    group.bench_function("render_prometheus_text", |b| {
        b.iter(|| metrics.render(&GAUGES, Exposition::Prometheus))
    });
    group.bench_function("render_openmetrics_text", |b| {
        b.iter(|| metrics.render(&GAUGES, Exposition::OpenMetrics))
    });
    group.bench_function("count_a_command", |b| {
        b.iter(|| metrics.command(Some(CommandType::Spawn), Outcome::Applied))
    });
    group.bench_function("observe_a_latency", |b| {
        b.iter(|| metrics.command_latency(Duration::from_millis(15)))
    });
    group.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
