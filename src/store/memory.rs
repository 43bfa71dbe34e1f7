//! The in-memory store: drops live in this process and die with it.
//!
//! Drops are sharded by map (tenant, world, channel, map), so everything a map needs at once —
//! its drop list and its cap — sits under one lock, and commands for different maps rarely
//! meet. A small id index, sharded by id, finds a drop's shard from its id alone, as commands
//! keyed by drop id (and the holder's pick-up from anywhere) need. Each shard keeps a deadline
//! index with one entry a drop, so the expiry sweep touches only what comes due. A reservation
//! brings its drop's entry forward to when it lapses (`Rules::first_due`).
//! The store forgets its ids at a restart, so its ids follow the clock (`DropId::floor`): a
//! restarted process does not hand out again the ids of the run before.
//! Its ids are our own, one counter for all tenants (never the Atlas allocator's, which needs
//! the shared store), so the id index finds a drop by its id alone; a lookup is still by
//! (tenant, id), as in the shared store: `find` answers the asker's tenant's drop or none.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;

use super::{DropCounts, EventOut, Origin};
use crate::drop::command::DropRequest;
use crate::drop::event::Event;
use crate::drop::model::{Drop, DropId, DropSpec, Location, Millis, TenantRef};
use crate::drop::rules::{Refusal, Rules};
use crate::drop::transition::{has_room, Transition, Write};

const MAP_SHARDS: usize = 64;
const ID_SHARDS: usize = 64;

type MapKey = (TenantRef, Location);

/// A drop and the time its deadline-index entry names. Boxed: the tables then move 8 bytes,
/// not a whole drop, and their spare capacity costs little.
struct Lying {
    drop: Drop,
    due: Option<Millis>,
}

#[derive(Default)]
struct Shard {
    /// Ids are handed out by us, never chosen by a peer: a fast hash is safe here.
    drops: FxHashMap<DropId, Box<Lying>>,
    /// Each map's drop ids, sorted: listings come out in id order.
    maps: HashMap<MapKey, BTreeSet<DropId>>,
    /// `(when, drop)`: when the sweep must next look at the drop (see `Rules::due`).
    deadlines: BTreeSet<(Millis, DropId)>,
}

pub struct MemoryStore {
    rules: Rules,
    shards: Box<[Mutex<Shard>]>,
    /// Drop id → index of the shard that holds it; also the record of which ids are in use.
    ids: Box<[Mutex<FxHashMap<DropId, u8>>]>,
    /// The position (`DropId::at`) of the next id to try, unless the clock's floor is past it.
    next_id: AtomicU64,
    hasher: RandomState,
    /// Drops lying now, against `max_live_drops` (0 = no limit).
    live: AtomicUsize,
    max_live_drops: usize,
}

/// A panic elsewhere must not make every later command on the shard fail: the shard's data is
/// only ever changed by whole steps, so it stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    pub fn new(rules: Rules, max_live_drops: usize) -> MemoryStore {
        MemoryStore {
            rules,
            shards: (0..MAP_SHARDS).map(|_| Mutex::default()).collect(),
            ids: (0..ID_SHARDS).map(|_| Mutex::default()).collect(),
            next_id: AtomicU64::new(0),
            hasher: RandomState::new(),
            live: AtomicUsize::new(0),
            max_live_drops,
        }
    }

    /// A store whose next id is `first` (unless the clock's floor is past it): lets tests
    /// reach the wrap-around quickly.
    #[cfg(test)]
    fn starting_at(rules: Rules, first: DropId) -> MemoryStore {
        let store = MemoryStore::new(rules, 0);
        store.next_id_is(first);
        store
    }

    #[cfg(test)]
    fn next_id_is(&self, id: DropId) {
        self.next_id.store(id.position(), Ordering::Relaxed);
    }

    fn shard_of(&self, tenant: &TenantRef, location: Location) -> usize {
        (self.hasher.hash_one((tenant, location)) as usize) % MAP_SHARDS
    }

    fn id_slot(&self, id: DropId) -> &Mutex<FxHashMap<DropId, u8>> {
        &self.ids[id.get() as usize % ID_SHARDS]
    }

    /// Hands out the next id not in use at or past the clock's floor at `now`, wrapping from
    /// the last to the first (contract §5; `DropId::floor`).
    fn allocate(&self, shard: usize, now: Millis) -> DropId {
        // The position only grows: once at the floor, every position taken after is past it.
        self.next_id
            .fetch_max(DropId::floor(now), Ordering::Relaxed);
        loop {
            let id = DropId::at(self.next_id.fetch_add(1, Ordering::Relaxed));
            if let Entry::Vacant(slot) = lock(self.id_slot(id)).entry(id) {
                slot.insert(shard as u8);
                return id;
            }
        }
    }

    /// The locked shard holding `raw` for this tenant, or `None` when the tenant has no such drop.
    fn find(&self, tenant: &TenantRef, raw: u32) -> Option<(MutexGuard<'_, Shard>, DropId)> {
        let id = DropId::new(raw)?;
        let shard = *lock(self.id_slot(id)).get(&id)?;
        let guard = lock(&self.shards[usize::from(shard)]);
        let lying = guard.drops.get(&id)?;
        (lying.drop.tenant == *tenant).then_some((guard, id))
    }

    /// Decides a command on the tenant's drop `raw` (`None` when the tenant has no such drop)
    /// and commits it under the drop's shard's lock.
    fn decide_on_drop<T>(
        &self,
        tenant: &TenantRef,
        raw: u32,
        decide: impl FnOnce(Option<Drop>) -> Transition<T>,
        out: EventOut<'_>,
    ) -> Result<T, Refusal> {
        match self.find(tenant, raw) {
            Some((mut shard, id)) => {
                let transition = decide(Some(shard.drops[&id].drop.clone()));
                self.commit(&mut shard, transition, out)
            }
            None => {
                let transition = decide(None);
                debug_assert!(transition.writes.is_empty(), "no drop, nothing to write");
                transition.events.into_iter().for_each(out);
                transition.answer
            }
        }
    }

    /// Makes a transition's writes on the shard that holds its drops, and hands on its events
    /// while the shard is still locked, so that no later change of these drops can overtake them.
    fn commit<T>(
        &self,
        shard: &mut Shard,
        transition: Transition<T>,
        out: EventOut<'_>,
    ) -> Result<T, Refusal> {
        for write in transition.writes {
            match write {
                Write::Insert(drop) => self.insert(shard, drop),
                Write::Update(drop) => {
                    let id = drop.id;
                    shard
                        .drops
                        .get_mut(&id)
                        .expect("loaded under this lock")
                        .drop = drop;
                    self.bring_forward(shard, id);
                }
                Write::Remove(drop) => {
                    self.remove(shard, drop.id);
                }
                Write::Reschedule { id, at, .. } => {
                    if let Some(lying) = shard.drops.get_mut(&id) {
                        if let Some(before) = lying.due.replace(at) {
                            shard.deadlines.remove(&(before, id));
                        }
                        shard.deadlines.insert((at, id));
                    }
                }
                Write::Unschedule { id, .. } => {
                    if let Some(before) = shard.drops.get_mut(&id).and_then(|l| l.due.take()) {
                        shard.deadlines.remove(&(before, id));
                    }
                }
            }
        }
        transition.events.into_iter().for_each(out);
        transition.answer
    }

    /// Lays a new drop (its id already taken by `allocate`, its place by `has_room`) on its map.
    fn insert(&self, shard: &mut Shard, drop: Drop) {
        let id = drop.id;
        let due = self.rules.first_due(&drop);
        if let Some(at) = due {
            shard.deadlines.insert((at, id));
        }
        let key = (drop.tenant.clone(), drop.location);
        shard.maps.entry(key).or_default().insert(id);
        shard.drops.insert(id, Box::new(Lying { drop, due }));
    }

    fn forget_id(&self, id: DropId) {
        lock(self.id_slot(id)).remove(&id);
    }

    /// Moves a drop's deadline entry to when its state says the sweep must first look at it,
    /// when that is sooner (a later entry only makes the sweep look early, and look again).
    fn bring_forward(&self, shard: &mut Shard, id: DropId) {
        let lying = shard.drops.get_mut(&id).expect("the caller found it");
        let Some(want) = self.rules.first_due(&lying.drop) else {
            return;
        };
        if lying.due.is_some_and(|due| due <= want) {
            return;
        }
        if let Some(at) = lying.due {
            shard.deadlines.remove(&(at, id));
        }
        lying.due = Some(want);
        shard.deadlines.insert((want, id));
    }

    /// Removes a drop from every index of its shard and from the id index.
    fn remove(&self, shard: &mut Shard, id: DropId) -> Option<Drop> {
        let lying = shard.drops.remove(&id)?;
        if let Some(at) = lying.due {
            shard.deadlines.remove(&(at, id));
        }
        let drop = lying.drop;
        let key = (drop.tenant.clone(), drop.location);
        if let Entry::Occupied(mut map) = shard.maps.entry(key) {
            map.get_mut().remove(&id);
            if map.get().is_empty() {
                map.remove();
            }
        }
        self.forget_id(id);
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(drop)
    }
}

/// The commands and reads (see `DropStore`): each takes its shard's lock and returns.
impl MemoryStore {
    pub fn spawn(
        &self,
        origin: &Origin,
        spec: DropSpec,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<Drop, Refusal> {
        let live = self.live.fetch_add(1, Ordering::Relaxed);
        if let Err(refusal) = has_room(live, self.max_live_drops) {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(refusal);
        }
        let index = self.shard_of(&origin.tenant, origin.location);
        let id = self.allocate(index, now);
        let mut shard = lock(&self.shards[index]);
        let key = (origin.tenant.clone(), origin.location);
        let map = shard.maps.get_key_value(&key);
        let new = Drop {
            // Drops of one map share the map key's tenant: one allocation per map, not per drop.
            tenant: map
                .map_or(&origin.tenant, |((tenant, _), _)| tenant)
                .clone(),
            ..origin.spawned(id, spec, now)
        };
        let on_map = map.map_or(0, |(_, ids)| ids.len());
        let drops = map
            .into_iter()
            .flat_map(|(_, ids)| ids.iter().map(|id| &shard.drops[id].drop));
        let transition = self
            .rules
            .spawn(new, &origin.correlation, on_map, drops, now);
        self.commit(&mut shard, transition, out)
    }

    pub fn on_drop(
        &self,
        origin: &Origin,
        request: &DropRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        let decide = |found| self.rules.on_drop(request, found, origin.asker(), now);
        self.decide_on_drop(&origin.tenant, request.drop_id(), decide, out)
    }

    pub fn expire_due(&self, now: Millis, out: EventOut<'_>) -> usize {
        let mut expired = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            while let Some(&(at, id)) = shard.deadlines.first() {
                if at > now {
                    break;
                }
                shard.deadlines.pop_first();
                let lying = shard.drops.get_mut(&id).expect("indexed drops exist");
                lying.due = None;
                let transition = self.rules.sweep(lying.drop.clone(), now);
                expired += usize::from(self.commit(&mut shard, transition, out) == Ok(true));
            }
        }
        expired
    }

    pub fn expire_on_shutdown(&self, out: EventOut<'_>) -> usize {
        let mut expired = 0;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let mut drops: Vec<Drop> = std::mem::take(&mut *shard)
                .drops
                .into_values()
                .map(|lying| lying.drop)
                .collect();
            drops.sort_by_key(|drop| drop.id);
            self.live.fetch_sub(drops.len(), Ordering::Relaxed);
            for drop in drops {
                self.forget_id(drop.id);
                out(Event::expired(&drop));
                expired += 1;
            }
        }
        expired
    }

    pub fn get(&self, tenant: &TenantRef, id: u32, now: Millis) -> Option<Drop> {
        let (shard, id) = self.find(tenant, id)?;
        self.rules.as_seen(shard.drops[&id].drop.clone(), now)
    }

    pub fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop> {
        let shard = lock(&self.shards[self.shard_of(tenant, location)]);
        let key = (tenant.clone(), location);
        let ids = shard.maps.get(&key).into_iter().flatten();
        ids.filter_map(|id| self.rules.as_seen(shard.drops[id].drop.clone(), now))
            .collect()
    }

    /// Scans every drop: meant for a metrics scrape, not for the command path.
    pub fn counts(&self, now: Millis) -> DropCounts {
        let mut counts = DropCounts::default();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            counts.live += shard.drops.len();
            counts.reserved += (shard.drops.values())
                .filter(|lying| self.rules.is_held(&lying.drop, now))
                .count();
        }
        counts
    }
}

#[cfg(test)]
mod tests;
