//! The Redis store's transitions a second, on the real Redis (`ATLAS_BENCH_REDIS_URL`, else
//! 127.0.0.1:6379), as the service makes them: each with its command's offset recorded and its
//! events written to the outbox. Tasks on a two-thread runtime stand for partitions (of one or
//! several instances), each applying its commands one after another, as a partition does; each
//! runs for `SECONDS` and the total is printed. Keys go under a fresh prefix, deleted after.
//!
//! `cargo bench --bench redis_store`; `ATLAS_BENCH_ID_SOURCE=atlas` takes the ids from the Atlas
//! allocator (contract-head §7), its keys under the same fresh prefix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_drops::drop::command::{CharacterRequest, DropRequest, ReserveRequest};
use atlas_drops::drop::model::{
    Contents, Correlation, DropSpec, Dropper, Location, Millis, Point, Tenant,
};
use atlas_drops::drop::rules::Rules;
use atlas_drops::store::{IdSource, LogPosition, Origin, RedisStore, RedisStoreConfig};
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
                late: false,
                partition: self.name.clone(),
                offset: self.offset,
                committed: self.offset,
            }),
        }
    }
}

/// What a partition does over and over.
#[derive(Clone, Copy)]
enum Work {
    ReserveCancel,
    SpawnPickUp,
}

impl Work {
    /// Does it once: the transitions made.
    async fn once(self, store: &RedisStore, partition: &mut Partition) -> usize {
        match self {
            Work::ReserveCancel => reserve_cancel(store, partition).await,
            Work::SpawnPickUp => spawn_pick_up(store, partition).await,
        }
    }
}

/// Runs `threads` partitions doing `work` until time is up.
async fn measure(
    name: &str,
    store: &Arc<RedisStore>,
    threads: usize,
    shared_map: bool,
    work: Work,
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
                    instance: Uuid::nil(),
                },
                name: format!("bench/{name}/{threads}/{n}").into(),
                offset: 0,
            };
            tokio::spawn(async move {
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    done += work.once(&store, &mut partition).await;
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = 0;
    for worker in workers {
        done += worker.await.expect("a partition ran");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{name:<28} partitions={threads}  {:>8.0} transitions/s",
        done as f64 / seconds
    );
}

/// Reserve and cancel one drop (spawned on first use): two transitions.
async fn reserve_cancel(store: &RedisStore, partition: &mut Partition) -> usize {
    let origin = partition.next();
    let drop = store
        .spawn(&origin, spec(), Millis(1), &mut |_| {})
        .await
        .expect("spawned");
    let mut made = 1;
    for _ in 0..50 {
        let origin = partition.next();
        let request = DropRequest::Reserve(ReserveRequest {
            drop_id: drop.id.get(),
            character_id: 7,
            position: Point::default(),
            pet_slot: -1,
            party_id: 0,
            present: Some(Vec::new()),
        });
        let reserved = store
            .on_drop(&origin, &request, Millis(2), &mut |_| {})
            .await;
        let origin = partition.next();
        let request = DropRequest::CancelReservation(CharacterRequest {
            drop_id: drop.id.get(),
            character_id: 7,
        });
        let cancelled = store
            .on_drop(&origin, &request, Millis(2), &mut |_| {})
            .await;
        made += usize::from(reserved.is_ok()) + usize::from(cancelled.is_ok());
    }
    let request = CharacterRequest {
        drop_id: drop.id.get(),
        character_id: 7,
    };
    store
        .on_drop(
            &partition.next(),
            &DropRequest::PickUp(request),
            Millis(3),
            &mut |_| {},
        )
        .await
        .expect("picked up");
    made + 1
}

/// A spawn and its pick-up: two transitions.
async fn spawn_pick_up(store: &RedisStore, partition: &mut Partition) -> usize {
    let drop = store
        .spawn(&partition.next(), spec(), Millis(1), &mut |_| {})
        .await
        .expect("spawned");
    let request = CharacterRequest {
        drop_id: drop.id.get(),
        character_id: 7,
    };
    store
        .on_drop(
            &partition.next(),
            &DropRequest::PickUp(request),
            Millis(2),
            &mut |_| {},
        )
        .await
        .expect("picked up");
    2
}

#[tokio::main(worker_threads = 2)]
async fn main() {
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
        ids: match std::env::var("ATLAS_BENCH_ID_SOURCE").as_deref() {
            Ok("atlas") => IdSource::Atlas {
                prefix: format!("{prefix}:atlas"),
            },
            _ => IdSource::Own,
        },
    })
    .await
    {
        Ok(store) => Arc::new(store),
        Err(error) => return eprintln!("no Redis to measure against: {error}"),
    };
    for threads in [1, 4, 8] {
        measure(
            "reserve+cancel",
            &store,
            threads,
            false,
            Work::ReserveCancel,
        )
        .await;
    }
    for threads in [1, 4, 8] {
        measure("spawn+pick_up", &store, threads, false, Work::SpawnPickUp).await;
    }
    measure(
        "reserve+cancel, one map",
        &store,
        8,
        true,
        Work::ReserveCancel,
    )
    .await;

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
