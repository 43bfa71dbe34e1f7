//! Events as the domain produces them; `kafka::message::event` turns them into bytes.

use super::award::MesoAward;
use super::model::{Contents, Correlation, Drop, DropSpec, Location, Millis, TenantRef};
use super::rules::Refusal;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub tenant: TenantRef,
    pub location: Location,
    /// As the command named it (a failure may name a drop that does not exist).
    pub drop_id: u32,
    pub correlation: Correlation,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created {
        spec: DropSpec,
        dropped_at: Millis,
    },
    Expired {
        /// The equipment to delete with the drop (0: none). Not on the wire: `EXPIRED`'s body is empty.
        equipment_id: u32,
    },
    PickedUp {
        character_id: u32,
        contents: Contents,
        pet_slot: i8,
    },
    Reserved {
        character_id: u32,
        contents: Contents,
    },
    /// The answer to a refused reservation (`refused` names the rule), or to a cancel that
    /// freed the drop (`refused` is none).
    ReservationFailure {
        character_id: u32,
        refused: Option<Refusal>,
    },
    /// The drop destroyed by `CONSUME`; like `Expired`, it names the equipment to delete.
    Consumed {
        equipment_id: u32,
    },
    /// A share of a reserved meso drop credited to `character_id` (contract-head §4).
    MesoAwarded {
        character_id: u32,
        amount: u32,
        /// The reservation's holder: the newer character service then asks to pick it up.
        picker: bool,
    },
}

impl EventKind {
    /// The wire name of the event type.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "CREATED",
            EventKind::Expired { .. } => "EXPIRED",
            EventKind::PickedUp { .. } => "PICKED_UP",
            EventKind::Reserved { .. } => "RESERVED",
            EventKind::ReservationFailure { .. } => "RESERVATION_FAILURE",
            EventKind::Consumed { .. } => "CONSUMED",
            EventKind::MesoAwarded { .. } => "MESO_AWARDED",
        }
    }
}

impl Event {
    /// An event about an existing drop, in its location, under its tenant, in the environment
    /// the drop was created in (contract-head §6), whichever command caused it.
    pub fn about(drop: &Drop, correlation: Correlation, kind: EventKind) -> Event {
        Event {
            tenant: drop.tenant.clone(),
            location: drop.location,
            drop_id: drop.id.get(),
            correlation: Correlation {
                environment: drop.environment.clone(),
                ..correlation
            },
            kind,
        }
    }

    pub fn created(drop: &Drop, correlation: Correlation) -> Event {
        let kind = EventKind::Created {
            spec: drop.spec,
            dropped_at: drop.dropped_at,
        };
        Event::about(drop, correlation, kind)
    }

    /// `EXPIRED` carries the drop's own transaction id, from its spawn, and no trace context.
    pub fn reserved(drop: &Drop, correlation: Correlation, character_id: u32) -> Event {
        let contents = drop.spec.contents;
        let kind = EventKind::Reserved {
            character_id,
            contents,
        };
        Event::about(drop, correlation, kind)
    }

    pub fn picked_up(
        drop: &Drop,
        correlation: Correlation,
        character_id: u32,
        pet_slot: i8,
    ) -> Event {
        let kind = EventKind::PickedUp {
            character_id,
            contents: drop.spec.contents,
            pet_slot,
        };
        Event::about(drop, correlation, kind)
    }

    /// A share of `drop`'s meso, following its `RESERVED` with the reservation's correlation.
    pub fn meso_awarded(drop: &Drop, correlation: Correlation, award: MesoAward) -> Event {
        let kind = EventKind::MesoAwarded {
            character_id: award.character_id,
            amount: award.amount,
            picker: award.picker,
        };
        Event::about(drop, correlation, kind)
    }

    /// `CONSUMED` carries the command's transaction id and trace context, and the drop's
    /// location and tenant.
    pub fn consumed(drop: &Drop, correlation: Correlation) -> Event {
        let equipment_id = drop.spec.contents.equipment_id();
        Event::about(drop, correlation, EventKind::Consumed { equipment_id })
    }

    pub fn expired(drop: &Drop) -> Event {
        let correlation = Correlation {
            transaction_id: drop.transaction_id,
            ..Correlation::default()
        };
        let equipment_id = drop.spec.contents.equipment_id();
        Event::about(drop, correlation, EventKind::Expired { equipment_id })
    }
}
