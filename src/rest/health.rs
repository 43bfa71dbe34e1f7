//! Liveness, readiness and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use tokio::task::JoinError;

use super::AppState;
use crate::clock;
use crate::kafka::consumer::CommandConsumer;
use crate::kafka::producer::Producers;
use crate::metrics::{Exposition, Gauges, Metrics};
use crate::shutdown::Shutdown;
use crate::store::{DropStore, StoreError};

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
    pub store: Arc<DropStore>,
}

/// Why the service is not ready: `/readyz` answers `503 not ready: <this>`.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("shutting down")]
    ShuttingDown,
    #[error("consumer: {0}")]
    Consumer(KafkaError),
    #[error("consumer holds no partition of the command topic")]
    NoPartition,
    #[error("partitions cannot commit (an event was not delivered): {}", .0.join(", "))]
    Stalled(Vec<String>),
    #[error("the producer broke ({0}); a fresh one replaces it")]
    ProducerBroke(String),
    #[error("producer cannot reach the broker: {0}")]
    NoBroker(KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("probe failed: {0}")]
    Probe(#[from] JoinError),
}

impl Readiness {
    async fn check(self: Arc<Self>) -> Result<(), NotReady> {
        if self.shutdown.is_triggered() {
            return Err(NotReady::ShuttingDown);
        }
        let assigned = (self.consumer.assignment())
            .map_err(NotReady::Consumer)?
            .count();
        if assigned == 0 {
            return Err(NotReady::NoPartition);
        }
        let stalled = self.metrics.stalled_partitions();
        if !stalled.is_empty() {
            return Err(NotReady::Stalled(stalled));
        }
        if let Some(reason) = self.producers.broken() {
            return Err(NotReady::ProducerBroke(reason));
        }
        // A metadata request is a round trip to the broker, and librdkafka blocks: off the runtime.
        let producers = self.producers.clone();
        let event_topic = self.event_topic.clone();
        tokio::task::spawn_blocking(move || {
            producers
                .current()
                .producer
                .client()
                .fetch_metadata(Some(&event_topic), BROKER_PROBE_TIMEOUT)
                .map_err(NotReady::NoBroker)
        })
        .await??;
        Ok(self.store.check().await?)
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
    let counts = state.store.counts(clock::now()).await;
    let gauges = Gauges {
        live_drops: counts.live,
        reserved_drops: counts.reserved,
        outbox_events: counts.outbox,
    };
    let text = state.metrics.render(&gauges, format);
    ([(CONTENT_TYPE, format.content_type())], text).into_response()
}
