//! A drop's whole life through the real broker and the real binary, checked byte for byte as a
//! peer reads it (kafka.md, contract §2 and §5).

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const MAP: u32 = 100_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn created_is_exact_on_the_wire() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let spawn = spawn_item(MAP, 2_000_000);
    peer.send(&spawn).await;
    let created = peer.next_event().await;

    let id = created.drop_id();
    assert!(
        (1_000_000_001..=2_000_000_000).contains(&id),
        "a drop id: {id}"
    );
    assert_eq!(created.key, key_of(id));
    assert_eq!(
        created.headers["TENANT_ID"],
        peer.tenant.id.to_string().into_bytes()
    );
    assert_eq!(created.headers["REGION"], b"GMS");
    assert_eq!(created.headers["MAJOR_VERSION"], [0x00, 0x53]);
    assert_eq!(created.headers["MINOR_VERSION"], [0x00, 0x01]);
    let drop_time = created.body()["dropTime"]
        .as_str()
        .expect("dropTime")
        .to_owned();
    let expected = format!(
        concat!(
            r#"{{"transactionId":"{}","worldId":1,"channelId":2,"mapId":{},"instance":"{}","dropId":{},"type":"CREATED","#,
            r#""body":{{"itemId":2000000,"quantity":3,"meso":0,"type":2,"x":100,"y":50,"ownerId":0,"#,
            r#""ownerPartyId":0,"dropTime":"{}","dropperUniqueId":9300018,"dropperX":90,"dropperY":40,"#,
            r#""playerDrop":false}}}}"#
        ),
        spawn["transactionId"].as_str().unwrap(),
        MAP,
        NIL_INSTANCE,
        id,
        drop_time
    );
    assert_eq!(created.raw, expected);
    // RFC 3339, UTC, `Z`, fraction without trailing zeros.
    assert!(drop_time.len() >= 20, "{drop_time}");
    assert_eq!(&drop_time[4..5], "-");
    assert_eq!(&drop_time[10..11], "T");
    assert!(drop_time.ends_with('Z'), "{drop_time}");
    if let Some((_, fraction)) = drop_time.trim_end_matches('Z').split_once('.') {
        assert!(
            !fraction.ends_with('0') && fraction.len() <= 3,
            "{drop_time}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn item_life_reserve_then_pick_up() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let created = peer.spawn_drop(&spawn_item(MAP, 1_302_000)).await;
    let id = created.drop_id();

    let reservation = reserve(MAP, id, 7);
    peer.send(&reservation).await;
    let reserved = peer.next_event().await;
    assert_eq!(reserved.key, key_of(id));
    assert_eq!(
        reserved.value,
        json!({
            "transactionId": reservation["transactionId"], "worldId": 1, "channelId": 2, "mapId": MAP,
            "instance": NIL_INSTANCE, "dropId": id, "type": "RESERVED",
            "body": with_no_stats(json!({"characterId": 7, "itemId": 1302000, "equipmentId": 0, "quantity": 3, "meso": 0}))
        })
    );

    let pick = pick_up(MAP, id, 7);
    peer.send(&pick).await;
    let picked = peer.next_event().await;
    assert_eq!(picked.key, key_of(id));
    assert_eq!(
        picked.raw,
        format!(
            r#"{{"transactionId":"{}","worldId":1,"channelId":2,"mapId":{MAP},"instance":"{NIL_INSTANCE}","dropId":{id},"type":"PICKED_UP","body":{{"characterId":7,"itemId":1302000,"equipmentId":0,"quantity":3,"meso":0,"petSlot":-1,{NO_STATS}}}}}"#,
            pick["transactionId"].as_str().unwrap()
        )
    );
    // Gone: a second pick-up changes nothing and says nothing.
    peer.send(&pick_up(MAP, id, 7)).await;
    peer.expect_quiet(Duration::from_millis(700)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn character_meso_and_equip_drops_carry_their_values() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let meso = command(
        "SPAWN_FROM_CHARACTER",
        MAP,
        json!({"mesos": 5000, "dropType": 2, "x": 10, "y": 20, "ownerId": 7, "dropperId": 7, "playerDrop": true}),
    );
    let meso_id = peer.spawn_drop(&meso).await.drop_id();
    let equip = command(
        "SPAWN_FROM_CHARACTER",
        MAP,
        json!({"itemId": 1302000, "equipmentId": 4242, "quantity": 1, "dropType": 2, "x": 10, "y": 20, "ownerId": 7, "dropperId": 7, "playerDrop": true}),
    );
    let equip_id = peer.spawn_drop(&equip).await.drop_id();

    peer.send(&reserve(MAP, meso_id, 8)).await;
    let reserved = peer.next_event().await;
    assert_eq!(
        reserved.body(),
        &with_no_stats(
            json!({"characterId": 8, "itemId": 0, "equipmentId": 0, "quantity": 0, "meso": 5000})
        )
    );
    // Without a party service, the picker is awarded it all (contract-head §4).
    let awarded = peer.next_event().await;
    assert_eq!(awarded.kind(), "MESO_AWARDED");
    assert_eq!(
        awarded.body(),
        &json!({"characterId": 8, "amount": 5000, "picker": true})
    );
    // A pet's reservation: no range check, and its slot comes back on PICKED_UP.
    let mut pet = reserve(MAP, equip_id, 9);
    pet["body"]["characterX"] = json!(-30000);
    pet["body"]["petSlot"] = json!(1);
    peer.send(&pet).await;
    let reserved = peer.next_event().await;
    assert_eq!(reserved.kind(), "RESERVED");
    assert_eq!(reserved.body()["equipmentId"], 4242);
    // The holder picks it up from another map: the reservation is the authority.
    peer.send(&pick_up(MAP + 1, equip_id, 9)).await;
    let picked = peer.next_event().await;
    assert_eq!(picked.kind(), "PICKED_UP");
    assert_eq!(
        picked.value["mapId"], MAP,
        "the event says where the drop lay"
    );
    assert_eq!(
        picked.body(),
        &with_no_stats(
            json!({"characterId": 9, "itemId": 1302000, "equipmentId": 4242, "quantity": 1, "meso": 0, "petSlot": 1})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reservation_failures_are_reported() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    // Owned by 7 (dropType 0) for the ownership window.
    let mut owned = spawn_item(MAP, 2_000_000);
    owned["body"]["dropType"] = json!(0);
    owned["body"]["ownerId"] = json!(7);
    let id = peer.spawn_drop(&owned).await.drop_id();

    let mut far = reserve(MAP, id, 7);
    far["body"]["characterX"] = json!(100 + 801);
    let mut wrong_map = reserve(MAP + 1, id, 7);
    wrong_map["worldId"] = json!(1);
    let refusals = [
        reserve(MAP, 1_999_999_999, 7), // no such drop
        reserve(MAP, 5, 7),             // outside the id range
        wrong_map,
        reserve(MAP, id, 8), // not the owner
        far,
    ];
    for request in &refusals {
        peer.send(request).await;
        let failure = peer.next_event().await;
        assert_eq!(
            failure.value,
            json!({
                "transactionId": request["transactionId"], "worldId": 1, "channelId": 2,
                "mapId": request["mapId"], "instance": NIL_INSTANCE, "dropId": request["body"]["dropId"],
                "type": "RESERVATION_FAILURE", "body": {"characterId": request["body"]["characterId"]}
            })
        );
        assert_eq!(
            failure.key,
            key_of(request["body"]["dropId"].as_u64().unwrap())
        );
    }
    // The owner, in range, gets it; a second request by the owner fails: one RESERVED only.
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
    // Someone else while it is held.
    let mut other = reserve(MAP, id, 8);
    other["body"]["partyId"] = json!(0);
    peer.send(&other).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
}

#[tokio::test(flavor = "multi_thread")]
async fn party_drops_and_the_ownership_window() {
    let mut env = TestEnv::with(Options::default().env("OWNERSHIP_MS", "4000")).await;
    let peer = &mut env.peer;
    let mut party = spawn_item(MAP, 2_000_000);
    party["body"]["dropType"] = json!(1);
    party["body"]["ownerId"] = json!(7);
    party["body"]["ownerPartyId"] = json!(55);
    let party_id = peer.spawn_drop(&party).await.drop_id();
    let mut owned = party.clone();
    owned["body"]["dropType"] = json!(0);
    let owned_id = peer.spawn_drop(&owned).await.drop_id();

    let mut stranger = reserve(MAP, party_id, 8);
    stranger["body"]["partyId"] = json!(56);
    peer.send(&stranger).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
    let mut member = reserve(MAP, party_id, 8);
    member["body"]["partyId"] = json!(55);
    peer.send(&member).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    // A party member may not take an owner-only drop, nor pick it up without reserving...
    peer.send(&member_of(owned_id)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
    peer.send(&pick_up(MAP, owned_id, 8)).await;
    peer.expect_quiet(Duration::from_millis(300)).await;
    // ...until the window passes; then anyone picks it up directly.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    peer.send(&pick_up(MAP, owned_id, 9)).await;
    let picked = peer.next_event().await;
    assert_eq!(picked.kind(), "PICKED_UP");
    assert_eq!(picked.body()["petSlot"], -1);

    fn member_of(id: u64) -> serde_json::Value {
        let mut member = reserve(MAP, id, 8);
        member["body"]["partyId"] = json!(55);
        member
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_returns_the_drop_and_only_the_holder_may() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");

    peer.send(&cancel(MAP, id, 8)).await;
    peer.send(&pick_up(MAP, id, 8)).await;
    peer.expect_quiet(Duration::from_millis(700)).await;

    let cancellation = cancel(MAP, id, 7);
    peer.send(&cancellation).await;
    let failure = peer.next_event().await;
    assert_eq!(
        failure.value,
        json!({
            "transactionId": cancellation["transactionId"], "worldId": 1, "channelId": 2, "mapId": MAP,
            "instance": NIL_INSTANCE, "dropId": id, "type": "RESERVATION_FAILURE", "body": {"characterId": 7}
        })
    );
    peer.send(&reserve(MAP, id, 8)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_others_drops() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    let other = Tenant::new("GMS", 83, 1);
    peer.send_as(&other, &reserve(MAP, id, 7)).await;
    let failure = peer.next_event().await;
    assert_eq!(failure.kind(), "RESERVATION_FAILURE");
    assert_eq!(
        failure.headers["TENANT_ID"],
        other.id.to_string().into_bytes()
    );
    peer.send_as(&other, &pick_up(MAP, id, 7)).await;
    peer.expect_quiet(Duration::from_millis(500)).await;
    // The same tenant id in another version is another tenant too.
    let mut jms = peer.tenant.clone();
    jms.major = 185;
    peer.send_as(&jms, &reserve(MAP, id, 7)).await;
    let failure = peer.next_event().await;
    assert_eq!(failure.kind(), "RESERVATION_FAILURE");
    assert_eq!(failure.headers["MAJOR_VERSION"], [0x00, 185]);
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_racers_one_winner() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    const RACERS: u32 = 24;
    for round in 0..3 {
        let id = peer
            .spawn_drop(&spawn_item(MAP + round, 2_000_000))
            .await
            .drop_id();
        let requests: Vec<_> = (0..RACERS)
            .map(|c| reserve(MAP + round, id, 100 + c))
            .collect();
        futures_util::future::join_all(requests.iter().map(|request| peer.send(request))).await;
        let answers = peer
            .next_events(RACERS as usize, Duration::from_secs(20))
            .await;
        let winners: Vec<_> = answers.iter().filter(|e| e.kind() == "RESERVED").collect();
        assert_eq!(winners.len(), 1, "{answers:#?}");
        let failures = answers
            .iter()
            .filter(|e| e.kind() == "RESERVATION_FAILURE")
            .count();
        assert_eq!(failures, RACERS as usize - 1);
        let mut characters: Vec<_> = answers
            .iter()
            .map(|e| e.body()["characterId"].as_u64().unwrap())
            .collect();
        characters.sort();
        characters.dedup();
        assert_eq!(
            characters.len(),
            RACERS as usize,
            "every racer answered once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_a_drop_keep_the_order_of_its_changes() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    // Reserve and cancel over and over, each command on a random partition: the service may
    // apply them in any order, but the events must replay as one valid history of the drop.
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    let mut cancels = std::collections::HashSet::new();
    for _ in 0..40 {
        peer.send(&reserve(MAP, id, 7)).await;
        let cancellation = cancel(MAP, id, 7);
        cancels.insert(cancellation["transactionId"].as_str().unwrap().to_owned());
        peer.send(&cancellation).await;
    }
    let events = peer.events_until_quiet(Duration::from_millis(1500)).await;
    assert!(
        events.len() >= 40,
        "every reservation is answered: {}",
        events.len()
    );
    let partitions: std::collections::HashSet<_> = events.iter().map(|e| e.partition).collect();
    assert_eq!(partitions.len(), 1, "one drop, one partition");
    let mut held = false;
    for (index, event) in events.iter().enumerate() {
        let by_cancel = cancels.contains(event.transaction_id());
        match (event.kind(), by_cancel) {
            // Only a drop nobody holds can be reserved.
            ("RESERVED", false) => assert!(!held, "RESERVED while held, event {index}"),
            // A reservation by the holder fails; a cancel answers only the holder.
            ("RESERVATION_FAILURE", _) => assert!(held, "failure while free, event {index}"),
            (kind, _) => panic!(
                "unexpected {kind} for transaction {}",
                event.transaction_id()
            ),
        }
        held = event.kind() == "RESERVED" || (held && !by_cancel);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_fields_take_their_defaults() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    // No transactionId: the nil UUID, echoed. No petSlot: a manual pick-up (-1).
    let spawn = json!({"worldId": 1, "channelId": 2, "mapId": MAP, "type": "SPAWN", "body": {"mesos": 10, "dropType": 2, "x": 100, "y": 50}});
    let created = peer.spawn_drop(&spawn).await;
    assert_eq!(
        created.transaction_id(),
        "00000000-0000-0000-0000-000000000000"
    );
    let id = created.drop_id();
    let request = json!({"worldId": 1, "channelId": 2, "mapId": MAP, "type": "REQUEST_RESERVATION", "body": {"dropId": id, "characterId": 7, "characterX": 100, "characterY": 50}});
    peer.send(&request).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    assert_eq!(peer.next_event().await.kind(), "MESO_AWARDED");
    peer.send(&pick_up(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.body()["petSlot"], -1);
}

/// A refused reservation's `RESERVATION_FAILURE` names the rule in `REFUSAL_REASON` (through the
/// outbox too); a cancel's answer names none.
async fn refusals_name_their_rule(store: Store) {
    let mut env = TestEnv::with(Options::default().store(store)).await;
    let peer = &mut env.peer;
    let created = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    let id = created.drop_id();
    let reason = |event: &Event| {
        assert_eq!(event.kind(), "RESERVATION_FAILURE", "{event:?}");
        (event.headers.get("REFUSAL_REASON"))
            .map(|value| String::from_utf8_lossy(value).into_owned())
    };
    let mut far = reserve(MAP, id, 7);
    far["body"]["characterX"] = serde_json::json!(30_000);
    peer.send(&far).await;
    assert_eq!(
        reason(&peer.next_event().await).as_deref(),
        Some("out_of_range")
    );
    peer.send(&reserve(MAP, 1_999_999_999, 7)).await;
    assert_eq!(
        reason(&peer.next_event().await).as_deref(),
        Some("unknown_drop")
    );
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    peer.send(&reserve(MAP, id, 8)).await;
    assert_eq!(
        reason(&peer.next_event().await).as_deref(),
        Some("held_by_other")
    );
    peer.send(&cancel(MAP, id, 7)).await;
    assert_eq!(reason(&peer.next_event().await), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_their_rule_in_memory() {
    refusals_name_their_rule(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_their_rule_on_the_shared_store() {
    refusals_name_their_rule(Store::Shared).await;
}

/// `CONSUME` (contract-head §3): an AVAILABLE or a held drop leaves with `CONSUMED` (body `{}`,
/// the command's transaction id); consumed twice, one `CONSUMED`; an unknown drop, nothing.
async fn consume_removes_the_drop_once(store: Store) {
    let mut env = TestEnv::with(Options::default().store(store)).await;
    let peer = &mut env.peer;
    let consume = |drop_id: u64| command("CONSUME", MAP, json!({ "dropId": drop_id }));
    let lying = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    let held = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    peer.send(&reserve(MAP, held, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    for drop_id in [lying, held] {
        let sent = consume(drop_id);
        peer.send(&sent).await;
        let consumed = peer.next_event().await;
        assert_eq!(consumed.kind(), "CONSUMED", "{consumed:?}");
        assert_eq!(consumed.drop_id(), drop_id);
        assert_eq!(consumed.value["body"], json!({}));
        assert_eq!(consumed.value["transactionId"], sent["transactionId"]);
        assert_eq!(consumed.key, key_of(drop_id));
    }
    peer.send(&consume(lying)).await;
    peer.send(&consume(1_999_999_999)).await;
    peer.expect_quiet(Duration::from_secs(1)).await;
    let (status, _, _) = http_get(
        &format!("{}/api/drops/{lying}", env.service.http),
        &peer.tenant.http_headers(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_removes_the_drop_once_in_memory() {
    consume_removes_the_drop_once(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_removes_the_drop_once_on_the_shared_store() {
    consume_removes_the_drop_once(Store::Shared).await;
}
