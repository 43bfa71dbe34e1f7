//! The party service's stand-in (`PartyService`) and our client of the party service
//! (`atlas_drops::party`), in-process and without a broker: the stand-in speaks what the client
//! reads, so that the black-box tests of the meso split can rely on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_drops::drop::model::{Location, Tenant};
use atlas_drops::party::{Lookup, PartyError};
use uuid::Uuid;

use crate::harness::*;

const MAP: u32 = 900_000_000;
const TIMEOUT: Duration = Duration::from_millis(500);

fn instance() -> Uuid {
    Uuid::from_u128(0x5eed)
}

fn here() -> Location {
    Location {
        world_id: 0,
        channel_id: 1,
        map_id: MAP,
        instance: instance(),
    }
}

fn tenant() -> Arc<Tenant> {
    Arc::new(Tenant {
        id: Uuid::new_v4(),
        region: "GMS".to_owned(),
        major_version: 83,
        minor_version: 1,
    })
}

async fn lookup(
    parties: &PartyService,
    tenant: &Arc<Tenant>,
    character_id: u32,
) -> Result<Lookup, PartyError> {
    let client = atlas_drops::party::PartyService::new(&parties.url, TIMEOUT);
    client.present(tenant, character_id, &here()).await
}

#[tokio::test]
async fn the_stand_in_answers_a_party_as_the_client_reads_it() {
    let parties = PartyService::start().await;
    parties.set_party(
        1,
        vec![
            PartyMember::at(7, 0, 1, MAP, instance()),
            PartyMember::at(3, 0, 1, MAP, instance()),
            PartyMember::at(11, 0, 1, MAP + 1, instance()),
            PartyMember::at(12, 0, 1, MAP, instance()).offline(),
            PartyMember::at(13, 0, 1, MAP, Uuid::nil()),
            PartyMember::at(14, 0, 2, MAP, instance()),
            PartyMember::at(15, 0, 1, MAP, instance()).not_included(),
        ],
    );
    parties.set_party(2, vec![PartyMember::at(20, 0, 1, MAP, instance())]);
    let tenant = tenant();

    assert_eq!(
        lookup(&parties, &tenant, 3).await.unwrap(),
        Lookup::Party(vec![7, 3])
    );
    assert_eq!(
        lookup(&parties, &tenant, 20).await.unwrap(),
        Lookup::Party(vec![20])
    );
    assert_eq!(
        lookup(&parties, &tenant, 99).await.unwrap(),
        Lookup::NoParty
    );
    parties.disband(2);
    assert_eq!(
        lookup(&parties, &tenant, 20).await.unwrap(),
        Lookup::NoParty
    );

    let requests = parties.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].raw_query, "filter%5Bmembers.id%5D=3");
    assert_eq!(requests[0].member_id.as_deref(), Some("3"));
    assert_eq!(
        requests[0].tenant,
        [tenant.id.to_string(), "GMS".into(), "83".into(), "1".into()],
        "tenant headers, decimal versions"
    );
}

#[tokio::test]
async fn the_stand_in_fails_as_asked() {
    let parties = PartyService::start().await;
    parties.set_party(1, vec![PartyMember::at(7, 0, 1, MAP, instance())]);
    let tenant = tenant();

    parties.set_mode(PartyMode::Down);
    let error = lookup(&parties, &tenant, 7).await.unwrap_err();
    assert!(matches!(error, PartyError::Status { .. }), "{error}");

    parties.set_mode(PartyMode::Garbage);
    let error = lookup(&parties, &tenant, 7).await.unwrap_err();
    assert!(matches!(error, PartyError::Document { .. }), "{error}");

    parties.set_mode(PartyMode::Slow(Duration::from_secs(3)));
    let started = Instant::now();
    let error = lookup(&parties, &tenant, 7).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            error,
            PartyError::TimedOut { .. } | PartyError::Transport { .. }
        ),
        "{error}"
    );
    assert!(
        waited < TIMEOUT + Duration::from_millis(500),
        "waited {waited:?}"
    );

    // Slow but within the timeout: answered.
    parties.set_mode(PartyMode::Slow(Duration::from_millis(50)));
    assert_eq!(
        lookup(&parties, &tenant, 7).await.unwrap(),
        Lookup::Party(vec![7])
    );
    parties.set_mode(PartyMode::Up);
    assert_eq!(
        lookup(&parties, &tenant, 7).await.unwrap(),
        Lookup::Party(vec![7])
    );
    assert_eq!(parties.requests().len(), 5);
}
