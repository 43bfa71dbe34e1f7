//! W3C trace context as peers see it without a collector: a malformed `traceparent` is not
//! passed on. (Spans exported to a collector, the trace context they share with the events, and
//! the JSON log lines naming the drop: `otlp`.)

use rdkafka::message::Header;

use crate::harness::*;

const MAP: u32 = 600_000_000;

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
