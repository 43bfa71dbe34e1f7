//! The equipment service (atlas-equipables), a peer we do not own, over its JSON:API: a SPAWN of
//! an equip item first creates the equipment there, and an expired equip drop deletes it
//! (contract §5). Calls are retried with backoff for a bounded time; they run beside the
//! command path, never in it (see `kafka::consumer::handler`).

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use ureq::http::StatusCode;

use crate::drop::model::{Tenant, TenantRef};
use crate::peer::{with_tenant, Peer};

/// One request's time, at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why the equipment service did not do what was asked, within the budget.
#[derive(Debug, thiserror::Error)]
pub enum EquipmentError {
    /// Every try failed until the budget was spent: the last one says why.
    #[error("equipment service unavailable: {0}")]
    Unavailable(CallError),
    /// The thread of a blocking request failed.
    #[error("equipment request failed: {0}")]
    Thread(#[from] JoinError),
}

/// Why one request failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{call}: {source}")]
    Transport { call: Call, source: ureq::Error },
    /// A refusal, with the body the service answered.
    #[error("{call}: {status}: {body}")]
    Refused {
        call: Call,
        status: StatusCode,
        body: String,
    },
    /// A refusal whose body is not read.
    #[error("{call}: {status}")]
    Status { call: Call, status: StatusCode },
    #[error("{call}: not JSON: {source}")]
    NotJson {
        call: Call,
        source: serde_json::Error,
    },
    #[error("{call}: no equipment id in {body}")]
    NoId { call: Call, body: String },
}

/// A request as logs name it: `POST http://…/equipables`.
#[derive(Debug, Clone)]
pub struct Call {
    method: &'static str,
    url: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

#[derive(Clone)]
pub struct EquipmentService {
    peer: Peer,
    /// How long a call is retried, in all.
    budget: Duration,
}

impl EquipmentService {
    pub fn new(base: &str, budget: Duration) -> EquipmentService {
        EquipmentService {
            peer: Peer::new(base, REQUEST_TIMEOUT),
            budget,
        }
    }

    /// Creates the equipment of an equip item; its id, or why not after the budget is spent.
    pub async fn create(&self, tenant: &TenantRef, item_id: u32) -> Result<u32, EquipmentError> {
        let body = json!({"data": {"type": "equipables", "attributes": {"itemId": item_id}}});
        self.retried(tenant, move |service, tenant| {
            let url = service.peer.url("equipables");
            let call = Call {
                method: "POST",
                url,
            };
            let request = with_tenant(service.peer.agent.post(&call.url), tenant)
                .header("Content-Type", "application/vnd.api+json");
            let mut response = match request.send(body.to_string()) {
                Ok(response) => response,
                Err(source) => return Err(CallError::Transport { call, source }),
            };
            let status = response.status();
            let body = response.body_mut().read_to_string().unwrap_or_default();
            if !status.is_success() {
                return Err(CallError::Refused { call, status, body });
            }
            let document: Value = match serde_json::from_str(&body) {
                Ok(document) => document,
                Err(source) => return Err(CallError::NotJson { call, source }),
            };
            let id = &document["data"]["id"];
            id.as_str()
                .and_then(|id| id.parse().ok())
                .or_else(|| id.as_u64().and_then(|id| u32::try_from(id).ok()))
                .ok_or(CallError::NoId { call, body })
        })
        .await
    }

    /// Deletes an expired drop's equipment.
    pub async fn delete(
        &self,
        tenant: &TenantRef,
        equipment_id: u32,
    ) -> Result<(), EquipmentError> {
        self.retried(tenant, move |service, tenant| {
            let url = service.peer.url(&format!("equipables/{equipment_id}"));
            let call = Call {
                method: "DELETE",
                url,
            };
            let response = match with_tenant(service.peer.agent.delete(&call.url), tenant).call() {
                Ok(response) => response,
                Err(source) => return Err(CallError::Transport { call, source }),
            };
            let status = response.status();
            // Gone already is as good as deleted.
            if status.is_success() || status == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(CallError::Status { call, status })
            }
        })
        .await
    }

    /// Runs a blocking request off the runtime, again after a growing pause while it fails,
    /// until it succeeds or the budget is spent.
    async fn retried<T: Send + 'static>(
        &self,
        tenant: &TenantRef,
        request: impl Fn(&EquipmentService, &Tenant) -> Result<T, CallError>
            + Send
            + Sync
            + Clone
            + 'static,
    ) -> Result<T, EquipmentError> {
        let deadline = Instant::now() + self.budget;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (service, tenant, request) = (self.clone(), tenant.clone(), request.clone());
            let outcome = {
                let _turn = self.peer.turn().await;
                tokio::task::spawn_blocking(move || request(&service, &tenant)).await?
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) if Instant::now() + backoff >= deadline => {
                    return Err(EquipmentError::Unavailable(error))
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
