//! HTTP servers of ours that stand in for the peers the service calls: the equipment, the
//! configuration and the data service. (The OTLP receivers, built from the OpenTelemetry
//! protobuf definitions, are in `otlp`.) Each listens on a free port of its own, on the test's
//! runtime.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};

use super::free_port;

/// Serves `app` on a free port; its address.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// `(method, path, tenant headers, body)` of one request.
pub type Request = (String, String, Vec<String>, Value);

/// The equipment service, a peer we do not own, speaking its JSON:API: `POST {url}equipables`
/// answered with the new equipment's id (5001, 5002, …), `DELETE {url}equipables/{id}`.
pub struct EquipmentService {
    /// For `EQUIPABLES_SERVICE_URL`.
    pub url: String,
    state: Arc<Equipment>,
}

#[derive(Default)]
struct Equipment {
    /// Every request, in order.
    requests: Mutex<Vec<Request>>,
    /// Creations to answer 500 before succeeding.
    failures_left: AtomicUsize,
    /// Answer every creation 500.
    down: AtomicBool,
    next_id: AtomicU32,
}

impl EquipmentService {
    pub async fn start() -> EquipmentService {
        let state = Arc::new(Equipment::default());
        let app = Router::new()
            .route("/api/equipables", post(create))
            .route("/api/equipables/{id}", delete(remove))
            .with_state(state.clone());
        let url = format!("http://{}/api/", serve(app).await);
        EquipmentService { url, state }
    }

    /// The requests made with `method` so far, in order.
    pub fn requests(&self, method: &str) -> Vec<Request> {
        (self.state.requests.lock().unwrap().iter())
            .filter(|r| r.0 == method)
            .cloned()
            .collect()
    }

    /// Answers the next `count` creations 500.
    pub fn fail_next(&self, count: usize) {
        self.state.failures_left.store(count, Ordering::SeqCst);
    }

    /// Answers every creation from now on 500.
    pub fn go_down(&self) {
        self.state.down.store(true, Ordering::SeqCst);
    }
}

fn tenant_of(headers: &HeaderMap) -> Vec<String> {
    ["TENANT_ID", "REGION", "MAJOR_VERSION", "MINOR_VERSION"]
        .iter()
        .map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

async fn create(
    State(stub): State<Arc<Equipment>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    stub.requests.lock().unwrap().push((
        "POST".into(),
        "/api/equipables".into(),
        tenant_of(&headers),
        body.clone(),
    ));
    let failing = stub.down.load(Ordering::SeqCst)
        || stub
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    }
    let id = 5001 + stub.next_id.fetch_add(1, Ordering::SeqCst);
    let item = &body["data"]["attributes"]["itemId"];
    let answer = json!({"data": {"type": "equipables", "id": id.to_string(), "attributes": {"itemId": item, "strength": 3}}});
    (StatusCode::CREATED, answer.to_string())
}

async fn remove(
    State(stub): State<Arc<Equipment>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> StatusCode {
    stub.requests.lock().unwrap().push((
        "DELETE".into(),
        format!("/api/equipables/{id}"),
        tenant_of(&headers),
        Value::Null,
    ));
    StatusCode::NO_CONTENT
}

/// How the configuration service answers `GET {url}configurations/services/{id}`.
#[derive(Clone, Debug)]
pub enum Configured {
    /// Its JSON:API `services` resource, whose `drop_expiration_task` lasts this many ms.
    Lifetime(u64),
    /// A document of another shape (no tasks).
    Bad,
    /// Only after a minute.
    Slow,
}

/// The configuration service (atlas-configurations), a peer we do not own.
pub struct ConfigurationService {
    /// For `CONFIGURATIONS_SERVICE_URL`.
    pub url: String,
    /// The paths asked, in order.
    asked: Arc<Mutex<Vec<String>>>,
}

impl ConfigurationService {
    pub async fn start(answer: Configured) -> ConfigurationService {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/configurations/services/{id}", get(configuration))
            .with_state((answer, asked.clone()));
        let url = format!("http://{}/api/", serve(app).await);
        ConfigurationService { url, asked }
    }

    /// A URL nobody answers at.
    pub fn down() -> ConfigurationService {
        ConfigurationService {
            url: format!("http://127.0.0.1:{}/api/", free_port()),
            asked: Arc::default(),
        }
    }

    /// The paths asked so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

async fn configuration(
    State((answer, asked)): State<(Configured, Arc<Mutex<Vec<String>>>)>,
    Path(id): Path<String>,
) -> (StatusCode, String) {
    asked
        .lock()
        .unwrap()
        .push(format!("/api/configurations/services/{id}"));
    let attributes = match answer {
        Configured::Lifetime(duration) => json!({
            "type": "drops-service",
            "tasks": [
                {"type": "other_task", "interval": "often", "duration": -1},
                {"type": "drop_expiration_task", "interval": 10000, "duration": duration},
            ],
        }),
        Configured::Bad => json!({"type": "drops-service"}),
        Configured::Slow => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            json!({})
        }
    };
    let document = json!({"data": {"type": "services", "id": id, "attributes": attributes}});
    (StatusCode::OK, document.to_string())
}

/// How the data service answers `POST {url}data/maps/{mapId}/footholds/below`.
#[derive(Clone, Copy, Debug)]
pub enum Floor {
    /// A `footholds` resource from `(x1, y1)` to `(x2, y2)`.
    Foothold([i16; 4]),
    /// 404: no floor below.
    None,
    /// 500.
    Failing,
    /// The foothold, after this long.
    Slow(Duration, [i16; 4]),
}

/// The data service (atlas-data), a peer we do not own, speaking its JSON:API.
pub struct DataService {
    /// For `DATA_SERVICE_URL`.
    pub url: String,
    state: Arc<Data>,
}

struct Data {
    answer: Mutex<Floor>,
    requests: Mutex<Vec<Request>>,
}

impl DataService {
    pub async fn start(answer: Floor) -> DataService {
        let state = Arc::new(Data {
            answer: Mutex::new(answer),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route("/api/data/maps/{map}/footholds/below", post(below))
            .with_state(state.clone());
        let url = format!("http://{}/api/", serve(app).await);
        DataService { url, state }
    }

    /// Answers the next requests so.
    pub fn answer(&self, answer: Floor) {
        *self.state.answer.lock().unwrap() = answer;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }
}

async fn below(
    State(stub): State<Arc<Data>>,
    Path(map): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    stub.requests.lock().unwrap().push((
        "POST".into(),
        format!("/api/data/maps/{map}/footholds/below"),
        tenant_of(&headers),
        body,
    ));
    let answer = *stub.answer.lock().unwrap();
    let [x1, y1, x2, y2] = match answer {
        Floor::Foothold(segment) => segment,
        Floor::Slow(delay, segment) => {
            tokio::time::sleep(delay).await;
            segment
        }
        Floor::None => {
            let error = json!({"errors": [{"status": "404", "title": "Not Found"}]});
            return (StatusCode::NOT_FOUND, error.to_string());
        }
        Floor::Failing => return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into()),
    };
    let document = json!({"data": {"type": "footholds", "id": "31", "attributes": {
        "first": {"x": x1, "y": y1}, "second": {"x": x2, "y": y2},
    }}});
    (StatusCode::OK, document.to_string())
}
