//! A peer service of our own: its own Kafka client produces commands as the Atlas services do
//! and reads every event (nothing of the service's code is used).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use uuid::Uuid;

use super::broker::config;
use super::{create_topics, Broker, Names, PARTITIONS};

/// A tenant as peers send it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: Uuid,
    pub region: String,
    pub major: u16,
    pub minor: u16,
}

impl Tenant {
    pub fn new(region: &str, major: u16, minor: u16) -> Tenant {
        Tenant {
            id: Uuid::new_v4(),
            region: region.to_owned(),
            major,
            minor,
        }
    }

    pub fn headers(&self) -> OwnedHeaders {
        let id = self.id.hyphenated().to_string();
        OwnedHeaders::new()
            .insert(Header {
                key: "TENANT_ID",
                value: Some(id.as_bytes()),
            })
            .insert(Header {
                key: "REGION",
                value: Some(self.region.as_bytes()),
            })
            .insert(Header {
                key: "MAJOR_VERSION",
                value: Some(&self.major.to_be_bytes()),
            })
            .insert(Header {
                key: "MINOR_VERSION",
                value: Some(&self.minor.to_be_bytes()),
            })
    }
}

/// One event as a peer reads it off the topic.
#[derive(Clone, Debug)]
pub struct Event {
    pub partition: i32,
    pub key: Vec<u8>,
    pub headers: HashMap<String, Vec<u8>>,
    pub raw: String,
    pub value: Value,
}

impl Event {
    fn read(message: &impl Message) -> Event {
        let event = Event::read_raw(message);
        assert!(!event.value.is_null(), "events are JSON: {}", event.raw);
        event
    }

    /// Any record: its value as text, and as JSON where it is JSON (else `null`).
    fn read_raw(message: &impl Message) -> Event {
        let raw = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Event {
            partition: message.partition(),
            key: message.key().unwrap_or_default().to_vec(),
            headers,
            value: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        }
    }

    pub fn kind(&self) -> &str {
        self.value["type"].as_str().unwrap_or_default()
    }

    pub fn drop_id(&self) -> u64 {
        self.value["dropId"].as_u64().expect("dropId")
    }

    pub fn transaction_id(&self) -> &str {
        self.value["transactionId"].as_str().expect("transactionId")
    }

    pub fn body(&self) -> &Value {
        &self.value["body"]
    }
}

/// A peer service: produces commands as the Atlas services do and reads every event.
pub struct Peer {
    names: Names,
    producer: FutureProducer,
    consumer: StreamConsumer,
    pub tenant: Tenant,
    /// Every event read so far, in arrival order.
    pub seen: Vec<Event>,
}

/// A consumer outside any group, reading where it is told.
fn reader(bootstrap: &str) -> StreamConsumer {
    config(bootstrap)
        .set("group.id", format!("peer-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        // Should a fetch be "out of range": read again, never skip (the default is latest).
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

fn assign_from_start(consumer: &StreamConsumer, topic: &str, partitions: i32) {
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
}

impl Peer {
    /// Creates the topics (as an operator would) and starts reading the event topic from its start.
    pub async fn connect(broker: &Broker, names: &Names) -> Peer {
        create_topics(broker, names).await;
        Peer::connect_existing(&broker.bootstrap, names).await
    }

    /// A peer on topics that exist already.
    pub async fn connect_existing(bootstrap: &str, names: &Names) -> Peer {
        let producer = Peer::producer(bootstrap);
        let consumer = reader(bootstrap);
        assign_from_start(&consumer, &names.events, PARTITIONS);
        Peer {
            names: names.clone(),
            producer,
            consumer,
            tenant: Tenant::new("GMS", 83, 1),
            seen: Vec::new(),
        }
    }

    /// Connects afresh after the broker lost its state: reads the event topic from its start
    /// (Tansu does not answer a read past the end of a new, shorter log with "out of range", so
    /// a reader left where the old log ended would wait there), and produces with a producer
    /// that has not learnt, while they were missing, that the topics do not exist.
    pub fn reconnect(&mut self, bootstrap: &str) {
        let fresh = Peer::producer(bootstrap);
        self.producer = fresh;
        self.consumer = reader(bootstrap);
        assign_from_start(&self.consumer, &self.names.events, PARTITIONS);
    }

    fn producer(bootstrap: &str) -> FutureProducer {
        config(bootstrap)
            .set("linger.ms", "0")
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("producer")
    }

    /// Reads the dead-letter topic: exactly `count` letters.
    pub async fn dead_letters(&self, broker: &Broker, count: usize) -> Vec<Event> {
        let consumer = reader(&broker.bootstrap);
        assign_from_start(&consumer, &self.names.dead_letters, 1);
        let mut letters = Vec::new();
        while letters.len() < count {
            match tokio::time::timeout(Duration::from_secs(20), consumer.recv()).await {
                Ok(Ok(message)) => letters.push(Event::read_raw(&message)),
                Ok(Err(error)) => panic!("reading dead letters: {error}"),
                Err(_) => panic!(
                    "expected {count} dead letters, got {}: {letters:#?}",
                    letters.len()
                ),
            }
        }
        // Exactly `count`: none more comes.
        if let Ok(Ok(extra)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            panic!(
                "expected {count} dead letters, got more: {:#?}",
                Event::read_raw(&extra)
            );
        }
        letters
    }

    /// Queues every command (under one key, when given: then all on one partition, in order),
    /// then waits until the broker has them all.
    pub async fn send_all(&self, commands: &[Value], key: Option<&[u8]>) {
        let values: Vec<Vec<u8>> = commands
            .iter()
            .map(|c| serde_json::to_vec(c).expect("json"))
            .collect();
        let deliveries: Vec<_> = values
            .iter()
            .map(|value| {
                let mut record = FutureRecord::<[u8], [u8]>::to(&self.names.commands)
                    .payload(value)
                    .headers(self.tenant.headers());
                if let Some(key) = key {
                    record = record.key(key);
                }
                self.producer
                    .send_result(record)
                    .map_err(|(error, _)| error)
                    .expect("queued")
            })
            .collect();
        for delivery in deliveries {
            delivery.await.expect("delivered").expect("produced");
        }
    }

    /// Sends a command with this peer's tenant, keyed as the peer keys it.
    pub async fn send(&self, command: &Value) {
        self.send_as(&self.tenant, command).await
    }

    pub async fn send_as(&self, tenant: &Tenant, command: &Value) {
        let value = serde_json::to_vec(command).expect("json");
        self.send_raw(Some(tenant.headers()), &value).await
    }

    pub async fn send_raw(&self, headers: Option<OwnedHeaders>, value: &[u8]) {
        let key = Uuid::new_v4().as_bytes().to_vec();
        self.send_keyed(headers, value, &key).await
    }

    /// Sends a record under `key` (records of one key stay on one partition, in order).
    pub async fn send_keyed(&self, headers: Option<OwnedHeaders>, value: &[u8], key: &[u8]) {
        let mut record = FutureRecord::to(&self.names.commands)
            .key(key)
            .payload(value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .expect("command produced");
    }

    /// Reads events until `count` more arrived; panics with what came after `limit`.
    pub async fn next_events(&mut self, count: usize, limit: Duration) -> Vec<Event> {
        let start = self.seen.len();
        let deadline = tokio::time::Instant::now() + limit;
        while self.seen.len() < start + count {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => self.seen.push(Event::read(&message)),
                // The client reconnects by itself (a test may cut the broker off).
                Ok(Err(error)) => eprintln!("consuming events: {error}"),
                Err(_) => panic!(
                    "expected {count} events, got {}: {:#?}",
                    self.seen.len() - start,
                    &self.seen[start..]
                ),
            }
        }
        self.seen[start..].to_vec()
    }

    /// Reads events until none came for `quiet`.
    /// Reads events until none comes for `quiet`. A read error (a fetch the broker failed, say)
    /// is reported and reading goes on: stopping there would cut the topic short.
    pub async fn events_until_quiet(&mut self, quiet: Duration) -> Vec<Event> {
        let start = self.seen.len();
        while let Ok(received) = tokio::time::timeout(quiet, self.consumer.recv()).await {
            match received {
                Ok(message) => self.seen.push(Event::read(&message)),
                Err(error) => eprintln!("peer: reading events: {error} (reading on)"),
            }
        }
        self.seen[start..].to_vec()
    }

    pub async fn next_event(&mut self) -> Event {
        self.next_events(1, Duration::from_secs(20)).await.remove(0)
    }

    /// Asserts that no event arrives within `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        if let Ok(Ok(message)) = tokio::time::timeout(wait, self.consumer.recv()).await {
            panic!(
                "expected no event, got {}",
                String::from_utf8_lossy(message.payload().unwrap_or_default())
            );
        }
    }

    /// Spawns a drop and returns its `CREATED` event.
    pub async fn spawn_drop(&mut self, command: &Value) -> Event {
        self.send(command).await;
        let created = self.next_event().await;
        assert_eq!(created.kind(), "CREATED", "{created:?}");
        created
    }
}
