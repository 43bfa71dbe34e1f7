//! `GET /api/drops/{id}`, `GET /api/worlds/{w}/channels/{c}/maps/{m}/drops` (contract §4) and
//! its instanced twin `…/maps/{m}/instances/{instance}/drops` (contract-head §8).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::LazyLock;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use uuid::Uuid;

use super::jsonapi::{document, error};
use super::query::{Fields, ListQuery};
use super::{tenant, AppState};
use crate::clock;
use crate::drop::model::{Drop, Location, Status};
use crate::kafka::message::event::rfc3339;
use crate::kafka::message::stats::StatsWire;

/// A request's query: its parameters in order, as they came.
type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    world_id: u8,
    channel_id: u8,
    map_id: u32,
    instance: Uuid,
    item_id: u32,
    equipment_id: u32,
    quantity: u32,
    meso: u32,
    #[serde(rename = "type")]
    drop_type: u8,
    x: i16,
    y: i16,
    owner_id: u32,
    owner_party_id: u32,
    drop_time: String,
    dropper_id: u32,
    dropper_x: i16,
    dropper_y: i16,
    character_drop: bool,
    #[serde(rename = "mod")]
    mod_: u8,
    status: &'static str,
    /// The sixteen stats last (contract-head §8).
    #[serde(flatten)]
    stats: StatsWire,
}

/// The names of a drop's attributes, as `fields[drops]` may name them.
static ATTRIBUTE_NAMES: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    let attributes = serde_json::to_value(Attributes::default()).expect("attributes serialize");
    attributes
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
});

#[derive(Serialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    attributes: Shown,
}

/// Every attribute, in the contract's order; or those `fields[drops]` asked for.
#[derive(Serialize)]
#[serde(untagged)]
enum Shown {
    Every(Box<Attributes>),
    Selected(serde_json::Map<String, serde_json::Value>),
}

/// Documents are structs, not `json!` maps, so their members keep the order written here.
#[derive(Serialize)]
struct Document {
    data: Resource,
}

#[derive(Serialize)]
struct Page {
    data: Vec<Resource>,
    meta: Meta,
    links: Links,
}

#[derive(Serialize)]
struct Meta {
    total: usize,
    page: PageMeta,
}

#[derive(Serialize)]
struct PageMeta {
    number: usize,
    size: usize,
    /// At least 1: an empty listing has one, empty, page.
    last: usize,
}

/// `prev` and `next` only where there is such a page (contract-head §8).
#[derive(Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: Link,
    first: Link,
    last: Link,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Link>,
}

#[derive(Serialize)]
struct Link {
    href: String,
}

fn resource(drop: &Drop, fields: Option<&Fields>) -> Resource {
    let attributes = Box::new(attributes(drop));
    let attributes = match fields {
        None => Shown::Every(attributes),
        Some(fields) => {
            let value = serde_json::to_value(&attributes).expect("attributes serialize");
            let serde_json::Value::Object(mut selected) = value else {
                unreachable!("attributes are an object")
            };
            fields.select(&mut selected);
            Shown::Selected(selected)
        }
    };
    Resource {
        kind: "drops",
        id: drop.id.to_string(),
        attributes,
    }
}

fn attributes(drop: &Drop) -> Attributes {
    let spec = &drop.spec;
    Attributes {
        world_id: drop.location.world_id,
        channel_id: drop.location.channel_id,
        map_id: drop.location.map_id,
        instance: drop.location.instance,
        item_id: spec.contents.item_id(),
        equipment_id: spec.contents.equipment_id(),
        quantity: spec.contents.quantity(),
        meso: spec.contents.meso(),
        drop_type: spec.drop_type,
        x: spec.position.x,
        y: spec.position.y,
        owner_id: spec.owner_id,
        owner_party_id: spec.owner_party_id,
        drop_time: rfc3339(drop.dropped_at),
        dropper_id: spec.dropper.id,
        dropper_x: spec.dropper.position.x,
        dropper_y: spec.dropper.position.y,
        character_drop: spec.player_drop,
        mod_: spec.mod_,
        status: match drop.status {
            Status::Available => "AVAILABLE",
            Status::Reserved(_) => "RESERVED",
        },
        stats: spec.contents.stats().into(),
    }
}

/// The unsigned integers a path or query value is read as, with their range for the error.
trait Number: FromStr {
    const MAX: u64;
}

impl Number for u8 {
    const MAX: u64 = u8::MAX as u64;
}

impl Number for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Number for usize {
    const MAX: u64 = usize::MAX as u64;
}

/// `text` as a `T`; a number outside `T`'s range (`worldId` 256, `mapId` -1) is told apart
/// from text that is no number at all.
fn parse_number<T: Number>(text: &str, what: &str) -> Result<T, String> {
    text.parse().map_err(|_| {
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            format!("{what} {text} is out of range (0 to {})", T::MAX)
        } else {
            format!("{what} {text:?} is not a valid number")
        }
    })
}

pub async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> Response {
    // A path axum cannot take apart (not UTF-8 once percent-decoded: `/api/drops/%FF`) is
    // answered as JSON:API like every other error, not with axum's plain text.
    let Path(id) = match id {
        Ok(id) => id,
        Err(rejection) => return error(&headers, rejection.status(), rejection.body_text()),
    };
    let tenant = match tenant::parse(&headers) {
        Ok(tenant) => tenant,
        Err(detail) => return error(&headers, StatusCode::BAD_REQUEST, detail),
    };
    let id: u32 = match parse_number(&id, "drop id") {
        Ok(id) => id,
        Err(detail) => return error(&headers, StatusCode::BAD_REQUEST, detail),
    };
    let query = match query {
        Ok(Query(pairs)) => ListQuery::parse(pairs, &ATTRIBUTE_NAMES),
        Err(rejection) => return error(&headers, rejection.status(), rejection.body_text()),
    };
    let fields = match query {
        Ok(query) => query.fields,
        Err(detail) => return error(&headers, StatusCode::BAD_REQUEST, detail),
    };
    match state.store.get(&tenant, id, clock::now()).await {
        Some(drop) => document(
            &headers,
            StatusCode::OK,
            &Document {
                data: resource(&drop, fields.as_ref()),
            },
        ),
        None => error(
            &headers,
            StatusCode::NOT_FOUND,
            format!("drop {id} not found"),
        ),
    }
}

/// The items of page `number` (from 1) of `size` items: empty past the end, however far. The
/// page's first index is checked arithmetic: a number the client chose must not wrap round to
/// an earlier page.
fn page_of<T>(items: &[T], number: usize, size: usize) -> &[T] {
    let start = (number - 1)
        .checked_mul(size)
        .filter(|&start| start < items.len());
    match start {
        Some(start) => &items[start..items.len().min(start + size)],
        None => &[],
    }
}

/// `GET /api/worlds/{w}/channels/{c}/maps/{m}/drops`: the drops of the map's nil instance.
pub async fn in_map(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: QueryPairs,
) -> Response {
    match path {
        Ok(Path((world, channel, map))) => {
            let asked = Listing {
                uri,
                query,
                place: [world, channel, map],
                instance: None,
            };
            listing(state, headers, asked).await
        }
        Err(rejection) => error(&headers, rejection.status(), rejection.body_text()),
    }
}

/// `GET /api/worlds/{w}/channels/{c}/maps/{m}/instances/{instance}/drops` (contract-head §8).
pub async fn in_instance(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<(String, String, String, String)>, PathRejection>,
    query: QueryPairs,
) -> Response {
    match path {
        Ok(Path((world, channel, map, instance))) => {
            let place = [world, channel, map];
            let asked = Listing {
                uri,
                query,
                place,
                instance: Some(instance),
            };
            listing(state, headers, asked).await
        }
        Err(rejection) => error(&headers, rejection.status(), rejection.body_text()),
    }
}

/// A listing as it was asked for: where (world, channel, map, and the instance when the route
/// names one), with which query, at which path (the links repeat it).
struct Listing {
    uri: Uri,
    query: QueryPairs,
    place: [String; 3],
    instance: Option<String>,
}

/// The page of drops asked for, in one location of one tenant.
async fn listing(state: AppState, headers: HeaderMap, asked: Listing) -> Response {
    let Listing {
        uri,
        query,
        place: [world, channel, map],
        instance,
    } = asked;
    let Query(pairs) = match query {
        Ok(query) => query,
        Err(rejection) => return error(&headers, rejection.status(), rejection.body_text()),
    };
    let request = || -> Result<_, String> {
        let tenant = tenant::parse(&headers)?;
        let instance = match &instance {
            None => Uuid::nil(),
            Some(text) => {
                Uuid::try_parse(text).map_err(|_| format!("instanceId {text:?} is not a UUID"))?
            }
        };
        let location = Location {
            world_id: parse_number(&world, "worldId")?,
            channel_id: parse_number(&channel, "channelId")?,
            map_id: parse_number(&map, "mapId")?,
            instance,
        };
        Ok((tenant, location, ListQuery::parse(pairs, &ATTRIBUTE_NAMES)?))
    };
    let (tenant, location, query) = match request() {
        Ok(request) => request,
        Err(detail) => return error(&headers, StatusCode::BAD_REQUEST, detail),
    };
    let drops = state.store.list(&tenant, location, clock::now()).await;
    let (number, size) = (query.number, query.size);
    let total = drops.len();
    let last = total.div_ceil(size).max(1);
    let fields = query.fields.as_ref();
    let data = (page_of(&drops, number, size).iter())
        .map(|drop| resource(drop, fields))
        .collect();
    let link = |page: usize| Link {
        href: query.href(uri.path(), page),
    };
    let body = Page {
        data,
        meta: Meta {
            total,
            page: PageMeta { number, size, last },
        },
        links: Links {
            this: link(number),
            first: link(1),
            last: link(last),
            prev: (number > 1).then(|| link((number - 1).min(last))),
            next: (number < last).then(|| link(number + 1)),
        },
    };
    document(&headers, StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::{page_of, parse_number};

    #[test]
    fn a_number_out_of_range_is_told_apart_from_no_number() {
        assert_eq!(parse_number::<u8>("255", "worldId"), Ok(255));
        assert_eq!(
            parse_number::<u8>("256", "worldId"),
            Err("worldId 256 is out of range (0 to 255)".to_owned())
        );
        assert_eq!(
            parse_number::<u32>("-1", "mapId"),
            Err("mapId -1 is out of range (0 to 4294967295)".to_owned())
        );
        assert_eq!(
            parse_number::<u32>("99999999999999999999999999999999999999999", "drop id"),
            Err(
                "drop id 99999999999999999999999999999999999999999 is out of range (0 to 4294967295)"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_number::<u8>("x", "channelId"),
            Err("channelId \"x\" is not a valid number".to_owned())
        );
        assert!(parse_number::<u8>("-", "worldId")
            .unwrap_err()
            .contains("not a valid"));
        assert!(parse_number::<u8>("", "worldId")
            .unwrap_err()
            .contains("not a valid"));
    }

    #[test]
    fn a_page_past_the_end_is_empty_however_far() {
        let items = [1, 2, 3, 4, 5];
        assert_eq!(page_of(&items, 1, 2), [1, 2]);
        assert_eq!(page_of(&items, 3, 2), [5]);
        assert_eq!(page_of(&items, 4, 2), [0; 0]);
        // (2^62 + 1 - 1) × 4 wraps to 0 in unchecked arithmetic: page 1 again.
        assert_eq!(page_of(&items, (1 << 62) + 1, 4), [0; 0]);
        assert_eq!(page_of(&items, usize::MAX, 250), [0; 0]);
    }
}
