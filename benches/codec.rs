//! Decoding a command and encoding an event: the wire work of every command.
//!
//! `cargo bench --bench codec`

use std::sync::Arc;
use std::time::Duration;

use atlas_drops::drop::event::{Event, EventKind};
use atlas_drops::drop::model::{Contents, Correlation, Location, Tenant};
use atlas_drops::kafka::message::command::decode;
use atlas_drops::kafka::message::event::{encode_key, encode_value};
use atlas_drops::kafka::message::headers::event_headers;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rdkafka::message::{Header, OwnedHeaders};
use uuid::Uuid;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "TENANT_ID",
            value: Some("3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a"),
        })
        .insert(Header {
            key: "REGION",
            value: Some("GMS"),
        })
        .insert(Header {
            key: "MAJOR_VERSION",
            value: Some(&[0u8, 83][..]),
        })
        .insert(Header {
            key: "MINOR_VERSION",
            value: Some(&[0u8, 1][..]),
        });
    let spawn = include_bytes!("../fuzz/corpus/spawn.json");
    let reservation = include_bytes!("../fuzz/corpus/request_reservation.json");
    group.bench_function("decode_spawn", |b| {
        b.iter(|| decode(Some(spawn), Some(&headers)).unwrap())
    });
    group.bench_function("decode_reservation", |b| {
        b.iter(|| decode(Some(reservation), Some(&headers)).unwrap())
    });
    let event = Event {
        tenant: Arc::new(Tenant {
            id: Uuid::nil(),
            region: "GMS".into(),
            major_version: 83,
            minor_version: 1,
        }),
        location: Location {
            world_id: 0,
            channel_id: 1,
            map_id: 100_000_000,
            instance: Uuid::nil(),
        },
        drop_id: 1_000_000_002,
        correlation: Correlation::default(),
        kind: EventKind::Reserved {
            character_id: 7,
            contents: Contents::new(2_000_000, 0, 3, 0).unwrap(),
        },
    };
    group.bench_function("encode_reserved", |b| {
        b.iter(|| {
            (
                encode_key(event.drop_id),
                encode_value(&event),
                event_headers(&event.tenant, &event.correlation),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = codec
}
criterion_main!(benches);
