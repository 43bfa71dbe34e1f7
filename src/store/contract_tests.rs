//! What every store must do, as tests each store runs: the same transitions as a model that
//! keeps drops in a plain list and scans it for everything (whatever a store's indexes or
//! transactions do, it must answer exactly as the model does); exactly one winner of racing
//! reservations; unique ids under concurrent spawns; tenants sharing an id kept apart, and
//! tenants holding the same drop id (atlas ids) too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier, LazyLock};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio::runtime::Runtime;
use uuid::Uuid;

use super::{DropCounts, DropStore, EventOut, LogPosition, Origin};
use crate::drop::command::{CharacterRequest, DropRequest, ReserveRequest};
use crate::drop::event::Event;
use crate::drop::model::{
    Contents, Correlation, Drop, DropId, DropSpec, Dropper, Location, Millis, Point, Status,
    Tenant, TenantRef,
};
use crate::drop::rules::{Refusal, Rules};
use crate::drop::transition::{Transition, Write};

/// The runtime that runs the tests' store calls (the tests' threads wait on it).
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
});

/// A store driven from a test's thread: each call runs to completion before it returns.
pub struct Blocking(pub DropStore);

impl Blocking {
    /// Runs `future` to completion.
    pub fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        RUNTIME.block_on(future)
    }

    pub fn spawn(
        &self,
        origin: &Origin,
        spec: DropSpec,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<Drop, Refusal> {
        Blocking::run(self.0.spawn(origin, spec, now, out))
    }

    pub fn on_drop(
        &self,
        origin: &Origin,
        request: DropRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        Blocking::run(self.0.on_drop(origin, &request, now, out))
    }

    pub fn expire_due(&self, now: Millis, out: EventOut<'_>) -> usize {
        Blocking::run(self.0.expire_due(now, out))
    }

    pub fn expire_on_shutdown(&self, out: EventOut<'_>) -> usize {
        self.0.expire_on_shutdown(out)
    }

    pub fn get(&self, tenant: &TenantRef, id: u32, now: Millis) -> Option<Drop> {
        Blocking::run(self.0.get(tenant, id, now))
    }

    pub fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop> {
        Blocking::run(self.0.list(tenant, location, now))
    }

    pub fn counts(&self, now: Millis) -> DropCounts {
        Blocking::run(self.0.counts(now))
    }

    /// Whether the store keeps its events in its outbox, and its drops at shutdown.
    pub fn shared(&self) -> bool {
        matches!(self.0, DropStore::Shared(_))
    }

    pub fn was_applied(&self, position: &LogPosition) -> bool {
        Blocking::run(self.0.was_applied(position))
    }

    pub fn note_committed(&self, partition: &str, committed: i64) {
        Blocking::run(self.0.note_committed(partition, committed))
    }
}

pub const RULES: Rules = Rules {
    expire_ms: 50_000,
    reservation_timeout_ms: 10_000,
    ownership_ms: 15_000,
    map_drop_limit: 3,
    pickup_range_x: 800,
    pickup_range_y: 600,
};

pub fn tenant(n: u8) -> TenantRef {
    Arc::new(Tenant {
        id: Uuid::from_u128(u128::from(n) + 1),
        region: "GMS".into(),
        major_version: 83,
        minor_version: 1,
    })
}

pub fn location(map: u8) -> Location {
    Location {
        world_id: 0,
        channel_id: 1,
        map_id: 100_000_000 + u32::from(map),
        instance: Uuid::nil(),
    }
}

pub fn origin(tenant_n: u8, map: u8, transaction: u128) -> Origin {
    Origin {
        tenant: tenant(tenant_n),
        location: location(map),
        correlation: Correlation {
            transaction_id: Uuid::from_u128(transaction),
            ..Correlation::default()
        },
        position: None,
    }
}

pub fn spec(meso: bool, drop_type: u8, owner_id: u32, x: i16) -> DropSpec {
    DropSpec {
        contents: if meso {
            Contents::new(0, 0, 0, 100).unwrap()
        } else {
            Contents::new(2_000_000, 0, 1, 0).unwrap()
        },
        drop_type,
        position: Point { x, y: 0 },
        owner_id,
        owner_party_id: 1,
        dropper: Dropper::default(),
        player_drop: false,
        mod_: 0,
    }
}

/// Spawns a meso drop on tenant 0's map 0 at time 0: its id.
pub fn spawned_id(store: &Blocking) -> u32 {
    let spawned = store.spawn(
        &origin(0, 0, 0),
        spec(true, 2, 0, 0),
        Millis(0),
        &mut |_| {},
    );
    spawned.expect("spawned").id.get()
}

/// A plain reservation of drop `drop_id` by `character_id`: at (0, 0), no pet, no party, and
/// (for a meso drop) asked already, with nobody else present.
pub fn reserve(drop_id: u32, character_id: u32) -> ReserveRequest {
    ReserveRequest {
        drop_id,
        character_id,
        position: Point::default(),
        pet_slot: -1,
        party_id: 0,
        present: Some(Vec::new()),
    }
}

/// How the model hands out ids: as the store under test does.
pub enum ModelIds {
    /// Our own counter (contract §5): `next` the position (`DropId::at`) of the next id to try;
    /// `follow_the_clock` as a store that forgets its ids must (`DropId::floor`).
    Own { next: u64, follow_the_clock: bool },
    /// The Atlas allocator (contract-head §7), fresh: a counter per tenant id, from
    /// `DropId::ATLAS_FIRST`, far below the recycle threshold. Tenants' ids coincide.
    Atlas { next: HashMap<Uuid, u32> },
}

impl ModelIds {
    /// Our own counter, its next id `first`.
    pub fn own(first: DropId, follow_the_clock: bool) -> ModelIds {
        ModelIds::Own {
            next: first.position(),
            follow_the_clock,
        }
    }

    pub fn atlas() -> ModelIds {
        ModelIds::Atlas {
            next: HashMap::new(),
        }
    }
}

/// The same transitions (`drop::transition`) over a list, scanned every time.
struct Model {
    drops: Vec<Drop>,
    ids: ModelIds,
}

/// Whether `drop` is `tenant`'s drop `id`: a drop is named by both (contract-head §7).
fn is(drop: &Drop, tenant: &TenantRef, id: DropId) -> bool {
    drop.id == id && drop.tenant == *tenant
}

impl Model {
    fn find(&self, tenant: &TenantRef, raw: u32) -> Option<Drop> {
        let found = self
            .drops
            .iter()
            .find(|d| d.id.get() == raw && d.tenant == *tenant);
        found.cloned()
    }

    /// Commits a transition to the list; the list has no deadline index to keep.
    fn commit<T>(&mut self, transition: Transition<T>, out: &mut Vec<Event>) -> Result<T, Refusal> {
        for write in transition.writes {
            match write {
                Write::Insert(drop) => self.drops.push(drop),
                Write::Update(drop) => {
                    let index = (self.drops.iter())
                        .position(|d| is(d, &drop.tenant, drop.id))
                        .unwrap();
                    self.drops[index] = drop;
                }
                Write::Remove(drop) => self.drops.retain(|d| !is(d, &drop.tenant, drop.id)),
                Write::Reschedule { .. } | Write::Unschedule { .. } => {}
            }
        }
        out.extend(transition.events);
        transition.answer
    }

    fn next_id(&mut self, tenant: &TenantRef, now: Millis) -> DropId {
        match &mut self.ids {
            ModelIds::Own {
                next,
                follow_the_clock,
            } => {
                let mut position = *next;
                if *follow_the_clock {
                    position = position.max(DropId::floor(now));
                }
                while self.drops.iter().any(|d| d.id == DropId::at(position)) {
                    position += 1;
                }
                *next = position + 1;
                DropId::at(position)
            }
            ModelIds::Atlas { next } => {
                let id = next
                    .entry(tenant.id)
                    .and_modify(|id| *id += 1)
                    .or_insert(DropId::ATLAS_FIRST.get());
                DropId::new(*id).unwrap()
            }
        }
    }

    fn spawn(&mut self, origin: &Origin, spec: DropSpec, now: Millis, out: &mut Vec<Event>) {
        let id = self.next_id(&origin.tenant, now);
        let new = origin.spawned(id, spec, now);
        let in_map = |d: &&Drop| d.tenant == origin.tenant && d.location == origin.location;
        let on_map = self.drops.iter().filter(in_map).count();
        let map = self.drops.iter().filter(in_map);
        let transition = RULES.spawn(new, &origin.correlation, on_map, map, now);
        self.commit(transition, out).unwrap();
    }

    /// A drop expires once it lay its time and nobody holds it, or once its reservation
    /// lapsed: the sweep's rule, asked of every drop.
    fn expire_due(&mut self, now: Millis, out: &mut Vec<Event>) {
        for drop in self.drops.clone() {
            self.commit(RULES.sweep(drop, now), out).unwrap();
        }
    }

    /// What a reader sees: nothing of a drop whose reservation lapsed.
    fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop> {
        let mut drops: Vec<Drop> = self
            .drops
            .iter()
            .filter(|d| d.tenant == *tenant && d.location == location)
            .filter_map(|d| RULES.as_seen(d.clone(), now))
            .collect();
        drops.sort_by_key(|d| d.id);
        drops
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    Spawn {
        tenant: u8,
        map: u8,
        meso: bool,
        drop_type: u8,
        owner: u32,
        x: i16,
    },
    Reserve {
        pick: usize,
        tenant: u8,
        map: u8,
        character: u32,
        x: i16,
        pet: bool,
        party: u32,
    },
    Cancel {
        pick: usize,
        tenant: u8,
        character: u32,
    },
    PickUp {
        pick: usize,
        tenant: u8,
        map: u8,
        character: u32,
    },
    Wait {
        ms: u64,
    },
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2u8, 0..3u8, any::<bool>(), 0..4u8, 0..3u32, -1000..1000i16).prop_map(
            |(tenant, map, meso, drop_type, owner, x)| Op::Spawn { tenant, map, meso, drop_type, owner, x }
        ),
        3 => (any::<usize>(), 0..2u8, 0..3u8, 0..3u32, -1000..1000i16, any::<bool>(), 0..3u32).prop_map(
            |(pick, tenant, map, character, x, pet, party)| Op::Reserve { pick, tenant, map, character, x, pet, party }
        ),
        1 => (any::<usize>(), 0..2u8, 0..3u32).prop_map(|(pick, tenant, character)| Op::Cancel { pick, tenant, character }),
        2 => (any::<usize>(), 0..2u8, 0..3u8, 0..3u32).prop_map(
            |(pick, tenant, map, character)| Op::PickUp { pick, tenant, map, character }
        ),
        2 => (0..30_000u64).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// Events by drop: by (id, tenant), since tenants may hold the same id.
fn by_drop(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(|e| (e.drop_id, e.tenant.id));
    events
}

/// Runs `ops` on `store` (whose ids come as `ids` says) and on the model, comparing every
/// answer, event, listing and count. A shared store keeps its drops at shutdown; the others
/// expire them.
pub fn behaves_as_the_model(
    store: &Blocking,
    ids: ModelIds,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut model = Model {
        drops: Vec::new(),
        ids,
    };
    let mut ever: Vec<u32> = vec![DropId::FIRST.get()];
    let mut now = Millis(1_000_000);
    let mut outbox = 0;
    for (step, op) in ops.into_iter().enumerate() {
        let transaction = step as u128;
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let out = &mut |e| got.push(e);
        let pick = |pick: usize| ever[pick % ever.len()];
        // A command on a drop: decided below, by the store and by the model.
        let mut on_drop = None;
        // One sweep visits shards in turn: only the set of its events is defined.
        let mut in_any_order = false;
        match op {
            Op::Spawn {
                tenant,
                map,
                meso,
                drop_type,
                owner,
                x,
            } => {
                let origin = origin(tenant, map, transaction);
                let spec = spec(meso, drop_type, owner, x);
                let drop = store.spawn(&origin, spec, now, out).unwrap();
                ever.push(drop.id.get());
                model.spawn(&origin, spec, now, &mut want);
            }
            Op::Reserve {
                pick: p,
                tenant,
                map,
                character,
                x,
                pet,
                party,
            } => {
                let origin = origin(tenant, map, transaction);
                let request = ReserveRequest {
                    drop_id: pick(p),
                    character_id: character,
                    position: Point { x, y: 0 },
                    pet_slot: if pet { 0 } else { -1 },
                    party_id: party,
                    present: Some(Vec::new()),
                };
                on_drop = Some((origin, DropRequest::Reserve(request)));
            }
            Op::Cancel {
                pick: p,
                tenant,
                character,
            } => {
                let origin = origin(tenant, 0, transaction);
                let request = CharacterRequest {
                    drop_id: pick(p),
                    character_id: character,
                };
                on_drop = Some((origin, DropRequest::CancelReservation(request)));
            }
            Op::PickUp {
                pick: p,
                tenant,
                map,
                character,
            } => {
                let origin = origin(tenant, map, transaction);
                let request = CharacterRequest {
                    drop_id: pick(p),
                    character_id: character,
                };
                on_drop = Some((origin, DropRequest::PickUp(request)));
            }
            Op::Wait { ms } => {
                now = now.saturating_add(ms);
                let expired = store.expire_due(now, out);
                model.expire_due(now, &mut want);
                prop_assert_eq!(expired, want.len());
                in_any_order = true;
            }
        }
        if let Some((origin, request)) = on_drop {
            let found = model.find(&origin.tenant, request.drop_id());
            let transition = RULES.on_drop(&request, found, origin.asker(), now);
            prop_assert_eq!(
                store.on_drop(&origin, request, now, out),
                model.commit(transition, &mut want)
            );
        }
        if in_any_order {
            got = by_drop(got);
            want = by_drop(want);
        }
        prop_assert_eq!(&got, &want);
        // A shared store keeps every event in its outbox until a relay sends it (none runs here).
        if store.shared() {
            outbox += got.len();
        }
        let reserved = model.drops.iter().filter(|d| RULES.is_held(d, now)).count();
        prop_assert_eq!(
            store.counts(now),
            DropCounts {
                live: model.drops.len(),
                reserved,
                outbox,
            }
        );
        for t in 0..2 {
            for m in 0..3 {
                prop_assert_eq!(
                    store.list(&tenant(t), location(m), now),
                    model.list(&tenant(t), location(m), now)
                );
            }
        }
        for drop in &model.drops {
            prop_assert_eq!(
                store.get(&drop.tenant, drop.id.get(), now),
                RULES.as_seen(drop.clone(), now)
            );
            prop_assert_eq!(store.get(&tenant(9), drop.id.get(), now), None);
        }
    }
    let mut all = Vec::new();
    let expired = store.expire_on_shutdown(&mut |e| all.push(e));
    if store.shared() {
        prop_assert_eq!(expired, 0);
        prop_assert!(all.is_empty());
    } else {
        prop_assert_eq!(expired, model.drops.len());
        prop_assert_eq!(store.counts(now), DropCounts::default());
        let expired: HashSet<u32> = all.iter().map(|e| e.drop_id).collect();
        let lying: HashSet<u32> = model.drops.iter().map(|d| d.id.get()).collect();
        prop_assert_eq!(expired, lying);
    }
    Ok(())
}

/// Racers on every instance reserve one drop at once: exactly one wins, and every racer
/// hears exactly one answer.
pub fn of_many_concurrent_reservations_exactly_one_wins(instances: &[Arc<Blocking>]) {
    const RACERS: u32 = 16;
    for _ in 0..50 {
        let drop = instances[0]
            .spawn(
                &origin(0, 0, 1),
                spec(false, 2, 0, 0),
                Millis(0),
                &mut |_| {},
            )
            .unwrap();
        let start = Arc::new(Barrier::new(RACERS as usize));
        let racers: Vec<_> = (0..RACERS)
            .map(|character_id| {
                let store = instances[character_id as usize % instances.len()].clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    let request = reserve(drop.id.get(), character_id);
                    start.wait();
                    let mut events = Vec::new();
                    let request = DropRequest::Reserve(request);
                    let outcome = store.on_drop(&origin(0, 0, 2), request, Millis(1), &mut |e| {
                        events.push(e)
                    });
                    (outcome, events)
                })
            })
            .collect();
        let results: Vec<_> = racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .collect();
        let winners = results
            .iter()
            .filter(|(outcome, _)| outcome.is_ok())
            .count();
        assert_eq!(winners, 1);
        assert!(results.iter().all(|(_, events)| events.len() == 1));
    }
}

/// Spawners on every instance at once, for two tenants, all get different ids: across tenants
/// when `unique_across_tenants` (our own counter), else within each tenant (atlas ids).
pub fn concurrent_spawns_get_unique_ids(instances: &[Arc<Blocking>], unique_across_tenants: bool) {
    let spawners: Vec<_> = (0..4u8)
        .map(|n| {
            let store = instances[usize::from(n) % instances.len()].clone();
            std::thread::spawn(move || {
                (0..500)
                    .map(|i| {
                        store
                            .spawn(
                                &origin(n % 2, (i % 3) as u8 + n * 3, 0),
                                spec(true, 2, 0, 0),
                                Millis(0),
                                &mut |_| {},
                            )
                            .unwrap()
                    })
                    .map(|drop| (drop.tenant.id, drop.id))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<(Uuid, DropId)> = spawners
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    if unique_across_tenants {
        let ids: HashSet<DropId> = ids.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids.len(), 2000);
    }
}

/// Tenants that share an id but not a region or a version are as far apart as any two
/// (contract §2): on one map under a cap of 3 (`RULES`), the first fills it and each of the
/// others spawns one drop there. No drop is evicted for another tenant's, each lists only its
/// own, and none finds another's by id.
pub fn tenants_sharing_an_id_share_no_map(store: &Blocking) {
    let first = tenant(0);
    let variant = |region: &str, major_version, minor_version| {
        Arc::new(Tenant {
            region: region.to_owned(),
            major_version,
            minor_version,
            ..(*first).clone()
        })
    };
    let tenants = [
        first.clone(),
        variant("GMS", 84, 1),
        variant("GMS", 83, 2),
        variant("EMS", 83, 1),
        // Regions are any text: braces, separators and escapes of a store's keys included.
        variant("G}MS{", 83, 1),
        variant("GMS/83", 1, 1),
        variant("G%7DMS%7B", 83, 1),
        variant("Ünïcode", 83, 1),
    ];
    let spawn = |tenant: &TenantRef, n: u128| {
        let origin = Origin {
            tenant: tenant.clone(),
            ..origin(0, 0, n)
        };
        let mut events = Vec::new();
        let drop = store
            .spawn(&origin, spec(true, 2, 0, 0), Millis(n as u64), &mut |e| {
                events.push(e)
            })
            .expect("spawned");
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["CREATED"], "{:?} {events:?}", tenant);
        drop
    };
    let mut spawned: Vec<(TenantRef, Vec<Drop>)> = Vec::new();
    for (index, tenant) in tenants.iter().enumerate() {
        let count = if index == 0 { RULES.map_drop_limit } else { 1 };
        let drops = (0..count)
            .map(|n| spawn(tenant, (index * 10 + n) as u128))
            .collect();
        spawned.push((tenant.clone(), drops));
    }
    let now = Millis(100);
    for (tenant, drops) in &spawned {
        assert_eq!(&store.list(tenant, location(0), now), drops, "{tenant:?}");
        for (other, _) in spawned.iter().filter(|(other, _)| other != tenant) {
            for drop in drops {
                assert_eq!(store.get(other, drop.id.get(), now), None, "{other:?}");
            }
        }
    }
}

/// Two tenants holding the same drop id at once — atlas ids are unique per tenant only
/// (contract-head §7) — each see and touch their own drop alone: reserving, picking up,
/// consuming and expiring one leaves the other as it was. `same_ids`: the store's next ids
/// coincide for tenants 0 and 1 (a fresh Atlas allocator); a store whose ids are unique across
/// tenants runs the same steps on ids that differ.
pub fn tenants_holding_the_same_id_keep_apart(store: &Blocking, same_ids: bool) {
    let (a, b) = (origin(0, 0, 1), origin(1, 0, 2));
    let spawn = |origin: &Origin, at| {
        let spawned = store.spawn(origin, spec(false, 2, 0, 0), Millis(at), &mut |_| {});
        spawned.expect("spawned")
    };
    // The events a command on a drop causes: (type, tenant, drop id).
    let on_drop = |origin: &Origin, request: DropRequest, at| {
        let mut events = Vec::new();
        let asked = format!("{request:?}");
        let answer = store.on_drop(origin, request, Millis(at), &mut |e| events.push(e));
        assert_eq!(answer, Ok(()), "{asked}");
        summary(events)
    };
    let expire = |at| {
        let mut events = Vec::new();
        store.expire_due(Millis(at), &mut |e| events.push(e));
        summary(events)
    };
    let seen =
        |origin: &Origin, drop: &Drop, at| store.get(&origin.tenant, drop.id.get(), Millis(at));
    let reservation =
        |drop: &Drop, character_id| DropRequest::Reserve(reserve(drop.id.get(), character_id));
    let (a1, b1) = (spawn(&a, 0), spawn(&b, 0));
    assert_eq!(a1.id == b1.id, same_ids, "{a1:?} {b1:?}");
    assert_eq!(seen(&a, &a1, 1).as_ref(), Some(&a1));
    assert_eq!(seen(&b, &b1, 1).as_ref(), Some(&b1));

    // A's character reserves A's drop; B's lies AVAILABLE, free for B's character to reserve.
    assert_eq!(
        on_drop(&a, reservation(&a1, 7), 1),
        [("RESERVED", 0, a1.id)]
    );
    assert_eq!(seen(&b, &b1, 1).as_ref(), Some(&b1));
    assert_eq!(
        on_drop(&b, reservation(&b1, 8), 1),
        [("RESERVED", 1, b1.id)]
    );
    // A's pick-up takes A's drop; B's stays, held by B's character.
    let pick_up = DropRequest::PickUp(CharacterRequest {
        drop_id: a1.id.get(),
        character_id: 7,
    });
    assert_eq!(on_drop(&a, pick_up, 2), [("PICKED_UP", 0, a1.id)]);
    assert_eq!(seen(&a, &a1, 2), None);
    let held = seen(&b, &b1, 2).expect("B's drop lies");
    assert!(
        matches!(held.status, Status::Reserved(r) if r.character_id == 8),
        "{held:?}"
    );

    // Again on a second pair: B consumes its drop, A's stays.
    let (a2, b2) = (spawn(&a, 3), spawn(&b, 3));
    assert_eq!(a2.id == b2.id, same_ids, "{a2:?} {b2:?}");
    let consume = DropRequest::Consume {
        drop_id: b2.id.get(),
    };
    assert_eq!(on_drop(&b, consume, 4), [("CONSUMED", 1, b2.id)]);
    assert_eq!(seen(&a, &a2, 4).as_ref(), Some(&a2));
    assert_eq!(
        store.list(&a.tenant, a.location, Millis(4)),
        std::slice::from_ref(&a2)
    );
    assert_eq!(store.list(&b.tenant, b.location, Millis(4)), [held]);

    // B's reservation lapses and the sweep removes B's drop; A's expires in its own time.
    let lapse = 1 + RULES.reservation_timeout_ms;
    assert_eq!(expire(lapse), [("EXPIRED", 1, b1.id)]);
    assert_eq!(seen(&a, &a2, lapse).as_ref(), Some(&a2));
    assert_eq!(expire(3 + RULES.expire_ms), [("EXPIRED", 0, a2.id)]);
    assert_eq!(store.counts(Millis(3 + RULES.expire_ms)).live, 0);
}

/// Events as (type, tenant (`tenant(n)`'s n), drop id).
fn summary(events: Vec<Event>) -> Vec<(&'static str, u128, DropId)> {
    (events.into_iter())
        .map(|e| {
            let id = DropId::new(e.drop_id).expect("a drop's id");
            (e.kind.name(), e.tenant.id.as_u128() - 1, id)
        })
        .collect()
}
