use rdkafka::message::{Header, OwnedHeaders};
use serde_json::json;

use super::*;

fn headers() -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "TENANT_ID",
            value: Some("3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a"),
        })
        .insert(Header {
            key: "REGION",
            value: Some("GMS"),
        })
        .insert(Header {
            key: "MAJOR_VERSION",
            value: Some(&[0u8, 83][..]),
        })
        .insert(Header {
            key: "MINOR_VERSION",
            value: Some(&[0u8, 1][..]),
        })
}

fn decode_json(value: serde_json::Value) -> Result<Command, Rejection> {
    decode(Some(&serde_json::to_vec(&value).unwrap()), Some(&headers())).map(|(_, command)| command)
}

fn class_of(value: serde_json::Value) -> RejectionClass {
    decode_json(value).expect_err("rejected").class
}

#[test]
fn a_spawn_decodes_with_its_tenant_and_map() {
    let command = decode_json(json!({
        "transactionId": "5f1c7d2e-8a9b-4c3d-9e0f-1a2b3c4d5e6f", "worldId": 1, "channelId": 2, "mapId": 100000000,
        "type": "SPAWN", "extra": [1, 2],
        "body": {"itemId": 2000000, "quantity": 5, "mesos": 0, "dropType": 1, "x": -5, "y": 7, "ownerId": 3,
                 "ownerPartyId": 4, "dropperId": 5, "dropperX": 6, "dropperY": -7, "playerDrop": true, "mod": 1}
    }))
    .unwrap();
    assert_eq!(command.tenant.region, "GMS");
    assert_eq!(
        (command.tenant.major_version, command.tenant.minor_version),
        (83, 1)
    );
    assert_eq!(
        command.tenant.id.to_string(),
        "3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a"
    );
    assert_eq!(
        command.location,
        Location {
            world_id: 1,
            channel_id: 2,
            map_id: 100_000_000,
            instance: Uuid::nil(),
        }
    );
    assert_eq!(
        command.correlation.transaction_id.to_string(),
        "5f1c7d2e-8a9b-4c3d-9e0f-1a2b3c4d5e6f"
    );
    let Action::Spawn(spec) = command.action else {
        panic!("a spawn")
    };
    assert_eq!(spec.contents, Contents::new(2_000_000, 0, 5, 0).unwrap());
    assert_eq!(
        (
            spec.drop_type,
            spec.position,
            spec.owner_id,
            spec.owner_party_id
        ),
        (1, Point { x: -5, y: 7 }, 3, 4)
    );
    assert_eq!(
        spec.dropper,
        Dropper {
            id: 5,
            position: Point { x: 6, y: -7 }
        }
    );
    assert!(spec.player_drop);
    assert_eq!(spec.mod_, 1);
}

#[test]
fn missing_fields_take_zero_and_pet_slot_minus_one() {
    let command =
        decode_json(json!({"type": "REQUEST_RESERVATION", "body": {"dropId": 1000000001}}))
            .unwrap();
    assert_eq!(command.correlation.transaction_id, Uuid::nil());
    assert_eq!(
        command.location,
        Location {
            world_id: 0,
            channel_id: 0,
            map_id: 0,
            instance: Uuid::nil(),
        }
    );
    assert_eq!(
        command.action,
        Action::OnDrop(DropRequest::Reserve(ReserveRequest {
            drop_id: 1_000_000_001,
            character_id: 0,
            position: Point::default(),
            pet_slot: -1,
            party_id: 0,
            present: Some(Vec::new()),
        }))
    );
    let Action::OnDrop(DropRequest::PickUp(request)) =
        decode_json(json!({"type": "REQUEST_PICK_UP"}))
            .unwrap()
            .action
    else {
        panic!("a pick-up")
    };
    assert_eq!(
        request,
        CharacterRequest {
            drop_id: 0,
            character_id: 0
        }
    );
}

#[test]
fn every_command_type_is_known() {
    for kind in ["SPAWN", "SPAWN_FROM_CHARACTER"] {
        let command = decode_json(json!({"type": kind, "body": {"mesos": 1}})).unwrap();
        assert!(matches!(command.action, Action::Spawn(_)));
    }
    let cancel =
        decode_json(json!({"type": "CANCEL_RESERVATION", "body": {"dropId": 9, "characterId": 8}}));
    assert_eq!(
        cancel.unwrap().action,
        Action::OnDrop(DropRequest::CancelReservation(CharacterRequest {
            drop_id: 9,
            character_id: 8
        }))
    );
    let party =
        decode_json(json!({"type": "REQUEST_RESERVATION", "body": {"partyId": 12, "petSlot": 2}}));
    let Action::OnDrop(DropRequest::Reserve(request)) = party.unwrap().action else {
        panic!()
    };
    assert_eq!((request.party_id, request.pet_slot), (12, 2));
}

#[test]
fn bad_values_are_rejected_with_a_reason() {
    use RejectionClass::*;
    assert_eq!(class_of(json!({"type": "DESTROY"})), UnknownType);
    assert_eq!(
        decode_json(json!({"type": "DESTROY"}))
            .unwrap_err()
            .command_type,
        None
    );
    let typed =
        decode_json(json!({"type": "REQUEST_PICK_UP", "body": {"dropId": -1}})).unwrap_err();
    assert_eq!(typed.command_type, Some(CommandType::RequestPickUp));
    assert_eq!(class_of(json!({"body": {}})), Malformed);
    assert_eq!(
        class_of(json!({"type": "SPAWN", "worldId": 256, "body": {"mesos": 1}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "worldId": -1, "body": {"mesos": 1}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"mesos": 1.5}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"mesos": 1.0}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"mesos": 4294967296u64}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"mesos": 1, "x": 32768}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"mesos": "1"}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"mesos": 1, "playerDrop": 1}})),
        Malformed
    );
    assert_eq!(class_of(json!({"type": "SPAWN", "body": []})), Malformed);
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": [0, 0, 0, 5]})),
        Malformed
    );
    assert_eq!(
        class_of(json!([
            "00000000-0000-0000-0000-000000000000",
            0,
            0,
            0,
            "SPAWN"
        ])),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "SPAWN", "transactionId": "nope", "body": {"mesos": 1}})),
        Malformed
    );
    assert_eq!(
        class_of(json!({"type": "REQUEST_RESERVATION", "body": {"petSlot": 128}})),
        Malformed
    );
    assert_eq!(class_of(json!({"type": "SPAWN", "body": {}})), Contents);
    assert_eq!(
        class_of(json!({"type": "SPAWN", "body": {"itemId": 1, "mesos": 1}})),
        Contents
    );
    let rejection = decode_json(json!({"type": "SPAWN", "body": {"mesos": 1.5}})).unwrap_err();
    assert!(
        rejection.to_string().starts_with("malformed: body: "),
        "{rejection}"
    );
    assert!(decode(None, Some(&headers())).is_err());
    assert!(decode(Some(b"{\"type\":"), Some(&headers())).is_err());
}

#[test]
fn a_command_needs_the_whole_tenant() {
    let value = serde_json::to_vec(&json!({"type": "SPAWN", "body": {"mesos": 1}})).unwrap();
    let rejected = |headers: Option<&OwnedHeaders>| decode(Some(&value), headers).unwrap_err();
    assert_eq!(rejected(None).class, RejectionClass::Header);
    assert_eq!(rejected(None).command_type, Some(CommandType::Spawn));
    let valid = headers();
    for missing in ["TENANT_ID", "REGION", "MAJOR_VERSION", "MINOR_VERSION"] {
        let mut partial = OwnedHeaders::new();
        for header in valid.iter().filter(|h| h.key != missing) {
            partial = partial.insert(header);
        }
        let rejection = rejected(Some(&partial));
        assert_eq!(rejection.class, RejectionClass::Header);
        assert!(rejection.reason.contains(missing), "{rejection}");
    }
    let decimal = OwnedHeaders::new()
        .insert(Header {
            key: "TENANT_ID",
            value: Some("3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a"),
        })
        .insert(Header {
            key: "REGION",
            value: Some("GMS"),
        })
        .insert(Header {
            key: "MAJOR_VERSION",
            value: Some("83"),
        })
        .insert(Header {
            key: "MINOR_VERSION",
            value: Some("1"),
        });
    assert!(rejected(Some(&decimal)).reason.contains("MINOR_VERSION"));
    let simple_uuid = OwnedHeaders::new().insert(Header {
        key: "TENANT_ID",
        value: Some("3a8f3c4e2b1d4c5e9f6a7b8c9d0e1f2a"),
    });
    assert!(rejected(Some(&simple_uuid)).reason.contains("36-character"));
}

#[test]
fn trace_context_is_kept() {
    let with_trace = headers()
        .insert(Header {
            key: "traceparent",
            value: Some("00-abc-def-01"),
        })
        .insert(Header {
            key: "tracestate",
            value: Some("k=v"),
        });
    let value = serde_json::to_vec(&json!({"type": "SPAWN", "body": {"mesos": 1}})).unwrap();
    let (kind, command) = decode(Some(&value), Some(&with_trace)).unwrap();
    assert_eq!(kind, CommandType::Spawn);
    assert_eq!(
        command.correlation.traceparent.as_deref(),
        Some(&b"00-abc-def-01"[..])
    );
    assert_eq!(command.correlation.tracestate.as_deref(), Some(&b"k=v"[..]));
}

proptest::proptest! {
    /// Whatever the bytes, decoding answers (never panics) and a rejection names its reason.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        if let Err(rejection) = decode(Some(&bytes), Some(&headers())) {
            proptest::prop_assert!(!rejection.reason.is_empty());
        }
    }
}

#[test]
fn consume_names_only_the_drop() {
    let command =
        decode_json(json!({"type": "CONSUME", "body": {"dropId": 1_000_000_002}})).unwrap();
    assert_eq!(
        command.action,
        Action::OnDrop(DropRequest::Consume {
            drop_id: 1_000_000_002
        })
    );
    assert!(decode_json(json!({"type": "CONSUME", "body": {"dropId": "x"}})).is_err());
}

#[test]
fn the_newer_envelope_names_an_instance_and_the_body_carries_stats() {
    let command = decode_json(json!({
        "worldId": 1, "channelId": 2, "mapId": 100000000,
        "instance": "4b1a5c2e-0d6f-4e8a-9b3c-2d1e0f9a8b7c", "type": "SPAWN",
        "body": {"itemId": 1302000, "quantity": 1, "strength": 1, "dexterity": 2,
                 "intelligence": 3, "luck": 4, "hp": 5, "mp": 6, "weaponAttack": 7,
                 "magicAttack": 8, "weaponDefense": 9, "magicDefense": 10, "accuracy": 11,
                 "avoidability": 12, "hands": 13, "speed": 14, "jump": 15, "slots": 65535}
    }))
    .unwrap();
    assert_eq!(
        command.location.instance.to_string(),
        "4b1a5c2e-0d6f-4e8a-9b3c-2d1e0f9a8b7c"
    );
    let Action::Spawn(spec) = command.action else {
        panic!("a spawn")
    };
    let mut expected: [u16; 16] = std::array::from_fn(|i| i as u16 + 1);
    expected[15] = 65535;
    assert_eq!(spec.contents.stats().0, expected);
    // Missing stats are 0; a null instance is the nil one.
    let command = decode_json(json!({"instance": null, "type": "SPAWN",
        "body": {"itemId": 1302000, "hands": 3}}))
    .unwrap();
    assert!(command.location.instance.is_nil());
    let Action::Spawn(spec) = command.action else {
        panic!("a spawn")
    };
    assert_eq!(spec.contents.stats().0[12], 3);
    assert_eq!(spec.contents.stats().0.iter().sum::<u16>(), 3);
}

#[test]
fn a_bad_instance_or_stat_is_bad_input() {
    for bad in [
        json!("not-a-uuid"),
        json!(7),
        json!("4b1a5c2e-0d6f-4e8a-9b3c"),
    ] {
        let value = json!({"instance": bad, "type": "CONSUME", "body": {"dropId": 1}});
        assert_eq!(class_of(value), RejectionClass::Malformed, "{bad}");
    }
    for bad in [json!(-1), json!(65536), json!(1.5), json!("7")] {
        let value = json!({"type": "SPAWN", "body": {"itemId": 1302000, "slots": bad}});
        let rejection = decode_json(value).expect_err("rejected");
        assert_eq!(rejection.class, RejectionClass::Malformed, "{bad}");
    }
}

#[test]
fn the_environment_header_is_kept_and_bounded() {
    let with = |value: &[u8]| {
        let headers = headers().insert(Header {
            key: "ENVIRONMENT",
            value: Some(value),
        });
        let payload = br#"{"type":"CONSUME","body":{"dropId":1000000001}}"#;
        decode(Some(&payload[..]), Some(&headers)).map(|(_, command)| command)
    };
    let command = with(b"preview-7").unwrap();
    assert_eq!(
        command.correlation.environment.as_deref(),
        Some("preview-7")
    );
    assert_eq!(
        decode_json(json!({"type": "CONSUME"}))
            .unwrap()
            .correlation
            .environment,
        None
    );
    for bad in [&b""[..], &[0xff, 0xfe][..], &[b'e'; 129][..]] {
        let rejection = with(bad).expect_err("rejected");
        assert_eq!(rejection.class, RejectionClass::Header);
        assert!(
            rejection.reason.contains("ENVIRONMENT"),
            "{}",
            rejection.reason
        );
    }
    assert!(with(&[b'e'; 128]).is_ok());
}
