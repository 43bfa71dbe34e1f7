//! W3C trace context, by OpenTelemetry. Each command is handled in a span whose parent is the
//! command's `traceparent`, read by the SDK's `TraceContextPropagator`; the events it causes
//! carry that span as their `traceparent`, written by the same propagator, so the trace goes on
//! through the peers that read them.
//!
//! With `TRACE_ENDPOINT` set, the command span is a `tracing` span, made an OpenTelemetry span by
//! `tracing-opentelemetry` (see `crate::telemetry`) and entered while the command is handled, so
//! `tracing` spans opened meanwhile are its children and its log lines its span events. The
//! SDK samples it (`TRACE_SAMPLING_RATIO` for traces that start here; a command's own trace
//! keeps the sampling its sender chose) and its batch processor exports it over OTLP, gRPC or
//! HTTP/protobuf, from a thread of its own: the command path only hands a finished span to a
//! bounded queue, and the processor drops it when the queue is full. Without `TRACE_ENDPOINT`,
//! a command with a `traceparent` still gets a span id of its own for its events, and nothing
//! else is done.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use clap::ValueEnum;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler,
    SdkTracerProvider, SpanExporter as Export,
};
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::{self, COMMAND_SPAN_TARGET};

/// Spans waiting for export, at most.
const QUEUE: usize = 8192;
/// Spans in one export request, at most.
const BATCH: usize = 512;
/// How long a span waits for its batch to fill, at most.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The `service.name` of the spans, and the name of their instrumentation scope.
const SERVICE: &str = "atlas-drops";

/// How spans travel to `TRACE_ENDPOINT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceProtocol {
    /// OTLP over gRPC, e.g. to http://otel-collector:4317.
    #[value(name = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies, e.g. to http://otel-collector:4318 (`/v1/traces` is
    /// added when missing).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// A command's `traceparent`: the span context the SDK's propagator read from it.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceParent(SpanContext);

/// The `traceparent` of a command, for the propagator to read.
struct Incoming<'a>(&'a str);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// The `traceparent` of an event, as the propagator writes it (its `tracestate` is the
/// command's, passed on as it came).
#[derive(Default)]
struct Outgoing(Option<String>);

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

/// W3C's fixed layout around the SDK's parser: `vv-<32 hex>-<16 hex>-<2 hex>`, 55 bytes, and
/// for a later version than 00 whatever follows a further `-`. The SDK reads the ids as numbers
/// and so takes shorter ones, and a version 00 with a trailing `-`: not passed on.
fn well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    let hex = |from: usize, to: usize| bytes[from..to].iter().all(u8::is_ascii_hexdigit);
    bytes.len() >= 55
        && (bytes[2], bytes[35], bytes[52]) == (b'-', b'-', b'-')
        && hex(0, 2)
        && hex(3, 35)
        && hex(36, 52)
        && hex(53, 55)
        && (bytes.len() == 55 || &bytes[..2] != b"00" && bytes[55] == b'-')
}

impl TraceParent {
    /// The span context of a `traceparent` header; anything the propagator does not take (or
    /// all-zero ids) is no parent.
    pub fn parse(header: &[u8]) -> Option<TraceParent> {
        let text = std::str::from_utf8(header).ok()?.trim();
        if !well_formed(text) {
            return None;
        }
        let context =
            TraceContextPropagator::new().extract_with_context(&Context::new(), &Incoming(text));
        let span = context.span();
        let parent = span.span_context();
        parent.is_valid().then(|| TraceParent(parent.clone()))
    }

    /// The `traceparent` header naming this span, as the propagator writes it.
    pub fn header(&self) -> String {
        let context = Context::new().with_remote_span_context(self.0.clone());
        let mut outgoing = Outgoing::default();
        TraceContextPropagator::new().inject_context(&context, &mut outgoing);
        outgoing.0.unwrap_or_default()
    }

    pub fn trace_id_hex(&self) -> String {
        self.0.trace_id().to_string()
    }

    pub fn span_context(&self) -> &SpanContext {
        &self.0
    }
}

/// The span in which one command is handled.
pub struct CommandSpan {
    pub context: TraceParent,
    /// The exported span, entered while the command is handled (`span`) and closed by
    /// `SpanExporter::finish`; none when spans are not exported.
    exported: Option<Span>,
}

impl CommandSpan {
    /// The `tracing` span to enter (or to instrument a future with) while the command is
    /// handled: `tracing` spans opened meanwhile become its children, its log lines its events.
    pub fn span(&self) -> Span {
        self.exported.clone().unwrap_or_else(Span::none)
    }

    /// A child of `parent`; without one, a new trace when spans are exported, else no span.
    pub fn start(parent: Option<TraceParent>, exporting: bool) -> Option<CommandSpan> {
        if exporting {
            if let Some(span) = CommandSpan::exported(parent.as_ref()) {
                return Some(span);
            }
        }
        // Not exported (or no tracer installed, as in a test of the library): ids only.
        let ids = RandomIdGenerator::default();
        let (trace_id, flags) = match &parent {
            Some(parent) => (parent.0.trace_id(), parent.0.trace_flags()),
            None if exporting => (ids.new_trace_id(), TraceFlags::SAMPLED),
            None => return None,
        };
        let context = SpanContext::new(trace_id, ids.new_span_id(), flags, false, TraceState::NONE);
        Some(CommandSpan {
            context: TraceParent(context),
            exported: None,
        })
    }

    /// The command span as a `tracing` span, when the OpenTelemetry layer is installed.
    fn exported(parent: Option<&TraceParent>) -> Option<CommandSpan> {
        let span = tracing::info_span!(
            target: COMMAND_SPAN_TARGET,
            parent: None,
            "command",
            otel.kind = "consumer",
        );
        if let Some(parent) = parent {
            let remote = Context::new().with_remote_span_context(parent.0.clone());
            span.set_parent(remote).ok()?;
        }
        // Its context starts the OpenTelemetry span: sampled, with the ids its events carry.
        let context = span.context();
        let ids = context.span().span_context().clone();
        ids.is_valid().then(|| CommandSpan {
            context: TraceParent(ids),
            exported: Some(span),
        })
    }
}

/// Why spans cannot be exported to `TRACE_ENDPOINT`.
#[derive(Debug, thiserror::Error)]
#[error("TRACE_ENDPOINT {endpoint}: {source}")]
pub struct TraceError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Where command spans go. Without `TRACE_ENDPOINT`, spans are not exported.
#[derive(Clone)]
pub struct SpanExporter {
    provider: Option<SdkTracerProvider>,
}

impl SpanExporter {
    pub fn disabled() -> SpanExporter {
        SpanExporter { provider: None }
    }

    /// Exports spans to `endpoint` from now on, sampling `sampling_ratio` of the traces that
    /// start here. Must be called within the Tokio runtime (the gRPC channel lives there).
    pub fn start(
        endpoint: &str,
        protocol: TraceProtocol,
        sampling_ratio: f64,
    ) -> Result<SpanExporter, TraceError> {
        let exporter = match protocol {
            TraceProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            TraceProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(Ureq::new())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(traces_url(endpoint))
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .map_err(|source| TraceError {
            endpoint: endpoint.to_owned(),
            source,
        })?;
        let provider = provider(exporter, sampling_ratio);
        if !telemetry::install_tracer(provider.tracer(SERVICE)) {
            tracing::warn!("a tracer was installed already: spans go on to its endpoint");
        }
        Ok(SpanExporter {
            provider: Some(provider),
        })
    }

    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Ends the span, named `name` and with the attributes given: the SDK queues it for export.
    pub fn finish(&self, span: CommandSpan, name: &str, attributes: &[(&str, String)]) {
        let Some(exported) = span.exported else {
            return;
        };
        let context = exported.context();
        let otel = context.span();
        otel.update_name(name.to_owned());
        otel.set_attributes(
            attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.to_string(), value.clone())),
        );
        // Leaving the span closes it (no other handle): the layer ends the OpenTelemetry span.
        drop(exported);
    }
}

/// Spans sampled by `sampling_ratio` (for traces that start here), batched for `exporter`.
fn provider(exporter: impl Export + 'static, sampling_ratio: f64) -> SdkTracerProvider {
    let batches = BatchConfigBuilder::default()
        .with_max_queue_size(QUEUE)
        .with_max_export_batch_size(BATCH)
        .with_scheduled_delay(FLUSH_EVERY)
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batches)
                .build(),
        )
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sampling_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(SERVICE).build())
        .build()
}

/// `endpoint` with the OTLP/HTTP traces path, `/v1/traces`, added when missing.
fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// OTLP/HTTP requests sent with ureq, the HTTP client the service has already, blocking: the
/// batch processor runs each export to completion on its own thread.
#[derive(Debug)]
struct Ureq(ureq::Agent);

impl Ureq {
    fn new() -> Ureq {
        Ureq(
            ureq::Agent::config_builder()
                .timeout_global(Some(EXPORT_TIMEOUT))
                // The exporter reads the status itself (and retries what may be retried).
                .http_status_as_error(false)
                .build()
                .into(),
        )
    }

    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self.0.run(Request::from_parts(parts, &body[..]))?;
        let body = response.body_mut().read_to_vec()?;
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, Bytes::from(body)))
    }
}

impl HttpClient for Ureq {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.send(request) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips_and_rejects_nonsense() {
        let parent = TraceParent::parse(HEADER).unwrap();
        assert_eq!(parent.header().as_bytes(), HEADER);
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            &b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"00-nonsense-01",
            b"\xff",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version is read as far as version 00 goes (W3C's forward compatibility); our
        // events carry version 00.
        let later =
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x");
        assert_eq!(later.unwrap().header().as_bytes(), HEADER);
    }

    #[test]
    fn a_command_span_is_a_child_of_its_parent() {
        let parent = TraceParent::parse(HEADER).unwrap();
        let span = CommandSpan::start(Some(parent.clone()), false).unwrap();
        let (ours, theirs) = (span.context.span_context(), parent.span_context());
        assert_eq!(ours.trace_id(), theirs.trace_id());
        assert_ne!(ours.span_id(), theirs.span_id());
        assert!(ours.is_sampled());
        assert!(span.exported.is_none());
        assert!(CommandSpan::start(None, false).is_none());
        // Exporting, but no tracer installed here: a trace of its own, with ids only.
        let root = CommandSpan::start(None, true).unwrap();
        assert_ne!(root.context.trace_id_hex(), parent.trace_id_hex());
    }

    /// Keeps what the batch processor exports.
    #[derive(Clone, Debug, Default)]
    struct Collected(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl Export for Collected {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// The only test here that installs a tracer (one a process).
    #[test]
    fn spans_opened_while_a_command_is_handled_are_its_children() {
        let collected = Collected::default();
        let provider = provider(collected.clone(), 1.0);
        assert!(telemetry::install_tracer(provider.tracer(SERVICE)));
        let exporter = SpanExporter {
            provider: Some(provider.clone()),
        };
        let parent = TraceParent::parse(HEADER).unwrap();
        let carried = tracing::subscriber::with_default(telemetry::subscriber(), || {
            let span = CommandSpan::start(Some(parent.clone()), exporter.enabled()).unwrap();
            let carried = span.context.clone();
            span.span().in_scope(|| {
                tracing::info_span!("store").in_scope(|| tracing::info!("looked up"));
                tracing::info!("refused");
            });
            let attributes = [("atlas.drop_id", "7".to_owned())];
            exporter.finish(span, "SPAWN process", &attributes);
            carried
        });
        provider.force_flush().unwrap();

        let spans = collected.0.lock().unwrap();
        let named = |name: &str| spans.iter().find(|span| span.name == name).unwrap();
        let (command, store) = (named("SPAWN process"), named("store"));
        assert_eq!(&command.span_context, carried.span_context());
        assert_eq!(command.parent_span_id, parent.span_context().span_id());
        assert!(command.parent_span_is_remote);
        assert_eq!(command.span_kind, opentelemetry::trace::SpanKind::Consumer);
        assert!(command
            .attributes
            .contains(&KeyValue::new("atlas.drop_id", "7")));
        assert!(command.events.iter().any(|event| event.name == "refused"));
        assert_eq!(store.parent_span_id, command.span_context.span_id());
        assert_eq!(
            store.span_context.trace_id(),
            command.span_context.trace_id()
        );
        assert!(store.events.iter().any(|event| event.name == "looked up"));
    }

    #[test]
    fn the_traces_path_is_added_once() {
        for endpoint in ["http://c:4318", "http://c:4318/", "http://c:4318/v1/traces"] {
            assert_eq!(traces_url(endpoint), "http://c:4318/v1/traces");
        }
    }
}
