//! The REST API through real HTTP against the running service (contract §4), and the operators'
//! endpoints: health, readiness, metrics.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

const MAP: u32 = 500_000_000;

async fn ready_env() -> TestEnv {
    let env = TestEnv::start().await;
    env.service.ready().await;
    env
}

async fn get(service: &Service, path: &str, tenant: &Tenant) -> (u16, String, Value) {
    let (status, content_type, body) = service.get(path, tenant).await;
    let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON from {path}: {body}"));
    (status, content_type, body)
}

fn map_path(map: u32) -> String {
    format!("/api/worlds/1/channels/2/maps/{map}/drops")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_by_id_as_json_api() {
    let mut env = ready_env().await;
    let (service, peer) = (&env.service, &mut env.peer);
    let mut spawn = spawn_item(MAP, 1_302_000);
    spawn["body"]["ownerId"] = json!(7);
    spawn["body"]["ownerPartyId"] = json!(3);
    spawn["body"]["playerDrop"] = json!(true);
    let created = peer.spawn_drop(&spawn).await;
    let id = created.drop_id();

    let (status, content_type, body) =
        get(service, &format!("/api/drops/{id}"), &peer.tenant).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/vnd.api+json");
    assert_eq!(
        body,
        json!({"data": {"type": "drops", "id": id.to_string(), "attributes": with_no_stats(json!({
            "worldId": 1, "channelId": 2, "mapId": MAP, "instance": NIL_INSTANCE, "itemId": 1302000,
            "equipmentId": 0, "quantity": 3, "meso": 0, "type": 2, "x": 100, "y": 50, "ownerId": 7,
            "ownerPartyId": 3, "dropTime": created.body()["dropTime"], "dropperId": 9300018,
            "dropperX": 90, "dropperY": 40, "characterDrop": true, "mod": 1, "status": "AVAILABLE"
        }))}})
    );

    // Reserved, the status says so.
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    let (_, _, body) = get(service, &format!("/api/drops/{id}"), &peer.tenant).await;
    assert_eq!(body["data"]["attributes"]["status"], "RESERVED");

    // Another tenant: it does not exist. Nonsense ids: bad requests; unknown ids: not found.
    let (status, _, body) = get(
        service,
        &format!("/api/drops/{id}"),
        &Tenant::new("GMS", 83, 1),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["status"], "404");
    assert_eq!(
        get(service, "/api/drops/1999999999", &peer.tenant).await.0,
        404
    );
    assert_eq!(get(service, "/api/drops/7", &peer.tenant).await.0, 404);
    let (status, _, body) = get(service, "/api/drops/abc", &peer.tenant).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("abc"));
    assert_eq!(get(service, "/api/drops/-1", &peer.tenant).await.0, 400);

    // Picked up: gone.
    peer.send(&pick_up(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "PICKED_UP");
    assert_eq!(
        get(service, &format!("/api/drops/{id}"), &peer.tenant)
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_headers_are_required_and_checked() {
    let env = ready_env().await;
    let (service, peer) = (&env.service, &env.peer);
    let valid = peer.tenant.http_headers();
    let mut cases: Vec<Vec<(&str, String)>> = Vec::new();
    for missing in 0..valid.len() {
        let mut headers = valid.clone();
        headers.remove(missing);
        cases.push(headers);
    }
    for (index, bad) in [
        (0, "not-a-uuid".to_owned()),
        (2, "x".to_owned()),
        (3, "65536".to_owned()),
        (2, "-1".to_owned()),
    ] {
        let mut headers = valid.clone();
        headers[index].1 = bad;
        cases.push(headers);
    }
    for headers in cases {
        for path in ["/api/drops/1000000001".to_owned(), map_path(MAP)] {
            let (status, content_type, body) =
                http_get(&format!("{}{path}", service.http), &headers).await;
            assert_eq!(status, 400, "{headers:?} {path}");
            assert_eq!(content_type, "application/vnd.api+json");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["errors"][0]["status"], "400", "{body}");
            assert!(
                body["errors"][0]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("header"),
                "{body}"
            );
        }
    }
    // Clients asking for plain JSON get it.
    let mut headers = valid.clone();
    headers.push(("Accept", "application/json".to_owned()));
    let (status, content_type, body) =
        http_get(&format!("{}{}", service.http, map_path(MAP)), &headers).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_maps_drops_sorted_scoped_and_paged() {
    let mut env = ready_env().await;
    let (service, peer) = (&env.service, &mut env.peer);
    let mut ids = Vec::new();
    for item in 0..5 {
        ids.push(
            peer.spawn_drop(&spawn_item(MAP, 2_000_000 + item))
                .await
                .drop_id(),
        );
    }
    // Elsewhere: another map, another channel, another tenant.
    peer.spawn_drop(&spawn_item(MAP + 1, 2_000_000)).await;
    let mut other_channel = spawn_item(MAP, 2_000_000);
    other_channel["channelId"] = json!(3);
    peer.spawn_drop(&other_channel).await;
    let stranger = Tenant::new("GMS", 83, 1);
    peer.send_as(&stranger, &spawn_item(MAP, 2_000_000)).await;
    peer.next_event().await;

    let (status, _, body) = get(service, &map_path(MAP), &peer.tenant).await;
    assert_eq!(status, 200);
    let listed: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(body["meta"]["total"], 5);
    assert_eq!(body["data"][0]["type"], "drops");
    assert_eq!(body["data"][0]["attributes"]["mapId"], MAP);
    let (_, _, theirs) = get(service, &map_path(MAP), &stranger).await;
    assert_eq!(theirs["meta"]["total"], 1);
    let (status, _, empty) = get(service, &map_path(MAP + 7), &peer.tenant).await;
    assert_eq!((status, &empty["data"]), (200, &json!([])));
    assert_eq!(
        empty["links"]["last"]["href"],
        format!(
            "{}?page%5Bnumber%5D=1&page%5Bsize%5D=250",
            map_path(MAP + 7)
        )
    );
    assert_eq!(
        empty["meta"],
        json!({"total": 0, "page": {"number": 1, "size": 250, "last": 1}})
    );

    let page = |number: &str, size: &str| {
        format!("{}?page[number]={number}&page[size]={size}", map_path(MAP))
    };
    // The links as the newer peers read them: `{"href": …}`, the brackets percent-encoded.
    let link = |number: &str, size: &str| json!({"href": format!("{}?page%5Bnumber%5D={number}&page%5Bsize%5D={size}", map_path(MAP))});
    // Middle page.
    let (_, _, body) = get(service, &page("2", "2"), &peer.tenant).await;
    let ids_of = |body: &Value| -> Vec<u64> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(ids_of(&body), ids[2..4]);
    assert_eq!(
        body["links"],
        json!({"self": link("2", "2"), "first": link("1", "2"), "last": link("3", "2"), "prev": link("1", "2"), "next": link("3", "2")})
    );
    assert_eq!(
        body["meta"],
        json!({"total": 5, "page": {"number": 2, "size": 2, "last": 3}})
    );
    // Last page: short, no next at all.
    let (_, _, body) = get(service, &page("3", "2"), &peer.tenant).await;
    assert_eq!(ids_of(&body), ids[4..]);
    assert!(body["links"].get("next").is_none(), "{body}");
    // Past the end: empty, total still told, the number as asked, prev the last page.
    let (status, _, body) = get(service, &page("9", "2"), &peer.tenant).await;
    assert_eq!((status, body["data"].as_array().unwrap().len()), (200, 0));
    assert_eq!(
        body["meta"],
        json!({"total": 5, "page": {"number": 9, "size": 2, "last": 3}})
    );
    assert_eq!(body["links"]["prev"], link("3", "2"));
    // Far past the end: (2^62 + 1 - 1) × 4 wraps to 0 unless checked, which read page 1.
    for number in ["4611686018427387905", "18446744073709551615"] {
        let (status, _, body) = get(service, &page(number, "4"), &peer.tenant).await;
        assert_eq!((status, &body["data"]), (200, &json!([])), "{number}");
        assert_eq!(body["meta"]["total"], 5);
    }
    // First page: no prev at all.
    let (_, _, body) = get(service, &page("1", "250"), &peer.tenant).await;
    assert_eq!(ids_of(&body), ids);
    assert!(body["links"].get("prev").is_none(), "{body}");
    // Other parameters stay in the links; sparse fieldsets show only what is asked for.
    let asked = format!(
        "{}?fields[drops]=itemId,quantity&page[size]=2",
        map_path(MAP)
    );
    let (status, _, body) = get(service, &asked, &peer.tenant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["attributes"],
        json!({"itemId": 2000000, "quantity": 3})
    );
    assert_eq!(
        body["links"]["next"]["href"],
        format!(
            "{}?fields%5Bdrops%5D=itemId%2Cquantity&page%5Bnumber%5D=2&page%5Bsize%5D=2",
            map_path(MAP)
        )
    );
    let one = format!("/api/drops/{}?fields[drops]=meso", ids[0]);
    let (_, _, body) = get(service, &one, &peer.tenant).await;
    assert_eq!(body["data"]["attributes"], json!({"meso": 0}));
    // Bad pages and paths.
    for (bad, named) in [
        (page("1", "0"), "page"),
        (page("1", "251"), "page"),
        (page("0", "2"), "page"),
        (page("x", "2"), "page"),
        (page("1", "-3"), "page"),
        (format!("{}?limit=5", map_path(MAP)), "limit"),
        (
            format!("{}?fields[drops]=itemId,secret", map_path(MAP)),
            "fields[drops]",
        ),
    ] {
        let (status, _, body) = get(service, &bad, &peer.tenant).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["errors"][0]["title"], "Bad Request", "{body}");
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains(named),
            "{body}"
        );
    }
    for (bad, detail) in [
        (
            "/api/worlds/256/channels/2/maps/1/drops",
            "worldId 256 is out of range (0 to 255)",
        ),
        (
            "/api/worlds/1/channels/x/maps/1/drops",
            "channelId \"x\" is not a valid number",
        ),
        (
            "/api/worlds/1/channels/2/maps/-1/drops",
            "mapId -1 is out of range (0 to 4294967295)",
        ),
        (
            "/api/drops/4294967296",
            "drop id 4294967296 is out of range (0 to 4294967295)",
        ),
    ] {
        let (status, content_type, body) = get(service, bad, &peer.tenant).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(content_type, "application/vnd.api+json", "{bad}");
        assert_eq!(body["errors"][0]["detail"], detail, "{bad}");
    }
    // What axum itself cannot take apart is a JSON:API error too, not plain text.
    for bad in [
        "/api/drops/%FF",
        "/api/worlds/%FF/channels/2/maps/1/drops",
        "/api/worlds/1/channels/2/maps/1/drops?page[number]=%FF",
    ] {
        let (status, content_type, body) = get(service, bad, &peer.tenant).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(content_type, "application/vnd.api+json", "{bad}");
        assert_eq!(body["errors"][0]["status"], "400", "{bad}");
        assert!(body["errors"][0]["detail"].is_string(), "{bad}: {body}");
    }
    assert_eq!(get(service, "/api/nothing", &peer.tenant).await.0, 404);
}

/// REGION is 1–32 bytes of UTF-8 text on Kafka and on HTTP alike (contract §2): a drop spawned
/// under a region that is not ASCII is found on REST under that region, and a region of 33
/// bytes is refused on both.
#[tokio::test(flavor = "multi_thread")]
async fn a_region_is_any_text_of_up_to_32_bytes_on_kafka_and_on_rest() {
    let mut env = TestEnv::with(Options::default().dead_letters()).await;
    env.service.ready().await;
    let (service, peer) = (&env.service, &mut env.peer);
    let widest = "Ü".repeat(16);
    assert_eq!(widest.len(), 32);
    for region in ["Ünïcode", widest.as_str()] {
        let tenant = Tenant::new(region, 83, 1);
        peer.send_as(&tenant, &spawn_item(MAP, 2_000_000)).await;
        let created = peer.next_event().await;
        assert_eq!(created.kind(), "CREATED");
        assert_eq!(created.headers["REGION"], region.as_bytes());
        let id = created.drop_id();
        let (status, _, body) = get(service, &format!("/api/drops/{id}"), &tenant).await;
        assert_eq!((status, &body["data"]["id"]), (200, &json!(id.to_string())));
        let (status, _, body) = get(service, &map_path(MAP), &tenant).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["id"], id.to_string(), "{body}");
        assert_eq!(body["meta"]["total"], 1, "{body}");
    }

    let too_long = Tenant::new(&format!("{widest}x"), 83, 1);
    let (status, _, body) = get(service, &map_path(MAP), &too_long).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("REGION"),
        "{body}"
    );
    peer.send_as(&too_long, &spawn_item(MAP, 2_000_000)).await;
    let letter = peer.dead_letters(&env.broker, 1).await.remove(0);
    let text = |key: &str| String::from_utf8_lossy(&letter.headers[key]).into_owned();
    assert_eq!(text("dlq.class"), "bad_header");
    assert!(
        text("dlq.reason").contains("REGION"),
        "{}",
        text("dlq.reason")
    );
    peer.expect_quiet(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics() {
    let mut env = TestEnv::with(Options::default().env("MAP_DROP_LIMIT", "2")).await;
    env.service.ready().await;
    let (service, peer) = (&env.service, &mut env.peer);
    let (status, _, body) = http_get(&format!("{}/healthz", service.http), &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // A known sequence: 3 spawns on one map (the third evicts the first), 1 reservation,
    // 1 refused reservation, 1 refused pick-up, 2 rejected commands.
    let a = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    let b = peer.spawn_drop(&spawn_item(MAP, 2_000_001)).await.drop_id();
    peer.send(&spawn_item(MAP, 2_000_002)).await;
    peer.next_events(2, Duration::from_secs(10)).await;
    peer.send(&reserve(MAP, b, 7)).await;
    peer.next_event().await;
    let mut far = reserve(MAP, b, 8);
    far["body"]["characterX"] = json!(5000);
    peer.send(&far).await;
    peer.next_event().await;
    peer.send(&pick_up(MAP, a, 7)).await;
    peer.send_raw(Some(peer.tenant.headers()), b"garbage").await;
    peer.send_raw(
        None,
        serde_json::to_vec(&spawn_item(MAP, 1)).unwrap().as_slice(),
    )
    .await;

    let expected = [
        "atlas_drops_commands_total{type=\"SPAWN\",outcome=\"applied\",reason=\"\"} 3",
        "atlas_drops_commands_total{type=\"SPAWN\",outcome=\"rejected\",reason=\"bad_header\"} 1",
        "atlas_drops_commands_total{type=\"REQUEST_RESERVATION\",outcome=\"applied\",reason=\"\"} 1",
        "atlas_drops_commands_total{type=\"REQUEST_RESERVATION\",outcome=\"refused\",reason=\"held_by_other\"} 1",
        "atlas_drops_commands_total{type=\"REQUEST_PICK_UP\",outcome=\"refused\",reason=\"unknown_drop\"} 1",
        "atlas_drops_commands_total{type=\"unknown\",outcome=\"rejected\",reason=\"malformed\"} 1",
        "atlas_drops_events_total{type=\"CREATED\"} 3",
        "atlas_drops_events_total{type=\"EXPIRED\"} 1",
        "atlas_drops_events_total{type=\"RESERVED\"} 1",
        "atlas_drops_events_total{type=\"RESERVATION_FAILURE\"} 1",
        "atlas_drops_expiries_total{cause=\"map_limit\"} 1",
        "atlas_drops_live_drops 2",
        "atlas_drops_reserved_drops 1",
        "atlas_drops_dead_lettered_total 0",
        "atlas_drops_command_latency_seconds_count 8",
    ];
    // The last commands produce no event to wait for: poll the scrape until they are counted.
    let started = std::time::Instant::now();
    let text = loop {
        let (status, content_type, text) =
            http_get(&format!("{}/metrics", service.http), &[]).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        if expected.iter().all(|line| text.lines().any(|l| l == *line))
            || started.elapsed() > Duration::from_secs(15)
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for line in expected {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(text.contains("# TYPE atlas_drops_command_latency_seconds histogram"));
    // The same under `/api/` (contract-head §8), and readiness too.
    let (status, _, under_api) = http_get(&format!("{}/api/metrics", service.http), &[]).await;
    assert_eq!(status, 200);
    assert!(
        under_api.contains("atlas_drops_live_drops 2"),
        "{under_api}"
    );
    let (status, _, ready) = http_get(&format!("{}/api/readyz", service.http), &[]).await;
    assert_eq!((status, ready.as_str()), (200, "ready\n"));

    // Not ready once the broker is gone (only a broker of our own can be taken away).
    if !env.broker.is_ours() {
        return;
    }
    drop(env.broker);
    let started = std::time::Instant::now();
    loop {
        let (status, _, body) = http_get(&format!("{}/readyz", service.http), &[]).await;
        if status == 503 {
            assert!(body.starts_with("not ready"), "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still ready without a broker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) = http_get(&format!("{}/healthz", service.http), &[]).await;
    assert_eq!(status, 200, "alive all the same");
}
