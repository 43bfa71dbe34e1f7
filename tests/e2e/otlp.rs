//! Spans as an OpenTelemetry collector receives them: stand-in OTLP receivers built from the
//! OpenTelemetry protobuf definitions (`opentelemetry-proto`), over gRPC (the default) and over
//! HTTP/protobuf; the W3C trace context carried from a command to its events and to its span;
//! JSON log lines naming the drop and the trace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::Value;

use crate::harness::*;

const MAP: u32 = 600_000_000;
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// Every export request a stand-in collector received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

impl Received {
    fn keep(&self, request: ExportTraceServiceRequest) {
        self.0.lock().unwrap().push(request);
    }

    /// The spans received so far, each with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let requests = self.0.lock().unwrap();
        let mut spans = Vec::new();
        for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .map(|attribute| text(attribute.value.as_ref()))
                .unwrap_or_default();
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    spans.push((service.clone(), span.clone()));
                }
            }
        }
        spans
    }

    /// The first span of `trace_id` (hex), waiting up to 15 s for it.
    async fn span_of(&self, trace_id: &str) -> (String, Span) {
        let started = Instant::now();
        loop {
            if let Some(span) =
                (self.spans().into_iter()).find(|(_, s)| hex(&s.trace_id) == trace_id)
            {
                return span;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no span of trace {trace_id} exported; received {:?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The OTLP/gRPC trace service, keeping what it receives.
#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.keep(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A stand-in collector serving OTLP over gRPC on a free port: its endpoint, and what it got.
async fn grpc_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(received.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.expect("the OTLP/gRPC receiver runs") });
    (endpoint, received)
}

/// A stand-in collector serving OTLP over HTTP with protobuf bodies at `/v1/traces`.
async fn http_receiver() -> (String, Received) {
    let received = Received::default();
    let kept = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| async move {
            kept.keep(ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body"));
            ExportTraceServiceResponse::default().encode_to_vec()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (endpoint, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        other => panic!("not a string attribute: {other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> String {
    let found = span
        .attributes
        .iter()
        .find(|attribute| attribute.key == key);
    text(
        found
            .unwrap_or_else(|| panic!("no {key} on {span:?}"))
            .value
            .as_ref(),
    )
}

/// The tenant's headers with a W3C trace context.
fn traced(peer: &Peer, traceparent: &str) -> OwnedHeaders {
    peer.tenant
        .headers()
        .insert(Header {
            key: "traceparent",
            value: Some(traceparent),
        })
        .insert(Header {
            key: "tracestate",
            value: Some("atlas=1"),
        })
}

/// `(version, trace id, span id, flags)` of an event's `traceparent`.
fn traceparent_of(event: &Event) -> [String; 4] {
    let header = String::from_utf8(event.headers["traceparent"].clone()).unwrap();
    let parts: Vec<String> = header.split('-').map(str::to_owned).collect();
    parts.try_into().unwrap_or_else(|_| panic!("{header}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commands_span_reaches_an_otlp_grpc_receiver_as_the_child_of_its_sender() {
    let (endpoint, received) = grpc_receiver().await;
    let options = Options::default()
        .env("TRACE_ENDPOINT", &endpoint)
        .env("LOG_FORMAT", "json");
    let mut env = TestEnv::with(options).await;
    let (peer, service) = (&mut env.peer, &env.service);

    let spawn = spawn_item(MAP, 2_000_000);
    let headers = traced(peer, &format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"));
    peer.send_raw(Some(headers), &serde_json::to_vec(&spawn).unwrap())
        .await;
    let created = peer.next_event().await;
    let [version, trace, span_id, flags] = traceparent_of(&created);
    assert_eq!(
        (version.as_str(), trace.as_str(), flags.as_str()),
        ("00", PARENT_TRACE, "01")
    );
    assert_ne!(
        span_id, PARENT_SPAN,
        "the event's parent is the service's span"
    );
    assert_eq!(created.headers["tracestate"], b"atlas=1");

    // The service's span: the child of the command's sender, the parent of the event.
    let (service_name, span) = received.span_of(PARENT_TRACE).await;
    assert_eq!(service_name, "atlas-drops");
    assert_eq!(hex(&span.parent_span_id), PARENT_SPAN);
    assert_eq!(hex(&span.span_id), span_id);
    assert_eq!(span.name, "SPAWN process");
    assert_eq!(span.kind, SpanKind::Consumer as i32);
    let drop_id = created.drop_id().to_string();
    assert_eq!(attribute(&span, "atlas.drop_id"), drop_id);
    assert_eq!(attribute(&span, "atlas.outcome"), "applied");
    assert_eq!(attribute(&span, "atlas.command"), "SPAWN");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);

    // A command without trace context starts a trace of its own, its span a root.
    peer.send(&reserve(MAP, created.drop_id(), 7)).await;
    let reserved = peer.next_event().await;
    let [_, fresh_trace, fresh_span, fresh_flags] = traceparent_of(&reserved);
    assert_ne!(fresh_trace, PARENT_TRACE);
    assert_eq!(fresh_flags, "01", "TRACE_SAMPLING_RATIO is 1 by default");
    let (_, root) = received.span_of(&fresh_trace).await;
    assert!(root.parent_span_id.is_empty(), "{root:?}");
    assert_eq!(hex(&root.span_id), fresh_span);
    assert_eq!(root.name, "REQUEST_RESERVATION process");

    // Logs: one JSON object a line; the line about the drop names tenant, drop, transaction and
    // trace, and no span (the command span is exported, not logged).
    let logs = service.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    let applied = lines
        .iter()
        .find(|line| {
            line["fields"]["message"] == "applied" && line["fields"]["drop_id"] == created.drop_id()
        })
        .unwrap_or_else(|| panic!("no log line about drop {drop_id}:\n{logs}"));
    assert_eq!(applied["fields"]["tenant"], peer.tenant.id.to_string());
    assert_eq!(applied["fields"]["transaction_id"], spawn["transactionId"]);
    assert_eq!(applied["fields"]["trace_id"], PARENT_TRACE);
    assert!(applied.get("span").is_none(), "{applied}");
}

/// `TRACE_PROTOCOL=http/protobuf`, with `TRACE_SAMPLING_RATIO=0`: traces that start here are
/// not sampled (their events say so), a sender's sampled trace still is.
#[tokio::test(flavor = "multi_thread")]
async fn spans_go_over_http_protobuf_when_asked_and_sampling_follows_the_ratio_and_the_sender() {
    let (endpoint, received) = http_receiver().await;
    let options = Options::default()
        .env("TRACE_ENDPOINT", &endpoint)
        .env("TRACE_PROTOCOL", "http/protobuf")
        .env("TRACE_SAMPLING_RATIO", "0");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;

    let headers = traced(peer, &format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"));
    let spawn = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
    peer.send_raw(Some(headers), &spawn).await;
    let created = peer.next_event().await;

    // Not sampled: a trace starting here, and a sender's trace it did not sample.
    peer.send(&reserve(MAP, created.drop_id(), 7)).await;
    let [_, unsampled_trace, _, flags] = traceparent_of(&peer.next_event().await);
    assert_eq!(
        flags, "00",
        "a trace that starts here is not sampled at ratio 0"
    );
    let not_sampled = "0af7651916cd43dd8448eb211c80319c";
    let headers = traced(peer, &format!("00-{not_sampled}-b7ad6b7169203331-00"));
    let cancel = serde_json::to_vec(&cancel(MAP, created.drop_id(), 7)).unwrap();
    peer.send_raw(Some(headers), &cancel).await;
    let [_, trace, _, flags] = traceparent_of(&peer.next_event().await);
    assert_eq!((trace.as_str(), flags.as_str()), (not_sampled, "00"));

    // Sampled by its sender: exported, after the two before it would have been.
    let (_, span) = received.span_of(PARENT_TRACE).await;
    assert_eq!(hex(&span.parent_span_id), PARENT_SPAN);
    assert_eq!(span.name, "SPAWN process");
    let other_trace = "1bf92f3577b34da6a3ce929d0e0e4736";
    let headers = traced(peer, &format!("00-{other_trace}-{PARENT_SPAN}-01"));
    let spawn = serde_json::to_vec(&spawn_item(MAP, 2_000_001)).unwrap();
    peer.send_raw(Some(headers), &spawn).await;
    peer.next_event().await;
    received.span_of(other_trace).await;
    let exported: Vec<String> = (received.spans().iter())
        .map(|(_, span)| hex(&span.trace_id))
        .collect();
    assert!(!exported.contains(&unsampled_trace), "{exported:?}");
    assert!(
        !exported.iter().any(|trace| trace == not_sampled),
        "{exported:?}"
    );
}

/// Without `TRACE_ENDPOINT` nothing is exported, but a command's trace still goes on in its events,
/// from a span id of the service's.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_endpoint_the_events_still_carry_the_commands_trace() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let headers = traced(peer, &format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"));
    let spawn = serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap();
    peer.send_raw(Some(headers), &spawn).await;
    let created = peer.next_event().await;
    let [version, trace, span_id, flags] = traceparent_of(&created);
    assert_eq!(
        (version.as_str(), trace.as_str(), flags.as_str()),
        ("00", PARENT_TRACE, "01")
    );
    assert_ne!(span_id, PARENT_SPAN);
    assert_eq!(created.headers["tracestate"], b"atlas=1");
    // A command without trace context: none on its events either.
    peer.send(&reserve(MAP, created.drop_id(), 7)).await;
    assert!(!peer.next_event().await.headers.contains_key("traceparent"));
}
