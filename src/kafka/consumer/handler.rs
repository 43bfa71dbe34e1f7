//! Where each command is handled: decoded, applied to the store, its events published.

use std::sync::Arc;

use rdkafka::message::{Message, OwnedMessage};

use crate::clock;
use crate::drop::command::Action;
use crate::kafka::message::command::decode;
use crate::kafka::producer::{Delivery, Publisher};
use crate::store::{DropStore, Origin};

/// How many leading bytes of a rejected value the log shows.
const LOGGED_BYTES: usize = 128;

pub struct Handler {
    pub store: Arc<dyn DropStore>,
    pub publisher: Publisher,
}

impl Handler {
    /// Applies one record of the command topic. Returns the deliveries of the events it caused:
    /// its offset may be committed once they are all acknowledged.
    pub fn handle(&self, message: &OwnedMessage) -> Vec<Delivery> {
        let command = match decode(message.payload(), message.headers()) {
            Ok(command) => command,
            Err(rejection) => {
                let value = message.payload().unwrap_or_default();
                let shown = String::from_utf8_lossy(&value[..value.len().min(LOGGED_BYTES)]);
                tracing::warn!(
                    partition = message.partition(),
                    offset = message.offset(),
                    reason = %rejection,
                    value = %shown,
                    "command rejected"
                );
                return Vec::new();
            }
        };
        let origin = Origin {
            tenant: command.tenant,
            location: command.location,
            correlation: command.correlation,
        };
        let now = clock::now();
        let mut deliveries = Vec::with_capacity(2);
        let out = &mut |event| deliveries.push(self.publisher.publish(event));
        let (kind, drop_id, outcome) = match &command.action {
            Action::Spawn(spec) => {
                let drop = self.store.spawn(&origin, *spec, now, out);
                ("SPAWN", drop.id.get(), Ok(()))
            }
            Action::Reserve(request) => (
                "REQUEST_RESERVATION",
                request.drop_id,
                self.store.reserve(&origin, request, now, out),
            ),
            Action::CancelReservation(request) => (
                "CANCEL_RESERVATION",
                request.drop_id,
                self.store.cancel(&origin, request, out),
            ),
            Action::PickUp(request) => (
                "REQUEST_PICK_UP",
                request.drop_id,
                self.store.pick_up(&origin, request, now, out),
            ),
        };
        let tenant = &origin.tenant.id;
        let transaction_id = &origin.correlation.transaction_id;
        match outcome {
            Ok(()) => tracing::debug!(command = kind, %tenant, drop_id, %transaction_id, "applied"),
            Err(refusal) => tracing::info!(
                command = kind,
                %tenant,
                drop_id,
                %transaction_id,
                %refusal,
                "refused"
            ),
        }
        deliveries
    }
}
