use std::sync::Arc;

use rdkafka::message::Headers;
use uuid::Uuid;

use super::*;
use crate::drop::model::{Correlation, DropSpec, Dropper, EquipmentStats, Location, Point, Tenant};
use crate::drop::rules::Refusal;

fn event(kind: EventKind) -> Event {
    Event {
        tenant: Arc::new(Tenant {
            id: Uuid::parse_str("3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a").unwrap(),
            region: "GMS".into(),
            major_version: 83,
            minor_version: 1,
        }),
        location: Location {
            world_id: 1,
            channel_id: 2,
            map_id: 100_000_000,
            instance: Uuid::nil(),
        },
        drop_id: 1_000_000_002,
        correlation: Correlation {
            transaction_id: Uuid::parse_str("5f1c7d2e-8a9b-4c3d-9e0f-1a2b3c4d5e6f").unwrap(),
            ..Correlation::default()
        },
        kind,
    }
}

fn text(kind: EventKind) -> String {
    String::from_utf8(encode_value(&event(kind))).unwrap()
}

const HEAD: &str = r#"{"transactionId":"5f1c7d2e-8a9b-4c3d-9e0f-1a2b3c4d5e6f","worldId":1,"channelId":2,"mapId":100000000,"instance":"00000000-0000-0000-0000-000000000000","dropId":1000000002,"#;

#[test]
fn the_key_is_the_drop_id_little_endian_in_eight_bytes() {
    assert_eq!(
        encode_key(1_000_000_002),
        [0x02, 0xCA, 0x9A, 0x3B, 0, 0, 0, 0]
    );
}

#[test]
fn every_event_has_the_contract_shape_and_field_order() {
    let stats = EquipmentStats(std::array::from_fn(|i| i as u16 + 1));
    let equip = Contents::new(1_302_000, 42, 1, 0)
        .unwrap()
        .with_stats(stats);
    let spec = DropSpec {
        contents: Contents::new(0, 0, 0, 500).unwrap(),
        drop_type: 3,
        position: Point { x: -1, y: 2 },
        owner_id: 7,
        owner_party_id: 8,
        dropper: Dropper {
            id: 9,
            position: Point { x: 10, y: -11 },
        },
        player_drop: true,
        mod_: 1,
    };
    assert_eq!(
        text(EventKind::Created {
            spec,
            dropped_at: Millis(1_768_499_985_120)
        }),
        format!(
            r#"{HEAD}"type":"CREATED","body":{{"itemId":0,"quantity":0,"meso":500,"type":3,"x":-1,"y":2,"ownerId":7,"ownerPartyId":8,"dropTime":"2026-01-15T17:59:45.12Z","dropperUniqueId":9,"dropperX":10,"dropperY":-11,"playerDrop":true}}}}"#
        )
    );
    assert_eq!(
        text(EventKind::Expired { equipment_id: 9 }),
        format!(r#"{HEAD}"type":"EXPIRED","body":{{}}}}"#)
    );
    assert_eq!(
        text(EventKind::PickedUp {
            character_id: 5,
            contents: equip,
            pet_slot: -1
        }),
        format!(
            r#"{HEAD}"type":"PICKED_UP","body":{{"characterId":5,"itemId":1302000,"equipmentId":42,"quantity":1,"meso":0,"petSlot":-1,"strength":1,"dexterity":2,"intelligence":3,"luck":4,"hp":5,"mp":6,"weaponAttack":7,"magicAttack":8,"weaponDefense":9,"magicDefense":10,"accuracy":11,"avoidability":12,"hands":13,"speed":14,"jump":15,"slots":16}}}}"#
        )
    );
    assert_eq!(
        text(EventKind::Reserved {
            character_id: 5,
            contents: equip
        }),
        format!(
            r#"{HEAD}"type":"RESERVED","body":{{"characterId":5,"itemId":1302000,"equipmentId":42,"quantity":1,"meso":0,"strength":1,"dexterity":2,"intelligence":3,"luck":4,"hp":5,"mp":6,"weaponAttack":7,"magicAttack":8,"weaponDefense":9,"magicDefense":10,"accuracy":11,"avoidability":12,"hands":13,"speed":14,"jump":15,"slots":16}}}}"#
        )
    );
    assert_eq!(
        text(EventKind::ReservationFailure {
            character_id: 5,
            refused: Some(Refusal::HeldByOther)
        }),
        format!(r#"{HEAD}"type":"RESERVATION_FAILURE","body":{{"characterId":5}}}}"#)
    );
}

#[test]
fn drop_time_is_rfc3339_utc_with_trimmed_fractions() {
    assert_eq!(rfc3339(Millis(0)), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(Millis(1_768_499_985_123)),
        "2026-01-15T17:59:45.123Z"
    );
    assert_eq!(rfc3339(Millis(1_768_499_985_100)), "2026-01-15T17:59:45.1Z");
    assert_eq!(rfc3339(Millis(1_768_499_985_000)), "2026-01-15T17:59:45Z");
    assert_eq!(rfc3339(Millis(951_782_400_000)), "2000-02-29T00:00:00Z");
    assert_eq!(
        rfc3339(Millis(1_704_067_199_999)),
        "2023-12-31T23:59:59.999Z"
    );
}

#[test]
fn headers_carry_the_tenant_in_binary_and_the_trace() {
    let mut traced = event(EventKind::Expired { equipment_id: 9 });
    traced.correlation.traceparent = Some(b"00-abc-def-01".to_vec());
    let headers = encode_headers(&traced);
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|h| (h.key, h.value.unwrap())).collect();
    assert_eq!(
        pairs,
        [
            ("TENANT_ID", &b"3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a"[..]),
            ("REGION", b"GMS"),
            ("MAJOR_VERSION", &[0x00, 0x53]),
            ("MINOR_VERSION", &[0x00, 0x01]),
            ("traceparent", b"00-abc-def-01"),
        ]
    );
    traced.correlation.environment = Some("preview-7".into());
    let headers = encode_headers(&traced);
    let environment = headers.iter().find(|h| h.key == "ENVIRONMENT");
    assert_eq!(environment.and_then(|h| h.value), Some(&b"preview-7"[..]));
}

#[test]
fn a_refused_reservations_failure_names_the_rule_and_a_cancels_does_not() {
    let refused = event(EventKind::ReservationFailure {
        character_id: 5,
        refused: Some(Refusal::OutOfRange),
    });
    let named = |event: &Event| -> Option<Vec<u8>> {
        let headers = encode_headers(event);
        let found = headers.iter().find(|h| h.key == "REFUSAL_REASON");
        found.and_then(|h| h.value.map(<[u8]>::to_vec))
    };
    assert_eq!(named(&refused), Some(b"out_of_range".to_vec()));
    let cancelled = event(EventKind::ReservationFailure {
        character_id: 5,
        refused: None,
    });
    assert_eq!(named(&cancelled), None);
    // The body is the contract's either way.
    assert_eq!(encode_value(&refused), encode_value(&cancelled));
}
