//! The party service (atlas-parties), a peer we do not own, over its JSON:API: which members of a
//! character's party stand online where a meso drop is reserved, so that they share it
//! (contract-head §4; the split itself is `drop::award`). One try, bounded by
//! `PARTIES_TIMEOUT_MS`: a late answer is worth no more than none (the picker then takes the meso
//! alone), so nothing is retried. The request blocks a thread of the blocking pool, never one of
//! the runtime's, and the caller waits for it beside the partition (as for the equipment service).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinError;
use ureq::http::StatusCode;
use uuid::Uuid;

use crate::drop::model::{Location, Tenant, TenantRef};
use crate::metrics::PartyLookup;
use crate::peer::{with_tenant, Peer};

/// Why the party service gave no usable answer: the caller shares with nobody (the picker alone).
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    #[error("GET {url}: {source}")]
    Transport { url: String, source: ureq::Error },
    #[error("GET {url}: {status}")]
    Status { url: String, status: StatusCode },
    #[error("GET {url}: {source}")]
    Document { url: String, source: DocumentError },
    #[error("GET {url}: no answer within {timeout:?}")]
    TimedOut { url: String, timeout: Duration },
    /// The thread of the blocking request failed.
    #[error("party request failed: {0}")]
    Thread(#[from] JoinError),
}

/// Why an answer is not the list of parties we know.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("not a JSON:API list of parties: {0}")]
    NotParties(serde_json::Error),
    #[error("member {id:?}: attributes not as expected: {source}")]
    Member {
        id: String,
        source: serde_json::Error,
    },
    #[error("member id {0:?} is not a character id")]
    MemberId(String),
}

/// What the party service says of a character's party, seen from one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The character is in no party.
    NoParty,
    /// The character is in a party: the ids of its members online at the location, in the
    /// party's order (the character among them when the service places it there; a member named
    /// twice, twice: `drop::award::split_meso` counts each once).
    Party(Vec<u32>),
}

impl Lookup {
    /// The members present: none without a party.
    pub fn into_present(self) -> Vec<u32> {
        match self {
            Lookup::NoParty => Vec::new(),
            Lookup::Party(present) => present,
        }
    }

    /// The outcome as `atlas_drops_party_lookups_total` counts it (an error is `Failed`).
    pub fn outcome(&self) -> PartyLookup {
        match self {
            Lookup::NoParty => PartyLookup::NoParty,
            Lookup::Party(_) => PartyLookup::Party,
        }
    }
}

#[derive(Clone)]
pub struct PartyService {
    peer: Peer,
    /// The longest wait for an answer, all of it (connecting, sending, reading).
    timeout: Duration,
}

impl PartyService {
    pub fn new(base: &str, timeout: Duration) -> PartyService {
        PartyService {
            peer: Peer::new(base, timeout),
            timeout,
        }
    }

    /// Asks for `character_id`'s party: `GET {URL}parties?filter[members.id]={character_id}`
    /// (brackets percent-encoded, as a URI's query wants them), with the tenant's headers; the
    /// members online at `location`, or why not within the timeout.
    pub async fn present(
        &self,
        tenant: &TenantRef,
        character_id: u32,
        location: &Location,
    ) -> Result<Lookup, PartyError> {
        let url = (self.peer).url(&format!("parties?filter%5Bmembers.id%5D={character_id}"));
        let (agent, tenant, asked) = (self.peer.agent.clone(), tenant.clone(), url.clone());
        let location = *location;
        // Read off the runtime too: an answer can be large (a peer's bug, or a hostile one).
        let request = async {
            let _turn = self.peer.turn().await;
            tokio::task::spawn_blocking(move || {
                let body = fetch(&agent, &asked, &tenant)?;
                present_at(&body, &location)
                    .map_err(|source| PartyError::Document { url: asked, source })
            })
            .await
        };
        // The agent's own timeout ends the request too; this one also bounds the wait for the
        // request's turn and for a thread of the blocking pool.
        match tokio::time::timeout(self.timeout, request).await {
            Ok(joined) => joined?,
            Err(_) => Err(PartyError::TimedOut {
                url,
                timeout: self.timeout,
            }),
        }
    }
}

/// The body of a successful answer.
fn fetch(agent: &ureq::Agent, url: &str, tenant: &Tenant) -> Result<String, PartyError> {
    let failed = |source| PartyError::Transport {
        url: url.to_owned(),
        source,
    };
    let mut response = with_tenant(agent.get(url), tenant).call().map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(PartyError::Status {
            url: url.to_owned(),
            status,
        });
    }
    response.body_mut().read_to_string().map_err(failed)
}

/// The JSON:API document the party service answers, as far as we read it.
#[derive(Deserialize)]
struct Document {
    data: Vec<Party>,
    #[serde(default)]
    included: Vec<Resource>,
}

#[derive(Deserialize)]
struct Party {
    #[serde(default)]
    relationships: Relationships,
}

#[derive(Deserialize, Default)]
struct Relationships {
    #[serde(default)]
    members: ToMany,
}

#[derive(Deserialize, Default)]
struct ToMany {
    /// `null` or missing: nobody.
    #[serde(default)]
    data: Option<Vec<Identifier>>,
}

#[derive(Deserialize)]
struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    attributes: serde_json::Value,
}

/// A member's attributes that say where it is (the service sends more: name, level, …).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    world_id: u8,
    channel_id: u8,
    map_id: u32,
    /// Missing from a service of the older generation: not instanced, as in its commands.
    #[serde(default)]
    instance: Uuid,
    online: bool,
}

const MEMBERS: &str = "members";

/// The first party's members, as named by its `members` relationship, that are included, online
/// and at `location`.
fn present_at(body: &str, location: &Location) -> Result<Lookup, DocumentError> {
    let document: Document = serde_json::from_str(body).map_err(DocumentError::NotParties)?;
    let Some(party) = document.data.into_iter().next() else {
        return Ok(Lookup::NoParty);
    };
    let named = party.relationships.members.data.unwrap_or_default();
    // Looked up by id, not searched for each member: the document may be large. (The first of
    // two resources with one id counts, as a search would find it.)
    let included: HashMap<&str, &Resource> = (document.included.iter().rev())
        .filter(|resource| resource.kind == MEMBERS)
        .map(|resource| (resource.id.as_str(), resource))
        .collect();
    let mut present = Vec::new();
    for identifier in named.iter().filter(|named| named.kind == MEMBERS) {
        let character_id: u32 =
            (identifier.id.parse()).map_err(|_| DocumentError::MemberId(identifier.id.clone()))?;
        // Named but not included: we do not know where it is, so it is not present.
        let Some(resource) = included.get(identifier.id.as_str()) else {
            continue;
        };
        let member =
            Member::deserialize(&resource.attributes).map_err(|source| DocumentError::Member {
                id: identifier.id.clone(),
                source,
            })?;
        let at = Location {
            world_id: member.world_id,
            channel_id: member.channel_id,
            map_id: member.map_id,
            instance: member.instance,
        };
        if member.online && at == *location {
            present.push(character_id);
        }
    }
    Ok(Lookup::Party(present))
}

#[cfg(test)]
mod tests;
