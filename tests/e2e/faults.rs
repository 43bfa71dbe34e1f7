//! Faults: the broker cut off under load, commands redelivered after the cut, shutdown with the
//! broker gone. Nothing lost, nothing applied twice, nothing hanging.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const MAP: u32 = 700_000_000;

/// Each command's events, by transaction id.
fn by_transaction(events: &[Event]) -> HashMap<String, Vec<String>> {
    let mut answers: HashMap<String, Vec<String>> = HashMap::new();
    for event in events {
        answers
            .entry(event.transaction_id().to_owned())
            .or_default()
            .push(event.kind().to_owned());
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_cut_under_load_loses_nothing_and_applies_nothing_twice() {
    let (broker, proxy) = Broker::start_behind_proxy().await;
    // Offsets are committed rarely, so after the cut the group hands the partitions back from
    // their start: every command is redelivered, and must be recognised as applied.
    let options = Options::default().env("KAFKA_CFG_AUTO_COMMIT_INTERVAL_MS", "600000");
    let mut env = TestEnv::on(broker, options).await;
    let peer = &mut env.peer;
    let mut ids = Vec::new();
    for map in 0..40 {
        ids.push(
            peer.spawn_drop(&spawn_item(MAP + map, 2_000_000))
                .await
                .drop_id(),
        );
    }

    // Load: reservations of those drops and new spawns, sent in waves across a 10 s cut.
    let mut commands: Vec<Value> = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        commands.push(reserve(MAP + index as u32, *id, 7));
        commands.push(spawn_item(MAP + index as u32, 2_000_001));
    }
    let waves: Vec<&[Value]> = commands.chunks(10).collect();
    let (before, after) = waves.split_at(waves.len() / 2);
    for wave in before {
        peer.send_all(wave, None).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.cut();
    let sending_during_cut = {
        let waves: Vec<Vec<Value>> = after.iter().map(|wave| wave.to_vec()).collect();
        let broker_address = env.broker.bootstrap.clone();
        let names = env.names.clone();
        let tenant = peer.tenant.clone();
        tokio::spawn(async move {
            // A second peer of the same tenant, so its sends wait out the cut without holding
            // up the test.
            let mut sender = Peer::connect_existing(&broker_address, &names).await;
            sender.tenant = tenant;
            for wave in waves {
                sender.send_all(&wave, None).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.restore();
    sending_during_cut.await.expect("the commands were sent");

    let expected = commands.len();
    let answers = peer.next_events(expected, Duration::from_secs(90)).await;
    let extra = peer.events_until_quiet(Duration::from_secs(3)).await;
    assert!(
        extra.is_empty(),
        "events beyond one per command: {extra:#?}"
    );
    let answered = by_transaction(&answers);
    for command in &commands {
        let kinds = &answered[command["transactionId"].as_str().unwrap()];
        let want = if command["type"] == "SPAWN" {
            "CREATED"
        } else {
            "RESERVED"
        };
        assert_eq!(kinds, &[want], "{command}");
    }
    let logs = env.service.logs();
    assert!(
        logs.contains("redelivered command skipped"),
        "the partitions were redelivered after the cut, and recognised"
    );
    // And the service still works.
    peer.send(&pick_up(MAP, ids[0], 7)).await;
    assert_eq!(peer.next_event().await.kind(), "PICKED_UP");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_with_the_broker_gone_ends_within_its_deadline_and_says_so() {
    let broker = Broker::start();
    if !broker.is_ours() {
        return; // only a broker of our own can be taken away
    }
    let mut env = TestEnv::on(
        broker,
        Options::default().env("SHUTDOWN_TIMEOUT_MS", "2000"),
    )
    .await;
    for map in 0..3 {
        env.peer.spawn_drop(&spawn_item(MAP + map, 2_000_000)).await;
    }
    drop(env.peer);
    drop(env.broker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let service = env.service;
    let http = service.http.clone();
    let stopping = tokio::task::spawn_blocking(move || service.stop(Duration::from_secs(20)));
    // While it shuts down, it tells the orchestrator it is not ready.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut said = String::new();
    while !stopping.is_finished() && !said.contains("shutting down") {
        said = http_get(&format!("{http}/readyz"), &[]).await.2;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(said.contains("not ready: shutting down"), "{said}");
    let stopped = stopping.await.expect("stopped");
    assert!(
        !stopped.success(),
        "undelivered EXPIRED events make the exit non-zero"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stopped.logs.contains("EXPIRED events still undelivered"),
        "{}",
        stopped.logs
    );
}
