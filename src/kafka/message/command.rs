//! Decoding of commands from `COMMAND_TOPIC_DROP`: JSON value plus tenant headers in, a domain
//! `Command` or a `Rejection` with its reason out. Never panics, whatever the bytes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rdkafka::message::Headers;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::headers::{parse_environment, parse_tenant, parse_trace};
use super::stats::StatsWire;
use crate::drop::command::{
    Action, CharacterRequest, Command, CommandType, DropRequest, RejectionClass, ReserveRequest,
};
use crate::drop::model::{Contents, Correlation, DropSpec, Dropper, Location, Point};

/// Why a command cannot be applied (contract §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The command's type, when it could be read.
    pub command_type: Option<CommandType>,
    pub class: RejectionClass,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.name(), self.reason)
    }
}

fn reject(class: RejectionClass, reason: impl Into<String>) -> Rejection {
    Rejection {
        command_type: None,
        class,
        reason: reason.into(),
    }
}

/// Every command's envelope; the body is parsed once its type is known.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    /// Missing or null reads as the nil UUID, echoed as such.
    #[serde(default)]
    transaction_id: Option<Uuid>,
    #[serde(default)]
    world_id: u8,
    #[serde(default)]
    channel_id: u8,
    #[serde(default)]
    map_id: u32,
    /// Missing or null: the nil UUID, a map that is not instanced (contract-head §1).
    #[serde(default)]
    instance: Option<Uuid>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    body: Option<&'a RawValue>,
}

/// The body of `SPAWN` and `SPAWN_FROM_CHARACTER` (the first simply never sends `equipmentId`),
/// and the newer peers' sixteen stats flattened after the other fields (contract-head §2).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SpawnBody {
    item_id: u32,
    equipment_id: u32,
    quantity: u32,
    mesos: u32,
    drop_type: u8,
    x: i16,
    y: i16,
    owner_id: u32,
    owner_party_id: u32,
    dropper_id: u32,
    dropper_x: i16,
    dropper_y: i16,
    player_drop: bool,
    #[serde(rename = "mod")]
    mod_: u8,
    #[serde(flatten)]
    stats: StatsWire,
}

#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ReservationBody {
    drop_id: u32,
    character_id: u32,
    character_x: i16,
    character_y: i16,
    pet_slot: i8,
    party_id: u32,
}

impl Default for ReservationBody {
    /// A missing `petSlot` means a manual pick-up, -1 (contract §2).
    fn default() -> Self {
        ReservationBody {
            drop_id: 0,
            character_id: 0,
            character_x: 0,
            character_y: 0,
            pet_slot: -1,
            party_id: 0,
        }
    }
}

/// The body of `CANCEL_RESERVATION` and `REQUEST_PICK_UP` (and of `CONSUME`, which names only
/// the drop).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CharacterBody {
    drop_id: u32,
    character_id: u32,
}

impl From<CharacterBody> for CharacterRequest {
    fn from(body: CharacterBody) -> CharacterRequest {
        CharacterRequest {
            drop_id: body.drop_id,
            character_id: body.character_id,
        }
    }
}

/// serde would also read a struct from a JSON array, by position: the contract has objects only.
fn require_object(json: &[u8], what: &str) -> Result<(), Rejection> {
    match json.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(reject(
            RejectionClass::Malformed,
            format!("{what} must be a JSON object"),
        )),
    }
}

fn body<'de, T: Deserialize<'de> + Default>(raw: Option<&'de RawValue>) -> Result<T, Rejection> {
    match raw {
        None => Ok(T::default()),
        Some(raw) => {
            require_object(raw.get().as_bytes(), "body")?;
            serde_json::from_str(raw.get())
                .map_err(|error| reject(RejectionClass::Malformed, format!("body: {error}")))
        }
    }
}

fn spawn(body: SpawnBody) -> Result<Action, Rejection> {
    let contents = Contents::new(body.item_id, body.equipment_id, body.quantity, body.mesos)
        .map_err(|reason| reject(RejectionClass::Contents, reason))?
        .with_stats(body.stats.into());
    Ok(Action::Spawn(DropSpec {
        contents,
        drop_type: body.drop_type,
        position: Point {
            x: body.x,
            y: body.y,
        },
        owner_id: body.owner_id,
        owner_party_id: body.owner_party_id,
        dropper: Dropper {
            id: body.dropper_id,
            position: Point {
                x: body.dropper_x,
                y: body.dropper_y,
            },
        },
        player_drop: body.player_drop,
        mod_: body.mod_,
    }))
}

fn action(kind: CommandType, raw: Option<&RawValue>) -> Result<Action, Rejection> {
    match kind {
        CommandType::Spawn | CommandType::SpawnFromCharacter => spawn(body(raw)?),
        CommandType::RequestReservation => {
            let body: ReservationBody = body(raw)?;
            Ok(Action::OnDrop(DropRequest::Reserve(ReserveRequest {
                drop_id: body.drop_id,
                character_id: body.character_id,
                position: Point {
                    x: body.character_x,
                    y: body.character_y,
                },
                pet_slot: body.pet_slot,
                party_id: body.party_id,
                present: Some(Vec::new()),
            })))
        }
        CommandType::CancelReservation => Ok(Action::OnDrop(DropRequest::CancelReservation(
            body::<CharacterBody>(raw)?.into(),
        ))),
        CommandType::RequestPickUp => Ok(Action::OnDrop(DropRequest::PickUp(
            body::<CharacterBody>(raw)?.into(),
        ))),
        CommandType::Consume => Ok(Action::OnDrop(DropRequest::Consume {
            drop_id: body::<CharacterBody>(raw)?.drop_id,
        })),
    }
}

/// Decodes one record of the command topic into its wire type and the domain command.
pub fn decode(
    payload: Option<&[u8]>,
    headers: Option<&impl Headers>,
) -> Result<(CommandType, Command), Rejection> {
    let payload = payload.ok_or_else(|| reject(RejectionClass::Malformed, "empty value"))?;
    require_object(payload, "the value")?;
    let envelope: Envelope = serde_json::from_slice(payload)
        .map_err(|error| reject(RejectionClass::Malformed, error.to_string()))?;
    let kind = CommandType::parse(&envelope.kind).ok_or_else(|| {
        reject(
            RejectionClass::UnknownType,
            format!("unknown command type {:?}", envelope.kind),
        )
    })?;
    let of_kind = |rejection| Rejection {
        command_type: Some(kind),
        ..rejection
    };
    let action = action(kind, envelope.body).map_err(of_kind)?;
    let tenant =
        parse_tenant(headers).map_err(|reason| of_kind(reject(RejectionClass::Header, reason)))?;
    let mut correlation = Correlation {
        transaction_id: envelope.transaction_id.unwrap_or_default(),
        ..Correlation::default()
    };
    parse_trace(headers, &mut correlation);
    correlation.environment = parse_environment(headers)
        .map_err(|reason| of_kind(reject(RejectionClass::Header, reason)))?;
    let command = Command {
        tenant: Arc::new(tenant),
        location: Location {
            world_id: envelope.world_id,
            channel_id: envelope.channel_id,
            map_id: envelope.map_id,
            instance: envelope.instance.unwrap_or_default(),
        },
        correlation,
        action,
    };
    Ok((kind, command))
}

#[cfg(test)]
mod tests;
