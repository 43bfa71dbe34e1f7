//! The load generator itself, end to end: against the service and against the relay, a small
//! run completes with no anomaly.

use std::process::Stdio;

use crate::harness::*;

/// Runs the generator to its end, off the test's runtime; its report.
async fn load(bootstrap: &str, names: &Names, args: &[&str]) -> String {
    let mut command = load_generator(bootstrap, names);
    command
        .args(["--kafka-cfg", "fetch.wait.max.ms=10", "--timeout-s", "60"])
        .args(args);
    let output =
        tokio::task::spawn_blocking(move || command.output().expect("atlas-drops-load runs"))
            .await
            .expect("ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn assert_clean(report: &str, lifecycles: usize) {
    assert!(
        report.contains(&format!("completed={lifecycles} ")),
        "{report}"
    );
    assert!(
        report.contains("anomalies: missing=0 duplicate=0 unexpected=0"),
        "{report}"
    );
    for step in [
        "spawn → CREATED",
        "reserve → RESERVED",
        "pick-up → PICKED_UP",
    ] {
        assert!(report.contains(&format!("latency {step}")), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generator_drives_the_service_and_the_relay() {
    let env = TestEnv::start().await;
    env.service.ready().await;
    let closed = load(
        &env.broker.bootstrap,
        &env.names,
        &["--lifecycles", "300", "--window", "50"],
    )
    .await;
    assert_clean(&closed, 300);
    let open = load(
        &env.broker.bootstrap,
        &env.names,
        &["--lifecycles", "100", "--rate", "200"],
    )
    .await;
    assert_clean(&open, 100);
    drop(env.service);

    // The relay answers every command with itself, on fresh topics.
    let names = Names::fresh();
    let mut relay = load_generator(&env.broker.bootstrap, &names)
        .args(["--relay", "--kafka-cfg", "fetch.wait.max.ms=10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the relay runs");
    let relayed = load(
        &env.broker.bootstrap,
        &names,
        &["--target", "relay", "--lifecycles", "300"],
    )
    .await;
    let _ = relay.kill();
    let _ = relay.wait();
    assert_clean(&relayed, 300);
}
