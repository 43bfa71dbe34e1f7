//! The Redis store on the real Redis (`ATLAS_TEST_REDIS_URL`, else 127.0.0.1:6379), each test
//! under a key prefix of its own: what every store must do (`contract_tests`), across several
//! instances sharing one Redis, and what only a shared store does (recognising redelivered
//! commands, keeping drops across restarts, expiring each drop once whoever sweeps).

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::drop::command::{CharacterRequest, DropRequest, ReserveRequest};
use crate::drop::event::Event;
use crate::drop::model::Point;
use crate::store::contract_tests::{self, op, origin, spec, Blocking, RULES};
use crate::store::DropStore;

fn redis_url() -> String {
    std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Instances of one store (one key prefix); its keys are deleted when it goes.
struct Shared {
    prefix: String,
    instances: Vec<Arc<Blocking>>,
}

impl Shared {
    fn new(instances: usize, rules: Rules, max_live_drops: usize) -> Shared {
        let prefix = format!("atlas-drops-test:{}", Uuid::new_v4());
        let instances = (0..instances)
            .map(|_| Arc::new(Shared::connect(&prefix, rules, max_live_drops)))
            .collect();
        Shared { prefix, instances }
    }

    fn connect(prefix: &str, rules: Rules, max_live_drops: usize) -> Blocking {
        let store = Blocking::run(RedisStore::connect(RedisStoreConfig {
            url: &redis_url(),
            key_prefix: prefix,
            rules,
            max_live_drops,
        }));
        Blocking(DropStore::Shared(Box::new(store.expect("Redis answers"))))
    }

    fn keys(&self) -> Keys {
        Keys::new(&self.prefix)
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(redis_url())
            .and_then(|client| client.get_connection())
            .expect("Redis answers")
    }

    /// The next spawn gets `id`.
    fn next_id_is(&self, id: u32) {
        let _: () = redis::cmd("SET")
            .arg(self.keys().last_id())
            .arg(id - 1)
            .query(&mut self.redis())
            .unwrap();
    }

    /// Events waiting in the outbox.
    fn outbox_len(&self) -> usize {
        let mut redis = self.redis();
        (0..OUTBOX_SHARDS)
            .map(|shard| {
                redis::cmd("XLEN")
                    .arg(self.keys().outbox(shard))
                    .query::<usize>(&mut redis)
                    .unwrap()
            })
            .sum()
    }
}

impl std::ops::Drop for Shared {
    fn drop(&mut self) {
        let mut redis = self.redis();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut redis)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut redis);
        }
    }
}

fn at(partition: &str, offset: i64, committed: i64) -> Option<LogPosition> {
    Some(LogPosition {
        partition: partition.into(),
        offset,
        committed,
    })
}

proptest! {
    // Each case makes some hundred Redis round trips an operation.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_store_behaves_as_the_model(near_wrap in any::<bool>(), ops in prop::collection::vec(op(), 1..60)) {
        let first = if near_wrap { DropId::new(DropId::LAST.get() - 2).unwrap() } else { DropId::FIRST };
        let shared = Shared::new(1, RULES, 0);
        shared.next_id_is(first.get());
        contract_tests::behaves_as_the_model(&shared.instances[0], first, false, ops)?;
    }
}

#[test]
fn of_many_reservations_racing_on_three_instances_exactly_one_wins() {
    let shared = Shared::new(3, Rules::default(), 0);
    contract_tests::of_many_concurrent_reservations_exactly_one_wins(&shared.instances);
    // 50 drops: each one CREATED, one RESERVED and 15 RESERVATION_FAILUREs, all in the outbox.
    assert_eq!(shared.outbox_len(), 50 * 17);
}

#[test]
fn spawns_on_three_instances_get_unique_ids() {
    let shared = Shared::new(3, RULES, 0);
    contract_tests::concurrent_spawns_get_unique_ids(&shared.instances);
}

#[test]
fn tenants_sharing_an_id_share_no_map() {
    let shared = Shared::new(1, RULES, 0);
    contract_tests::tenants_sharing_an_id_share_no_map(&shared.instances[0]);
}

#[test]
fn a_redelivered_command_is_recognised_and_changes_nothing() {
    let shared = Shared::new(
        2,
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        0,
    );
    let (a, b) = (&shared.instances[0], &shared.instances[1]);
    let mut events = Vec::new();
    let mut spawn_at = |store: &Blocking, offset, committed| {
        let origin = Origin {
            position: at("group/commands/0", offset, committed),
            ..origin(0, 0, offset as u128)
        };
        store.spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut |e| {
            events.push(e)
        })
    };
    let drop = spawn_at(a, 5, i64::MIN).unwrap();
    let position = |offset| at("group/commands/0", offset, i64::MIN).unwrap();
    assert!(b.was_applied(&position(5)));
    assert!(!b.was_applied(&position(6)));
    // The same record again, on the other instance (after a rebalance, or a crash before commit).
    assert_eq!(spawn_at(b, 5, i64::MIN), Err(Refusal::AlreadyApplied));
    // Offsets may be applied out of order (an equip spawn waits for its equipment).
    spawn_at(b, 7, i64::MIN).unwrap();
    spawn_at(a, 6, 3).unwrap();
    assert_eq!(spawn_at(a, 7, 5), Err(Refusal::AlreadyApplied));
    // Records come again only from the committed offset on: one below it is of a log that
    // started again (topic re-created, a broker that lost its state), applied afresh; the record
    // then starts from it, and meets it again as such.
    a.note_committed("group/commands/0", 6);
    assert!(
        !a.was_applied(&position(2)),
        "below the committed offset: another log"
    );
    spawn_at(b, 2, i64::MIN).unwrap();
    assert_eq!(spawn_at(a, 2, i64::MIN), Err(Refusal::AlreadyApplied));
    assert!(
        !a.was_applied(&position(5)),
        "the old log's offsets say nothing of the new one"
    );
    // Another partition's offsets are its own.
    let elsewhere = Origin {
        position: at("group/commands/1", 5, i64::MIN),
        ..origin(0, 0, 9)
    };
    assert!(a
        .spawn(&elsewhere, spec(true, 2, 0, 0), Millis(0), &mut |_| {})
        .is_ok());
    assert_eq!(events.len(), 4, "one CREATED a spawn applied: {events:?}");
    assert_eq!(a.counts(Millis(0)).live, 5);
    assert_eq!(shared.outbox_len(), 5);

    // A refusal is recorded as well: its RESERVATION_FAILURE is not sent twice.
    let far = DropRequest::Reserve(ReserveRequest {
        drop_id: drop.id.get(),
        character_id: 1,
        position: Point { x: 5_000, y: 0 },
        pet_slot: -1,
        party_id: 0,
        present: Vec::new(),
    });
    let origin_at = |offset| Origin {
        position: at("group/commands/2", offset, i64::MIN),
        ..origin(0, 0, 10)
    };
    let mut failures = Vec::new();
    assert_eq!(
        a.on_drop(&origin_at(1), far.clone(), Millis(1), &mut |e| failures
            .push(e)),
        Err(Refusal::OutOfRange)
    );
    assert_eq!(
        b.on_drop(&origin_at(1), far, Millis(1), &mut |e| failures.push(e)),
        Err(Refusal::AlreadyApplied)
    );
    assert_eq!(failures.len(), 1);
    assert_eq!(shared.outbox_len(), 6);
}

#[test]
fn each_drop_expires_once_whichever_instances_sweep() {
    let shared = Shared::new(
        3,
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        0,
    );
    let drops = 300;
    for n in 0..drops {
        let origin = origin((n % 2) as u8, (n % 5) as u8, n as u128);
        shared.instances[n % 3]
            .spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut |_| {})
            .unwrap();
    }
    let later = Millis(RULES.expire_ms);
    let sweepers: Vec<_> = (shared.instances.iter().cloned())
        .map(|store| {
            std::thread::spawn(move || {
                let mut expired = Vec::new();
                let count = store.expire_due(later, &mut |e| expired.push(e.drop_id));
                assert_eq!(count, expired.len());
                expired
            })
        })
        .collect();
    let expired: Vec<u32> = sweepers
        .into_iter()
        .flat_map(|sweeper| sweeper.join().unwrap())
        .collect();
    assert_eq!(expired.len(), drops, "one EXPIRED a drop, in all");
    assert_eq!(expired.iter().collect::<HashSet<_>>().len(), drops);
    assert_eq!(shared.instances[0].counts(later).live, 0);
    assert_eq!(shared.outbox_len(), 2 * drops, "CREATED and EXPIRED");
}

#[test]
fn drops_outlive_the_instance_that_made_them() {
    let mut shared = Shared::new(1, RULES, 0);
    let made = shared.instances[0]
        .spawn(
            &origin(0, 0, 1),
            spec(true, 2, 0, 0),
            Millis(0),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(shared.instances[0].expire_on_shutdown(&mut |_| {}), 0);
    shared.instances.clear();
    let restarted = Shared::connect(&shared.prefix, RULES, 0);
    assert_eq!(
        restarted.get(&made.tenant, made.id.get(), Millis(1)),
        Some(made.clone())
    );
    let pick = CharacterRequest {
        drop_id: made.id.get(),
        character_id: 1,
    };
    assert!(restarted
        .on_drop(
            &origin(0, 0, 2),
            DropRequest::PickUp(pick),
            Millis(1),
            &mut |_| {}
        )
        .is_ok());
    assert_eq!(restarted.get(&made.tenant, made.id.get(), Millis(1)), None);
}

#[test]
fn ids_wrap_and_skip_those_still_in_use() {
    let shared = Shared::new(
        1,
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        0,
    );
    let store = &shared.instances[0];
    let spawn = || contract_tests::spawned_id(store);
    shared.next_id_is(DropId::LAST.get());
    assert_eq!(spawn(), 2_000_000_000);
    assert_eq!(spawn(), 1_000_000_001);
    // Round again: the last id and the first are taken, so they are skipped.
    shared.next_id_is(DropId::LAST.get());
    assert_eq!(spawn(), 1_000_000_002);
}

#[test]
fn spawns_past_the_most_drops_are_refused() {
    let shared = Shared::new(
        2,
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        2,
    );
    let spawn = |store: &Blocking| {
        store.spawn(
            &origin(0, 0, 0),
            spec(true, 2, 0, 0),
            Millis(0),
            &mut |_| {},
        )
    };
    spawn(&shared.instances[0]).unwrap();
    spawn(&shared.instances[1]).unwrap();
    assert_eq!(spawn(&shared.instances[0]), Err(Refusal::StoreFull));
}

#[test]
fn a_map_keeps_its_cap_with_spawns_racing_on_three_instances() {
    const LIMIT: usize = 10;
    const SPAWNS: usize = 40;
    let shared = Shared::new(
        3,
        Rules {
            map_drop_limit: LIMIT,
            ..RULES
        },
        0,
    );
    let spawners: Vec<_> = (shared.instances.iter().cloned())
        .map(|store| {
            std::thread::spawn(move || {
                let mut events = Vec::new();
                for n in 0..SPAWNS {
                    let origin = origin(0, 0, n as u128);
                    let at = Millis(n as u64);
                    store
                        .spawn(&origin, spec(true, 2, 0, 0), at, &mut |e| events.push(e))
                        .unwrap();
                }
                events
            })
        })
        .collect();
    let events: Vec<Event> = spawners
        .into_iter()
        .flat_map(|spawner| spawner.join().unwrap())
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e.kind.name() == kind).count();
    let spawned = 3 * SPAWNS;
    assert_eq!(count("CREATED"), spawned);
    assert_eq!(
        count("EXPIRED"),
        spawned - LIMIT,
        "each drop over the cap evicted once"
    );
    let expired: HashSet<u32> = (events.iter())
        .filter(|e| e.kind.name() == "EXPIRED")
        .map(|e| e.drop_id)
        .collect();
    assert_eq!(expired.len(), spawned - LIMIT);
    let lying =
        shared.instances[0].list(&origin(0, 0, 0).tenant, origin(0, 0, 0).location, Millis(0));
    assert_eq!(lying.len(), LIMIT);
    assert_eq!(shared.instances[0].counts(Millis(0)).live, LIMIT);
}
