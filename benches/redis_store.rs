//! The Redis store's transitions a second, on the real Redis (`ATLAS_BENCH_REDIS_URL`, else
//! 127.0.0.1:6379), as the service makes them: each with its command's offset recorded and its
//! events written to the outbox. Threads stand for partitions (of one or several instances);
//! each runs for `SECONDS` and the total is printed. Keys go under a fresh prefix, deleted after.
//!
//! `cargo bench --bench redis_store`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_drops::drop::command::{CharacterRequest, ReserveRequest};
use atlas_drops::drop::model::{
    Contents, Correlation, DropSpec, Dropper, Location, Millis, Point, Tenant,
};
use atlas_drops::drop::rules::Rules;
use atlas_drops::store::{DropStore, LogPosition, Origin, RedisStore, RedisStoreConfig};
use uuid::Uuid;

const SECONDS: f64 = 3.0;

fn spec() -> DropSpec {
    DropSpec {
        contents: Contents::new(2_000_000, 0, 1, 0).unwrap(),
        drop_type: 2,
        position: Point::default(),
        owner_id: 0,
        owner_party_id: 0,
        dropper: Dropper::default(),
        player_drop: false,
        mod_: 0,
    }
}

/// One thread's commands: its own partition, its own map unless `shared_map`.
struct Partition {
    tenant: Arc<Tenant>,
    location: Location,
    name: Arc<str>,
    offset: i64,
}

impl Partition {
    fn next(&mut self) -> Origin {
        self.offset += 1;
        Origin {
            tenant: self.tenant.clone(),
            location: self.location,
            correlation: Correlation {
                transaction_id: Uuid::new_v4(),
                ..Correlation::default()
            },
            position: Some(LogPosition {
                partition: self.name.clone(),
                offset: self.offset,
                committed: self.offset,
            }),
        }
    }
}

/// Runs `threads` threads doing `work` (which returns transitions made) until time is up.
fn measure(
    name: &str,
    store: &Arc<RedisStore>,
    threads: usize,
    shared_map: bool,
    work: fn(&RedisStore, &mut Partition) -> usize,
) {
    let tenant = Arc::new(Tenant {
        id: Uuid::new_v4(),
        region: "GMS".into(),
        major_version: 83,
        minor_version: 1,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|n| {
            let (store, stop) = (store.clone(), stop.clone());
            let mut partition = Partition {
                tenant: tenant.clone(),
                location: Location {
                    world_id: 0,
                    channel_id: 1,
                    map_id: if shared_map { 1 } else { n as u32 },
                },
                name: format!("bench/{name}/{threads}/{n}").into(),
                offset: 0,
            };
            std::thread::spawn(move || {
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    done += work(&store, &mut partition);
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(SECONDS));
    stop.store(true, Ordering::Relaxed);
    let done: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{name:<28} threads={threads}  {:>8.0} transitions/s",
        done as f64 / seconds
    );
}

/// Reserve and cancel one drop (spawned on first use): two transitions.
fn reserve_cancel(store: &RedisStore, partition: &mut Partition) -> usize {
    let origin = partition.next();
    let drop = store
        .spawn(&origin, spec(), Millis(1), &mut |_| {})
        .expect("spawned");
    let mut made = 1;
    for _ in 0..50 {
        let origin = partition.next();
        let request = ReserveRequest {
            drop_id: drop.id.get(),
            character_id: 7,
            position: Point::default(),
            pet_slot: -1,
            party_id: 0,
        };
        let reserved = store.reserve(&origin, &request, Millis(2), &mut |_| {});
        let origin = partition.next();
        let request = CharacterRequest {
            drop_id: drop.id.get(),
            character_id: 7,
        };
        let cancelled = store.cancel(&origin, &request, Millis(2), &mut |_| {});
        made += usize::from(reserved.is_ok()) + usize::from(cancelled.is_ok());
    }
    let request = CharacterRequest {
        drop_id: drop.id.get(),
        character_id: 7,
    };
    store
        .pick_up(&partition.next(), &request, Millis(3), &mut |_| {})
        .expect("picked up");
    made + 1
}

/// A spawn and its pick-up: two transitions.
fn spawn_pick_up(store: &RedisStore, partition: &mut Partition) -> usize {
    let drop = store
        .spawn(&partition.next(), spec(), Millis(1), &mut |_| {})
        .expect("spawned");
    let request = CharacterRequest {
        drop_id: drop.id.get(),
        character_id: 7,
    };
    store
        .pick_up(&partition.next(), &request, Millis(2), &mut |_| {})
        .expect("picked up");
    2
}

fn main() {
    let url =
        std::env::var("ATLAS_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("atlas-drops-bench:{}", Uuid::new_v4());
    let store = match RedisStore::connect(RedisStoreConfig {
        url: &url,
        key_prefix: &prefix,
        rules: Rules {
            map_drop_limit: 0,
            ..Rules::default()
        },
        max_live_drops: 0,
    }) {
        Ok(store) => Arc::new(store),
        Err(error) => return eprintln!("no Redis to measure against: {error}"),
    };
    for threads in [1, 4, 8] {
        measure("reserve+cancel", &store, threads, false, reserve_cancel);
    }
    for threads in [1, 4, 8] {
        measure("spawn+pick_up", &store, threads, false, spawn_pick_up);
    }
    measure("reserve+cancel, one map", &store, 8, true, reserve_cancel);

    // The outbox holds every event written: delete the bench's keys.
    let mut redis = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .expect("Redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut redis)
        .unwrap_or_default();
    for chunk in keys.chunks(1000) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut redis);
    }
}
