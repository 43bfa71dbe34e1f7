//! HTTP servers of ours that stand in for the peers the service calls: the equipment service.
//! (The OTLP receivers, built from the OpenTelemetry protobuf definitions, are in `otlp`.) Each
//! listens on a free port of its own, on the test's runtime.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::Router;
use serde_json::{json, Value};

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
