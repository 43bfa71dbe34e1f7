//! A character's drop lands on the floor below (contract-head §5). The data service is a peer we
//! do not own, so a stand-in of ours answers for it (`DataService`), speaking its JSON:API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

const MAP: u32 = 910_000_000;

/// A slope rising to the right: from (-50, 300) to (250, 187). At x = 100 it is
/// 300 − ⌊113 · 150 / 300⌋ = 300 − ⌊56.5⌋ = 244.
const SLOPE: [i16; 4] = [-50, 300, 250, 187];
const ON_THE_SLOPE: i64 = 244;

/// A character's drop of `item_id` at (100, 50), dropped from (90, 40).
fn spawn_from_character(item_id: u32) -> Value {
    command(
        "SPAWN_FROM_CHARACTER",
        MAP,
        json!({
            "itemId": item_id, "equipmentId": 0, "quantity": 1, "mesos": 0, "dropType": 2,
            "x": 100, "y": 50, "ownerId": 7, "ownerPartyId": 0,
            "dropperId": 7, "dropperX": 90, "dropperY": 40, "playerDrop": true, "mod": 0
        }),
    )
}

/// `(x, y, dropperX, dropperY)` of a `CREATED`.
fn place(created: &Event) -> [i64; 4] {
    let body = created.body();
    ["x", "y", "dropperX", "dropperY"].map(|field| body[field].as_i64().expect(field))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_character_drop_lands_on_the_slope_below_exactly() {
    let data = DataService::start(Floor::Foothold(SLOPE)).await;
    let mut env = TestEnv::with(Options::default().env("DATA_SERVICE_URL", &data.url)).await;
    let peer = &mut env.peer;

    let created = peer.spawn_drop(&spawn_from_character(2_000_000)).await;
    assert_eq!(place(&created), [100, ON_THE_SLOPE, 90, 40], "only y moves");
    let requests = data.requests();
    assert_eq!(requests.len(), 1);
    let (method, path, tenant, body) = &requests[0];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/api/data/maps/910000000/footholds/below")
    );
    let headers = [
        peer.tenant.id.to_string(),
        "GMS".into(),
        "83".into(),
        "1".into(),
    ];
    assert_eq!(tenant, &headers, "tenant headers, decimal versions");
    assert_eq!(
        body,
        &json!({"data": {"type": "positions", "id": "0", "attributes": {"x": 100, "y": 50}}})
    );

    let id = created.drop_id();
    let (status, _, rest) = env
        .service
        .get(&format!("/api/drops/{id}"), &peer.tenant)
        .await;
    assert_eq!(status, 200, "{rest}");
    let rest: Value = serde_json::from_str(&rest).unwrap();
    assert_eq!(rest["data"]["attributes"]["y"], ON_THE_SLOPE, "{rest}");
    assert_eq!(rest["data"]["attributes"]["x"], 100);
    let landed = r#"atlas_drops_landings_total{outcome="landed"}"#;
    assert_eq!(env.service.metric(landed).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monsters_spawn_never_asks_the_data_service() {
    let data = DataService::start(Floor::Foothold(SLOPE)).await;
    let mut env = TestEnv::with(Options::default().env("BASE_SERVICE_URL", &data.url)).await;
    let peer = &mut env.peer;
    let created = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    assert_eq!(place(&created), [100, 50, 90, 40]);
    // The same service, through BASE_SERVICE_URL, lands a character's drop: it is the one asked.
    let landed = peer.spawn_drop(&spawn_from_character(2_000_001)).await;
    assert_eq!(place(&landed)[1], ON_THE_SLOPE);
    assert_eq!(data.requests().len(), 1, "only SPAWN_FROM_CHARACTER asks");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_floor_or_an_answer_in_time_the_drop_stays_where_it_was_dropped() {
    let data = DataService::start(Floor::None).await;
    let options = Options::default()
        .env("DATA_SERVICE_URL", &data.url)
        .env("DATA_TIMEOUT_MS", "500");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let wall = [100, 300, 100, 187];
    let beside = [150, 300, 250, 300];
    let slow = Floor::Slow(Duration::from_millis(1500), SLOPE);
    for answer in [
        Floor::None,
        Floor::Failing,
        slow,
        Floor::Foothold(wall),
        Floor::Foothold(beside),
    ] {
        data.answer(answer);
        let created = peer.spawn_drop(&spawn_from_character(2_000_000)).await;
        assert_eq!(place(&created), [100, 50, 90, 40], "{answer:?}");
    }
    assert_eq!(data.requests().len(), 5);
    let service = &env.service;
    for (outcome, count) in [("landed", 0.0), ("no_floor", 3.0), ("failed", 2.0)] {
        let name = format!("atlas_drops_landings_total{{outcome=\"{outcome}\"}}");
        assert_eq!(service.metric(&name).await, Some(count), "{outcome}");
    }
    let logs = service.logs();
    assert!(logs.contains("500 Internal Server Error"), "{logs}");
    assert!(logs.contains("the data service named no floor"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_data_service_holds_up_only_the_drop_it_lands() {
    let data = DataService::start(Floor::Slow(Duration::from_millis(1500), SLOPE)).await;
    let options = Options::default()
        .env("DATA_SERVICE_URL", &data.url)
        .env("DATA_TIMEOUT_MS", "5000");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    // One key: one partition, the character's drop first.
    let commands = [spawn_from_character(2_000_001), spawn_item(MAP, 2_000_002)];
    peer.send_all(&commands, Some(b"one-partition")).await;
    let created = peer.next_events(2, Duration::from_secs(10)).await;
    let items: Vec<_> = created.iter().map(|e| e.body()["itemId"].clone()).collect();
    assert_eq!(
        items,
        [2_000_002, 2_000_001],
        "the SPAWN behind it went first"
    );
    assert_eq!(
        place(&created[1])[1],
        ON_THE_SLOPE,
        "and the slow one still landed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_character_drop_on_the_shared_store_asks_no_floor_again() {
    let data = DataService::start(Floor::Foothold(SLOPE)).await;
    // No commit before the kill: the restarted instance gets the spawn again.
    let options = Options::default()
        .shared()
        .env("DATA_SERVICE_URL", &data.url)
        .env("KAFKA_CFG_AUTO_COMMIT_INTERVAL_MS", "600000");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    env.service.ready().await;
    let created = peer.spawn_drop(&spawn_from_character(2_000_000)).await;
    drop(env.service.kill());

    let second = Service::start(&env.broker, &env.names, &env.options);
    second.ready().await;
    let started = std::time::Instant::now();
    while !(second.logs()).contains("redelivered command skipped: already applied") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(data.requests().len(), 1, "asked once for one drop");
    peer.expect_quiet(Duration::from_millis(500)).await;
    let path = format!("/api/drops/{}", created.drop_id());
    let (status, _, body) = second.get(&path, &peer.tenant).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("\"y\":{ON_THE_SLOPE}")), "{body}");
}
