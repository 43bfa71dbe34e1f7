//! The service's metrics, rendered at `GET /metrics` by the Prometheus client library
//! (`prometheus-client`): the Prometheus text format, or OpenMetrics text when the scraper asks
//! for it.
//!
//! Every counter on the command path is the library's `Counter` (an atomic) in a fixed array,
//! indexed by enums known at compile time: counting costs no lock and no allocation. The latency
//! histograms are fixed arrays of atomics too (the library's `Histogram` takes a lock for each
//! observation), handed to the library's encoder at scrape time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::drop::command::{CommandType, RejectionClass};
use crate::drop::event::EventKind;
use crate::drop::rules::Refusal;

/// What became of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Refused(Refusal),
    Rejected(RejectionClass),
    /// Not for this instance: its `ENVIRONMENT` is another than `ATLAS_ENVIRONMENT`
    /// (contract-head §6).
    OtherEnvironment,
}

impl Outcome {
    const COUNT: usize = 2 + Refusal::ALL.len() + RejectionClass::ALL.len();

    fn index(self) -> usize {
        match self {
            Outcome::Applied => 0,
            Outcome::Refused(refusal) => 1 + refusal as usize,
            Outcome::Rejected(class) => 1 + Refusal::ALL.len() + class as usize,
            Outcome::OtherEnvironment => 1 + Refusal::ALL.len() + RejectionClass::ALL.len(),
        }
    }

    fn all() -> impl Iterator<Item = Outcome> {
        std::iter::once(Outcome::Applied)
            .chain(Refusal::ALL.into_iter().map(Outcome::Refused))
            .chain(RejectionClass::ALL.into_iter().map(Outcome::Rejected))
            .chain(std::iter::once(Outcome::OtherEnvironment))
    }

    /// `(outcome, reason)` labels.
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Applied => ("applied", ""),
            Outcome::Refused(refusal) => ("refused", refusal.name()),
            Outcome::Rejected(class) => ("rejected", class.name()),
            Outcome::OtherEnvironment => ("skipped", "other_environment"),
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

/// What asking the party service for a meso drop's picker found (contract-head §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartyLookup {
    /// The picker is in a party (whether or not anyone of it stands by the drop).
    Party,
    /// The picker is in no party.
    NoParty,
    /// No usable answer (an error, a document we cannot read, none in time): the picker alone.
    Failed,
}

impl PartyLookup {
    const ALL: [PartyLookup; 3] = [
        PartyLookup::Party,
        PartyLookup::NoParty,
        PartyLookup::Failed,
    ];

    fn name(self) -> &'static str {
        match self {
            PartyLookup::Party => "party",
            PartyLookup::NoParty => "no_party",
            PartyLookup::Failed => "failed",
        }
    }
}

/// What became of asking the data service where a character's drop lands (contract-head §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// Moved onto the floor below.
    Landed,
    /// No floor below (the service's 404), or none under the drop's `x` (a wall, or a foothold
    /// beside it): the drop stays where it was dropped.
    NoFloor,
    /// An error, a bad answer or no answer in time: the drop stays where it was dropped.
    Failed,
}

impl Landing {
    const ALL: [Landing; 3] = [Landing::Landed, Landing::NoFloor, Landing::Failed];

    fn name(self) -> &'static str {
        match self {
            Landing::Landed => "landed",
            Landing::NoFloor => "no_floor",
            Landing::Failed => "failed",
        }
    }
}

const EVENT_TYPES: [&str; 7] = [
    "CREATED",
    "EXPIRED",
    "PICKED_UP",
    "RESERVED",
    "RESERVATION_FAILURE",
    "CONSUMED",
    "MESO_AWARDED",
];

fn event_index(kind: &EventKind) -> usize {
    match kind {
        EventKind::Created { .. } => 0,
        EventKind::Expired { .. } => 1,
        EventKind::PickedUp { .. } => 2,
        EventKind::Reserved { .. } => 3,
        EventKind::ReservationFailure { .. } => 4,
        EventKind::Consumed { .. } => 5,
        EventKind::MesoAwarded { .. } => 6,
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

/// The latency histogram: each observation counted in its own bucket only (the encoder sums
/// them up), and in the count and the sum.
#[derive(Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        (self.sum_micros).fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    fn encode(&self, encoder: &mut DescriptorEncoder, name: &str, help: &str) -> std::fmt::Result {
        // Buckets first, then the count: an observation made meanwhile may raise the count
        // above the buckets' sum (it goes to +Inf), never below.
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut buckets = [(f64::INFINITY, 0); LATENCY_BUCKETS.len() + 1];
        for ((bucket, bound), counter) in buckets.iter_mut().zip(LATENCY_BUCKETS).zip(&self.buckets)
        {
            *bucket = (bound, load(counter));
        }
        let count = load(&self.count);
        let finite: u64 = buckets.iter().map(|(_, count)| count).sum();
        buckets[LATENCY_BUCKETS.len()].1 = count.saturating_sub(finite);
        let sum = load(&self.sum_micros) as f64 / 1e6;
        encoder
            .encode_descriptor(name, help, None, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(sum, count.max(finite), &buckets, None)
    }
}

#[derive(Default)]
pub struct Metrics {
    commands: [[Counter; Outcome::COUNT]; COMMAND_SLOTS],
    events: [Counter; EVENT_TYPES.len()],
    expiries: [Counter; ExpiryCause::ALL.len()],
    party_lookups: [Counter; PartyLookup::ALL.len()],
    landings: [Counter; Landing::ALL.len()],
    dead_lettered: Counter,
    /// Records the broker refuses for good (or that could not fit it), passed over.
    undeliverable: Counter,
    /// Idempotent producers that broke for good and were replaced.
    producers_replaced: Counter,
    /// Partitions whose log started again (offsets reused), their applied record reset.
    log_restarts: Counter,
    /// Outbox streams taken over whose event topic was not read through in time.
    outbox_takeovers_unread: Counter,
    /// Partitions that cannot commit (an event of theirs was not delivered), by name.
    stalled: Mutex<BTreeSet<String>>,
    latency: Latency,
    /// From an event's entry in the shared store's outbox to the relay's hand-over.
    outbox_wait: Latency,
    /// Consumer lag by (topic, partition), from librdkafka's statistics: off the command path.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
}

/// Gauges read from the store at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub live_drops: usize,
    pub reserved_drops: usize,
    /// Events in the shared store's outbox, not yet acknowledged by the broker.
    pub outbox_events: usize,
}

/// The text formats `/metrics` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// The Prometheus text format, version 0.0.4: the default.
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper that asks for it (`Accept: application/openmetrics-text`).
    OpenMetrics,
}

impl Exposition {
    /// The format a request's `Accept` header asks for.
    pub fn negotiate(accept: Option<&str>) -> Exposition {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => {
                Exposition::OpenMetrics
            }
            _ => Exposition::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

impl Metrics {
    pub fn command(&self, command_type: Option<CommandType>, outcome: Outcome) {
        let slot = command_type.map_or(CommandType::ALL.len(), |kind| kind as usize);
        self.commands[slot][outcome.index()].inc();
    }

    pub fn event(&self, kind: &EventKind) {
        self.events[event_index(kind)].inc();
    }

    pub fn expired(&self, cause: ExpiryCause, count: usize) {
        self.expiries[cause as usize].inc_by(count as u64);
    }

    /// One lookup of a meso drop picker's party, by what it found.
    pub fn party_lookup(&self, outcome: PartyLookup) {
        self.party_lookups[outcome as usize].inc();
    }

    /// One landing asked of the data service, by what became of it.
    pub fn landing(&self, outcome: Landing) {
        self.landings[outcome as usize].inc();
    }

    /// A record the broker acknowledged.
    pub fn published(&self, kind: RecordKind) {
        match kind {
            RecordKind::Event(index) => self.events[index].inc(),
            RecordKind::DeadLetter => self.dead_lettered.inc(),
        };
    }

    pub fn undeliverable(&self) {
        self.undeliverable.inc();
    }

    pub fn producer_replaced(&self) {
        self.producers_replaced.inc();
    }

    pub fn log_restarted(&self) {
        self.log_restarts.inc();
    }

    pub fn outbox_takeover_unread(&self) {
        self.outbox_takeovers_unread.inc();
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

    /// From a command's arrival to the broker's acknowledgement of its last event (on the
    /// shared store, to the commit that put its events into the outbox).
    pub fn command_latency(&self, latency: Duration) {
        self.latency.observe(latency);
    }

    /// From an event's entry in the outbox (its id's time) to the relay handing it to the
    /// producer: the way from the shared store to the broker, which `command_latency` does
    /// not see on that store (its commands end at their commit).
    pub fn outbox_wait(&self, wait: Duration) {
        self.outbox_wait.observe(wait);
    }

    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        let mut lags = self
            .lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lags.insert((topic.to_owned(), partition), lag);
    }

    /// The metrics and the store's gauges, as the Prometheus client library writes them.
    pub fn render(self: &Arc<Self>, gauges: &Gauges, format: Exposition) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape {
            metrics: self.clone(),
            gauges: *gauges,
        }));
        let mut text = String::with_capacity(8192);
        let written = match format {
            Exposition::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            }
            Exposition::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &registry)
            }
        };
        written.expect("writing to a String cannot fail");
        text
    }

    /// Every family, in the order `/metrics` shows them. A counter's name is given without
    /// `_total`: the library adds it to the samples (and, in the Prometheus format, to the name
    /// in `# HELP` and `# TYPE`).
    fn encode(&self, gauges: &Gauges, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "atlas_drops_commands",
            "Commands by type and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (slot, outcomes) in self.commands.iter().enumerate() {
            for outcome in Outcome::all() {
                let counter = &outcomes[outcome.index()];
                if counter.get() > 0 || outcome == Outcome::Applied && slot < CommandType::ALL.len()
                {
                    let (result, reason) = outcome.labels();
                    let labels = [
                        ("type", command_labels(slot)),
                        ("outcome", result),
                        ("reason", reason),
                    ];
                    counter.encode(family.encode_family(&labels)?)?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "atlas_drops_events",
            "Events published, by type.",
            None,
            MetricType::Counter,
        )?;
        for (name, counter) in EVENT_TYPES.iter().zip(&self.events) {
            counter.encode(family.encode_family(&[("type", *name)])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "atlas_drops_expiries",
            "Drops expired, by cause.",
            None,
            MetricType::Counter,
        )?;
        for cause in ExpiryCause::ALL {
            let counter = &self.expiries[cause as usize];
            counter.encode(family.encode_family(&[("cause", cause.name())])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "atlas_drops_party_lookups",
            "Party service lookups for the meso split, by outcome (failed: the picker took it alone).",
            None,
            MetricType::Counter,
        )?;
        for outcome in PartyLookup::ALL {
            let counter = &self.party_lookups[outcome as usize];
            counter.encode(family.encode_family(&[("outcome", outcome.name())])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "atlas_drops_landings",
            "Character drops the data service was asked to land on the floor below, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for outcome in Landing::ALL {
            let counter = &self.landings[outcome as usize];
            counter.encode(family.encode_family(&[("outcome", outcome.name())])?)?;
        }

        for (name, help, value) in [
            (
                "atlas_drops_live_drops",
                "Drops lying on all maps.",
                gauges.live_drops,
            ),
            (
                "atlas_drops_reserved_drops",
                "Drops currently reserved.",
                gauges.reserved_drops,
            ),
            (
                "atlas_drops_outbox_events",
                "Events in the shared store's outbox, not yet acknowledged by the broker (0 in memory).",
                gauges.outbox_events,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }

        for (name, help, counter) in [
            (
                "atlas_drops_dead_lettered",
                "Rejected commands copied to the dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "atlas_drops_undeliverable",
                "Records (events, dead letters) the broker refuses for good, or too large for it: logged and passed.",
                &self.undeliverable,
            ),
            (
                "atlas_drops_producer_replacements",
                "Producers that broke for good (librdkafka's fatal error) and were replaced by a fresh one.",
                &self.producers_replaced,
            ),
            (
                "atlas_drops_log_restarts",
                "Times a command partition's log was found to have started again: its applied record was reset.",
                &self.log_restarts,
            ),
            (
                "atlas_drops_outbox_takeovers_unread",
                "Outbox streams taken over from a dead relay whose event topic was not read through in time: the events not found there were sent again, perhaps a second time.",
                &self.outbox_takeovers_unread,
            ),
        ] {
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }

        let stalled = self.stalled_partitions();
        encoder
            .encode_descriptor(
                "atlas_drops_stalled_partitions",
                "Command partitions that cannot commit: an event they caused was not delivered (1 each).",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&stalled.len())?;
        let mut family = encoder.encode_descriptor(
            "atlas_drops_stalled_partition",
            "A command partition that cannot commit (1), by name.",
            None,
            MetricType::Gauge,
        )?;
        for partition in &stalled {
            family
                .encode_family(&[("partition", partition.as_str())])?
                .encode_gauge(&1u32)?;
        }

        self.latency.encode(
            &mut encoder,
            "atlas_drops_command_latency_seconds",
            "From a command's arrival to the acknowledgement of its events (on the shared store: to their commit into its outbox).",
        )?;
        self.outbox_wait.encode(
            &mut encoder,
            "atlas_drops_outbox_wait_seconds",
            "From an event's entry in the shared store's outbox (its time by Redis's clock) to the relay handing it to the producer.",
        )?;

        let mut family = encoder.encode_descriptor(
            "atlas_drops_consumer_lag",
            "Messages behind the end of each command partition.",
            None,
            MetricType::Gauge,
        )?;
        let lags = self
            .lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for ((topic, partition), lag) in lags.iter() {
            family
                .encode_family(&([("topic", topic.as_str())], [("partition", *partition)]))?
                .encode_gauge(lag)?;
        }
        Ok(())
    }
}

/// One scrape: the metrics with the gauges read for it, as a collector of the library's.
struct Scrape {
    metrics: Arc<Metrics>,
    gauges: Gauges,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape")
            .field("gauges", &self.gauges)
            .finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        self.metrics.encode(&self.gauges, encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted() -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::default());
        metrics.command(Some(CommandType::RequestReservation), Outcome::Applied);
        metrics.command(
            Some(CommandType::RequestReservation),
            Outcome::Refused(Refusal::OutOfRange),
        );
        metrics.command(None, Outcome::Rejected(RejectionClass::Malformed));
        metrics.event(&EventKind::Expired { equipment_id: 0 });
        metrics.expired(ExpiryCause::MapLimit, 2);
        metrics.landing(Landing::Failed);
        metrics.command_latency(Duration::from_millis(3));
        metrics.command_latency(Duration::from_secs(11));
        metrics.outbox_wait(Duration::from_millis(1));
        metrics.consumer_lag("commands", 1, 7);
        metrics.stalled("commands-2", true);
        metrics.outbox_takeover_unread();
        metrics
    }

    const GAUGES: Gauges = Gauges {
        live_drops: 5,
        reserved_drops: 1,
        outbox_events: 3,
    };

    /// The samples both formats share, as they were before the client library wrote them.
    const SAMPLES: [&str; 23] = [
        "atlas_drops_commands_total{type=\"REQUEST_RESERVATION\",outcome=\"applied\",reason=\"\"} 1",
        "atlas_drops_commands_total{type=\"REQUEST_RESERVATION\",outcome=\"refused\",reason=\"out_of_range\"} 1",
        "atlas_drops_commands_total{type=\"SPAWN\",outcome=\"applied\",reason=\"\"} 0",
        "atlas_drops_commands_total{type=\"unknown\",outcome=\"rejected\",reason=\"malformed\"} 1",
        "atlas_drops_events_total{type=\"EXPIRED\"} 1",
        "atlas_drops_expiries_total{cause=\"map_limit\"} 2",
        "atlas_drops_landings_total{outcome=\"failed\"} 1",
        "atlas_drops_landings_total{outcome=\"landed\"} 0",
        "atlas_drops_live_drops 5",
        "atlas_drops_reserved_drops 1",
        "atlas_drops_outbox_events 3",
        "atlas_drops_dead_lettered_total 0",
        "atlas_drops_log_restarts_total 0",
        "atlas_drops_outbox_takeovers_unread_total 1",
        "atlas_drops_stalled_partitions 1",
        "atlas_drops_stalled_partition{partition=\"commands-2\"} 1",
        "atlas_drops_command_latency_seconds_bucket{le=\"0.005\"} 1",
        "atlas_drops_command_latency_seconds_bucket{le=\"+Inf\"} 2",
        "atlas_drops_command_latency_seconds_sum 11.003",
        "atlas_drops_command_latency_seconds_count 2",
        "atlas_drops_outbox_wait_seconds_bucket{le=\"0.001\"} 1",
        "atlas_drops_consumer_lag{topic=\"commands\",partition=\"1\"} 7",
        "# HELP atlas_drops_live_drops Drops lying on all maps.",
    ];

    #[test]
    fn counts_render_with_their_labels() {
        let text = counted().render(&GAUGES, Exposition::Prometheus);
        for line in SAMPLES.iter().chain(&[
            "# TYPE atlas_drops_commands_total counter",
            "atlas_drops_command_latency_seconds_bucket{le=\"0.002\"} 0",
            "atlas_drops_command_latency_seconds_bucket{le=\"10\"} 1",
            "# TYPE atlas_drops_command_latency_seconds histogram",
        ]) {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line} in\n{text}"
            );
        }
        // Zero counts of refusals and rejections are left out, as before.
        assert!(!text.contains("reason=\"held_by_other\""), "{text}");
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = counted().render(&GAUGES, Exposition::OpenMetrics);
        for line in SAMPLES.iter().chain(&[
            "# TYPE atlas_drops_commands counter",
            "atlas_drops_command_latency_seconds_bucket{le=\"10.0\"} 1",
        ]) {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn party_lookups_are_counted_by_outcome() {
        let metrics = Arc::new(Metrics::default());
        metrics.party_lookup(PartyLookup::Failed);
        metrics.party_lookup(PartyLookup::Party);
        metrics.party_lookup(PartyLookup::Failed);
        let text = metrics.render(&GAUGES, Exposition::Prometheus);
        for line in [
            "# TYPE atlas_drops_party_lookups_total counter",
            "atlas_drops_party_lookups_total{outcome=\"party\"} 1",
            "atlas_drops_party_lookups_total{outcome=\"no_party\"} 0",
            "atlas_drops_party_lookups_total{outcome=\"failed\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn a_scraper_asking_for_openmetrics_gets_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            Exposition::negotiate(Some(prometheus)),
            Exposition::OpenMetrics
        );
        for other in [None, Some("*/*"), Some("text/plain")] {
            assert_eq!(Exposition::negotiate(other), Exposition::Prometheus);
        }
    }
}
