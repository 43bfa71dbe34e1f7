//! Consumes `COMMAND_TOPIC_DROP`: one task per partition, so partitions proceed concurrently.
//! A partition applies its commands at once, but those on one drop in offset order, and a map's
//! spawns in offset order (`drop_order::Lanes`).
//!
//! At-least-once: a command's offset is stored for commit only after the broker acknowledged
//! every event it caused (with the shared store: once its transaction, outbox included,
//! succeeded), and only in offset order. Applying is not held up by acknowledgements: up to
//! `MAX_IN_FLIGHT` commands of a partition may be waiting for theirs. Each command carries its
//! position (its offset, and the partition's committed offset as the broker confirmed it) for a
//! store that records what it applied.

pub mod drop_order;
pub mod handler;
mod observer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use self::drop_order::Lanes;
use self::handler::{Handled, Handler, Read};
use super::context::Commits;
use super::context::KafkaContext;
use super::producer::{all_landed, FatalSignal};
use super::topics::OurTopics;
use crate::shutdown::Shutdown;
use crate::store::LogPosition;

pub type CommandConsumer = StreamConsumer<KafkaContext>;

/// How often a partition's committed offset is written down in a store that records applied
/// commands, at most.
const NOTE_COMMITTED_EVERY: Duration = Duration::from_secs(1);
/// How long a stopping partition waits for the commit of what it applied, at most.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a missing command topic is created again, at most.
const RECREATE_EVERY: Duration = Duration::from_secs(5);
/// How long the fetch loop waits after a consumer error.
const CONSUMER_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Commands of one partition applied but not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 4096;
/// Records fetched for a partition but not yet applied, at most: the fetch loop waits beyond.
const PARTITION_QUEUE: usize = 1024;

/// Why the consumer cannot go on: librdkafka's fatal error state.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerBroke {
    /// As librdkafka tells it.
    #[error("consumer broke: {code}: {reason}")]
    Fatal {
        code: RDKafkaErrorCode,
        reason: String,
    },
    /// Signalled, but librdkafka has no reason to give.
    #[error("consumer broke")]
    Unexplained,
    /// A fetch said so first.
    #[error("{error}; {broke}")]
    Fetch {
        error: KafkaError,
        broke: Box<ConsumerBroke>,
    },
}

/// Reads records until shutdown, hands each to its partition's task, then lets every partition
/// task finish what it holds. Returns `Err` when the consumer broke for good (librdkafka's fatal
/// error state): the service then stops, and its supervisor starts it afresh.
pub async fn run(
    consumer: Arc<CommandConsumer>,
    handler: Arc<Handler>,
    commits: Arc<Commits>,
    our_topics: OurTopics,
    fatal: Arc<FatalSignal>,
    mut shutdown: Shutdown,
) -> Result<(), ConsumerBroke> {
    let mut created_at: Option<Instant> = None;
    let mut partitions: HashMap<i32, mpsc::Sender<(Instant, OwnedMessage)>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut outcome = Ok(());
    loop {
        let message = tokio::select! {
            _ = shutdown.recv() => break,
            _ = fatal.raised() => {
                outcome = Err(broken(&consumer));
                break;
            }
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => (Instant::now(), message.detach()),
            Err(error @ KafkaError::MessageConsumptionFatal(_)) => {
                let broke = Box::new(broken(&consumer));
                outcome = Err(ConsumerBroke::Fetch { error, broke });
                break;
            }
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                // The command topic went missing (deleted, or a broker that lost its state): it
                // is created again, as at start-up, once in a while.
                if created_at.is_none_or(|at| at.elapsed() > RECREATE_EVERY) {
                    created_at = Some(Instant::now());
                    tracing::warn!("the command topic is missing: creating it again");
                    if let Err(error) = our_topics.ensure().await {
                        tracing::warn!(%error, "the missing topics could not be created");
                    }
                }
                tokio::time::sleep(CONSUMER_ERROR_PAUSE).await;
                continue;
            }
            Err(error) => {
                // librdkafka reconnects by itself; pause so a gone broker is not a busy loop.
                tracing::warn!(%error, "consumer error");
                tokio::time::sleep(CONSUMER_ERROR_PAUSE).await;
                continue;
            }
        };
        let queue = partitions.entry(message.1.partition()).or_insert_with(|| {
            let (queue, records) = mpsc::channel(PARTITION_QUEUE);
            let worker = (consumer.clone(), handler.clone(), commits.clone());
            let place = (message.1.topic().to_owned(), message.1.partition());
            tasks.spawn(partition(worker, place, records));
            queue
        });
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = queue.send(message) => {}
        }
    }
    if let Err(reason) = &outcome {
        tracing::error!(%reason, "the consumer broke for good: the service stops (its supervisor starts it again)");
    }
    drop(partitions);
    while tasks.join_next().await.is_some() {}
    outcome
}

/// Why the consumer is in librdkafka's fatal error state.
fn broken(consumer: &CommandConsumer) -> ConsumerBroke {
    match consumer.client().fatal_error() {
        Some((code, reason)) => ConsumerBroke::Fatal { code, reason },
        None => ConsumerBroke::Unexplained,
    }
}

fn store(consumer: &CommandConsumer, topic: &str, partition: i32, offset: i64) {
    if let Err(error) = consumer.store_offset(topic, partition, offset) {
        tracing::debug!(%error, partition, offset, "offset not stored");
    }
}

/// What a partition task knows of the commands it applied. A log that starts again (see
/// `LogPosition::is_of_another_log`) starts a new era: what the old one applied says nothing
/// of it.
struct Applied {
    era: u64,
    /// The highest offset applied in this era.
    through: i64,
    /// Every offset of this era up to here was applied and its events acknowledged.
    acknowledged_up_to: i64,
    /// Commit confirmations up to this number are of an earlier era.
    commits_before: u64,
}

impl Applied {
    fn new_era(era: u64, acknowledged_up_to: i64, commits: &Commits) -> Applied {
        Applied {
            era,
            through: i64::MIN,
            acknowledged_up_to,
            commits_before: commits.count(),
        }
    }
}

/// Applies one partition's records in order and stores each offset once its events are acknowledged.
async fn partition(
    (consumer, handler, commits): (Arc<CommandConsumer>, Arc<Handler>, Arc<Commits>),
    (topic, partition): (String, i32),
    mut records: mpsc::Receiver<(Instant, OwnedMessage)>,
) {
    let mut in_flight = FuturesOrdered::new();
    let lanes = Arc::new(Lanes::default());
    let mut open = true;
    // After a failed delivery no later offset may be committed, or the failed command would be
    // skipped on redelivery: the partition stops committing (visibly: logged, counted, not
    // ready, and shutdown fails naming it) and is redelivered from there.
    let mut failed = false;
    // A record comes again after a rebalance or a lost connection when its offset was not yet
    // committed. Applying it twice would duplicate its effect (a second drop, a second credit):
    // what was applied is skipped, and its offset stored once its first events are acknowledged.
    let mut applied = Applied::new_era(0, i64::MIN, &commits);
    let log_name: Arc<str> = format!("{}/{topic}/{partition}", handler.group).into();
    let stalled_name = format!("{topic}/{partition}");
    // The committed offset is written down with every command applied, and also as it moves
    // while no command comes, so that a reader coming after this one knows it.
    let mut noted = None;
    let mut noting = tokio::time::interval(NOTE_COMMITTED_EVERY);
    loop {
        tokio::select! {
            _ = noting.tick(), if open => {
                let committed = commits.committed_since(partition, applied.commits_before);
                if committed.is_some() && committed != noted {
                    noted = committed;
                    let committed = committed.unwrap_or(i64::MIN);
                    // A task of its own: the partition task goes on polling the commands in
                    // flight meanwhile (they wait for the same store; a note raises the floor,
                    // never lowers it, so notes may land in any order).
                    let (store, log_name) = (handler.store.clone(), log_name.clone());
                    tokio::spawn(async move { store.note_committed(&log_name, committed).await });
                }
            }
            Some((era, offset, latency, landed)) = in_flight.next(), if !in_flight.is_empty() => {
                if era != applied.era {
                    // A command of a log that is gone: nothing of it is committed in the new one.
                    continue;
                }
                match landed {
                    Ok(undeliverable) if !failed => {
                        for reason in undeliverable {
                            tracing::warn!(partition, offset, %reason, "an event of this command is undeliverable: passed");
                        }
                        handler.metrics.command_latency(latency);
                        applied.acknowledged_up_to = offset;
                        store(&consumer, &topic, partition, offset);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, partition, offset, "event not delivered; the partition stops committing");
                        handler.metrics.stalled(&stalled_name, true);
                        failed = true;
                    }
                }
            }
            record = records.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => match record {
                Some((arrived, message)) => {
                    let offset = message.offset();
                    let committed = commits.committed_since(partition, applied.commits_before);
                    let mut position = LogPosition {
                        late: false,
                        partition: log_name.clone(),
                        offset,
                        committed: committed.unwrap_or(i64::MIN),
                    };
                    if offset <= applied.through {
                        if !position.is_of_another_log(position.committed) {
                            tracing::info!(partition, offset, ?committed, "redelivered command skipped: already applied");
                            if offset <= applied.acknowledged_up_to && !failed {
                                store(&consumer, &topic, partition, offset);
                            }
                            continue;
                        }
                        tracing::warn!(
                            partition,
                            offset,
                            applied_through = applied.through,
                            ?committed,
                            "the partition's log started again (a record below the committed offset): applying it afresh"
                        );
                        handler.metrics.log_restarted();
                        handler.metrics.stalled(&stalled_name, false);
                        failed = false;
                        applied = Applied::new_era(applied.era + 1, offset - 1, &commits);
                        position.committed = i64::MIN;
                    }
                    // Applied in its map's turn, beside the other maps' commands (a wait for a
                    // peer service, an equip SPAWN's equipment or a character drop's floor, goes
                    // on beside the map's later commands too).
                    let read = handler.read(&message);
                    let mut place = read.lane().map(|lane| lanes.queue(lane));
                    let (handler, lanes) = (handler.clone(), lanes.clone());
                    applied.through = offset;
                    let era = applied.era;
                    in_flight.push_back(async move {
                        let handled = match read {
                            Read::Done(deliveries) => Handled::Now(deliveries),
                            Read::Command(kind, command) => {
                                if let Some(place) = &mut place {
                                    place.turn().await;
                                }
                                let handled = handler.handle(&message, kind, command, position).await;
                                if let Some(place) = place {
                                    lanes.finish(place);
                                }
                                handled
                            }
                        };
                        let deliveries = match handled {
                            Handled::Now(deliveries) => deliveries,
                            Handled::Later(deliveries) => deliveries.await,
                        };
                        let landed = all_landed(deliveries).await;
                        (era, offset, arrived.elapsed(), landed)
                    });
                }
                None => open = false,
            },
            else => break,
        }
    }
    // Stopping: what this partition applied is committed now, and the committed offset written
    // down, so that the next reader (another instance, or this one restarted) starts from it
    // and knows it (`LogPosition::is_of_another_log`).
    if !failed && applied.acknowledged_up_to > i64::MIN {
        let committed = applied.acknowledged_up_to + 1;
        let mut offsets = TopicPartitionList::new();
        let stored = offsets.add_partition_offset(&topic, partition, Offset::Offset(committed));
        let committing = tokio::task::spawn_blocking(move || {
            stored.and_then(|()| consumer.commit(&offsets, CommitMode::Sync))
        });
        match tokio::time::timeout(FINAL_COMMIT_TIMEOUT, committing).await {
            Ok(Ok(Ok(()))) => {
                handler.store.note_committed(&log_name, committed).await;
            }
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, partition, "final commit of the partition failed")
            }
            Ok(Err(_)) | Err(_) => tracing::warn!(
                partition,
                "final commit of the partition did not finish in time"
            ),
        }
    }
}
