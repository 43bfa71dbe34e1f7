use std::sync::Arc;

use uuid::Uuid;

use super::command::{CharacterRequest, ReserveRequest};
use super::model::*;
use super::rules::*;

const HERE: Location = Location {
    world_id: 0,
    channel_id: 1,
    map_id: 100_000_000,
    instance: Uuid::nil(),
};
const THERE: Location = Location {
    world_id: 0,
    channel_id: 1,
    map_id: 100_000_001,
    instance: Uuid::nil(),
};
const T0: Millis = Millis(1_000_000);

fn drop(drop_type: u8, owner_id: u32, owner_party_id: u32) -> Drop {
    Drop {
        id: DropId::FIRST,
        tenant: Arc::new(Tenant {
            id: Uuid::nil(),
            region: "GMS".into(),
            major_version: 83,
            minor_version: 1,
        }),
        location: HERE,
        spec: DropSpec {
            contents: Contents::new(2_000_000, 0, 1, 0).unwrap(),
            drop_type,
            position: Point { x: 0, y: 0 },
            owner_id,
            owner_party_id,
            dropper: Dropper::default(),
            player_drop: false,
            mod_: 0,
        },
        dropped_at: T0,
        transaction_id: Uuid::nil(),
        environment: None,
        meso_awarded: false,
        status: Status::Available,
    }
}

fn request(character_id: u32, x: i16, y: i16) -> ReserveRequest {
    ReserveRequest {
        drop_id: DropId::FIRST.get(),
        character_id,
        position: Point { x, y },
        pet_slot: -1,
        party_id: 0,
        present: Some(Vec::new()),
    }
}

fn by(character_id: u32) -> CharacterRequest {
    CharacterRequest {
        drop_id: DropId::FIRST.get(),
        character_id,
    }
}

#[test]
fn ids_wrap_from_last_to_first() {
    assert_eq!(
        DropId::new(1_000_000_000).map(DropId::get),
        Some(1_000_000_000)
    );
    assert_eq!(
        DropId::new(2_000_000_001).map(DropId::get),
        Some(2_000_000_001)
    );
    assert_eq!(DropId::COUNT, 1_000_000_000);
    assert_eq!(DropId::at(DropId::LAST.position() + 1), DropId::FIRST);
    assert_eq!(
        DropId::at(DropId::FIRST.position() + 1).get(),
        1_000_000_002
    );
    assert_eq!(DropId::at(0), DropId::FIRST);
    assert_eq!(DropId::at(3 * DropId::COUNT + 4).get(), 1_000_000_005);
    assert_eq!(DropId::at(u64::MAX).position(), u64::MAX % DropId::COUNT);
}

/// The clock's floor of ids (`DropId::floor`): in range at any time, moving on
/// `IDS_PER_MS` a millisecond, and round the range once in `COUNT / IDS_PER_MS` ms.
#[test]
fn the_ids_floor_follows_the_clock_in_range_and_wraps() {
    let id_at = |ms: u64| DropId::at(DropId::floor(Millis(ms)));
    assert_eq!(id_at(0), DropId::FIRST);
    let round = DropId::COUNT / DropId::IDS_PER_MS;
    assert_eq!(round, 100_000_000, "about 28 hours");
    let now = 1_768_499_985_123; // 2026-01-15
    for ms in [
        0,
        1,
        now,
        now + 1,
        round - 1,
        round,
        u64::MAX / 10,
        u64::MAX,
    ] {
        assert!(DropId::new(id_at(ms).get()).is_some(), "{ms}");
    }
    // Within a round, later is higher, by IDS_PER_MS a millisecond; then round again.
    let start = now - now % round;
    assert_eq!(id_at(start), DropId::FIRST);
    let mut previous = start;
    for ms in (start + 1..start + round)
        .step_by(997_331)
        .chain([start + round - 1])
    {
        let (id, before) = (id_at(ms), id_at(previous));
        assert!(id > before, "{ms}: {id} after {before}");
        assert_eq!(id.position() - before.position(), (ms - previous) * 10);
        previous = ms;
    }
    assert_eq!(
        id_at(start + round - 1),
        DropId::new(1_999_999_991).unwrap()
    );
    assert_eq!(id_at(start + round), DropId::FIRST);
    assert_eq!(id_at(now + round), id_at(now));
}

#[test]
fn contents_are_item_or_meso_never_both_never_neither() {
    assert!(Contents::new(0, 0, 0, 0).is_err());
    assert!(Contents::new(1, 0, 1, 1).is_err());
    let meso = Contents::new(0, 0, 0, 50).unwrap();
    assert_eq!((meso.item_id(), meso.meso(), meso.quantity()), (0, 50, 0));
    let equip = Contents::new(1_302_000, 77, 1, 0).unwrap();
    assert_eq!(
        (equip.item_id(), equip.equipment_id(), equip.meso()),
        (1_302_000, 77, 0)
    );
}

#[test]
fn who_may_take_a_drop() {
    let rules = Rules::default();
    let window_over = T0.saturating_add(rules.ownership_ms);
    let just_before = T0.saturating_add(rules.ownership_ms - 1);
    let owner_only = drop(0, 7, 55);
    assert!(rules.may_take(&owner_only, 7, 0, T0));
    assert!(
        !rules.may_take(&owner_only, 8, 55, T0),
        "type 0 ignores the party"
    );
    assert!(!rules.may_take(&owner_only, 8, 0, just_before));
    assert!(rules.may_take(&owner_only, 8, 0, window_over));
    let party = drop(1, 7, 55);
    assert!(rules.may_take(&party, 8, 55, T0));
    assert!(!rules.may_take(&party, 8, 56, T0));
    assert!(
        !rules.may_take(&drop(1, 7, 0), 8, 0, T0),
        "no party is no party"
    );
    for free in [drop(2, 7, 0), drop(3, 7, 0), drop(0, 0, 0)] {
        assert!(rules.may_take(&free, 8, 0, T0));
    }
    let mut player = drop(0, 7, 0);
    player.spec.player_drop = true;
    assert!(rules.may_take(&player, 8, 0, T0));
}

#[test]
fn range_is_checked_for_characters_not_pets() {
    let rules = Rules::default();
    let d = drop(2, 0, 0);
    assert!(rules.in_range(&d, Point { x: 800, y: -600 }, -1));
    assert!(!rules.in_range(&d, Point { x: 801, y: 0 }, -1));
    assert!(!rules.in_range(&d, Point { x: 0, y: -601 }, -1));
    assert!(rules.in_range(
        &d,
        Point {
            x: i16::MIN,
            y: i16::MAX
        },
        0
    ));
    let unchecked = Rules {
        pickup_range_y: 0,
        ..rules
    };
    assert!(unchecked.in_range(&d, Point { x: 10, y: i16::MAX }, -1));
    assert!(!unchecked.in_range(&d, Point { x: 801, y: 0 }, -1));
}

#[test]
fn reserve_refuses_with_the_first_reason_that_applies() {
    let rules = Rules::default();
    let mut d = drop(0, 7, 0);
    assert_eq!(
        rules.try_reserve(&mut d, &request(7, 0, 0), THERE, T0),
        Err(Refusal::WrongMap)
    );
    assert_eq!(
        rules.try_reserve(&mut d, &request(8, 0, 0), HERE, T0),
        Err(Refusal::NotPermitted)
    );
    assert_eq!(
        rules.try_reserve(&mut d, &request(7, 900, 0), HERE, T0),
        Err(Refusal::OutOfRange)
    );
    assert!(rules.is_available(&d, T0), "refusals change nothing");
    let held = rules
        .try_reserve(&mut d, &request(7, 0, 0), HERE, T0)
        .unwrap();
    assert_eq!(d.status, Status::Reserved(held));
    assert_eq!(
        rules.try_reserve(&mut d, &request(7, 0, 0), HERE, T0),
        Err(Refusal::AlreadyHeld)
    );
    let late = T0.saturating_add(20_000); // past the ownership window, within the reservation
    assert_eq!(
        rules.try_reserve(&mut d, &request(8, 0, 0), HERE, late),
        Err(Refusal::HeldByOther)
    );
}

#[test]
fn only_the_holder_cancels() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    assert_eq!(
        rules.try_cancel(&mut d, &by(7), T0),
        Err(Refusal::NotHolder)
    );
    rules
        .try_reserve(&mut d, &request(7, 0, 0), HERE, T0)
        .unwrap();
    assert_eq!(
        rules.try_cancel(&mut d, &by(8), T0),
        Err(Refusal::NotHolder)
    );
    assert!(!rules.is_available(&d, T0));
    assert_eq!(rules.try_cancel(&mut d, &by(7), T0), Ok(()));
    assert!(rules.is_available(&d, T0));
}

#[test]
fn pick_up_honours_the_reservation_wherever_the_holder_is() {
    let rules = Rules::default();
    let mut d = drop(0, 7, 0);
    let mut pet = request(7, 0, 0);
    pet.pet_slot = 2;
    rules.try_reserve(&mut d, &pet, HERE, T0).unwrap();
    assert_eq!(rules.try_pick_up(&d, &by(7), THERE, T0), Ok(2));
    assert_eq!(
        rules.try_pick_up(&d, &by(8), HERE, T0),
        Err(Refusal::HeldByOther)
    );
}

#[test]
fn pick_up_of_an_available_drop_needs_the_map_and_the_right() {
    let rules = Rules::default();
    let d = drop(0, 7, 0);
    assert_eq!(rules.try_pick_up(&d, &by(7), HERE, T0), Ok(-1));
    assert_eq!(
        rules.try_pick_up(&d, &by(7), THERE, T0),
        Err(Refusal::WrongMap)
    );
    assert_eq!(
        rules.try_pick_up(&d, &by(8), HERE, T0),
        Err(Refusal::NotPermitted)
    );
}

#[test]
fn a_reservation_lapses_by_the_clock() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    let held = rules
        .try_reserve(&mut d, &request(7, 0, 0), HERE, T0)
        .unwrap();
    let lapse_at = T0.saturating_add(rules.reservation_timeout_ms);
    assert_eq!(rules.lapses_at(&d), Some(lapse_at));
    assert_eq!(
        rules.holding(&d, Millis(lapse_at.0 - 1)),
        Holding::Held(held)
    );
    assert!(rules.is_held(&d, Millis(lapse_at.0 - 1)));
    assert_eq!(rules.holding(&d, lapse_at), Holding::Lapsed(held));
    assert!(!rules.is_available(&d, lapse_at));
    assert!(!rules.is_held(&d, lapse_at));
    assert!(rules.has_lapsed(&d, lapse_at));
    let never = Rules {
        reservation_timeout_ms: 0,
        ..rules
    };
    assert_eq!(never.holding(&d, Millis(u64::MAX)), Holding::Held(held));
    assert_eq!(never.lapses_at(&d), None);
}

/// The holder was credited when `RESERVED` went out: a lapsed drop is gone, for the holder and
/// for everyone else (a second `RESERVED` would credit it twice).
#[test]
fn a_lapsed_drop_is_gone_for_everyone() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    let mut pet = request(7, 0, 0);
    pet.pet_slot = 1;
    rules.try_reserve(&mut d, &pet, HERE, T0).unwrap();
    let lapsed = T0.saturating_add(rules.reservation_timeout_ms);
    assert_eq!(
        rules.as_seen(d.clone(), Millis(lapsed.0 - 1)),
        Some(d.clone())
    );
    assert_eq!(rules.as_seen(d.clone(), lapsed), None);
    for character in [7, 8] {
        assert_eq!(
            rules.try_pick_up(&d, &by(character), HERE, lapsed),
            Err(Refusal::UnknownDrop)
        );
        assert_eq!(
            rules.try_reserve(&mut d, &request(character, 0, 0), HERE, lapsed),
            Err(Refusal::UnknownDrop)
        );
        assert_eq!(
            rules.try_cancel(&mut d, &by(character), lapsed),
            Err(Refusal::UnknownDrop)
        );
    }
    assert!(
        matches!(d.status, Status::Reserved(_)),
        "refusals change nothing"
    );
    assert_eq!(rules.due(&d, lapsed), Due::Expire);
}

#[test]
fn what_comes_due_follows_the_state() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    let expires_at = T0.saturating_add(rules.expire_ms);
    assert_eq!(rules.expires_at(&d), Some(expires_at));
    assert_eq!(rules.due(&d, expires_at), Due::Expire);
    assert_eq!(rules.first_due(&d), Some(expires_at));
    // Held when its time comes: looked at again when the reservation lapses, and then gone.
    let late = Millis(expires_at.0 - 1000);
    rules
        .try_reserve(&mut d, &request(7, 0, 0), HERE, late)
        .unwrap();
    let lapse_at = late.saturating_add(rules.reservation_timeout_ms);
    assert_eq!(rules.first_due(&d), Some(lapse_at));
    assert_eq!(rules.due(&d, expires_at), Due::At(lapse_at));
    assert_eq!(rules.due(&d, lapse_at), Due::Expire);
    // Reserved early: the lapse comes before the expiry, and removes the drop.
    let mut early = drop(2, 0, 0);
    rules
        .try_reserve(&mut early, &request(7, 0, 0), HERE, T0)
        .unwrap();
    let early_lapse = T0.saturating_add(rules.reservation_timeout_ms);
    assert_eq!(rules.first_due(&early), Some(early_lapse));
    assert_eq!(
        rules.due(&early, Millis(early_lapse.0 - 1)),
        Due::At(early_lapse)
    );
    assert_eq!(rules.due(&early, early_lapse), Due::Expire);
    // Reservations lapse even where drops never expire.
    let never_expiring = Rules {
        expire_ms: 0,
        ..rules
    };
    assert_eq!(never_expiring.first_due(&early), Some(early_lapse));
    assert_eq!(never_expiring.due(&early, early_lapse), Due::Expire);
    let never_lapsing = Rules {
        reservation_timeout_ms: 0,
        ..rules
    };
    assert_eq!(
        never_lapsing.due(&d, expires_at),
        Due::At(expires_at.saturating_add(rules.expire_ms))
    );
    let never = Rules {
        expire_ms: 0,
        reservation_timeout_ms: 0,
        ..rules
    };
    assert_eq!(never.due(&d, Millis(u64::MAX)), Due::Never);
    assert_eq!(never.first_due(&d), None);
}

#[test]
fn a_full_map_gives_up_its_oldest_available_drop() {
    let rules = Rules {
        map_drop_limit: 2,
        ..Rules::default()
    };
    assert!(!rules.map_is_full(1));
    assert!(rules.map_is_full(2));
    assert!(!Rules {
        map_drop_limit: 0,
        ..rules
    }
    .map_is_full(usize::MAX));

    let mut oldest = drop(2, 0, 0);
    rules
        .try_reserve(&mut oldest, &request(1, 0, 0), HERE, T0)
        .unwrap();
    let mut second = drop(2, 0, 0);
    second.id = DropId::new(1_000_000_005).unwrap();
    second.dropped_at = Millis(T0.0 + 1);
    let mut third = drop(2, 0, 0);
    third.id = DropId::new(1_000_000_003).unwrap();
    third.dropped_at = Millis(T0.0 + 1);
    let drops = [oldest, second, third.clone()];
    assert_eq!(
        rules.oldest_available(&drops, T0).map(|d| d.id),
        Some(third.id)
    );
    assert_eq!(rules.oldest_available(&drops[..1], T0), None);
    // Once its reservation lapsed, the oldest is gone, not AVAILABLE: it is not given up twice.
    let lapsed = T0.saturating_add(rules.reservation_timeout_ms);
    assert_eq!(
        rules.oldest_available(&drops, lapsed).map(|d| d.id),
        Some(third.id)
    );
}

/// Contract §2: REGION is 1–32 bytes of text, counted in bytes (Kafka and HTTP both read it here).
#[test]
fn a_region_is_one_to_32_bytes_of_text() {
    let widest = "Ü".repeat(16);
    for region in ["G", "GMS", "Ünïcode", "{G}/%:", widest.as_str()] {
        assert_eq!(Tenant::parse_region(region).as_deref(), Ok(region));
    }
    for region in ["", &"x".repeat(33), &format!("{widest}x")] {
        let refused = Tenant::parse_region(region).unwrap_err();
        assert!(refused.contains("REGION"), "{refused}");
    }
}

// The transitions (`drop::transition`): what each command writes and tells, decided once.

use super::event::{Event, EventKind};
use super::transition::{has_room, Asker, Transition, Write};

const NO_CORRELATION: &Correlation = &Correlation {
    transaction_id: Uuid::nil(),
    traceparent: None,
    tracestate: None,
    environment: None,
};

fn asking(tenant: &TenantRef) -> Asker<'_> {
    Asker {
        tenant,
        location: HERE,
        correlation: NO_CORRELATION,
    }
}

fn kinds<T>(transition: &Transition<T>) -> Vec<&'static str> {
    transition.events.iter().map(|e| e.kind.name()).collect()
}

#[test]
fn a_reservation_updates_the_drop_and_tells_reserved_or_answers_failure() {
    let rules = Rules::default();
    let d = drop(2, 0, 0);
    let tenant = d.tenant.clone();
    let asker = asking(&tenant);
    let reserved = rules.reserve(Some(d.clone()), asker, &request(7, 0, 0), T0);
    assert_eq!(reserved.answer, Ok(()));
    assert_eq!(kinds(&reserved), ["RESERVED"]);
    let [Write::Update(held)] = &reserved.writes[..] else {
        panic!("{reserved:?}")
    };
    assert!(rules.is_held(held, T0));
    // Refused, the requester still hears an answer, naming the drop it asked for.
    let unknown = rules.reserve(None, asker, &request(7, 0, 0), T0);
    assert_eq!(unknown.answer, Err(Refusal::UnknownDrop));
    assert!(unknown.writes.is_empty());
    assert_eq!(kinds(&unknown), ["RESERVATION_FAILURE"]);
    assert_eq!(unknown.events[0].drop_id, DropId::FIRST.get());
    let far = rules.reserve(Some(d), asker, &request(7, 900, 0), T0);
    assert_eq!(far.answer, Err(Refusal::OutOfRange));
    assert_eq!(kinds(&far), ["RESERVATION_FAILURE"]);
    assert!(far.writes.is_empty());
}

#[test]
fn a_cancel_frees_the_drop_and_a_pick_up_removes_it() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    let tenant = d.tenant.clone();
    let asker = asking(&tenant);
    assert_eq!(
        rules.cancel(Some(d.clone()), asker, &by(7), T0),
        Transition::refused(Refusal::NotHolder)
    );
    rules
        .try_reserve(&mut d, &request(7, 0, 0), HERE, T0)
        .unwrap();
    let cancelled = rules.cancel(Some(d.clone()), asker, &by(7), T0);
    assert_eq!(kinds(&cancelled), ["RESERVATION_FAILURE"]);
    assert!(matches!(&cancelled.writes[..], [Write::Update(free)] if rules.is_available(free, T0)));
    let picked = rules.pick_up(Some(d.clone()), asker, &by(7), T0);
    assert_eq!(kinds(&picked), ["PICKED_UP"]);
    assert_eq!(picked.writes, [Write::Remove(d.clone())]);
    assert_eq!(
        rules.pick_up(Some(d), asker, &by(8), T0),
        Transition::refused(Refusal::HeldByOther)
    );
    assert_eq!(
        rules.pick_up(None, asker, &by(7), T0),
        Transition::refused(Refusal::UnknownDrop)
    );
}

#[test]
fn a_spawn_on_a_full_map_expires_its_oldest_available_drops_first() {
    let rules = Rules {
        map_drop_limit: 2,
        ..Rules::default()
    };
    let at = |n: u32, dropped_at: u64| Drop {
        id: DropId::new(DropId::FIRST.get() + n).unwrap(),
        dropped_at: Millis(dropped_at),
        ..drop(2, 0, 0)
    };
    let (old, older, mut held) = (at(1, 20), at(2, 10), at(3, 5));
    let reserve = ReserveRequest {
        drop_id: held.id.get(),
        ..request(7, 0, 0)
    };
    rules.try_reserve(&mut held, &reserve, HERE, T0).unwrap();
    let new = at(9, 30);
    let correlation = NO_CORRELATION;
    // Three lie on a map that holds two: two must go to make room, the held one stays.
    let map = [old.clone(), older.clone(), held.clone()];
    let spawned = rules.spawn(new.clone(), correlation, 3, &map, T0);
    assert_eq!(spawned.answer, Ok(new.clone()));
    assert_eq!(kinds(&spawned), ["EXPIRED", "EXPIRED", "CREATED"]);
    assert_eq!(
        spawned.writes,
        [
            Write::Remove(older),
            Write::Remove(old),
            Write::Insert(new.clone())
        ]
    );
    // Below the cap, the map is not even read.
    let spawned = rules.spawn(new.clone(), correlation, 1, &[], T0);
    assert_eq!(spawned.writes, [Write::Insert(new)]);
    assert_eq!(has_room(9, 10), Ok(()));
    assert_eq!(has_room(10, 10), Err(Refusal::StoreFull));
    assert_eq!(has_room(usize::MAX, 0), Ok(()));
}

#[test]
fn the_sweep_expires_looks_again_or_forgets() {
    let rules = Rules::default();
    let d = drop(2, 0, 0);
    let id = d.id;
    let expiry = rules.expires_at(&d).unwrap();
    let tenant = d.tenant.clone();
    let early = rules.sweep(d.clone(), T0);
    assert_eq!(
        early.writes,
        [Write::Reschedule {
            tenant: tenant.clone(),
            id,
            at: expiry
        }]
    );
    assert_eq!(early.answer, Ok(false));
    let due = rules.sweep(d.clone(), expiry);
    assert_eq!(due.answer, Ok(true));
    assert_eq!(due.writes, [Write::Remove(d.clone())]);
    assert!(matches!(due.events[0].kind, EventKind::Expired { .. }));
    let never = Rules {
        expire_ms: 0,
        ..rules
    };
    assert_eq!(
        never.sweep(d, expiry).writes,
        [Write::Unschedule { tenant, id }]
    );
}

/// Atlas ids (contract-head §7) are drop ids as much as our own: the type admits both ranges,
/// and nothing outside them.
#[test]
fn drop_ids_are_those_of_either_source() {
    for raw in [
        1_000_000,
        1_000_001,
        1_500_000_000,
        2_000_000_000,
        2_147_483_647,
    ] {
        assert_eq!(DropId::new(raw).map(DropId::get), Some(raw));
    }
    for raw in [0, 1, 999_999, 2_147_483_648, u32::MAX] {
        assert_eq!(DropId::new(raw), None, "{raw}");
    }
    assert!(DropId::ATLAS_FIRST < DropId::FIRST && DropId::LAST < DropId::ATLAS_LAST);
}

#[test]
fn a_consume_removes_the_drop_held_or_not_and_credits_nobody() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    let tenant = d.tenant.clone();
    let asker = asking(&tenant);
    let consumed = rules.consume(Some(d.clone()), asker, T0);
    assert_eq!(kinds(&consumed), ["CONSUMED"]);
    assert_eq!(consumed.writes, [Write::Remove(d.clone())]);
    assert_eq!(consumed.events[0].drop_id, d.id.get());
    rules
        .try_reserve(&mut d, &request(7, 0, 0), HERE, T0)
        .unwrap();
    let held = rules.consume(Some(d.clone()), asker, T0);
    assert_eq!(
        kinds(&held),
        ["CONSUMED"],
        "the reservation goes with the drop"
    );
    let elsewhere = Asker {
        location: THERE,
        ..asker
    };
    assert_eq!(
        rules.consume(Some(d.clone()), elsewhere, T0),
        Transition::refused(Refusal::WrongMap)
    );
    let lapsed = T0.saturating_add(rules.reservation_timeout_ms);
    assert_eq!(
        rules.consume(Some(d), asker, lapsed),
        Transition::refused(Refusal::UnknownDrop)
    );
    assert_eq!(
        rules.consume(None, asker, T0),
        Transition::refused(Refusal::UnknownDrop)
    );
}

#[test]
fn a_meso_drops_first_reservation_shares_it_once() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    d.spec.contents = Contents::new(0, 0, 0, 1_001).unwrap();
    let tenant = d.tenant.clone();
    let asker = asking(&tenant);
    let mut asked = request(7, 0, 0);
    asked.present = Some(vec![9, 3, 7, 9]);
    let reserved = rules.reserve(Some(d.clone()), asker, &asked, T0);
    assert_eq!(
        kinds(&reserved),
        ["RESERVED", "MESO_AWARDED", "MESO_AWARDED", "MESO_AWARDED"]
    );
    let awards: Vec<(u32, u32, bool)> = (reserved.events[1..].iter())
        .map(|event| match event.kind {
            EventKind::MesoAwarded {
                character_id,
                amount,
                picker,
            } => (character_id, amount, picker),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(awards, [(3, 333, false), (7, 335, true), (9, 333, false)]);
    let [Write::Update(held)] = &reserved.writes[..] else {
        panic!("{reserved:?}")
    };
    assert!(held.meso_awarded);
    // Asked again by the holder: refused, nobody awarded again.
    let again = rules.reserve(Some(held.clone()), asker, &asked, T0);
    assert_eq!(again.answer, Err(Refusal::AlreadyHeld));
    assert_eq!(kinds(&again), ["RESERVATION_FAILURE"]);
    // Cancelled and reserved by another: reserved, but the meso was shared out already.
    let mut free = held.clone();
    free.status = Status::Available;
    let other = rules.reserve(Some(free), asker, &request(8, 0, 0), T0);
    assert_eq!(kinds(&other), ["RESERVED"]);
    // Not asked yet: an item drop is reserved at once; a meso drop waits for the party service,
    // nothing written, nothing told.
    let mut not_asked = request(7, 0, 0);
    not_asked.present = None;
    let undecided = rules.reserve(Some(d.clone()), asker, &not_asked, T0);
    assert_eq!(undecided.answer, Err(Refusal::PartyNotAsked));
    assert!(undecided.is_deferred() && undecided.is_empty());
    let item = rules.reserve(Some(drop(2, 0, 0)), asker, &not_asked, T0);
    assert_eq!(kinds(&item), ["RESERVED"]);
    // An item drop awards nothing.
    let item = rules.reserve(Some(drop(2, 0, 0)), asker, &asked, T0);
    assert_eq!(kinds(&item), ["RESERVED"]);
    // Without party members present, the picker gets it all.
    let alone = rules.reserve(Some(d), asker, &request(7, 0, 0), T0);
    assert_eq!(kinds(&alone), ["RESERVED", "MESO_AWARDED"]);
    assert!(matches!(
        alone.events[1].kind,
        EventKind::MesoAwarded {
            character_id: 7,
            amount: 1_001,
            picker: true
        }
    ));
}

#[test]
fn every_event_of_a_drop_carries_its_environment_and_a_failure_the_askers() {
    let rules = Rules::default();
    let mut d = drop(2, 0, 0);
    d.environment = Some("main".into());
    let tenant = d.tenant.clone();
    let preview = Correlation {
        environment: Some("preview".into()),
        ..Correlation::default()
    };
    let asker = Asker {
        tenant: &tenant,
        location: HERE,
        correlation: &preview,
    };
    let reserved = rules.reserve(Some(d.clone()), asker, &request(7, 0, 0), T0);
    assert_eq!(
        reserved.events[0].correlation.environment.as_deref(),
        Some("main")
    );
    let refused = rules.reserve(None, asker, &request(7, 0, 0), T0);
    assert_eq!(
        refused.events[0].correlation.environment.as_deref(),
        Some("preview")
    );
    assert_eq!(
        Event::expired(&d).correlation.environment.as_deref(),
        Some("main")
    );
}

#[test]
fn another_instance_of_the_map_is_another_map() {
    let rules = Rules::default();
    let d = drop(2, 0, 0);
    let tenant = d.tenant.clone();
    let instanced = Location {
        instance: Uuid::from_u128(1),
        ..HERE
    };
    let asker = Asker {
        location: instanced,
        ..asking(&tenant)
    };
    let reserved = rules.reserve(Some(d.clone()), asker, &request(7, 0, 0), T0);
    assert_eq!(reserved.answer, Err(Refusal::WrongMap));
    assert_eq!(reserved.events[0].location, instanced);
    let consumed = rules.consume(Some(d), asker, T0);
    assert_eq!(consumed.answer, Err(Refusal::WrongMap));
}
