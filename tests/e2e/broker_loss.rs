//! A broker that restarts empty (a Kafka cluster rebuilt or restored, a preview environment
//! recreated; here Tansu with memory storage) while commands flow: its offsets start again, the
//! idempotent producer's sequence numbers mean nothing to it, its consumer group is gone. The
//! service must go on: every command sent after each restart has its events, none twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

use crate::harness::*;

const MAP: u32 = 320_000_000;
const RESTARTS: usize = 3;
const AFTER_EACH: usize = 20;

/// Sends spawns every few milliseconds until stopped, ignoring failures: the load the broker
/// is lost under. Once stopped, what it did not get acknowledged is dropped, not sent to the
/// next broker: Tansu loses records written by several producers at once into a log just
/// created (its high watermark stays behind them), which real Kafka does not.
fn background_load(broker: &Broker, names: &Names, tenant: &Tenant) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "3000")
        // As a peer should: topics are created by who owns them (here the test, as an
        // operator would, and the service), never as a side effect of producing.
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("producer");
    let (stopping, topic, headers) = (stop.clone(), names.commands.clone(), tenant.headers());
    tokio::spawn(async move {
        while !stopping.load(Ordering::Relaxed) {
            let value = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
            let key = uuid::Uuid::new_v4();
            let record = FutureRecord::to(&topic)
                .key(key.as_bytes())
                .payload(&value)
                .headers(headers.clone());
            let _ = producer.send_result(record);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        use rdkafka::producer::{Producer, PurgeConfig};
        producer.purge(PurgeConfig::default().queue().inflight());
    });
    stop
}

/// Sends `count` spawns and waits until each has its one `CREATED`; fails on a second one.
async fn spawns_each_created_once(
    peer: &mut Peer,
    service: &Service,
    (bootstrap, names): (&str, &Names),
    count: usize,
) {
    let spawns: Vec<Value> = (0..count).map(|_| spawn_item(MAP, 2_000_000)).collect();
    let ours: HashMap<String, usize> = spawns
        .iter()
        .map(|spawn| (spawn["transactionId"].as_str().unwrap().to_owned(), 0))
        .collect();
    let mut ours = ours;
    peer.send_all(&spawns, None).await;
    let started = Instant::now();
    while ours.values().any(|&seen| seen == 0) {
        if started.elapsed() > Duration::from_secs(75) {
            // Whether the topic holds them, read by a reader of its own.
            let mut again = Peer::connect_existing(bootstrap, names).await;
            let on_topic: Vec<Event> = again.events_until_quiet(Duration::from_secs(3)).await;
            let missing: Vec<&String> = ours
                .iter()
                .filter(|(_, seen)| **seen == 0)
                .map(|(tx, _)| tx)
                .collect();
            let found = on_topic
                .iter()
                .filter(|event| missing.contains(&&event.transaction_id().to_owned()))
                .count();
            panic!(
                "missing CREATED for {} of {count} spawns ({found} of them on the topic, read afresh: {} events); log:\n{}",
                missing.len(),
                on_topic.len(),
                service.logs()
            );
        }
        for event in peer.events_until_quiet(Duration::from_millis(500)).await {
            if let Some(seen) = ours.get_mut(event.transaction_id()) {
                assert_eq!(event.kind(), "CREATED");
                *seen += 1;
            }
        }
    }
    for event in peer.events_until_quiet(Duration::from_secs(2)).await {
        if let Some(seen) = ours.get_mut(event.transaction_id()) {
            *seen += 1;
        }
    }
    assert!(
        ours.values().all(|&seen| seen == 1),
        "a CREATED twice: {ours:?}"
    );
}

async fn the_service_goes_on_when_the_broker_loses_its_state(store: Store) {
    let broker = Broker::start();
    if !broker.is_ours() {
        eprintln!("skipped: restarting the broker needs the tests' own Tansu");
        return;
    }
    // Topics come back within a second of their re-creation.
    let options = Options::default()
        .store(store)
        .env("KAFKA_CFG_TOPIC_METADATA_REFRESH_INTERVAL_MS", "1000");
    let mut env = TestEnv::on(broker, options).await;
    let TestEnv {
        service,
        peer,
        names,
        broker,
        ..
    } = &mut env;
    service.ready().await;
    spawns_each_created_once(peer, service, (&broker.bootstrap, names), AFTER_EACH).await;

    for _ in 0..RESTARTS {
        // The service is busy with commands and their events when the broker goes.
        let load = background_load(broker, names, &peer.tenant);
        tokio::time::sleep(Duration::from_millis(500)).await;
        broker.kill();
        load.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        broker.start_again_empty();
        create_topics(broker, names).await;
        peer.reconnect(&broker.bootstrap);
        if let Some(status) = service.exited() {
            panic!(
                "the service died when the broker restarted: {status}; log:\n{}",
                service.logs()
            );
        }
        spawns_each_created_once(peer, service, (&broker.bootstrap, names), AFTER_EACH).await;
    }
    assert!(
        service.metric("atlas_drops_log_restarts_total").await >= Some(1.0),
        "the new logs' offsets repeated the old ones'"
    );
    assert_eq!(
        service.metric("atlas_drops_stalled_partitions").await,
        Some(0.0)
    );
    let stopped = env.service.stop(Duration::from_secs(30));
    assert!(stopped.success(), "{}", stopped.logs);

    if store == Store::Shared {
        // A fresh instance, with nothing in memory, meets the shared store's applied record of
        // a log that is gone.
        env.broker.restart_empty();
        create_topics(&env.broker, &env.names).await;
        env.peer.reconnect(&env.broker.bootstrap);
        let fresh = Service::start(&env.broker, &env.names, &env.options);
        fresh.ready().await;
        let at = (env.broker.bootstrap.as_str(), &env.names);
        spawns_each_created_once(&mut env.peer, &fresh, at, AFTER_EACH).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_in_memory_store_goes_on_when_the_broker_loses_its_state() {
    the_service_goes_on_when_the_broker_loses_its_state(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_store_goes_on_when_the_broker_loses_its_state() {
    the_service_goes_on_when_the_broker_loses_its_state(Store::Shared).await;
}
