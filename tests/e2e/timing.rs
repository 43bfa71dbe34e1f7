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
