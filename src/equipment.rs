//! The equipment service (atlas-equipables), a peer we do not own, over its JSON:API: a SPAWN of
//! an equip item first creates the equipment there, and an expired equip drop deletes it
//! (contract §5). Calls are retried with backoff for a bounded time; they run beside the
//! command path, never in it (see `kafka::consumer::handler`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::drop::model::{Tenant, TenantRef};
use crate::rest::tenant::with_headers as with_tenant;

/// One request's time, at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct EquipmentService {
    /// Base URL ending in `/`, e.g. `http://equipables:8080/api/`.
    base: String,
    agent: ureq::Agent,
    /// How long a call is retried, in all.
    budget: Duration,
}

impl EquipmentService {
    pub fn new(base: &str, budget: Duration) -> EquipmentService {
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        EquipmentService {
            base,
            agent,
            budget,
        }
    }

    /// Creates the equipment of an equip item; its id, or why not after the budget is spent.
    pub async fn create(&self, tenant: &TenantRef, item_id: u32) -> Result<u32, String> {
        let body = json!({"data": {"type": "equipables", "attributes": {"itemId": item_id}}});
        self.retried(tenant, move |service, tenant| {
            let url = format!("{}equipables", service.base);
            let request = with_tenant(service.agent.post(&url), tenant)
                .header("Content-Type", "application/vnd.api+json");
            let mut response = request
                .send(body.to_string())
                .map_err(|error| format!("POST {url}: {error}"))?;
            let status = response.status();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            if !status.is_success() {
                return Err(format!("POST {url}: {status}: {text}"));
            }
            let document: Value = serde_json::from_str(&text)
                .map_err(|error| format!("POST {url}: not JSON: {error}"))?;
            let id = &document["data"]["id"];
            id.as_str()
                .and_then(|id| id.parse().ok())
                .or_else(|| id.as_u64().and_then(|id| u32::try_from(id).ok()))
                .ok_or_else(|| format!("POST {url}: no equipment id in {text}"))
        })
        .await
    }

    /// Deletes an expired drop's equipment.
    pub async fn delete(&self, tenant: &TenantRef, equipment_id: u32) -> Result<(), String> {
        self.retried(tenant, move |service, tenant| {
            let url = format!("{}equipables/{equipment_id}", service.base);
            let response = with_tenant(service.agent.delete(&url), tenant)
                .call()
                .map_err(|error| format!("DELETE {url}: {error}"))?;
            let status = response.status();
            // Gone already is as good as deleted.
            if status.is_success() || status.as_u16() == 404 {
                Ok(())
            } else {
                Err(format!("DELETE {url}: {status}"))
            }
        })
        .await
    }

    /// Runs a blocking request off the runtime, again after a growing pause while it fails,
    /// until it succeeds or the budget is spent.
    async fn retried<T: Send + 'static>(
        &self,
        tenant: &TenantRef,
        request: impl Fn(&EquipmentService, &Tenant) -> Result<T, String>
            + Send
            + Sync
            + Clone
            + 'static,
    ) -> Result<T, String> {
        let deadline = Instant::now() + self.budget;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (service, tenant, request) = (self.clone(), tenant.clone(), request.clone());
            let outcome = tokio::task::spawn_blocking(move || request(&service, &tenant))
                .await
                .map_err(|error| format!("equipment request failed: {error}"))?;
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) if Instant::now() + backoff >= deadline => {
                    return Err(format!("equipment service unavailable: {error}"))
                }
                Err(error) => {
                    tracing::warn!(%error, "equipment service call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Deletes the equipment of expired drops, in the background. Expiry happens under a store
/// lock, so it only queues; the task ends once every `Janitor` is dropped and the queue is done.
#[derive(Clone)]
pub struct Janitor {
    queue: mpsc::UnboundedSender<(TenantRef, u32)>,
}

impl Janitor {
    pub fn start(service: EquipmentService) -> (Janitor, JoinHandle<()>) {
        let (queue, mut expired) = mpsc::unbounded_channel::<(TenantRef, u32)>();
        let task = tokio::spawn(async move {
            while let Some((tenant, equipment_id)) = expired.recv().await {
                if let Err(error) = service.delete(&tenant, equipment_id).await {
                    tracing::error!(%error, equipment_id, tenant = %tenant.id, "equipment of an expired drop not deleted");
                }
            }
        });
        (Janitor { queue }, task)
    }

    pub fn delete(&self, tenant: TenantRef, equipment_id: u32) {
        let _ = self.queue.send((tenant, equipment_id));
    }
}
