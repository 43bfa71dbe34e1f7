//! How a drop is written in Redis: a compact JSON record, one field of its map's hash; and how
//! an event waits in the outbox (`EventRecord`), in the store's own format, for the relay to
//! encode as a Kafka record. Wire types of their own, so the domain types stay free of serde
//! and of storage concerns, and the store knows nothing of Kafka.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::drop::event::{Event, EventKind};
use crate::drop::model::{
    Contents, Correlation, Drop, DropId, DropSpec, Dropper, EquipmentStats, Location, Millis,
    Point, Reservation, Status, Tenant,
};
use crate::drop::rules::Refusal;

#[derive(Serialize, Deserialize)]
struct TenantRecord {
    id: Uuid,
    region: String,
    major: u16,
    minor: u16,
}

#[derive(Serialize, Deserialize)]
struct ReservationRecord {
    character: u32,
    pet: i8,
    at: u64,
}

/// Field names are short: a map holds up to `MAP_DROP_LIMIT` of these.
#[derive(Serialize, Deserialize)]
pub struct DropRecord {
    id: u32,
    tenant: TenantRecord,
    world: u8,
    channel: u8,
    map: u32,
    /// Absent in records of versions before instances, and for the nil instance.
    #[serde(default, skip_serializing_if = "Uuid::is_nil")]
    instance: Uuid,
    item: u32,
    equipment: u32,
    quantity: u32,
    meso: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    stats: [u16; 16],
    #[serde(rename = "type")]
    drop_type: u8,
    x: i16,
    y: i16,
    owner: u32,
    party: u32,
    dropper: u32,
    dropper_x: i16,
    dropper_y: i16,
    player: bool,
    #[serde(rename = "mod")]
    mod_: u8,
    at: u64,
    transaction: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    awarded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held: Option<ReservationRecord>,
}

fn is_zero(stats: &[u16; 16]) -> bool {
    stats.iter().all(|stat| *stat == 0)
}

impl TenantRecord {
    fn of(tenant: &Tenant) -> TenantRecord {
        TenantRecord {
            id: tenant.id,
            region: tenant.region.clone(),
            major: tenant.major_version,
            minor: tenant.minor_version,
        }
    }

    fn read(self) -> Tenant {
        Tenant {
            id: self.id,
            region: self.region,
            major_version: self.major,
            minor_version: self.minor,
        }
    }
}

pub fn encode(drop: &Drop) -> String {
    serde_json::to_string(&record_of(drop)).expect("a drop record always serializes")
}

fn record_of(drop: &Drop) -> DropRecord {
    let spec = &drop.spec;
    DropRecord {
        id: drop.id.get(),
        tenant: TenantRecord::of(&drop.tenant),
        world: drop.location.world_id,
        channel: drop.location.channel_id,
        map: drop.location.map_id,
        instance: drop.location.instance,
        item: spec.contents.item_id(),
        equipment: spec.contents.equipment_id(),
        quantity: spec.contents.quantity(),
        meso: spec.contents.meso(),
        stats: spec.contents.stats().0,
        drop_type: spec.drop_type,
        x: spec.position.x,
        y: spec.position.y,
        owner: spec.owner_id,
        party: spec.owner_party_id,
        dropper: spec.dropper.id,
        dropper_x: spec.dropper.position.x,
        dropper_y: spec.dropper.position.y,
        player: spec.player_drop,
        mod_: spec.mod_,
        at: drop.dropped_at.0,
        transaction: drop.transaction_id,
        env: drop.environment.as_deref().map(str::to_owned),
        awarded: drop.meso_awarded,
        held: match drop.status {
            Status::Available => None,
            Status::Reserved(held) => Some(ReservationRecord {
                character: held.character_id,
                pet: held.pet_slot,
                at: held.reserved_at.0,
            }),
        },
    }
}

/// Reads a record back; `Err` names what is wrong with one no version of us wrote.
pub fn decode(text: &[u8]) -> Result<Drop, String> {
    read(serde_json::from_slice(text).map_err(|error| format!("drop record: {error}"))?)
}

fn read(record: DropRecord) -> Result<Drop, String> {
    let id = DropId::new(record.id).ok_or_else(|| format!("drop record: id {}", record.id))?;
    let contents = Contents::new(record.item, record.equipment, record.quantity, record.meso)
        .map_err(|error| format!("drop record {id}: {error}"))?
        .with_stats(EquipmentStats(record.stats));
    Ok(Drop {
        id,
        tenant: Arc::new(record.tenant.read()),
        location: Location {
            world_id: record.world,
            channel_id: record.channel,
            map_id: record.map,
            instance: record.instance,
        },
        spec: DropSpec {
            contents,
            drop_type: record.drop_type,
            position: Point {
                x: record.x,
                y: record.y,
            },
            owner_id: record.owner,
            owner_party_id: record.party,
            dropper: Dropper {
                id: record.dropper,
                position: Point {
                    x: record.dropper_x,
                    y: record.dropper_y,
                },
            },
            player_drop: record.player,
            mod_: record.mod_,
        },
        dropped_at: Millis(record.at),
        transaction_id: record.transaction,
        environment: record.env.map(Into::into),
        meso_awarded: record.awarded,
        status: match record.held {
            None => Status::Available,
            Some(held) => Status::Reserved(Reservation {
                character_id: held.character,
                pet_slot: held.pet,
                reserved_at: Millis(held.at),
            }),
        },
    })
}

#[derive(Serialize, Deserialize)]
struct ContentsRecord {
    item: u32,
    equipment: u32,
    quantity: u32,
    meso: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    stats: [u16; 16],
}

impl ContentsRecord {
    fn of(contents: Contents) -> ContentsRecord {
        ContentsRecord {
            item: contents.item_id(),
            equipment: contents.equipment_id(),
            quantity: contents.quantity(),
            meso: contents.meso(),
            stats: contents.stats().0,
        }
    }

    fn read(self) -> Result<Contents, String> {
        Contents::new(self.item, self.equipment, self.quantity, self.meso)
            .map(|contents| contents.with_stats(EquipmentStats(self.stats)))
            .map_err(|error| format!("event record: {error}"))
    }
}

#[derive(Serialize, Deserialize)]
enum KindRecord {
    /// The drop as it was created (its record carries the spec and the time).
    Created(Box<DropRecord>),
    Expired {
        equipment: u32,
    },
    PickedUp {
        character: u32,
        contents: ContentsRecord,
        pet: i8,
    },
    Reserved {
        character: u32,
        contents: ContentsRecord,
    },
    Consumed {
        equipment: u32,
    },
    MesoAwarded {
        character: u32,
        amount: u32,
        picker: bool,
    },
    ReservationFailure {
        character: u32,
        /// The refusal's name (`Refusal::name`); none for a cancel's answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
    },
}

/// An event waiting in the outbox.
#[derive(Serialize, Deserialize)]
struct EventRecord {
    tenant: TenantRecord,
    world: u8,
    channel: u8,
    map: u32,
    #[serde(default, skip_serializing_if = "Uuid::is_nil")]
    instance: Uuid,
    drop: u32,
    transaction: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracestate: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    kind: KindRecord,
}

pub fn encode_event(event: &Event) -> String {
    let kind = match &event.kind {
        EventKind::Created { spec, dropped_at } => {
            let drop = Drop {
                id: DropId::new(event.drop_id).expect("a created drop has a valid id"),
                tenant: event.tenant.clone(),
                location: event.location,
                spec: *spec,
                dropped_at: *dropped_at,
                transaction_id: event.correlation.transaction_id,
                environment: event.correlation.environment.clone(),
                meso_awarded: false,
                status: Status::Available,
            };
            KindRecord::Created(Box::new(record_of(&drop)))
        }
        EventKind::Expired { equipment_id } => KindRecord::Expired {
            equipment: *equipment_id,
        },
        EventKind::Consumed { equipment_id } => KindRecord::Consumed {
            equipment: *equipment_id,
        },
        EventKind::MesoAwarded {
            character_id,
            amount,
            picker,
        } => KindRecord::MesoAwarded {
            character: *character_id,
            amount: *amount,
            picker: *picker,
        },
        EventKind::PickedUp {
            character_id,
            contents,
            pet_slot,
        } => KindRecord::PickedUp {
            character: *character_id,
            contents: ContentsRecord::of(*contents),
            pet: *pet_slot,
        },
        EventKind::Reserved {
            character_id,
            contents,
        } => KindRecord::Reserved {
            character: *character_id,
            contents: ContentsRecord::of(*contents),
        },
        EventKind::ReservationFailure {
            character_id,
            refused,
        } => KindRecord::ReservationFailure {
            character: *character_id,
            refused: refused.map(|refusal| refusal.name().to_owned()),
        },
    };
    let record = EventRecord {
        tenant: TenantRecord::of(&event.tenant),
        world: event.location.world_id,
        channel: event.location.channel_id,
        map: event.location.map_id,
        instance: event.location.instance,
        drop: event.drop_id,
        transaction: event.correlation.transaction_id,
        traceparent: event.correlation.traceparent.clone(),
        tracestate: event.correlation.tracestate.clone(),
        env: event.correlation.environment.as_deref().map(str::to_owned),
        kind,
    };
    serde_json::to_string(&record).expect("an event record always serializes")
}

/// Reads an outbox entry back; `Err` names what is wrong with one no version of us wrote.
pub fn decode_event(text: &[u8]) -> Result<Event, String> {
    let record: EventRecord =
        serde_json::from_slice(text).map_err(|error| format!("event record: {error}"))?;
    let kind = match record.kind {
        KindRecord::Created(drop) => {
            let drop = read(*drop)?;
            EventKind::Created {
                spec: drop.spec,
                dropped_at: drop.dropped_at,
            }
        }
        KindRecord::Expired { equipment } => EventKind::Expired {
            equipment_id: equipment,
        },
        KindRecord::Consumed { equipment } => EventKind::Consumed {
            equipment_id: equipment,
        },
        KindRecord::MesoAwarded {
            character,
            amount,
            picker,
        } => EventKind::MesoAwarded {
            character_id: character,
            amount,
            picker,
        },
        KindRecord::PickedUp {
            character,
            contents,
            pet,
        } => EventKind::PickedUp {
            character_id: character,
            contents: contents.read()?,
            pet_slot: pet,
        },
        KindRecord::Reserved {
            character,
            contents,
        } => EventKind::Reserved {
            character_id: character,
            contents: contents.read()?,
        },
        KindRecord::ReservationFailure { character, refused } => EventKind::ReservationFailure {
            character_id: character,
            refused: match refused {
                None => None,
                Some(name) => Some(
                    Refusal::parse(&name).ok_or_else(|| format!("event record: refusal {name}"))?,
                ),
            },
        },
    };
    Ok(Event {
        tenant: Arc::new(record.tenant.read()),
        location: Location {
            world_id: record.world,
            channel_id: record.channel,
            map_id: record.map,
            instance: record.instance,
        },
        drop_id: record.drop,
        correlation: Correlation {
            transaction_id: record.transaction,
            traceparent: record.traceparent,
            tracestate: record.tracestate,
            environment: record.env.map(Into::into),
        },
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drop::award::MesoAward;
    use crate::drop::model::TenantRef;

    fn drop() -> Drop {
        let tenant: TenantRef = Arc::new(Tenant {
            id: Uuid::from_u128(7),
            region: "Ünï}".into(),
            major_version: 83,
            minor_version: 1,
        });
        Drop {
            id: DropId::LAST,
            tenant,
            location: Location {
                world_id: 1,
                channel_id: 2,
                map_id: 100_000_000,
                instance: Uuid::from_u128(0xabc),
            },
            spec: DropSpec {
                contents: Contents::new(1_302_000, 77, 1, 0)
                    .unwrap()
                    .with_stats(EquipmentStats(std::array::from_fn(|i| i as u16 * 1000))),
                drop_type: 1,
                position: Point { x: -5, y: 9 },
                owner_id: 3,
                owner_party_id: 4,
                dropper: Dropper {
                    id: 5,
                    position: Point { x: 6, y: -7 },
                },
                player_drop: true,
                mod_: 2,
            },
            dropped_at: Millis(1_000),
            transaction_id: Uuid::from_u128(9),
            environment: Some("preview-7".into()),
            meso_awarded: true,
            status: Status::Available,
        }
    }

    /// Records written before instances, inline stats and environments read as the nil
    /// instance, no stats and no environment: a rolling upgrade finds its drops as they were.
    #[test]
    fn records_of_the_version_before_instances_are_read() {
        let before = r#"{"id":1000000001,"tenant":{"id":"00000000-0000-0000-0000-000000000007","region":"GMS","major":83,"minor":1},"world":1,"channel":2,"map":100000000,"item":2000000,"equipment":0,"quantity":1,"meso":0,"type":2,"x":0,"y":0,"owner":0,"party":0,"dropper":0,"dropper_x":0,"dropper_y":0,"player":false,"mod":0,"at":1000,"transaction":"00000000-0000-0000-0000-000000000009"}"#;
        let drop = decode(before.as_bytes()).unwrap();
        assert!(drop.location.instance.is_nil());
        assert!(drop.spec.contents.stats().is_zero());
        assert_eq!(drop.environment, None);
        assert_eq!(encode(&drop), before, "the same record written back");
        let event = r#"{"tenant":{"id":"00000000-0000-0000-0000-000000000007","region":"GMS","major":83,"minor":1},"world":1,"channel":2,"map":100000000,"drop":1000000001,"transaction":"00000000-0000-0000-0000-000000000009","kind":{"Expired":{"equipment":0}}}"#;
        let event = decode_event(event.as_bytes()).unwrap();
        assert!(event.location.instance.is_nil());
        assert_eq!(event.correlation.environment, None);
    }

    #[test]
    fn every_kind_of_event_comes_back_from_the_outbox_as_it_went_in() {
        let drop = drop();
        let traced = Correlation {
            transaction_id: Uuid::from_u128(11),
            traceparent: Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
            tracestate: Some(vec![0xff, 0, b'x']),
            environment: Some("main".into()),
        };
        let failure = Event {
            kind: EventKind::ReservationFailure {
                character_id: 8,
                refused: Some(Refusal::OutOfRange),
            },
            drop_id: 12,
            ..Event::expired(&drop)
        };
        let events = [
            Event::created(&drop, traced.clone()),
            Event::reserved(&drop, traced.clone(), 8),
            Event::picked_up(&drop, Correlation::default(), 8, 2),
            Event::expired(&drop),
            Event::consumed(&drop, traced.clone()),
            Event::meso_awarded(
                &drop,
                traced.clone(),
                MesoAward {
                    character_id: 8,
                    amount: 250,
                    picker: true,
                },
            ),
            failure,
        ];
        for event in events {
            let text = encode_event(&event);
            assert_eq!(decode_event(text.as_bytes()), Ok(event), "{text}");
        }
        assert!(decode_event(b"{}").is_err());
        let record = encode(&drop);
        assert_eq!(decode(record.as_bytes()), Ok(drop));
    }
}
