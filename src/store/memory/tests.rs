//! The in-memory store: what every store must do (`contract_tests`), and its own limits.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::drop::command::CharacterRequest;
use crate::store::contract_tests::{self, op, origin, spec, RULES};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_store_behaves_as_the_model(near_wrap in any::<bool>(), ops in prop::collection::vec(op(), 1..80)) {
        let first = if near_wrap { DropId::new(DropId::LAST.get() - 2).unwrap() } else { DropId::FIRST };
        let store = MemoryStore::starting_at(RULES, first);
        contract_tests::behaves_as_the_model(&store, first, ops)?;
    }
}

#[test]
fn of_many_concurrent_reservations_exactly_one_wins() {
    let store: Arc<dyn DropStore> = Arc::new(MemoryStore::new(Rules::default(), 0));
    contract_tests::of_many_concurrent_reservations_exactly_one_wins(&[store]);
}

#[test]
fn concurrent_spawns_get_unique_ids() {
    let store: Arc<dyn DropStore> = Arc::new(MemoryStore::new(RULES, 0));
    contract_tests::concurrent_spawns_get_unique_ids(&[store]);
}

#[test]
fn tenants_sharing_an_id_share_no_map() {
    contract_tests::tenants_sharing_an_id_share_no_map(&MemoryStore::new(RULES, 0));
}

#[test]
fn ids_skip_those_still_in_use_after_wrapping() {
    let near_end = DropId::new(DropId::LAST.get() - 1).unwrap();
    let unlimited = Rules {
        map_drop_limit: 0,
        ..RULES
    };
    let store = MemoryStore::starting_at(unlimited, near_end);
    let spawn = |store: &MemoryStore| contract_tests::spawned_id(store);
    assert_eq!(spawn(&store), 1_999_999_999);
    assert_eq!(spawn(&store), 2_000_000_000);
    assert_eq!(spawn(&store), 1_000_000_001);
    let store = MemoryStore::starting_at(unlimited, DropId::LAST);
    assert_eq!(spawn(&store), 2_000_000_000);
    // Force the counter round: the next candidates are taken, so they are skipped.
    store.next_id.store(DropId::LAST.get(), Ordering::Relaxed);
    assert_eq!(spawn(&store), 1_000_000_001);
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
        .pick_up(&origin(0, 0, 2), &pick, Millis(0), &mut |_| {})
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
