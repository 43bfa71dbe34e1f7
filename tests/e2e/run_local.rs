//! `scripts/run-local`: its help starts nothing, and a SIGTERM stops the service cleanly before
//! the broker it started. The script runs the binary under test (`ATLAS_DROPS_BIN`), not a
//! release build of its own.

use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run-local")
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Whether `pid` is a live process (not gone, not a zombie nobody reaped).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `run-local: <what> ... (pid N)` from the script's output.
fn pid_of(log: &str, what: &str) -> Option<u32> {
    let line = log.lines().find(|line| line.contains(what))?;
    let (_, tail) = line.rsplit_once("(pid ")?;
    tail.trim_end_matches(')').parse().ok()
}

/// Stops what is left of a failed test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").arg(self.0.id().to_string()).status();
            let _ = wait_for(&mut self.0, Duration::from_secs(40));
            let _ = self.0.kill();
        }
    }
}

#[test]
fn help_prints_usage_and_starts_nothing() {
    let port = free_port();
    let started = Instant::now();
    let output = Command::new(script())
        .arg("--help")
        .env("BROKER_PORT", port.to_string())
        // Were it to build or run anything, it would fail.
        .env("ATLAS_DROPS_BIN", "/nonexistent/atlas-drops")
        .env("CARGO", "/nonexistent/cargo")
        .output()
        .expect("run-local runs");
    assert!(output.status.success(), "{output:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("Usage: scripts/run-local"), "{text}");
    assert!(text.contains("serve --help"), "{text}");
    assert!(output.stderr.is_empty(), "{output:?}");
    assert!(!listening(port), "a broker was started on {port}");
}

#[test]
fn sigterm_stops_the_service_cleanly_then_the_broker() {
    stops_cleanly(false);
}

/// Ctrl-C: the terminal sends SIGINT to the whole foreground process group, the service's
/// included; the broker, in a session of its own, must still outlive the service.
#[test]
fn ctrl_c_stops_the_service_cleanly_then_the_broker() {
    stops_cleanly(true);
}

fn stops_cleanly(ctrl_c: bool) {
    let broker_port = free_port();
    let rest_port = free_port();
    let dir = std::env::temp_dir().join(format!("atlas-drops-run-local-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let log_path = dir.join("run-local.log");
    let log = File::create(&log_path).expect("log file");
    let mut command = Command::new(script());
    command
        .env("BROKER_PORT", broker_port.to_string())
        .env("REST_PORT", rest_port.to_string())
        .env("ATLAS_DROPS_BIN", env!("CARGO_BIN_EXE_atlas-drops"))
        .env("TMPDIR", &dir)
        .env("LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .env_remove("BOOTSTRAP_SERVERS")
        .env_remove("STORE")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
    let mut running = Running(command.spawn().expect("run-local starts"));
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let ready = format!("http://127.0.0.1:{rest_port}/readyz");
    let started = Instant::now();
    loop {
        let status = agent.get(&ready).call().map(|r| r.status().as_u16());
        if status.ok() == Some(200) {
            break;
        }
        assert!(
            running.0.try_wait().expect("try_wait").is_none(),
            "run-local ended:\n{}",
            logs()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never ready:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = logs();
    let broker = pid_of(&text, "Tansu broker listening").expect("the broker's pid");
    let service = pid_of(&text, "atlas-drops running").expect("the service's pid");
    assert!(alive(broker) && alive(service), "{text}");

    // The script leads a process group of its own (`process_group(0)`): its id is the group's.
    let (signal, target) = if ctrl_c {
        ("-INT", format!("-{}", running.0.id()))
    } else {
        ("-TERM", running.0.id().to_string())
    };
    let sent = Command::new("kill")
        .args([signal, "--", &target])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = wait_for(&mut running.0, Duration::from_secs(40));
    let text = logs();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    assert!(
        !alive(service),
        "atlas-drops {service} is left running:\n{text}"
    );
    assert!(
        !alive(broker),
        "the broker {broker} is left running:\n{text}"
    );
    assert!(!listening(broker_port), "{text}");
    let signal = if ctrl_c { "SIGINT" } else { "SIGTERM" };
    assert!(text.contains(&format!("{signal} received")), "{text}");
    assert!(text.contains("atlas-drops stopped"), "{text}");
    // The start-up line says which store is in use.
    let started = text
        .lines()
        .find(|line| line.contains("atlas-drops started"))
        .expect("the start-up line");
    assert!(
        started.contains("store=memory") || started.contains("store=\"memory\""),
        "{started}"
    );
    // The service stopped before the broker did.
    let stopped = text.find("atlas-drops stopped").expect("stopped");
    let broker_stopped = text.find("Tansu broker stopped").expect("broker stopped");
    assert!(stopped < broker_stopped, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
