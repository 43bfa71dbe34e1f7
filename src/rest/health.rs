//! Liveness, readiness and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;

use super::AppState;
use crate::clock;
use crate::kafka::consumer::CommandConsumer;
use crate::kafka::producer::Producers;
use crate::metrics::{Exposition, Gauges, Metrics};
use crate::shutdown::Shutdown;
use crate::store::DropStore;

/// How long the readiness probe waits for the broker's answer.
const BROKER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready means: not shutting down, the consumer holds partitions, no partition is unable to
/// commit, the producer is not broken and reaches the broker, and the store answers (a shared
/// store's Redis).
pub struct Readiness {
    pub consumer: Arc<CommandConsumer>,
    pub producers: Arc<Producers>,
    pub metrics: Arc<Metrics>,
    pub event_topic: String,
    pub shutdown: Shutdown,
    pub store: Arc<dyn DropStore>,
}

impl Readiness {
    async fn check(self: Arc<Self>) -> Result<(), String> {
        if self.shutdown.is_triggered() {
            return Err("shutting down".to_owned());
        }
        let assigned = self
            .consumer
            .assignment()
            .map_err(|error| format!("consumer: {error}"))?
            .count();
        if assigned == 0 {
            return Err("consumer holds no partition of the command topic".to_owned());
        }
        let stalled = self.metrics.stalled_partitions();
        if !stalled.is_empty() {
            return Err(format!(
                "partitions cannot commit (an event was not delivered): {}",
                stalled.join(", ")
            ));
        }
        if let Some(reason) = self.producers.broken() {
            return Err(format!(
                "the producer broke ({reason}); a fresh one replaces it"
            ));
        }
        // A metadata request is a round trip to the broker, and librdkafka blocks; so does a
        // shared store's ping: off the runtime.
        tokio::task::spawn_blocking(move || {
            self.producers
                .current()
                .producer
                .client()
                .fetch_metadata(Some(&self.event_topic), BROKER_PROBE_TIMEOUT)
                .map_err(|error| format!("producer cannot reach the broker: {error}"))?;
            self.store.check()
        })
        .await
        .map_err(|error| format!("probe failed: {error}"))?
    }
}

pub async fn alive() -> &'static str {
    "ok\n"
}

pub async fn ready(State(state): State<AppState>) -> Response {
    match state.readiness.clone().check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// The Prometheus text format, or OpenMetrics text for a scraper that asks for it (Prometheus
/// does).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Exposition::negotiate(headers.get(ACCEPT).and_then(|value| value.to_str().ok()));
    let store = state.store.clone();
    // Counting drops visits every shard: off the runtime's threads.
    let counts = tokio::task::spawn_blocking(move || store.counts(clock::now()))
        .await
        .unwrap_or_default();
    let gauges = Gauges {
        live_drops: counts.live,
        reserved_drops: counts.reserved,
        outbox_events: counts.outbox,
    };
    let text = state.metrics.render(&gauges, format);
    ([(CONTENT_TYPE, format.content_type())], text).into_response()
}
