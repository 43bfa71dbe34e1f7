//! What librdkafka tells us (logs, errors, rebalances), passed on to our own logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::producer::FatalSignal;
use crate::metrics::Metrics;

/// One per client (consumer, producer, admin). Callbacks only log, count and raise a signal:
/// they run on librdkafka's threads and must return quickly.
#[derive(Clone, Default)]
pub struct KafkaContext {
    pub metrics: Arc<Metrics>,
    /// Raised when librdkafka reports the client broken for good (its fatal error state).
    pub fatal: Option<Arc<FatalSignal>>,
    /// Where a consumer notes the offsets the broker confirmed as committed.
    pub commits: Option<Arc<Commits>>,
}

/// The offsets the group committed, as the broker confirmed them, by partition: each with the
/// number of the confirmation, so that a reader can tell confirmations since a moment of its
/// own from older ones.
///
/// A partition's records come again from its committed offset (after a rebalance, a lost
/// session, a restart): a record below an offset we committed is not one met again but a record
/// of another log, one that started again (`kafka::consumer`).
#[derive(Default)]
pub struct Commits {
    confirmed: Mutex<Confirmed>,
}

/// How many confirmations came, and each partition's last: (its number, the offset).
#[derive(Default)]
struct Confirmed {
    count: u64,
    partitions: HashMap<i32, (u64, i64)>,
}

impl Commits {
    fn confirmed(&self) -> MutexGuard<'_, Confirmed> {
        self.confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn confirm(&self, offsets: &TopicPartitionList) {
        let mut confirmed = self.confirmed();
        for element in offsets.elements() {
            if let Offset::Offset(offset) = element.offset() {
                confirmed.count += 1;
                let number = confirmed.count;
                confirmed
                    .partitions
                    .insert(element.partition(), (number, offset));
            }
        }
    }

    /// How many confirmations came so far.
    pub fn count(&self) -> u64 {
        self.confirmed().count
    }

    /// The partition's committed offset, if confirmed after confirmation number `since`.
    pub fn committed_since(&self, partition: i32, since: u64) -> Option<i64> {
        let (number, offset) = *self.confirmed().partitions.get(&partition)?;
        (number > since).then_some(offset)
    }
}

impl ClientContext for KafkaContext {
    /// The consumer's statistics (every `statistics.interval.ms`) carry each partition's lag.
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (partition, stats) in &topic.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag(name, *partition, stats.consumer_lag);
                }
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // `KAFKA_CFG_*` properties go to every client, so each client warns about the others'
        // properties (a producer of `session.timeout.ms`): expected, not worth a warning.
        let level = if facility == "CONFWARN" {
            RDKafkaLogLevel::Debug
        } else {
            level
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(target: "librdkafka", %error, "fatal: {reason}");
            if let Some(fatal) = &self.fatal {
                fatal.raise();
            }
        } else {
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }
}

impl ConsumerContext for KafkaContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match (&self.commits, result) {
            (Some(commits), Ok(())) => commits.confirm(offsets),
            (_, Err(error)) => tracing::debug!(%error, "commit not confirmed"),
            (None, Ok(())) => {}
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = ?partition_numbers(partitions), "partitions assigned")
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = ?partition_numbers(partitions), "partitions revoked")
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
    }
}

fn partition_numbers(list: &rdkafka::TopicPartitionList) -> Vec<i32> {
    list.elements()
        .iter()
        .map(|element| element.partition())
        .collect()
}
