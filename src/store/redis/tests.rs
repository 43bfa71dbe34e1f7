//! The Redis store on the real Redis (`ATLAS_TEST_REDIS_URL`, else 127.0.0.1:6379), each test
//! under a key prefix of its own: what every store must do (`contract_tests`), across several
//! instances sharing one Redis, and what only a shared store does (recognising redelivered
//! commands, keeping drops across restarts, expiring each drop once whoever sweeps), and the
//! ids of the Atlas allocator (contract-head §7): taken per tenant, given back as drops go.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use uuid::Uuid;

use super::ids::{free_key, next_key, RECYCLE_AT};
use super::*;
use crate::drop::command::{CharacterRequest, DropRequest, ReserveRequest};
use crate::drop::event::Event;
use crate::drop::model::Point;
use crate::store::contract_tests::{
    self, op, origin, reserve, spec, tenant, Blocking, ModelIds, RULES,
};
use crate::store::DropStore;

fn redis_url() -> String {
    std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Instances of one store (one key prefix); its keys, and its Atlas allocator's (under the same
/// prefix), are deleted when it goes.
struct Shared {
    prefix: String,
    ids: IdSource,
    instances: Vec<Arc<Blocking>>,
}

impl Shared {
    /// Instances with our own ids.
    fn new(instances: usize, rules: Rules, max_live_drops: usize) -> Shared {
        Shared::with(|_| IdSource::Own, instances, rules, max_live_drops)
    }

    /// Instances taking their ids from an Atlas allocator of the test's own: fresh counters.
    fn atlas(instances: usize, rules: Rules, max_live_drops: usize) -> Shared {
        let atlas = |prefix: &str| IdSource::Atlas {
            prefix: format!("{prefix}:atlas"),
        };
        Shared::with(atlas, instances, rules, max_live_drops)
    }

    fn with(
        ids: impl Fn(&str) -> IdSource,
        instances: usize,
        rules: Rules,
        max_live_drops: usize,
    ) -> Shared {
        let prefix = format!("atlas-drops-test:{}", Uuid::new_v4());
        let ids = ids(&prefix);
        let instances = (0..instances)
            .map(|_| Arc::new(Shared::connect(&prefix, &ids, rules, max_live_drops)))
            .collect();
        Shared {
            prefix,
            ids,
            instances,
        }
    }

    fn connect(prefix: &str, ids: &IdSource, rules: Rules, max_live_drops: usize) -> Blocking {
        let store = Blocking::run(RedisStore::connect(RedisStoreConfig {
            url: &redis_url(),
            key_prefix: prefix,
            rules,
            max_live_drops,
            ids: ids.clone(),
        }));
        Blocking(DropStore::Shared(Box::new(store.expect("Redis answers"))))
    }

    /// The Atlas allocator's keys of tenant `n` (`contract_tests::tenant`): its counter and its
    /// free list.
    fn atlas_keys(&self, n: u8) -> (String, String) {
        let IdSource::Atlas { prefix } = &self.ids else {
            panic!("a store with atlas ids")
        };
        let id = tenant(n).id;
        (next_key(prefix, id), free_key(prefix, id))
    }

    /// Sets tenant `n`'s counter, as other Atlas services move it.
    fn atlas_counter_is(&self, n: u8, value: u32) {
        let _: () = redis::cmd("SET")
            .arg(self.atlas_keys(n).0)
            .arg(value)
            .query(&mut self.redis())
            .unwrap();
    }

    fn atlas_counter(&self, n: u8) -> Option<i64> {
        let key = self.atlas_keys(n).0;
        redis::cmd("GET").arg(key).query(&mut self.redis()).unwrap()
    }

    /// Tenant `n`'s free list, the next id to come first.
    fn atlas_free(&self, n: u8) -> Vec<u32> {
        let key = self.atlas_keys(n).1;
        let list = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone();
        list.query(&mut self.redis()).unwrap()
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
        late: false,
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
        contract_tests::behaves_as_the_model(&shared.instances[0], ModelIds::own(first, false), ops)?;
    }

    /// With atlas ids, tenants 0 and 1 hold the same ids: every command names a drop by
    /// (tenant, id), or the store would answer for the other tenant's drop.
    #[test]
    fn the_store_behaves_as_the_model_with_atlas_ids(ops in prop::collection::vec(op(), 1..60)) {
        let shared = Shared::atlas(1, RULES, 0);
        contract_tests::behaves_as_the_model(&shared.instances[0], ModelIds::atlas(), ops)?;
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
    contract_tests::concurrent_spawns_get_unique_ids(&shared.instances, true);
}

#[test]
fn spawns_on_three_instances_get_unique_atlas_ids_per_tenant() {
    let shared = Shared::atlas(3, RULES, 0);
    contract_tests::concurrent_spawns_get_unique_ids(&shared.instances, false);
}

#[test]
fn tenants_sharing_an_id_share_no_map() {
    let shared = Shared::new(1, RULES, 0);
    contract_tests::tenants_sharing_an_id_share_no_map(&shared.instances[0]);
}

#[test]
fn tenants_holding_the_same_atlas_id_keep_apart() {
    let shared = Shared::atlas(1, RULES, 0);
    contract_tests::tenants_holding_the_same_id_keep_apart(&shared.instances[0], true);
    // Below the recycle threshold, ids gone are not given back.
    assert_eq!(shared.atlas_free(0), Vec::<u32>::new());
    assert_eq!(shared.atlas_free(1), Vec::<u32>::new());
}

#[test]
fn tenants_keep_apart_drop_by_drop_with_our_own_ids() {
    let shared = Shared::new(1, RULES, 0);
    contract_tests::tenants_holding_the_same_id_keep_apart(&shared.instances[0], false);
}

/// The commit checks the applied record's entry for the command's own offset, not a WATCH of
/// the whole record: the same command applied on three instances at once (a partition handed
/// over while its old reader still applies) takes effect once, while commands of other offsets
/// of the partition commit beside it.
#[test]
fn a_command_applied_on_three_instances_at_once_takes_effect_once() {
    const COMMANDS: i64 = 60;
    let shared = Shared::new(
        3,
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        0,
    );
    let appliers: Vec<_> = (shared.instances.iter().cloned())
        .map(|store| {
            std::thread::spawn(move || {
                (0..COMMANDS)
                    .filter(|&offset| {
                        let origin = Origin {
                            position: at("group/commands/0", offset, i64::MIN),
                            ..origin(0, (offset % 4) as u8, offset as u128)
                        };
                        store
                            .spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut |_| {})
                            .is_ok()
                    })
                    .count()
            })
        })
        .collect();
    let applied: usize = appliers.into_iter().map(|a| a.join().unwrap()).sum();
    assert_eq!(
        applied, COMMANDS as usize,
        "each offset applied once in all"
    );
    assert_eq!(
        shared.instances[0].counts(Millis(0)).live,
        COMMANDS as usize
    );
    assert_eq!(shared.outbox_len(), COMMANDS as usize, "one CREATED each");
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
    // A command that waited beside its partition (for a peer) while another reader applied it
    // and committed past it is met again, and the record is kept, not started afresh.
    let late = Origin {
        position: at("group/commands/0", 4, i64::MIN).map(LogPosition::late),
        ..origin(0, 0, 4)
    };
    let spawned = a.spawn(&late, spec(true, 2, 0, 0), Millis(0), &mut |_| {});
    assert_eq!(spawned, Err(Refusal::AlreadyApplied));
    assert!(b.was_applied(&position(7)), "the record is kept");
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
        position: Point { x: 5_000, y: 0 },
        ..reserve(drop.id.get(), 1)
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

    // A meso reservation not decided yet (the party service not asked) records nothing: applied
    // again once asked, it takes effect, RESERVED and MESO_AWARDED together.
    let undecided = ReserveRequest {
        present: None,
        ..reserve(drop.id.get(), 1)
    };
    let mut told = Vec::new();
    let request = DropRequest::Reserve(undecided.clone());
    assert_eq!(
        a.on_drop(&origin_at(2), request, Millis(1), &mut |e| told.push(e)),
        Err(Refusal::PartyNotAsked)
    );
    assert!(told.is_empty());
    assert!(!b.was_applied(&at("group/commands/2", 2, i64::MIN).unwrap()));
    assert_eq!(shared.outbox_len(), 6);
    let asked = DropRequest::Reserve(ReserveRequest {
        present: Some(vec![2]),
        ..undecided
    });
    assert_eq!(
        b.on_drop(&origin_at(2), asked, Millis(1), &mut |e| told.push(e)),
        Ok(())
    );
    let kinds: Vec<&str> = told.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["RESERVED", "MESO_AWARDED", "MESO_AWARDED"]);
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
    let restarted = Shared::connect(&shared.prefix, &shared.ids, RULES, 0);
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
    let spawn = || contract_tests::spawned_id(&shared.instances[0]);
    // One call takes sixteen ids (the rest spare): the last fifteen of the range, then the
    // first; all used before the counter is asked again.
    shared.next_id_is(DropId::LAST.get() - 14);
    let ids: Vec<u32> = (0..16).map(|_| spawn()).collect();
    let expected: Vec<u32> = (DropId::LAST.get() - 14..=DropId::LAST.get())
        .chain([1_000_000_001])
        .collect();
    assert_eq!(ids, expected);
    // Round again: the last id and the first are taken, so they are skipped.
    shared.next_id_is(DropId::LAST.get());
    assert_eq!(spawn(), 1_000_000_002);
}

/// Redis may lose its scripts (a restart, `SCRIPT FLUSH`): a commit then loads its own again.
#[test]
fn a_commit_loads_its_script_when_redis_lost_it() {
    let shared = Shared::new(1, RULES, 0);
    let store = &shared.instances[0];
    contract_tests::spawned_id(store);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut shared.redis())
        .unwrap();
    // A commit failing for good would be retried for ever: bounded here.
    let (origin, mut out) = (origin(0, 0, 2), |_| {});
    let spawn = store
        .0
        .spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut out);
    let spawned =
        Blocking::run(async { tokio::time::timeout(Duration::from_secs(10), spawn).await });
    assert!(matches!(spawned, Ok(Ok(_))), "{spawned:?}");
    assert_eq!(store.counts(Millis(0)).live, 2);
}

/// The commits of steps in flight together go as one call (`commit`), checked and written one
/// after another: of spawns racing on one instance at the store's most drops, as many as it
/// allows go and the others, whose guard fails in the same call, are refused.
#[test]
fn spawns_committed_together_are_checked_one_after_another() {
    const MOST: usize = 10;
    const SPAWNS: u32 = 40;
    let rules = Rules {
        map_drop_limit: 0,
        ..RULES
    };
    let shared = Shared::new(1, rules, MOST);
    let store = &shared.instances[0].0;
    let spawns = (0..SPAWNS).map(|offset| async move {
        let origin = Origin {
            position: at("group/commands/0", i64::from(offset), i64::MIN),
            ..origin(0, offset as u8, u128::from(offset))
        };
        (store.spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut |_| {})).await
    });
    let all = futures_util::future::join_all(spawns);
    let outcomes =
        Blocking::run(async { tokio::time::timeout(Duration::from_secs(30), all).await });
    let outcomes = outcomes.expect("the spawns end");
    assert_eq!(
        spawned_and_refused(&outcomes),
        (MOST, SPAWNS as usize - MOST)
    );
    assert_eq!(shared.instances[0].counts(Millis(0)).live, MOST);
}

/// A commit that meets an error in Redis (here a partition's applied record holding a string,
/// met by a guessed step's commit, which reads nothing first) is answered that error, never
/// taken as done, and retried; the other partition's commits go on meanwhile. (Whether the two
/// shared a call is not controlled: the script answers each commit's error apart, `pcall`.)
#[test]
fn a_commit_that_fails_fails_alone() {
    let shared = Shared::new(1, RULES, 0);
    let store = &shared.instances[0].0;
    let spawn = |partition: &'static str, offset: i64| async move {
        let origin = Origin {
            position: at(partition, offset, i64::MIN),
            ..origin(0, offset as u8, offset as u128)
        };
        let mut out = |_| {};
        let spawned = store.spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut out);
        tokio::time::timeout(Duration::from_secs(3), spawned).await
    };
    // Each partition's floor known, and spare ids: the next spawns guess.
    for partition in ["group/commands/0", "group/commands/1"] {
        assert!(matches!(Blocking::run(spawn(partition, 0)), Ok(Ok(_))));
    }
    let _: () = redis::cmd("SET")
        .arg(shared.keys().applied("group/commands/0"))
        .arg("not a sorted set")
        .query(&mut shared.redis())
        .unwrap();
    let (broken, sound) = Blocking::run(async {
        tokio::join!(spawn("group/commands/0", 1), spawn("group/commands/1", 1))
    });
    assert!(broken.is_err(), "retried until the key is mended");
    assert!(matches!(sound, Ok(Ok(_))), "{sound:?}");
}

/// One call takes an instance's next ids (`ids`, spare ids): its later spawns use them, in
/// order, whatever the counter says meanwhile; another instance takes ids after them.
#[test]
fn an_instance_spawns_with_the_ids_it_took_at_once() {
    let shared = Shared::new(2, RULES, 0);
    let spawn = |n: usize| contract_tests::spawned_id(&shared.instances[n]);
    shared.next_id_is(1_000_000_100);
    assert_eq!(spawn(0), 1_000_000_100);
    shared.next_id_is(1_000_000_500);
    assert_eq!(
        spawn(0),
        1_000_000_101,
        "a spare id, whatever the counter says"
    );
    assert_eq!(spawn(1), 1_000_000_500);
    assert_eq!(spawn(0), 1_000_000_102);
}

/// How many spawns went, and how many were refused for the store's most drops.
fn spawned_and_refused(outcomes: &[Result<Drop, Refusal>]) -> (usize, usize) {
    let spawned = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let refused = (outcomes.iter())
        .filter(|outcome| **outcome == Err(Refusal::StoreFull))
        .count();
    (spawned, refused)
}

/// A spawn is refused once the store holds `MAX_LIVE_DROPS`, exactly, with spawns racing on
/// three instances: those that read the count first and those that guess it (`Guess`: a spare
/// id, a known floor) alike, since each commit checks it.
#[test]
fn spawns_racing_on_three_instances_never_pass_the_most_drops() {
    const MOST: usize = 10;
    const SPAWNS: usize = 20;
    let shared = Shared::new(
        3,
        Rules {
            map_drop_limit: 0,
            ..RULES
        },
        MOST,
    );
    let spawners: Vec<_> = (shared.instances.iter().cloned().enumerate())
        .map(|(n, store)| {
            std::thread::spawn(move || {
                (0..SPAWNS)
                    .map(|offset| {
                        let origin = Origin {
                            position: at(&format!("group/commands/{n}"), offset as i64, i64::MIN),
                            ..origin(0, offset as u8, offset as u128)
                        };
                        store.spawn(&origin, spec(true, 2, 0, 0), Millis(0), &mut |_| {})
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<_> = spawners
        .into_iter()
        .flat_map(|spawner| spawner.join().unwrap())
        .collect();
    assert_eq!(spawned_and_refused(&outcomes), (MOST, 3 * SPAWNS - MOST));
    assert_eq!(shared.instances[0].counts(Millis(0)).live, MOST);
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

/// An instance decides a step on a drop it knows (`known`) on what it knows, and its commit
/// checks that it is still so: when another instance changed the drop, or the command was
/// applied already, the step is decided again on what is there, with the outcome of a step
/// that read first.
#[test]
fn what_an_instance_knows_of_a_drop_gives_way_to_what_another_did() {
    let shared = Shared::new(2, RULES, 0);
    let (a, b) = (&shared.instances[0], &shared.instances[1]);
    let origin_at = |offset| Origin {
        position: at("group/commands/0", offset, i64::MIN),
        ..origin(0, 0, offset as u128)
    };
    let mut events = Vec::new();
    // A spawns the drop: it knows the drop's record and the partition's floor.
    let spawned = a.spawn(&origin_at(0), spec(false, 2, 0, 0), Millis(0), &mut |e| {
        events.push(e)
    });
    let id = spawned.unwrap().id.get();
    let reserve_for = |character| DropRequest::Reserve(reserve(id, character));
    let pick_up_by = |character_id| {
        DropRequest::PickUp(CharacterRequest {
            drop_id: id,
            character_id,
        })
    };
    let mut on = |store: &Blocking, offset, request| {
        store.on_drop(&origin_at(offset), request, Millis(1), &mut |e| {
            events.push(e)
        })
    };
    // B reserves it for character 1, while A knows it available.
    assert_eq!(on(b, 1, reserve_for(1)), Ok(()));
    assert_eq!(on(a, 2, reserve_for(2)), Err(Refusal::HeldByOther));
    // A learnt the reservation as it committed its refusal: the holder picks the drop up.
    assert_eq!(on(a, 3, pick_up_by(1)), Ok(()));
    // The same command again on A, which takes an offset as not applied: met again.
    assert_eq!(on(a, 3, pick_up_by(1)), Err(Refusal::AlreadyApplied));
    // B knows the drop reserved, from its own commit: it is gone.
    assert_eq!(on(b, 4, pick_up_by(1)), Err(Refusal::UnknownDrop));
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["CREATED", "RESERVED", "RESERVATION_FAILURE", "PICKED_UP"]
    );
    assert_eq!(shared.outbox_len(), 4);
    assert_eq!(a.counts(Millis(1)).live, 0);
}

/// A spawn of an item for tenant `n` on map `map` at `at` ms.
fn spawn_on(store: &Blocking, n: u8, map: u8, at: u64) -> Result<Drop, Refusal> {
    let origin = origin(n, map, u128::from(at));
    store.spawn(&origin, spec(false, 2, 0, 0), Millis(at), &mut |_| {})
}

fn pick_up(store: &Blocking, drop: &Drop, at: u64) {
    let request = DropRequest::PickUp(CharacterRequest {
        drop_id: drop.id.get(),
        character_id: 1,
    });
    let origin = Origin {
        tenant: drop.tenant.clone(),
        location: drop.location,
        ..origin(0, 0, 0)
    };
    let picked = store.on_drop(&origin, request, Millis(at), &mut |_| {});
    assert_eq!(picked, Ok(()), "{drop:?}");
}

#[test]
fn atlas_ids_come_from_the_tenants_counter() {
    let shared = Shared::atlas(1, RULES, 0);
    let store = &shared.instances[0];
    let id = |n, map| spawn_on(store, n, map, 0).map(|drop| drop.id.get());
    assert_eq!(shared.atlas_counter(0), None);
    assert_eq!(
        id(0, 0),
        Ok(1_000_000),
        "a fresh counter starts at a million"
    );
    assert_eq!(shared.atlas_counter(0), Some(1_000_000));
    assert_eq!(id(0, 0), Ok(1_000_001));
    assert_eq!(
        id(1, 0),
        Ok(1_000_000),
        "another tenant, a counter of its own"
    );
    // Monsters and reactors take their ids from the same counter.
    shared.atlas_counter_is(0, 1_000_005);
    assert_eq!(id(0, 1), Ok(1_000_006));
    // The allocator's keys, beside ours, not under our prefix's names.
    assert_eq!(
        shared.atlas_keys(0),
        (
            format!(
                "{}:atlas:oid:00000000-0000-0000-0000-000000000001:next",
                shared.prefix
            ),
            format!(
                "{}:atlas:oid:00000000-0000-0000-0000-000000000001:free",
                shared.prefix
            )
        )
    );
    // The id index names each drop by (tenant, id).
    let mut entries: Vec<String> = redis::cmd("HKEYS")
        .arg(shared.keys().ids())
        .query(&mut shared.redis())
        .unwrap();
    entries.sort();
    let t0 = "00000000-0000-0000-0000-000000000001";
    let t1 = "00000000-0000-0000-0000-000000000002";
    assert_eq!(
        entries,
        [
            format!("{t0}/1000000"),
            format!("{t0}/1000001"),
            format!("{t0}/1000006"),
            format!("{t1}/1000000"),
        ]
    );
    // Below the recycle threshold an id gone is never given back, nor used again.
    let drop = spawn_on(store, 1, 1, 0).unwrap();
    pick_up(store, &drop, 1);
    assert_eq!(shared.atlas_free(1), Vec::<u32>::new());
    assert_eq!(id(1, 1), Ok(drop.id.get() + 1));
}

/// At or above the threshold, every way a drop goes gives its id back — evicted by the map's
/// cap, picked up, consumed, expired, its reservation lapsed — and the ids come again, the last
/// given back first, before the counter moves on.
#[test]
fn at_the_threshold_atlas_ids_go_back_with_their_drops_and_come_again_last_first() {
    let shared = Shared::atlas(1, RULES, 0);
    let store = &shared.instances[0];
    let r = RECYCLE_AT;
    shared.atlas_counter_is(0, r);
    let spawn = |map, at| spawn_on(store, 0, map, at).unwrap();
    let drops: Vec<Drop> = (0..3).map(|at| spawn(0, at)).collect();
    let ids = |drops: &[Drop]| drops.iter().map(|d| d.id.get()).collect::<Vec<_>>();
    assert_eq!(ids(&drops), [r + 1, r + 2, r + 3]);
    // A fourth on the map (cap 3) evicts the oldest.
    let fourth = spawn(0, 3);
    assert_eq!(fourth.id.get(), r + 4);
    assert_eq!(shared.atlas_free(0), [r + 1]);
    pick_up(store, &drops[1], 4);
    assert_eq!(shared.atlas_free(0), [r + 2, r + 1]);
    let consume = DropRequest::Consume {
        drop_id: drops[2].id.get(),
    };
    assert_eq!(
        store.on_drop(&origin(0, 0, 5), consume, Millis(5), &mut |_| {}),
        Ok(())
    );
    assert_eq!(shared.atlas_free(0), [r + 3, r + 2, r + 1]);
    assert_eq!(
        store.expire_due(Millis(3 + RULES.expire_ms), &mut |_| {}),
        1
    );
    assert_eq!(shared.atlas_free(0), [r + 4, r + 3, r + 2, r + 1]);
    // A reservation that lapses: the sweep removes the drop, and its id goes back.
    let at = 4 + RULES.expire_ms;
    let held = spawn(1, at);
    assert_eq!(held.id.get(), r + 4, "the last given back first");
    let request = DropRequest::Reserve(reserve(held.id.get(), 1));
    let reserved = store.on_drop(&origin(0, 1, 6), request, Millis(at), &mut |_| {});
    assert_eq!(reserved, Ok(()));
    let lapsed = at + RULES.reservation_timeout_ms;
    assert_eq!(store.expire_due(Millis(lapsed), &mut |_| {}), 1);
    assert_eq!(shared.atlas_free(0), [r + 4, r + 3, r + 2, r + 1]);
    let again: Vec<Drop> = (1..=4).map(|map| spawn(map, lapsed)).collect();
    assert_eq!(ids(&again), [r + 4, r + 3, r + 2, r + 1]);
    assert_eq!(
        spawn(5, lapsed).id.get(),
        r + 5,
        "then the counter moves on"
    );
    assert_eq!(shared.atlas_counter(0), Some(i64::from(r + 5)));
    assert_eq!(
        shared.atlas_free(1),
        Vec::<u32>::new(),
        "another tenant's list is its own"
    );
}

#[test]
fn an_exhausted_atlas_range_refuses_the_spawn() {
    let shared = Shared::atlas(1, RULES, 0);
    let store = &shared.instances[0];
    shared.atlas_counter_is(0, DropId::ATLAS_LAST.get() - 1);
    let last = spawn_on(store, 0, 0, 0).unwrap();
    assert_eq!(last.id, DropId::ATLAS_LAST);
    let mut events = Vec::new();
    let refused = store.spawn(&origin(0, 0, 1), spec(true, 2, 0, 0), Millis(1), &mut |e| {
        events.push(e)
    });
    assert_eq!(refused, Err(Refusal::StoreFull));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(store.counts(Millis(1)).live, 1);
    // The last id, given back once its drop is gone, serves once more.
    pick_up(store, &last, 2);
    assert_eq!(shared.atlas_free(0), [DropId::ATLAS_LAST.get()]);
    assert_eq!(
        spawn_on(store, 0, 0, 3).map(|d| d.id),
        Ok(DropId::ATLAS_LAST)
    );
    assert_eq!(spawn_on(store, 0, 0, 4), Err(Refusal::StoreFull));
    assert_eq!(
        spawn_on(store, 1, 0, 4).map(|d| d.id),
        Ok(DropId::ATLAS_FIRST)
    );
}

/// Spawns racing on one map under its cap, on three instances, at the threshold: steps are
/// decided again when another instance changed the map, and each eviction gives an id back that
/// the next spawn takes. Every id handed out is then lying or free, once: none used twice, none
/// lost.
#[test]
fn recycled_atlas_ids_stay_unique_with_spawns_racing_on_three_instances() {
    const LIMIT: usize = 5;
    const SPAWNS: usize = 40;
    let shared = Shared::atlas(
        3,
        Rules {
            map_drop_limit: LIMIT,
            ..RULES
        },
        0,
    );
    shared.atlas_counter_is(0, RECYCLE_AT);
    let spawners: Vec<_> = (shared.instances.iter().cloned())
        .map(|store| {
            std::thread::spawn(move || {
                (0..SPAWNS)
                    .map(|n| spawn_on(&store, 0, 0, n as u64).unwrap().id.get())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let created: Vec<u32> = spawners
        .into_iter()
        .flat_map(|spawner| spawner.join().unwrap())
        .collect();
    let (tenant, location) = (origin(0, 0, 0).tenant, origin(0, 0, 0).location);
    let lying: Vec<u32> = (shared.instances[0]
        .list(&tenant, location, Millis(0))
        .iter())
    .map(|drop| drop.id.get())
    .collect();
    assert_eq!(lying.len(), LIMIT);
    let free = shared.atlas_free(0);
    let held: HashSet<u32> = lying.iter().chain(&free).copied().collect();
    assert_eq!(held.len(), lying.len() + free.len(), "{lying:?} {free:?}");
    let counted = shared.atlas_counter(0).unwrap() - i64::from(RECYCLE_AT);
    assert_eq!(
        held.len() as i64,
        counted,
        "every id handed out is lying or free"
    );
    assert!(created.len() > held.len(), "ids came again: {created:?}");
}
