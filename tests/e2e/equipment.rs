//! Equip drops and the equipment service. The service is a peer we do not own, so a stub of
//! ours stands in for it (`EquipmentService`), speaking its JSON:API.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const MAP: u32 = 900_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn equip_spawns_carry_their_equipment_and_expired_ones_delete_it() {
    let equipment = EquipmentService::start().await;
    let options = Options::default()
        .env("EQUIPABLES_SERVICE_URL", &equipment.url)
        .env("DROP_EXPIRE_MS", "1500");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;

    let kept = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await.drop_id();
    let posts = equipment.requests("POST");
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
        equipment.requests("POST").len(),
        2,
        "only SPAWNs of equip items create equipment"
    );

    // Everything but the reserved drop expires; the equip drops' equipment is deleted.
    let expired = peer.next_events(4, Duration::from_secs(10)).await;
    assert!(expired.iter().all(|e| e.kind() == "EXPIRED"));
    assert!(expired.iter().any(|e| e.drop_id() == expiring));
    let started = std::time::Instant::now();
    loop {
        let mut deleted: Vec<String> = equipment
            .requests("DELETE")
            .into_iter()
            .map(|r| r.1)
            .collect();
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
    assert_eq!(equipment.requests("DELETE")[0].2[2], "83");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_equipment_service_is_retried_then_the_spawn_rejected_without_blocking_others() {
    let equipment = EquipmentService::start().await;
    let options = Options::default()
        .env("EQUIPABLES_SERVICE_URL", &equipment.url)
        .env("EQUIPMENT_TIMEOUT_MS", "2500")
        .dead_letters();
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    // Two failures, then success: retried, and the drop carries the equipment.
    equipment.fail_next(2);
    let id = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await.drop_id();
    assert_eq!(equipment.requests("POST").len(), 3);
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.body()["equipmentId"], 5001);

    // Down for good: the spawn is rejected after its budget, and dead-lettered; meanwhile the
    // commands after it, on the same partition, go on.
    equipment.go_down();
    let doomed = spawn_item(MAP, 1_302_003);
    let mut commands = vec![doomed.clone()];
    commands
        .extend((0..5).map(|n| command("SPAWN", MAP + 1, json!({"mesos": 10 + n, "dropType": 2}))));
    peer.send_all(&commands, Some(b"one-partition")).await;
    let created = peer.next_events(5, Duration::from_secs(2)).await;
    assert!(created
        .iter()
        .all(|e| e.kind() == "CREATED" && e.value["mapId"] == MAP + 1));
    let letters = peer.dead_letters(&env.broker, 1).await;
    let reason = String::from_utf8_lossy(&letters[0].headers["dlq.reason"]).into_owned();
    assert_eq!(letters[0].headers["dlq.class"], b"equipment_unavailable");
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(letters[0].value["transactionId"], doomed["transactionId"]);
    assert!(
        equipment.requests("POST").len() > 4,
        "retried before giving up"
    );
    peer.expect_quiet(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_equip_spawn_on_the_shared_store_asks_for_no_second_equipment() {
    let equipment = EquipmentService::start().await;
    // No commit before the kill: the restarted instance gets the spawn again.
    let options = Options::default()
        .shared()
        .env("EQUIPABLES_SERVICE_URL", &equipment.url)
        .env("KAFKA_CFG_AUTO_COMMIT_INTERVAL_MS", "600000");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    env.service.ready().await;
    let created = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await;
    drop(env.service.kill());

    let second = Service::start(&env.broker, &env.names, &env.options);
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
        equipment.requests("POST").len(),
        1,
        "one equipment for one drop"
    );
    peer.expect_quiet(Duration::from_millis(500)).await;
    let (status, _, body) = second
        .get(&format!("/api/drops/{}", created.drop_id()), &peer.tenant)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"equipmentId\":5001"), "{body}");
}

/// A consumed equip drop's equipment is deleted as an expired one's (contract-head §3).
#[tokio::test(flavor = "multi_thread")]
async fn a_consumed_equip_drop_deletes_its_equipment() {
    let equipment = EquipmentService::start().await;
    let options = Options::default().env("EQUIPABLES_SERVICE_URL", &equipment.url);
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let consumed = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await.drop_id();
    peer.send(&command("CONSUME", MAP, json!({ "dropId": consumed })))
        .await;
    assert_eq!(peer.next_event().await.kind(), "CONSUMED");
    let started = std::time::Instant::now();
    while equipment.requests("DELETE").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "no DELETE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted: Vec<String> = (equipment.requests("DELETE").into_iter())
        .map(|request| request.1)
        .collect();
    assert_eq!(deleted, ["/api/equipables/5001"]);
}
