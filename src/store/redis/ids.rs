//! Drop ids in the shared store: where they come from, how the indexes name a drop, and what
//! becomes of an id once its drop is gone.
//!
//! **Sources** (`DROP_ID_SOURCE`). `Own` (contract §5): our counter, `<prefix>:last-id`, one for
//! all tenants, 1000000001..=2000000000, wrapping and skipping ids in use, so an id names one drop
//! across tenants. `Atlas` (contract-head §7): the ecosystem's object-id allocator, which monsters
//! and reactors take their ids from as well (the client shows the three in one id space of a
//! map): one counter and one free list per tenant id, under the Atlas prefix, not ours. Its ids
//! are unique per tenant only: two tenants may hold the same id at once.
//!
//! **Index entries.** The id index and the deadline and reservation sets name a drop by
//! (tenant, id) (`Ids::entry`): an atlas id as `<tenant id>/<id>`. The tenant id alone is enough,
//! since the allocator keeps one counter per tenant id, and the record read through an entry is
//! always checked against the asker's whole tenant. An own id names one drop across tenants,
//! so its entry stays the id alone: that is what versions before atlas ids wrote (a rolling
//! upgrade meets entries of the shape it writes), and what the own counter asks when it skips
//! ids still in use (one `HEXISTS`). The map hashes hold a tenant's drops only, by id alone.
//!
//! **Allocation within the step.** A spawn's step (`RedisStore::spawn`) takes its id in one
//! script call (atomic, as the other Atlas services allocate) — an id of our own in the step's
//! first round trip, with its reads (`Ids::allocate_ahead`), an atlas id between its reads and
//! its commit, once the spawn may go — and keeps it when the step is decided again because
//! something read changed: a commit that found so wrote nothing, so the id is used by the retry
//! and by nobody else. An id whose step never commits with it — the command found applied on
//! retrying (by another instance during a rebalance, or by our own commit whose reply was lost:
//! the id may then be in use, so it is not given back), the spawn refused when decided again,
//! the process gone before the commit — is never used and never released: below the recycle
//! threshold that is what becomes of every id anyway; above it, the free list misses one id.
//! Uniqueness never depends on it.
//!
//! **Spare ids of our own.** A first round trip takes `TAKEN_AT_ONCE` ids of our own, not one:
//! the spawns after it on this instance take the rest (`Ids::spare`) and, knowing their id,
//! skip their first round trip (see `RedisStore::spawn`). Each was free when taken, as one taken
//! alone is; one is kept `SPARE_FOR` at most, a time in which the counter cannot come round its
//! range of a billion ids again, and one never used (the process stops) is never used: a gap in
//! a range that wraps.
//!
//! **Release with the removal.** Once a drop is gone (picked up, expired, consumed, evicted by
//! its map's cap), the commit that removes it also gives its atlas id back (`Ids::release`):
//! a write of the commit script (`atlas-release`), so it runs atomically with the removal; each
//! removal commits once, so an id goes back once, and never while its drop still lies. It
//! pushes the id onto the free list when the counter is at or above the threshold, and does
//! nothing below it.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Script, Value};
use uuid::Uuid;

use super::commit::CommitArgs;
use super::keys::Keys;
use crate::drop::model::{DropId, Tenant};

/// Where drop ids come from (`DROP_ID_SOURCE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdSource {
    /// Our own counter (contract §5).
    Own,
    /// The Atlas allocator (contract-head §7), its keys under `prefix` (`{P}`: `atlas`, or
    /// `<ATLAS_REDIS_ENV>:atlas`).
    Atlas { prefix: String },
}

/// The counter at or above which released ids are used again: 100 000 000 ids before the end.
pub const RECYCLE_AT: u32 = DropId::ATLAS_LAST.get() - 100_000_000;

/// Hands out our own next `ARGV[3]` ids after the last, wrapping from the last id of the range
/// to the first and skipping ids still in use (contract §5). One script: instances never hand
/// out one id twice.
const OWN_NEXT: &str = r"
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
local taken = {}
for _ = 1, 100000 do
  local id = redis.call('INCR', KEYS[1])
  if id < first or id > last then
    id = first
    redis.call('SET', KEYS[1], id)
  end
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    taken[#taken + 1] = id
    if #taken == tonumber(ARGV[3]) then return taken end
  end
end
return redis.error_reply('no free drop id')
";

/// Ids of our own one call takes: one for the spawn that asks, the rest spare.
const TAKEN_AT_ONCE: u32 = 16;
/// How long a spare id is kept (see the module's comment).
const SPARE_FOR: Duration = Duration::from_secs(10);

/// The Atlas allocator's step (contract-head §7): a fresh counter starts at the first id; at or
/// above the threshold, a released id is used again, last released first; else the counter
/// moves on. Past the last id the caller finds the range exhausted. Nil for a free-list entry
/// that is not a number.
const ATLAS_NEXT: &str = r"
local counter = redis.call('GET', KEYS[1])
if not counter then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
if tonumber(counter) >= tonumber(ARGV[2]) then
  local id = redis.call('LPOP', KEYS[2])
  if id then return tonumber(id) end
end
return redis.call('INCR', KEYS[1])
";

/// The drop ids of one store: its source, the Atlas allocator's script, and the spare ids of
/// our own, the oldest first, with when they were taken.
pub struct Ids {
    source: IdSource,
    keys: Keys,
    atlas_next: Script,
    spares: Mutex<VecDeque<(DropId, Instant)>>,
}

/// What an allocation gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Allocated {
    Id(DropId),
    /// The Atlas allocator has no id left for the tenant (or handed out what is no id: its
    /// answer, if a number).
    Exhausted(Option<i64>),
}

impl Ids {
    pub fn new(source: IdSource, keys: &Keys) -> Ids {
        Ids {
            source,
            keys: keys.clone(),
            atlas_next: Script::new(ATLAS_NEXT),
            spares: Mutex::default(),
        }
    }

    /// The entry naming `tenant`'s drop `id` in the id index and the deadline and reservation
    /// sets (see the module's comment).
    pub fn entry(&self, tenant: &Tenant, id: DropId) -> String {
        match self.source {
            IdSource::Own => id.to_string(),
            IdSource::Atlas { .. } => format!("{}/{id}", tenant.id),
        }
    }

    /// The drop id an entry names (either shape), if it is one.
    pub fn id_of(entry: &str) -> Option<DropId> {
        let id = entry.rsplit_once('/').map_or(entry, |(_, id)| id);
        id.parse().ok().and_then(DropId::new)
    }

    /// Whether a spawn's first round trip takes its id (`allocate_ahead`): our own ids only. A
    /// spawn refused after all then wastes an id of a range that wraps and skips ids in use;
    /// an atlas id is taken only once the spawn may go, since one taken above the recycle
    /// threshold and not used is missing from the shared free list for good.
    pub fn allocates_ahead(&self) -> bool {
        self.source == IdSource::Own
    }

    /// The call that takes the next `TAKEN_AT_ONCE` ids of our own (`OWN_NEXT`). `EVAL` with
    /// the script's text: it goes in a step's first round trip, and a pipeline does not load a
    /// script that Redis's cache lacks.
    fn own_next(&self) -> Cmd {
        let mut next = redis::cmd("EVAL");
        (next.arg(OWN_NEXT).arg(2))
            .arg(self.keys.last_id())
            .arg(self.keys.ids())
            .arg(DropId::FIRST.get())
            .arg(DropId::LAST.get())
            .arg(TAKEN_AT_ONCE);
        next
    }

    /// Adds to a step's first round trip what takes ids of our own (read back with
    /// `allocated_ahead`).
    pub fn allocate_ahead(&self, first: &mut Pipeline) {
        first.add_command(self.own_next());
    }

    /// The id of our own a reply to `own_next` gives; the others it gave are kept spare.
    pub fn allocated_ahead(&self, reply: Value) -> RedisResult<Allocated> {
        let taken = Vec::<u32>::from_redis_value(reply)?;
        let mut taken = (taken.into_iter())
            .map(|raw| DropId::new(raw).expect("the script keeps to the id range"));
        let id = taken.next().expect("the script answers ids or an error");
        let now = Instant::now();
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        spares.extend(taken.map(|spare| (spare, now)));
        Ok(Allocated::Id(id))
    }

    /// A spare id of our own (see the module's comment), if one was taken lately: the oldest.
    pub fn spare(&self) -> Option<DropId> {
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((id, taken)) = spares.pop_front() {
            if taken.elapsed() < SPARE_FOR {
                return Some(id);
            }
        }
        None
    }

    /// Takes the next id for a drop of `tenant`.
    pub async fn allocate(
        &self,
        connection: &mut impl ConnectionLike,
        tenant: &Tenant,
    ) -> RedisResult<Allocated> {
        match &self.source {
            IdSource::Own => self.allocated_ahead(self.own_next().query_async(connection).await?),
            IdSource::Atlas { prefix } => {
                let raw: Option<i64> = (self.atlas_next)
                    .key(next_key(prefix, tenant.id))
                    .key(free_key(prefix, tenant.id))
                    .arg(DropId::ATLAS_FIRST.get())
                    .arg(RECYCLE_AT)
                    .invoke_async(connection)
                    .await?;
                let id = raw.and_then(|raw| u32::try_from(raw).ok());
                Ok(match id.and_then(DropId::new) {
                    Some(id) => Allocated::Id(id),
                    None => Allocated::Exhausted(raw),
                })
            }
        }
    }

    /// Adds to `writes` (a commit removing the drop) what gives `tenant`'s `id` back: onto the
    /// free list when the counter is at or above the threshold (`atlas-release`, a write the
    /// commit script knows).
    pub fn release(&self, writes: &mut CommitArgs, tenant: &Tenant, id: DropId) {
        if let IdSource::Atlas { prefix } = &self.source {
            let (counter, free_list) = (next_key(prefix, tenant.id), free_key(prefix, tenant.id));
            writes.atlas_release(&counter, &free_list, id.get(), RECYCLE_AT);
        }
    }
}

/// The Atlas allocator's counter of a tenant: the last id it handed out.
pub fn next_key(prefix: &str, tenant_id: Uuid) -> String {
    format!("{prefix}:oid:{tenant_id}:next")
}

/// The Atlas allocator's free list of a tenant: released ids, the last released first.
pub fn free_key(prefix: &str, tenant_id: Uuid) -> String {
    format!("{prefix}:oid:{tenant_id}:free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_a_drop_by_tenant_and_id_and_read_back() {
        let keys = Keys::new("atlas-drops");
        let tenant = Tenant {
            id: Uuid::from_u128(7),
            region: "GMS".to_owned(),
            major_version: 83,
            minor_version: 1,
        };
        let own = Ids::new(IdSource::Own, &keys);
        let prefix = "main:atlas".to_owned();
        let atlas = Ids::new(IdSource::Atlas { prefix }, &keys);
        let id = DropId::ATLAS_FIRST;
        assert_eq!(own.entry(&tenant, id), "1000000");
        assert_eq!(
            atlas.entry(&tenant, id),
            "00000000-0000-0000-0000-000000000007/1000000"
        );
        for entry in [own.entry(&tenant, id), atlas.entry(&tenant, id)] {
            assert_eq!(Ids::id_of(&entry), Some(id), "{entry}");
        }
        for bad in ["", "x", "7/", "7/999999", "2147483648", "-1"] {
            assert_eq!(Ids::id_of(bad), None, "{bad}");
        }
        assert_eq!(
            next_key("main:atlas", tenant.id),
            "main:atlas:oid:00000000-0000-0000-0000-000000000007:next"
        );
        assert_eq!(
            free_key("atlas", tenant.id),
            "atlas:oid:00000000-0000-0000-0000-000000000007:free"
        );
        assert_eq!(RECYCLE_AT, 2_047_483_647);
    }
}
