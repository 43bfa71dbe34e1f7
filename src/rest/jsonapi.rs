//! JSON:API documents: media type, error documents.

use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// A JSON:API answer. Clients that ask for `application/json` only get that media type; all
/// others get `application/vnd.api+json`.
pub fn document(request: &HeaderMap, status: StatusCode, body: &impl Serialize) -> Response {
    let accept = request
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = if accept.contains("application/json") && !accept.contains(MEDIA_TYPE) {
        "application/json"
    } else {
        MEDIA_TYPE
    };
    let body = serde_json::to_vec(body).expect("documents serialize");
    (status, [(CONTENT_TYPE, media_type)], body).into_response()
}

/// A JSON:API error document with one error.
pub fn error(request: &HeaderMap, status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({"errors": [{
        "status": status.as_str(),
        "title": status.canonical_reason().unwrap_or_default(),
        "detail": detail.into(),
    }]});
    document(request, status, &body)
}

pub async fn no_route(request: HeaderMap, uri: Uri) -> Response {
    error(
        &request,
        StatusCode::NOT_FOUND,
        format!("no resource at {}", uri.path()),
    )
}
