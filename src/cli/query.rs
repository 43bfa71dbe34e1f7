//! `atlas-drops list` and `atlas-drops get`: a running service's REST API, for people.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{LocationArgs, TenantArgs};
use crate::equipment::with_tenant;

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    at: LocationArgs,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The drop id.
    id: u32,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Args, Debug)]
struct ServiceArgs {
    /// Base URL of the service's REST API.
    #[arg(long, env = "ATLAS_DROPS_URL", default_value = "http://localhost:8080")]
    url: String,
    /// Print the JSON:API document as it came.
    #[arg(long)]
    json: bool,
    #[command(flatten, next_help_heading = "Tenant")]
    tenant: TenantArgs,
}

/// Why a GET gave no document.
enum Failure {
    /// The service answered 404.
    NotFound,
    /// Anything else, said in a line.
    Other(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Other(message)
    }
}

impl ServiceArgs {
    /// GETs `path`; the document, or why there is none.
    fn fetch(&self, path: &str) -> Result<Value, Failure> {
        let base = self.url.trim_end_matches('/');
        let url = format!("{base}{path}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut response = with_tenant(agent.get(&url), &*self.tenant.tenant()?)
            .call()
            .map_err(|error| format!("cannot reach the service at {base}: {error}"))?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|error| format!("GET {url}: {error}"))?;
        if status == 404 {
            return Err(Failure::NotFound);
        }
        if !status.is_success() {
            // A JSON:API error says what was wrong in its detail; anything else as it came.
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|document| document["errors"][0]["detail"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(format!("GET {url}: {status}: {detail}").into());
        }
        serde_json::from_str(&body).map_err(|error| format!("GET {url}: not JSON: {error}").into())
    }

    fn print(&self, document: &Value, resources: &[Value]) {
        if self.json {
            println!("{document}");
        } else {
            for resource in resources {
                println!("{}", line(resource));
            }
        }
    }
}

/// `id status what at (x,y) owner … dropped …`
fn line(resource: &Value) -> String {
    let a = &resource["attributes"];
    let what = if a["meso"].as_u64().unwrap_or_default() > 0 {
        format!("{} meso", a["meso"])
    } else {
        format!("item {} x{}", a["itemId"], a["quantity"])
    };
    format!(
        "{} {:<9} {what} at ({},{}) w{}/c{}/m{} owner {} dropped {}",
        resource["id"].as_str().unwrap_or("?"),
        a["status"].as_str().unwrap_or("?"),
        a["x"],
        a["y"],
        a["worldId"],
        a["channelId"],
        a["mapId"],
        a["ownerId"],
        a["dropTime"].as_str().unwrap_or("?"),
    )
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("the request ran")
}

pub async fn list(args: ListArgs) -> Result<(), String> {
    blocking(move || {
        let at = args.at;
        let base = format!(
            "/api/worlds/{}/channels/{}/maps/{}/drops",
            at.world, at.channel, at.map
        );
        let mut page = 1;
        loop {
            let document = match args.service.fetch(&format!("{base}?page[number]={page}")) {
                Ok(document) => document,
                Err(Failure::NotFound) => return Err(format!("the service has no {base}")),
                Err(Failure::Other(message)) => return Err(message),
            };
            let data = document["data"].as_array().cloned().unwrap_or_default();
            if page == 1 && data.is_empty() && !args.service.json {
                println!(
                    "no drops on map {} (world {}, channel {}) for this tenant",
                    at.map, at.world, at.channel
                );
            }
            args.service.print(&document, &data);
            if document["links"]["next"].is_null() {
                return Ok(());
            }
            page += 1;
        }
    })
    .await
}

pub async fn get(args: GetArgs) -> Result<(), String> {
    blocking(move || {
        let document = match args.service.fetch(&format!("/api/drops/{}", args.id)) {
            Ok(document) => document,
            Err(Failure::NotFound) => return Err(format!("no drop {} for this tenant", args.id)),
            Err(Failure::Other(message)) => return Err(message),
        };
        args.service
            .print(&document, std::slice::from_ref(&document["data"]));
        Ok(())
    })
    .await
}
