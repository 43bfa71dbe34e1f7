//! The one long-lived, idempotent producer of `EVENT_TOPIC_DROP_STATUS` (and of the dead-letter
//! topic), behind an ordered queue.
//!
//! Stores call `publish` while they hold a drop's lock, so it must never block and must keep
//! call order: it pushes onto an unbounded channel, and a single task hands the events to
//! librdkafka in that order. librdkafka keeps per-partition order (idempotence keeps it across
//! retries), and every event of a drop has the same key and so the same partition: the topic
//! shows a drop's events in the order of its state changes. A full librdkafka queue only makes
//! the task wait; it never reorders nor drops an event.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::context::KafkaContext;
use super::message::event::{encode_key, encode_value};
use super::message::headers::event_headers;
use crate::drop::event::{Event, EventKind};
use crate::equipment::Janitor;
use crate::metrics::Metrics;

pub type EventProducer = FutureProducer<KafkaContext>;

/// A rejected command, copied unchanged (key, value, headers) to the dead-letter topic, with
/// headers added that say why and where it came from.
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: OwnedHeaders,
}

enum Record {
    Event(Event),
    DeadLetter(DeadLetter),
}

struct Outgoing {
    record: Record,
    sent: oneshot::Sender<Result<DeliveryFuture, String>>,
}

/// Where records go.
pub struct Topics {
    pub events: String,
    pub dead_letters: Option<String>,
}

/// A handle that publishes events (and dead letters); cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Outgoing>,
    dead_letters: bool,
    janitor: Option<Janitor>,
    metrics: Arc<Metrics>,
}

/// The broker's answer for one event, to be awaited before committing what caused it.
pub struct Delivery(oneshot::Receiver<Result<DeliveryFuture, String>>);

impl Delivery {
    /// Resolves once the broker acknowledged the event, or with why it never will.
    pub async fn acknowledged(self) -> Result<(), String> {
        let future = self
            .0
            .await
            .map_err(|_| "the publisher stopped before sending the event".to_owned())??;
        acknowledged(future).await.map(|_| ())
    }
}

/// Resolves once the broker acknowledged a record librdkafka took, with where it put it
/// (partition, offset), or with why it never will.
pub async fn acknowledged(future: DeliveryFuture) -> Result<(i32, i64), String> {
    broker_answer(future.await)
}

/// What a `DeliveryFuture` resolved to: (partition, offset), or why the record is not there.
pub fn broker_answer<E>(answer: Result<OwnedDeliveryResult, E>) -> Result<(i32, i64), String> {
    match answer {
        Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
        Ok(Err((error, _))) => Err(error.to_string()),
        Err(_) => Err("the producer closed before the broker answered".to_owned()),
    }
}

/// Awaits every delivery; the first failure, if any, is the answer.
pub async fn all_acknowledged(deliveries: Vec<Delivery>) -> Result<(), String> {
    for delivery in deliveries {
        delivery.acknowledged().await?;
    }
    Ok(())
}

impl Publisher {
    /// Starts the task feeding `producer`. It ends when every `Publisher` clone is dropped and
    /// the queue is drained.
    pub fn start(
        producer: EventProducer,
        topics: Topics,
        metrics: Arc<Metrics>,
        janitor: Option<Janitor>,
    ) -> (Publisher, JoinHandle<()>) {
        let (queue, pending) = mpsc::unbounded_channel();
        let dead_letters = topics.dead_letters.is_some();
        let task = tokio::spawn(feed(producer, topics, metrics.clone(), pending));
        let publisher = Publisher {
            queue,
            dead_letters,
            janitor,
            metrics,
        };
        (publisher, task)
    }

    /// Queues an event for the broker, keeping call order. Never blocks. Every `EXPIRED` passes
    /// here, whatever expired the drop: its equipment, if any, is handed to the janitor.
    pub fn publish(&self, event: Event) -> Delivery {
        self.clean_up(&event);
        self.queue(Record::Event(event))
    }

    /// Takes note of an event a shared store wrote to its outbox (`kafka::outbox` sends it):
    /// it is counted, and an expired drop's equipment is handed to the janitor.
    pub fn recorded(&self, event: &Event) {
        self.clean_up(event);
        self.metrics.event(&event.kind);
    }

    /// Where a store's events go: to the broker, or (for a shared store, whose outbox holds
    /// them already) only noted.
    pub fn sink(&self, shared: bool) -> EventSink<'_> {
        EventSink {
            publisher: self,
            shared,
            deliveries: Vec::new(),
        }
    }

    fn clean_up(&self, event: &Event) {
        if let (Some(janitor), EventKind::Expired { equipment_id }) = (&self.janitor, &event.kind) {
            if *equipment_id != 0 {
                janitor.delete(event.tenant.clone(), *equipment_id);
            }
        }
    }

    /// Queues a rejected command for the dead-letter topic, or `None` when there is none.
    pub fn dead_letter(&self, letter: DeadLetter) -> Option<Delivery> {
        self.dead_letters
            .then(|| self.queue(Record::DeadLetter(letter)))
    }

    fn queue(&self, record: Record) -> Delivery {
        let (sent, delivery) = oneshot::channel();
        // If the task is gone, `sent` is dropped with the message and the delivery says so.
        let _ = self.queue.send(Outgoing { record, sent });
        Delivery(delivery)
    }
}

/// Takes a store's events, one call at a time, in order (see `Publisher::sink`).
pub struct EventSink<'a> {
    publisher: &'a Publisher,
    shared: bool,
    /// The broker's answers to await before committing what caused the events.
    pub deliveries: Vec<Delivery>,
}

impl EventSink<'_> {
    pub fn take(&mut self, event: Event) {
        if self.shared {
            self.publisher.recorded(&event);
        } else {
            self.deliveries.push(self.publisher.publish(event));
        }
    }
}

async fn feed(
    producer: EventProducer,
    topics: Topics,
    metrics: Arc<Metrics>,
    mut pending: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(Outgoing { record, sent }) = pending.recv().await {
        let queued = match record {
            Record::Event(event) => {
                let key = encode_key(event.drop_id);
                let value = encode_value(&event);
                let record = FutureRecord::to(&topics.events)
                    .key(&key[..])
                    .payload(&value[..])
                    .headers(event_headers(&event.tenant, &event.correlation));
                let queued = enqueue(&producer, record).await;
                match &queued {
                    Ok(_) => metrics.event(&event.kind),
                    Err(error) => {
                        tracing::error!(%error, drop_id = event.drop_id, "event could not be queued")
                    }
                }
                queued
            }
            Record::DeadLetter(letter) => {
                let topic = topics
                    .dead_letters
                    .as_deref()
                    .expect("dead letters have a topic");
                let mut record = FutureRecord::to(topic).headers(letter.headers);
                if let Some(key) = &letter.key {
                    record = record.key(&key[..]);
                }
                if let Some(value) = &letter.value {
                    record = record.payload(&value[..]);
                }
                let queued = enqueue(&producer, record).await;
                match &queued {
                    Ok(_) => metrics.dead_lettered(),
                    Err(error) => tracing::error!(%error, "dead letter could not be queued"),
                }
                queued
            }
        };
        let _ = sent.send(queued.map_err(|error| error.to_string()));
    }
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
