//! The shared store: drops live in Redis, so several instances serve one consumer group and a
//! crash loses nothing.
//!
//! Every transition is one optimistic step: read what the decision needs, let `drop::rules`
//! decide in Rust (the same functions the in-memory store runs), then commit with one script
//! (`COMMIT`) that first checks that what was read is still so — each drop record as read, the
//! map's size when the decision counted it, the partition's applied record for the command's
//! offset (`Guard`) — and only then writes the new state, the events (into the outbox) and the
//! command's offset (into the applied record). When something read changed meanwhile, the
//! script writes nothing and the step is decided again on fresh data: racing instances produce
//! exactly one winner, and a command's effect, its events and the record that it was applied
//! are never separated, whenever the process dies (a script runs whole or not at all, as a
//! MULTI/EXEC would).
//!
//! Why a script and not WATCH/MULTI/EXEC: WATCH belongs to a connection, so every step in
//! flight needed a connection of its own, and it watches whole keys (a map, a partition's
//! applied record), so steps about different drops of a map, or different commands of a
//! partition, undid each other. The guards check exactly what the decision read: every caller
//! shares one multiplexed connection (`pool`), and one round trip commits. The commits of steps
//! in flight together go as one call of the script (`commit`), each checked and written as if
//! alone.
//!
//! The script is given its keys as arguments, not as `KEYS`: the store runs on one Redis (a
//! step touches the map, the shared indexes and the outbox at once, which a Redis Cluster would
//! refuse whichever way the step were sent).

mod commit;
mod ids;
mod keys;
mod known;
mod pool;
mod record;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::future::BoxFuture;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Script, Value};

use self::commit::{CommitArgs, Committer};
pub use self::ids::IdSource;
use self::ids::{Allocated, Ids};
pub use self::keys::{Keys, OUTBOX_SHARDS};
use self::known::{Known, RecordChange};
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

/// Commits steps (see the module's comment), in the order given: `ARGV[1]` of them (`commit`
/// batches them), each as its number of arguments and those arguments. One step's arguments
/// are its guards' number, then its guards, four arguments each: `record`, a hash, a field, the
/// value read (empty: there was none; records are never empty); `count`, a hash, its length as
/// read; `below`, a hash, a length it is shorter than; `fewer`, a counter, a number it is below
/// (no counter: 0); and five: `applied`, a partition's applied record, an offset, the scores of
/// its floor (`FLOOR`) and of the offset as read (empty: none). When one does not hold, nothing
/// of the step is written and its answer is 0. Then the writes, each as its number of arguments
/// and the command; `atlas-release`, the Atlas counter, the free list, an id, the recycle
/// threshold, gives an atlas id back (`Ids::release`). Answers 1 or 0 a step, or the error it
/// met (what it wrote before stays: Redis undoes nothing), the others going on.
const COMMIT: &str = r"
local function commit(at, last)
  local guards = tonumber(ARGV[at])
  at = at + 1
  for _ = 1, guards do
    local kind, key, a, b = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    at = at + 4
    local holds
    if kind == 'record' then
      holds = (redis.call('HGET', key, a) or '') == b
    elseif kind == 'count' then
      holds = redis.call('HLEN', key) == tonumber(a)
    elseif kind == 'below' then
      holds = redis.call('HLEN', key) < tonumber(a)
    elseif kind == 'fewer' then
      holds = tonumber(redis.call('GET', key) or '0') < tonumber(a)
    else
      local scores = redis.call('ZMSCORE', key, 'floor', a)
      holds = tonumber(scores[1]) == tonumber(b) and tonumber(scores[2]) == tonumber(ARGV[at])
      at = at + 1
    end
    if not holds then return 0 end
  end
  while at <= last do
    local n = tonumber(ARGV[at])
    if ARGV[at + 1] == 'atlas-release' then
      local counter = tonumber(redis.call('GET', ARGV[at + 2]))
      if counter and counter >= tonumber(ARGV[at + 5]) then
        redis.call('LPUSH', ARGV[at + 3], ARGV[at + 4])
      end
    else
      redis.call(unpack(ARGV, at + 1, at + n))
    end
    at = at + n + 1
  end
  return 1
end
local answers, at = {}, 2
for step = 1, tonumber(ARGV[1]) do
  local last = at + tonumber(ARGV[at])
  local ran, answer = pcall(commit, at + 1, last)
  if ran then
    answers[step] = answer
  elseif type(answer) == 'table' and answer.err then
    answers[step] = answer
  else
    answers[step] = redis.error_reply(tostring(answer))
  end
  at = last + 1
end
return answers
";

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
    /// Most drops on all maps (0 = no limit): a spawn's commit checks there is room.
    pub max_live_drops: usize,
    /// Where drop ids come from (`DROP_ID_SOURCE`).
    pub ids: IdSource,
}

pub struct RedisStore {
    rules: Rules,
    keys: Keys,
    pool: Pool,
    ids: Ids,
    committer: Committer,
    forget_due: Script,
    max_live_drops: usize,
    known: Known,
}

/// What a step's decision read, checked again by its commit (`COMMIT`).
enum Guard {
    /// A drop's record on a map (`None`: there was none).
    Record {
        map: String,
        id: u32,
        record: Option<Vec<u8>>,
    },
    /// How many drops lay on a map.
    Count { map: String, drops: usize },
    /// A map held fewer drops than `limit`.
    Below { map: String, limit: usize },
    /// Fewer drops lay on all maps than `most` (the counter `live`).
    Fewer { live: String, most: usize },
    /// A partition's applied record (`key`) as read of an offset: its floor's score and the
    /// offset's (`None`: none).
    Applied {
        key: String,
        offset: i64,
        floor: Option<f64>,
        offset_score: Option<f64>,
    },
}

impl Guard {
    fn add_to(&self, commit: &mut Cmd) {
        match self {
            Guard::Record { map, id, record } => {
                let record = record.as_deref().unwrap_or_default();
                commit.arg("record").arg(map).arg(id).arg(record)
            }
            Guard::Count { map, drops } => commit.arg("count").arg(map).arg(drops).arg(""),
            Guard::Below { map, limit } => commit.arg("below").arg(map).arg(limit).arg(""),
            Guard::Fewer { live, most } => commit.arg("fewer").arg(live).arg(most).arg(""),
            Guard::Applied {
                key,
                offset,
                floor,
                offset_score,
            } => {
                let score = |score: &Option<f64>| score.map(|score| score.to_string());
                (commit.arg("applied").arg(key).arg(offset))
                    .arg(score(floor).unwrap_or_default())
                    .arg(score(offset_score).unwrap_or_default())
            }
        };
    }
}

/// What a partition's applied record says of one offset: `floor` is the highest committed
/// offset a reader knew of (records come again only from there on), and `seen` whether the
/// offset itself was applied; with the scores as read, for the commit's guards.
struct AppliedRecord {
    floor: i64,
    seen: bool,
    floor_score: Option<f64>,
    offset_score: Option<f64>,
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
    /// Asks the scores of `FLOOR` and of the offset (`read` reads the reply).
    fn ask(pipeline: &mut Pipeline, key: &str, position: &LogPosition) {
        (pipeline.cmd("ZMSCORE").arg(key))
            .arg(FLOOR)
            .arg(position.offset);
    }

    /// From the reply to `ask` (no record yet: no floor).
    fn read(replies: &mut impl Iterator<Item = Value>) -> RedisResult<AppliedRecord> {
        let (floor_score, offset_score) = from_reply(replies.next())?;
        Ok(AppliedRecord::of_scores(floor_score, offset_score))
    }

    /// The record as this instance knows it (`Known::floor`), guessing the offset not applied:
    /// the commit's guards check both.
    fn known(floor_score: Option<f64>) -> AppliedRecord {
        AppliedRecord::of_scores(floor_score, None)
    }

    fn of_scores(floor_score: Option<f64>, offset_score: Option<f64>) -> AppliedRecord {
        AppliedRecord {
            floor: floor_score.map_or(i64::MIN, |floor| floor as i64),
            seen: offset_score.is_some(),
            floor_score,
            offset_score,
        }
    }

    /// What the commit checks: the record still says of the offset what it said when read
    /// (another reader applying it, or a floor raised past it, undoes the step).
    fn guard(&self, key: &str, position: &LogPosition) -> Guard {
        Guard::Applied {
            key: key.to_owned(),
            offset: position.offset,
            floor: self.floor_score,
            offset_score: self.offset_score,
        }
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

/// Adds to `writes` what records `position` applied: the offset, and the floor (as read:
/// `floor`) raised to the committed offset when that is higher (what lies below it is never met
/// again in this log). Returns the floor's score after the commit (`None`: the record has none).
fn record_applied(
    writes: &mut CommitArgs,
    key: &str,
    position: &LogPosition,
    floor: i64,
) -> Option<f64> {
    writes.zadd(key, position.offset, position.offset);
    let raised = floor.max(position.committed);
    if raised > floor {
        writes.zadd(key, FLOOR, raised);
        writes.zrem_below(key, raised);
    }
    (raised > i64::MIN).then_some(raised as f64)
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
            committer: Committer::start(Script::new(COMMIT)),
            forget_due: Script::new(FORGET_DUE),
            max_live_drops: config.max_live_drops,
            known: Known::default(),
        })
    }

    /// Runs one step to completion. The first round trip reads the command's offset in the
    /// applied record, the map of the drop `about` (its entry in the id index, `Ids::entry`),
    /// if any, and what `prefetch` adds (the reads the step expects to need: one round trip
    /// fewer when it guessed right); `decide` gets the map's key and the prefetched replies,
    /// reads whatever else its rule needs, and returns the rule's transition with the guards
    /// of what it read. The transition's writes, its events and the command's offset are
    /// committed by one script, if what was read is still so; else the step is decided again.
    /// A command met again (its offset is in the applied record) is answered `AlreadyApplied`
    /// and changes nothing. With a `guess` (what this instance knows, see `known`), the first
    /// go takes its answers instead of the first round trip's.
    #[allow(clippy::too_many_arguments)]
    async fn step<'a, T: Send + 'a>(
        &'a self,
        what: &str,
        position: Option<&'a LogPosition>,
        about: Option<&'a str>,
        guess: Option<Guess>,
        out: EventOut<'_>,
        prefetch: impl Fn(&mut Pipeline) + Send + Sync + 'a,
        decide: impl Fn(Connection, Option<String>, Replies) -> Deciding<'a, T> + Send + Sync + 'a,
    ) -> Result<T, Refusal> {
        let (prefetch, decide) = (&prefetch, &decide);
        let mut guess = guess;
        let transition = (self.pool)
            .run(what, |connection| {
                // Taken by the first go: a go after a failed call reads.
                let guess = guess.take();
                self.attempt(connection, position, about, guess, prefetch, decide)
            })
            .await;
        let Some(transition) = transition else {
            return Err(Refusal::AlreadyApplied);
        };
        transition.events.into_iter().for_each(out);
        transition.answer
    }

    /// The first round trip of a go at a step (see `step`): the applied record as it says of
    /// `position`, the map of the drop `about`, and the replies to `prefetch`.
    async fn first_read(
        &self,
        connection: &mut Connection,
        position: Option<(&LogPosition, &str)>,
        about: Option<&str>,
        prefetch: &(impl Fn(&mut Pipeline) + Sync),
    ) -> RedisResult<(Option<AppliedRecord>, Option<String>, Replies)> {
        let mut first = redis::pipe();
        if let Some((position, key)) = position {
            AppliedRecord::ask(&mut first, key, position);
        }
        if let Some(entry) = about {
            // A drop never moves: the entry is not guarded, the drop's record is.
            first.hget(self.keys.ids(), entry);
        }
        prefetch(&mut first);
        let replies = if first.is_empty() {
            Vec::new()
        } else {
            first.query_async::<Vec<Value>>(connection).await?
        };
        let mut replies = replies.into_iter();
        let record = match position {
            Some(_) => Some(AppliedRecord::read(&mut replies)?),
            None => None,
        };
        let map: Option<String> = match about {
            Some(_) => from_reply(replies.next())?,
            None => None,
        };
        Ok((record, map, replies))
    }

    /// One go at a step (see `step`): `None` when the command was applied before.
    async fn attempt<'a, T>(
        &'a self,
        mut connection: Connection,
        position: Option<&'a LogPosition>,
        about: Option<&str>,
        guess: Option<Guess>,
        prefetch: &(impl Fn(&mut Pipeline) + Sync),
        decide: &(impl Fn(Connection, Option<String>, Replies) -> Deciding<'a, T> + Sync),
    ) -> RedisResult<Option<Transition<T>>> {
        let applied = position.map(|position| (position, self.keys.applied(&position.partition)));
        let applied = applied
            .as_ref()
            .map(|(position, key)| (*position, key.as_str()));
        // What this instance knows, while it is not found out of date: the drop's map and
        // record, and the applied record's floor.
        let mut guess = guess.and_then(|guess| {
            let (_, key) = applied?;
            let floor = self.known.floor(key)?;
            Some((guess, AppliedRecord::known(floor)))
        });
        loop {
            // The drop guessed about, to forget should the guess be found out of date.
            let (record, map, replies, guessed) = match guess.take() {
                Some((guess, record)) => {
                    let replies = guess.prefetched.into_iter();
                    let map = Some(guess.map.clone());
                    (Some(record), map, replies, Some((guess.map, guess.id)))
                }
                None => {
                    let read = self.first_read(&mut connection, applied, about, prefetch);
                    let (record, map, replies) = read.await?;
                    (record, map, replies, None)
                }
            };
            let mut applied_writes = None;
            if let (Some((position, key)), Some(record)) = (applied, record) {
                let verdict = record.verdict(position);
                if guessed.is_some() && verdict != Verdict::New {
                    // A guess tells nothing of a command met before: read.
                    continue;
                }
                let afresh = match verdict {
                    Verdict::MetAgain => return Ok(None),
                    Verdict::New => false,
                    Verdict::LogStartedAgain => true,
                };
                applied_writes = Some((key, record, afresh));
            }
            let (transition, mut guards) = decide(connection.clone(), map, replies).await?;
            // Not decided: not even that the command was met is recorded (it comes again).
            if transition.is_deferred() || (applied_writes.is_none() && transition.is_empty()) {
                return Ok(Some(transition));
            }
            if let (Some((position, _)), Some((key, record, _))) = (applied, &applied_writes) {
                guards.push(record.guard(key, position));
            }
            let mut commit = CommitArgs::new(&guards);
            let mut changes = self.writes(&mut commit, &transition.writes);
            let mut floor_written = None;
            if let (Some((position, _)), Some((key, record, afresh))) = (applied, &applied_writes) {
                let floor = if *afresh {
                    // The old log's record says nothing of this one (`LogPosition::is_of_another_log`).
                    commit.del(key);
                    i64::MIN
                } else {
                    record.floor
                };
                floor_written = Some((*key, record_applied(&mut commit, key, position, floor)));
            }
            for event in &transition.events {
                let stream = self.keys.outbox(event.drop_id % OUTBOX_SHARDS);
                commit.xadd(stream, OUTBOX_FIELD, record::encode_event(event));
            }
            let committed = self.committer.commit(connection.clone(), commit).await?;
            if !committed {
                // Something read (or known) changed meanwhile: decide again on what is there now.
                if let (Some((map, id)), Some((_, key))) = (&guessed, applied) {
                    self.known.forget(map, *id, key);
                }
                continue;
            }
            if let (Some((position, _)), Some((_, _, true))) = (applied, &applied_writes) {
                tracing::warn!(partition = %position.partition, offset = position.offset, "the partition's log started again (a record below the committed offset): its applied record starts afresh");
            }
            // What the guards checked is so, then the writes: the later wins.
            let checked = guards.into_iter().filter_map(|guard| match guard {
                Guard::Record { map, id, record } => Some(RecordChange { map, id, record }),
                _ => None,
            });
            changes.splice(0..0, checked);
            self.known.committed(changes, floor_written);
            return Ok(Some(transition));
        }
    }

    /// A command's step on the tenant's drop `raw`: `decide` gets it, or `None` when the
    /// tenant has no such drop.
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
        // The drop most likely lies on the map the command names: read at once.
        let expected = &self.keys.map(&origin.tenant, origin.location);
        let prefetch = move |first: &mut Pipeline| {
            first.hget(expected, raw);
        };
        // A drop this instance knows on that map: the answers of that first round trip.
        let guess = (self.known.record(expected, raw)).map(|record| Guess {
            map: expected.clone(),
            id: raw,
            prefetched: vec![Value::BulkString(record)],
        });
        let decide = &decide;
        let on_drop = move |mut connection: Connection,
                            map: Option<String>,
                            mut prefetched: Replies|
              -> Deciding<'_, T> {
            Box::pin(async move {
                let record: Option<Vec<u8>> = from_reply(prefetched.next())?;
                let (record, map) = match map {
                    Some(map) if map == *expected => (record, map),
                    Some(map) => (self.read_record(&mut connection, &map, raw).await?, map),
                    // The id is unknown: no drop to read, none to guard.
                    None => return Ok((decide(None), Vec::new())),
                };
                let found = record.as_deref().and_then(|record| self.decode(record));
                let guard = Guard::Record {
                    map,
                    id: raw,
                    record,
                };
                Ok((
                    decide(found.filter(|drop| drop.tenant == origin.tenant)),
                    vec![guard],
                ))
            })
        };
        self.step(
            "on_drop",
            position,
            entry.as_deref(),
            guess,
            out,
            prefetch,
            on_drop,
        )
        .await
    }

    /// The record of drop `raw` on `map`, as stored.
    async fn read_record(
        &self,
        connection: &mut Connection,
        map: &str,
        raw: u32,
    ) -> RedisResult<Option<Vec<u8>>> {
        redis::cmd("HGET")
            .arg(map)
            .arg(raw)
            .query_async(connection)
            .await
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

    /// Adds to a commit the commands that make a transition's writes (run by the commit script
    /// with its events); returns the records they write.
    fn writes(&self, commit: &mut CommitArgs, writes: &[Write]) -> Vec<RecordChange> {
        let mut changes = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                Write::Insert(drop) => {
                    let map = self.keys.map(&drop.tenant, drop.location);
                    let entry = self.ids.entry(&drop.tenant, drop.id);
                    commit.hset(self.keys.ids(), &entry, &map);
                    commit.incr_by(self.keys.live(), 1);
                    changes.push(self.put(commit, map, entry, drop, true));
                }
                Write::Update(drop) => {
                    let map = self.keys.map(&drop.tenant, drop.location);
                    let entry = self.ids.entry(&drop.tenant, drop.id);
                    changes.push(self.put(commit, map, entry, drop, false));
                }
                Write::Remove(drop) => changes.push(self.remove(commit, drop)),
                Write::Reschedule { tenant, id, at } => {
                    let entry = self.ids.entry(tenant, *id);
                    commit.zadd(self.keys.deadlines(), entry, at.0);
                }
                Write::Unschedule { tenant, id } => {
                    let entry = self.ids.entry(tenant, *id);
                    commit.zrem(self.keys.deadlines(), entry);
                }
            }
        }
        changes
    }

    /// Writes a drop's record on its `map`, its `entry` in the reservations index (a `new`
    /// drop, in no index yet, has none to remove), and brings its deadline entry forward to
    /// `Rules::first_due` (see `Write::Update`).
    fn put(
        &self,
        writes: &mut CommitArgs,
        map: String,
        entry: String,
        drop: &Drop,
        new: bool,
    ) -> RecordChange {
        let record = record::encode(drop);
        writes.hset(&map, drop.id.get(), &record);
        if let Some(at) = self.rules.first_due(drop) {
            writes.zadd_lower(self.keys.deadlines(), &entry, at.0);
        }
        match drop.status {
            Status::Available if new => {}
            Status::Available => writes.zrem(self.keys.reservations(), entry),
            Status::Reserved(held) => {
                writes.zadd(self.keys.reservations(), entry, held.reserved_at.0)
            }
        };
        RecordChange {
            map,
            id: drop.id.get(),
            record: Some(record.into_bytes()),
        }
    }

    /// Removes a drop from its map and from every index, and gives its id back (`Ids::release`).
    fn remove(&self, writes: &mut CommitArgs, drop: &Drop) -> RecordChange {
        let map = self.keys.map(&drop.tenant, drop.location);
        let entry = self.ids.entry(&drop.tenant, drop.id);
        writes.hdel(&map, drop.id.get());
        writes.hdel(self.keys.ids(), &entry);
        writes.zrem(self.keys.deadlines(), &entry);
        writes.zrem(self.keys.reservations(), &entry);
        writes.incr_by(self.keys.live(), -1);
        self.ids.release(writes, &drop.tenant, drop.id);
        RecordChange {
            map,
            id: drop.id.get(),
            record: None,
        }
    }

    /// The records of a map's drops, by id, as stored.
    async fn map_records(
        &self,
        connection: &mut Connection,
        map: &str,
    ) -> RedisResult<Vec<(u32, Vec<u8>)>> {
        redis::cmd("HGETALL").arg(map).query_async(connection).await
    }

    /// The drops of records read (an unreadable one is logged and left out).
    fn decode_all(&self, records: &[(u32, Vec<u8>)]) -> Vec<Drop> {
        (records.iter())
            .filter_map(|(_, record)| self.decode(record))
            .collect()
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
                        Some(map) => self.read_record(&mut connection, map, id.get()).await?,
                        None => None,
                    };
                    if let (Some(drop), Some(map)) =
                        (record.as_deref().and_then(|r| self.decode(r)), map)
                    {
                        let guard = Guard::Record {
                            map,
                            id: id.get(),
                            record,
                        };
                        return Ok((self.rules.sweep(drop, now), vec![guard]));
                    }
                    let unreadable = record.is_some();
                    self.forget_due(&mut connection, entry, unreadable).await?;
                    let nothing = Transition {
                        answer: Ok(false),
                        writes: Vec::new(),
                        events: Vec::new(),
                    };
                    Ok((nothing, Vec::new()))
                })
            };
        self.step("expire", None, Some(entry), None, out, |_| {}, sweep)
            .await
            == Ok(true)
    }

    /// A spawn's id: the one an earlier go at the step allocated (`allocated`, 0: none), else
    /// the one taken in the step's first round trip (`ahead`, `Ids::allocate_ahead`), else a new
    /// one (`Ids::allocate`); kept in `allocated`. `None` when the Atlas allocator has none left.
    async fn spawn_id(
        &self,
        connection: &mut Connection,
        origin: &Origin,
        allocated: &AtomicU32,
        ahead: Option<Value>,
    ) -> RedisResult<Option<DropId>> {
        if let Some(id) = DropId::new(allocated.load(Ordering::Relaxed)) {
            return Ok(Some(id));
        }
        let taken = match ahead {
            Some(reply) => self.ids.allocated_ahead(reply)?,
            None => self.ids.allocate(connection, &origin.tenant).await?,
        };
        match taken {
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
        // With a spare id, what the first round trip would read is guessed (`Guess`): the map
        // and the store have room (none lying), which the commit's guards check.
        let spare = self.ids.spare();
        if let Some(id) = spare {
            allocated.store(id.get(), Ordering::Relaxed);
        }
        let guess = spare.map(|id| Guess {
            map: map.clone(),
            id: id.get(),
            prefetched: match self.max_live_drops {
                0 => vec![Value::Int(0)],
                _ => vec![Value::Int(0), Value::Int(0)],
            },
        });
        // Whether this go at the step takes its id in its first round trip (not yet allocated,
        // and an id of our own: `Ids::allocates_ahead`).
        let ahead = move || allocated.load(Ordering::Relaxed) == 0 && self.ids.allocates_ahead();
        // The map's size, (under a global cap) the drops lying, and the id: in the step's first
        // round trip. Without a cap the count is not asked, and reads as none.
        let prefetch = move |first: &mut Pipeline| {
            first.hlen(map);
            if self.max_live_drops != 0 {
                first.get(self.keys.live());
            }
            if ahead() {
                self.ids.allocate_ahead(first);
            }
        };
        let spawn =
            move |mut connection: Connection, _, mut prefetched: Replies| -> Deciding<'_, Drop> {
                Box::pin(async move {
                    let on_map: usize = from_reply(prefetched.next())?;
                    let live: Option<usize> = match self.max_live_drops {
                        0 => None,
                        _ => from_reply(prefetched.next())?,
                    };
                    if ahead() {
                        // Kept, the spare ids with it, whether or not the spawn may go.
                        let taken = Some(prefetched.next().unwrap_or(Value::Nil));
                        self.spawn_id(&mut connection, origin, allocated, taken)
                            .await?;
                    }
                    if let Err(refusal) = has_room(live.unwrap_or(0), self.max_live_drops) {
                        return Ok((Transition::refused(refusal), Vec::new()));
                    }
                    let id = self.spawn_id(&mut connection, origin, allocated, None);
                    let Some(id) = id.await? else {
                        return Ok((Transition::refused(Refusal::StoreFull), Vec::new()));
                    };
                    let limit = self.rules.map_drop_limit;
                    // The map's drops are read only when one must make room: the choice of
                    // which to evict holds while the map is exactly as read (its size, each
                    // record). Else it holds while the map has room.
                    let (records, mut guards) = if self.rules.map_is_full(on_map) {
                        let records = self.map_records(&mut connection, map).await?;
                        let guards = (records.iter())
                            .map(|(id, record)| Guard::Record {
                                map: map.clone(),
                                id: *id,
                                record: Some(record.clone()),
                            })
                            .chain([Guard::Count {
                                map: map.clone(),
                                drops: on_map,
                            }])
                            .collect();
                        (records, guards)
                    } else if limit != 0 {
                        let room = Guard::Below {
                            map: map.clone(),
                            limit,
                        };
                        (Vec::new(), vec![room])
                    } else {
                        (Vec::new(), Vec::new())
                    };
                    if self.max_live_drops != 0 {
                        guards.push(Guard::Fewer {
                            live: self.keys.live().to_owned(),
                            most: self.max_live_drops,
                        });
                    }
                    let drops = self.decode_all(&records);
                    let new = origin.spawned(id, spec, now);
                    let transition =
                        (self.rules).spawn(new, &origin.correlation, on_map, &drops, now);
                    Ok((transition, guards))
                })
            };
        self.step(
            "spawn",
            origin.position.as_ref(),
            None,
            guess,
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
        let records = (self.pool)
            .run("list", |mut connection| async move {
                self.map_records(&mut connection, map).await
            })
            .await;
        let mut drops = self.decode_all(&records);
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
        AppliedRecord::ask(&mut ask, &key, position);
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
            .await;
        // Steps on the partition read its floor again rather than fail their commit's guard.
        self.known.forget_floor(&key);
    }

    /// One PING, not retried: readiness must answer, not wait for Redis.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.pool.ping().await
    }
}

/// The replies to what a step's `prefetch` added to its first round trip, in order.
type Replies = std::vec::IntoIter<Value>;

/// What a step on drop `id` of `map` takes for its first round trip's answers, from what this
/// instance knows (`known`): the drop's map, and `prefetched`, the replies its `prefetch` would
/// have read (a spawn's: its map has room, its id a spare one). The applied record's floor comes
/// from what is known too, and the command's offset is taken as not applied; the commit's
/// guards check it all.
struct Guess {
    map: String,
    id: u32,
    prefetched: Vec<Value>,
}

/// What a step's `decide` returns: reading, then the rule's transition and the guards of what
/// the rule was given.
type Deciding<'a, T> = BoxFuture<'a, RedisResult<(Transition<T>, Vec<Guard>)>>;
