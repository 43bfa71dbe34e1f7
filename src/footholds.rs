//! The data service (atlas-data), a peer we do not own, over its JSON:API: the foothold below a
//! point of a map, where a character's drop lands (contract-head §5). One request, bounded by
//! `DATA_TIMEOUT_MS` and not retried: the drop simply stays where it was dropped. It runs beside
//! the command path, never in it (see `kafka::consumer::handler`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinError;
use ureq::http::StatusCode;

use crate::drop::floor::Foothold;
use crate::drop::model::{Point, Tenant};
use crate::peer::{with_tenant, OneResource, Peer};

/// Why the data service named no foothold (its 404, "no floor below", is not an error).
#[derive(Debug, thiserror::Error)]
pub enum FootholdError {
    #[error("POST {url}: {source}")]
    Transport { url: String, source: ureq::Error },
    #[error("POST {url}: {status}")]
    Status { url: String, status: StatusCode },
    #[error("POST {url}: not a foothold: {source}")]
    Shape {
        url: String,
        source: serde_json::Error,
    },
    #[error("the data service request failed: {0}")]
    Thread(#[from] JoinError),
}

/// The attributes of the `footholds` resource the data service answers.
#[derive(Deserialize)]
struct Attributes {
    first: PointWire,
    second: PointWire,
}

/// A map's coordinates are `i16`, as the drop's: a point beyond them is not a foothold.
#[derive(Deserialize)]
struct PointWire {
    x: i16,
    y: i16,
}

impl From<PointWire> for Point {
    fn from(point: PointWire) -> Point {
        Point {
            x: point.x,
            y: point.y,
        }
    }
}

#[derive(Clone)]
pub struct DataService {
    peer: Peer,
}

impl DataService {
    /// The data service at `base`, each request answered within `timeout` or given up.
    pub fn new(base: &str, timeout: Duration) -> DataService {
        DataService {
            peer: Peer::new(base, timeout),
        }
    }

    /// The foothold below `at` on map `map_id`; none when the service says there is no floor
    /// (404).
    pub async fn foothold_below(
        &self,
        tenant: &Tenant,
        map_id: u32,
        at: Point,
    ) -> Result<Option<Foothold>, FootholdError> {
        let url = (self.peer).url(&format!("data/maps/{map_id}/footholds/below"));
        let body =
            json!({"data": {"type": "positions", "id": "0", "attributes": {"x": at.x, "y": at.y}}});
        let request = with_tenant(self.peer.agent.post(&url), tenant)
            .header("Content-Type", "application/vnd.api+json");
        let _turn = self.peer.turn().await;
        tokio::task::spawn_blocking(move || {
            let mut response = match request.send(body.to_string()) {
                Ok(response) => response,
                Err(source) => return Err(FootholdError::Transport { url, source }),
            };
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(FootholdError::Status { url, status });
            }
            let body = match response.body_mut().read_to_string() {
                Ok(body) => body,
                Err(source) => return Err(FootholdError::Transport { url, source }),
            };
            match serde_json::from_str::<OneResource<Attributes>>(&body) {
                Ok(OneResource { data }) => Ok(Some(Foothold {
                    first: data.attributes.first.into(),
                    second: data.attributes.second.into(),
                })),
                Err(source) => Err(FootholdError::Shape { url, source }),
            }
        })
        .await?
    }
}
