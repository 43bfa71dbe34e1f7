//! Traces and logs as operators see them: W3C trace context carried from command to events,
//! spans exported over OTLP/HTTP to a collector, JSON log lines naming the drop.

use std::time::Duration;

use rdkafka::message::Header;
use serde_json::Value;

use crate::harness::*;

const MAP: u32 = 600_000_000;
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread")]
async fn a_commands_trace_goes_on_in_its_events_and_to_the_collector() {
    let collector = Collector::start().await;
    let options = Options::default()
        .env("TRACE_ENDPOINT", &collector.url)
        .env("LOG_FORMAT", "json");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;

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
        if let Some(span) = collector
            .spans()
            .into_iter()
            .find(|s| s["traceId"] == PARENT_TRACE)
        {
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
    let logs = env.service.logs();
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
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
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
