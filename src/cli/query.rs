//! `atlas-drops list` and `atlas-drops get`: a running service's REST API, for people.

use clap::Args;
use serde_json::Value;

use super::{LocationArgs, TenantArgs};
use crate::rest::tenant::with_headers;

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
    #[command(flatten)]
    tenant: TenantArgs,
    /// Print the JSON:API document as it came.
    #[arg(long)]
    json: bool,
}

impl ServiceArgs {
    /// GETs `path`; the document, or the error the service gave.
    fn fetch(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = with_headers(agent.get(&url), &self.tenant.tenant())
            .call()
            .map_err(|error| format!("GET {url}: {error}"))?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|error| format!("GET {url}: {error}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|error| format!("GET {url}: not JSON: {error}"))
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
            let document = args.service.fetch(&format!("{base}?page[number]={page}"))?;
            let data = document["data"].as_array().cloned().unwrap_or_default();
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
        let document = args.service.fetch(&format!("/api/drops/{}", args.id))?;
        args.service
            .print(&document, std::slice::from_ref(&document["data"]));
        Ok(())
    })
    .await
}
