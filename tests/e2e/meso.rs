//! Meso shared by the party (contract-head §4): after a meso drop's `RESERVED`, one
//! `MESO_AWARDED` per member present, from the party service's answer — exactly once, and
//! without holding up anything but that drop.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::*;

const MAP: u32 = 100_000_000;

fn spawn_meso(amount: u32) -> Value {
    command(
        "SPAWN",
        MAP,
        json!({"mesos": amount, "dropType": 2, "x": 100, "y": 50}),
    )
}

/// `(characterId, amount, picker)` of each `MESO_AWARDED`.
fn awards(events: &[Event]) -> Vec<(u64, u64, bool)> {
    (events.iter())
        .map(|event| {
            assert_eq!(event.kind(), "MESO_AWARDED", "{event:?}");
            let body = event.body();
            let field = |name: &str| body[name].as_u64().unwrap();
            (
                field("characterId"),
                field("amount"),
                body["picker"] == true,
            )
        })
        .collect()
}

/// Picker 7's party: 3 and 9 stand by the drop; 11 is on another map, 12 offline, 13 in another
/// instance of the map, 14 named but not in the document's `included`.
fn party_of_seven(parties: &PartyService) {
    let here = |id| PartyMember::at(id, 1, 2, MAP, Uuid::nil());
    parties.set_party(
        1,
        vec![
            here(7),
            here(9),
            PartyMember::at(11, 1, 2, MAP + 1, Uuid::nil()),
            here(12).offline(),
            PartyMember::at(13, 1, 2, MAP, Uuid::from_u128(5)),
            here(14).not_included(),
            here(3),
        ],
    );
}

async fn party_members_present_share_the_meso(store: Store) {
    let parties = PartyService::start().await;
    party_of_seven(&parties);
    let options = Options::default()
        .store(store)
        .env("PARTIES_SERVICE_URL", &parties.url);
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_meso(1_001)).await.drop_id();
    let reservation = reserve(MAP, id, 7);
    peer.send(&reservation).await;
    let events = peer.next_events(4, Duration::from_secs(10)).await;
    assert_eq!(events[0].kind(), "RESERVED");
    assert_eq!(
        events[0].body()["meso"],
        1_001,
        "the older generation's credit"
    );
    assert_eq!(
        awards(&events[1..]),
        [(3, 333, false), (7, 335, true), (9, 333, false)]
    );
    for event in &events {
        assert_eq!(event.key, key_of(id));
        assert_eq!(event.transaction_id(), reservation["transactionId"]);
        assert_eq!(
            event.headers["TENANT_ID"],
            peer.tenant.id.to_string().into_bytes()
        );
    }
    assert_eq!(
        events[2].raw,
        format!(
            r#"{{"transactionId":"{}","worldId":1,"channelId":2,"mapId":{MAP},"instance":"{NIL_INSTANCE}","dropId":{id},"type":"MESO_AWARDED","body":{{"characterId":7,"amount":335,"picker":true}}}}"#,
            reservation["transactionId"].as_str().unwrap()
        )
    );
    let asked = parties.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].member_id.as_deref(), Some("7"));
    // Asked again by the holder, or the reservation redelivered: nobody is awarded twice.
    peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
    // Cancelled and reserved by another: the meso was shared out already.
    peer.send(&cancel(MAP, id, 7)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVATION_FAILURE");
    peer.send(&reserve(MAP, id, 8)).await;
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    peer.send(&pick_up(MAP, id, 8)).await;
    assert_eq!(peer.next_event().await.kind(), "PICKED_UP");
    peer.expect_quiet(Duration::from_millis(700)).await;
    assert_eq!(
        env.service
            .metric(r#"atlas_drops_party_lookups_total{outcome="party"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn party_members_present_share_the_meso_in_memory() {
    party_members_present_share_the_meso(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn party_members_present_share_the_meso_on_the_shared_store() {
    party_members_present_share_the_meso(Store::Shared).await;
}

/// No party, a party service that fails, that answers garbage or too late: the picker alone,
/// the whole amount.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_answer_the_picker_takes_it_all() {
    let parties = PartyService::start().await;
    party_of_seven(&parties);
    let options = Options::default()
        .env("PARTIES_SERVICE_URL", &parties.url)
        .env("PARTIES_TIMEOUT_MS", "300");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    for mode in [
        PartyMode::Down,
        PartyMode::Garbage,
        PartyMode::Slow(Duration::from_millis(1_500)),
    ] {
        parties.set_mode(mode);
        let id = peer.spawn_drop(&spawn_meso(500)).await.drop_id();
        peer.send(&reserve(MAP, id, 7)).await;
        let events = peer.next_events(2, Duration::from_secs(10)).await;
        assert_eq!(events[0].kind(), "RESERVED", "{mode:?}");
        assert_eq!(awards(&events[1..]), [(7, 500, true)], "{mode:?}");
    }
    parties.set_mode(PartyMode::Up);
    let id = peer.spawn_drop(&spawn_meso(500)).await.drop_id();
    peer.send(&reserve(MAP, id, 42)).await;
    let events = peer.next_events(2, Duration::from_secs(10)).await;
    assert_eq!(awards(&events[1..]), [(42, 500, true)], "in no party");
    let failed = env
        .service
        .metric(r#"atlas_drops_party_lookups_total{outcome="failed"}"#)
        .await;
    assert_eq!(failed, Some(3.0));
}

/// A slow party service holds up only the drop it is asked about: a spawn behind it on the
/// same partition is created first, and a pick-up of that drop sent meanwhile waits its turn
/// (it finds the reservation it follows).
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_party_service_delays_only_that_drop() {
    let parties = PartyService::start().await;
    party_of_seven(&parties);
    let options = Options::default().env("PARTIES_SERVICE_URL", &parties.url);
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_meso(900)).await.drop_id();
    parties.set_mode(PartyMode::Slow(Duration::from_millis(1_500)));
    let one_partition = Some(&b"one-partition"[..]);
    let commands = [
        reserve(MAP, id, 7),
        spawn_item(MAP, 2_000_000),
        pick_up(MAP, id, 7),
    ];
    peer.send_all(&commands, one_partition).await;
    let events = peer.next_events(6, Duration::from_secs(10)).await;
    let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        [
            "CREATED",
            "RESERVED",
            "MESO_AWARDED",
            "MESO_AWARDED",
            "MESO_AWARDED",
            "PICKED_UP"
        ]
    );
}

/// The older and the newer generation against one service at once: an older peer's
/// conversation (no instance, `equipmentId`, no `ENVIRONMENT`, items) and a newer one's
/// (an instance, stats inline, `CONSUME`, party meso), interleaved.
#[tokio::test(flavor = "multi_thread")]
async fn both_generations_are_served_at_once() {
    let parties = PartyService::start().await;
    let instance = Uuid::from_u128(0x77);
    let there = |id| PartyMember::at(id, 1, 2, MAP, instance);
    parties.set_party(4, vec![there(21), there(22)]);
    let options = Options::default()
        .store(Store::Shared)
        .env("PARTIES_SERVICE_URL", &parties.url);
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    let newer = |mut command: Value| {
        command["instance"] = json!(instance.to_string());
        command.as_object_mut().unwrap().remove("transactionId");
        command
    };
    // Older: an equip with its equipment id, reserved and picked up.
    let older_equip = command(
        "SPAWN_FROM_CHARACTER",
        MAP,
        json!({"itemId": 1302000, "equipmentId": 4242, "quantity": 1, "dropType": 2, "x": 100, "y": 50}),
    );
    let older_id = peer.spawn_drop(&older_equip).await.drop_id();
    // Newer: an equip with stats, a meso drop and a drop to consume, in the instance.
    let mut stats_equip = newer(spawn_item(MAP, 1_302_001));
    stats_equip["body"]["weaponAttack"] = json!(17);
    let newer_equip = peer.spawn_drop(&stats_equip).await.drop_id();
    let newer_meso = peer.spawn_drop(&newer(spawn_meso(100))).await.drop_id();
    let doomed = peer
        .spawn_drop(&newer(spawn_item(MAP, 2_000_000)))
        .await
        .drop_id();

    peer.send(&reserve(MAP, older_id, 7)).await;
    let reserved = peer.next_event().await;
    assert_eq!(reserved.body()["equipmentId"], 4242);
    assert_eq!(reserved.value["instance"], NIL_INSTANCE);
    peer.send(&newer(reserve(MAP, newer_meso, 21))).await;
    let events = peer.next_events(3, Duration::from_secs(10)).await;
    assert_eq!(events[0].kind(), "RESERVED");
    assert_eq!(awards(&events[1..]), [(21, 50, true), (22, 50, false)]);
    peer.send(&newer(command("CONSUME", MAP, json!({"dropId": doomed}))))
        .await;
    assert_eq!(peer.next_event().await.kind(), "CONSUMED");
    peer.send(&newer(reserve(MAP, newer_equip, 22))).await;
    let reserved = peer.next_event().await;
    assert_eq!(reserved.body()["weaponAttack"], 17);
    assert_eq!(reserved.body()["equipmentId"], 0);
    peer.send(&pick_up(MAP, older_id, 7)).await;
    let picked = peer.next_event().await;
    assert_eq!((picked.kind(), picked.drop_id()), ("PICKED_UP", older_id));
    assert!(!picked.headers.contains_key("ENVIRONMENT"));
}
