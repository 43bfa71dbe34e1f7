//! Shutdown on SIGTERM/SIGINT: every drop expires with EXPIRED, offsets are committed, exit 0.

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::*;

const MAP: u32 = 400_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_expires_every_drop_commits_and_exits_zero() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let mut ids = HashSet::new();
    for map in 0..10 {
        ids.insert(
            peer.spawn_drop(&spawn_item(MAP + map, 2_000_000))
                .await
                .drop_id(),
        );
    }
    // A reserved drop expires too: no client keeps a drop that no longer exists.
    let held = *ids.iter().next().unwrap();
    peer.send(&reserve(MAP, held, 7)).await;
    peer.next_event().await;

    let status = env.service.stop(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
    let expired = peer.next_events(ids.len(), Duration::from_secs(10)).await;
    assert!(
        expired.iter().all(|e| e.kind() == "EXPIRED"),
        "{expired:#?}"
    );
    let expired_ids: HashSet<_> = expired.iter().map(Event::drop_id).collect();
    assert_eq!(expired_ids, ids);

    // Committed: a restarted service in the same group applies none of the old commands again.
    let restarted = Service::start(&env.broker, &env.names, &env.options);
    peer.expect_quiet(Duration::from_secs(4)).await;
    let spawn = spawn_item(MAP, 2_000_000);
    let created = peer.spawn_drop(&spawn).await;
    assert_eq!(created.value["transactionId"], spawn["transactionId"]);
    let status = restarted.stop(Duration::from_secs(30));
    assert!(status.success());
    assert_eq!(peer.next_event().await.kind(), "EXPIRED");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_shuts_down_too() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let id = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    let status = env.service.interrupt(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
    let expired = peer.next_event().await;
    assert_eq!((expired.kind(), expired.drop_id()), ("EXPIRED", id));
}

/// Contract §5: ids do not repeat across a restart. The drop of the first run is gone (expired
/// at its shutdown); the second run's first drop has another id, and a late reservation for
/// the old id is refused rather than reserving the new drop.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_service_does_not_hand_out_the_ids_of_the_run_before() {
    let mut env = TestEnv::start().await;
    let peer = &mut env.peer;
    let old = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    assert!(env.service.stop(Duration::from_secs(30)).success());
    assert_eq!(peer.next_event().await.kind(), "EXPIRED");

    let second = Service::start(&env.broker, &env.names, &env.options);
    let new = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await.drop_id();
    assert_ne!(new, old, "an id of the run before");
    assert!((1_000_000_001..=2_000_000_000).contains(&new), "{new}");
    peer.send(&reserve(MAP, old, 7)).await;
    let answer = peer.next_event().await;
    assert_eq!(
        (answer.kind(), answer.drop_id()),
        ("RESERVATION_FAILURE", old),
        "{answer:?}"
    );
    assert!(second.stop(Duration::from_secs(30)).success());
    assert_eq!(peer.next_event().await.drop_id(), new);
}
