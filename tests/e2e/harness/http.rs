//! A plain HTTP client for the service's REST API and operators' endpoints.

use std::time::Duration;

use super::{Service, Tenant};

/// A plain HTTP GET: `(status, content type, body)`; status 0 when nothing answers.
pub async fn http_get(url: &str, headers: &[(&str, String)]) -> (u16, String, String) {
    let url = url.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut request = agent.get(&url);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        match request.call() {
            Ok(mut response) => {
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = response.body_mut().read_to_string().unwrap_or_default();
                (response.status().as_u16(), content_type, body)
            }
            Err(_) => (0, String::new(), String::new()),
        }
    })
    .await
    .expect("HTTP request task")
}

impl Tenant {
    /// The tenant headers as HTTP carries them: versions in decimal.
    pub fn http_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TENANT_ID", self.id.to_string()),
            ("REGION", self.region.clone()),
            ("MAJOR_VERSION", self.major.to_string()),
            ("MINOR_VERSION", self.minor.to_string()),
        ]
    }
}

impl Service {
    /// GET `path` of its REST API as `tenant`: `(status, content type, body)`.
    pub async fn get(&self, path: &str, tenant: &Tenant) -> (u16, String, String) {
        http_get(&format!("{}{path}", self.http), &tenant.http_headers()).await
    }

    /// The value of a metric line of `/metrics` (`name` with its labels, as printed).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, _, text) = http_get(&format!("{}/metrics", self.http), &[]).await;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}
