//! The `atlas-drops` binary, started as a process of its own with the test's broker and names.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{free_port, http_get, redis_url, Broker, Names, PARTITIONS};

/// How the service ended, and what it logged.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub logs: String,
}

impl Stopped {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Where the service keeps its drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Store {
    /// In memory (`STORE=memory`, the service's default): one instance per group.
    #[default]
    Memory,
    /// The shared store (`STORE=redis`, the tests' Redis) under the test's key prefix.
    Shared,
}

/// How a test starts the service, beyond what every instance gets (the test's broker and
/// names, fast group joins, debug logs).
#[derive(Clone, Debug, Default)]
pub struct Options {
    store: Store,
    dead_letters: bool,
    env: Vec<(String, String)>,
}

impl Options {
    pub fn store(mut self, store: Store) -> Options {
        self.store = store;
        self
    }

    /// On the shared store.
    pub fn shared(self) -> Options {
        self.store(Store::Shared)
    }

    /// Copies rejected commands to the test's dead-letter topic.
    pub fn dead_letters(mut self) -> Options {
        self.dead_letters = true;
        self
    }

    /// One more setting, as an environment variable; set after the others, so it wins.
    pub fn env(mut self, name: &str, value: &str) -> Options {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn is_shared(&self) -> bool {
        self.store == Store::Shared
    }
}

/// The service binary, running.
pub struct Service {
    process: Option<Child>,
    pub log: PathBuf,
    /// Base URL of its REST API.
    pub http: String,
}

impl Service {
    /// Starts `atlas-drops` on the test's broker and names, with fast group joins and `options`.
    pub fn start(broker: &Broker, names: &Names, options: &Options) -> Service {
        let log = std::env::temp_dir().join(format!("atlas-drops-{}.log", Uuid::new_v4()));
        let file = std::fs::File::create(&log).expect("log file");
        let rest_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_atlas-drops"));
        command
            .env_clear()
            .env("REST_PORT", rest_port.to_string())
            .env("BOOTSTRAP_SERVERS", &broker.bootstrap)
            .env("COMMAND_TOPIC_DROP", &names.commands)
            .env("EVENT_TOPIC_DROP_STATUS", &names.events)
            .env("KAFKA_CONSUMER_GROUP", &names.group)
            .env("TOPIC_PARTITIONS", PARTITIONS.to_string())
            .env("LOG_LEVEL", "debug")
            .env("KAFKA_CFG_SESSION_TIMEOUT_MS", "2000")
            .env("KAFKA_CFG_HEARTBEAT_INTERVAL_MS", "500")
            .env("KAFKA_CFG_FETCH_WAIT_MAX_MS", "10")
            .env("KAFKA_CFG_LINGER_MS", "0")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        if options.is_shared() {
            command
                .env("STORE", "redis")
                .env("REDIS_URL", redis_url())
                .env("REDIS_KEY_PREFIX", &names.redis_prefix);
        }
        if options.dead_letters {
            command.env("DEAD_LETTER_TOPIC_DROP", &names.dead_letters);
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let process = command.spawn().expect("starting atlas-drops");
        Service {
            process: Some(process),
            log,
            http: format!("http://127.0.0.1:{rest_port}"),
        }
    }

    /// How the process ended, if it did.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.as_mut()?.try_wait().expect("waiting")
    }

    /// SIGKILL: the process dies at whatever it was doing. Returns its log.
    pub fn kill(mut self) -> String {
        let mut process = self.process.take().expect("running");
        process.kill().expect("SIGKILL");
        process.wait().expect("reaped");
        self.logs()
    }

    /// SIGTERM, then waits for the exit (at most `limit`).
    pub fn stop(self, limit: Duration) -> Stopped {
        self.signal_and_wait("TERM", limit)
    }

    /// SIGINT, then waits for the exit (at most `limit`).
    pub fn interrupt(self, limit: Duration) -> Stopped {
        self.signal_and_wait("INT", limit)
    }

    fn signal_and_wait(mut self, name: &str, limit: Duration) -> Stopped {
        let mut process = self.process.take().expect("running");
        signal(&process, name);
        let started = Instant::now();
        loop {
            if let Some(status) = process.try_wait().expect("waiting") {
                return Stopped {
                    status,
                    logs: self.logs(),
                };
            }
            if started.elapsed() > limit {
                let _ = process.kill();
                panic!(
                    "atlas-drops did not exit within {limit:?}; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&self) {
        let started = Instant::now();
        loop {
            let (status, _, _) = http_get(&format!("{}/readyz", self.http), &[]).await;
            if status == 200 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn signal(process: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &process.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.kill();
            let _ = process.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("atlas-drops log: {}", self.log.display());
        }
    }
}
