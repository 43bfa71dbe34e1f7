//! What became of each command, told once and the same way for every outcome: its log line,
//! its count in the metrics, and its span's attributes.

use rdkafka::message::{Message, OwnedMessage};

use crate::drop::command::CommandType;
use crate::drop::event::{Event, EventKind};
use crate::drop::model::Correlation;
use crate::drop::rules::Refusal;
use crate::kafka::message::command::Rejection;
use crate::metrics::{ExpiryCause, Metrics, Outcome};
use crate::store::Origin;
use crate::trace::{CommandSpan, SpanExporter, TraceParent};

/// How many leading bytes of a rejected value the log shows.
const LOGGED_BYTES: usize = 128;

/// What the store answered a command.
pub struct Answer {
    /// The drop it concerns: the new drop of a spawn (0 when refused), the one a request names.
    pub drop_id: u32,
    pub result: Result<(), Refusal>,
}

/// Writes the log line, the metrics and the span of each command.
pub struct Observer<'a> {
    pub metrics: &'a Metrics,
    pub spans: &'a SpanExporter,
}

/// A command being applied, as the observer follows it.
pub struct Observed {
    kind: CommandType,
    span: Option<CommandSpan>,
    /// Drops a spawn expired from its full map (each with its `EXPIRED`).
    evicted: usize,
}

impl Observed {
    /// The span to handle the command in (see `CommandSpan::span`).
    pub fn span(&self) -> tracing::Span {
        self.span
            .as_ref()
            .map_or_else(tracing::Span::none, CommandSpan::span)
    }

    /// Takes note of an event the command caused.
    pub fn saw(&mut self, event: &Event) {
        self.evicted += usize::from(matches!(event.kind, EventKind::Expired { .. }));
    }
}

impl Observer<'_> {
    /// Begins following a command. Its span is a child of its `traceparent` and becomes the
    /// parent its events carry; a malformed `traceparent` is dropped, with its `tracestate`, as
    /// W3C trace context asks.
    pub fn begin(&self, kind: CommandType, correlation: &mut Correlation) -> Observed {
        let parent = (correlation.traceparent.as_deref()).and_then(TraceParent::parse);
        let span = CommandSpan::start(parent, self.spans.enabled());
        correlation.traceparent = span.as_ref().map(|span| span.context.header().into_bytes());
        if span.is_none() {
            correlation.tracestate = None;
        }
        Observed {
            kind,
            span,
            evicted: 0,
        }
    }

    /// A command the store answered: applied, or refused (already applied included).
    pub fn answered(&self, observed: Observed, origin: &Origin, answer: &Answer) {
        let Observed {
            kind,
            span,
            evicted,
        } = observed;
        // The log lines below are the command span's events.
        let entered = span.as_ref().map(|span| span.span().entered());
        self.metrics.expired(ExpiryCause::MapLimit, evicted);
        let outcome = match answer.result {
            Ok(()) => Outcome::Applied,
            Err(refusal) => Outcome::Refused(refusal),
        };
        self.metrics.command(Some(kind), outcome);
        let command = kind.name();
        let tenant = &origin.tenant.id;
        let transaction_id = &origin.correlation.transaction_id;
        let drop_id = answer.drop_id;
        let trace_id = span.as_ref().map(|span| span.context.trace_id_hex());
        let trace_id = trace_id.as_deref().unwrap_or_default();
        match answer.result {
            Ok(()) => {
                tracing::debug!(command, %tenant, drop_id, %transaction_id, trace_id, "applied")
            }
            Err(Refusal::AlreadyApplied) => {
                let offset = origin.position.as_ref().map(|position| position.offset);
                tracing::info!(command, %tenant, offset, %transaction_id, "redelivered command skipped: already applied")
            }
            Err(Refusal::StoreFull) => {
                tracing::warn!(command, %tenant, %transaction_id, "spawn refused: the store holds MAX_LIVE_DROPS drops")
            }
            Err(refusal) => {
                tracing::info!(command, %tenant, drop_id, %transaction_id, trace_id, %refusal, "refused")
            }
        }
        drop(entered);
        if let Some(span) = span {
            let result = match answer.result {
                Ok(()) => "applied",
                Err(refusal) => refusal.name(),
            };
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
    }

    /// A command of another environment than ours, passed over (contract-head §6).
    /// `kind` is the command's type when it could be read; `theirs` is bounded.
    pub fn other_environment(
        &self,
        message: &OwnedMessage,
        kind: Option<CommandType>,
        theirs: &str,
    ) {
        tracing::info!(
            partition = message.partition(),
            offset = message.offset(),
            command = kind.map_or("unknown", CommandType::name),
            environment = theirs,
            "command of another environment skipped"
        );
        self.metrics.command(kind, Outcome::OtherEnvironment);
    }

    /// A command that cannot be applied; `reason` is the rejection's, bounded.
    pub fn rejected(&self, message: &OwnedMessage, rejection: &Rejection, reason: &str) {
        let value = message.payload().unwrap_or_default();
        let shown = String::from_utf8_lossy(&value[..value.len().min(LOGGED_BYTES)]);
        tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            reason = %reason,
            value = %shown,
            "command rejected"
        );
        self.metrics
            .command(rejection.command_type, Outcome::Rejected(rejection.class));
    }
}
