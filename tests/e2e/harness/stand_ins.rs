//! HTTP servers of ours that stand in for the peers the service calls: the equipment, the
//! configuration, the data and the party service. (The OTLP receivers, built from the
//! OpenTelemetry protobuf definitions, are in `otlp`.) Each listens on a free port of its own,
//! on the test's runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};
use uuid::Uuid;

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

/// The party service, a peer we do not own, speaking its JSON:API (contract-head §4):
/// `GET {url}parties?filter[members.id]={id}` answers the list of the parties that have that
/// member (at most one; `"data":[]` for none), each naming its members in
/// `relationships.members.data` and placing them in `included`. It does not look at the tenant;
/// it records it.
pub struct PartyService {
    /// For `PARTIES_SERVICE_URL`.
    pub url: String,
    state: Arc<Parties>,
}

/// A party's member as the stand-in describes it: where it is, whether online, and whether the
/// document includes it (a member named but not included is not present, to the service).
#[derive(Clone, Debug)]
pub struct PartyMember {
    pub character_id: u32,
    pub world_id: u8,
    pub channel_id: u8,
    pub map_id: u32,
    pub instance: Uuid,
    pub online: bool,
    pub included: bool,
}

impl PartyMember {
    /// Online in `(world, channel, map, instance)`, and included.
    pub fn at(
        character_id: u32,
        world_id: u8,
        channel_id: u8,
        map_id: u32,
        instance: Uuid,
    ) -> Self {
        PartyMember {
            character_id,
            world_id,
            channel_id,
            map_id,
            instance,
            online: true,
            included: true,
        }
    }

    pub fn offline(self) -> Self {
        PartyMember {
            online: false,
            ..self
        }
    }

    /// Named in the party, left out of `included`.
    pub fn not_included(self) -> Self {
        PartyMember {
            included: false,
            ..self
        }
    }

    fn resource(&self) -> Value {
        json!({"type": "members", "id": self.character_id.to_string(), "attributes": {
            "name": format!("Member{}", self.character_id), "level": 30, "jobId": 100,
            "worldId": self.world_id, "channelId": self.channel_id, "mapId": self.map_id,
            "instance": self.instance.to_string(), "online": self.online,
        }})
    }
}

/// How the party service answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartyMode {
    /// The parties as set.
    #[default]
    Up,
    /// `500` to every request.
    Down,
    /// The parties as set, after this long.
    Slow(Duration),
    /// `200` with a body that is not JSON.
    Garbage,
}

/// One request: its query as sent, the member it filters by (decoded), its tenant headers
/// (`TENANT_ID`, `REGION`, `MAJOR_VERSION`, `MINOR_VERSION`).
#[derive(Clone, Debug)]
pub struct PartyRequest {
    pub raw_query: String,
    pub member_id: Option<String>,
    pub tenant: Vec<String>,
}

#[derive(Default)]
struct Parties {
    /// Party id → members, in the party's order.
    parties: Mutex<Vec<(u32, Vec<PartyMember>)>>,
    mode: Mutex<PartyMode>,
    requests: Mutex<Vec<PartyRequest>>,
}

impl PartyService {
    pub async fn start() -> PartyService {
        let state = Arc::new(Parties::default());
        let app = Router::new()
            .route("/api/parties", get(parties))
            .with_state(state.clone());
        let url = format!("http://{}/api/", serve(app).await);
        PartyService { url, state }
    }

    /// Sets party `party_id` to `members` (replacing it, or creating it); its first member leads.
    /// A character in two parties is found in the one set first.
    pub fn set_party(&self, party_id: u32, members: Vec<PartyMember>) {
        let mut parties = self.state.parties.lock().unwrap();
        match parties.iter_mut().find(|(id, _)| *id == party_id) {
            Some(party) => party.1 = members,
            None => parties.push((party_id, members)),
        }
    }

    /// Disbands party `party_id`: its members are in no party.
    pub fn disband(&self, party_id: u32) {
        self.state
            .parties
            .lock()
            .unwrap()
            .retain(|(id, _)| *id != party_id);
    }

    pub fn set_mode(&self, mode: PartyMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Every request so far, in order (recorded on arrival, before a slow answer).
    pub fn requests(&self) -> Vec<PartyRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

async fn parties(
    State(stub): State<Arc<Parties>>,
    RawQuery(raw_query): RawQuery,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let member_id = query.get("filter[members.id]").cloned();
    stub.requests.lock().unwrap().push(PartyRequest {
        raw_query: raw_query.unwrap_or_default(),
        member_id: member_id.clone(),
        tenant: tenant_of(&headers),
    });
    let mode = *stub.mode.lock().unwrap();
    match mode {
        PartyMode::Down => return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into()),
        PartyMode::Garbage => return (StatusCode::OK, "<html>party time</html>".into()),
        PartyMode::Slow(delay) => tokio::time::sleep(delay).await,
        PartyMode::Up => {}
    }
    // The stand-in serves only the lookup by member, the one the service makes.
    let Some(member_id) = member_id.and_then(|id| id.parse::<u32>().ok()) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let parties = stub.parties.lock().unwrap().clone();
    let found: Vec<_> = (parties.iter())
        .filter(|(_, members)| members.iter().any(|m| m.character_id == member_id))
        .take(1)
        .collect();
    let data: Vec<Value> = (found.iter())
        .map(|(party_id, members)| {
            let named: Vec<Value> = (members.iter())
                .map(|m| json!({"type": "members", "id": m.character_id.to_string()}))
                .collect();
            let leader = members.first().map_or(0, |m| m.character_id);
            json!({"type": "parties", "id": party_id.to_string(),
                   "attributes": {"leaderId": leader},
                   "relationships": {"members": {"data": named}}})
        })
        .collect();
    let included: Vec<Value> = (found.iter())
        .flat_map(|(_, members)| members.iter().filter(|m| m.included))
        .map(PartyMember::resource)
        .collect();
    let mut document = json!({"data": data});
    if !included.is_empty() {
        document["included"] = Value::Array(included);
    }
    (StatusCode::OK, document.to_string())
}
