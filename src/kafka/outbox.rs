//! The outbox relay. A shared store writes each event, in the same atomic step as the state
//! change that caused it, to an outbox stream in Redis (one of `OUTBOX_SHARDS`, chosen by drop
//! id). This relay sends the entries to the event topic in stream order and deletes each once
//! the broker acknowledged it: an instance killed at any moment loses no event, and a drop's
//! events keep the order of its state changes, whichever instance made them.
//!
//! One instance relays a stream at a time: it holds the stream's lease, renewed every second
//! and expiring `LEASE` after its holder dies, when another instance takes the stream over
//! from its first entry. An event the broker acknowledged just before its relay died, and which
//! was not yet deleted, is sent again: the wire may see an event twice (identical), never lose it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use redis::{Commands, Connection, RedisResult, Script};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::message::event::{encode_key, encode_value};
use super::message::headers::event_headers;
use super::producer::{acknowledged, enqueue_blocking, EventProducer};
use crate::drop::event::Event;
use crate::shutdown::Shutdown;
use crate::store::redis::{Keys, OUTBOX_SHARDS};

/// The one field of an outbox entry: the Kafka record (see `encode_record`).
const FIELD: &str = "r";
/// How long a relay's hold on a stream lasts unless renewed.
const LEASE: Duration = Duration::from_secs(3);
/// How often leases are renewed, and free streams claimed.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// How long one read waits for new entries.
const READ_WAIT_MS: usize = 20;
/// Entries read at a time from each stream.
const BATCH: usize = 512;
/// Pause after a failure of Redis or of a delivery.
const PAUSE: Duration = Duration::from_millis(200);

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

/// The outbox entry of an event: its Kafka record exactly as it will go on the wire.
pub fn entry(event: &Event) -> [(&'static str, Vec<u8>); 1] {
    let headers = event_headers(&event.tenant, &event.correlation);
    let record = encode_record(&encode_key(event.drop_id), &encode_value(event), &headers);
    [(FIELD, record)]
}

/// Key, value and headers, each length-prefixed (u32 big-endian; header names u16).
fn encode_record(key: &[u8], value: &[u8], headers: &OwnedHeaders) -> Vec<u8> {
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

/// What the relay needs to run.
pub struct Relay {
    pub redis_url: String,
    pub keys: Keys,
    pub producer: EventProducer,
    pub topic: String,
    /// Names this instance in the leases.
    pub instance: String,
}

impl Relay {
    /// Runs on a thread of its own (Redis calls block) until `stop`, then relays what is left
    /// in its streams and gives them up.
    pub fn start(self, stop: Shutdown) -> JoinHandle<()> {
        let runtime = Handle::current();
        tokio::task::spawn_blocking(move || self.run(&stop, &runtime))
    }

    fn run(self, stop: &Shutdown, runtime: &Handle) {
        let client = match redis::Client::open(self.redis_url.as_str()) {
            Ok(client) => client,
            Err(error) => return tracing::error!(%error, "outbox relay: REDIS_URL"),
        };
        let claim = Script::new(CLAIM);
        let mut connection: Option<Connection> = None;
        // Stream shard → the last entry id relayed.
        let mut held: BTreeMap<u32, String> = BTreeMap::new();
        let mut claimed_at: Option<Instant> = None;
        loop {
            let stopping = stop.is_triggered();
            let round = (|| -> RedisResult<usize> {
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
                    return Ok(0);
                }
                self.relay_batch(connection, runtime, &mut held)
            })();
            match round {
                Ok(0) if stopping => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "outbox relay: Redis call failed");
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

    /// Renews the leases held and takes the free ones; a stream newly taken is read from its
    /// first entry, which may hold what a dead relay left.
    fn claim(
        &self,
        connection: &mut Connection,
        claim: &Script,
        held: &mut BTreeMap<u32, String>,
    ) -> RedisResult<()> {
        for shard in 0..OUTBOX_SHARDS {
            let holds: i64 = claim
                .key(self.keys.outbox_relay(shard))
                .arg(&self.instance)
                .arg(LEASE.as_millis() as u64)
                .invoke(connection)?;
            if holds == 1 {
                held.entry(shard).or_insert_with(|| "0-0".to_owned());
            } else if held.remove(&shard).is_some() {
                tracing::warn!(shard, "outbox relay: lease lost to another instance");
            }
        }
        Ok(())
    }

    /// Sends the next entries of the held streams, in order; deletes those acknowledged.
    /// Returns how many were relayed.
    fn relay_batch(
        &self,
        connection: &mut Connection,
        runtime: &Handle,
        held: &mut BTreeMap<u32, String>,
    ) -> RedisResult<usize> {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(READ_WAIT_MS)
            .arg("STREAMS");
        for &shard in held.keys() {
            read.arg(self.keys.outbox(shard));
        }
        for last in held.values() {
            read.arg(last);
        }
        type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let streams: Option<Vec<(String, Entries)>> = read.query(connection)?;
        let mut relayed = 0;
        for (stream, entries) in streams.unwrap_or_default() {
            let shard = (0..OUTBOX_SHARDS)
                .find(|&shard| self.keys.outbox(shard) == stream)
                .expect("XREAD answers for the streams asked");
            let mut sent: Vec<(String, Option<DeliveryFuture>)> = Vec::with_capacity(entries.len());
            for (id, fields) in entries {
                let record = fields
                    .iter()
                    .find(|(name, _)| name == FIELD)
                    .and_then(|(_, bytes)| decode_record(bytes));
                let delivery = match record {
                    Some(record) => {
                        let record = FutureRecord::to(&self.topic)
                            .key(&record.key[..])
                            .payload(&record.value[..])
                            .headers(record.headers);
                        match enqueue_blocking(&self.producer, record) {
                            Ok(delivery) => Some(delivery),
                            Err(error) => {
                                tracing::error!(%error, stream, id, "outbox relay: event not queued");
                                break;
                            }
                        }
                    }
                    None => {
                        tracing::error!(stream, id, "outbox relay: unreadable entry dropped");
                        None
                    }
                };
                sent.push((id, delivery));
            }
            let mut done = Vec::with_capacity(sent.len());
            for (id, delivery) in sent {
                if let Some(delivery) = delivery {
                    if let Err(error) = runtime.block_on(acknowledged(delivery)) {
                        tracing::error!(%error, stream, id, "outbox relay: event not delivered; retried");
                        std::thread::sleep(PAUSE);
                        break;
                    }
                }
                done.push(id);
            }
            if let Some(last) = done.last() {
                held.insert(shard, last.clone());
                let _: usize = connection.xdel(&stream, &done)?;
                relayed += done.len();
            }
        }
        Ok(relayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_as_they_went_in() {
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
