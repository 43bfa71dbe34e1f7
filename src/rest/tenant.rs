//! The tenant of an HTTP request: the four headers of the Kafka side, with the versions as
//! decimal strings (contract §4).

use std::sync::Arc;

use axum::http::HeaderMap;
use uuid::Uuid;

use crate::drop::model::{Tenant, TenantRef};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    headers
        .get(name)
        .ok_or_else(|| format!("missing header {name}"))?
        .to_str()
        .map_err(|_| format!("header {name} is not text"))
}

fn version(headers: &HeaderMap, name: &str) -> Result<u16, String> {
    header(headers, name)?
        .trim()
        .parse()
        .map_err(|_| format!("header {name} must be a decimal number from 0 to 65535"))
}

pub fn parse(headers: &HeaderMap) -> Result<TenantRef, String> {
    let id = header(headers, "TENANT_ID")?;
    let id = Some(id)
        .filter(|id| id.len() == 36)
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or_else(|| "header TENANT_ID is not a 36-character UUID".to_owned())?;
    let region = header(headers, "REGION")?;
    if region.is_empty() {
        return Err("header REGION is empty".to_owned());
    }
    Ok(Arc::new(Tenant {
        id,
        region: region.to_owned(),
        major_version: version(headers, "MAJOR_VERSION")?,
        minor_version: version(headers, "MINOR_VERSION")?,
    }))
}
