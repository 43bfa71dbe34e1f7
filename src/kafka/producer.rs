//! The producer of `EVENT_TOPIC_DROP_STATUS` (and of the dead-letter topic), behind an ordered
//! queue, and the `Producers` that replace it when it breaks for good.
//!
//! Stores call `publish` while they hold a drop's lock, so it must never block and must keep
//! call order: it pushes onto an unbounded channel, and a single task hands the records to
//! librdkafka in that order. librdkafka keeps per-partition order (idempotence keeps it across
//! retries), and every event of a drop has the same key and so the same partition: the topic
//! shows a drop's events in the order of its state changes. A full librdkafka queue only makes
//! the task wait; it never reorders nor drops an event.
//!
//! The task keeps every record until the broker acknowledged it. An idempotent producer can hit
//! a fatal error (a broker that lost its state answers `OutOfOrderSequenceNumber` or
//! `UnknownProducerId`), after which it sends nothing ever again, or retry forever without
//! one (caught by `message.timeout.ms`): the task then takes a fresh producer and sends every
//! record the old one did not get acknowledged, in the order they came, before any newer one.
//! A topic the broker says is missing is created again and the records sent again in order. A record the broker refuses for good (too large, invalid) is
//! *undeliverable*: logged, counted and passed, so that it never stops a partition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::context::KafkaContext;
use super::message::event::{encode_headers, encode_key, encode_value};
use super::topics::OurTopics;
use crate::drop::event::Event;
use crate::metrics::{Metrics, RecordKind};

pub type EventProducer = FutureProducer<KafkaContext>;

/// A rejected command, copied unchanged (key, value, headers) to the dead-letter topic, with
/// headers added that say why and where it came from.
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: OwnedHeaders,
}

impl DeadLetter {
    /// Bytes the letter takes in a record batch, near enough to compare with the broker's limit.
    pub fn size(&self) -> usize {
        use rdkafka::message::Headers;
        let headers: usize = (self.headers.iter())
            .map(|header| header.key.len() + header.value.map_or(0, <[u8]>::len) + 8)
            .sum();
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + headers
    }
}

/// Why the broker does not hold a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Refused for good: sending it again would be refused again.
    #[error("undeliverable: {0}")]
    Undeliverable(String),
    /// The producer broke for good (librdkafka's fatal error state), or did not get the record
    /// acknowledged within `message.timeout.ms`: a fresh one must send it.
    #[error("the producer broke: {0}")]
    Fatal(String),
    /// The broker does not have the topic (deleted, or the broker lost its state): it may be
    /// created again, so the record is sent again later.
    #[error("no such topic (now): {0}")]
    MissingTopic(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

impl DeliveryError {
    pub fn of(error: &KafkaError) -> DeliveryError {
        let reason = error.to_string();
        match error.rdkafka_error_code() {
            Some(code) if is_permanent(code) => DeliveryError::Undeliverable(reason),
            // The idempotent producer's state is gone from the broker (it lost its state): the
            // producer is fatally broken, or about to say so.
            Some(
                RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerEpoch,
            ) => DeliveryError::Fatal(reason),
            // Not acknowledged in `message.timeout.ms`: the broker is away, or lost the
            // producer's state and the idempotent producer retries forever. A fresh producer
            // sends it again either way.
            Some(RDKafkaErrorCode::MessageTimedOut) => DeliveryError::Fatal(reason),
            Some(
                RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopicId,
            ) => DeliveryError::MissingTopic(reason),
            _ => DeliveryError::Failed(reason),
        }
    }
}

/// Why a record someone waits for will not be acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotDelivered {
    #[error(transparent)]
    Broker(DeliveryError),
    #[error("the publisher stopped before the broker answered")]
    PublisherStopped,
}

/// A producer librdkafka would not make (a bad property, most often).
#[derive(Debug, thiserror::Error)]
#[error("producer: {0}")]
pub struct ProducerError(KafkaError);

/// Errors that say the record itself is wrong for the broker, not the broker or the network.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::BadMessage
    )
}

/// What became of a record the broker answered for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Landed {
    /// The broker holds it.
    Acknowledged,
    /// The broker refused it for good; it was logged and counted, and nothing waits for it.
    Undeliverable(String),
}

/// Set by a client's error callback when librdkafka reports a fatal error.
#[derive(Default)]
pub struct FatalSignal {
    raised: AtomicBool,
    notify: Notify,
}

impl FatalSignal {
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// Resolves once the signal is raised (at once if it was).
    pub async fn raised(&self) {
        while !self.is_raised() {
            self.notify.notified().await;
        }
    }
}

/// The current producer, and how to build its successor. Each producer has a generation, so
/// that two users that both saw it break replace it once.
pub struct Producers {
    config: ClientConfig,
    metrics: Arc<Metrics>,
    current: Mutex<Lease>,
}

/// A producer as handed out: use `producer`; name `generation` when it broke.
#[derive(Clone)]
pub struct Lease {
    pub generation: u64,
    pub producer: EventProducer,
    pub fatal: Arc<FatalSignal>,
}

impl Producers {
    pub fn new(
        config: ClientConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Producers>, ProducerError> {
        let current = Producers::build(&config, &metrics, 0)?;
        Ok(Arc::new(Producers {
            config,
            metrics,
            current: Mutex::new(current),
        }))
    }

    fn build(
        config: &ClientConfig,
        metrics: &Arc<Metrics>,
        generation: u64,
    ) -> Result<Lease, ProducerError> {
        let fatal = Arc::new(FatalSignal::default());
        let context = KafkaContext {
            metrics: metrics.clone(),
            fatal: Some(fatal.clone()),
            commits: None,
        };
        let producer = config.create_with_context(context).map_err(ProducerError)?;
        Ok(Lease {
            generation,
            producer,
            fatal,
        })
    }

    pub fn current(&self) -> Lease {
        (self.current.lock().unwrap_or_else(PoisonError::into_inner)).clone()
    }

    /// Why the current producer is broken, if it is (it is replaced as soon as a user notices).
    pub fn broken(&self) -> Option<String> {
        let lease = self.current();
        (lease.producer.client().fatal_error())
            .map(|(code, reason)| format!("{code}: {reason}"))
            .or_else(|| lease.fatal.is_raised().then(|| "fatal error".to_owned()))
    }

    /// Replaces the producer of `generation` with a fresh one (unless that was done already) and
    /// returns the current one. The broken producer is closed off the caller's thread: closing
    /// waits on librdkafka.
    pub fn replace(&self, generation: u64) -> Lease {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.generation == generation {
            let reason = current.producer.client().fatal_error();
            match Producers::build(&self.config, &self.metrics, generation + 1) {
                Ok(fresh) => {
                    tracing::error!(?reason, generation, "the producer broke for good: replaced by a fresh one, which sends what it left unacknowledged");
                    self.metrics.producer_replaced();
                    let broken = std::mem::replace(&mut *current, fresh);
                    std::thread::spawn(move || drop(broken));
                }
                Err(error) => {
                    tracing::error!(%error, "the producer broke and no fresh one could be made; trying again at the next record")
                }
            }
        }
        current.clone()
    }
}

/// A record on its way to a topic, owned until the broker acknowledged it.
///
/// Events are encoded by the task that sends them, not by the caller: stores publish while they
/// hold a drop's lock, which must stay short.
enum Outgoing {
    Event(Event),
    DeadLetter(DeadLetter),
}

impl Outgoing {
    /// What it is, for metrics and logs.
    fn kind(&self) -> RecordKind {
        match self {
            Outgoing::Event(event) => RecordKind::event(&event.kind),
            Outgoing::DeadLetter(_) => RecordKind::DeadLetter,
        }
    }

    fn drop_id(&self) -> u32 {
        match self {
            Outgoing::Event(event) => event.drop_id,
            Outgoing::DeadLetter(_) => 0,
        }
    }
}

/// A record and who waits for the broker's answer.
type Queued = (Outgoing, oneshot::Sender<Result<Landed, NotDelivered>>);

/// Where records go.
pub struct Topics {
    pub events: String,
    pub dead_letters: Option<String>,
    /// Created again when the broker says they are missing.
    pub ours: OurTopics,
}

/// A handle that publishes events (and dead letters); cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Queued>,
    dead_letters: bool,
}

/// The broker's answer for one record, to be awaited before committing what caused it.
pub struct Delivery(oneshot::Receiver<Result<Landed, NotDelivered>>);

impl Delivery {
    /// Resolves once the broker took the record (or refused it for good), or with why it
    /// never will.
    pub async fn landed(self) -> Result<Landed, NotDelivered> {
        self.0.await.map_err(|_| NotDelivered::PublisherStopped)?
    }
}

/// Resolves once the broker acknowledged a record librdkafka took, with where it put it
/// (partition, offset), or with why it is not there.
async fn acknowledged(future: DeliveryFuture) -> Result<(i32, i64), DeliveryError> {
    broker_answer(future.await)
}

/// What a `DeliveryFuture` resolved to: (partition, offset), or why the record is not there.
pub fn broker_answer<E>(
    answer: Result<OwnedDeliveryResult, E>,
) -> Result<(i32, i64), DeliveryError> {
    match answer {
        Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
        Ok(Err((error, _))) => Err(DeliveryError::of(&error)),
        Err(_) => Err(DeliveryError::Failed(
            "the producer closed before the broker answered".to_owned(),
        )),
    }
}

/// Awaits every delivery: the records refused for good (logged and counted already), or the
/// first failure.
pub async fn all_landed(deliveries: Vec<Delivery>) -> Result<Vec<String>, NotDelivered> {
    let mut undeliverable = Vec::new();
    for delivery in deliveries {
        if let Landed::Undeliverable(reason) = delivery.landed().await? {
            undeliverable.push(reason);
        }
    }
    Ok(undeliverable)
}

impl Publisher {
    /// Starts the task feeding the producers. It ends when every `Publisher` clone is dropped
    /// and every record is answered.
    pub fn start(
        producers: Arc<Producers>,
        topics: Topics,
        metrics: Arc<Metrics>,
    ) -> (Publisher, JoinHandle<()>) {
        let (queue, pending) = mpsc::unbounded_channel();
        let dead_letters = topics.dead_letters.is_some();
        let feeder = Feeder {
            producers,
            topics,
            metrics,
        };
        let task = tokio::spawn(feeder.run(pending));
        let publisher = Publisher {
            queue,
            dead_letters,
        };
        (publisher, task)
    }

    /// Queues an event for the broker, keeping call order. Never blocks.
    pub fn publish(&self, event: Event) -> Delivery {
        self.queue(Outgoing::Event(event))
    }

    /// Queues a rejected command for the dead-letter topic, or `None` when there is none.
    pub fn dead_letter(&self, letter: DeadLetter) -> Option<Delivery> {
        self.dead_letters
            .then(|| self.queue(Outgoing::DeadLetter(letter)))
    }

    fn queue(&self, outgoing: Outgoing) -> Delivery {
        let (answer, delivery) = oneshot::channel();
        // If the task is gone, `answer` is dropped with the record and the delivery says so.
        let _ = self.queue.send((outgoing, answer));
        Delivery(delivery)
    }
}

/// The task between the queue and librdkafka.
struct Feeder {
    producers: Arc<Producers>,
    topics: Topics,
    metrics: Arc<Metrics>,
}

/// A record's place in the queue: records are sent again in this order after a producer broke.
type Sequence = u64;

/// How long to wait before replacing a producer that broke again at once.
const REPLACE_PAUSE: Duration = Duration::from_millis(100);
/// How long to wait, after creating it, before sending again to a topic the broker said it
/// did not have.
const MISSING_TOPIC_PAUSE: Duration = Duration::from_secs(1);

/// What must follow an answer (or a send).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    GoOn,
    /// The topic is missing (deleted, or a broker that lost its state): it is created again,
    /// and every unanswered record goes out again, in queue order.
    SendAgain,
    /// The producer broke for good: a fresh one sends every unanswered record, in queue order.
    Replace,
}

impl Feeder {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Queued>) {
        // Every record sent and not yet answered, by its place in the queue.
        let mut unanswered: BTreeMap<Sequence, Queued> = BTreeMap::new();
        let mut answers = FuturesUnordered::new();
        let mut next: Sequence = 0;
        let mut lease = self.producers.current();
        // Answers of an earlier round are of records sent again since: they are not waited for.
        let mut round: u64 = 0;
        let mut open = true;
        loop {
            let fatal = lease.fatal.clone();
            let mut then = tokio::select! {
                outgoing = queue.recv(), if open => match outgoing {
                    Some(outgoing) => {
                        let sequence = next;
                        next += 1;
                        unanswered.insert(sequence, outgoing);
                        self.send(&lease, round, sequence, &mut unanswered, &mut answers).await
                    }
                    None => {
                        open = false;
                        Then::GoOn
                    }
                },
                Some((answered_in, sequence, answer)) = answers.next(), if !answers.is_empty() => {
                    if answered_in == round {
                        self.answered(sequence, answer, &mut unanswered)
                    } else {
                        Then::GoOn
                    }
                }
                _ = fatal.raised() => Then::Replace,
                else => break,
            };
            while then != Then::GoOn {
                if then == Then::Replace {
                    lease = self.producers.replace(lease.generation);
                } else {
                    if let Err(error) = self.topics.ours.ensure().await {
                        tracing::warn!(%error, "the missing topics could not be created");
                    }
                    tokio::time::sleep(MISSING_TOPIC_PAUSE).await;
                }
                round += 1;
                answers = FuturesUnordered::new();
                let waiting: Vec<Sequence> = unanswered.keys().copied().collect();
                tracing::warn!(
                    records = waiting.len(),
                    "sending again, in order, every record not yet acknowledged"
                );
                then = Then::GoOn;
                for sequence in waiting {
                    then =
                        (self.send(&lease, round, sequence, &mut unanswered, &mut answers)).await;
                    if then != Then::GoOn {
                        tokio::time::sleep(REPLACE_PAUSE).await;
                        break;
                    }
                }
            }
        }
    }

    /// Hands record `sequence` to librdkafka.
    async fn send(
        &self,
        lease: &Lease,
        round: u64,
        sequence: Sequence,
        unanswered: &mut BTreeMap<Sequence, Queued>,
        answers: &mut FuturesUnordered<Answer>,
    ) -> Then {
        let Some((outgoing, _)) = unanswered.get(&sequence) else {
            return Then::GoOn;
        };
        let (topic, key, value, headers) = match outgoing {
            Outgoing::Event(event) => (
                &self.topics.events,
                Some(encode_key(event.drop_id).to_vec()),
                Some(encode_value(event)),
                encode_headers(event),
            ),
            Outgoing::DeadLetter(letter) => (
                (self.topics.dead_letters.as_ref())
                    .expect("dead letters are queued only when there is a topic for them"),
                letter.key.clone(),
                letter.value.clone(),
                letter.headers.clone(),
            ),
        };
        let mut record = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &key {
            record = record.key(&key[..]);
        }
        if let Some(value) = &value {
            record = record.payload(&value[..]);
        }
        match enqueue(&lease.producer, record).await {
            Ok(future) => {
                answers.push(answer(round, sequence, future));
                Then::GoOn
            }
            Err(error) => self.answered(sequence, Err(DeliveryError::of(&error)), unanswered),
        }
    }

    /// Hands the broker's answer to whoever waits for it, or says what must follow when the
    /// record is to be sent again.
    fn answered(
        &self,
        sequence: Sequence,
        answer: Result<(i32, i64), DeliveryError>,
        unanswered: &mut BTreeMap<Sequence, Queued>,
    ) -> Then {
        match &answer {
            Err(DeliveryError::Fatal(_)) => return Then::Replace,
            Err(DeliveryError::MissingTopic(reason)) => {
                tracing::warn!(%reason, "the broker does not have the topic (now): sending again shortly");
                return Then::SendAgain;
            }
            _ => {}
        }
        let Some((outgoing, waiting)) = unanswered.remove(&sequence) else {
            return Then::GoOn;
        };
        let landed = match answer {
            Ok(_) => {
                self.metrics.published(outgoing.kind());
                Ok(Landed::Acknowledged)
            }
            Err(DeliveryError::Undeliverable(reason)) => {
                tracing::error!(record = outgoing.kind().name(), drop_id = outgoing.drop_id(), %reason, "the broker refuses this record for good: it is passed, not sent");
                self.metrics.undeliverable();
                Ok(Landed::Undeliverable(reason))
            }
            Err(error) => {
                tracing::error!(record = outgoing.kind().name(), drop_id = outgoing.drop_id(), %error, "record not delivered");
                Err(NotDelivered::Broker(error))
            }
        };
        let _ = waiting.send(landed);
        Then::GoOn
    }
}

/// A record's answer, named by the round and the queue place it was sent from.
type Answer = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (u64, Sequence, Result<(i32, i64), DeliveryError>)> + Send,
    >,
>;

fn answer(round: u64, sequence: Sequence, future: DeliveryFuture) -> Answer {
    Box::pin(async move { (round, sequence, acknowledged(future).await) })
}

/// How long to wait before offering a record again to librdkafka's full queue.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(2);

/// A record librdkafka took (its delivery to await), or handed back because its queue is full.
type Offered<'a> = Result<DeliveryFuture, FutureRecord<'a, [u8], [u8]>>;

/// Offers a record to librdkafka: taken, handed back, or refused for good.
fn offer<'a>(
    producer: &EventProducer,
    record: FutureRecord<'a, [u8], [u8]>,
) -> Result<Offered<'a>, KafkaError> {
    match producer.send_result(record) {
        Ok(future) => Ok(Ok(future)),
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => Ok(Err(back)),
        Err((error, _)) => Err(error),
    }
}

/// Hands a record to librdkafka, waiting while its queue is full.
async fn enqueue(
    producer: &EventProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        match offer(producer, record)? {
            Ok(future) => return Ok(future),
            Err(back) => record = back,
        }
        tokio::time::sleep(QUEUE_FULL_PAUSE).await;
    }
}

/// `enqueue` for a thread outside the runtime.
pub fn enqueue_blocking(
    producer: &EventProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        match offer(producer, record)? {
            Ok(future) => return Ok(future),
            Err(back) => record = back,
        }
        std::thread::sleep(QUEUE_FULL_PAUSE);
    }
}
