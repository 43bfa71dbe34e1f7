//! Black-box harness: a real Kafka-compatible broker, the real `atlas-drops` binary, and a peer
//! that speaks the contract with its own Kafka client — nothing of the service's code is used.
//!
//! The broker is Tansu (`TANSU_BIN`, installed by `.ci/run`), one per test on a free port; set
//! `ATLAS_TEST_BOOTSTRAP` to run against any real Kafka instead (topics are fresh per test).

#![allow(dead_code)] // to go: every helper is used or deleted

mod broker;
mod commands;
mod http;
mod names;
mod peer;
mod proxy;
mod service;

use std::net::TcpListener;

pub use broker::{create_topics, Broker};
pub use commands::*;
pub use http::http_get;
pub use names::{redis_url, Names};
pub use peer::{Event, Peer, Tenant};
pub use proxy::Proxy;
pub use service::{metric, Service};

pub const PARTITIONS: i32 = 4;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A broker, fresh topics, a peer reading the events, and the service with `env`.
pub async fn setup(env: &[(&str, &str)]) -> (Broker, Service, Peer) {
    let broker = Broker::start();
    let names = Names::fresh();
    let peer = Peer::connect(&broker, &names).await;
    let service = Service::start(&broker, &names, env);
    (broker, service, peer)
}
