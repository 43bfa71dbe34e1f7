//! Black-box harness: a real Kafka-compatible broker, the real `atlas-drops` binary, and a peer
//! that speaks the contract with its own Kafka client — nothing of the service's code is used.
//!
//! The broker is Tansu (`TANSU_BIN`, installed by `.ci/run`), one per test on a free port; set
//! `ATLAS_TEST_BOOTSTRAP` to run against any real Kafka instead (topics are fresh per test).
//!
//! `TestEnv` (here) arranges a test. Its parts: `broker` (Tansu, the topics), `names` (fresh
//! topics, group and Redis key prefix; the tests' Redis), `service` (the binary as a process, and
//! the `Options` it starts with), `peer` (our own Kafka client: commands out, events in),
//! `commands` (commands as peers write them), `http` (the REST API and operators' endpoints),
//! `proxy` (a TCP proxy a test can cut), `stand_ins` (the equipment, configuration, data and
//! party services), `load_generator` (`atlas-drops-load`).

mod broker;
mod commands;
mod http;
mod load_generator;
mod names;
mod peer;
mod proxy;
mod service;
mod stand_ins;

use std::net::TcpListener;

pub use broker::{create_topics, Broker};
pub use commands::*;
pub use http::http_get;
pub use load_generator::load_generator;
pub use names::{redis_connection, redis_url, Names};
pub use peer::{Event, Peer, Tenant};
pub use proxy::Proxy;
pub use service::{Options, Service, Store};
pub use stand_ins::{
    ConfigurationService, Configured, DataService, EquipmentService, Floor, PartyMember, PartyMode,
    PartyService,
};

pub const PARTITIONS: i32 = 4;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// What a test arranges: a broker, fresh names with their topics, a peer reading the events
/// from their start, and the service started with `options`. Dropped, it stops the service and
/// the broker and, on the shared store, deletes the test's keys in Redis.
///
/// Another instance (a replica, a restart) is `Service::start(&env.broker, &env.names,
/// &env.options)`. Borrow the parts (`let peer = &mut env.peer;`, or `let TestEnv { peer,
/// service, .. } = &mut env;`) or move them out one by one (`env.service.stop(…)`,
/// `drop(env.broker)`); never take a `TestEnv` apart by value with a pattern: the parts it leaves
/// out would be dropped at once.
pub struct TestEnv {
    // Dropped in this order: the service before the broker it uses; the keys last of all, after
    // every instance a test started has stopped (a test declares those after its `TestEnv`).
    pub service: Service,
    pub peer: Peer,
    pub names: Names,
    pub broker: Broker,
    pub options: Options,
    _redis: SharedKeys,
}

impl TestEnv {
    /// The service on the in-memory store, with nothing more set.
    pub async fn start() -> TestEnv {
        TestEnv::with(Options::default()).await
    }

    pub async fn with(options: Options) -> TestEnv {
        TestEnv::on(Broker::start(), options).await
    }

    /// On a broker the test started itself (behind a proxy, say).
    pub async fn on(broker: Broker, options: Options) -> TestEnv {
        let names = Names::fresh();
        let peer = Peer::connect(&broker, &names).await;
        let service = Service::start(&broker, &names, &options);
        let redis = SharedKeys(options.is_shared().then(|| names.clone()));
        TestEnv {
            service,
            peer,
            names,
            broker,
            options,
            _redis: redis,
        }
    }
}

/// The shared store's keys of a test, deleted when dropped. A failed test leaves them to be
/// looked at, and says where.
struct SharedKeys(Option<Names>);

impl Drop for SharedKeys {
    fn drop(&mut self) {
        let Some(names) = &self.0 else {
            return;
        };
        if std::thread::panicking() {
            eprintln!("the shared store's keys: {}:*", names.redis_prefix);
        } else {
            names.clean_redis();
        }
    }
}
