//! Rules that act on their own: expiry, reservation lapse, the per-map cap.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const MAP: u32 = 200_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn available_drops_expire_with_their_spawns_transaction() {
    let mut env = TestEnv::with(Options::default().env("DROP_EXPIRE_MS", "1000")).await;
    let peer = &mut env.peer;
    let spawn = spawn_item(MAP, 2_000_000);
    let created = peer.spawn_drop(&spawn).await;
    let id = created.drop_id();
    let expired = peer.next_event().await;
    assert_eq!(
        expired.raw,
        format!(
            r#"{{"transactionId":"{}","worldId":1,"channelId":2,"mapId":{MAP},"instance":"{NIL_INSTANCE}","dropId":{id},"type":"EXPIRED","body":{{}}}}"#,
            spawn["transactionId"].as_str().unwrap()
        )
    );
    assert_eq!(expired.key, key_of(id));
    assert_eq!(
        expired.headers["TENANT_ID"],
        peer.tenant.id.to_string().into_bytes()
    );
    assert_eq!(expired.headers["MAJOR_VERSION"], [0x00, 0x53]);
    // Gone: it can no longer be reserved.
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
}

/// Contract §5: the holder was credited when `RESERVED` went out, so a lapsed reservation
/// removes the drop with `EXPIRED` (even where drops never expire); nobody reserves it again,
/// and the holder's late pick-up finds no drop.
async fn a_lapsed_reservation_removes_the_drop(store: Store) {
    let options = Options::default()
        .store(store)
        .env("RESERVATION_TIMEOUT_MS", "700")
        .env("DROP_EXPIRE_MS", "0");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    let expired = peer.next_events(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!((expired.kind(), expired.drop_id()), ("EXPIRED", id));
    // Gone: another character's reservation fails, the holder's pick-up changes nothing.
    peer.send(&reserve(MAP, id, 8)).await;
    let failed = peer.next_event().await;
    assert_eq!(
        (failed.kind(), failed.drop_id()),
        ("RESERVATION_FAILURE", id)
    );
    peer.send(&pick_up(MAP, id, 7)).await;
    peer.expect_quiet(Duration::from_millis(700)).await;
    let (status, _, _) = env
        .service
        .get(&format!("/api/drops/{id}"), &peer.tenant)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_reservation_removes_the_drop_in_memory() {
    a_lapsed_reservation_removes_the_drop(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_reservation_removes_the_drop_on_the_shared_store() {
    a_lapsed_reservation_removes_the_drop(Store::Shared).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_map_gives_up_its_oldest_available_drop() {
    let mut env = TestEnv::with(Options::default().env("MAP_DROP_LIMIT", "3")).await;
    let peer = &mut env.peer;
    let mut ids = Vec::new();
    for item in 0..3 {
        ids.push(
            peer.spawn_drop(&spawn_item(MAP, 2_000_000 + item))
                .await
                .drop_id(),
        );
    }
    // The oldest is reserved: the next oldest AVAILABLE one makes room.
    peer.send(&reserve(MAP, ids[0], 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    // Another map is not affected by this one's cap.
    peer.spawn_drop(&spawn_item(MAP + 1, 2_000_000)).await;

    peer.send(&spawn_item(MAP, 2_000_009)).await;
    // Two drops, two keys: the events may come on different partitions, in either order.
    let mut events = peer.next_events(2, Duration::from_secs(10)).await;
    events.sort_by(|a, b| a.kind().cmp(b.kind()));
    assert_eq!(events[0].kind(), "CREATED");
    assert_eq!(events[0].body()["itemId"], json!(2_000_009));
    assert_eq!((events[1].kind(), events[1].drop_id()), ("EXPIRED", ids[1]));
    peer.expect_quiet(Duration::from_millis(500)).await;
}

/// A full map's spawns and reservations of its drops, sent together on one partition, are
/// applied at once (a spawn does not wait for the commands on its map's drops, nor they for it):
/// whichever lands first, each drop ends one way only, with its events in that order, and the
/// map lists exactly the drops no event removed.
async fn a_full_maps_spawns_and_reservations_at_once(store: Store) {
    let options = Options::default().store(store).env("MAP_DROP_LIMIT", "3");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let mut lying = Vec::new();
    for item in 0..3 {
        let created = peer.spawn_drop(&spawn_item(MAP, 2_000_000 + item)).await;
        lying.push(created.drop_id());
    }
    let mut commands = Vec::new();
    for (n, id) in (0u32..).zip(&lying) {
        commands.push(reserve(MAP, *id, 7 + n));
        commands.push(spawn_item(MAP, 2_000_010 + n));
    }
    peer.send_all(&commands, Some(b"one partition")).await;
    let events = peer.events_until_quiet(Duration::from_secs(2)).await;

    let mut kinds: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
    for event in &events {
        kinds.entry(event.drop_id()).or_default().push(event.kind());
    }
    for id in &lying {
        // Reserved before a spawn could push it out (then none may), or pushed out first.
        let ended = kinds.remove(id).unwrap_or_default();
        assert!(
            ended == ["RESERVED"] || ended == ["EXPIRED", "RESERVATION_FAILURE"],
            "drop {id}: {ended:?} in {events:#?}"
        );
    }
    assert_eq!(kinds.len(), 3, "three new drops: {events:#?}");
    for (id, ended) in &kinds {
        assert!(
            *ended == ["CREATED"] || *ended == ["CREATED", "EXPIRED"],
            "drop {id}: {ended:?}"
        );
    }
    let expired: Vec<u64> = (events.iter())
        .filter(|event| event.kind() == "EXPIRED")
        .map(|event| event.drop_id())
        .collect();
    let mut expected: Vec<String> = (lying.iter().chain(kinds.keys()))
        .filter(|id| !expired.contains(id))
        .map(u64::to_string)
        .collect();
    let path = format!("/api/worlds/1/channels/2/maps/{MAP}/drops");
    let (status, _, body) = env.service.get(&path, &peer.tenant).await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut listed: Vec<String> = (body["data"].as_array().unwrap().iter())
        .map(|drop| drop["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_maps_spawns_and_reservations_at_once_in_memory() {
    a_full_maps_spawns_and_reservations_at_once(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_maps_spawns_and_reservations_at_once_on_the_shared_store() {
    a_full_maps_spawns_and_reservations_at_once(Store::Shared).await;
}
