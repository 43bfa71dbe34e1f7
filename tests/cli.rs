//! The operators' subcommands against a running service: send, tail, list, get.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

const MAP: u32 = 800_000_000;

/// Runs `atlas-drops <args>` as an operator would, with the broker, topics, tenant and URL in
/// the environment.
async fn atlas(
    broker: &Broker,
    names: &Names,
    service: &Service,
    tenant: &Tenant,
    args: &[&str],
) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_atlas-drops"));
    command
        .env_clear()
        .env("BOOTSTRAP_SERVERS", &broker.bootstrap)
        .env("COMMAND_TOPIC_DROP", &names.commands)
        .env("EVENT_TOPIC_DROP_STATUS", &names.events)
        .env("TENANT_ID", tenant.id.to_string())
        .env("REGION", &tenant.region)
        .env("MAJOR_VERSION", tenant.major.to_string())
        .env("MINOR_VERSION", tenant.minor.to_string())
        .env("ATLAS_DROPS_URL", &service.http)
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
    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    let service = Service::start(&broker, &names, &[]);
    service.ready().await;
    let tenant = peer.tenant.clone();
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
    let sent = stdout(&atlas(&broker, &names, &service, &tenant, &spawn).await);
    let transaction = sent
        .split_whitespace()
        .nth(3)
        .expect("the transaction id")
        .to_owned();
    let created = peer.next_event().await;
    assert_eq!(created.kind(), "CREATED");
    assert_eq!(created.transaction_id(), transaction, "{sent}");
    assert_eq!(created.body()["x"], -30);
    assert_eq!(created.body()["quantity"], 4);
    let id = created.drop_id().to_string();

    let listed = stdout(
        &atlas(
            &broker,
            &names,
            &service,
            &tenant,
            &[&["list"][..], &at].concat(),
        )
        .await,
    );
    assert!(
        listed.starts_with(&format!(
            "{id} AVAILABLE item 2000000 x4 at (-30,7) w1/c2/m{MAP}"
        )),
        "{listed}"
    );
    let got = stdout(&atlas(&broker, &names, &service, &tenant, &["get", &id, "--json"]).await);
    let document: Value = serde_json::from_str(&got).expect("JSON:API");
    assert_eq!(document["data"]["id"], id.as_str());

    let reserve = [
        &["send", "reserve"][..],
        &at,
        &["--drop", &id, "--character", "7", "--x", "-30", "--y", "7"],
    ]
    .concat();
    stdout(&atlas(&broker, &names, &service, &tenant, &reserve).await);
    assert_eq!(peer.next_event().await.kind(), "RESERVED");
    let got = stdout(&atlas(&broker, &names, &service, &tenant, &["get", &id]).await);
    assert!(got.contains(" RESERVED "), "{got}");
    let pick = [
        &["send", "pick-up"][..],
        &at,
        &["--drop", &id, "--character", "7"],
    ]
    .concat();
    stdout(&atlas(&broker, &names, &service, &tenant, &pick).await);
    assert_eq!(peer.next_event().await.kind(), "PICKED_UP");

    let tail = stdout(
        &atlas(
            &broker,
            &names,
            &service,
            &tenant,
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
            &broker,
            &names,
            &service,
            &tenant,
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

    // Gone: `get` says so, and fails.
    let missing = atlas(&broker, &names, &service, &tenant, &["get", &id]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}
