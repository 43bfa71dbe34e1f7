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

mod ids;
mod keys;
mod pool;
mod record;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::future::BoxFuture;
use redis::{FromRedisValue, Pipeline, RedisResult, Script, Value};

pub use self::ids::IdSource;
use self::ids::{Allocated, Ids};
pub use self::keys::{Keys, OUTBOX_SHARDS};
pub use self::pool::{client, StoreError};
use self::pool::{Connection, Pool};
pub use self::record::decode_event;
use super::{DropCounts, EventOut, LogPosition, Origin};
use crate::drop::command::DropRequest;
use crate::drop::model::{Drop, DropId, DropSpec, Location, Millis, Status, TenantRef};
use crate::drop::rules::{Refusal, Rules};
use crate::drop::transition::{has_room, Transition, Write};

/// The one field of an outbox entry: the event in the store's own format (`decode_event`).
pub const OUTBOX_FIELD: &str = "e";
/// Drops the sweep takes from the deadline index at a time.
const SWEEP_BATCH: isize = 256;
/// The member of an applied record whose score is the partition's floor: the highest committed
/// offset of the partition a reader knew of (see `LogPosition::is_of_another_log`).
const FLOOR: &str = "floor";

/// Forgets the deadline entry `ARGV[1]` of a drop the sweep did not find, unless the id index
/// names the entry again: a drop of that (tenant, id) was spawned since the sweep looked (an atlas
/// id released by the drop's removal may come back at once). `ARGV[2]` = 1 forgets it whatever
/// the index says: its record is unreadable, and the sweep must not meet it for ever.
const FORGET_DUE: &str = r"
if ARGV[2] == '1' or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
";

pub struct RedisStoreConfig<'a> {
    pub url: &'a str,
    pub key_prefix: &'a str,
    pub rules: Rules,
    /// Most drops on all maps (0 = no limit). Checked without a lock across instances: spawns
    /// racing at the limit may pass it by as many as run at once.
    pub max_live_drops: usize,
    /// Where drop ids come from (`DROP_ID_SOURCE`).
    pub ids: IdSource,
}

pub struct RedisStore {
    rules: Rules,
    keys: Keys,
    pool: Pool,
    ids: Ids,
    forget_due: Script,
    max_live_drops: usize,
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
        let committed = self.floor.max(position.committed);
        if position.is_of_another_log(committed) {
            Verdict::LogStartedAgain
        } else if self.seen || position.was_committed_while_late(committed) {
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
    pub async fn connect(config: RedisStoreConfig<'_>) -> Result<RedisStore, StoreError> {
        let pool = Pool::new(config.url)?;
        pool.ping().await?;
        let keys = Keys::new(config.key_prefix);
        Ok(RedisStore {
            rules: config.rules,
            ids: Ids::new(config.ids, &keys),
            keys,
            pool,
            forget_due: Script::new(FORGET_DUE),
            max_live_drops: config.max_live_drops,
        })
    }

    /// Runs one step to completion. The first round trip checks the command's offset against
    /// the applied record (watching it), finds the map of the drop `about` (its entry in the id
    /// index, `Ids::entry`), if any, and runs
    /// what `prefetch` adds (the watches and reads the step expects to need: one round trip
    /// fewer when it guessed right); `decide` gets the map's key and the prefetched replies,
    /// watches and reads whatever else its rule needs, and returns the rule's transition; its
    /// writes, its events and the command's offset go in one MULTI/EXEC. When a watched key
    /// changed meanwhile, the step is decided again. A command met again (its offset is in the
    /// applied record) is answered `AlreadyApplied` and changes nothing.
    async fn step<'a, T: Send + 'a>(
        &'a self,
        what: &str,
        position: Option<&'a LogPosition>,
        about: Option<&'a str>,
        out: EventOut<'_>,
        prefetch: impl Fn(&mut Pipeline) + Send + Sync + 'a,
        decide: impl Fn(Connection, Option<String>, Replies) -> Deciding<'a, T> + Send + Sync + 'a,
    ) -> Result<T, Refusal> {
        let (prefetch, decide) = (&prefetch, &decide);
        let transition = (self.pool)
            .run(what, |connection| {
                self.attempt(connection, position, about, prefetch, decide)
            })
            .await;
        let Some(transition) = transition else {
            return Err(Refusal::AlreadyApplied);
        };
        transition.events.into_iter().for_each(out);
        transition.answer
    }

    /// One go at a step (see `step`), on a connection of its own: `None` when the command
    /// was applied before.
    async fn attempt<'a, T>(
        &'a self,
        mut connection: Connection,
        position: Option<&'a LogPosition>,
        about: Option<&str>,
        prefetch: &(impl Fn(&mut Pipeline) + Sync),
        decide: &(impl Fn(Connection, Option<String>, Replies) -> Deciding<'a, T> + Sync),
    ) -> RedisResult<Option<Transition<T>>> {
        let applied = position.map(|position| self.keys.applied(&position.partition));
        loop {
            let mut first = redis::pipe();
            if let (Some(position), Some(key)) = (position, &applied) {
                first
                    .cmd("WATCH")
                    .arg(key)
                    .ignore()
                    .zscore(key, FLOOR)
                    .zscore(key, position.offset);
            }
            if let Some(entry) = about {
                // A drop never moves: its map's key needs no watching, the map does.
                first.hget(self.keys.ids(), entry);
            }
            prefetch(&mut first);
            let replies = if first.is_empty() {
                Vec::new()
            } else {
                first.query_async::<Vec<Value>>(&mut connection).await?
            };
            let mut replies = replies.into_iter();
            let mut applied_writes = None;
            if let (Some(position), Some(key)) = (position, &applied) {
                let record = AppliedRecord::read(&mut replies)?;
                match record.verdict(position) {
                    Verdict::MetAgain => {
                        unwatch(&mut connection).await?;
                        return Ok(None);
                    }
                    Verdict::New => applied_writes = Some((key, record.floor, false)),
                    Verdict::LogStartedAgain => applied_writes = Some((key, i64::MIN, true)),
                }
            }
            let map: Option<String> = match about {
                Some(_) => from_reply(replies.next())?,
                None => None,
            };
            let transition = decide(connection.clone(), map, replies).await?;
            // Not decided: not even that the command was met is recorded (it comes again).
            if transition.is_deferred() || (applied_writes.is_none() && transition.is_empty()) {
                unwatch(&mut connection).await?;
                return Ok(Some(transition));
            }
            let mut writes = self.writes(&transition.writes);
            if let (Some(position), Some((key, floor, afresh))) = (position, applied_writes) {
                if afresh {
                    // The old log's record says nothing of this one (`LogPosition::is_of_another_log`).
                    writes.del(key).ignore();
                }
                record_applied(&mut writes, key, position, floor);
            }
            for event in &transition.events {
                let stream = self.keys.outbox(event.drop_id % OUTBOX_SHARDS);
                let entry = [(OUTBOX_FIELD, record::encode_event(event))];
                writes.xadd(stream, "*", &entry).ignore();
            }
            writes.atomic();
            let committed = writes.query_async::<Option<()>>(&mut connection).await?;
            if committed.is_some() {
                if let (Some(position), Some((_, _, true))) = (position, applied_writes) {
                    tracing::warn!(partition = %position.partition, offset = position.offset, "the partition's log started again (a record below the committed offset): its applied record starts afresh");
                }
                return Ok(Some(transition));
            }
            // A watched key changed under us: decide again on what is there now.
        }
    }

    /// A command's step on the tenant's drop `raw`: `decide` gets it, watched, or `None` when
    /// the tenant has no such drop.
    async fn step_on_drop<T: Send>(
        &self,
        origin: &Origin,
        raw: u32,
        out: EventOut<'_>,
        decide: impl Fn(Option<Drop>) -> Transition<T> + Send + Sync,
    ) -> Result<T, Refusal> {
        let position = origin.position.as_ref();
        // An id no source of ours hands out names no drop: nothing to look up.
        let entry = DropId::new(raw).map(|id| self.ids.entry(&origin.tenant, id));
        // The drop most likely lies on the map the command names: watched and read at once.
        let expected = &self.keys.map(&origin.tenant, origin.location);
        let prefetch = move |first: &mut Pipeline| {
            first
                .cmd("WATCH")
                .arg(expected)
                .ignore()
                .hget(expected, raw);
        };
        let decide = &decide;
        let on_drop = move |mut connection: Connection,
                            map: Option<String>,
                            mut prefetched: Replies|
              -> Deciding<'_, T> {
            Box::pin(async move {
                let record: Option<Vec<u8>> = from_reply(prefetched.next())?;
                let found = match map {
                    Some(map) if map == *expected => record.and_then(|r| self.decode(&r)),
                    map => {
                        self.watch_drop(&mut connection, map.as_deref(), raw)
                            .await?
                    }
                };
                Ok(decide(found.filter(|drop| drop.tenant == origin.tenant)))
            })
        };
        self.step(
            "on_drop",
            position,
            entry.as_deref(),
            out,
            prefetch,
            on_drop,
        )
        .await
    }

    /// Drop `raw` on `map` (where the id index put it), watching the map: `None` when it is
    /// not there (or `map` is `None`: the id is unknown).
    async fn watch_drop(
        &self,
        connection: &mut Connection,
        map: Option<&str>,
        raw: u32,
    ) -> RedisResult<Option<Drop>> {
        let Some(map) = map else {
            return Ok(None);
        };
        let record = self.watch_record(connection, map, raw).await?;
        Ok(record.and_then(|record| self.decode(&record)))
    }

    /// The record of drop `raw` on `map`, as stored, watching the map.
    async fn watch_record(
        &self,
        connection: &mut Connection,
        map: &str,
        raw: u32,
    ) -> RedisResult<Option<Vec<u8>>> {
        let (record,): (Option<Vec<u8>>,) = redis::pipe()
            .cmd("WATCH")
            .arg(map)
            .ignore()
            .hget(map, raw)
            .query_async(connection)
            .await?;
        Ok(record)
    }

    /// Forgets the deadline entry of a drop the sweep did not find (`FORGET_DUE`).
    async fn forget_due(
        &self,
        connection: &mut Connection,
        entry: &str,
        unreadable: bool,
    ) -> RedisResult<()> {
        (self.forget_due.key(self.keys.deadlines()))
            .key(self.keys.ids())
            .arg(entry)
            .arg(u8::from(unreadable))
            .invoke_async(connection)
            .await
    }

    fn decode(&self, record: &[u8]) -> Option<Drop> {
        record::decode(record)
            .inspect_err(
                |error| tracing::error!(%error, "unreadable drop record in Redis: ignored"),
            )
            .ok()
    }

    /// The commands that make a transition's writes (in a MULTI/EXEC with its events).
    fn writes(&self, writes: &[Write]) -> Pipeline {
        let mut pipeline = redis::pipe();
        for write in writes {
            match write {
                Write::Insert(drop) => {
                    let map = self.keys.map(&drop.tenant, drop.location);
                    let entry = self.ids.entry(&drop.tenant, drop.id);
                    (pipeline.hset(self.keys.ids(), entry, &map))
                        .ignore()
                        .incr(self.keys.live(), 1)
                        .ignore();
                    self.put(&mut pipeline, &map, drop);
                }
                Write::Update(drop) => {
                    let map = self.keys.map(&drop.tenant, drop.location);
                    self.put(&mut pipeline, &map, drop);
                }
                Write::Remove(drop) => self.remove(&mut pipeline, drop),
                Write::Reschedule { tenant, id, at } => {
                    let entry = self.ids.entry(tenant, *id);
                    (pipeline.zadd(self.keys.deadlines(), entry, at.0)).ignore();
                }
                Write::Unschedule { tenant, id } => {
                    let entry = self.ids.entry(tenant, *id);
                    pipeline.zrem(self.keys.deadlines(), entry).ignore();
                }
            }
        }
        pipeline
    }

    /// Writes a drop's record, its entry in the reservations index, and brings its deadline
    /// entry forward to `Rules::first_due` (see `Write::Update`).
    fn put(&self, writes: &mut Pipeline, map: &str, drop: &Drop) {
        let entry = self.ids.entry(&drop.tenant, drop.id);
        writes
            .hset(map, drop.id.get(), record::encode(drop))
            .ignore();
        if let Some(at) = self.rules.first_due(drop) {
            (writes.cmd("ZADD").arg(self.keys.deadlines()))
                .arg("LT")
                .arg(at.0)
                .arg(&entry)
                .ignore();
        }
        match drop.status {
            Status::Available => writes.zrem(self.keys.reservations(), entry).ignore(),
            Status::Reserved(held) => writes
                .zadd(self.keys.reservations(), entry, held.reserved_at.0)
                .ignore(),
        };
    }

    /// Removes a drop from its map and from every index, and gives its id back (`Ids::release`).
    fn remove(&self, writes: &mut Pipeline, drop: &Drop) {
        let map = self.keys.map(&drop.tenant, drop.location);
        let entry = self.ids.entry(&drop.tenant, drop.id);
        writes
            .hdel(map, drop.id.get())
            .ignore()
            .hdel(self.keys.ids(), &entry)
            .ignore()
            .zrem(self.keys.deadlines(), &entry)
            .ignore()
            .zrem(self.keys.reservations(), &entry)
            .ignore()
            .decr(self.keys.live(), 1)
            .ignore();
        self.ids.release(writes, &drop.tenant, drop.id);
    }

    /// The drops of a map, as stored.
    async fn map_drops(&self, connection: &mut Connection, map: &str) -> RedisResult<Vec<Drop>> {
        let records: Vec<(u32, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(map)
            .query_async(connection)
            .await?;
        Ok(records
            .iter()
            .filter_map(|(_, record)| self.decode(record))
            .collect())
    }

    /// The sweep's step for the drop whose deadline entry `entry` came due (`Rules::sweep`).
    /// Returns whether it expired. A drop no longer there had its entry removed with it; the
    /// entry is forgotten all the same (`FORGET_DUE`), so that the sweep does not meet it again.
    async fn sweep_one(&self, entry: &str, now: Millis, out: EventOut<'_>) -> bool {
        let Some(id) = Ids::id_of(entry) else {
            tracing::error!(entry, "unreadable deadline entry in Redis: forgotten");
            (self.pool)
                .run("expire", |mut connection| async move {
                    self.forget_due(&mut connection, entry, true).await
                })
                .await;
            return false;
        };
        let sweep =
            move |mut connection: Connection, map: Option<String>, _| -> Deciding<'_, bool> {
                Box::pin(async move {
                    let record = match &map {
                        Some(map) => self.watch_record(&mut connection, map, id.get()).await?,
                        None => None,
                    };
                    if let Some(drop) = record.as_deref().and_then(|r| self.decode(r)) {
                        return Ok(self.rules.sweep(drop, now));
                    }
                    let unreadable = record.is_some();
                    self.forget_due(&mut connection, entry, unreadable).await?;
                    Ok(Transition {
                        answer: Ok(false),
                        writes: Vec::new(),
                        events: Vec::new(),
                    })
                })
            };
        self.step("expire", None, Some(entry), out, |_| {}, sweep)
            .await
            == Ok(true)
    }

    /// A spawn's id: the one an earlier go at the step allocated (`allocated`, 0: none), else a
    /// new one (`Ids::allocate`), kept there. `None` when the Atlas allocator has none left.
    async fn spawn_id(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        allocated: &AtomicU32,
    ) -> RedisResult<Option<DropId>> {
        if let Some(id) = DropId::new(allocated.load(Ordering::Relaxed)) {
            return Ok(Some(id));
        }
        match self.ids.allocate(connection, &origin.tenant).await? {
            Allocated::Id(id) => {
                allocated.store(id.get(), Ordering::Relaxed);
                Ok(Some(id))
            }
            Allocated::Exhausted(answer) => {
                tracing::warn!(tenant = %origin.tenant.id, ?answer, "the Atlas object-id allocator has no drop id left for the tenant: spawn refused");
                Ok(None)
            }
        }
    }

    /// Creates a drop (`Rules::spawn`), unless the store holds its most drops (`has_room`).
    pub async fn spawn(
        &self,
        origin: &Origin,
        spec: DropSpec,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<Drop, Refusal> {
        let map = self.keys.map(&origin.tenant, origin.location);
        let map = &map;
        // Allocated once (0: not yet): a step decided again keeps its id (see `ids`).
        let allocated = &AtomicU32::new(0);
        // The map, watched, its size, and (under a global cap) the drops lying: in the step's
        // first round trip. Without a cap the count is not asked, and reads as none.
        let prefetch = move |first: &mut Pipeline| {
            first.cmd("WATCH").arg(map).ignore().hlen(map);
            if self.max_live_drops != 0 {
                first.get(self.keys.live());
            }
        };
        let spawn =
            move |mut connection: Connection, _, mut prefetched: Replies| -> Deciding<'_, Drop> {
                Box::pin(async move {
                    let on_map: usize = from_reply(prefetched.next())?;
                    let live: Option<usize> = from_reply(prefetched.next())?;
                    if let Err(refusal) = has_room(live.unwrap_or(0), self.max_live_drops) {
                        return Ok(Transition::refused(refusal));
                    }
                    let Some(id) = self.spawn_id(&mut connection, origin, allocated).await? else {
                        return Ok(Transition::refused(Refusal::StoreFull));
                    };
                    // The map's drops are read only when one must make room.
                    let drops = match self.rules.map_is_full(on_map) {
                        true => self.map_drops(&mut connection, map).await?,
                        false => Vec::new(),
                    };
                    let new = origin.spawned(id, spec, now);
                    Ok(self
                        .rules
                        .spawn(new, &origin.correlation, on_map, &drops, now))
                })
            };
        self.step(
            "spawn",
            origin.position.as_ref(),
            None,
            out,
            prefetch,
            spawn,
        )
        .await
    }

    /// Makes the change a command asks of the drop it names (`Rules::on_drop`).
    pub async fn on_drop(
        &self,
        origin: &Origin,
        request: &DropRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        self.step_on_drop(origin, request.drop_id(), out, |found| {
            self.rules.on_drop(request, found, origin.asker(), now)
        })
        .await
    }

    /// Expires what came due by `now`, `SWEEP_BATCH` deadline entries at a time; returns how
    /// many expired.
    pub async fn expire_due(&self, now: Millis, out: EventOut<'_>) -> usize {
        let mut expired = 0;
        loop {
            let due: Vec<String> = self
                .pool
                .run("sweep", |mut connection| async move {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(self.keys.deadlines())
                        .arg("-inf")
                        .arg(now.0)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(SWEEP_BATCH)
                        .query_async(&mut connection)
                        .await
                })
                .await;
            for entry in &due {
                expired += usize::from(self.sweep_one(entry, now, out).await);
            }
            if (due.len() as isize) < SWEEP_BATCH {
                return expired;
            }
        }
    }

    pub async fn get(&self, tenant: &TenantRef, id: u32, now: Millis) -> Option<Drop> {
        let entry = &self.ids.entry(tenant, DropId::new(id)?);
        // A read: nothing to watch.
        let record = (self.pool)
            .run("get", |mut connection| async move {
                let map: Option<String> = redis::cmd("HGET")
                    .arg(self.keys.ids())
                    .arg(entry)
                    .query_async(&mut connection)
                    .await?;
                let Some(map) = map else {
                    return Ok(None);
                };
                redis::cmd("HGET")
                    .arg(map)
                    .arg(id)
                    .query_async::<Option<Vec<u8>>>(&mut connection)
                    .await
            })
            .await;
        let drop = record.and_then(|record| self.decode(&record));
        let drop = drop.filter(|drop| drop.tenant == *tenant);
        drop.and_then(|drop| self.rules.as_seen(drop, now))
    }

    pub async fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop> {
        let map = &self.keys.map(tenant, location);
        let mut drops = (self.pool)
            .run("list", |mut connection| async move {
                self.map_drops(&mut connection, map).await
            })
            .await;
        drops.retain(|drop| drop.tenant == *tenant);
        drops.sort_by_key(|drop| drop.id);
        drops
            .into_iter()
            .filter_map(|drop| self.rules.as_seen(drop, now))
            .collect()
    }

    /// Counters, not a scan: a reservation is held while younger than the timeout.
    pub async fn counts(&self, now: Millis) -> DropCounts {
        let held_since = match self.rules.reservation_timeout_ms {
            0 => 0,
            timeout => now.0.saturating_sub(timeout).saturating_add(1),
        };
        let mut counts = redis::pipe();
        counts
            .get(self.keys.live())
            .zcount(self.keys.reservations(), held_since, "+inf");
        for shard in 0..OUTBOX_SHARDS {
            counts.xlen(self.keys.outbox(shard));
        }
        let counts = &counts;
        let (live, reserved, outbox) = (self.pool)
            .run("counts", |mut connection| async move {
                let replies = counts.query_async::<Vec<Value>>(&mut connection).await?;
                let mut replies = replies.into_iter();
                let live: Option<i64> = from_reply(replies.next())?;
                let reserved: usize = from_reply(replies.next())?;
                let outbox = replies
                    .map(|reply| from_reply::<usize>(Some(reply)))
                    .sum::<RedisResult<usize>>()?;
                Ok((live, reserved, outbox))
            })
            .await;
        DropCounts {
            live: live.unwrap_or(0).max(0) as usize,
            reserved,
            outbox,
        }
    }

    /// Whether the command at `position` took effect already.
    pub async fn was_applied(&self, position: &LogPosition) -> bool {
        let key = self.keys.applied(&position.partition);
        let mut ask = redis::pipe();
        ask.zscore(&key, FLOOR).zscore(&key, position.offset);
        let ask = &ask;
        (self.pool)
            .run("was_applied", |mut connection| async move {
                let replies = ask.query_async::<Vec<Value>>(&mut connection).await?;
                let record = AppliedRecord::read(&mut replies.into_iter())?;
                Ok(record.verdict(position) == Verdict::MetAgain)
            })
            .await
    }

    /// Raises a partition's floor to `committed` (see `DropStore::note_committed`).
    pub async fn note_committed(&self, partition: &str, committed: i64) {
        let key = self.keys.applied(partition);
        // Raised, never lowered: another reader may know a later commit already.
        let mut note = redis::pipe();
        note.atomic()
            .cmd("ZADD")
            .arg(&key)
            .arg("GT")
            .arg(committed)
            .arg(FLOOR)
            .ignore()
            .zrembyscore(&key, "-inf", format!("({committed}"))
            .ignore();
        let note = &note;
        (self.pool)
            .run("note_committed", |mut connection| async move {
                note.query_async::<()>(&mut connection).await
            })
            .await
    }

    /// One PING, not retried: readiness must answer, not wait for Redis.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.pool.ping().await
    }
}

/// The replies to what a step's `prefetch` added to its first round trip, in order.
type Replies = std::vec::IntoIter<Value>;

/// What a step's `decide` returns: reading, then the rule's transition.
type Deciding<'a, T> = BoxFuture<'a, RedisResult<Transition<T>>>;

async fn unwatch(connection: &mut Connection) -> RedisResult<()> {
    redis::cmd("UNWATCH").query_async(connection).await
}
