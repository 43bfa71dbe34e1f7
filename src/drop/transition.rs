//! Every state change of the drops as one value: what a command (or the expiry sweep) answers,
//! what must be written, and the events that tell the peers. Decided here, once, by plain
//! functions over what a store loaded; a store only commits a transition, atomically, and the
//! stores' contract tests run the same functions over a plain list.
//!
//! Adding a command is: its decoder, its function here and its test. No store code changes,
//! since a store knows only the `Write`s.

use std::num::NonZeroU32;

use super::award;
use super::command::{CharacterRequest, DropRequest, ReserveRequest};
use super::event::{Event, EventKind};
use super::model::{Correlation, Drop, DropId, Location, Millis, TenantRef};
use super::rules::{Due, Refusal, Rules};

/// A decided state change. `answer` is what the requester is told (and logged, and counted);
/// `writes` and `events` are committed together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition<T> {
    pub answer: Result<T, Refusal>,
    pub writes: Vec<Write>,
    pub events: Vec<Event>,
}

/// One change a store makes to its drops and their indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A new drop: its record, its map's list, the id index, one more drop lying, and its
    /// deadline entry at `Rules::first_due`.
    Insert(Drop),
    /// A drop's new state: its record, and its deadline entry brought forward to
    /// `Rules::first_due` when that is sooner (a later entry only makes the sweep look early,
    /// and again).
    Update(Drop),
    /// A drop gone from every index.
    Remove(Drop),
    /// The sweep looks at the drop again at `at`. Named by (tenant, id), as every drop: ids
    /// from the Atlas allocator are unique per tenant only (contract-head §7).
    Reschedule {
        tenant: TenantRef,
        id: DropId,
        at: Millis,
    },
    /// The sweep need not look at the drop again: it never comes due.
    Unschedule { tenant: TenantRef, id: DropId },
}

/// Who asked, where, and the correlation to echo: what an answer to the requester names.
#[derive(Clone, Copy, Debug)]
pub struct Asker<'a> {
    pub tenant: &'a TenantRef,
    pub location: Location,
    pub correlation: &'a Correlation,
}

impl Asker<'_> {
    /// A `RESERVATION_FAILURE` for `character_id`, naming the rule that refused it, if any: it
    /// echoes the command's tenant and map (the drop it names may not exist).
    fn failure(&self, drop_id: u32, character_id: u32, refused: Option<Refusal>) -> Event {
        Event {
            tenant: self.tenant.clone(),
            location: self.location,
            drop_id,
            correlation: self.correlation.clone(),
            kind: EventKind::ReservationFailure {
                character_id,
                refused,
            },
        }
    }
}

impl<T> Transition<T> {
    fn new(answer: Result<T, Refusal>) -> Transition<T> {
        Transition {
            answer,
            writes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Refused: nothing written, nobody told.
    pub fn refused(refusal: Refusal) -> Transition<T> {
        Transition::new(Err(refusal))
    }

    /// Not decided yet (`Refusal::PartyNotAsked`): a store records nothing of it, not even that
    /// the command was met, since it comes again once it can be decided.
    pub fn is_deferred(&self) -> bool {
        matches!(self.answer, Err(Refusal::PartyNotAsked))
    }

    /// Whether committing it changes nothing and tells nobody.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty()
    }
}

/// Whether a store holding at most `most` drops (0: no limit) may take one more, `live` lying
/// now (refused: `StoreFull`, no event; memory stays bounded under a flood). Asked before a
/// spawn's id is handed out.
pub fn has_room(live: usize, most: usize) -> Result<(), Refusal> {
    match most {
        0 => Ok(()),
        most if live < most => Ok(()),
        _ => Err(Refusal::StoreFull),
    }
}

impl Rules {
    /// A spawn of `new` (`CREATED`) on a map holding `on_map` drops; when the map is full
    /// (`map_is_full`) its oldest AVAILABLE drops are expired first (`EXPIRED`), from `map`,
    /// the map's drops, which a store need load only when the map is full. When every drop of
    /// a full map is reserved the new drop still lies: they resolve soon, and it is not lost.
    pub fn spawn<'a>(
        &self,
        new: Drop,
        correlation: &Correlation,
        on_map: usize,
        map: impl IntoIterator<Item = &'a Drop>,
        now: Millis,
    ) -> Transition<Drop> {
        let mut transition = Transition::new(Ok(new.clone()));
        if self.map_is_full(on_map) {
            let mut candidates: Vec<&Drop> = map.into_iter().collect();
            let mut lying = on_map;
            while self.map_is_full(lying) {
                let Some(oldest) = self.oldest_available(candidates.iter().copied(), now) else {
                    break;
                };
                let index = candidates.iter().position(|d| d.id == oldest.id);
                let evicted = candidates.swap_remove(index.expect("chosen from the candidates"));
                transition.events.push(Event::expired(evicted));
                transition.writes.push(Write::Remove(evicted.clone()));
                lying -= 1;
            }
        }
        transition
            .events
            .push(Event::created(&new, correlation.clone()));
        transition.writes.push(Write::Insert(new));
        transition
    }

    /// A command on the drop it names: `found` is the asker's tenant's drop of that id, if any.
    pub fn on_drop(
        &self,
        request: &DropRequest,
        found: Option<Drop>,
        asker: Asker<'_>,
        now: Millis,
    ) -> Transition<()> {
        match request {
            DropRequest::Reserve(request) => self.reserve(found, asker, request, now),
            DropRequest::CancelReservation(request) => self.cancel(found, asker, request, now),
            DropRequest::PickUp(request) => self.pick_up(found, asker, request, now),
            DropRequest::Consume { .. } => self.consume(found, asker, now),
        }
    }

    /// A reservation (`RESERVED`) of `found`, the asker's tenant's drop of that id if any;
    /// every refusal answers the requester with `RESERVATION_FAILURE`. A meso drop's first
    /// reservation shares its meso out (`MESO_AWARDED`, after `RESERVED`, in the same
    /// transition: committed together, so never one without the other, nor twice).
    pub fn reserve(
        &self,
        found: Option<Drop>,
        asker: Asker<'_>,
        request: &ReserveRequest,
        now: Millis,
    ) -> Transition<()> {
        let reserved = found.ok_or(Refusal::UnknownDrop).and_then(|mut drop| {
            self.try_reserve(&mut drop, request, asker.location, now)?;
            Ok(drop)
        });
        match reserved {
            Ok(mut drop) => {
                let correlation = asker.correlation;
                let mut events = vec![Event::reserved(
                    &drop,
                    correlation.clone(),
                    request.character_id,
                )];
                let meso = NonZeroU32::new(drop.spec.contents.meso());
                if let Some(meso) = meso.filter(|_| !drop.meso_awarded) {
                    let Some(present) = &request.present else {
                        return Transition::refused(Refusal::PartyNotAsked);
                    };
                    drop.meso_awarded = true;
                    let awards = award::split_meso(request.character_id, meso, present);
                    events.extend(
                        (awards.into_iter())
                            .map(|award| Event::meso_awarded(&drop, correlation.clone(), award)),
                    );
                }
                Transition {
                    answer: Ok(()),
                    events,
                    writes: vec![Write::Update(drop)],
                }
            }
            Err(refusal) => Transition {
                events: vec![asker.failure(request.drop_id, request.character_id, Some(refusal))],
                ..Transition::refused(refusal)
            },
        }
    }

    /// A cancel of the asker's own reservation: the drop is AVAILABLE again and the requester
    /// hears `RESERVATION_FAILURE`; refused in silence otherwise.
    pub fn cancel(
        &self,
        found: Option<Drop>,
        asker: Asker<'_>,
        request: &CharacterRequest,
        now: Millis,
    ) -> Transition<()> {
        let Some(mut drop) = found else {
            return Transition::refused(Refusal::UnknownDrop);
        };
        if let Err(refusal) = self.try_cancel(&mut drop, request, now) {
            return Transition::refused(refusal);
        }
        Transition {
            answer: Ok(()),
            events: vec![asker.failure(request.drop_id, request.character_id, None)],
            // A sweep that met the drop held put its entry off; free again, it expires on time.
            writes: vec![Write::Update(drop)],
        }
    }

    /// A pick-up (`PICKED_UP`): the drop leaves the map into the character's hands; refused
    /// in silence.
    pub fn pick_up(
        &self,
        found: Option<Drop>,
        asker: Asker<'_>,
        request: &CharacterRequest,
        now: Millis,
    ) -> Transition<()> {
        let Some(drop) = found else {
            return Transition::refused(Refusal::UnknownDrop);
        };
        match self.try_pick_up(&drop, request, asker.location, now) {
            Ok(pet_slot) => Transition {
                answer: Ok(()),
                events: vec![Event::picked_up(
                    &drop,
                    asker.correlation.clone(),
                    request.character_id,
                    pet_slot,
                )],
                writes: vec![Write::Remove(drop)],
            },
            Err(refusal) => Transition::refused(refusal),
        }
    }

    /// A `CONSUME` (contract-head §3): the drop, AVAILABLE or held (the reservation goes with
    /// it), leaves the map crediting nobody, with `CONSUMED`. A drop that is not in the
    /// location the command names, or is gone, is refused in silence; consumed twice, it is
    /// gone the second time.
    pub fn consume(&self, found: Option<Drop>, asker: Asker<'_>, now: Millis) -> Transition<()> {
        let Some(drop) = found else {
            return Transition::refused(Refusal::UnknownDrop);
        };
        if self.has_lapsed(&drop, now) {
            return Transition::refused(Refusal::UnknownDrop);
        }
        if drop.location != asker.location {
            return Transition::refused(Refusal::WrongMap);
        }
        Transition {
            answer: Ok(()),
            events: vec![Event::consumed(&drop, asker.correlation.clone())],
            writes: vec![Write::Remove(drop)],
        }
    }

    /// The sweep's step for `drop`, whose deadline entry came due at `now`: expire it
    /// (`EXPIRED`; answer `true`), look again later, or forget the entry. (A drop the sweep
    /// no longer finds needs no rule: its removal took its deadline entry with it.)
    pub fn sweep(&self, drop: Drop, now: Millis) -> Transition<bool> {
        let Drop { tenant, id, .. } = &drop;
        match self.due(&drop, now) {
            Due::Expire => Transition {
                answer: Ok(true),
                events: vec![Event::expired(&drop)],
                writes: vec![Write::Remove(drop)],
            },
            Due::At(at) => Transition {
                writes: vec![Write::Reschedule {
                    tenant: tenant.clone(),
                    id: *id,
                    at,
                }],
                ..Transition::new(Ok(false))
            },
            Due::Never => Transition {
                writes: vec![Write::Unschedule {
                    tenant: tenant.clone(),
                    id: *id,
                }],
                ..Transition::new(Ok(false))
            },
        }
    }
}
