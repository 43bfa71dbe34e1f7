//! Expires drops and lapses reservations as their time comes, by sweeping the store's deadline
//! index a few times a second: each sweep costs what comes due, not what lies on the ground.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::clock;
use crate::kafka::events::Events;
use crate::kafka::producer::all_landed;
use crate::metrics::{ExpiryCause, Metrics};
use crate::shutdown::Shutdown;
use crate::store::DropStore;

/// How late after its deadline a drop expires, at most (plus the sweep's own time).
const SWEEP_EVERY: Duration = Duration::from_millis(50);

pub async fn run(
    store: Arc<DropStore>,
    events: Events,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = ticks.tick() => {}
        }
        let mut sink = events.sink();
        let expired = store
            .expire_due(clock::now(), &mut |event| sink.take(event))
            .await;
        let deliveries = sink.deliveries;
        metrics.expired(ExpiryCause::Timeout, expired);
        if expired > 0 {
            tracing::debug!(expired, "drops expired");
            tokio::spawn(async move {
                if let Err(error) = all_landed(deliveries).await {
                    tracing::error!(%error, "an EXPIRED event was not delivered");
                }
            });
        }
    }
}
