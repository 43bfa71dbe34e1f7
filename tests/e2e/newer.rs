//! The newer generation of Atlas peers (contract-head.md): map instances, equipment stats
//! inline, environments, and meso shared out with `MESO_AWARDED` — side by side with the older
//! generation, against one service.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{json, Value};

use crate::harness::*;

const MAP: u32 = 100_000_000;
const INSTANCE: &str = "4b1a5c2e-0d6f-4e8a-9b3c-2d1e0f9a8b7c";

/// `command` in map instance `instance`, as the newer peers send it (no transaction id).
fn in_instance(mut command: Value, instance: &str) -> Value {
    command["instance"] = json!(instance);
    command.as_object_mut().unwrap().remove("transactionId");
    command
}

/// The sixteen stats in the contract's order, valued 1, 2, … 16.
fn stats() -> Vec<(&'static str, u16)> {
    let names = [
        "strength",
        "dexterity",
        "intelligence",
        "luck",
        "hp",
        "mp",
        "weaponAttack",
        "magicAttack",
        "weaponDefense",
        "magicDefense",
        "accuracy",
        "avoidability",
        "hands",
        "speed",
        "jump",
        "slots",
    ];
    names.into_iter().zip(1..).collect()
}

fn with_environment(headers: OwnedHeaders, environment: &str) -> OwnedHeaders {
    headers.insert(Header {
        key: "ENVIRONMENT",
        value: Some(environment),
    })
}

async fn instances_are_maps_of_their_own(store: Store) {
    let mut env = TestEnv::with(Options::default().store(store)).await;
    let peer = &mut env.peer;
    let there = peer
        .spawn_drop(&in_instance(spawn_item(MAP, 2_000_000), INSTANCE))
        .await;
    assert_eq!(there.value["instance"], INSTANCE);
    assert_eq!(
        there.transaction_id(),
        NIL_INSTANCE,
        "no transactionId: the nil UUID"
    );
    let here = peer.spawn_drop(&spawn_item(MAP, 2_000_001)).await;
    assert_eq!(here.value["instance"], NIL_INSTANCE);
    // Field order: instance right after mapId.
    assert!(there.raw.contains(&format!(
        r#""mapId":{MAP},"instance":"{INSTANCE}","dropId""#
    )));

    // Listings are per instance, on the instance route; the older route is the nil instance.
    let service = &env.service;
    let map_path = format!("/api/worlds/1/channels/2/maps/{MAP}");
    let path = format!("{map_path}/instances/{INSTANCE}/drops");
    assert_eq!(
        listed(service, &peer.tenant, &path).await,
        [(there.drop_id().to_string(), json!(INSTANCE))]
    );
    for path in [
        format!("{map_path}/drops"),
        format!("{map_path}/instances/{NIL_INSTANCE}/drops"),
    ] {
        assert_eq!(
            listed(service, &peer.tenant, &path).await,
            [(here.drop_id().to_string(), json!(NIL_INSTANCE))]
        );
    }
    // An ENVIRONMENT request header is accepted and ignored (contract-head §8).
    let mut headers = peer.tenant.http_headers();
    headers.push(("ENVIRONMENT", "preview-7".to_owned()));
    let url = format!("{}{map_path}/instances/{INSTANCE}/drops", service.http);
    let (status, _, body) = http_get(&url, &headers).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&there.drop_id().to_string()), "{body}");
    let (status, _, body) = service
        .get(&format!("{map_path}/instances/nope/drops"), &peer.tenant)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("instanceId"), "{body}");

    // A reservation naming another instance of the map is refused as the wrong map; in the
    // drop's own instance it is taken, and its events name the instance.
    peer.send(&reserve(MAP, there.drop_id(), 7)).await;
    let refused = peer.next_event().await;
    assert_eq!(refused.kind(), "RESERVATION_FAILURE");
    assert_eq!(refused.headers["REFUSAL_REASON"], b"wrong_map");
    assert_eq!(
        refused.value["instance"], NIL_INSTANCE,
        "the command's location"
    );
    peer.send(&in_instance(reserve(MAP, there.drop_id(), 7), INSTANCE))
        .await;
    let reserved = peer.next_event().await;
    assert_eq!(reserved.kind(), "RESERVED");
    assert_eq!(reserved.value["instance"], INSTANCE);
    // A CONSUME in another instance touches nothing; in its own it removes the drop.
    let consume = |instance: &str| {
        in_instance(
            command("CONSUME", MAP, json!({"dropId": there.drop_id()})),
            instance,
        )
    };
    peer.send(&consume(NIL_INSTANCE)).await;
    peer.expect_quiet(Duration::from_millis(700)).await;
    peer.send(&consume(INSTANCE)).await;
    let consumed = peer.next_event().await;
    assert_eq!(
        (consumed.kind(), consumed.value["instance"].clone()),
        ("CONSUMED", json!(INSTANCE))
    );
}

/// The drops a listing shows: their ids and instances.
async fn listed(service: &Service, tenant: &Tenant, path: &str) -> Vec<(String, Value)> {
    let (status, _, body) = service.get(path, tenant).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let drops = body["data"].as_array().unwrap().iter();
    drops
        .map(|drop| {
            let id = drop["id"].as_str().unwrap().to_owned();
            (id, drop["attributes"]["instance"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_maps_of_their_own_in_memory() {
    instances_are_maps_of_their_own(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_maps_of_their_own_on_the_shared_store() {
    instances_are_maps_of_their_own(Store::Shared).await;
}

async fn stats_travel_with_the_drop(store: Store) {
    let mut env = TestEnv::with(Options::default().store(store)).await;
    let peer = &mut env.peer;
    let mut body = json!({"itemId": 1302000, "quantity": 1, "dropType": 2, "x": 100, "y": 50});
    for (name, value) in stats() {
        body[name] = json!(value);
    }
    let id = peer
        .spawn_drop(&command("SPAWN", MAP, body))
        .await
        .drop_id();
    let (_, _, rest) = env
        .service
        .get(&format!("/api/drops/{id}"), &peer.tenant)
        .await;
    let rest: Value = serde_json::from_str(&rest).unwrap();
    for (name, value) in stats() {
        assert_eq!(rest["data"]["attributes"][name], value, "{name}");
    }
    assert_eq!(
        rest["data"]["attributes"]["equipmentId"], 0,
        "kept for the older peers"
    );
    let numbered = (stats().into_iter())
        .map(|(name, value)| format!(r#""{name}":{value}"#))
        .collect::<Vec<_>>()
        .join(",");
    peer.send(&reserve(MAP, id, 7)).await;
    let reserved = peer.next_event().await;
    assert!(
        reserved.raw.ends_with(&format!(
            r#""body":{{"characterId":7,"itemId":1302000,"equipmentId":0,"quantity":1,"meso":0,{numbered}}}}}"#
        )),
        "{}",
        reserved.raw
    );
    peer.send(&pick_up(MAP, id, 7)).await;
    let picked = peer.next_event().await;
    assert!(
        picked
            .raw
            .ends_with(&format!(r#""petSlot":-1,{numbered}}}}}"#)),
        "{}",
        picked.raw
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_travel_with_the_drop_in_memory() {
    stats_travel_with_the_drop(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_travel_with_the_drop_on_the_shared_store() {
    stats_travel_with_the_drop(Store::Shared).await;
}

async fn environments_are_kept_and_gated(store: Store) {
    let options = Options::default()
        .store(store)
        .dead_letters()
        .env("ATLAS_ENVIRONMENT", "main")
        .env("DROP_EXPIRE_MS", "1500");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let tenant = peer.tenant.clone();
    let send_in = |environment: Option<&'static str>, command: Value| {
        let headers = tenant.headers();
        let headers = match environment {
            Some(environment) => with_environment(headers, environment),
            None => headers,
        };
        (headers, serde_json::to_vec(&command).unwrap())
    };
    // Another environment's command: skipped, counted, nothing emitted; also one this build
    // cannot read (a newer type, an environment name longer than we take): not dead-lettered.
    let (headers, value) = send_in(Some("preview-7"), spawn_item(MAP, 2_000_000));
    peer.send_raw(Some(headers), &value).await;
    let newer_type = command("DESTROY", MAP, json!({"dropId": 1}));
    let (headers, value) = send_in(Some("preview-7"), newer_type);
    peer.send_raw(Some(headers), &value).await;
    let long = with_environment(tenant.headers(), &"p".repeat(300));
    let value = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
    peer.send_raw(Some(long), &value).await;
    // Ours, and one without the header (an older peer): both applied.
    let (headers, value) = send_in(Some("main"), spawn_item(MAP, 2_000_001));
    peer.send_raw(Some(headers), &value).await;
    let ours = peer.next_event().await;
    let (headers, value) = send_in(None, spawn_item(MAP, 2_000_002));
    peer.send_raw(Some(headers), &value).await;
    let older = peer.next_event().await;
    for created in [&ours, &older] {
        assert_eq!(created.kind(), "CREATED");
        assert_eq!(created.headers["ENVIRONMENT"], b"main", "{created:?}");
    }
    assert_eq!(ours.value["body"]["itemId"], 2_000_001);
    // A failure carries the failing command's environment; the drop's events carry the drop's.
    let (headers, value) = send_in(None, reserve(MAP, 1_999_999_999, 7));
    peer.send_raw(Some(headers), &value).await;
    let failed = peer.next_event().await;
    assert_eq!(failed.kind(), "RESERVATION_FAILURE");
    assert_eq!(failed.headers["ENVIRONMENT"], b"main");
    // Expired by time, every drop's EXPIRED carries its environment.
    let expired = peer.next_events(2, Duration::from_secs(10)).await;
    for event in &expired {
        assert_eq!(event.kind(), "EXPIRED");
        assert_eq!(event.headers["ENVIRONMENT"], b"main");
    }
    peer.expect_quiet(Duration::from_millis(500)).await;
    let skipped = env
        .service
        .metric(r#"atlas_drops_commands_total{type="SPAWN",outcome="skipped",reason="other_environment"}"#)
        .await;
    assert_eq!(skipped, Some(1.0));
    let unread = env
        .service
        .metric(r#"atlas_drops_commands_total{type="unknown",outcome="skipped",reason="other_environment"}"#)
        .await;
    assert_eq!(unread, Some(2.0));
    env.peer.dead_letters(&env.broker, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn environments_are_kept_and_gated_in_memory() {
    environments_are_kept_and_gated(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn environments_are_kept_and_gated_on_the_shared_store() {
    environments_are_kept_and_gated(Store::Shared).await;
}

/// Without `ATLAS_ENVIRONMENT`, a drop keeps the environment its spawn came with, and an
/// oversized header is bad input (dead-lettered), touching nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn a_drop_keeps_its_spawns_environment() {
    let mut env = TestEnv::with(Options::default().dead_letters()).await;
    let peer = &mut env.peer;
    let headers = with_environment(peer.tenant.headers(), "preview-7");
    let value = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
    peer.send_raw(Some(headers), &value).await;
    let created = peer.next_event().await;
    assert_eq!(created.headers["ENVIRONMENT"], b"preview-7");
    // Reserved by an older peer (no header): still the drop's environment.
    peer.send(&reserve(MAP, created.drop_id(), 7)).await;
    let reserved = peer.next_event().await;
    assert_eq!(reserved.headers["ENVIRONMENT"], b"preview-7");
    let huge = "e".repeat(129);
    let headers = with_environment(peer.tenant.headers(), &huge);
    peer.send_raw(Some(headers), &value).await;
    let letters = peer.dead_letters(&env.broker, 1).await;
    assert_eq!(letters[0].headers["dlq.class"], b"bad_header");
    peer.expect_quiet(Duration::from_millis(500)).await;
}
