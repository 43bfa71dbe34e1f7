//! The outbox relay. A shared store writes each event, in the same atomic step as the state
//! change that caused it, to an outbox stream in Redis (one of `OUTBOX_SHARDS`, chosen by drop
//! id). This relay sends the entries to the event topic in stream order and deletes each once
//! the broker acknowledged it: an instance killed at any moment loses no event, and a drop's
//! events keep the order of its state changes, whichever instance made them.
//!
//! One instance relays a stream at a time: it holds the stream's lease, renewed every second
//! and expiring `LEASE` after its holder dies, when another instance takes the stream over
//! from its first entry. A relay killed between handing entries to the broker and deleting them
//! leaves entries that may be on the topic already; before sending, it wrote down the last of
//! them and, per partition, the last offset the broker acknowledged for the stream. The relay
//! taking over reads the topic from there and deletes the entries it finds, so that an event
//! reaches the topic once, not twice.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use redis::{Connection, RedisError, RedisResult, Script};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::message::event::{encode_headers, encode_key, encode_value};
use super::producer::{broker_answer, enqueue_blocking, DeliveryError, Producers};
use super::topics::OurTopics;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::redis::{self as redis_store, decode_event, Keys, OUTBOX_FIELD, OUTBOX_SHARDS};

/// The field of an outbox entry written by versions before the store's own event format
/// (`OUTBOX_FIELD`): the Kafka record itself (see `decode_record`). Still read, so that an
/// upgrade loses none of the entries waiting.
const LEGACY_FIELD: &str = "r";
/// How long a relay's hold on a stream lasts unless renewed.
const LEASE: Duration = Duration::from_secs(3);
/// How often leases are renewed, and free streams claimed.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// How long one read waits for new entries, with nothing in flight.
const READ_WAIT_MS: usize = 20;
/// Entries read at a time from each stream.
const BATCH: usize = 512;
/// How long a failed relay waits, at most, for the events in flight to land before taking its
/// streams up again.
const LAND_WAIT: Duration = Duration::from_secs(5);
/// How long one read waits for new entries with events in flight, whose answers are then taken
/// (and the entries acknowledged deleted).
const ANSWER_WAIT_MS: usize = 5;
/// Pause after a failure of Redis or of a delivery.
const PAUSE: Duration = Duration::from_millis(200);
/// How long asking the broker for the event topic's partitions may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Reading the topic for what a dead relay sent stops after this long at the latest, for a
/// broker that never tells a partition's end (the leases held are renewed meanwhile).
const READ_LIMIT: Duration = Duration::from_secs(10);
/// The field of `Keys::outbox_sent` naming the last entry handed to the broker.
const THROUGH: &str = "through";

/// Takes the stream for `ARGV[1]` if free, or renews it if held: 1 when held now, else 0.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Gives the stream up, if still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The Kafka record an outbox entry goes out as: the event as `kafka::message` encodes it;
/// an entry of an earlier version as it was written. `None`: unreadable.
fn record_of(fields: &[(String, Vec<u8>)]) -> Option<OutboxRecord> {
    let (name, bytes) = fields.first()?;
    if name == LEGACY_FIELD {
        return decode_record(bytes);
    }
    if name != OUTBOX_FIELD {
        return None;
    }
    let event = decode_event(bytes)
        .inspect_err(|error| tracing::error!(%error, "outbox relay: unreadable entry"))
        .ok()?;
    Some(OutboxRecord {
        key: encode_key(event.drop_id).to_vec(),
        value: encode_value(&event),
        headers: encode_headers(&event),
    })
}

/// Key, value and headers, each length-prefixed (u32 big-endian; header names u16), as
/// versions before `OUTBOX_FIELD` wrote them.
#[cfg(test)]
fn encode_record(key: &[u8], value: &[u8], headers: &OwnedHeaders) -> Vec<u8> {
    use rdkafka::message::Headers;
    let mut bytes = Vec::with_capacity(key.len() + value.len() + 128);
    let mut put = |part: &[u8]| {
        bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
        bytes.extend_from_slice(part);
    };
    put(key);
    put(value);
    for header in headers.iter() {
        put(header.key.as_bytes());
        put(header.value.unwrap_or_default());
    }
    bytes
}

struct OutboxRecord {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: OwnedHeaders,
}

fn decode_record(mut bytes: &[u8]) -> Option<OutboxRecord> {
    let mut take = || -> Option<Vec<u8>> {
        let (length, rest) = bytes.split_first_chunk::<4>()?;
        let length = u32::from_be_bytes(*length) as usize;
        let part = rest.get(..length)?.to_vec();
        bytes = &rest[length..];
        Some(part)
    };
    let key = take()?;
    let value = take()?;
    let mut headers = OwnedHeaders::new();
    while let Some(name) = take() {
        let value = take()?;
        headers = headers.insert(Header {
            key: std::str::from_utf8(&name).ok()?,
            value: Some(&value),
        });
    }
    Some(OutboxRecord {
        key,
        value,
        headers,
    })
}

/// A record's key and value bytes.
type KeyAndValue = (Vec<u8>, Vec<u8>);

/// Outbox entries as Redis gives them: (id, [(field, value)]).
type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;

/// Why a round of the relay failed: its streams are then taken up afresh.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("event not delivered: {0}")]
    Delivery(DeliveryError),
    #[error("reading the event topic: {0}")]
    ReadingTopic(#[from] KafkaError),
}

/// What the relay needs to run.
pub struct Relay {
    pub redis_url: String,
    pub keys: Keys,
    /// The producer to send with, replaced when it breaks for good (the streams are then taken
    /// up afresh, as after any failed round: what the broker holds already is not sent again).
    pub producers: Arc<Producers>,
    pub metrics: Arc<Metrics>,
    pub topic: String,
    /// Created again when the broker says they are missing.
    pub ours: OurTopics,
    /// Names this instance in the leases.
    pub instance: String,
    /// Reads the event topic when a stream is taken over (`client::reader`).
    pub reader: ClientConfig,
}

impl Relay {
    /// Runs on a thread of its own (Redis calls block) until `stop`, then relays what is left
    /// in its streams and gives them up.
    pub fn start(self, stop: Shutdown) -> JoinHandle<()> {
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || self.run(&stop, &runtime))
    }

    fn run(self, stop: &Shutdown, runtime: &Handle) {
        let client = match redis_store::client(&self.redis_url) {
            Ok(client) => client,
            Err(error) => return tracing::error!(%error, "outbox relay"),
        };
        let claim = Script::new(CLAIM);
        let mut connection: Option<Connection> = None;
        let mut held: BTreeMap<u32, Stream> = BTreeMap::new();
        let mut claimed_at: Option<Instant> = None;
        loop {
            let stopping = stop.is_triggered();
            let round = (|| -> Result<bool, RelayError> {
                let connection = match &mut connection {
                    Some(connection) => connection,
                    None => connection.insert(client.get_connection()?),
                };
                if claimed_at.is_none_or(|at| at.elapsed() >= CLAIM_EVERY) {
                    self.claim(connection, &claim, &mut held)?;
                    claimed_at = Some(Instant::now());
                }
                if held.is_empty() {
                    std::thread::sleep(CLAIM_EVERY / 4);
                    return Ok(false);
                }
                self.relay_round(connection, runtime, &mut held)
            })();
            match round {
                Ok(false) if stopping => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "outbox relay: failed; its streams are taken up afresh");
                    // What was in flight may or may not be on the topic: let it land, then take
                    // the streams up again (as after a takeover), which sends what is not there.
                    let deadline = tokio::time::Instant::now() + LAND_WAIT;
                    for (_, sent) in held.values_mut().flat_map(|stream| &mut stream.in_flight) {
                        if let Sent::Waiting(delivery) = sent {
                            let _ = runtime.block_on(tokio::time::timeout_at(deadline, delivery));
                        }
                    }
                    held.clear();
                    claimed_at = None;
                    connection = None;
                    std::thread::sleep(PAUSE);
                }
            }
        }
        if let Some(connection) = &mut connection {
            for &shard in held.keys() {
                let released = Script::new(RELEASE)
                    .key(self.keys.outbox_relay(shard))
                    .arg(&self.instance)
                    .invoke::<i64>(connection);
                if let Err(error) = released {
                    tracing::warn!(%error, shard, "outbox relay: lease not released");
                }
            }
        }
    }

    /// Renews the leases held, then takes the free ones. A stream newly taken is read from its
    /// first entry, which may hold what a dead relay left (see `recover`); the leases held are
    /// renewed again after each such recovery, so none lapses while the topic is read.
    fn claim(
        &self,
        connection: &mut Connection,
        claim: &Script,
        held: &mut BTreeMap<u32, Stream>,
    ) -> Result<(), RelayError> {
        self.renew(connection, claim, held)?;
        for shard in 0..OUTBOX_SHARDS {
            if held.contains_key(&shard) || !self.take(connection, claim, shard)? {
                continue;
            }
            // Held from here: its lease is renewed with the others while the topic is read.
            held.insert(shard, Stream::default());
            self.recover(connection, claim, held, shard)?;
            self.renew(connection, claim, held)?;
            if held.contains_key(&shard) {
                tracing::info!(shard, "outbox relay: relaying a stream");
            }
        }
        Ok(())
    }

    /// Renews the lease of every stream held; forgets those another instance holds now.
    fn renew(
        &self,
        connection: &mut Connection,
        claim: &Script,
        held: &mut BTreeMap<u32, Stream>,
    ) -> RedisResult<()> {
        let shards: Vec<u32> = held.keys().copied().collect();
        for shard in shards {
            if !self.take(connection, claim, shard)? {
                held.remove(&shard);
                tracing::warn!(shard, "outbox relay: lease lost to another instance");
            }
        }
        Ok(())
    }

    /// Takes or renews a stream's lease: whether this relay holds it now.
    fn take(&self, connection: &mut Connection, claim: &Script, shard: u32) -> RedisResult<bool> {
        let holds: i64 = claim
            .key(self.keys.outbox_relay(shard))
            .arg(&self.instance)
            .arg(LEASE.as_millis() as u64)
            .invoke(connection)?;
        Ok(holds == 1)
    }

    /// Deletes the entries a previous relay of the stream handed to the broker and the broker
    /// took: they are on the topic already. The others stay, to be sent. The leases `held` are
    /// renewed while the topic is read.
    fn recover(
        &self,
        connection: &mut Connection,
        claim: &Script,
        held: &mut BTreeMap<u32, Stream>,
        shard: u32,
    ) -> Result<(), RelayError> {
        let sent: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.outbox_sent(shard))
            .query(connection)?;
        let Some(through) = sent.get(THROUGH) else {
            return Ok(());
        };
        let stream = self.keys.outbox(shard);
        let maybe_sent: Entries = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg(through)
            .query(connection)?;
        if maybe_sent.is_empty() {
            return Ok(());
        }
        let acknowledged: HashMap<i32, i64> = sent
            .iter()
            .filter_map(|(field, offset)| {
                Some((field.strip_prefix('p')?.parse().ok()?, offset.parse().ok()?))
            })
            .collect();
        let record_of =
            |fields: &Vec<(String, Vec<u8>)>| record_of(fields).map(|r| (r.key, r.value));
        let mut wanted: HashMap<KeyAndValue, usize> = HashMap::new();
        for (_, fields) in &maybe_sent {
            if let Some(record) = record_of(fields) {
                *wanted.entry(record).or_default() += 1;
            }
        }
        let mut on_topic = self.find_on_topic(&acknowledged, wanted, &mut || {
            self.renew(connection, claim, held)
        })?;
        let delivered: Vec<&str> = maybe_sent
            .iter()
            .filter(|(_, fields)| {
                record_of(fields).is_some_and(|record| {
                    // Each copy found accounts for one entry: identical events stay distinct.
                    let copies = on_topic.entry(record).or_default();
                    let found = *copies > 0;
                    *copies = copies.saturating_sub(1);
                    found
                })
            })
            .map(|(id, _)| id.as_str())
            .collect();
        tracing::info!(
            shard,
            maybe_sent = maybe_sent.len(),
            already_on_topic = delivered.len(),
            "outbox relay: took over a stream a relay left while sending"
        );
        if !delivered.is_empty() {
            redis::cmd("XDEL")
                .arg(stream)
                .arg(&delivered)
                .query::<()>(connection)?;
        }
        Ok(())
    }

    /// Which of the `wanted` records (key and value, with how many copies) the event topic holds
    /// after the given offsets (from the start of a partition not named). Stops early once
    /// everything wanted was found; what is not found is sent again. `keep_leases` is called
    /// every `CLAIM_EVERY` while reading.
    ///
    /// A partition is read through when the reader reaches its end (`PartitionEOF`, which
    /// follows the high watermark of the fetch answers: right on Tansu, whose `ListOffsets`
    /// answers a stale one) or shows a record created since the reading began (every record a
    /// dead relay sent is older). Not by a quiet spell: a reader's first fetch may come later
    /// than any spell short enough to wait for on a busy machine, and an event then not seen
    /// on the topic would be sent twice. A partition whose end lies below the offset it is read
    /// from (its log started again: a broker that lost its state) is read from its start: the
    /// reader would otherwise wait there for ever, told neither an end nor an error.
    fn find_on_topic(
        &self,
        acknowledged: &HashMap<i32, i64>,
        mut wanted: HashMap<KeyAndValue, usize>,
        keep_leases: &mut dyn FnMut() -> RedisResult<()>,
    ) -> Result<HashMap<KeyAndValue, usize>, RelayError> {
        let began = now_millis() as i64;
        let reader: BaseConsumer = self
            .reader
            .clone()
            .set("enable.partition.eof", "true")
            .create()?;
        let metadata = reader.fetch_metadata(Some(&self.topic), READ_TIMEOUT)?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |topic| topic.partitions().len()) as i32;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let from = acknowledged
                .get(&partition)
                .map_or(Offset::Beginning, |offset| Offset::Offset(offset + 1));
            assignment.add_partition_offset(&self.topic, partition, from)?;
        }
        reader.assign(&assignment)?;
        // The partitions not read through yet.
        let mut reading: HashSet<i32> = (0..partitions).collect();
        // Partitions read from an offset, until a fetch answer said the offset is in their log.
        let mut unchecked: HashMap<i32, i64> = acknowledged
            .iter()
            .filter(|(partition, _)| reading.contains(partition))
            .map(|(&partition, &offset)| (partition, offset + 1))
            .collect();
        let topic = CString::new(self.topic.as_str()).expect("a topic name holds no NUL");
        let mut found: HashMap<KeyAndValue, usize> = HashMap::new();
        let started = Instant::now();
        let mut renewed = Instant::now();
        while !reading.is_empty() && wanted.values().any(|&copies| copies > 0) {
            if started.elapsed() > READ_LIMIT {
                tracing::warn!("outbox relay: the event topic was not read through in time; what was not found is sent again");
                self.metrics.outbox_takeover_unread();
                break;
            }
            if renewed.elapsed() >= CLAIM_EVERY {
                keep_leases()?;
                renewed = Instant::now();
            }
            unchecked.retain(|&partition, &mut from| {
                let Some(end) = fetched_high_watermark(&reader, &topic, partition) else {
                    return true;
                };
                if end < from {
                    tracing::warn!(partition, from, end, "outbox relay: the event topic's partition ends below the offset last acknowledged (its log started again): read from its start");
                    if let Err(error) =
                        reader.seek(&self.topic, partition, Offset::Beginning, READ_TIMEOUT)
                    {
                        tracing::warn!(%error, partition, "outbox relay: reading the event topic");
                        reading.remove(&partition);
                    }
                }
                false
            });
            let message = match reader.poll(Duration::from_millis(20)) {
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    reading.remove(&partition);
                    continue;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "outbox relay: reading the event topic");
                    continue;
                }
                None => continue,
            };
            if message
                .timestamp()
                .to_millis()
                .is_some_and(|at| at >= began)
            {
                reading.remove(&message.partition());
                continue;
            }
            let record = (
                message.key().unwrap_or_default().to_vec(),
                message.payload().unwrap_or_default().to_vec(),
            );
            if let Some(copies) = wanted.get_mut(&record).filter(|copies| **copies > 0) {
                *copies -= 1;
                *found.entry(record).or_default() += 1;
            }
        }
        Ok(found)
    }

    /// One round of the relay: hands the entries that came since the last round to the
    /// producer (without waiting for the broker, so entries flow while earlier ones are in
    /// flight), then deletes those the broker acknowledged, oldest first. Returns whether
    /// anything was read or is still in flight.
    fn relay_round(
        &self,
        connection: &mut Connection,
        runtime: &Handle,
        held: &mut BTreeMap<u32, Stream>,
    ) -> Result<bool, RelayError> {
        // The read returns as soon as an entry comes: an event waits for no answer of the broker.
        let idle = held.values().all(|stream| stream.in_flight.is_empty());
        let wait = if idle { READ_WAIT_MS } else { ANSWER_WAIT_MS };
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT").arg(BATCH).arg("BLOCK").arg(wait);
        read.arg("STREAMS");
        for &shard in held.keys() {
            read.arg(self.keys.outbox(shard));
        }
        for stream in held.values() {
            read.arg(&stream.read_from);
        }
        let read: Vec<(String, Entries)> = read.query::<Option<_>>(connection)?.unwrap_or_default();
        let streams: Vec<(u32, Entries)> = read
            .into_iter()
            .map(|(name, entries)| {
                let shard = (0..OUTBOX_SHARDS)
                    .find(|&shard| self.keys.outbox(shard) == name)
                    .expect("XREAD answers for the streams asked");
                (shard, entries)
            })
            .collect();
        if !streams.is_empty() {
            // Written down before sending: a relay taking over after a crash must know what
            // may be on the topic already.
            let mut through = redis::pipe();
            for (shard, entries) in &streams {
                let (last, _) = entries.last().expect("XREAD answers no empty stream");
                through
                    .hset(self.keys.outbox_sent(*shard), THROUGH, last)
                    .ignore();
            }
            through.query::<()>(connection)?;
        }
        let read_any = !streams.is_empty();
        let sending = self.producers.current();
        for (shard, entries) in streams {
            let stream = held.get_mut(&shard).expect("read from held streams only");
            for (id, fields) in entries {
                let record = record_of(&fields);
                let sent = match record {
                    Some(record) => {
                        let record = FutureRecord::to(&self.topic)
                            .key(&record.key[..])
                            .payload(&record.value[..])
                            .headers(record.headers);
                        match enqueue_blocking(&sending.producer, record) {
                            Ok(queued) => {
                                if let Some(written) = entry_millis(&id) {
                                    let waited = now_millis().saturating_sub(written);
                                    self.metrics.outbox_wait(Duration::from_millis(waited));
                                }
                                Sent::Waiting(queued)
                            }
                            Err(error) => match DeliveryError::of(&error) {
                                DeliveryError::Undeliverable(reason) => {
                                    Sent::Answered(Err(DeliveryError::Undeliverable(reason)))
                                }
                                error => {
                                    return Err(self.failed(runtime, sending.generation, error))
                                }
                            },
                        }
                    }
                    None => {
                        tracing::error!(shard, id, "outbox relay: unreadable entry dropped");
                        Sent::Unreadable
                    }
                };
                stream.read_from.clone_from(&id);
                stream.in_flight.push_back((id, sent));
            }
        }
        let mut finish = redis::pipe();
        finish.atomic();
        for (&shard, stream) in held.iter_mut() {
            let mut acknowledged = Vec::new();
            let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
            while let Some((_, sent)) = stream.in_flight.front_mut() {
                let answer = match sent {
                    Sent::Waiting(delivery) => match delivery.now_or_never() {
                        Some(answer) => Some(broker_answer(answer)),
                        None => break,
                    },
                    Sent::Answered(answer) => Some(answer.clone()),
                    Sent::Unreadable => None,
                };
                let (id, _) = stream.in_flight.front().expect("front exists");
                match answer {
                    Some(Ok((partition, offset))) => {
                        let highest = offsets.entry(partition).or_insert(offset);
                        *highest = offset.max(*highest);
                    }
                    Some(Err(DeliveryError::Undeliverable(reason))) => {
                        // Sending it again would be refused again: it must not hold up the stream.
                        tracing::error!(shard, id, %reason, "outbox relay: the broker refuses this event for good; deleted unsent");
                        self.metrics.undeliverable();
                    }
                    Some(Err(error)) => {
                        return Err(self.failed(runtime, sending.generation, error))
                    }
                    None => {}
                }
                let (id, _) = stream.in_flight.pop_front().expect("front exists");
                acknowledged.push(id);
            }
            if acknowledged.is_empty() {
                continue;
            }
            finish
                .cmd("XDEL")
                .arg(self.keys.outbox(shard))
                .arg(&acknowledged)
                .ignore();
            for (partition, offset) in offsets {
                let field = format!("p{partition}");
                finish
                    .hset(self.keys.outbox_sent(shard), field, offset)
                    .ignore();
            }
        }
        if !finish.is_empty() {
            finish.query::<()>(connection)?;
        }
        Ok(read_any || held.values().any(|stream| !stream.in_flight.is_empty()))
    }
}

/// The high watermark of a partition as the reader's last fetch answer gave it (`None`:
/// none answered yet). rdkafka wraps only the broker query (`fetch_watermarks`), which Tansu
/// answers stale; librdkafka keeps the fetch answers' own.
fn fetched_high_watermark(reader: &BaseConsumer, topic: &CStr, partition: i32) -> Option<i64> {
    let (mut low, mut high) = (0, 0);
    // SAFETY: the client lives as long as `reader`; `topic` is NUL-terminated; librdkafka
    // only writes `low` and `high`.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            reader.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// A held outbox stream.
struct Stream {
    /// The last entry handed to the producer: the next read starts after it.
    read_from: String,
    /// Entries handed to the producer, oldest first, with the broker's answer.
    in_flight: VecDeque<(String, Sent)>,
}

/// Now, in ms since the epoch, as Redis dates outbox entries.
fn now_millis() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |since| since.as_millis() as u64)
}

/// The time of an outbox entry by its id (`<ms>-<sequence>`), `None` when unreadable.
fn entry_millis(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// An outbox entry the relay took.
enum Sent {
    /// Handed to the producer; the broker's answer is to come.
    Waiting(DeliveryFuture),
    /// The broker answered: (partition, offset), or why the record is not there.
    Answered(Result<(i32, i64), DeliveryError>),
    /// Not a record we wrote: logged, and deleted in its turn.
    Unreadable,
}

impl Default for Stream {
    /// Taken up from its first entry.
    fn default() -> Stream {
        Stream {
            read_from: "0-0".to_owned(),
            in_flight: VecDeque::new(),
        }
    }
}

impl Relay {
    /// The round's error for a delivery that failed; a broken producer is replaced first, and
    /// missing topics are created again.
    fn failed(&self, runtime: &Handle, generation: u64, error: DeliveryError) -> RelayError {
        match &error {
            DeliveryError::Fatal(_) => {
                self.producers.replace(generation);
            }
            DeliveryError::MissingTopic(_) => {
                if let Err(error) = runtime.block_on(self.ours.ensure()) {
                    tracing::warn!(%error, "outbox relay: the missing topics could not be created");
                }
            }
            DeliveryError::Undeliverable(_) | DeliveryError::Failed(_) => {}
        }
        RelayError::Delivery(error)
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    /// An entry an earlier version wrote goes out as it was written.
    #[test]
    fn legacy_records_come_back_as_they_went_in() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "TENANT_ID",
                value: Some("6b4e8a5c-0000-4000-8000-000000000001"),
            })
            .insert(Header {
                key: "MAJOR_VERSION",
                value: Some(&83u16.to_be_bytes()[..]),
            });
        let bytes = encode_record(&[2, 0xca, 0x9a, 0x3b, 0, 0, 0, 0], b"{\"a\":1}", &headers);
        let record = decode_record(&bytes).expect("decodes");
        assert_eq!(record.key, [2, 0xca, 0x9a, 0x3b, 0, 0, 0, 0]);
        assert_eq!(record.value, b"{\"a\":1}");
        let decoded: Vec<(String, Vec<u8>)> = record
            .headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(
            decoded,
            [
                (
                    "TENANT_ID".to_owned(),
                    b"6b4e8a5c-0000-4000-8000-000000000001".to_vec()
                ),
                ("MAJOR_VERSION".to_owned(), vec![0, 83]),
            ]
        );
        assert!(decode_record(&bytes[..bytes.len() - 1]).is_none());
    }
}
