//! Equip drops and the equipment service. The service is a peer we do not own, so a stub of
//! ours stands in for it, speaking its JSON:API: `POST {URL}equipables` answered with the new
//! equipment's id, `DELETE {URL}equipables/{id}`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::Router;
use serde_json::{json, Value};

const MAP: u32 = 900_000_000;

/// `(method, path, tenant headers, body)` of one request.
type Request = (String, String, Vec<String>, Value);

#[derive(Default)]
struct Stub {
    /// Every request, in order.
    requests: Mutex<Vec<Request>>,
    /// Creations to answer 500 before succeeding.
    failures_left: AtomicUsize,
    /// Answer every creation 500.
    down: AtomicBool,
    next_id: AtomicU32,
}

fn tenant_of(headers: &HeaderMap) -> Vec<String> {
    ["TENANT_ID", "REGION", "MAJOR_VERSION", "MINOR_VERSION"]
        .iter()
        .map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

async fn create(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    stub.requests.lock().unwrap().push((
        "POST".into(),
        "/api/equipables".into(),
        tenant_of(&headers),
        body.clone(),
    ));
    let failing = stub.down.load(Ordering::SeqCst)
        || stub
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    }
    let id = 5001 + stub.next_id.fetch_add(1, Ordering::SeqCst);
    let item = &body["data"]["attributes"]["itemId"];
    let answer = json!({"data": {"type": "equipables", "id": id.to_string(), "attributes": {"itemId": item, "strength": 3}}});
    (StatusCode::CREATED, answer.to_string())
}

async fn remove(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> StatusCode {
    stub.requests.lock().unwrap().push((
        "DELETE".into(),
        format!("/api/equipables/{id}"),
        tenant_of(&headers),
        Value::Null,
    ));
    StatusCode::NO_CONTENT
}

async fn stub() -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/api/equipables", post(create))
        .route("/api/equipables/{id}", delete(remove))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, stub)
}

fn requests(stub: &Stub, method: &str) -> Vec<Request> {
    stub.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == method)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn equip_spawns_carry_their_equipment_and_expired_ones_delete_it() {
    let (url, stub) = stub().await;
    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    let _service = Service::start(
        &broker,
        &names,
        &[("EQUIPABLES_SERVICE_URL", &url), ("DROP_EXPIRE_MS", "1500")],
    );

    let kept = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await.drop_id();
    let posts = requests(&stub, "POST");
    assert_eq!(posts.len(), 1);
    let tenant = &peer.tenant;
    assert_eq!(
        posts[0].2,
        [tenant.id.to_string(), "GMS".into(), "83".into(), "1".into()],
        "tenant headers, decimal versions"
    );
    assert_eq!(
        posts[0].3,
        json!({"data": {"type": "equipables", "attributes": {"itemId": 1302000}}})
    );
    peer.send(&reserve(MAP, kept, 7)).await;
    let reserved = peer.next_event().await;
    assert_eq!(
        reserved.body()["equipmentId"],
        5001,
        "the drop carries the created equipment"
    );

    // Neither meso, nor a use item, nor a character's equip (it has its equipment) calls it.
    let meso = command("SPAWN", MAP, json!({"mesos": 300, "dropType": 2}));
    let character_equip = command(
        "SPAWN_FROM_CHARACTER",
        MAP,
        json!({"itemId": 1_302_001, "equipmentId": 77, "quantity": 1, "dropType": 2, "playerDrop": true}),
    );
    for spawn in [meso, spawn_item(MAP, 2_000_000), character_equip] {
        peer.spawn_drop(&spawn).await;
    }
    let expiring = peer.spawn_drop(&spawn_item(MAP, 1_302_002)).await.drop_id();
    assert_eq!(
        requests(&stub, "POST").len(),
        2,
        "only SPAWNs of equip items create equipment"
    );

    // Everything but the reserved drop expires; the equip drops' equipment is deleted.
    let expired = peer.next_events(4, Duration::from_secs(10)).await;
    assert!(expired.iter().all(|e| e.kind() == "EXPIRED"));
    assert!(expired.iter().any(|e| e.drop_id() == expiring));
    let started = std::time::Instant::now();
    loop {
        let mut deleted: Vec<String> = requests(&stub, "DELETE").into_iter().map(|r| r.1).collect();
        deleted.sort();
        if deleted == ["/api/equipables/5002", "/api/equipables/77"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "deleted: {deleted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(requests(&stub, "DELETE")[0].2[2], "83");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_equipment_service_is_retried_then_the_spawn_rejected_without_blocking_others() {
    let (url, stub) = stub().await;
    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    let _service = Service::start(
        &broker,
        &names,
        &[
            ("EQUIPABLES_SERVICE_URL", &url),
            ("EQUIPMENT_TIMEOUT_MS", "2500"),
            ("DEAD_LETTER_TOPIC_DROP", &names.dead_letters),
        ],
    );
    // Two failures, then success: retried, and the drop carries the equipment.
    stub.failures_left.store(2, Ordering::SeqCst);
    let id = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await.drop_id();
    assert_eq!(requests(&stub, "POST").len(), 3);
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.body()["equipmentId"], 5001);

    // Down for good: the spawn is rejected after its budget, and dead-lettered; meanwhile the
    // commands after it, on the same partition, go on.
    stub.down.store(true, Ordering::SeqCst);
    let doomed = spawn_item(MAP, 1_302_003);
    let mut commands = vec![doomed.clone()];
    commands
        .extend((0..5).map(|n| command("SPAWN", MAP + 1, json!({"mesos": 10 + n, "dropType": 2}))));
    peer.send_all(&commands, Some(b"one-partition")).await;
    let created = peer.next_events(5, Duration::from_secs(2)).await;
    assert!(created
        .iter()
        .all(|e| e.kind() == "CREATED" && e.value["mapId"] == MAP + 1));
    let letters = peer.dead_letters(&broker, 1).await;
    let reason = String::from_utf8_lossy(&letters[0].headers["dlq.reason"]).into_owned();
    assert_eq!(letters[0].headers["dlq.class"], b"equipment_unavailable");
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(letters[0].value["transactionId"], doomed["transactionId"]);
    assert!(
        requests(&stub, "POST").len() > 4,
        "retried before giving up"
    );
    peer.expect_quiet(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_equip_spawn_on_the_shared_store_asks_for_no_second_equipment() {
    let (url, stub) = stub().await;
    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    // No commit before the kill: the restarted instance gets the spawn again.
    let env = [
        ("EQUIPABLES_SERVICE_URL", url.as_str()),
        ("KAFKA_CFG_AUTO_COMMIT_INTERVAL_MS", "600000"),
    ];
    let first = Service::start_shared(&broker, &names, &env);
    first.ready().await;
    let created = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await;
    drop(first.kill());

    let second = Service::start_shared(&broker, &names, &env);
    second.ready().await;
    let started = std::time::Instant::now();
    while !second
        .logs()
        .contains("redelivered command skipped: already applied")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            second.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        requests(&stub, "POST").len(),
        1,
        "one equipment for one drop"
    );
    peer.expect_quiet(Duration::from_millis(500)).await;
    let (status, _, body) = http_get(
        &format!("{}/api/drops/{}", second.http, created.drop_id()),
        &peer.tenant.http_headers(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"equipmentId\":5001"), "{body}");
    names.clean_redis();
}
