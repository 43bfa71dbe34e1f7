//! The configuration service (atlas-configurations), a peer we do not own: at start-up it may
//! name the drop lifetime (contract-head §9). Asked once, for a bounded time; the service starts
//! whatever it answers (the older service exited when it could not read it).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinError;
use ureq::http::StatusCode;

use crate::peer::{OneResource, Peer};

/// The longest wait for the answer: start-up goes on without it.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The task whose `duration` is the drop lifetime.
const DROP_EXPIRATION_TASK: &str = "drop_expiration_task";

/// Why the drop lifetime was not read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    #[error("GET {url}: {source}")]
    Transport { url: String, source: ureq::Error },
    #[error("GET {url}: {status}")]
    Status { url: String, status: StatusCode },
    #[error("GET {url}: not a service configuration: {source}")]
    Shape {
        url: String,
        source: serde_json::Error,
    },
    #[error("GET {url}: no {DROP_EXPIRATION_TASK} task")]
    NoTask { url: String },
    #[error(
        "GET {url}: the {DROP_EXPIRATION_TASK}'s duration {duration} is not a whole number of ms above 0"
    )]
    Duration { url: String, duration: Value },
    #[error("the configuration request failed: {0}")]
    Thread(#[from] JoinError),
}

/// The attributes of the `services` resource `GET {URL}configurations/services/{id}` answers.
#[derive(Deserialize)]
struct Attributes {
    tasks: Vec<Task>,
}

/// One of the service's tasks. Only ours is read, so the others' fields may be anything.
#[derive(Deserialize)]
struct Task {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    duration: Value,
}

/// The drop lifetime, in ms, as the configuration service at `base` (ending in `/api/`, say)
/// has it for the service `service_id`.
pub async fn drop_lifetime(base: &str, service_id: &str) -> Result<u64, ConfigurationError> {
    let peer = Peer::new(base, TIMEOUT);
    let url = peer.url(&format!("configurations/services/{service_id}"));
    tokio::task::spawn_blocking(move || read(&peer.agent, url)).await?
}

fn read(agent: &ureq::Agent, url: String) -> Result<u64, ConfigurationError> {
    let request = agent.get(&url).header("Accept", "application/vnd.api+json");
    let mut response = match request.call() {
        Ok(response) => response,
        Err(source) => return Err(ConfigurationError::Transport { url, source }),
    };
    let status = response.status();
    if !status.is_success() {
        return Err(ConfigurationError::Status { url, status });
    }
    let body = match response.body_mut().read_to_string() {
        Ok(body) => body,
        Err(source) => return Err(ConfigurationError::Transport { url, source }),
    };
    let document: OneResource<Attributes> = match serde_json::from_str(&body) {
        Ok(document) => document,
        Err(source) => return Err(ConfigurationError::Shape { url, source }),
    };
    let tasks = document.data.attributes.tasks;
    let Some(task) = tasks.into_iter().find(|t| t.kind == DROP_EXPIRATION_TASK) else {
        return Err(ConfigurationError::NoTask { url });
    };
    // 0 would mean "never expire" here (`DROP_EXPIRE_MS=0`): an operator may choose that, a
    // configuration answer may not switch expiry off.
    let duration = task.duration.as_u64().filter(|&ms| ms > 0);
    duration.ok_or(ConfigurationError::Duration {
        url,
        duration: task.duration,
    })
}
