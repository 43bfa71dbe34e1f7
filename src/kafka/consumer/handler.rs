//! Where each command is handled: decoded, applied to the store, its events published, its
//! outcome logged and counted.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rdkafka::message::{Header, Message, OwnedMessage};

use crate::clock;
use crate::drop::command::{Action, Command};
use crate::drop::event::{Event, EventKind};
use crate::drop::rules::Refusal;
use crate::equipment::EquipmentService;
use crate::kafka::message::command::{decode, CommandType, Rejection, RejectionClass};
use crate::kafka::message::headers::{
    DEAD_LETTER_CLASS, DEAD_LETTER_OFFSET, DEAD_LETTER_PARTITION, DEAD_LETTER_REASON,
    DEAD_LETTER_TOPIC,
};
use crate::kafka::producer::{DeadLetter, Delivery, Publisher};
use crate::metrics::{ExpiryCause, Metrics, Outcome};
use crate::store::{self, DropStore, LogPosition, Origin};
use crate::trace::{CommandSpan, SpanExporter, TraceParent};

/// How many leading bytes of a rejected value the log shows.
const LOGGED_BYTES: usize = 128;
/// How many bytes of a rejection's reason the log and the dead letter carry: a reason can
/// quote the value (serde quotes strings), and must not make a letter larger than the command.
const REASON_BYTES: usize = 256;

/// What became of a record: its deliveries now, or a future that yields them.
pub enum Handled {
    Now(Vec<Delivery>),
    Later(Pin<Box<dyn Future<Output = Vec<Delivery>> + Send>>),
}

pub struct Handler {
    pub store: Arc<dyn DropStore>,
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    pub spans: SpanExporter,
    /// Where equip SPAWNs get their equipment created, when configured.
    pub equipment: Option<EquipmentService>,
    /// The consumer group: with the topic and partition, it names a partition's applied record.
    pub group: String,
    /// The largest record the broker takes (`message.max.bytes`): a dead letter larger than
    /// this is not sent but logged, counted and passed.
    pub max_record_bytes: usize,
}

/// The first `limit` bytes of `text`, cut at a character boundary, marked when cut.
fn bounded(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

impl Handler {
    /// Copies a rejected record to the dead-letter topic, when there is one.
    fn dead_letter(
        &self,
        message: &OwnedMessage,
        rejection: &Rejection,
        reason: &str,
    ) -> Option<Delivery> {
        let mut headers = message.headers().cloned().unwrap_or_default();
        for (key, value) in [
            (DEAD_LETTER_REASON, reason.to_owned()),
            (DEAD_LETTER_CLASS, rejection.class.name().to_owned()),
            (DEAD_LETTER_TOPIC, message.topic().to_owned()),
            (DEAD_LETTER_PARTITION, message.partition().to_string()),
            (DEAD_LETTER_OFFSET, message.offset().to_string()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(&value),
            });
        }
        let letter = DeadLetter {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        };
        if letter.size() > self.max_record_bytes {
            tracing::error!(
                partition = message.partition(),
                offset = message.offset(),
                bytes = letter.size(),
                limit = self.max_record_bytes,
                "the dead letter would be larger than the broker takes: not sent, passed"
            );
            self.metrics.undeliverable();
            return None;
        }
        self.publisher.dead_letter(letter)
    }

    /// Takes one record of the command topic. Most commands are applied at once; an equip
    /// SPAWN first waits for the equipment service, beside the partition's other commands, not
    /// in front of them. Either way the answer is the deliveries of the events the command
    /// caused: its offset may be committed once they are all acknowledged.
    pub fn handle(self: &Arc<Self>, message: &OwnedMessage, position: LogPosition) -> Handled {
        let (command_type, mut command) = match decode(message.payload(), message.headers()) {
            Ok(decoded) => decoded,
            Err(rejection) => return Handled::Now(self.reject(message, &rejection)),
        };
        let equip = match (&self.equipment, &command.action) {
            (Some(equipment), Action::Spawn(spec))
                if command_type == CommandType::Spawn
                    && spec.contents.is_equip()
                    && spec.contents.equipment_id() == 0 =>
            {
                Some((equipment.clone(), spec.contents.item_id()))
            }
            _ => None,
        };
        // A redelivered equip spawn is recognised before it asks for a second equipment (that
        // nobody would use): `apply` then answers it as already applied.
        let store = &*self.store;
        let equip = equip.filter(|_| !store::blocking(store, || store.was_applied(&position)));
        let Some((equipment, item_id)) = equip else {
            return Handled::Now(self.apply(command_type, command, position));
        };
        let (handler, message) = (self.clone(), message.clone());
        Handled::Later(Box::pin(async move {
            match equipment.create(&command.tenant, item_id).await {
                Ok(equipment_id) => {
                    if let Action::Spawn(spec) = &mut command.action {
                        spec.contents = spec.contents.with_equipment(equipment_id);
                    }
                    handler.apply(command_type, command, position)
                }
                Err(error) => {
                    let rejection = Rejection {
                        command_type: Some(command_type),
                        class: RejectionClass::Equipment,
                        reason: error.to_string(),
                    };
                    handler.reject(&message, &rejection)
                }
            }
        }))
    }

    /// Logs, counts and dead-letters a command that cannot be applied.
    fn reject(&self, message: &OwnedMessage, rejection: &Rejection) -> Vec<Delivery> {
        let value = message.payload().unwrap_or_default();
        let shown = String::from_utf8_lossy(&value[..value.len().min(LOGGED_BYTES)]);
        let reason = rejection.to_string();
        let reason = bounded(&reason, REASON_BYTES);
        tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            reason = %reason,
            value = %shown,
            "command rejected"
        );
        self.metrics
            .command(rejection.command_type, Outcome::Rejected(rejection.class));
        self.dead_letter(message, rejection, &reason)
            .into_iter()
            .collect()
    }

    /// Applies a decoded command to the store and publishes its events.
    fn apply(
        &self,
        command_type: CommandType,
        command: Command,
        position: LogPosition,
    ) -> Vec<Delivery> {
        let mut origin = Origin {
            tenant: command.tenant,
            location: command.location,
            correlation: command.correlation,
            position: Some(position),
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
        let mut sink = self.publisher.sink(self.store.shared());
        let mut evicted = 0;
        let out = &mut |event: Event| {
            evicted += usize::from(matches!(event.kind, EventKind::Expired { .. }));
            sink.take(event);
        };
        let (drop_id, outcome) = store::blocking(&*self.store, || match &command.action {
            Action::Spawn(spec) => match self.store.spawn(&origin, *spec, now, out) {
                Ok(drop) => (drop.id.get(), Ok(())),
                Err(refusal) => (0, Err(refusal)),
            },
            Action::Reserve(request) => (
                request.drop_id,
                self.store.reserve(&origin, request, now, out),
            ),
            Action::CancelReservation(request) => (
                request.drop_id,
                self.store.cancel(&origin, request, now, out),
            ),
            Action::PickUp(request) => (
                request.drop_id,
                self.store.pick_up(&origin, request, now, out),
            ),
        });
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
            Err(Refusal::AlreadyApplied) => {
                let offset = origin.position.as_ref().map(|position| position.offset);
                tracing::info!(command, %tenant, offset, %transaction_id, "redelivered command skipped: already applied");
                self.metrics.command(
                    Some(command_type),
                    Outcome::Refused(Refusal::AlreadyApplied),
                );
                Refusal::AlreadyApplied.name()
            }
            Err(Refusal::StoreFull) => {
                tracing::warn!(command, %tenant, %transaction_id, "spawn refused: the store holds MAX_LIVE_DROPS drops");
                self.metrics
                    .command(Some(command_type), Outcome::Refused(Refusal::StoreFull));
                Refusal::StoreFull.name()
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
        sink.deliveries
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn reasons_are_bounded_at_a_character_boundary() {
        assert_eq!(bounded("short", 8), "short");
        let long = "é".repeat(300);
        let cut = bounded(&long, 255);
        assert!(cut.len() < 300, "{}", cut.len());
        assert!(cut.starts_with(&"é".repeat(127)));
        assert!(cut.ends_with("(600 bytes)"));
    }
}
