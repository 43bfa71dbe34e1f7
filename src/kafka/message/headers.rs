//! Tenant and trace headers as they travel on Kafka (contract §2).

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::drop::model::{self, Correlation, Environment, Tenant};

pub const TENANT_ID: &str = "TENANT_ID";
pub const REGION: &str = "REGION";
pub const MAJOR_VERSION: &str = "MAJOR_VERSION";
pub const MINOR_VERSION: &str = "MINOR_VERSION";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// The Atlas environment a message belongs to (contract-head §6).
pub const ENVIRONMENT: &str = "ENVIRONMENT";

/// Added to a rejected command copied to the dead-letter topic: why, and where it came from.
pub const DEAD_LETTER_REASON: &str = "dlq.reason";
pub const DEAD_LETTER_CLASS: &str = "dlq.class";
pub const DEAD_LETTER_TOPIC: &str = "dlq.original.topic";
pub const DEAD_LETTER_PARTITION: &str = "dlq.original.partition";
pub const DEAD_LETTER_OFFSET: &str = "dlq.original.offset";

fn first<'a>(headers: Option<&'a impl Headers>, name: &str) -> Option<&'a [u8]> {
    headers?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
}

fn required<'a>(headers: Option<&'a impl Headers>, name: &str) -> Result<&'a [u8], String> {
    first(headers, name).ok_or_else(|| format!("missing header {name}"))
}

/// On Kafka the versions are two bytes, big-endian.
fn version(headers: Option<&impl Headers>, name: &str) -> Result<u16, String> {
    let bytes = required(headers, name)?;
    let pair: [u8; 2] = bytes.try_into().map_err(|_| {
        format!(
            "header {name} must be 2 bytes (big-endian u16), got {}",
            bytes.len()
        )
    })?;
    Ok(u16::from_be_bytes(pair))
}

/// Reads the tenant a command belongs to; a command without a whole tenant is bad input.
pub fn parse_tenant(headers: Option<&impl Headers>) -> Result<Tenant, String> {
    let text = |name| {
        std::str::from_utf8(required(headers, name)?)
            .map_err(|_| format!("header {name} is not UTF-8"))
    };
    Ok(Tenant {
        id: Tenant::parse_id(text(TENANT_ID)?)?,
        region: Tenant::parse_region(text(REGION)?)?,
        major_version: version(headers, MAJOR_VERSION)?,
        minor_version: version(headers, MINOR_VERSION)?,
    })
}

/// On a refused reservation's `RESERVATION_FAILURE`: the rule that refused it.
pub const REFUSAL_REASON: &str = "REFUSAL_REASON";
/// The longest `tracestate` passed on (contract §2); W3C lets a hop drop a longer one. A
/// `traceparent` longer than this cannot be valid and is dropped too. Without the bound a peer
/// could make every event we send for it too large for the broker.
pub const TRACE_HEADER_BYTES: usize = 512;

/// The W3C trace context, passed on unchanged when within bounds, else dropped.
pub fn parse_trace(headers: Option<&impl Headers>, correlation: &mut Correlation) {
    let bounded = |name| {
        first(headers, name)
            .filter(|value| value.len() <= TRACE_HEADER_BYTES)
            .map(<[u8]>::to_vec)
    };
    correlation.traceparent = bounded(TRACEPARENT);
    correlation.tracestate = bounded(TRACESTATE);
}

/// The `ENVIRONMENT` header as it came, unread.
pub fn environment_header(headers: Option<&impl Headers>) -> Option<&[u8]> {
    first(headers, ENVIRONMENT)
}

/// The command's `ENVIRONMENT`, if any (`model::parse_environment`).
pub fn parse_environment(headers: Option<&impl Headers>) -> Result<Option<Environment>, String> {
    let Some(bytes) = environment_header(headers) else {
        return Ok(None);
    };
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("header {ENVIRONMENT} is not UTF-8"))?;
    model::parse_environment(text)
        .map(Some)
        .map_err(|reason| format!("header {ENVIRONMENT}: {reason}"))
}

/// The headers of an event: its tenant's, the trace context of the command that caused it, and
/// the environment of its drop (or of the failing command) when it has one.
pub fn event_headers(tenant: &Tenant, correlation: &Correlation) -> OwnedHeaders {
    let id = tenant.id.hyphenated().to_string();
    let mut headers = OwnedHeaders::new_with_capacity(6)
        .insert(Header {
            key: TENANT_ID,
            value: Some(&id),
        })
        .insert(Header {
            key: REGION,
            value: Some(&tenant.region),
        })
        .insert(Header {
            key: MAJOR_VERSION,
            value: Some(&tenant.major_version.to_be_bytes()),
        })
        .insert(Header {
            key: MINOR_VERSION,
            value: Some(&tenant.minor_version.to_be_bytes()),
        });
    for (key, value) in [
        (TRACEPARENT, correlation.traceparent.as_deref()),
        (TRACESTATE, correlation.tracestate.as_deref()),
        (
            ENVIRONMENT,
            correlation.environment.as_deref().map(str::as_bytes),
        ),
    ] {
        if let Some(value) = value {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    headers
}
