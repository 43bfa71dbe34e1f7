//! atlas-drops-load: drives a running atlas-drops through the broker as the Atlas peers do, and
//! prints throughput, latency percentiles and anomalies. With `--relay` it is instead a bare
//! consume→produce relay with no logic: the physical limit of broker and client on this machine.
//!
//! A lifecycle is SPAWN (keyed by map id) → CREATED, REQUEST_RESERVATION (keyed by drop id) →
//! RESERVED, REQUEST_PICK_UP (keyed by map id) → PICKED_UP: each step is sent when the previous
//! event arrives, with up to `--window` lifecycles in flight; open-loop at `--rate` lifecycles a
//! second, or closed-loop as fast as answers come (`--rate 0`). Against `--target relay`, the
//! answer to each command is the command itself, echoed.
//!
//! With `--meso-every K`, every K-th lifecycle drops meso instead of an item, and its picker
//! stands with a party of `--party-size` members (the generator serves the party service on
//! `--party-port`, as the newer Atlas does it, answering after `--party-delay-ms`): after
//! RESERVED it waits for one MESO_AWARDED per member, checks they add up to the meso, and only
//! then picks up, as the newer character service does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use atlas_drops::clock;
use atlas_drops::kafka::client;
use atlas_drops::kafka::context::KafkaContext;
use atlas_drops::kafka::topics::OurTopics;
use clap::{Parser, ValueEnum};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// atlas-drops answers: CREATED, RESERVED, PICKED_UP.
    Service,
    /// A relay answers: every command comes back as it was sent.
    Relay,
}

#[derive(Parser, Debug)]
#[command(
    name = "atlas-drops-load",
    about = "Load generator and relay for atlas-drops."
)]
struct Options {
    #[arg(long, env = "BOOTSTRAP_SERVERS", default_value = "localhost:9092")]
    bootstrap_servers: String,
    #[arg(long, env = "COMMAND_TOPIC_DROP", default_value = "COMMAND_TOPIC_DROP")]
    command_topic: String,
    #[arg(
        long,
        env = "EVENT_TOPIC_DROP_STATUS",
        default_value = "EVENT_TOPIC_DROP_STATUS"
    )]
    event_topic: String,
    /// Be the relay instead of the load: copy every command to the event topic until SIGINT.
    #[arg(long)]
    relay: bool,
    /// What answers the commands.
    #[arg(long, value_enum, default_value = "service")]
    target: Target,
    /// Lifecycles to run.
    #[arg(long, default_value_t = 20_000)]
    lifecycles: usize,
    /// Maps the drops are spread over.
    #[arg(long, default_value_t = 100)]
    maps: u32,
    /// Lifecycles in flight, at most.
    #[arg(long, default_value_t = 2_000)]
    window: usize,
    /// Lifecycles started a second (open loop); 0 = as fast as the window allows (closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Partitions of the topics, created when missing.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Give up waiting for answers after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Every K-th lifecycle drops meso and shares it with the picker's party (0: none does).
    #[arg(long, default_value_t = 0)]
    meso_every: usize,
    /// Members of each picker's party present by the drop, the picker included.
    #[arg(long, default_value_t = 3)]
    party_size: u32,
    /// Serve the party service here (PARTIES_SERVICE_URL=http://127.0.0.1:PORT/api/).
    #[arg(long)]
    party_port: Option<u16>,
    /// How long the party service takes to answer.
    #[arg(long, default_value_t = 1)]
    party_delay_ms: u64,
    /// A librdkafka property, KEY=VALUE (repeatable), for every client.
    #[arg(long = "kafka-cfg", value_parser = parse_property)]
    kafka_cfg: Vec<(String, String)>,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or("not KEY=VALUE")?;
    Ok((key.to_owned(), value.to_owned()))
}

impl Options {
    fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        client::layered(&self.bootstrap_servers, defaults, &self.kafka_cfg)
    }

    fn producer(&self) -> FutureProducer {
        self.client(&[
            ("linger.ms", "1"),
            ("enable.idempotence", "true"),
            ("partitioner", "murmur2_random"),
        ])
        .create()
        .expect("producer")
    }
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .init();
    let topics = OurTopics {
        admin: options.client(&[]),
        names: vec![options.command_topic.clone(), options.event_topic.clone()],
        partitions: options.partitions,
        replication: 1,
    };
    topics.ensure().await.expect("topics");
    if options.relay {
        relay(&options).await
    } else {
        load(&options).await
    }
}

/// Copies every command to the event topic, key, value and headers, until SIGINT or SIGTERM.
async fn relay(options: &Options) {
    let consumer: StreamConsumer<KafkaContext> = options
        .client(&[
            ("group.id", "atlas-drops-relay"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "3000"),
            ("heartbeat.interval.ms", "500"),
            ("fetch.wait.max.ms", "10"),
        ])
        .create_with_context(KafkaContext::default())
        .expect("consumer");
    consumer
        .subscribe(&[&options.command_topic])
        .expect("subscribe");
    let producer = options.producer();
    eprintln!(
        "relaying {} → {}",
        options.command_topic, options.event_topic
    );
    let stop = atlas_drops::shutdown::signal();
    tokio::pin!(stop);
    let mut relayed = 0u64;
    loop {
        let message = tokio::select! {
            _ = &mut stop => break,
            message = consumer.recv() => message,
        };
        let Ok(message) = message else { continue };
        let mut record = FutureRecord::<[u8], [u8]>::to(&options.event_topic);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        if let Some(headers) = message.headers() {
            record = record.headers(headers.detach());
        }
        produce(&producer, record).await;
        relayed += 1;
    }
    let _ = producer.flush(Duration::from_secs(10));
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    eprintln!("relayed {relayed} records");
}

/// Hands a record to librdkafka, waiting while its queue is full.
async fn produce(producer: &FutureProducer, mut record: FutureRecord<'_, [u8], [u8]>) {
    loop {
        match producer.send_result(record) {
            Ok(_) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((error, _)) => panic!("producing: {error}"),
        }
    }
}

/// Whether a record carries this run's tenant (the topics may hold other runs' events).
fn ours(message: &impl Message, tenant: &str) -> bool {
    message.headers().is_some_and(|headers| {
        headers
            .iter()
            .any(|h| h.key == "TENANT_ID" && h.value == Some(tenant.as_bytes()))
    })
}

fn value_of(message: &impl Message) -> Value {
    serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or(Value::Null)
}

const STEPS: [(&str, &str, &str); 3] = [
    ("SPAWN", "CREATED", "spawn → CREATED"),
    ("REQUEST_RESERVATION", "RESERVED", "reserve → RESERVED"),
    ("REQUEST_PICK_UP", "PICKED_UP", "pick-up → PICKED_UP"),
];

/// What a meso lifecycle drops: divisible by no party size, so a remainder is always left.
const MESO: u64 = 1_001;

/// The party of picker `character`: the picker and `size - 1` others, ids a million apart.
fn party_of(character: u64, size: u32) -> Vec<u64> {
    (0..u64::from(size))
        .map(|n| character + n * 1_000_000)
        .collect()
}

struct Lifecycle {
    map: u32,
    drop_id: u64,
    step: usize,
    sent_at: Instant,
    /// When the step was sent, in ms since the epoch, as Kafka stamps records.
    sent_ms: u64,
    /// A meso drop shared by the party: the awards still awaited after RESERVED.
    meso: bool,
    awards_due: u32,
    awarded: u64,
}

#[derive(Default)]
struct Tally {
    latencies: [Vec<Duration>; 3],
    /// Of each latency, the part until the answer was handed to its producer (the record's
    /// timestamp, which the producer sets): the service's share, the command's way to it
    /// included; the rest is the answer's way back.
    to_producer: [Vec<Duration>; 3],
    /// Meso lifecycles: from the reservation to its last MESO_AWARDED.
    awarded: Vec<Duration>,
    completed: usize,
    duplicate: usize,
    unexpected: usize,
    /// Meso lifecycles whose awards did not add up to the meso.
    misawarded: usize,
}

struct Load<'a> {
    options: &'a Options,
    producer: FutureProducer,
    headers: OwnedHeaders,
    lifecycles: Vec<Lifecycle>,
    /// Transaction id of a command awaiting its answer → (lifecycle, step).
    awaiting: HashMap<Uuid, (usize, usize)>,
    tally: Tally,
}

impl Load<'_> {
    async fn send(&mut self, index: usize) {
        let lifecycle = &mut self.lifecycles[index];
        let transaction = Uuid::new_v4();
        let (kind, _, _) = STEPS[lifecycle.step];
        let body = match lifecycle.step {
            0 if lifecycle.meso => {
                json!({"itemId": 0, "quantity": 0, "mesos": MESO, "dropType": 2, "x": 0, "y": 0,
                        "dropperId": 9_300_018, "mod": 1})
            }
            0 => {
                json!({"itemId": 2_000_000, "quantity": 1, "mesos": 0, "dropType": 2, "x": 0, "y": 0,
                        "dropperId": 9_300_018, "mod": 1})
            }
            1 => {
                json!({"dropId": lifecycle.drop_id, "characterId": index + 1, "characterX": 0, "characterY": 0, "petSlot": -1})
            }
            _ => json!({"dropId": lifecycle.drop_id, "characterId": index + 1}),
        };
        let command = json!({"transactionId": transaction, "worldId": 0, "channelId": 1,
                             "mapId": lifecycle.map, "type": kind, "body": body});
        // As the peers key them: the channel service by drop id, the others by map id.
        let key = if lifecycle.step == 1 {
            lifecycle.drop_id as u32
        } else {
            lifecycle.map
        };
        let key = key.to_be_bytes();
        let value = serde_json::to_vec(&command).expect("JSON");
        lifecycle.sent_at = Instant::now();
        lifecycle.sent_ms = clock::now().0;
        self.awaiting.insert(transaction, (index, lifecycle.step));
        let record = FutureRecord::to(&self.options.command_topic)
            .key(&key[..])
            .payload(&value[..])
            .headers(self.headers.clone());
        produce(&self.producer, record).await;
    }

    /// Takes one event, produced at `produced_ms` (its record's timestamp); sends the
    /// lifecycle's next step when it is the awaited answer.
    async fn answer(&mut self, event: &Value, produced_ms: Option<i64>) {
        let Some(transaction) = event["transactionId"]
            .as_str()
            .and_then(|t| Uuid::parse_str(t).ok())
        else {
            self.tally.unexpected += 1;
            return;
        };
        if event["type"] == "MESO_AWARDED" {
            return self.awarded(transaction, event).await;
        }
        let Some((index, step)) = self.awaiting.remove(&transaction) else {
            self.tally.duplicate += 1;
            return;
        };
        let (command, answer, _) = STEPS[step];
        let expected = match self.options.target {
            Target::Service => answer,
            Target::Relay => command,
        };
        if event["type"] != expected {
            self.tally.unexpected += 1;
            return;
        }
        let lifecycle = &mut self.lifecycles[index];
        self.tally.latencies[step].push(lifecycle.sent_at.elapsed());
        if let Some(produced_ms) = produced_ms {
            let produced_ms = u64::try_from(produced_ms).unwrap_or_default();
            let share = produced_ms.saturating_sub(lifecycle.sent_ms);
            self.tally.to_producer[step].push(Duration::from_millis(share));
        }
        if step == 0 {
            lifecycle.drop_id = match self.options.target {
                Target::Service => event["dropId"].as_u64().unwrap_or_default(),
                Target::Relay => 1_000_000_001 + index as u64,
            };
        }
        lifecycle.step += 1;
        if lifecycle.step == STEPS.len() {
            self.tally.completed += 1;
        } else if lifecycle.step == 2 && lifecycle.meso {
            // Picked up once the party's awards are in, as the newer character service does.
            lifecycle.awards_due = self.options.party_size;
            self.awaiting.insert(transaction, (index, step));
        } else {
            self.send(index).await;
        }
    }

    /// Takes a `MESO_AWARDED` of a meso lifecycle's reservation; once all came, picks up.
    async fn awarded(&mut self, transaction: Uuid, event: &Value) {
        let Some(&(index, 1)) = self.awaiting.get(&transaction) else {
            self.tally.duplicate += 1;
            return;
        };
        let lifecycle = &mut self.lifecycles[index];
        if lifecycle.awards_due == 0 {
            // An award before its RESERVED: out of order.
            self.tally.unexpected += 1;
            return;
        }
        lifecycle.awards_due -= 1;
        lifecycle.awarded += event["body"]["amount"].as_u64().unwrap_or_default();
        if lifecycle.awards_due > 0 {
            return;
        }
        self.awaiting.remove(&transaction);
        self.tally.awarded.push(lifecycle.sent_at.elapsed());
        if lifecycle.awarded != MESO {
            self.tally.misawarded += 1;
        }
        self.send(index).await;
    }
}

async fn load(options: &Options) {
    let tenant = Uuid::new_v4().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "TENANT_ID",
            value: Some(tenant.as_str()),
        })
        .insert(Header {
            key: "REGION",
            value: Some("GMS"),
        })
        .insert(Header {
            key: "MAJOR_VERSION",
            value: Some(&83u16.to_be_bytes()[..]),
        })
        .insert(Header {
            key: "MINOR_VERSION",
            value: Some(&1u16.to_be_bytes()[..]),
        });
    let consumer: StreamConsumer = options
        .client(&[
            ("group.id", "atlas-drops-load"),
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "10"),
            // Should a fetch be "out of range", the default reset (latest) would skip events;
            // earliest reads them again instead (they count as duplicates, not as missing).
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..options.partitions {
        assignment
            .add_partition_offset(&options.event_topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");

    let mut load = Load {
        options,
        producer: options.producer(),
        headers,
        lifecycles: Vec::with_capacity(options.lifecycles),
        awaiting: HashMap::new(),
        tally: Tally::default(),
    };
    if let Some(port) = options.party_port {
        tokio::spawn(party_service(
            port,
            options.maps,
            options.party_size,
            options.party_delay_ms,
        ));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.timeout_s);
    let interval = (options.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / options.rate));
    let mut ticks = tokio::time::interval(interval.unwrap_or(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while load.lifecycles.len() < options.lifecycles || !load.awaiting.is_empty() {
        let in_flight = load.awaiting.len();
        let may_start = load.lifecycles.len() < options.lifecycles && in_flight < options.window;
        tokio::select! {
            _ = ticks.tick(), if may_start => {
                // Closed loop: fill the window; open loop: one lifecycle a tick.
                let starts = if interval.is_some() { 1 } else { options.window - in_flight };
                for _ in 0..starts.min(options.lifecycles - load.lifecycles.len()) {
                    let index = load.lifecycles.len();
                    load.lifecycles.push(Lifecycle {
                        map: map_of(index, options.maps),
                        drop_id: 0,
                        step: 0,
                        sent_at: Instant::now(),
                        sent_ms: 0,
                        meso: options.meso_every > 0 && index.is_multiple_of(options.meso_every),
                        awards_due: 0,
                        awarded: 0,
                    });
                    load.send(index).await;
                }
            }
            message = consumer.recv() => {
                match message {
                    Ok(message) if ours(&message, &tenant) => load.answer(&value_of(&message), message.timestamp().to_millis()).await,
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => break,
        }
    }
    let elapsed = started.elapsed();
    // A short grace to see duplicates that come after the last answer.
    let grace = Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(message)) = tokio::time::timeout_at(grace.into(), consumer.recv()).await {
        if ours(&message, &tenant) {
            load.answer(&value_of(&message), message.timestamp().to_millis())
                .await;
        }
    }
    report(
        options,
        &load.tally,
        load.lifecycles.len() - load.tally.completed,
        elapsed,
    );
    // Which lifecycles stopped where, so that a missing answer can be traced.
    let stuck = load.lifecycles.iter().enumerate();
    let stuck = stuck.filter(|(_, lifecycle)| lifecycle.step < STEPS.len());
    for (index, lifecycle) in stuck.take(5) {
        let (_, _, awaited) = match lifecycle.awards_due {
            0 => STEPS[lifecycle.step],
            _ => ("", "", "reserve → MESO_AWARDED"),
        };
        println!(
            "incomplete: lifecycle {index} map {} drop {} awaiting {awaited}",
            lifecycle.map, lifecycle.drop_id
        );
    }
}

/// Where lifecycle `index` drops: its map (its picker, `index + 1`, stands there too).
fn map_of(index: usize, maps: u32) -> u32 {
    100_000_000 + (index as u32 % maps)
}

/// The party service as the newer Atlas serves it (contract-head §4): every picker is in a
/// party of `size` members, all online by the picker's drop.
async fn party_service(port: u16, maps: u32, size: u32, delay_ms: u64) {
    use axum::extract::Query;
    let answer = move |Query(query): Query<HashMap<String, String>>| async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let picker: u64 = (query
            .get("filter[members.id]")
            .and_then(|id| id.parse().ok()))
        .unwrap_or_default();
        let map = map_of(picker.saturating_sub(1) as usize, maps);
        let members = party_of(picker, size);
        let named: Vec<Value> = (members.iter())
            .map(|id| json!({"type": "members", "id": id.to_string()}))
            .collect();
        let included: Vec<Value> = (members.iter())
            .map(|id| {
                json!({"type": "members", "id": id.to_string(), "attributes": {
                "worldId": 0, "channelId": 1, "mapId": map,
                "instance": "00000000-0000-0000-0000-000000000000", "online": true}})
            })
            .collect();
        let document = json!({"data": [{"type": "parties", "id": "1",
            "relationships": {"members": {"data": named}}}], "included": included});
        let json = [(axum::http::header::CONTENT_TYPE, "application/vnd.api+json")];
        (json, document.to_string())
    };
    let app = axum::Router::new().route("/api/parties", axum::routing::get(answer));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the party service's port");
    axum::serve(listener, app).await.expect("the party service");
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank].as_secs_f64() * 1000.0
}

fn report(options: &Options, tally: &Tally, missing: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let commands = tally.latencies.iter().map(Vec::len).sum::<usize>();
    println!(
        "target={:?} rate={} window={} lifecycles={} completed={} elapsed={seconds:.2}s",
        options.target, options.rate, options.window, options.lifecycles, tally.completed
    );
    println!(
        "throughput: {:.0} lifecycles/s, {:.0} commands/s",
        tally.completed as f64 / seconds,
        commands as f64 / seconds
    );
    for (step, (_, _, name)) in STEPS.iter().enumerate() {
        let mut sorted = tally.latencies[step].clone();
        sorted.sort();
        println!(
            "latency {name:<22} ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (n={})",
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
            percentile(&sorted, 100.0),
            sorted.len()
        );
        let mut sorted = tally.to_producer[step].clone();
        sorted.sort();
        if !sorted.is_empty() {
            println!(
                "  of which to its producer ms: p50 {:.0}  p90 {:.0}  p99 {:.0}  (record timestamps, ms resolution)",
                percentile(&sorted, 50.0),
                percentile(&sorted, 90.0),
                percentile(&sorted, 99.0),
            );
        }
    }
    if !tally.awarded.is_empty() {
        let mut sorted = tally.awarded.clone();
        sorted.sort();
        println!(
            "latency {:<22} ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (n={})",
            "reserve → MESO_AWARDED",
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
            percentile(&sorted, 100.0),
            sorted.len()
        );
    }
    println!(
        "anomalies: missing={missing} duplicate={} unexpected={} misawarded={}",
        tally.duplicate, tally.unexpected, tally.misawarded
    );
}
