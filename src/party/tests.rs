use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::*;

const PICKER: u32 = 7;

fn place(instance: Uuid) -> Location {
    Location {
        world_id: 1,
        channel_id: 2,
        map_id: 100_000_000,
        instance,
    }
}

fn instance() -> Uuid {
    Uuid::from_u128(0x1234)
}

fn member(id: u32, location: Location, online: bool) -> Value {
    json!({"type": "members", "id": id.to_string(), "attributes": {
        "name": format!("member{id}"), "level": 30, "jobId": 100,
        "worldId": location.world_id, "channelId": location.channel_id,
        "mapId": location.map_id, "instance": location.instance.to_string(), "online": online,
    }})
}

/// A party of `named` members, of whom `included` are in the document.
fn parties(named: &[u32], included: Vec<Value>) -> Value {
    let named: Vec<Value> = (named.iter())
        .map(|id| json!({"type": "members", "id": id.to_string()}))
        .collect();
    json!({
        "data": [{"type": "parties", "id": "1000000001", "attributes": {"leaderId": PICKER},
                  "relationships": {"members": {"data": named}}}],
        "included": included,
    })
}

/// Every case of the contract at once: the picker, a member beside it, one on another map, one
/// offline, one in another instance of the same map, one named but not included.
fn mixed_party() -> Value {
    let here = place(instance());
    let elsewhere = Location {
        map_id: 100_000_001,
        ..here
    };
    parties(
        &[PICKER, 3, 11, 12, 13, 14],
        vec![
            member(PICKER, here, true),
            member(3, here, true),
            member(11, elsewhere, true),
            member(12, here, false),
            member(13, place(Uuid::nil()), true),
        ],
    )
}

#[test]
fn only_the_included_members_online_at_the_location_are_present() {
    let lookup = present_at(&mixed_party().to_string(), &place(instance())).unwrap();
    assert_eq!(lookup, Lookup::Party(vec![PICKER, 3]));
    assert_eq!(lookup.outcome(), PartyLookup::Party);
}

#[test]
fn no_party_is_an_empty_list() {
    let lookup = present_at(r#"{"data":[]}"#, &place(instance())).unwrap();
    assert_eq!(lookup, Lookup::NoParty);
    assert_eq!(lookup.outcome(), PartyLookup::NoParty);
    assert_eq!(lookup.into_present(), Vec::<u32>::new());
}

#[test]
fn the_first_party_counts() {
    let here = place(instance());
    let mut document = parties(&[3], vec![member(3, here, true), member(4, here, true)]);
    let second = json!({"type": "parties", "id": "2", "attributes": {"leaderId": 4},
                        "relationships": {"members": {"data": [{"type": "members", "id": "4"}]}}});
    document["data"].as_array_mut().unwrap().push(second);
    let lookup = present_at(&document.to_string(), &here).unwrap();
    assert_eq!(lookup.into_present(), [3]);
}

#[test]
fn a_party_without_members_named_has_nobody_present() {
    for relationships in [
        json!({}),
        json!({"members": {}}),
        json!({"members": {"data": null}}),
    ] {
        let document =
            json!({"data": [{"type": "parties", "id": "1", "relationships": relationships}]});
        let lookup = present_at(&document.to_string(), &place(instance())).unwrap();
        assert_eq!(lookup, Lookup::Party(vec![]), "{document}");
    }
}

#[test]
fn an_older_service_without_instances_places_members_in_the_nil_one() {
    let mut older = member(3, place(Uuid::nil()), true);
    older["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("instance");
    let document = parties(&[3], vec![older]).to_string();
    assert_eq!(
        present_at(&document, &place(Uuid::nil())).unwrap(),
        Lookup::Party(vec![3])
    );
    assert_eq!(
        present_at(&document, &place(instance())).unwrap(),
        Lookup::Party(vec![])
    );
}

#[test]
fn a_document_we_cannot_read_is_an_error() {
    let here = place(instance());
    let mut no_world = member(3, here, true);
    no_world["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("worldId");
    let mut bad_instance = member(3, here, true);
    bad_instance["attributes"]["instance"] = json!("not-a-uuid");
    for (body, expected) in [
        ("garbage".to_owned(), "not a JSON:API"),
        (r#"{"data":{}}"#.to_owned(), "not a JSON:API"),
        (r#"{"errors":[]}"#.to_owned(), "not a JSON:API"),
        (parties(&[3], vec![no_world]).to_string(), "member \"3\""),
        (
            parties(&[3], vec![bad_instance]).to_string(),
            "member \"3\"",
        ),
        (
            parties(&[u32::MAX], vec![])
                .to_string()
                .replace("4294967295", "-1"),
            "member id",
        ),
    ] {
        let error = present_at(&body, &here).expect_err(&body);
        assert!(error.to_string().contains(expected), "{body}: {error}");
    }
}

/// `(raw query, decoded query, [TENANT_ID, REGION, MAJOR_VERSION, MINOR_VERSION])` of a request.
type Request = (String, HashMap<String, String>, [String; 4]);

/// A party service of a few lines on this test's runtime: it answers every request with
/// `status` and `body`, after `delay`, and records each request's query and tenant headers.
#[derive(Default)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
    requests: Mutex<Vec<Request>>,
}

async fn answer(
    State(answer): State<Arc<Answer>>,
    RawQuery(raw): RawQuery,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> (axum::http::StatusCode, String) {
    let header = |name: &str| {
        (headers.get(name).and_then(|value| value.to_str().ok()))
            .unwrap_or_default()
            .to_owned()
    };
    let tenant = ["TENANT_ID", "REGION", "MAJOR_VERSION", "MINOR_VERSION"].map(header);
    (answer.requests.lock().unwrap()).push((raw.unwrap_or_default(), query, tenant));
    tokio::time::sleep(answer.delay).await;
    let status = axum::http::StatusCode::from_u16(answer.status).unwrap();
    (status, answer.body.clone())
}

/// Serves `answer`; the service's base URL, as `PARTIES_SERVICE_URL` would give it (no `/`).
async fn serve(answer: Arc<Answer>) -> String {
    let app = Router::new()
        .route("/api/parties", get(self::answer))
        .with_state(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/api")
}

fn tenant() -> TenantRef {
    Arc::new(Tenant {
        id: Uuid::from_u128(0xabcd),
        region: "GMS".to_owned(),
        major_version: 83,
        minor_version: 1,
    })
}

const TIMEOUT: Duration = Duration::from_millis(300);

async fn ask(
    status: u16,
    body: String,
    delay: Duration,
) -> (Result<Lookup, PartyError>, Arc<Answer>) {
    let answer = Arc::new(Answer {
        status,
        body,
        delay,
        ..Answer::default()
    });
    let service = PartyService::new(&serve(answer.clone()).await, TIMEOUT);
    let lookup = service.present(&tenant(), PICKER, &place(instance())).await;
    (lookup, answer)
}

#[tokio::test]
async fn a_party_is_asked_for_by_member_with_the_tenant_headers() {
    let (lookup, answer) = ask(200, mixed_party().to_string(), Duration::ZERO).await;
    assert_eq!(lookup.unwrap(), Lookup::Party(vec![PICKER, 3]));
    let requests = answer.requests.lock().unwrap();
    let [(raw, query, tenant)] = &requests[..] else {
        panic!("one request: {requests:?}");
    };
    // Brackets percent-encoded; a server decoding its query (gorilla/mux, axum) reads the filter.
    assert_eq!(raw, "filter%5Bmembers.id%5D=7");
    assert_eq!(
        query.get("filter[members.id]").map(String::as_str),
        Some("7")
    );
    let expected = ["00000000-0000-0000-0000-00000000abcd", "GMS", "83", "1"];
    assert_eq!(tenant, &expected.map(str::to_owned));
}

#[tokio::test]
async fn no_party_answers_no_party() {
    let (lookup, _) = ask(200, r#"{"data":[]}"#.to_owned(), Duration::ZERO).await;
    assert_eq!(lookup.unwrap(), Lookup::NoParty);
}

#[tokio::test]
async fn a_refusal_is_an_error() {
    let (lookup, _) = ask(500, "{}".to_owned(), Duration::ZERO).await;
    let error = lookup.unwrap_err();
    assert!(
        matches!(error, PartyError::Status { status, .. } if status == 500),
        "{error}"
    );
}

#[tokio::test]
async fn a_garbage_answer_is_an_error() {
    let (lookup, _) = ask(200, "<html>oops</html>".to_owned(), Duration::ZERO).await;
    let error = lookup.unwrap_err();
    assert!(matches!(error, PartyError::Document { .. }), "{error}");
}

#[tokio::test]
async fn a_slow_service_is_given_up_on_at_the_timeout() {
    let started = Instant::now();
    let (lookup, answer) = ask(200, r#"{"data":[]}"#.to_owned(), Duration::from_secs(3)).await;
    let waited = started.elapsed();
    let error = lookup.unwrap_err();
    assert!(
        matches!(
            error,
            PartyError::TimedOut { .. } | PartyError::Transport { .. }
        ),
        "{error}"
    );
    assert!(
        waited >= TIMEOUT,
        "gave up after {waited:?}, before the timeout"
    );
    assert!(
        waited < TIMEOUT + Duration::from_millis(500),
        "gave up after {waited:?}"
    );
    assert_eq!(answer.requests.lock().unwrap().len(), 1, "asked once");
}

#[tokio::test]
async fn no_service_listening_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/", listener.local_addr().unwrap());
    drop(listener);
    let service = PartyService::new(&url, TIMEOUT);
    let error = (service.present(&tenant(), PICKER, &place(instance())).await).unwrap_err();
    assert!(matches!(error, PartyError::Transport { .. }), "{error}");
}
