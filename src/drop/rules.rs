//! The rules of a drop's life (contract §5) as plain functions over plain data.
//!
//! No clock, no I/O: every store runs the same decisions, so a Redis store and the in-memory
//! store cannot disagree on who may take a drop.

use std::fmt;

use super::command::{CharacterRequest, ReserveRequest};
use super::model::{Drop, Location, Millis, Point, Reservation, Status};

/// The tunable numbers of the rules (contract §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// How long an AVAILABLE drop lies before it expires; 0 = never.
    pub expire_ms: u64,
    /// How long a reservation holds before the drop returns to AVAILABLE; 0 = never.
    pub reservation_timeout_ms: u64,
    /// How long only the owner (or their party) may take a drop.
    pub ownership_ms: u64,
    /// Most drops a map holds; 0 = no limit.
    pub map_drop_limit: usize,
    /// Largest |dx| between character and drop; 0 = not checked.
    pub pickup_range_x: u16,
    /// Largest |dy| between character and drop; 0 = not checked.
    pub pickup_range_y: u16,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            expire_ms: 180_000,
            reservation_timeout_ms: 30_000,
            ownership_ms: 15_000,
            map_drop_limit: 200,
            pickup_range_x: 800,
            pickup_range_y: 600,
        }
    }
}

/// Why a command changed nothing. Every refusal is logged and counted by its `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No such drop for this tenant (or the id is outside the id range).
    UnknownDrop,
    /// The drop lies in another world, channel or map than the command names.
    WrongMap,
    /// Another character holds the drop.
    HeldByOther,
    /// The character already holds the drop: one reservation, one `RESERVED`.
    AlreadyHeld,
    /// Within the ownership window and neither the owner nor the owner's party.
    NotPermitted,
    /// The character stands too far from the drop.
    OutOfRange,
    /// A cancel by a character that holds no reservation on the drop.
    NotHolder,
    /// A spawn while the store holds its most drops: memory stays bounded under a flood.
    StoreFull,
    /// A store that records applied commands (the shared one) met this command again: it took
    /// effect before (perhaps on another instance, perhaps before a crash), so nothing is done.
    AlreadyApplied,
    /// Not decided yet: the reservation would share a meso drop out, and the party service
    /// was not asked (`ReserveRequest::present`). Nothing is written or recorded; the handler
    /// asks it, beside the partition, and applies the command again.
    PartyNotAsked,
}

impl Refusal {
    /// Every refusal, in declaration order (`refusal as usize` indexes it).
    pub const ALL: [Refusal; 10] = [
        Refusal::UnknownDrop,
        Refusal::WrongMap,
        Refusal::HeldByOther,
        Refusal::AlreadyHeld,
        Refusal::NotPermitted,
        Refusal::OutOfRange,
        Refusal::NotHolder,
        Refusal::StoreFull,
        Refusal::AlreadyApplied,
        Refusal::PartyNotAsked,
    ];

    /// The refusal `name` names.
    pub fn parse(name: &str) -> Option<Refusal> {
        Refusal::ALL
            .into_iter()
            .find(|refusal| refusal.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownDrop => "unknown_drop",
            Refusal::WrongMap => "wrong_map",
            Refusal::HeldByOther => "held_by_other",
            Refusal::AlreadyHeld => "already_held",
            Refusal::NotPermitted => "not_permitted",
            Refusal::OutOfRange => "out_of_range",
            Refusal::NotHolder => "not_holder",
            Refusal::StoreFull => "store_full",
            Refusal::AlreadyApplied => "already_applied",
            Refusal::PartyNotAsked => "party_not_asked",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the expiry sweep must do with a drop whose time came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Remove it with `EXPIRED`.
    Expire,
    /// Nothing yet: look again at this time.
    At(Millis),
    /// Nothing will ever come due.
    Never,
}

/// Who holds a drop at a given time. A reservation lapses by itself once its time is up. Its
/// holder was credited when `RESERVED` went out, so nobody else may ever be credited for the
/// drop: a lapsed drop is gone (contract §5). Every command finds no drop, readers do not see
/// it, and the expiry sweep removes it with `EXPIRED` (its deadline entry is the lapse).
/// Lapsing needs no step of its own for commands and readers to agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    Free,
    Held(Reservation),
    Lapsed(Reservation),
}

impl Rules {
    /// Who may take a drop (contract §5): anyone when it is a player drop, has no owner, is
    /// free for all (type 2 or 3) or has lain out the ownership window; before that the owner,
    /// and for type 1 also the owner's party.
    pub fn may_take(&self, drop: &Drop, character_id: u32, party_id: u32, now: Millis) -> bool {
        let spec = &drop.spec;
        let free_for_all = spec.player_drop
            || spec.owner_id == 0
            || matches!(spec.drop_type, 2 | 3)
            || now.since(drop.dropped_at) >= self.ownership_ms;
        free_for_all
            || character_id == spec.owner_id
            || (spec.drop_type == 1 && party_id != 0 && party_id == spec.owner_party_id)
    }

    /// Pets (`pet_slot` ≥ 0) reach anything; characters reach what lies within the range.
    pub fn in_range(&self, drop: &Drop, position: Point, pet_slot: i8) -> bool {
        let within = |range: u16, a: i16, b: i16| {
            range == 0 || (i32::from(a) - i32::from(b)).unsigned_abs() <= u32::from(range)
        };
        pet_slot >= 0
            || (within(self.pickup_range_x, position.x, drop.spec.position.x)
                && within(self.pickup_range_y, position.y, drop.spec.position.y))
    }

    /// Who holds the drop at `now`.
    pub fn holding(&self, drop: &Drop, now: Millis) -> Holding {
        match drop.status {
            Status::Available => Holding::Free,
            Status::Reserved(held) => {
                let lapsed = self.reservation_timeout_ms != 0
                    && now.since(held.reserved_at) >= self.reservation_timeout_ms;
                if lapsed {
                    Holding::Lapsed(held)
                } else {
                    Holding::Held(held)
                }
            }
        }
    }

    /// Whether the drop is AVAILABLE at `now`.
    pub fn is_available(&self, drop: &Drop, now: Millis) -> bool {
        self.holding(drop, now) == Holding::Free
    }

    /// Whether a character holds the drop at `now`.
    pub fn is_held(&self, drop: &Drop, now: Millis) -> bool {
        matches!(self.holding(drop, now), Holding::Held(_))
    }

    /// Whether the drop is gone at `now` although the sweep has not yet removed it.
    pub fn has_lapsed(&self, drop: &Drop, now: Millis) -> bool {
        matches!(self.holding(drop, now), Holding::Lapsed(_))
    }

    /// The drop as a reader sees it at `now`: none once its reservation lapsed.
    pub fn as_seen(&self, drop: Drop, now: Millis) -> Option<Drop> {
        (!self.has_lapsed(&drop, now)).then_some(drop)
    }

    /// When the drop's reservation lapses, if it is held and reservations lapse.
    pub fn lapses_at(&self, drop: &Drop) -> Option<Millis> {
        match drop.status {
            Status::Reserved(held) if self.reservation_timeout_ms != 0 => {
                Some(held.reserved_at.saturating_add(self.reservation_timeout_ms))
            }
            _ => None,
        }
    }

    /// Reserves `drop` for the requester, or says why not. The drop is changed only on success.
    /// (`transition` turns this decision into the state change.)
    pub fn try_reserve(
        &self,
        drop: &mut Drop,
        request: &ReserveRequest,
        location: Location,
        now: Millis,
    ) -> Result<Reservation, Refusal> {
        if drop.location != location {
            return Err(Refusal::WrongMap);
        }
        match self.holding(drop, now) {
            Holding::Lapsed(_) => return Err(Refusal::UnknownDrop),
            Holding::Held(held) if held.character_id == request.character_id => {
                return Err(Refusal::AlreadyHeld)
            }
            Holding::Held(_) => return Err(Refusal::HeldByOther),
            Holding::Free => {}
        }
        if !self.may_take(drop, request.character_id, request.party_id, now) {
            return Err(Refusal::NotPermitted);
        }
        if !self.in_range(drop, request.position, request.pet_slot) {
            return Err(Refusal::OutOfRange);
        }
        let reservation = Reservation {
            character_id: request.character_id,
            pet_slot: request.pet_slot,
            reserved_at: now,
        };
        drop.status = Status::Reserved(reservation);
        Ok(reservation)
    }

    /// Cancels the requester's reservation.
    pub fn try_cancel(
        &self,
        drop: &mut Drop,
        request: &CharacterRequest,
        now: Millis,
    ) -> Result<(), Refusal> {
        match self.holding(drop, now) {
            Holding::Held(held) if held.character_id == request.character_id => {
                drop.status = Status::Available;
                Ok(())
            }
            Holding::Lapsed(_) => Err(Refusal::UnknownDrop),
            _ => Err(Refusal::NotHolder),
        }
    }

    /// Decides a pick-up; on success the caller removes the drop. Returns the pet slot for the
    /// event: the reservation's, or -1 without one.
    ///
    /// A reservation is the authority: its holder takes the drop wherever they now stand, since
    /// they were credited.
    pub fn try_pick_up(
        &self,
        drop: &Drop,
        request: &CharacterRequest,
        location: Location,
        now: Millis,
    ) -> Result<i8, Refusal> {
        match self.holding(drop, now) {
            Holding::Lapsed(_) => Err(Refusal::UnknownDrop),
            Holding::Held(held) if held.character_id == request.character_id => Ok(held.pet_slot),
            Holding::Held(_) => Err(Refusal::HeldByOther),
            _ if drop.location != location => Err(Refusal::WrongMap),
            _ if !self.may_take(drop, request.character_id, 0, now) => Err(Refusal::NotPermitted),
            _ => Ok(-1),
        }
    }

    /// When an AVAILABLE drop expires.
    pub fn expires_at(&self, drop: &Drop) -> Option<Millis> {
        (self.expire_ms > 0).then(|| drop.dropped_at.saturating_add(self.expire_ms))
    }

    /// When the sweep must first look at a drop: when it expires if AVAILABLE, when its
    /// reservation lapses if held (whichever it is now).
    pub fn first_due(&self, drop: &Drop) -> Option<Millis> {
        self.lapses_at(drop).or_else(|| self.expires_at(drop))
    }

    /// What is due for a drop whose time came: an AVAILABLE drop past its time expires, and so
    /// does a drop whose reservation lapsed; a held one is looked at again when its reservation
    /// lapses (or, if reservations never lapse, one expiry period on).
    pub fn due(&self, drop: &Drop, now: Millis) -> Due {
        match self.holding(drop, now) {
            Holding::Lapsed(_) => Due::Expire,
            Holding::Held(_) if self.reservation_timeout_ms == 0 => match self.expire_ms {
                0 => Due::Never,
                period => Due::At(now.saturating_add(period)),
            },
            Holding::Held(held) => {
                Due::At(held.reserved_at.saturating_add(self.reservation_timeout_ms))
            }
            Holding::Free => match self.expires_at(drop) {
                None => Due::Never,
                Some(at) if at <= now => Due::Expire,
                Some(at) => Due::At(at),
            },
        }
    }

    /// Whether a map holding `count` drops must make room before taking one more.
    pub fn map_is_full(&self, count: usize) -> bool {
        self.map_drop_limit != 0 && count >= self.map_drop_limit
    }

    /// The drop a full map gives up for a new one: the oldest AVAILABLE drop (ties by id).
    pub fn oldest_available<'a>(
        &self,
        drops: impl IntoIterator<Item = &'a Drop>,
        now: Millis,
    ) -> Option<&'a Drop> {
        drops
            .into_iter()
            .filter(|drop| self.is_available(drop, now))
            .min_by_key(|drop| (drop.dropped_at, drop.id))
    }
}
