//! W3C trace context: each command is handled in a span whose parent is the command's
//! `traceparent`; the events it causes carry that span as their `traceparent`, so the trace goes
//! on through the peers that read them. Spans are exported over OTLP/HTTP (JSON) when
//! `TRACE_ENDPOINT` is set, in batches, from a thread of their own: the command path only
//! hands a finished span to a bounded queue, and drops it (counted in the log) when the queue is full.

use std::fmt::Write;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use uuid::Uuid;

/// Spans waiting for export, at most.
const QUEUE: usize = 8192;
/// Spans in one export request, at most.
const BATCH: usize = 512;
/// How long a span waits for its batch to fill, at most.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The parts of a `traceparent` header (version 00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut bytes = [0; N];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(bytes)
}

impl TraceParent {
    /// Parses `00-<trace id>-<span id>-<flags>`; anything else (or all-zero ids) is no parent.
    pub fn parse(header: &[u8]) -> Option<TraceParent> {
        let text = std::str::from_utf8(header).ok()?;
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let parent = TraceParent {
            trace_id: unhex::<16>(trace)?,
            span_id: unhex::<8>(span)?,
            flags: unhex::<1>(flags)?[0],
        };
        (parent.trace_id != [0; 16] && parent.span_id != [0; 8]).then_some(parent)
    }

    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

fn random_span_id() -> [u8; 8] {
    let bytes = Uuid::new_v4().into_bytes();
    bytes[..8].try_into().expect("8 of 16 bytes")
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The span in which one command is handled.
pub struct CommandSpan {
    pub context: TraceParent,
    parent_span_id: Option<[u8; 8]>,
    started_nanos: u128,
}

impl CommandSpan {
    /// A child of `parent`; without one, a new trace when spans are exported, else no span.
    pub fn start(parent: Option<TraceParent>, exporting: bool) -> Option<CommandSpan> {
        let (trace_id, parent_span_id, flags) = match parent {
            Some(parent) => (parent.trace_id, Some(parent.span_id), parent.flags),
            None if exporting => (Uuid::new_v4().into_bytes(), None, 1),
            None => return None,
        };
        Some(CommandSpan {
            context: TraceParent {
                trace_id,
                span_id: random_span_id(),
                flags,
            },
            parent_span_id,
            started_nanos: unix_nanos(),
        })
    }

    /// Ends the span: an OTLP span, with the attributes given.
    fn finish(self, name: &str, attributes: &[(&str, String)]) -> Value {
        let attributes: Vec<Value> = attributes
            .iter()
            .map(|(key, value)| json!({"key": key, "value": {"stringValue": value}}))
            .collect();
        let mut span = json!({
            "traceId": hex(&self.context.trace_id),
            "spanId": hex(&self.context.span_id),
            "name": name,
            "kind": 5, // SPAN_KIND_CONSUMER
            "startTimeUnixNano": self.started_nanos.to_string(),
            "endTimeUnixNano": unix_nanos().to_string(),
            "attributes": attributes,
        });
        if let Some(parent) = self.parent_span_id {
            span["parentSpanId"] = json!(hex(&parent));
        }
        span
    }
}

/// Hands finished spans to the export thread. Without `TRACE_ENDPOINT`, spans are not exported.
#[derive(Clone)]
pub struct SpanExporter {
    queue: Option<SyncSender<Value>>,
}

impl SpanExporter {
    pub fn disabled() -> SpanExporter {
        SpanExporter { queue: None }
    }

    /// Starts the export thread posting to `endpoint` (its `/v1/traces` path added when missing).
    pub fn start(endpoint: &str) -> SpanExporter {
        let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        };
        let (queue, spans) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || export(&url, spans))
            .expect("the export thread starts");
        SpanExporter { queue: Some(queue) }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    pub fn finish(&self, span: CommandSpan, name: &str, attributes: &[(&str, String)]) {
        let Some(queue) = &self.queue else { return };
        if let Err(TrySendError::Full(_)) = queue.try_send(span.finish(name, attributes)) {
            tracing::debug!("span export queue full: a span was dropped");
        }
    }
}

/// The export thread: batches spans and posts them until every sender is gone.
fn export(url: &str, spans: Receiver<Value>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut open = true;
    while open {
        let mut batch = Vec::new();
        match spans.recv() {
            Ok(span) => batch.push(span),
            Err(_) => break,
        }
        let deadline = std::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match spans.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            {
                Ok(span) => batch.push(span),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "atlas-drops"}}]},
            "scopeSpans": [{"scope": {"name": "atlas-drops"}, "spans": batch}],
        }]});
        let sent = agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        if let Err(error) = sent {
            tracing::warn!(%error, url, "spans could not be exported");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_nonsense() {
        let header = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(header).unwrap();
        assert_eq!(parent.header().as_bytes(), header);
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            &b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"\xff",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_command_span_is_a_child_of_its_parent() {
        let parent =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span = CommandSpan::start(Some(parent), false).unwrap();
        assert_eq!(span.context.trace_id, parent.trace_id);
        assert_ne!(span.context.span_id, parent.span_id);
        let exported = span.finish("SPAWN process", &[("tenant", "t".into())]);
        assert_eq!(exported["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(exported["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(CommandSpan::start(None, false).is_none());
        let root = CommandSpan::start(None, true).unwrap().finish("x", &[]);
        assert!(root.get("parentSpanId").is_none());
    }
}
