//! The tenant over HTTP: the four headers of the Kafka side, with the versions as decimal
//! strings (contract §4), read from our requests. (Our calls to peers write them with
//! `equipment::with_tenant`.)

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::drop::model::{Tenant, TenantRef};

/// A header's value as UTF-8 text, read from its bytes: `HeaderValue::to_str` takes visible
/// ASCII only, and would refuse a region (`Ünïcode`) that Kafka, reading UTF-8, accepts.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    let value = headers
        .get(name)
        .ok_or_else(|| format!("missing header {name}"))?;
    std::str::from_utf8(value.as_bytes()).map_err(|_| format!("header {name} is not UTF-8 text"))
}

fn version(headers: &HeaderMap, name: &str) -> Result<u16, String> {
    header(headers, name)?
        .trim()
        .parse()
        .map_err(|_| format!("header {name} must be a decimal number from 0 to 65535"))
}

pub fn parse(headers: &HeaderMap) -> Result<TenantRef, String> {
    Ok(Arc::new(Tenant {
        id: Tenant::parse_id(header(headers, "TENANT_ID")?)?,
        region: Tenant::parse_region(header(headers, "REGION")?)?,
        major_version: version(headers, "MAJOR_VERSION")?,
        minor_version: version(headers, "MINOR_VERSION")?,
    }))
}
