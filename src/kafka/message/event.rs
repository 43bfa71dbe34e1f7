//! Encoding of events for `EVENT_TOPIC_DROP_STATUS`: key, JSON value and headers exactly as the
//! peers read them (kafka.md, contract §2).

use rdkafka::message::{Header, OwnedHeaders};
use serde::Serialize;
use uuid::Uuid;

use super::headers::{event_headers, REFUSAL_REASON};
use super::stats::StatsWire;
use crate::drop::event::{Event, EventKind};
use crate::drop::model::{Contents, Millis};

/// Field order is the contract's: `transactionId, worldId, channelId, mapId, instance, dropId,
/// type, body` (contract-head §1: every event carries `instance`, the nil UUID for a map that is
/// not instanced; older peers ignore it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    transaction_id: Uuid,
    world_id: u8,
    channel_id: u8,
    map_id: u32,
    instance: Uuid,
    drop_id: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    body: Body,
}

#[derive(Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum Body {
    Created {
        item_id: u32,
        quantity: u32,
        meso: u32,
        #[serde(rename = "type")]
        drop_type: u8,
        x: i16,
        y: i16,
        owner_id: u32,
        owner_party_id: u32,
        drop_time: String,
        dropper_unique_id: u32,
        dropper_x: i16,
        dropper_y: i16,
        player_drop: bool,
    },
    Expired {},
    PickedUp {
        character_id: u32,
        item_id: u32,
        equipment_id: u32,
        quantity: u32,
        meso: u32,
        pet_slot: i8,
        #[serde(flatten)]
        stats: StatsWire,
    },
    Reserved {
        character_id: u32,
        item_id: u32,
        equipment_id: u32,
        quantity: u32,
        meso: u32,
        #[serde(flatten)]
        stats: StatsWire,
    },
    ReservationFailure {
        character_id: u32,
    },
    Consumed {},
    MesoAwarded {
        character_id: u32,
        amount: u32,
        picker: bool,
    },
}

fn body(kind: &EventKind) -> Body {
    let contents = |c: &Contents| (c.item_id(), c.equipment_id(), c.quantity(), c.meso());
    match kind {
        EventKind::Created { spec, dropped_at } => Body::Created {
            item_id: spec.contents.item_id(),
            quantity: spec.contents.quantity(),
            meso: spec.contents.meso(),
            drop_type: spec.drop_type,
            x: spec.position.x,
            y: spec.position.y,
            owner_id: spec.owner_id,
            owner_party_id: spec.owner_party_id,
            drop_time: rfc3339(*dropped_at),
            dropper_unique_id: spec.dropper.id,
            dropper_x: spec.dropper.position.x,
            dropper_y: spec.dropper.position.y,
            player_drop: spec.player_drop,
        },
        EventKind::Expired { .. } => Body::Expired {},
        EventKind::Consumed { .. } => Body::Consumed {},
        EventKind::PickedUp {
            character_id,
            contents: held,
            pet_slot,
        } => {
            let (item_id, equipment_id, quantity, meso) = contents(held);
            Body::PickedUp {
                character_id: *character_id,
                item_id,
                equipment_id,
                quantity,
                meso,
                pet_slot: *pet_slot,
                stats: held.stats().into(),
            }
        }
        EventKind::Reserved {
            character_id,
            contents: held,
        } => {
            let (item_id, equipment_id, quantity, meso) = contents(held);
            Body::Reserved {
                character_id: *character_id,
                item_id,
                equipment_id,
                quantity,
                meso,
                stats: held.stats().into(),
            }
        }
        EventKind::ReservationFailure { character_id, .. } => Body::ReservationFailure {
            character_id: *character_id,
        },
        EventKind::MesoAwarded {
            character_id,
            amount,
            picker,
        } => Body::MesoAwarded {
            character_id: *character_id,
            amount: *amount,
            picker: *picker,
        },
    }
}

/// The JSON value of an event.
pub fn encode_value(event: &Event) -> Vec<u8> {
    let envelope = Envelope {
        transaction_id: event.correlation.transaction_id,
        world_id: event.location.world_id,
        channel_id: event.location.channel_id,
        map_id: event.location.map_id,
        instance: event.location.instance,
        drop_id: event.drop_id,
        kind: event.kind.name(),
        body: body(&event.kind),
    };
    serde_json::to_vec(&envelope).expect("events always serialize")
}

/// The headers of an event: its tenant's and its trace context (`event_headers`), and on a
/// refused reservation's `RESERVATION_FAILURE` the rule that refused it (`REFUSAL_REASON`, e.g.
/// `out_of_range`; peers ignore headers they do not know).
pub fn encode_headers(event: &Event) -> OwnedHeaders {
    let headers = event_headers(&event.tenant, &event.correlation);
    match event.kind {
        EventKind::ReservationFailure {
            refused: Some(refusal),
            ..
        } => headers.insert(Header {
            key: REFUSAL_REASON,
            value: Some(refusal.name()),
        }),
        _ => headers,
    }
}

/// The key of every event: the drop id, little-endian, in 8 bytes (contract §2).
pub fn encode_key(drop_id: u32) -> [u8; 8] {
    let mut key = [0; 8];
    key[..4].copy_from_slice(&drop_id.to_le_bytes());
    key
}

/// RFC 3339 in UTC with a `Z`, fractional seconds trimmed of trailing zeros.
pub fn rfc3339(at: Millis) -> String {
    let seconds = at.0 / 1000;
    let millis = at.0 % 1000;
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if millis != 0 {
        let fraction = format!(".{millis:03}");
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
