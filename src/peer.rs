//! What every client of a peer service we do not own shares (the equipment, party, data and
//! configuration services): a base URL, an HTTP agent that hands back every status as an answer
//! and gives up after a time, and the tenant on each request.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::drop::model::Tenant;

/// Requests to one peer in flight at once, at most (each holds a thread of the blocking pool).
/// Unbounded, a burst of commands that each ask a peer — a closed loop of 2 000 meso
/// reservations, once a partition applied different maps' commands at once — took all 512
/// threads of the blocking pool and flooded the peer: its answers came later than the timeout,
/// and every drop of the burst was awarded to its picker alone.
const MOST_IN_FLIGHT: usize = 32;

/// A peer service at a base URL (`http://equipables:8080/api/`, say).
#[derive(Clone)]
pub struct Peer {
    /// Ends in `/`, whether or not the setting did.
    base: String,
    pub agent: ureq::Agent,
    in_flight: Arc<Semaphore>,
}

impl Peer {
    /// The service at `base`, each request given up after `timeout` (connecting, sending,
    /// reading: all of it).
    pub fn new(base: &str, timeout: Duration) -> Peer {
        let slash = if base.ends_with('/') { "" } else { "/" };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Peer {
            base: format!("{base}{slash}"),
            agent,
            in_flight: Arc::new(Semaphore::new(MOST_IN_FLIGHT)),
        }
    }

    /// Waits for a request's turn (see `MOST_IN_FLIGHT`); the request may go while the permit
    /// is held. Callers wait inside their own timeout, so a wait here counts against it.
    pub async fn turn(&self) -> SemaphorePermit<'_> {
        self.in_flight.acquire().await.expect("never closed")
    }

    /// The URL of `path` (no leading `/`) at this service.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A JSON:API document of one resource, as far as we read it: its attributes.
#[derive(Deserialize)]
pub struct OneResource<A> {
    pub data: Resource<A>,
}

#[derive(Deserialize)]
pub struct Resource<A> {
    pub attributes: A,
}

/// Puts the tenant on an outgoing request, as the Atlas services read it over HTTP (contract
/// §4: the versions as decimal strings). The operators' `list` and `get` use it too.
pub fn with_tenant<B>(
    request: ureq::RequestBuilder<B>,
    tenant: &Tenant,
) -> ureq::RequestBuilder<B> {
    request
        .header("TENANT_ID", tenant.id.to_string())
        .header("REGION", &tenant.region)
        .header("MAJOR_VERSION", tenant.major_version.to_string())
        .header("MINOR_VERSION", tenant.minor_version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_ends_in_a_slash_whether_or_not_the_setting_did() {
        let second = Duration::from_secs(1);
        assert_eq!(
            Peer::new("http://p/api", second).url("parties"),
            "http://p/api/parties"
        );
        assert_eq!(
            Peer::new("http://p/api/", second).url("parties"),
            "http://p/api/parties"
        );
    }
}
