//! Traces and logs as operators see them: W3C trace context carried from command to events,
//! spans exported over OTLP/HTTP to a collector, JSON log lines naming the drop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;
use axum::routing::post;
use axum::Router;
use rdkafka::message::Header;
use serde_json::Value;

const MAP: u32 = 600_000_000;
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// A stand-in OTLP/HTTP collector: keeps every JSON body posted to /v1/traces.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: String| async move {
            kept.lock()
                .unwrap()
                .push(serde_json::from_str::<Value>(&body).expect("OTLP JSON"));
            "{}"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commands_trace_goes_on_in_its_events_and_to_the_collector() {
    let (endpoint, received) = collector().await;
    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    let service = Service::start(
        &broker,
        &names,
        &[("TRACE_ENDPOINT", &endpoint), ("LOG_FORMAT", "json")],
    );

    let traceparent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    let headers = peer
        .tenant
        .headers()
        .insert(Header {
            key: "traceparent",
            value: Some(traceparent.as_str()),
        })
        .insert(Header {
            key: "tracestate",
            value: Some("atlas=1"),
        });
    let spawn = spawn_item(MAP, 2_000_000);
    peer.send_raw(Some(headers), &serde_json::to_vec(&spawn).unwrap())
        .await;
    let created = peer.next_event().await;
    let carried = String::from_utf8(created.headers["traceparent"].clone()).unwrap();
    let parts: Vec<&str> = carried.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", PARENT_TRACE, "01"),
        "{carried}"
    );
    assert_ne!(
        parts[2], PARENT_SPAN,
        "the event's parent is the service's span"
    );
    assert_eq!(created.headers["tracestate"], b"atlas=1");

    // The service's span reaches the collector, child of the command's.
    let started = std::time::Instant::now();
    let span = loop {
        let spans: Vec<Value> = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|body| {
                body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        if let Some(span) = spans.into_iter().find(|s| s["traceId"] == PARENT_TRACE) {
            break span;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no span exported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(span["parentSpanId"], PARENT_SPAN);
    assert_eq!(span["spanId"], parts[2]);
    assert_eq!(span["name"], "SPAWN process");
    let attributes = span["attributes"].as_array().unwrap();
    let drop_id = created.drop_id().to_string();
    assert!(attributes
        .iter()
        .any(|a| a["key"] == "atlas.drop_id" && a["value"]["stringValue"] == drop_id.as_str()));

    // A command without trace context starts a trace of its own when spans are exported.
    peer.send(&reserve(MAP, created.drop_id(), 7)).await;
    let reserved = peer.next_event().await;
    let fresh = String::from_utf8(reserved.headers["traceparent"].clone()).unwrap();
    assert!(
        fresh.starts_with("00-") && !fresh.contains(PARENT_TRACE),
        "{fresh}"
    );

    // Logs: one JSON object a line; the line about the drop names tenant, drop and transaction.
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
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_traceparent_is_not_passed_on() {
    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    let _service = Service::start(&broker, &names, &[]);
    let headers = peer
        .tenant
        .headers()
        .insert(Header {
            key: "traceparent",
            value: Some("00-nonsense-01"),
        })
        .insert(Header {
            key: "tracestate",
            value: Some("atlas=1"),
        });
    peer.send_raw(
        Some(headers),
        &serde_json::to_vec(&spawn_item(MAP, 2_000_000)).unwrap(),
    )
    .await;
    let created = peer.next_event().await;
    assert!(!created.headers.contains_key("traceparent"));
    assert!(!created.headers.contains_key("tracestate"));
}
