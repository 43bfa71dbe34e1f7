//! Contract §2 sizes: nothing a peer sends may make us produce a record the broker refuses, and
//! a record the broker would refuse never stops a partition or the outbox.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::harness::*;

const MAP: u32 = 310_000_000;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// As large as a peer with librdkafka's defaults can send: the events a command causes carry
/// more than the command did, so echoing it would make them larger than the broker takes.
const HUGE: usize = 999_700;

/// A producer that sends records up to the broker's limit, as any peer may.
fn large_producer(broker: &Broker) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "0")
        .set("message.max.bytes", "1048576")
        .create()
        .expect("producer")
}

async fn send_large(
    producer: &FutureProducer,
    names: &Names,
    headers: OwnedHeaders,
    value: &[u8],
    key: &[u8],
) {
    let record = FutureRecord::to(&names.commands)
        .key(key)
        .payload(value)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)
        .expect("the broker takes the command");
}

fn with_trace(tenant: &Tenant, tracestate: &[u8]) -> OwnedHeaders {
    tenant
        .headers()
        .insert(Header {
            key: "traceparent",
            value: Some(TRACEPARENT),
        })
        .insert(Header {
            key: "tracestate",
            value: Some(tracestate),
        })
}

/// A reservation with a near-1 MB `tracestate`, then 40 spawns on the same partition: the
/// failure goes out without the `tracestate` (W3C lets a hop drop it), and every spawn after
/// it is applied and committed (a restart applies none of them again).
async fn oversized_trace_state_stalls_nothing(store: Store) {
    let mut env = TestEnv::with(Options::default().store(store)).await;
    let peer = &mut env.peer;
    let producer = large_producer(&env.broker);
    let key = b"one partition";
    let reserve = serde_json::to_vec(&reserve(MAP, 1_999_999_999, 7)).unwrap();
    let tracestate = vec![b'a'; HUGE];
    send_large(
        &producer,
        &env.names,
        with_trace(&peer.tenant, &tracestate),
        &reserve,
        key,
    )
    .await;
    let spawns: Vec<_> = (0..40).map(|_| spawn_item(MAP, 2_000_000)).collect();
    peer.send_all(&spawns, Some(key)).await;

    let events = peer.next_events(41, Duration::from_secs(30)).await;
    // Events of different drops may arrive in any order (they lie on different partitions).
    let (failures, created): (Vec<_>, Vec<_>) =
        (events.iter()).partition(|event| event.kind() == "RESERVATION_FAILURE");
    assert_eq!(failures.len(), 1, "{events:#?}");
    assert!(!failures[0].headers.contains_key("tracestate"));
    assert!(failures[0].headers.contains_key("traceparent"));
    assert!(created.iter().all(|event| event.kind() == "CREATED"));
    assert_eq!(
        env.service.metric("atlas_drops_undeliverable_total").await,
        Some(0.0)
    );
    assert_eq!(
        env.service.metric("atlas_drops_stalled_partitions").await,
        Some(0.0)
    );

    let stopped = env.service.stop(Duration::from_secs(30));
    assert!(stopped.success(), "{}", stopped.logs);
    if store == Store::Memory {
        // The in-memory store expires its drops as it stops.
        let expired = peer.next_events(40, Duration::from_secs(10)).await;
        assert!(expired.iter().all(|event| event.kind() == "EXPIRED"));
    }
    // Every offset was committed: a new instance of the group applies nothing again.
    let again = Service::start(&env.broker, &env.names, &env.options);
    again.ready().await;
    peer.expect_quiet(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_trace_state_stalls_no_partition_in_memory() {
    oversized_trace_state_stalls_nothing(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_trace_state_stalls_no_outbox_on_the_shared_store() {
    oversized_trace_state_stalls_nothing(Store::Shared).await;
}

/// A rejected command's reason can quote its value (serde quotes strings): the dead letter
/// carries a bounded reason. A command whose dead letter would be larger than the broker takes
/// is not dead-lettered but logged, counted and passed; its partition goes on.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_stay_within_the_broker_limit() {
    let mut env = TestEnv::with(Options::default().dead_letters()).await;
    let peer = &mut env.peer;
    let producer = large_producer(&env.broker);
    let key = b"one partition";
    let unknown_type = |bytes: usize| {
        let mut value = b"{\"type\":\"".to_vec();
        value.extend(std::iter::repeat_n(b'X', bytes));
        value.extend(b"\"}");
        value
    };
    send_large(
        &producer,
        &env.names,
        peer.tenant.headers(),
        &unknown_type(520_000),
        key,
    )
    .await;
    send_large(
        &producer,
        &env.names,
        peer.tenant.headers(),
        &unknown_type(HUGE),
        key,
    )
    .await;
    peer.send_all(&[spawn_item(MAP, 2_000_000)], Some(key))
        .await;
    assert_eq!(peer.next_event().await.kind(), "CREATED");

    let letters = peer.dead_letters(&env.broker, 1).await;
    let reason = String::from_utf8_lossy(&letters[0].headers["dlq.reason"]).into_owned();
    assert!(reason.len() < 512, "{} bytes: {reason:.200}", reason.len());
    assert!(reason.starts_with("unknown_type"), "{reason:.200}");
    assert_eq!(letters[0].raw.len(), 520_011);
    assert_eq!(
        env.service.metric("atlas_drops_undeliverable_total").await,
        Some(1.0)
    );
    assert_eq!(
        env.service.metric("atlas_drops_stalled_partitions").await,
        Some(0.0)
    );
    let logs = env.service.logs();
    assert!(
        logs.lines().all(|line| line.len() < 4096),
        "a log line quotes the value beyond its first bytes"
    );

    let stopped = env.service.stop(Duration::from_secs(30));
    assert!(stopped.success(), "{}", stopped.logs);
    assert_eq!(peer.next_event().await.kind(), "EXPIRED");
    let again = Service::start(&env.broker, &env.names, &env.options);
    again.ready().await;
    peer.expect_quiet(Duration::from_secs(3)).await;
    // No second dead letter (the restarted service sends them too): the first is the only one.
    let letters = peer.dead_letters(&env.broker, 1).await;
    assert_eq!(letters.len(), 1);
}

/// An outbox entry the broker refuses for good (written there by an older version, or grown
/// past a lowered limit) is deleted unsent, counted, and the events behind it go out.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_broker_refuses_does_not_stop_the_outbox() {
    // Every event of this instance is larger than its producer may send.
    let options = Options::default()
        .shared()
        .env("KAFKA_CFG_MESSAGE_MAX_BYTES", "1000");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    env.service.ready().await;
    let headers = with_trace(&peer.tenant, &[b'b'; 500]);
    let key = b"one partition";
    let spawn = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
    peer.send_keyed(Some(headers), &spawn, key).await;
    let started = std::time::Instant::now();
    while env.service.metric("atlas_drops_undeliverable_total").await != Some(1.0) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            env.service.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(env.service);

    // The next instance sends what comes after, with the broker's own limit.
    let service = Service::start(&env.broker, &env.names, &Options::default().shared());
    let spawns: Vec<_> = (0..10).map(|_| spawn_item(MAP, 2_000_000)).collect();
    peer.send_all(&spawns, Some(key)).await;
    let events = peer.next_events(10, Duration::from_secs(30)).await;
    assert!(events.iter().all(|event| event.kind() == "CREATED"));
    assert!(events
        .iter()
        .all(|event| !event.headers.contains_key("tracestate")));
    // Entries are deleted once the broker's answers are taken, a few milliseconds after.
    let started = std::time::Instant::now();
    while service.metric("atlas_drops_outbox_events").await != Some(0.0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each event's wait in the outbox was timed as the relay handed it over.
    let timed = service
        .metric("atlas_drops_outbox_wait_seconds_count")
        .await;
    assert!(timed.unwrap_or_default() >= 10.0, "{timed:?}");
}

/// A `traceparent` or `tracestate` over 512 bytes is dropped, and the command applied.
#[tokio::test(flavor = "multi_thread")]
async fn trace_headers_are_bounded() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let headers = with_trace(&peer.tenant, &[b'c'; 513]);
    let value = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
    peer.send_raw(Some(headers), &value).await;
    let created = peer.next_event().await;
    assert_eq!(created.kind(), "CREATED");
    assert!(!created.headers.contains_key("tracestate"));
    let headers = with_trace(&peer.tenant, &[b'c'; 512]);
    peer.send_raw(Some(headers), &value).await;
    let created = peer.next_event().await;
    assert_eq!(created.kind(), "CREATED");
    assert_eq!(created.headers["tracestate"].len(), 512);
}
