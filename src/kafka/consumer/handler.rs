//! Where each command is handled: decoded, applied to the store, its events published, its
//! outcome logged and counted.

use std::sync::Arc;

use rdkafka::message::{Message, OwnedMessage};

use crate::clock;
use crate::drop::command::Action;
use crate::drop::event::{Event, EventKind};
use crate::kafka::message::command::decode;
use crate::kafka::producer::{Delivery, Publisher};
use crate::metrics::{ExpiryCause, Metrics, Outcome};
use crate::store::{DropStore, Origin};
use crate::trace::{CommandSpan, SpanExporter, TraceParent};

/// How many leading bytes of a rejected value the log shows.
const LOGGED_BYTES: usize = 128;

pub struct Handler {
    pub store: Arc<dyn DropStore>,
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    pub spans: SpanExporter,
}

impl Handler {
    /// Applies one record of the command topic. Returns the deliveries of the events it caused:
    /// its offset may be committed once they are all acknowledged.
    pub fn handle(&self, message: &OwnedMessage) -> Vec<Delivery> {
        let (command_type, command) = match decode(message.payload(), message.headers()) {
            Ok(decoded) => decoded,
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
                let outcome = Outcome::Rejected(rejection.class);
                self.metrics.command(rejection.command_type, outcome);
                return Vec::new();
            }
        };
        let mut origin = Origin {
            tenant: command.tenant,
            location: command.location,
            correlation: command.correlation,
        };
        // The command's span becomes the parent its events carry; a malformed traceparent is
        // dropped, with its tracestate, as W3C trace context asks.
        let parent = origin
            .correlation
            .traceparent
            .as_deref()
            .and_then(TraceParent::parse);
        let span = CommandSpan::start(parent, self.spans.enabled());
        origin.correlation.traceparent =
            span.as_ref().map(|span| span.context.header().into_bytes());
        if span.is_none() {
            origin.correlation.tracestate = None;
        }
        let now = clock::now();
        let mut deliveries = Vec::with_capacity(2);
        let mut evicted = 0;
        let out = &mut |event: Event| {
            evicted += usize::from(event.kind == EventKind::Expired);
            deliveries.push(self.publisher.publish(event));
        };
        let (drop_id, outcome) = match &command.action {
            Action::Spawn(spec) => (self.store.spawn(&origin, *spec, now, out).id.get(), Ok(())),
            Action::Reserve(request) => (
                request.drop_id,
                self.store.reserve(&origin, request, now, out),
            ),
            Action::CancelReservation(request) => {
                (request.drop_id, self.store.cancel(&origin, request, out))
            }
            Action::PickUp(request) => (
                request.drop_id,
                self.store.pick_up(&origin, request, now, out),
            ),
        };
        self.metrics.expired(ExpiryCause::MapLimit, evicted);
        let command = command_type.name();
        let tenant = &origin.tenant.id;
        let transaction_id = &origin.correlation.transaction_id;
        let trace_id = span.as_ref().map(|span| span.context.trace_id_hex());
        let trace_id = trace_id.as_deref().unwrap_or_default();
        let result = match outcome {
            Ok(()) => {
                tracing::debug!(command, %tenant, drop_id, %transaction_id, trace_id, "applied");
                self.metrics.command(Some(command_type), Outcome::Applied);
                "applied"
            }
            Err(refusal) => {
                tracing::info!(command, %tenant, drop_id, %transaction_id, trace_id, %refusal, "refused");
                self.metrics
                    .command(Some(command_type), Outcome::Refused(refusal));
                refusal.name()
            }
        };
        if let Some(span) = span {
            let attributes = [
                ("atlas.command", command.to_owned()),
                ("atlas.tenant", tenant.to_string()),
                ("atlas.drop_id", drop_id.to_string()),
                ("atlas.transaction_id", transaction_id.to_string()),
                ("atlas.outcome", result.to_owned()),
            ];
            self.spans
                .finish(span, &format!("{command} process"), &attributes);
        }
        deliveries
    }
}
