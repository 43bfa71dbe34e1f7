//! Where drops live. Every state change is one atomic call, so that any store (in memory today,
//! Redis later) runs the same transitions of `drop::rules` without the rules knowing.
//!
//! Events are handed to `out` *inside* the atomic step: an event sink that keeps the order it
//! is called in (see `kafka::producer`) then publishes a drop's events in the order of its state
//! changes, even when its commands arrive on different partitions and are handled concurrently.

mod memory;

pub use memory::MemoryStore;

use crate::drop::command::{CharacterRequest, ReserveRequest};
use crate::drop::event::Event;
use crate::drop::model::{Correlation, Drop, DropSpec, Location, Millis, TenantRef};
use crate::drop::rules::Refusal;

/// Receives the events of a state change, in order, while the change is being made.
pub type EventOut<'a> = &'a mut dyn FnMut(Event);

/// Who is asking, where, and with which correlation to echo.
#[derive(Clone, Debug)]
pub struct Origin {
    pub tenant: TenantRef,
    pub location: Location,
    pub correlation: Correlation,
}

pub trait DropStore: Send + Sync + 'static {
    /// Creates a drop (`CREATED`), first expiring the map's oldest AVAILABLE drops (`EXPIRED`)
    /// when the map is full. Refused, with no event, when the store holds its most drops.
    fn spawn(
        &self,
        origin: &Origin,
        spec: DropSpec,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<Drop, Refusal>;

    /// Reserves a drop: `RESERVED`, or `RESERVATION_FAILURE` with the reason returned.
    fn reserve(
        &self,
        origin: &Origin,
        request: &ReserveRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal>;

    /// Cancels the requester's reservation: `RESERVATION_FAILURE` for them; nothing otherwise.
    fn cancel(
        &self,
        origin: &Origin,
        request: &CharacterRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal>;

    /// Removes a drop into a character's hands: `PICKED_UP`; nothing when refused.
    fn pick_up(
        &self,
        origin: &Origin,
        request: &CharacterRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal>;

    /// Expires the drops whose time came by `now` (reservations lapse by themselves, see
    /// `Rules::holding`). Returns how many expired. Costs what comes due, not what lies on the ground.
    fn expire_due(&self, now: Millis, out: EventOut<'_>) -> usize;

    /// Expires every drop (shutdown of a store that forgets everything). Returns how many.
    fn expire_all(&self, out: EventOut<'_>) -> usize;

    /// A drop of this tenant, by id, as it is at `now` (a lapsed reservation reads AVAILABLE).
    fn get(&self, tenant: &TenantRef, id: u32, now: Millis) -> Option<Drop>;

    /// A map's drops, sorted by id, as they are at `now`.
    fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop>;

    /// How many drops lie on all maps of all tenants, and how many of them are reserved at `now`.
    fn counts(&self, now: Millis) -> DropCounts;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub live: usize,
    pub reserved: usize,
}
