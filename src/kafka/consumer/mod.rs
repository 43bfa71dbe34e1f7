//! Consumes `COMMAND_TOPIC_DROP`: one task per partition, so partitions proceed concurrently,
//! each applying its commands in offset order.
//!
//! At-least-once: a command's offset is stored for commit only after the broker acknowledged
//! every event it caused (with the shared store: once its transaction, outbox included,
//! succeeded), and only in offset order. Applying is not held up by acknowledgements: up to
//! `MAX_IN_FLIGHT` commands of a partition may be waiting for theirs. Each command carries its
//! position (offset, and the floor below which all is acknowledged) for a store that records
//! what it applied.

pub mod handler;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use self::handler::{Handled, Handler};
use super::context::KafkaContext;
use super::producer::all_acknowledged;
use crate::shutdown::Shutdown;
use crate::store::LogPosition;

pub type CommandConsumer = StreamConsumer<KafkaContext>;

/// How long the fetch loop waits after a consumer error.
const CONSUMER_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Commands of one partition applied but not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 4096;
/// Records fetched for a partition but not yet applied, at most: the fetch loop waits beyond.
const PARTITION_QUEUE: usize = 1024;

/// Reads records until shutdown, hands each to its partition's task, then lets every partition
/// task finish what it holds.
pub async fn run(consumer: Arc<CommandConsumer>, handler: Arc<Handler>, mut shutdown: Shutdown) {
    let mut partitions: HashMap<i32, mpsc::Sender<(Instant, OwnedMessage)>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let message = tokio::select! {
            _ = shutdown.recv() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => (Instant::now(), message.detach()),
            Err(error) => {
                // librdkafka reconnects by itself; pause so a gone broker is not a busy loop.
                tracing::warn!(%error, "consumer error");
                tokio::time::sleep(CONSUMER_ERROR_PAUSE).await;
                continue;
            }
        };
        let queue = partitions.entry(message.1.partition()).or_insert_with(|| {
            let (queue, records) = mpsc::channel(PARTITION_QUEUE);
            let worker = (consumer.clone(), handler.clone());
            let place = (message.1.topic().to_owned(), message.1.partition());
            tasks.spawn(partition(worker, place, records));
            queue
        });
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = queue.send(message) => {}
        }
    }
    drop(partitions);
    while tasks.join_next().await.is_some() {}
}

fn store(consumer: &CommandConsumer, topic: &str, partition: i32, offset: i64) {
    if let Err(error) = consumer.store_offset(topic, partition, offset) {
        tracing::debug!(%error, partition, offset, "offset not stored");
    }
}

/// Applies one partition's records in order and stores each offset once its events are acknowledged.
async fn partition(
    (consumer, handler): (Arc<CommandConsumer>, Arc<Handler>),
    (topic, partition): (String, i32),
    mut records: mpsc::Receiver<(Instant, OwnedMessage)>,
) {
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    // After a failed delivery no later offset may be committed, or the failed command would be
    // skipped on redelivery: the partition stops committing and is redelivered from there.
    let mut failed = false;
    // A record comes again after a rebalance or a lost connection when its offset was not yet
    // committed. Applying it twice would duplicate its effect (a second drop, a second credit):
    // what was applied is skipped, and its offset stored once its first events are acknowledged.
    let mut applied = i64::MIN;
    let mut acknowledged_up_to = i64::MIN;
    let log_name: Arc<str> = format!("{}/{topic}/{partition}", handler.group).into();
    loop {
        tokio::select! {
            Some((offset, latency, acknowledged)) = in_flight.next(), if !in_flight.is_empty() => {
                match acknowledged {
                    Ok(()) if !failed => {
                        handler.metrics.command_latency(latency);
                        acknowledged_up_to = offset;
                        store(&consumer, &topic, partition, offset);
                    }
                    Ok(()) => {}
                    Err(error) => {
                        tracing::error!(%error, partition, offset, "event not delivered; the partition stops committing");
                        failed = true;
                    }
                }
            }
            record = records.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => match record {
                Some((_, message)) if message.offset() <= applied => {
                    let offset = message.offset();
                    tracing::info!(partition, offset, "redelivered command skipped: already applied");
                    if offset <= acknowledged_up_to && !failed {
                        store(&consumer, &topic, partition, offset);
                    }
                }
                Some((arrived, message)) => {
                    let offset = message.offset();
                    let position = LogPosition {
                        partition: log_name.clone(),
                        offset,
                        floor: acknowledged_up_to.saturating_add(1),
                    };
                    let handled = handler.handle(&message, position);
                    applied = offset;
                    in_flight.push_back(async move {
                        let deliveries = match handled {
                            Handled::Now(deliveries) => deliveries,
                            Handled::Later(deliveries) => deliveries.await,
                        };
                        let acknowledged = all_acknowledged(deliveries).await;
                        (offset, arrived.elapsed(), acknowledged)
                    });
                }
                None => open = false,
            },
            else => break,
        }
    }
}
