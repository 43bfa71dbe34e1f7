//! Consumes `COMMAND_TOPIC_DROP`: one task per partition, so partitions proceed concurrently,
//! each applying its commands in offset order.
//!
//! At-least-once: a command's offset is stored for commit only after the broker acknowledged
//! every event it caused, and only in offset order. Applying is not held up by acknowledgements:
//! up to `MAX_IN_FLIGHT` commands of a partition may be waiting for theirs.

pub mod handler;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use self::handler::Handler;
use super::context::KafkaContext;
use super::producer::all_acknowledged;
use crate::shutdown::Shutdown;

pub type CommandConsumer = StreamConsumer<KafkaContext>;

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
                tracing::warn!(%error, "consumer error");
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
    loop {
        tokio::select! {
            Some((offset, latency, acknowledged)) = in_flight.next(), if !in_flight.is_empty() => {
                match acknowledged {
                    Ok(()) if !failed => {
                        handler.metrics.command_latency(latency);
                        if let Err(error) = consumer.store_offset(&topic, partition, offset) {
                            tracing::debug!(%error, partition, offset, "offset not stored");
                        }
                    }
                    Ok(()) => {}
                    Err(error) => {
                        tracing::error!(%error, partition, offset, "event not delivered; the partition stops committing");
                        failed = true;
                    }
                }
            }
            record = records.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => match record {
                Some((arrived, message)) => {
                    let deliveries = handler.handle(&message);
                    let offset = message.offset();
                    in_flight.push_back(async move {
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
