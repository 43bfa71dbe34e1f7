//! The service's counters, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Every counter on the command path is a plain atomic in a fixed array, indexed by enums known
//! at compile time: counting costs no lock and no allocation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::drop::command::{CommandType, RejectionClass};
use crate::drop::event::EventKind;
use crate::drop::rules::Refusal;

/// What became of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Refused(Refusal),
    Rejected(RejectionClass),
}

impl Outcome {
    const COUNT: usize = 1 + Refusal::ALL.len() + RejectionClass::ALL.len();

    fn index(self) -> usize {
        match self {
            Outcome::Applied => 0,
            Outcome::Refused(refusal) => 1 + refusal as usize,
            Outcome::Rejected(class) => 1 + Refusal::ALL.len() + class as usize,
        }
    }

    fn all() -> impl Iterator<Item = Outcome> {
        std::iter::once(Outcome::Applied)
            .chain(Refusal::ALL.into_iter().map(Outcome::Refused))
            .chain(RejectionClass::ALL.into_iter().map(Outcome::Rejected))
    }

    /// `(outcome, reason)` labels.
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Applied => ("applied", ""),
            Outcome::Refused(refusal) => ("refused", refusal.name()),
            Outcome::Rejected(class) => ("rejected", class.name()),
        }
    }
}

/// Why a drop expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryCause {
    /// It lay for `DROP_EXPIRE_MS`.
    Timeout,
    /// Its map was full and it was the oldest AVAILABLE drop.
    MapLimit,
    /// The service shut down.
    Shutdown,
}

impl ExpiryCause {
    const ALL: [ExpiryCause; 3] = [
        ExpiryCause::Timeout,
        ExpiryCause::MapLimit,
        ExpiryCause::Shutdown,
    ];

    fn name(self) -> &'static str {
        match self {
            ExpiryCause::Timeout => "timeout",
            ExpiryCause::MapLimit => "map_limit",
            ExpiryCause::Shutdown => "shutdown",
        }
    }
}

const EVENT_TYPES: [&str; 5] = [
    "CREATED",
    "EXPIRED",
    "PICKED_UP",
    "RESERVED",
    "RESERVATION_FAILURE",
];

fn event_index(kind: &EventKind) -> usize {
    match kind {
        EventKind::Created { .. } => 0,
        EventKind::Expired { .. } => 1,
        EventKind::PickedUp { .. } => 2,
        EventKind::Reserved { .. } => 3,
        EventKind::ReservationFailure { .. } => 4,
    }
}

/// A record we produce, as metrics and logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// An event, by its index in `EVENT_TYPES`.
    Event(usize),
    DeadLetter,
}

impl RecordKind {
    pub fn event(kind: &EventKind) -> RecordKind {
        RecordKind::Event(event_index(kind))
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Event(index) => EVENT_TYPES[index],
            RecordKind::DeadLetter => "dead_letter",
        }
    }
}

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Command types, plus one for commands whose type could not be read.
const COMMAND_SLOTS: usize = CommandType::ALL.len() + 1;

fn command_labels(slot: usize) -> &'static str {
    CommandType::ALL
        .get(slot)
        .map_or("unknown", |kind| kind.name())
}

#[derive(Default)]
pub struct Metrics {
    commands: [[AtomicU64; Outcome::COUNT]; COMMAND_SLOTS],
    events: [AtomicU64; EVENT_TYPES.len()],
    expiries: [AtomicU64; ExpiryCause::ALL.len()],
    dead_lettered: AtomicU64,
    /// Records the broker refuses for good (or that could not fit it), passed over.
    undeliverable: AtomicU64,
    /// Idempotent producers that broke for good and were replaced.
    producers_replaced: AtomicU64,
    /// Partitions whose log started again (offsets reused), their applied record reset.
    log_restarts: AtomicU64,
    /// Partitions that cannot commit (an event of theirs was not delivered), by name.
    stalled: Mutex<BTreeSet<String>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    /// Consumer lag by (topic, partition), from librdkafka's statistics: off the command path.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
}

/// Gauges read from the store at scrape time.
pub struct Gauges {
    pub live_drops: usize,
    pub reserved_drops: usize,
    /// Events in the shared store's outbox, not yet acknowledged by the broker.
    pub outbox_events: usize,
}

impl Metrics {
    pub fn command(&self, command_type: Option<CommandType>, outcome: Outcome) {
        let slot = command_type.map_or(CommandType::ALL.len(), |kind| kind as usize);
        self.commands[slot][outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn event(&self, kind: &EventKind) {
        self.events[event_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn expired(&self, cause: ExpiryCause, count: usize) {
        self.expiries[cause as usize].fetch_add(count as u64, Ordering::Relaxed);
    }

    /// A record the broker acknowledged.
    pub fn published(&self, kind: RecordKind) {
        match kind {
            RecordKind::Event(index) => self.events[index].fetch_add(1, Ordering::Relaxed),
            RecordKind::DeadLetter => self.dead_lettered.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn undeliverable(&self) {
        self.undeliverable.fetch_add(1, Ordering::Relaxed);
    }

    pub fn producer_replaced(&self) {
        self.producers_replaced.fetch_add(1, Ordering::Relaxed);
    }

    pub fn log_restarted(&self) {
        self.log_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a partition as unable to commit (`true`) or committing again (`false`).
    pub fn stalled(&self, partition: &str, stalled: bool) {
        let mut set = self
            .stalled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if stalled {
            set.insert(partition.to_owned());
        } else {
            set.remove(partition);
        }
    }

    /// The partitions that cannot commit now.
    pub fn stalled_partitions(&self) -> Vec<String> {
        let set = self
            .stalled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        set.iter().cloned().collect()
    }

    /// From a command's arrival to the broker's acknowledgement of its last event.
    pub fn command_latency(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        let mut lags = self
            .lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lags.insert((topic.to_owned(), partition), lag);
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut text = String::with_capacity(4096);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);

        header(
            &mut text,
            "atlas_drops_commands_total",
            "counter",
            "Commands by type and outcome.",
        );
        for (slot, outcomes) in self.commands.iter().enumerate() {
            for outcome in Outcome::all() {
                let count = load(&outcomes[outcome.index()]);
                if count > 0 || outcome == Outcome::Applied && slot < CommandType::ALL.len() {
                    let (result, reason) = outcome.labels();
                    let _ = writeln!(
                        text,
                        "atlas_drops_commands_total{{type=\"{}\",outcome=\"{result}\",reason=\"{reason}\"}} {count}",
                        command_labels(slot)
                    );
                }
            }
        }
        header(
            &mut text,
            "atlas_drops_events_total",
            "counter",
            "Events published, by type.",
        );
        for (name, counter) in EVENT_TYPES.iter().zip(&self.events) {
            let _ = writeln!(
                text,
                "atlas_drops_events_total{{type=\"{name}\"}} {}",
                load(counter)
            );
        }
        header(
            &mut text,
            "atlas_drops_expiries_total",
            "counter",
            "Drops expired, by cause.",
        );
        for cause in ExpiryCause::ALL {
            let count = load(&self.expiries[cause as usize]);
            let _ = writeln!(
                text,
                "atlas_drops_expiries_total{{cause=\"{}\"}} {count}",
                cause.name()
            );
        }
        header(
            &mut text,
            "atlas_drops_live_drops",
            "gauge",
            "Drops lying on all maps.",
        );
        let _ = writeln!(text, "atlas_drops_live_drops {}", gauges.live_drops);
        header(
            &mut text,
            "atlas_drops_reserved_drops",
            "gauge",
            "Drops currently reserved.",
        );
        let _ = writeln!(text, "atlas_drops_reserved_drops {}", gauges.reserved_drops);
        header(
            &mut text,
            "atlas_drops_outbox_events",
            "gauge",
            "Events in the shared store's outbox, not yet acknowledged by the broker (0 in memory).",
        );
        let _ = writeln!(text, "atlas_drops_outbox_events {}", gauges.outbox_events);
        header(
            &mut text,
            "atlas_drops_dead_lettered_total",
            "counter",
            "Rejected commands copied to the dead-letter topic.",
        );
        let _ = writeln!(
            text,
            "atlas_drops_dead_lettered_total {}",
            load(&self.dead_lettered)
        );

        for (name, help, counter) in [
            (
                "atlas_drops_undeliverable_total",
                "Records (events, dead letters) the broker refuses for good, or too large for it: logged and passed.",
                &self.undeliverable,
            ),
            (
                "atlas_drops_producer_replacements_total",
                "Producers that broke for good (librdkafka's fatal error) and were replaced by a fresh one.",
                &self.producers_replaced,
            ),
            (
                "atlas_drops_log_restarts_total",
                "Times a command partition's log was found to have started again: its applied record was reset.",
                &self.log_restarts,
            ),
        ] {
            header(&mut text, name, "counter", help);
            let _ = writeln!(text, "{name} {}", load(counter));
        }
        header(
            &mut text,
            "atlas_drops_stalled_partitions",
            "gauge",
            "Command partitions that cannot commit: an event they caused was not delivered (1 each).",
        );
        let stalled = self.stalled_partitions();
        let _ = writeln!(text, "atlas_drops_stalled_partitions {}", stalled.len());
        for partition in stalled {
            let _ = writeln!(
                text,
                "atlas_drops_stalled_partition{{partition=\"{partition}\"}} 1"
            );
        }

        let name = "atlas_drops_command_latency_seconds";
        header(
            &mut text,
            name,
            "histogram",
            "From a command's arrival to the acknowledgement of its events.",
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.latency_count);
        let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = load(&self.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(text, "{name}_sum {sum}\n{name}_count {count}");

        header(
            &mut text,
            "atlas_drops_consumer_lag",
            "gauge",
            "Messages behind the end of each command partition.",
        );
        let lags = self
            .lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for ((topic, partition), lag) in lags.iter() {
            let _ = writeln!(
                text,
                "atlas_drops_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
        text
    }
}

fn header(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_their_labels() {
        let metrics = Metrics::default();
        metrics.command(Some(CommandType::RequestReservation), Outcome::Applied);
        metrics.command(
            Some(CommandType::RequestReservation),
            Outcome::Refused(Refusal::OutOfRange),
        );
        metrics.command(None, Outcome::Rejected(RejectionClass::Malformed));
        metrics.event(&EventKind::Expired { equipment_id: 0 });
        metrics.expired(ExpiryCause::MapLimit, 2);
        metrics.command_latency(Duration::from_millis(3));
        metrics.consumer_lag("commands", 1, 7);
        let text = metrics.render(&Gauges {
            live_drops: 5,
            reserved_drops: 1,
            outbox_events: 3,
        });
        for line in [
            "atlas_drops_commands_total{type=\"REQUEST_RESERVATION\",outcome=\"applied\",reason=\"\"} 1",
            "atlas_drops_commands_total{type=\"REQUEST_RESERVATION\",outcome=\"refused\",reason=\"out_of_range\"} 1",
            "atlas_drops_commands_total{type=\"SPAWN\",outcome=\"applied\",reason=\"\"} 0",
            "atlas_drops_commands_total{type=\"unknown\",outcome=\"rejected\",reason=\"malformed\"} 1",
            "atlas_drops_events_total{type=\"EXPIRED\"} 1",
            "atlas_drops_expiries_total{cause=\"map_limit\"} 2",
            "atlas_drops_live_drops 5",
            "atlas_drops_reserved_drops 1",
            "atlas_drops_outbox_events 3",
            "atlas_drops_command_latency_seconds_bucket{le=\"0.002\"} 0",
            "atlas_drops_command_latency_seconds_bucket{le=\"0.005\"} 1",
            "atlas_drops_command_latency_seconds_count 1",
            "atlas_drops_consumer_lag{topic=\"commands\",partition=\"1\"} 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
