//! The in-memory store's transitions: single-threaded, and two threads contending.
//!
//! `cargo bench --bench store`

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_drops::drop::command::{CharacterRequest, DropRequest, ReserveRequest};
use atlas_drops::drop::model::{
    Contents, Correlation, DropSpec, Dropper, Location, Millis, Point, Tenant,
};
use atlas_drops::drop::rules::Rules;
use atlas_drops::store::{MemoryStore, Origin};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use uuid::Uuid;

fn origin(map: u32) -> Origin {
    Origin {
        tenant: Arc::new(Tenant {
            id: Uuid::nil(),
            region: "GMS".into(),
            major_version: 83,
            minor_version: 1,
        }),
        location: Location {
            world_id: 0,
            channel_id: 1,
            map_id: map,
            instance: Uuid::nil(),
        },
        correlation: Correlation::default(),
        position: None,
    }
}

fn spec() -> DropSpec {
    DropSpec {
        contents: Contents::new(2_000_000, 0, 1, 0).unwrap(),
        drop_type: 2,
        position: Point { x: 0, y: 0 },
        owner_id: 0,
        owner_party_id: 0,
        dropper: Dropper::default(),
        player_drop: false,
        mod_: 0,
    }
}

fn reserve(drop_id: u32, character_id: u32) -> DropRequest {
    DropRequest::Reserve(ReserveRequest {
        drop_id,
        character_id,
        position: Point::default(),
        pet_slot: -1,
        party_id: 0,
        present: Some(Vec::new()),
    })
}

/// A store with `per_map` drops on each of `maps` maps; returns the drop ids.
fn filled(maps: u32, per_map: u32) -> (MemoryStore, Vec<u32>, Vec<Origin>) {
    let store = MemoryStore::new(
        Rules {
            map_drop_limit: 0,
            ..Rules::default()
        },
        0,
    );
    let origins: Vec<Origin> = (0..maps).map(origin).collect();
    let mut ids = Vec::new();
    for origin in &origins {
        for _ in 0..per_map {
            ids.push(
                store
                    .spawn(origin, spec(), Millis(0), &mut |_| {})
                    .unwrap()
                    .id
                    .get(),
            );
        }
    }
    (store, ids, origins)
}

fn single_threaded(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let (store, ids, origins) = filled(1000, 10);
    let mut next = 0usize;
    group.bench_function("reserve+cancel", |b| {
        b.iter(|| {
            next = (next + 1) % ids.len();
            let origin = &origins[next / 10];
            store
                .on_drop(origin, &reserve(ids[next], 7), Millis(1), &mut |_| {})
                .unwrap();
            store
                .on_drop(
                    origin,
                    &DropRequest::CancelReservation(CharacterRequest {
                        drop_id: ids[next],
                        character_id: 7,
                    }),
                    Millis(1),
                    &mut |_| {},
                )
                .unwrap();
        })
    });
    group.bench_function("spawn+pick_up", |b| {
        let origin = origin(5000);
        b.iter(|| {
            let drop = store
                .spawn(&origin, spec(), Millis(1), &mut |_| {})
                .unwrap();
            let request = CharacterRequest {
                drop_id: drop.id.get(),
                character_id: 7,
            };
            store
                .on_drop(
                    &origin,
                    &DropRequest::PickUp(request),
                    Millis(1),
                    &mut |_| {},
                )
                .unwrap();
        })
    });
    group.bench_function("reserve_failure_unknown_drop", |b| {
        let origin = origin(1);
        b.iter(|| {
            store
                .on_drop(&origin, &reserve(1_999_999_999, 7), Millis(1), &mut |_| {})
                .unwrap_err()
        })
    });
    group.bench_function("expire_1000_due_of_10000", |b| {
        b.iter_batched(
            || {
                let (store, _, origins) = filled(1000, 9);
                for origin in &origins {
                    store
                        .spawn(origin, spec(), Millis(1_000_000), &mut |_| {})
                        .unwrap();
                }
                store
            },
            // Only the 9000 drops at time 0 are due: the other 1000 are not touched.
            |store| assert_eq!(store.expire_due(Millis(180_000), &mut |_| {}), 9000),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Two threads doing reserve+cancel pairs at once, on different drops: how the store scales.
fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_2_threads");
    group.throughput(Throughput::Elements(2));
    let (store, ids, origins) = filled(1000, 10);
    let store = Arc::new(store);
    let origins = Arc::new(origins);
    let ids = Arc::new(ids);
    // Each iteration is one pair on each thread, on drops of their own.
    group.bench_function("reserve+cancel", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            let threads: Vec<_> = (0..2)
                .map(|half| {
                    let (store, ids, origins) = (store.clone(), ids.clone(), origins.clone());
                    std::thread::spawn(move || {
                        let span = ids.len() / 2;
                        for index in 0..iterations as usize {
                            pair(&store, &ids, &origins, half * span + index % span);
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            started.elapsed()
        })
    });
    group.finish();
}

fn pair(store: &MemoryStore, ids: &[u32], origins: &[Origin], index: usize) {
    let origin = &origins[index / 10];
    store
        .on_drop(origin, &reserve(ids[index], 7), Millis(1), &mut |_| {})
        .unwrap();
    store
        .on_drop(
            origin,
            &DropRequest::CancelReservation(CharacterRequest {
                drop_id: ids[index],
                character_id: 7,
            }),
            Millis(1),
            &mut |_| {},
        )
        .unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = single_threaded, contended
}
criterion_main!(benches);
