//! Drop ids from the Atlas services' shared allocator (contract-head §7): the real binary on the
//! shared store with `DROP_ID_SOURCE=atlas`, the allocator's keys under an `ATLAS_REDIS_ENV` of
//! the test's own, so that runs never meet.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::harness::*;

const MAP: u32 = 600_000_000;

/// A fresh `ATLAS_REDIS_ENV`: the allocator's keys live under `<env>:atlas:`, deleted when it goes.
struct AtlasEnv(String);

impl AtlasEnv {
    fn fresh() -> AtlasEnv {
        AtlasEnv(format!("atlas-drops-test-{}", Uuid::new_v4().simple()))
    }

    /// The counter of `tenant` (`{P}:oid:{tenantId}:next`).
    fn counter_key(&self, tenant: &Tenant) -> String {
        format!("{}:atlas:oid:{}:next", self.0, tenant.id)
    }

    fn counter(&self, tenant: &Tenant) -> Option<u64> {
        let mut redis = redis_connection().expect("Redis answers");
        redis::cmd("GET")
            .arg(self.counter_key(tenant))
            .query(&mut redis)
            .expect("GET")
    }
}

impl Drop for AtlasEnv {
    fn drop(&mut self) {
        let Ok(mut redis) = redis_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:atlas:*", self.0))
            .query(&mut redis)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut redis);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_ids_come_from_the_tenants_atlas_counter() {
    let atlas = AtlasEnv::fresh();
    let options = Options::default()
        .shared()
        .env("DROP_ID_SOURCE", "atlas")
        .env("ATLAS_REDIS_ENV", &atlas.0);
    let mut env = TestEnv::with(options).await;
    let (service, peer) = (&env.service, &mut env.peer);

    let first = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    assert_eq!(
        first.drop_id(),
        1_000_000,
        "a fresh counter starts at a million"
    );
    assert_eq!(first.key, key_of(1_000_000));
    let second = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    assert_eq!(second.drop_id(), 1_000_001);
    assert_eq!(atlas.counter(&peer.tenant), Some(1_000_001));
    // Monsters and reactors take their ids from the same counter: a drop's comes after theirs.
    let mut redis = redis_connection().expect("Redis answers");
    let _: u64 = redis::cmd("INCRBY")
        .arg(atlas.counter_key(&peer.tenant))
        .arg(2)
        .query(&mut redis)
        .expect("INCRBY");
    let third = peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    assert_eq!(third.drop_id(), 1_000_004);

    // A drop's life, by its atlas id.
    peer.send(&reserve(MAP, 1_000_000, 7)).await;
    let reserved = peer.next_event().await;
    assert_eq!(
        (reserved.kind(), reserved.drop_id()),
        ("RESERVED", 1_000_000)
    );
    peer.send(&pick_up(MAP, 1_000_000, 7)).await;
    let picked_up = peer.next_event().await;
    assert_eq!(
        (picked_up.kind(), picked_up.drop_id()),
        ("PICKED_UP", 1_000_000)
    );
    assert_eq!(picked_up.body()["characterId"], 7);

    // Another tenant has a counter of its own: its first drop has the first id too, and each
    // tenant finds its own drop by it, and only its own.
    let other = Tenant::new("GMS", 83, 1);
    peer.send_as(&other, &spawn_item(MAP, 4_000_000)).await;
    let created = peer.next_event().await;
    assert_eq!((created.kind(), created.drop_id()), ("CREATED", 1_000_000));
    assert_eq!(
        created.headers["TENANT_ID"],
        other.id.to_string().into_bytes()
    );
    service.ready().await;
    let item_of = |(status, _, body): (u16, String, String)| {
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        (status, body["data"]["attributes"]["itemId"].as_u64())
    };
    let ours = item_of(service.get("/api/drops/1000000", &peer.tenant).await);
    assert_eq!(ours, (404, None), "picked up");
    let theirs = item_of(service.get("/api/drops/1000000", &other).await);
    assert_eq!(theirs, (200, Some(4_000_000)));
    let ours = item_of(service.get("/api/drops/1000001", &peer.tenant).await);
    assert_eq!(ours, (200, Some(2_000_000)));
    let theirs = item_of(service.get("/api/drops/1000001", &other).await);
    assert_eq!(theirs, (404, None));
}

/// The in-memory store has no shared allocator to take ids from: the service does not start,
/// and says why.
#[test]
fn atlas_ids_without_the_shared_store_refuse_to_start() {
    let mut service = Command::new(env!("CARGO_BIN_EXE_atlas-drops"))
        .env_clear()
        .env("STORE", "memory")
        .env("DROP_ID_SOURCE", "atlas")
        .env("REST_PORT", free_port().to_string())
        .env("BOOTSTRAP_SERVERS", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting atlas-drops");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = service.try_wait().expect("waiting") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = service.kill();
            panic!("atlas-drops started with DROP_ID_SOURCE=atlas and STORE=memory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(service.stderr.take().expect("stderr")).expect("text");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("DROP_ID_SOURCE=atlas")
            && stderr.contains("it needs STORE=redis (STORE is memory)"),
        "{stderr}"
    );
}
