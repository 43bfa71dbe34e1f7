//! `atlas-drops list` and `atlas-drops get`: a running service's REST API, for people.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{CliError, LocationArgs, TenantArgs};
use crate::peer::with_tenant;

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

impl ServiceArgs {
    /// GETs `path`: the document, `None` when the service answered 404, or why there is none.
    fn fetch(&self, path: &str) -> Result<Option<Value>, CliError> {
        let base = self.url.trim_end_matches('/');
        let url = format!("{base}{path}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let tenant = self.tenant.tenant()?;
        let mut response = match with_tenant(agent.get(&url), &tenant).call() {
            Ok(response) => response,
            Err(source) => {
                let base = base.to_owned();
                return Err(CliError::NoService { base, source });
            }
        };
        let status = response.status();
        let body = match response.body_mut().read_to_string() {
            Ok(body) => body,
            Err(source) => return Err(CliError::Read { url, source }),
        };
        if status == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            // A JSON:API error says what was wrong in its detail; anything else as it came.
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|document| document["errors"][0]["detail"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(CliError::Refused {
                url,
                status,
                detail,
            });
        }
        match serde_json::from_str(&body) {
            Ok(document) => Ok(Some(document)),
            Err(source) => Err(CliError::NotJson { url, source }),
        }
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

pub async fn list(args: ListArgs) -> Result<(), CliError> {
    blocking(move || {
        let at = args.at;
        let map = format!(
            "/api/worlds/{}/channels/{}/maps/{}",
            at.world, at.channel, at.map
        );
        let base = if at.instance.is_nil() {
            format!("{map}/drops")
        } else {
            format!("{map}/instances/{}/drops", at.instance)
        };
        let mut page = 1;
        loop {
            let Some(document) = args.service.fetch(&format!("{base}?page[number]={page}"))? else {
                return Err(CliError::NoRoute(base));
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

pub async fn get(args: GetArgs) -> Result<(), CliError> {
    blocking(move || {
        let Some(document) = args.service.fetch(&format!("/api/drops/{}", args.id))? else {
            return Err(CliError::NoDrop(args.id));
        };
        args.service
            .print(&document, std::slice::from_ref(&document["data"]));
        Ok(())
    })
    .await
}
