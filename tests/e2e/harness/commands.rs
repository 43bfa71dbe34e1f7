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

/// The instance of a map that is not instanced, as every event carries it (contract-head §1).
pub const NIL_INSTANCE: &str = "00000000-0000-0000-0000-000000000000";

/// The sixteen stats, all 0, as `RESERVED`, `PICKED_UP` and the REST attributes end with them
/// (contract-head §2), in the contract's order.
pub const NO_STATS: &str = concat!(
    r#""strength":0,"dexterity":0,"intelligence":0,"luck":0,"hp":0,"mp":0,"#,
    r#""weaponAttack":0,"magicAttack":0,"weaponDefense":0,"magicDefense":0,"accuracy":0,"#,
    r#""avoidability":0,"hands":0,"speed":0,"jump":0,"slots":0"#
);

/// `object` with the sixteen stats, all 0, added.
pub fn with_no_stats(mut object: Value) -> Value {
    let stats: Value = serde_json::from_str(&format!("{{{NO_STATS}}}")).expect("stats");
    for (name, value) in stats.as_object().expect("an object") {
        object[name] = value.clone();
    }
    object
}
