//! The operators' subcommands against a running service: send, tail, list, get.

use std::process::Output;

use serde_json::Value;

use crate::harness::*;

const MAP: u32 = 800_000_000;

/// Runs `atlas-drops <args>` as an operator would, with the test's broker, topics, tenant (the
/// peer's) and service URL in the environment.
async fn atlas(env: &TestEnv, args: &[&str]) -> Output {
    let tenant = &env.peer.tenant;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-drops"));
    command
        .env_clear()
        .env("BOOTSTRAP_SERVERS", &env.broker.bootstrap)
        .env("COMMAND_TOPIC_DROP", &env.names.commands)
        .env("EVENT_TOPIC_DROP_STATUS", &env.names.events)
        .env("TENANT_ID", tenant.id.to_string())
        .env("REGION", &tenant.region)
        .env("MAJOR_VERSION", tenant.major.to_string())
        .env("MINOR_VERSION", tenant.minor.to_string())
        .env("ATLAS_DROPS_URL", &env.service.http)
        .args(args);
    tokio::task::spawn_blocking(move || command.output().expect("atlas-drops runs"))
        .await
        .expect("ran")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_follows_a_drops_life() {
    let mut env = TestEnv::start().await;
    env.service.ready().await;
    let tenant = env.peer.tenant.clone();
    let map = MAP.to_string();
    let at = ["--world", "1", "--channel", "2", "--map", map.as_str()];

    let spawn = [
        &["send", "spawn"][..],
        &at,
        &[
            "--item",
            "2000000",
            "--quantity",
            "4",
            "--x",
            "-30",
            "--y",
            "7",
        ],
    ]
    .concat();
    let sent = stdout(&atlas(&env, &spawn).await);
    let transaction = sent
        .split_whitespace()
        .nth(3)
        .expect("the transaction id")
        .to_owned();
    let created = env.peer.next_event().await;
    assert_eq!(created.kind(), "CREATED");
    assert_eq!(created.transaction_id(), transaction, "{sent}");
    assert_eq!(created.body()["x"], -30);
    assert_eq!(created.body()["quantity"], 4);
    let id = created.drop_id().to_string();

    let listed = stdout(&atlas(&env, &[&["list"][..], &at].concat()).await);
    assert!(
        listed.starts_with(&format!(
            "{id} AVAILABLE item 2000000 x4 at (-30,7) w1/c2/m{MAP}"
        )),
        "{listed}"
    );
    let got = stdout(&atlas(&env, &["get", &id, "--json"]).await);
    let document: Value = serde_json::from_str(&got).expect("JSON:API");
    assert_eq!(document["data"]["id"], id.as_str());

    let reserve = [
        &["send", "reserve"][..],
        &at,
        &["--drop", &id, "--character", "7", "--x", "-30", "--y", "7"],
    ]
    .concat();
    stdout(&atlas(&env, &reserve).await);
    assert_eq!(env.peer.next_event().await.kind(), "RESERVED");
    let got = stdout(&atlas(&env, &["get", &id]).await);
    assert!(got.contains(" RESERVED "), "{got}");
    let pick = [
        &["send", "pick-up"][..],
        &at,
        &["--drop", &id, "--character", "7"],
    ]
    .concat();
    stdout(&atlas(&env, &pick).await);
    assert_eq!(env.peer.next_event().await.kind(), "PICKED_UP");

    let tail = stdout(
        &atlas(
            &env,
            &["tail", "--from-beginning", "--count", "3", "--drop", &id],
        )
        .await,
    );
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 3, "{tail}");
    let mut kinds: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["CREATED", "PICKED_UP", "RESERVED"]);
    for line in &lines {
        assert!(
            line.contains(&format!(
                "tenant={} GMS 83.1 w1/c2/m{MAP} drop={id} tx=",
                tenant.id
            )),
            "{line}"
        );
    }
    let only = stdout(
        &atlas(
            &env,
            &[
                "tail",
                "--from-beginning",
                "--count",
                "1",
                "--json",
                "--type",
                "PICKED_UP",
            ],
        )
        .await,
    );
    let picked: Value = serde_json::from_str(only.trim()).expect("raw JSON");
    assert_eq!(picked["body"]["characterId"], 7);

    // Gone: `get` says so in a line, and fails.
    let missing = atlas(&env, &["get", &id]).await;
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        format!("atlas-drops: no drop {id} for this tenant\n")
    );
    assert!(missing.stdout.is_empty());
    // An empty map: `list` says so.
    let empty = stdout(&atlas(&env, &["list", "--map", "7"]).await);
    assert_eq!(
        empty,
        "no drops on map 7 (world 0, channel 0) for this tenant\n"
    );
}

/// `tail`'s lines keep their columns: the time has three fractional digits, the type is padded
/// to the longest type (`RESERVATION_FAILURE`), so `tenant=` starts at the same column on
/// every line.
#[tokio::test(flavor = "multi_thread")]
async fn tail_keeps_its_columns() {
    let mut env = TestEnv::start().await;
    env.service.ready().await;
    let created = env.peer.spawn_drop(&spawn_item(MAP, 2_000_000)).await;
    let id = created.drop_id();
    // Out of range: refused with RESERVATION_FAILURE, the longest type.
    let mut far = reserve(MAP, id, 7);
    far["body"]["characterX"] = serde_json::json!(30_000);
    env.peer.send(&far).await;
    assert_eq!(env.peer.next_event().await.kind(), "RESERVATION_FAILURE");
    env.peer.send(&reserve(MAP, id, 7)).await;
    assert_eq!(env.peer.next_event().await.kind(), "RESERVED");
    env.peer.send(&pick_up(MAP, id, 7)).await;
    assert_eq!(env.peer.next_event().await.kind(), "PICKED_UP");

    let tail = stdout(
        &atlas(
            &env,
            &[
                "tail",
                "--from-beginning",
                "--count",
                "4",
                "--map",
                &MAP.to_string(),
            ],
        )
        .await,
    );
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 4, "{tail}");
    for line in &lines {
        // 2026-11-27T14:12:59.090Z: 24 characters, 3 of them after the point.
        let time = line.split(' ').next().unwrap();
        assert_eq!(time.len(), 24, "{line}");
        assert_eq!(time.find('.'), Some(19), "{line}");
        assert!(time.ends_with('Z'), "{line}");
        assert_eq!(line.find(" tenant="), Some(24 + 1 + 19), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" RESERVATION_FAILURE tenant=")
                && l.ends_with("character 7 refused: out_of_range")),
        "{tail}"
    );
}

/// Runs `atlas-drops <args>` with a tenant and a broker that is not there.
async fn offline(bootstrap: &str, args: &[&str]) -> (Output, std::time::Duration) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-drops"));
    command
        .env_clear()
        .env("BOOTSTRAP_SERVERS", bootstrap)
        .env("TENANT_ID", "083839c6-c47c-42a6-9585-76492795d123")
        .args(args);
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let output = command.output().expect("atlas-drops runs");
        (output, started.elapsed())
    })
    .await
    .expect("ran")
}

/// What the operator got wrong is said before the broker is asked anything; an absent broker is
/// named within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn operators_mistakes_and_an_absent_broker_are_told_plainly() {
    // Nothing listens here.
    let bootstrap = format!("127.0.0.1:{}", free_port());
    for (args, message) in [
        (
            &["send", "spawn", "--map", "1"][..],
            "atlas-drops: what is dropped? give --item ID or --mesos AMOUNT\n",
        ),
        (
            &[
                "send", "spawn", "--map", "1", "--item", "2000000", "--mesos", "10",
            ],
            "atlas-drops: a drop is an item or mesos, not both: give --item or --mesos\n",
        ),
        (
            &["send", "spawn-from-character", "--map", "1", "--mesos", "0"],
            "atlas-drops: --mesos must be above 0\n",
        ),
    ] {
        let (output, took) = offline(&bootstrap, args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), message, "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        // Refused at once: the broker was never waited for.
        assert!(
            took < std::time::Duration::from_secs(2),
            "{args:?}: {took:?}"
        );
    }
    let tenant = "083839c6-c47c-42a6-9585-76492795d123";
    for args in [
        // Flags after the subcommand, service settings included.
        &[
            "send",
            "spawn",
            "--map",
            "1",
            "--item",
            "2000000",
            "--tenant",
            tenant,
            "--bootstrap-servers",
            bootstrap.as_str(),
        ][..],
        &[
            "send",
            "--tenant",
            tenant,
            "pick-up",
            "--map",
            "1",
            "--drop",
            "5",
            "--character",
            "7",
        ],
        &["tail", "--count", "1"],
    ] {
        let (output, took) = offline(&bootstrap, args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "atlas-drops: cannot reach the broker at {bootstrap}"
            )),
            "{args:?}: {stderr}"
        );
        assert!(
            took < std::time::Duration::from_secs(10),
            "{args:?}: {took:?}"
        );
    }
}

/// `serve --help` shows the service's settings, which go after `serve` as well as before.
#[test]
fn serve_help_shows_the_service_settings() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-drops"))
        .args(["serve", "--help"])
        .output()
        .expect("atlas-drops runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--rest-port",
        "--bootstrap-servers",
        "--store",
        "--drop-expire-ms",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-drops"))
        .args(["serve", "--rest-port", "not-a-port"])
        .output()
        .expect("atlas-drops runs");
    // Refused as a bad value of a known flag, not as an unexpected argument.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value 'not-a-port' for '--rest-port"),
        "{stderr}"
    );
}

/// The newer generation through the CLI: an instance, stats inline and an environment on
/// `send`; `list --instance` through the instance route; `tail` showing the instance, the party
/// awards and `CONSUMED`.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_speaks_the_newer_generation() {
    let mut env = TestEnv::start().await;
    env.service.ready().await;
    let instance = "4b1a5c2e-0d6f-4e8a-9b3c-2d1e0f9a8b7c";
    let map = MAP.to_string();
    let at = [
        "--world",
        "1",
        "--channel",
        "2",
        "--map",
        map.as_str(),
        "--instance",
        instance,
    ];
    let equip = [
        &["send", "spawn", "--environment", "preview-7"][..],
        &at,
        &[
            "--item",
            "1302000",
            "--stat",
            "weaponAttack=15",
            "--stat",
            "slots=7",
        ],
    ]
    .concat();
    stdout(&atlas(&env, &equip).await);
    let created = env.peer.next_event().await;
    assert_eq!(created.value["instance"], instance);
    assert_eq!(created.headers["ENVIRONMENT"], b"preview-7");
    let equip_id = created.drop_id().to_string();
    let meso = [&["send", "spawn"][..], &at, &["--mesos", "90"]].concat();
    stdout(&atlas(&env, &meso).await);
    let meso_id = env.peer.next_event().await.drop_id().to_string();

    let listed = stdout(&atlas(&env, &[&["list"][..], &at].concat()).await);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains(&format!("{equip_id} AVAILABLE item 1302000")),
        "{listed}"
    );
    let got = stdout(&atlas(&env, &["get", &equip_id, "--json"]).await);
    let document: Value = serde_json::from_str(&got).expect("JSON:API");
    let attributes = &document["data"]["attributes"];
    assert_eq!(
        (&attributes["weaponAttack"], &attributes["slots"]),
        (&15.into(), &7.into())
    );

    let reserve = [
        &["send", "reserve"][..],
        &at,
        &["--drop", &meso_id, "--character", "7"],
    ]
    .concat();
    stdout(&atlas(&env, &reserve).await);
    let consume = [&["send", "consume"][..], &at, &["--drop", &equip_id]].concat();
    stdout(&atlas(&env, &consume).await);
    let events = env
        .peer
        .next_events(3, std::time::Duration::from_secs(10))
        .await;
    let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
    assert_eq!(kinds, ["RESERVED", "MESO_AWARDED", "CONSUMED"]);

    let tail = stdout(&atlas(&env, &["tail", "--from-beginning", "--count", "5"]).await);
    let located = format!("w1/c2/m{MAP}/i{instance} drop=");
    assert!(tail.lines().all(|line| line.contains(&located)), "{tail}");
    assert!(
        (tail.lines())
            .any(|l| l.contains(" MESO_AWARDED ") && l.ends_with("character 7 90 meso (picker)")),
        "{tail}"
    );
    assert!(tail.lines().any(|l| l.contains(" CONSUMED ")), "{tail}");
    let bad = atlas(
        &env,
        &[
            &["send", "spawn"][..],
            &at,
            &["--item", "1302000", "--stat", "luk=1"],
        ]
        .concat(),
    )
    .await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("\"luk\" is not a stat"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // An environment the service would refuse is refused before anything is sent.
    let empty = [
        &["send", "spawn", "--environment", ""][..],
        &at,
        &["--item", "1302000"],
    ]
    .concat();
    let bad = atlas(&env, &empty).await;
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("an environment is 1 to 128 bytes"), "{said}");
    env.peer
        .expect_quiet(std::time::Duration::from_millis(700))
        .await;
}
