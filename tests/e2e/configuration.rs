//! The drop lifetime from the configuration service (contract-head §9). The service is a peer we
//! do not own, so a stand-in of ours answers for it (`ConfigurationService`), speaking its
//! JSON:API.

use std::time::{Duration, Instant};

use crate::harness::*;

const MAP: u32 = 920_000_000;
const SERVICE_ID: &str = "5f0b3a8e-6d0c-4e55-9a51-0d9b7c1f2e3a";

fn configured(service: &ConfigurationService) -> Options {
    Options::default()
        .env("CONFIGURATIONS_SERVICE_URL", &service.url)
        .env("SERVICE_ID", SERVICE_ID)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configured_drop_lifetime_drives_expiry() {
    let configuration = ConfigurationService::start(Configured::Lifetime(1500)).await;
    let mut env = TestEnv::with(configured(&configuration)).await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    let created = Instant::now();
    let expired = peer.next_events(1, Duration::from_secs(10)).await.remove(0);
    let lay = created.elapsed();
    assert_eq!((expired.kind(), expired.drop_id()), ("EXPIRED", id));
    assert!(lay >= Duration::from_millis(1200), "expired after {lay:?}");
    let path = format!("/api/configurations/services/{SERVICE_ID}");
    assert_eq!(configuration.asked(), [path]);
    assert!(env
        .service
        .logs()
        .contains("drop lifetime read from the configuration service"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_drop_expire_ms_wins_over_the_configured_lifetime() {
    let configuration = ConfigurationService::start(Configured::Lifetime(600)).await;
    let options = configured(&configuration).env("DROP_EXPIRE_MS", "0");
    let mut env = TestEnv::with(options).await;
    let peer = &mut env.peer;
    peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    peer.expect_quiet(Duration::from_secs(3)).await;
    assert!(
        configuration.asked().is_empty(),
        "not asked: DROP_EXPIRE_MS says it"
    );
}

/// Without an answer the service starts all the same and keeps the default lifetime, saying so.
async fn the_default_is_kept(configuration: ConfigurationService, why: &str) {
    let mut env = TestEnv::with(configured(&configuration)).await;
    env.service.ready().await;
    let peer = &mut env.peer;
    peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    let logs = env.service.logs();
    let warning = (logs.lines())
        .find(|line| line.contains("drop lifetime not read from the configuration service"))
        .unwrap_or_else(|| panic!("no warning in\n{logs}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("drop_expire_ms=180000"), "{warning}");
    assert!(warning.contains(why), "{warning}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_service_that_is_down_leaves_the_default_lifetime() {
    the_default_is_kept(ConfigurationService::down(), "Connection refused").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_service_too_slow_to_answer_leaves_the_default_lifetime() {
    let slow = ConfigurationService::start(Configured::Slow).await;
    the_default_is_kept(slow, "timeout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_of_another_shape_leaves_the_default_lifetime() {
    let bad = ConfigurationService::start(Configured::Bad).await;
    the_default_is_kept(bad, "not a service configuration").await;
}

/// A lifetime of 0 would switch expiry off: an operator may choose that (`DROP_EXPIRE_MS=0`), a
/// configuration answer may not.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_lifetime_of_zero_leaves_the_default_lifetime() {
    let zero = ConfigurationService::start(Configured::Lifetime(0)).await;
    the_default_is_kept(zero, "is not a whole number of ms above 0").await;
}
