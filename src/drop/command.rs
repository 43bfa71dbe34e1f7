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
    Reserve(ReserveRequest),
    CancelReservation(CharacterRequest),
    PickUp(CharacterRequest),
}

/// `REQUEST_RESERVATION`: character (or their pet) asks to take a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReserveRequest {
    /// As sent: an id outside our range simply names no drop, and the failure event echoes it.
    pub drop_id: u32,
    pub character_id: u32,
    pub position: Point,
    /// -1 for a manual pick-up, the pet's slot for a pet's (pets are not range-checked).
    pub pet_slot: i8,
    /// The character's current party, 0 for none.
    pub party_id: u32,
}

/// `CANCEL_RESERVATION` and `REQUEST_PICK_UP`: a character acting on a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CharacterRequest {
    pub drop_id: u32,
    pub character_id: u32,
}
