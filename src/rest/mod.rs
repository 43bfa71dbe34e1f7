//! The HTTP side: the JSON:API drop queries the channel servers use (contract §4), and the
//! health, readiness and metrics endpoints operators use.

mod drops;
mod health;
mod jsonapi;
mod query;
mod tenant;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub use health::Readiness;

use crate::metrics::Metrics;
use crate::store::DropStore;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<DropStore>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/drops/{id}", get(drops::one))
        .route(
            "/api/worlds/{world_id}/channels/{channel_id}/maps/{map_id}/drops",
            get(drops::in_map),
        )
        .route(
            "/api/worlds/{world_id}/channels/{channel_id}/maps/{map_id}/instances/{instance}/drops",
            get(drops::in_instance),
        )
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        // Also under `/api/`, where the newer generation's operators look (contract-head §8).
        .route("/api/readyz", get(health::ready))
        .route("/api/metrics", get(health::metrics))
        .fallback(jsonapi::no_route)
        .with_state(state)
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(error) = axum::serve(listener, router(state))
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(%error, "REST server failed");
    }
}
