//! The shared store: drops live in Redis, so several instances serve one consumer group and a
//! crash loses nothing.
//!
//! Every transition is one optimistic transaction: WATCH what the decision reads, read it, let
//! `drop::rules` decide in Rust (the same functions the in-memory store runs), then write the
//! new state, the events (into the outbox) and the command's offset (into the applied record
//! of its partition) in one MULTI/EXEC. When another instance changed a watched key meanwhile,
//! EXEC does nothing and the step is decided again on fresh data: racing instances produce
//! exactly one winner, and a command's effect, its events and the record that it was applied
//! are never separated, whenever the process dies.

mod keys;
mod pool;
mod record;
#[cfg(test)]
mod tests;

use redis::{Connection, FromRedisValue, Pipeline, RedisResult, Script, Value};

pub use self::keys::{Keys, OUTBOX_SHARDS};
pub use self::pool::client;
use self::pool::Pool;
use super::{failure, DropCounts, DropStore, EventOut, LogPosition, Origin};
use crate::drop::command::{CharacterRequest, ReserveRequest};
use crate::drop::event::Event;
use crate::drop::model::{Drop, DropId, DropSpec, Location, Millis, Status, TenantRef};
use crate::drop::rules::{Due, Refusal, Rules};
use crate::kafka::outbox;

/// Drops the sweep takes from the deadline index at a time.
const SWEEP_BATCH: isize = 256;
/// The member of an applied record whose score is the partition's floor: the highest committed
/// offset of the partition a reader knew of (see `LogPosition::is_of_another_log`).
const FLOOR: &str = "floor";

/// Hands out the next id after the last, wrapping from the last id of the range to the first,
/// and skipping ids still in use (contract §5). One script: instances never hand out one id twice.
const NEXT_ID: &str = r"
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
for _ = 1, 100000 do
  local id = redis.call('INCR', KEYS[1])
  if id < first or id > last then
    id = first
    redis.call('SET', KEYS[1], id)
  end
  if redis.call('HEXISTS', KEYS[2], id) == 0 then return id end
end
return redis.error_reply('no free drop id')
";

pub struct RedisStoreConfig<'a> {
    pub url: &'a str,
    pub key_prefix: &'a str,
    pub rules: Rules,
    /// Most drops on all maps (0 = no limit). Checked without a lock across instances: spawns
    /// racing at the limit may pass it by as many as run at once.
    pub max_live_drops: usize,
}

pub struct RedisStore {
    rules: Rules,
    keys: Keys,
    pool: Pool,
    next_id: Script,
    max_live_drops: usize,
}

/// What a step decided after reading: the answer, and what must be written for it atomically.
struct Decision<T> {
    answer: T,
    writes: Pipeline,
    events: Vec<Event>,
}

impl<T> Decision<T> {
    fn new(answer: T) -> Decision<T> {
        Decision {
            answer,
            writes: redis::pipe(),
            events: Vec::new(),
        }
    }
}

/// What a partition's applied record says of one offset: `floor` is the highest committed
/// offset a reader knew of (records come again only from there on), and `seen` whether the
/// offset itself was applied.
struct AppliedRecord {
    floor: i64,
    seen: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Not applied yet.
    New,
    /// Applied before: nothing is done.
    MetAgain,
    /// Below a committed offset: a record of a log that started again (`LogPosition::
    /// is_of_another_log`); the record starts afresh with this one.
    LogStartedAgain,
}

impl AppliedRecord {
    /// From the replies to ZSCORE of `FLOOR` and of the offset (no record yet: no floor).
    fn read(replies: &mut impl Iterator<Item = Value>) -> RedisResult<AppliedRecord> {
        let floor: Option<f64> = from_reply(replies.next())?;
        let seen: Option<f64> = from_reply(replies.next())?;
        Ok(AppliedRecord {
            floor: floor.map_or(i64::MIN, |floor| floor as i64),
            seen: seen.is_some(),
        })
    }

    fn verdict(&self, position: &LogPosition) -> Verdict {
        if position.is_of_another_log(self.floor.max(position.committed)) {
            Verdict::LogStartedAgain
        } else if self.seen {
            Verdict::MetAgain
        } else {
            Verdict::New
        }
    }
}

/// Adds to `writes` what records `position` applied: the offset, and the floor raised to the
/// committed offset (what lies below it is never met again in this log).
fn record_applied(writes: &mut Pipeline, key: &str, position: &LogPosition, floor: i64) {
    let floor = floor.max(position.committed);
    writes.zadd(key, position.offset, position.offset).ignore();
    if floor > i64::MIN {
        writes
            .zadd(key, FLOOR, floor)
            .ignore()
            .zrembyscore(key, "-inf", format!("({floor}"))
            .ignore();
    }
}

/// The next reply of a pipeline, read as `T` (a missing reply reads as nil).
fn from_reply<T: FromRedisValue>(reply: Option<Value>) -> RedisResult<T> {
    Ok(T::from_redis_value(reply.unwrap_or(Value::Nil))?)
}

impl RedisStore {
    /// Connects and checks that Redis answers.
    pub fn connect(config: RedisStoreConfig<'_>) -> Result<RedisStore, String> {
        let pool = Pool::new(config.url)?;
        pool.ping()?;
        Ok(RedisStore {
            rules: config.rules,
            keys: Keys::new(config.key_prefix),
            pool,
            next_id: Script::new(NEXT_ID),
            max_live_drops: config.max_live_drops,
        })
    }

    #[cfg(test)]
    fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs one step to completion. The first round trip checks the command's offset against
    /// the applied record (watching it) and finds the map of the drop `about`, if any; `decide`
    /// then watches and reads what it needs (given that map's key) and says what to write; the
    /// writes, the events and the command's offset go in one MULTI/EXEC. When a watched key
    /// changed meanwhile, the step is decided again. A command met again (its offset is in the
    /// applied record) is answered `AlreadyApplied` and changes nothing.
    fn step<T>(
        &self,
        what: &str,
        position: Option<&LogPosition>,
        about: Option<u32>,
        out: EventOut<'_>,
        mut decide: impl FnMut(&mut Connection, Option<&str>) -> RedisResult<Decision<T>>,
    ) -> Result<T, Refusal> {
        let applied = position.map(|position| self.keys.applied(&position.partition));
        let about = about.and_then(DropId::new);
        let decision = self.pool.run(what, |connection| loop {
            let mut first = redis::pipe();
            if let (Some(position), Some(key)) = (position, &applied) {
                first
                    .cmd("WATCH")
                    .arg(key)
                    .ignore()
                    .zscore(key, FLOOR)
                    .zscore(key, position.offset);
            }
            if let Some(id) = about {
                // A drop never moves: its map's key needs no watching, the map does.
                first.hget(self.keys.ids(), id.get());
            }
            let replies = if first.is_empty() {
                Vec::new()
            } else {
                first.query::<Vec<Value>>(connection)?
            };
            let mut replies = replies.into_iter();
            let mut applied_writes = None;
            if let (Some(position), Some(key)) = (position, &applied) {
                let record = AppliedRecord::read(&mut replies)?;
                match record.verdict(position) {
                    Verdict::MetAgain => {
                        redis::cmd("UNWATCH").query::<()>(connection)?;
                        return Ok(None);
                    }
                    Verdict::New => applied_writes = Some((key, record.floor, false)),
                    Verdict::LogStartedAgain => applied_writes = Some((key, i64::MIN, true)),
                }
            }
            let map: Option<String> = from_reply(replies.next())?;
            let mut decision = decide(connection, map.as_deref())?;
            if applied_writes.is_none() && decision.events.is_empty() && decision.writes.is_empty()
            {
                redis::cmd("UNWATCH").query::<()>(connection)?;
                return Ok(Some(decision));
            }
            let writes = &mut decision.writes;
            if let (Some(position), Some((key, floor, afresh))) = (position, applied_writes) {
                if afresh {
                    // The old log's record says nothing of this one (`LogPosition::is_of_another_log`).
                    writes.del(key).ignore();
                }
                record_applied(writes, key, position, floor);
            }
            for event in &decision.events {
                let stream = self.keys.outbox(event.drop_id % OUTBOX_SHARDS);
                writes.xadd(stream, "*", &outbox::entry(event)).ignore();
            }
            writes.atomic();
            if writes.query::<Option<()>>(connection)?.is_some() {
                if let (Some(position), Some((_, _, true))) = (position, applied_writes) {
                    tracing::warn!(partition = %position.partition, offset = position.offset, "the partition's log started again (a record below the committed offset): its applied record starts afresh");
                }
                return Ok(Some(decision));
            }
            // A watched key changed under us: decide again on what is there now.
        });
        let Some(decision) = decision else {
            return Err(Refusal::AlreadyApplied);
        };
        for event in decision.events {
            out(event);
        }
        Ok(decision.answer)
    }

    /// A command's step on the tenant's drop `raw`: `decide` gets it, watched, with its map's
    /// key, or `None` when the tenant has no such drop.
    fn step_on_drop<T>(
        &self,
        what: &str,
        origin: &Origin,
        raw: u32,
        out: EventOut<'_>,
        mut decide: impl FnMut(Option<(Drop, String)>) -> Decision<Result<T, Refusal>>,
    ) -> Result<T, Refusal> {
        let position = origin.position.as_ref();
        let outcome = self.step(what, position, Some(raw), out, |connection, map| {
            let found = self.watch_drop(connection, map, raw)?;
            let found = found.filter(|(drop, _)| drop.tenant == origin.tenant);
            Ok(decide(found))
        });
        outcome.and_then(|answer| answer)
    }

    /// Drop `raw` on `map` (where the id index put it), watching the map: `None` when it is
    /// not there (or `map` is `None`: the id is unknown).
    fn watch_drop(
        &self,
        connection: &mut Connection,
        map: Option<&str>,
        raw: u32,
    ) -> RedisResult<Option<(Drop, String)>> {
        let Some(map) = map else {
            return Ok(None);
        };
        let (record,): (Option<Vec<u8>>,) = redis::pipe()
            .cmd("WATCH")
            .arg(map)
            .ignore()
            .hget(map, raw)
            .query(connection)?;
        Ok(record
            .and_then(|record| self.decode(&record))
            .map(|drop| (drop, map.to_owned())))
    }

    fn decode(&self, record: &[u8]) -> Option<Drop> {
        record::decode(record)
            .inspect_err(
                |error| tracing::error!(%error, "unreadable drop record in Redis: ignored"),
            )
            .ok()
    }

    /// Writes a drop's record, its entry in the reservations index, and brings its deadline
    /// entry forward to when its state says the sweep must first look at it (`Rules::first_due`:
    /// a reservation's lapse); a later entry only makes the sweep look early, and again.
    fn put(&self, writes: &mut Pipeline, map: &str, drop: &Drop) {
        let id = drop.id.get();
        writes.hset(map, id, record::encode(drop)).ignore();
        if let Some(at) = self.rules.first_due(drop) {
            (writes.cmd("ZADD").arg(self.keys.deadlines()))
                .arg("LT")
                .arg(at.0)
                .arg(id)
                .ignore();
        }
        match drop.status {
            Status::Available => writes.zrem(self.keys.reservations(), id).ignore(),
            Status::Reserved(held) => writes
                .zadd(self.keys.reservations(), id, held.reserved_at.0)
                .ignore(),
        };
    }

    /// Removes a drop from its map and from every index.
    fn remove(&self, writes: &mut Pipeline, map: &str, id: DropId) {
        let id = id.get();
        writes
            .hdel(map, id)
            .ignore()
            .hdel(self.keys.ids(), id)
            .ignore()
            .zrem(self.keys.deadlines(), id)
            .ignore()
            .zrem(self.keys.reservations(), id)
            .ignore()
            .decr(self.keys.live(), 1)
            .ignore();
    }

    /// The drops of a map, as stored.
    fn map_drops(&self, connection: &mut Connection, map: &str) -> RedisResult<Vec<Drop>> {
        let records: Vec<(u32, Vec<u8>)> = redis::cmd("HGETALL").arg(map).query(connection)?;
        Ok(records
            .iter()
            .filter_map(|(_, record)| self.decode(record))
            .collect())
    }

    /// The sweep's step for one drop whose deadline came: expire it, look again later, or forget
    /// the entry. Returns whether it expired.
    fn sweep_one(&self, raw: u32, now: Millis, out: EventOut<'_>) -> bool {
        let expired = self.step("expire", None, Some(raw), out, |connection, map| {
            let mut decision = Decision::new(false);
            let Some((drop, map)) = self.watch_drop(connection, map, raw)? else {
                // Gone already (another instance expired it, or it was picked up).
                decision.writes.zrem(self.keys.deadlines(), raw).ignore();
                return Ok(decision);
            };
            match self.rules.due(&drop, now) {
                Due::Expire => {
                    self.remove(&mut decision.writes, &map, drop.id);
                    decision.events.push(Event::expired(&drop));
                    decision.answer = true;
                }
                Due::At(later) => {
                    decision
                        .writes
                        .zadd(self.keys.deadlines(), raw, later.0)
                        .ignore();
                }
                Due::Never => {
                    decision.writes.zrem(self.keys.deadlines(), raw).ignore();
                }
            }
            Ok(decision)
        });
        expired == Ok(true)
    }
}

impl DropStore for RedisStore {
    fn spawn(
        &self,
        origin: &Origin,
        spec: DropSpec,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<Drop, Refusal> {
        let map = self.keys.map(&origin.tenant, origin.location);
        let ids = self.keys.ids();
        let mut id = None;
        let outcome = self.step(
            "spawn",
            origin.position.as_ref(),
            None,
            out,
            |connection, _| {
                if self.max_live_drops != 0 {
                    let live: Option<usize> =
                        redis::cmd("GET").arg(self.keys.live()).query(connection)?;
                    if live.unwrap_or(0) >= self.max_live_drops {
                        return Ok(Decision::new(Err(Refusal::StoreFull)));
                    }
                }
                // Allocated once: a step decided again keeps its id.
                let id = match id {
                    Some(id) => id,
                    None => {
                        let raw: u32 = self
                            .next_id
                            .key(self.keys.last_id())
                            .key(&ids)
                            .arg(DropId::FIRST.get())
                            .arg(DropId::LAST.get())
                            .invoke(connection)?;
                        *id.insert(DropId::new(raw).expect("the script keeps to the id range"))
                    }
                };
                let (count,): (usize,) = redis::pipe()
                    .cmd("WATCH")
                    .arg(&map)
                    .ignore()
                    .hlen(&map)
                    .query(connection)?;
                let drop = origin.spawned(id, spec, now);
                let mut decision = Decision::new(Ok(drop.clone()));
                if self.rules.map_is_full(count) {
                    let mut drops = self.map_drops(connection, &map)?;
                    let mut count = drops.len();
                    while self.rules.map_is_full(count) {
                        // Every drop of the map is reserved: they resolve soon; the new drop is not lost.
                        let Some(oldest) = self.rules.oldest_available(&drops, now).map(|d| d.id)
                        else {
                            break;
                        };
                        let index = drops.iter().position(|d| d.id == oldest).expect("listed");
                        let evicted = drops.swap_remove(index);
                        self.remove(&mut decision.writes, &map, evicted.id);
                        decision.events.push(Event::expired(&evicted));
                        count -= 1;
                    }
                }
                self.put(&mut decision.writes, &map, &drop);
                decision.writes.hset(&ids, id.get(), &map).ignore();
                decision.writes.incr(self.keys.live(), 1).ignore();
                decision
                    .events
                    .push(Event::created(&drop, origin.correlation.clone()));
                Ok(decision)
            },
        );
        outcome.and_then(|spawned| spawned)
    }

    fn reserve(
        &self,
        origin: &Origin,
        request: &ReserveRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        self.step_on_drop("reserve", origin, request.drop_id, out, |found| {
            let reserved = match found {
                None => Err(Refusal::UnknownDrop),
                Some((mut drop, map)) => self
                    .rules
                    .reserve(&mut drop, request, origin.location, now)
                    .map(|_| (drop, map)),
            };
            match reserved {
                Ok((drop, map)) => {
                    let mut decision = Decision::new(Ok(()));
                    self.put(&mut decision.writes, &map, &drop);
                    let correlation = origin.correlation.clone();
                    let event = Event::reserved(&drop, correlation, request.character_id);
                    decision.events.push(event);
                    decision
                }
                Err(refusal) => {
                    let mut decision = Decision::new(Err(refusal));
                    let event = failure(origin, request.drop_id, request.character_id);
                    decision.events.push(event);
                    decision
                }
            }
        })
    }

    fn cancel(
        &self,
        origin: &Origin,
        request: &CharacterRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        self.step_on_drop("cancel", origin, request.drop_id, out, |found| {
            let Some((mut drop, map)) = found else {
                return Decision::new(Err(Refusal::UnknownDrop));
            };
            let before = drop.status;
            let cancelled = self.rules.cancel(&mut drop, request, now);
            let mut decision = Decision::new(cancelled);
            if drop.status != before {
                // A sweep that met the drop held put its entry off; free again, it expires on time.
                self.put(&mut decision.writes, &map, &drop);
            }
            if cancelled.is_ok() {
                let event = failure(origin, request.drop_id, request.character_id);
                decision.events.push(event);
            }
            decision
        })
    }

    fn pick_up(
        &self,
        origin: &Origin,
        request: &CharacterRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        self.step_on_drop("pick_up", origin, request.drop_id, out, |found| {
            let Some((drop, map)) = found else {
                return Decision::new(Err(Refusal::UnknownDrop));
            };
            let pet_slot = match self.rules.pick_up(&drop, request, origin.location, now) {
                Ok(pet_slot) => pet_slot,
                Err(refusal) => return Decision::new(Err(refusal)),
            };
            let mut decision = Decision::new(Ok(()));
            self.remove(&mut decision.writes, &map, drop.id);
            let correlation = origin.correlation.clone();
            let event = Event::picked_up(&drop, correlation, request.character_id, pet_slot);
            decision.events.push(event);
            decision
        })
    }

    fn expire_due(&self, now: Millis, out: EventOut<'_>) -> usize {
        let mut expired = 0;
        loop {
            let due: Vec<u32> = self.pool.run("sweep", |connection| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.deadlines())
                    .arg("-inf")
                    .arg(now.0)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SWEEP_BATCH)
                    .query(connection)
            });
            for &raw in &due {
                expired += usize::from(self.sweep_one(raw, now, out));
            }
            if (due.len() as isize) < SWEEP_BATCH {
                return expired;
            }
        }
    }

    /// The drops stay: other instances, and this one's next start, carry on with them.
    fn expire_on_shutdown(&self, _out: EventOut<'_>) -> usize {
        0
    }

    fn get(&self, tenant: &TenantRef, id: u32, now: Millis) -> Option<Drop> {
        // A read: nothing to watch.
        let record = self.pool.run("get", |connection| {
            let map: Option<String> = redis::cmd("HGET")
                .arg(self.keys.ids())
                .arg(id)
                .query(connection)?;
            let Some(map) = map else {
                return Ok(None);
            };
            redis::cmd("HGET")
                .arg(map)
                .arg(id)
                .query::<Option<Vec<u8>>>(connection)
        });
        let drop = record.and_then(|record| self.decode(&record));
        let drop = drop.filter(|drop| drop.tenant == *tenant);
        drop.and_then(|drop| self.rules.as_seen(drop, now))
    }

    fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop> {
        let map = self.keys.map(tenant, location);
        let mut drops = self
            .pool
            .run("list", |connection| self.map_drops(connection, &map));
        drops.retain(|drop| drop.tenant == *tenant);
        drops.sort_by_key(|drop| drop.id);
        drops
            .into_iter()
            .filter_map(|drop| self.rules.as_seen(drop, now))
            .collect()
    }

    /// Counters, not a scan: a reservation is held while younger than the timeout.
    fn counts(&self, now: Millis) -> DropCounts {
        let held_since = match self.rules.reservation_timeout_ms {
            0 => 0,
            timeout => now.0.saturating_sub(timeout).saturating_add(1),
        };
        let (live, reserved, outbox) = self.pool.run("counts", |connection| {
            let mut counts = redis::pipe();
            counts
                .get(self.keys.live())
                .zcount(self.keys.reservations(), held_since, "+inf");
            for shard in 0..OUTBOX_SHARDS {
                counts.xlen(self.keys.outbox(shard));
            }
            let mut replies = counts.query::<Vec<Value>>(connection)?.into_iter();
            let live: Option<i64> = from_reply(replies.next())?;
            let reserved: usize = from_reply(replies.next())?;
            let outbox = replies
                .map(|reply| from_reply::<usize>(Some(reply)))
                .sum::<RedisResult<usize>>()?;
            Ok((live, reserved, outbox))
        });
        DropCounts {
            live: live.unwrap_or(0).max(0) as usize,
            reserved,
            outbox,
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn was_applied(&self, position: &LogPosition) -> bool {
        let key = self.keys.applied(&position.partition);
        self.pool.run("was_applied", |connection| {
            let mut replies = redis::pipe()
                .zscore(&key, FLOOR)
                .zscore(&key, position.offset)
                .query::<Vec<Value>>(connection)?
                .into_iter();
            let record = AppliedRecord::read(&mut replies)?;
            Ok(record.verdict(position) == Verdict::MetAgain)
        })
    }

    fn note_committed(&self, partition: &str, committed: i64) {
        let key = self.keys.applied(partition);
        // Raised, never lowered: another reader may know a later commit already.
        self.pool.run("note_committed", |connection| {
            redis::pipe()
                .atomic()
                .cmd("ZADD")
                .arg(&key)
                .arg("GT")
                .arg(committed)
                .arg(FLOOR)
                .ignore()
                .zrembyscore(&key, "-inf", format!("({committed}"))
                .ignore()
                .query::<()>(connection)
        })
    }

    /// One PING, not retried: readiness must answer, not wait for Redis.
    fn check(&self) -> Result<(), String> {
        self.pool.ping()
    }
}
