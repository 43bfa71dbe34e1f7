//! Contract §6: bad input is rejected, committed, and touches nothing else; the partition goes on.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use serde_json::json;

use crate::harness::*;

const MAP: u32 = 300_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn bad_commands_change_nothing_and_stall_nothing() {
    let mut env = TestEnv::with(Options::default().dead_letters()).await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();

    let tenant = peer.tenant.headers();
    let mut bad: Vec<(Option<OwnedHeaders>, Vec<u8>)> = vec![
        (Some(tenant.clone()), b"not json".to_vec()),
        (Some(tenant.clone()), b"".to_vec()),
        (Some(tenant.clone()), b"[1,2,3]".to_vec()),
    ];
    let values = [
        json!({"type": "DESTROY", "mapId": MAP, "body": {"dropId": id}}),
        json!({"mapId": MAP, "body": {"dropId": id}}),
        json!({"type": "SPAWN", "worldId": 256, "mapId": MAP, "body": {"itemId": 1}}),
        json!({"type": "SPAWN", "mapId": MAP, "body": {"itemId": 1.5}}),
        json!({"type": "SPAWN", "mapId": MAP, "body": {"itemId": -1}}),
        json!({"type": "SPAWN", "mapId": MAP, "body": {"itemId": 1, "x": 40000}}),
        json!({"type": "SPAWN", "mapId": MAP, "body": {"itemId": 0, "mesos": 0}}),
        json!({"type": "SPAWN", "mapId": MAP, "body": {"itemId": 2000000, "mesos": 10}}),
        json!({"type": "SPAWN", "mapId": MAP, "body": {"itemId": "2000000"}}),
        json!({"type": "SPAWN", "transactionId": "not-a-uuid", "mapId": MAP, "body": {"mesos": 1}}),
        json!({"type": "REQUEST_RESERVATION", "mapId": MAP, "body": {"dropId": id, "characterId": 7, "petSlot": 128}}),
        json!({"type": "REQUEST_PICK_UP", "mapId": MAP, "body": {"dropId": id, "characterId": 4294967296u64}}),
        json!({"type": "REQUEST_PICK_UP", "mapId": MAP, "body": "nope"}),
    ];
    for value in &values {
        bad.push((Some(tenant.clone()), serde_json::to_vec(value).unwrap()));
    }
    let valid = serde_json::to_vec(&pick_up(MAP, id, 7)).unwrap();
    let no_version = OwnedHeaders::new()
        .insert(header("TENANT_ID", peer.tenant.id.to_string().as_bytes()))
        .insert(header("REGION", b"GMS"));
    let decimal_version = no_version
        .clone()
        .insert(header("MAJOR_VERSION", b"83"))
        .insert(header("MINOR_VERSION", b"1"));
    let bad_uuid = OwnedHeaders::new()
        .insert(header("TENANT_ID", b"0123"))
        .insert(header("REGION", b"GMS"))
        .insert(header("MAJOR_VERSION", &[0, 83]))
        .insert(header("MINOR_VERSION", &[0, 1]));
    for headers in [
        None,
        Some(no_version),
        Some(decimal_version),
        Some(bad_uuid),
    ] {
        bad.push((headers, valid.clone()));
    }
    // Many times over, so every partition sees bad input before the good command.
    for _ in 0..3 {
        for (headers, value) in &bad {
            peer.send_raw(headers.clone(), value).await;
        }
    }
    peer.expect_quiet(Duration::from_millis(1500)).await;

    // The drop was not touched, and every partition still works.
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    for round in 0..8 {
        peer.spawn_drop(&spawn_item(MAP + 1 + round, 2_000_000))
            .await;
    }
    // Every rejected record is on the dead-letter topic, unchanged, with why and whence.
    let letters = peer.dead_letters(&env.broker, bad.len() * 3).await;
    for (headers, value) in &bad {
        let value = String::from_utf8_lossy(value);
        let copies: Vec<&Event> = letters.iter().filter(|l| l.raw == value).collect();
        let sent = bad
            .iter()
            .filter(|(_, v)| String::from_utf8_lossy(v) == value)
            .count();
        assert_eq!(copies.len(), sent * 3, "{value}");
        for letter in &copies {
            let text = |key: &str| String::from_utf8_lossy(&letter.headers[key]).into_owned();
            assert!(!text("dlq.reason").is_empty());
            assert_eq!(text("dlq.original.topic"), env.names.commands);
            assert!(text("dlq.original.partition").parse::<i32>().is_ok());
            assert!(text("dlq.original.offset").parse::<i64>().is_ok());
        }
        if headers.is_none() {
            assert!(copies.iter().any(|l| !l.headers.contains_key("TENANT_ID")));
        }
    }
    let class_of = |value: &str| {
        let letter = letters.iter().find(|l| l.raw.contains(value)).expect(value);
        String::from_utf8_lossy(&letter.headers["dlq.class"]).into_owned()
    };
    assert_eq!(class_of("not json"), "malformed");
    assert_eq!(class_of("DESTROY"), "unknown_type");
    assert_eq!(class_of("\"itemId\":0"), "bad_contents");
    assert!(letters
        .iter()
        .any(|l| String::from_utf8_lossy(&l.headers["dlq.class"]) == "bad_header"));
    peer.expect_quiet(Duration::from_millis(500)).await;
    let (_, _, metrics) = http_get(&format!("{}/metrics", env.service.http), &[]).await;
    let counted = format!("atlas_drops_dead_lettered_total {}", bad.len() * 3);
    assert!(metrics.lines().any(|line| line == counted), "{metrics}");

    let logs = env.service.logs();
    assert!(logs.contains("command rejected"), "rejections are logged");
    assert!(
        logs.contains("unknown command type \\\"DESTROY\\\"")
            || logs.contains("unknown command type"),
        "with the reason"
    );
    assert!(!logs.contains("panicked"));
}

fn header<'a>(key: &'a str, value: &'a [u8]) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value),
    }
}
