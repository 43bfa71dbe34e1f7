//! The way of a committed change's events. Where they go is chosen once, at start-up, from the
//! store: the in-memory store hands them here to be published; the shared store wrote them to
//! its outbox already, in the change's own transaction, and its relay sends them
//! (`kafka::outbox`), so here they are only noted. Either way the observers of the events act
//! on them: an expired drop's equipment is deleted by the janitor.

use std::sync::Arc;

use super::producer::{Delivery, Publisher};
use crate::drop::event::{Event, EventKind};
use crate::equipment::Janitor;
use crate::metrics::Metrics;

/// Where a change's events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Published here, in the order the store hands them over.
    Broker,
    /// Already in the shared store's outbox: its relay publishes them.
    Outbox,
}

/// Takes the events of every change: handler, sweep and shutdown alike. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    route: Route,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    /// Deletes the equipment of expired drops, when an equipment service is configured.
    janitor: Option<Janitor>,
}

impl Events {
    pub fn new(
        route: Route,
        publisher: Publisher,
        metrics: Arc<Metrics>,
        janitor: Option<Janitor>,
    ) -> Events {
        Events {
            route,
            publisher,
            metrics,
            janitor,
        }
    }

    /// A sink for one change's events (or one sweep's).
    pub fn sink(&self) -> EventSink<'_> {
        EventSink {
            events: self,
            deliveries: Vec::new(),
        }
    }

    /// What the events' observers do: every `EXPIRED` passes here, whatever expired the drop
    /// (its time, its map's cap, a shutdown), and every `CONSUMED`, so the gone drop's
    /// equipment, if any, is deleted.
    fn observe(&self, event: &Event) {
        let equipment_id = match event.kind {
            EventKind::Expired { equipment_id } | EventKind::Consumed { equipment_id } => {
                equipment_id
            }
            _ => 0,
        };
        if let (Some(janitor), true) = (&self.janitor, equipment_id != 0) {
            janitor.delete(event.tenant.clone(), equipment_id);
        }
    }
}

/// Takes a store's events, one call at a time, in order. The store calls it while it holds
/// the drop's lock (in memory): publishing never blocks and keeps call order.
pub struct EventSink<'a> {
    events: &'a Events,
    /// The broker's answers to await before committing what caused the events.
    pub deliveries: Vec<Delivery>,
}

impl EventSink<'_> {
    pub fn take(&mut self, event: Event) {
        self.events.observe(&event);
        match self.events.route {
            Route::Broker => self.deliveries.push(self.events.publisher.publish(event)),
            // Counted now: the relay's acknowledgements are not the command's.
            Route::Outbox => self.events.metrics.event(&event.kind),
        }
    }
}
