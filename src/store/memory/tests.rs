//! The in-memory store: what every store must do (`contract_tests`), and its own limits.

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::drop::command::{CharacterRequest, DropRequest};
use crate::store::contract_tests::{self, op, origin, spec, Blocking, ModelIds, RULES};
use crate::store::DropStore;

fn blocking(store: MemoryStore) -> Blocking {
    Blocking(DropStore::Memory(store))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_store_behaves_as_the_model(near_wrap in any::<bool>(), ops in prop::collection::vec(op(), 1..80)) {
        let first = if near_wrap { DropId::new(DropId::LAST.get() - 2).unwrap() } else { DropId::FIRST };
        let store = MemoryStore::starting_at(RULES, first);
        contract_tests::behaves_as_the_model(&blocking(store), ModelIds::own(first, true), ops)?;
    }
}

#[test]
fn of_many_concurrent_reservations_exactly_one_wins() {
    let store = Arc::new(blocking(MemoryStore::new(Rules::default(), 0)));
    contract_tests::of_many_concurrent_reservations_exactly_one_wins(&[store]);
}

#[test]
fn concurrent_spawns_get_unique_ids() {
    let store = Arc::new(blocking(MemoryStore::new(RULES, 0)));
    contract_tests::concurrent_spawns_get_unique_ids(&[store], true);
}

#[test]
fn tenants_sharing_an_id_share_no_map() {
    contract_tests::tenants_sharing_an_id_share_no_map(&blocking(MemoryStore::new(RULES, 0)));
}

/// Our own ids are unique across tenants, so here the tenants' ids differ; the steps, and what
/// each tenant must (not) see, are the shared store's with atlas ids.
#[test]
fn tenants_keep_apart_drop_by_drop() {
    let store = blocking(MemoryStore::new(RULES, 0));
    contract_tests::tenants_holding_the_same_id_keep_apart(&store, false);
}

#[test]
fn ids_skip_those_still_in_use_after_wrapping() {
    let near_end = DropId::new(DropId::LAST.get() - 1).unwrap();
    let unlimited = Rules {
        map_drop_limit: 0,
        ..RULES
    };
    let spawn = contract_tests::spawned_id;
    let store = blocking(MemoryStore::starting_at(unlimited, near_end));
    assert_eq!(spawn(&store), 1_999_999_999);
    assert_eq!(spawn(&store), 2_000_000_000);
    assert_eq!(spawn(&store), 1_000_000_001);
    let store = blocking(MemoryStore::starting_at(unlimited, DropId::LAST));
    assert_eq!(spawn(&store), 2_000_000_000);
    // Force the counter round: the next candidates are taken, so they are skipped.
    let DropStore::Memory(memory) = &store.0 else {
        unreachable!("made in memory above")
    };
    memory.next_id_is(DropId::LAST);
    assert_eq!(spawn(&store), 1_000_000_001);
}

/// Contract §5: ids do not repeat across a restart. A run spawns at its start and again just
/// before the clock's floor comes round the range (`DropId::floor`); the next run, started a
/// moment later, hands out none of the ids of the last ~28 hours. (Ids seeded from the clock
/// at start only would not do: the first run's late ids would then lie just past its first
/// ones, where the floor has come round to.)
#[test]
fn a_restarted_store_hands_out_no_id_of_the_run_before() {
    let unlimited = Rules {
        map_drop_limit: 0,
        ..RULES
    };
    let round = DropId::COUNT / DropId::IDS_PER_MS;
    let started = Millis(1_768_499_985_123);
    let spawn_at = |store: &MemoryStore, at: Millis, count: usize| -> Vec<DropId> {
        (0..count)
            .map(|n| {
                let origin = origin(0, (n % 3) as u8, n as u128);
                store.spawn(&origin, spec(true, 2, 0, 0), at, &mut |_| {})
            })
            .map(|spawned| spawned.expect("spawned").id)
            .collect()
    };
    let before = MemoryStore::new(unlimited, 0);
    let early = spawn_at(&before, started, 100);
    assert_eq!(early[0], DropId::at(DropId::floor(started)));
    let late = spawn_at(&before, started.saturating_add(round - 5), 40);
    assert_eq!(
        late[0],
        DropId::at(DropId::floor(started) + DropId::COUNT - 50)
    );
    before.expire_on_shutdown(&mut |_| {});

    let after = MemoryStore::new(unlimited, 0);
    let restarted = spawn_at(&after, started.saturating_add(round + 2), 1_000);
    let of_before: HashSet<DropId> = late.iter().copied().collect();
    assert!(restarted.iter().all(|id| !of_before.contains(id)));
    // Only ids a whole round old come again.
    assert_eq!(restarted[0], DropId::at(DropId::floor(started) + 20));
    assert!(restarted.contains(&early[20]));
    // Spawns far between: each id at the floor of its time.
    let later = started.saturating_add(2 * round + 1_000);
    assert_eq!(
        spawn_at(&after, later, 1)[0],
        DropId::at(DropId::floor(later))
    );
}

#[test]
fn the_store_refuses_spawns_past_its_most_drops() {
    let store = MemoryStore::new(
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        3,
    );
    let mut events = Vec::new();
    let mut spawn = |map: u8| {
        store.spawn(
            &origin(0, map, 1),
            spec(true, 2, 0, 0),
            Millis(0),
            &mut |e| events.push(e),
        )
    };
    let first = spawn(0).unwrap();
    spawn(1).unwrap();
    spawn(2).unwrap();
    assert_eq!(spawn(0).unwrap_err(), Refusal::StoreFull);
    let pick = CharacterRequest {
        drop_id: first.id.get(),
        character_id: 1,
    };
    store
        .on_drop(
            &origin(0, 0, 2),
            &DropRequest::PickUp(pick),
            Millis(0),
            &mut |_| {},
        )
        .unwrap();
    let mut events = Vec::new();
    let again = store.spawn(&origin(0, 0, 3), spec(true, 2, 0, 0), Millis(0), &mut |e| {
        events.push(e)
    });
    assert!(again.is_ok());
    assert_eq!(
        events.len(),
        1,
        "one CREATED, nothing for the refused spawn"
    );
    store.expire_on_shutdown(&mut |_| {});
    assert!(store
        .spawn(
            &origin(0, 0, 4),
            spec(true, 2, 0, 0),
            Millis(0),
            &mut |_| {}
        )
        .is_ok());
}
