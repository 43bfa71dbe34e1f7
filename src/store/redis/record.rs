//! How a drop is written in Redis: a compact JSON record, one field of its map's hash. A wire
//! type of its own, so the domain types stay free of serde and of storage concerns.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::drop::model::{
    Contents, Drop, DropId, DropSpec, Dropper, Location, Millis, Point, Reservation, Status, Tenant,
};

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
    item: u32,
    equipment: u32,
    quantity: u32,
    meso: u32,
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
    held: Option<ReservationRecord>,
}

pub fn encode(drop: &Drop) -> String {
    let spec = &drop.spec;
    let record = DropRecord {
        id: drop.id.get(),
        tenant: TenantRecord {
            id: drop.tenant.id,
            region: drop.tenant.region.clone(),
            major: drop.tenant.major_version,
            minor: drop.tenant.minor_version,
        },
        world: drop.location.world_id,
        channel: drop.location.channel_id,
        map: drop.location.map_id,
        item: spec.contents.item_id(),
        equipment: spec.contents.equipment_id(),
        quantity: spec.contents.quantity(),
        meso: spec.contents.meso(),
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
        held: match drop.status {
            Status::Available => None,
            Status::Reserved(held) => Some(ReservationRecord {
                character: held.character_id,
                pet: held.pet_slot,
                at: held.reserved_at.0,
            }),
        },
    };
    serde_json::to_string(&record).expect("a drop record always serializes")
}

/// Reads a record back; `Err` names what is wrong with one no version of us wrote.
pub fn decode(text: &[u8]) -> Result<Drop, String> {
    let record: DropRecord =
        serde_json::from_slice(text).map_err(|error| format!("drop record: {error}"))?;
    let id = DropId::new(record.id).ok_or_else(|| format!("drop record: id {}", record.id))?;
    let contents = Contents::new(record.item, record.equipment, record.quantity, record.meso)
        .map_err(|error| format!("drop record {id}: {error}"))?;
    Ok(Drop {
        id,
        tenant: Arc::new(Tenant {
            id: record.tenant.id,
            region: record.tenant.region,
            major_version: record.tenant.major,
            minor_version: record.tenant.minor,
        }),
        location: Location {
            world_id: record.world,
            channel_id: record.channel,
            map_id: record.map,
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
