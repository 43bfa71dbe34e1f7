//! Commands as peers send them, and the event key of a drop.

use serde_json::{json, Value};
use uuid::Uuid;

pub fn transaction() -> String {
    Uuid::new_v4().to_string()
}

/// A command envelope for map (world 1, channel 2, `map`).
pub fn command(kind: &str, map: u32, body: Value) -> Value {
    json!({
        "transactionId": transaction(),
        "worldId": 1,
        "channelId": 2,
        "mapId": map,
        "type": kind,
        "body": body,
    })
}

/// A monster's item drop, free for all, at (100, 50).
pub fn spawn_item(map: u32, item_id: u32) -> Value {
    command(
        "SPAWN",
        map,
        json!({
            "itemId": item_id, "quantity": 3, "mesos": 0, "dropType": 2,
            "x": 100, "y": 50, "ownerId": 0, "ownerPartyId": 0,
            "dropperId": 9300018, "dropperX": 90, "dropperY": 40, "playerDrop": false, "mod": 1
        }),
    )
}

pub fn reserve(map: u32, drop_id: u64, character_id: u32) -> Value {
    command(
        "REQUEST_RESERVATION",
        map,
        json!({"dropId": drop_id, "characterId": character_id, "characterX": 120, "characterY": 50, "petSlot": -1}),
    )
}

pub fn pick_up(map: u32, drop_id: u64, character_id: u32) -> Value {
    command(
        "REQUEST_PICK_UP",
        map,
        json!({"dropId": drop_id, "characterId": character_id}),
    )
}

pub fn cancel(map: u32, drop_id: u64, character_id: u32) -> Value {
    command(
        "CANCEL_RESERVATION",
        map,
        json!({"dropId": drop_id, "characterId": character_id}),
    )
}

/// The event key of a drop: its id little-endian in bytes 0–3, zeros after.
pub fn key_of(drop_id: u64) -> Vec<u8> {
    let mut key = (drop_id as u32).to_le_bytes().to_vec();
    key.extend([0; 4]);
    key
}
