//! Commands as the domain sees them: already parsed, every value in range.

use super::model::{Correlation, DropSpec, Location, Point, TenantRef};

/// One command from the bus, addressed to a tenant and a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub tenant: TenantRef,
    pub location: Location,
    pub correlation: Correlation,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `SPAWN` and `SPAWN_FROM_CHARACTER` create a drop alike; only the peer differs.
    Spawn(DropSpec),
    /// A command on a drop it names by id.
    OnDrop(DropRequest),
}

/// What a command asks of a drop it names (`drop::transition` decides it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropRequest {
    Reserve(ReserveRequest),
    CancelReservation(CharacterRequest),
    PickUp(CharacterRequest),
    /// `CONSUME` (contract-head §3): a reactor or a skill destroys the drop, crediting nobody.
    Consume {
        drop_id: u32,
    },
}

impl DropRequest {
    /// The drop named, as sent: an id outside our range names no drop.
    pub fn drop_id(&self) -> u32 {
        match self {
            DropRequest::Reserve(request) => request.drop_id,
            DropRequest::CancelReservation(request) | DropRequest::PickUp(request) => {
                request.drop_id
            }
            DropRequest::Consume { drop_id } => *drop_id,
        }
    }
}

/// `REQUEST_RESERVATION`: character (or their pet) asks to take a drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReserveRequest {
    /// As sent: an id outside our range simply names no drop, and the failure event echoes it.
    pub drop_id: u32,
    pub character_id: u32,
    pub position: Point,
    /// -1 for a manual pick-up, the pet's slot for a pet's (pets are not range-checked).
    pub pet_slot: i8,
    /// The character's current party, 0 for none.
    pub party_id: u32,
    /// The members of the character's party who are online where the reservation is made, as
    /// the party service told (contract-head §4); empty when there is no party service or it
    /// could not say: a meso drop's share then goes to the picker alone. `None`: not asked yet,
    /// though a party service is there; a reservation that would share a meso drop out is then
    /// not decided (`Refusal::PartyNotAsked`) until it is.
    pub present: Option<Vec<u32>>,
}

/// `CANCEL_RESERVATION` and `REQUEST_PICK_UP`: a character acting on a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CharacterRequest {
    pub drop_id: u32,
    pub character_id: u32,
}

/// The `type` of a command on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandType {
    Spawn,
    SpawnFromCharacter,
    RequestReservation,
    CancelReservation,
    RequestPickUp,
    Consume,
}

impl CommandType {
    /// Every type, in declaration order (`kind as usize` indexes it).
    pub const ALL: [CommandType; 6] = [
        CommandType::Spawn,
        CommandType::SpawnFromCharacter,
        CommandType::RequestReservation,
        CommandType::CancelReservation,
        CommandType::RequestPickUp,
        CommandType::Consume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CommandType::Spawn => "SPAWN",
            CommandType::SpawnFromCharacter => "SPAWN_FROM_CHARACTER",
            CommandType::RequestReservation => "REQUEST_RESERVATION",
            CommandType::CancelReservation => "CANCEL_RESERVATION",
            CommandType::RequestPickUp => "REQUEST_PICK_UP",
            CommandType::Consume => "CONSUME",
        }
    }

    pub fn parse(name: &str) -> Option<CommandType> {
        CommandType::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// Why a command cannot be applied, as it is counted (contract §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectionClass {
    /// A missing or malformed tenant header.
    Header,
    /// Not JSON, or JSON of the wrong shape, type or range.
    Malformed,
    /// A `type` this service does not know.
    UnknownType,
    /// A spawn with neither item nor meso, or both.
    Contents,
    /// An equip spawn whose equipment the equipment service would not create in time.
    Equipment,
}

impl RejectionClass {
    /// Every class, in declaration order (`class as usize` indexes it).
    pub const ALL: [RejectionClass; 5] = [
        RejectionClass::Header,
        RejectionClass::Malformed,
        RejectionClass::UnknownType,
        RejectionClass::Contents,
        RejectionClass::Equipment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RejectionClass::Header => "bad_header",
            RejectionClass::Malformed => "malformed",
            RejectionClass::UnknownType => "unknown_type",
            RejectionClass::Contents => "bad_contents",
            RejectionClass::Equipment => "equipment_unavailable",
        }
    }
}
