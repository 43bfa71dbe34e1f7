//! Several instances on the shared store (`STORE=redis`, the real Redis) in one consumer group,
//! on the real broker: racing reservations still have one winner; instances killed with SIGKILL
//! and restarted under load lose no effect and duplicate none (a meso drop's party awards
//! included); a replica's shutdown leaves the drops to the others.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::harness::*;

/// Starts instances on the shared store and waits until each is ready (has partitions, sees the
/// broker).
async fn instances(broker: &Broker, names: &Names, count: usize) -> Vec<Service> {
    instances_with(broker, names, count, &Options::default().shared()).await
}

async fn instances_with(
    broker: &Broker,
    names: &Names,
    count: usize,
    options: &Options,
) -> Vec<Service> {
    let services: Vec<Service> = (0..count)
        .map(|_| Service::start(broker, names, options))
        .collect();
    for service in &services {
        service.ready().await;
    }
    services
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_reservations_on_three_instances_have_one_winner() {
    let mut env = TestEnv::with(Options::default().shared()).await;
    let others = instances(&env.broker, &env.names, 2).await;
    env.service.ready().await;
    let services: Vec<&Service> = std::iter::once(&env.service).chain(&others).collect();
    let peer = &mut env.peer;
    let created = peer.spawn_drop(&spawn_item(100_000_000, 2_000_000)).await;
    let drop_id = created.drop_id();
    const RACERS: u32 = 24;
    let commands: Vec<_> = (0..RACERS)
        .map(|character| reserve(100_000_000, drop_id, 1_000 + character))
        .collect();
    // Each racer keyed differently: the reservations spread over every partition, so over
    // every instance.
    for (n, command) in commands.iter().enumerate() {
        peer.send_all(
            std::slice::from_ref(command),
            Some(&(n as u32).to_be_bytes()),
        )
        .await;
    }
    let answers = peer
        .next_events(RACERS as usize, Duration::from_secs(30))
        .await;
    let reserved: Vec<_> = answers.iter().filter(|e| e.kind() == "RESERVED").collect();
    assert_eq!(reserved.len(), 1, "{answers:#?}");
    assert_eq!(
        answers
            .iter()
            .filter(|e| e.kind() == "RESERVATION_FAILURE")
            .count(),
        RACERS as usize - 1
    );
    peer.expect_quiet(Duration::from_millis(500)).await;
    let deciding = services
        .iter()
        .filter(|service| service.logs().contains("REQUEST_RESERVATION"))
        .count();
    assert!(deciding >= 2, "the racers reached {deciding} instance(s)");
    // Every instance answers for the drop, whichever reserved it.
    for service in &services {
        let (status, _, body) = service
            .get(&format!("/api/drops/{drop_id}"), &peer.tenant)
            .await;
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body["data"]["attributes"]["status"], "RESERVED", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_stops_leaves_its_drops_to_the_others() {
    let mut env = TestEnv::with(Options::default().shared()).await;
    let peer = &mut env.peer;
    env.service.ready().await;
    let created = peer.spawn_drop(&spawn_item(100_000_000, 2_000_000)).await;
    let drop_id = created.drop_id();
    let stopped = env.service.stop(Duration::from_secs(20));
    assert!(stopped.success(), "{}", stopped.logs);
    peer.expect_quiet(Duration::from_secs(1)).await;

    let second = Service::start(&env.broker, &env.names, &env.options);
    second.ready().await;
    let (status, _, body) = second
        .get(&format!("/api/drops/{drop_id}"), &peer.tenant)
        .await;
    assert_eq!(status, 200, "{body}");
    peer.send(&pick_up(100_000_000, drop_id, 7)).await;
    let picked = peer.next_event().await;
    assert_eq!((picked.kind(), picked.drop_id()), ("PICKED_UP", drop_id));
}

/// Starts the load generator: `lifecycles` spawn → reserve → pick-up at `rate` a second.
/// The load generator, with `more` arguments.
fn start_load(
    broker: &Broker,
    names: &Names,
    lifecycles: usize,
    rate: usize,
    more: &[&str],
) -> Child {
    load_generator(&broker.bootstrap, names)
        .args(more)
        .args(["--kafka-cfg", "fetch.wait.max.ms=10", "--timeout-s", "90"])
        .args(["--lifecycles", &lifecycles.to_string()])
        .args([
            "--rate",
            &rate.to_string(),
            "--window",
            "2000",
            "--maps",
            "40",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("atlas-drops-load runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_killed_and_restarted_under_load_lose_and_duplicate_nothing() {
    let broker = Broker::start();
    let names = Names::fresh();
    create_topics(&broker, &names).await;
    // Every third lifecycle drops meso, shared by the picker's party of three: the generator
    // serves the party service.
    let party_port = free_port().to_string();
    let shared = Options::default().shared().env(
        "PARTIES_SERVICE_URL",
        &format!("http://127.0.0.1:{party_port}/api/"),
    );
    let mut services = instances_with(&broker, &names, 2, &shared).await;
    const LIFECYCLES: usize = 3_000;
    let meso = [
        "--meso-every",
        "3",
        "--party-size",
        "3",
        "--party-port",
        &party_port,
    ];
    let load = start_load(&broker, &names, LIFECYCLES, 150, &meso);
    let pause = |seconds| tokio::time::sleep(Duration::from_millis(seconds));

    // Kill one instance at a time, at no particular moment, and bring it back; the third
    // instance joins midway, so two and then three share the partitions.
    let mut kills = 0;
    let mut logs = Vec::new();
    for round in 0..5 {
        pause(2_500 + 700 * round).await;
        let victim = services.remove(round as usize % services.len());
        logs.push(victim.kill());
        kills += 1;
        pause(500).await;
        services.push(Service::start(&broker, &names, &shared));
        if round == 1 {
            services.push(Service::start(&broker, &names, &shared));
        }
    }
    let output = tokio::task::spawn_blocking(move || load.wait_with_output().expect("load ends"))
        .await
        .expect("joined");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("{report}");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let completed = report.contains(&format!("completed={LIFECYCLES} "));
    assert_eq!(kills, 5);
    logs.extend(services.iter().map(Service::logs));
    let streams_taken: usize = logs
        .iter()
        .map(|log| log.matches("outbox relay: relaying a stream").count())
        .sum();
    assert!(
        streams_taken > 8,
        "the relay's streams were taken over after kills ({streams_taken} takings)"
    );

    // Every event on the topic, as a peer reads it: a reader that starts now, from the start
    // (one that sat idle through the load could, rarely, miss events at its end).
    let mut reader = Peer::connect_existing(&broker.bootstrap, &names).await;
    let events = reader.events_until_quiet(Duration::from_secs(5)).await;
    // An event the broker took just before its relay was killed must not be sent again by the
    // relay taking over: no identical copy either.
    let mut distinct = HashSet::new();
    let mut copies = 0;
    let mut lives: HashMap<u64, Vec<&str>> = HashMap::new();
    let mut awarded: HashMap<u64, u64> = HashMap::new();
    let mut spawns: HashMap<String, HashSet<u64>> = HashMap::new();
    for event in &events {
        let mut headers: Vec<_> = event.headers.iter().collect();
        headers.sort();
        if !distinct.insert((event.key.clone(), event.raw.clone(), format!("{headers:?}"))) {
            copies += 1;
            continue;
        }
        lives.entry(event.drop_id()).or_default().push(event.kind());
        if event.kind() == "MESO_AWARDED" {
            *awarded.entry(event.drop_id()).or_default() +=
                event.body()["amount"].as_u64().unwrap();
        }
        if event.kind() == "CREATED" {
            let transaction = event.transaction_id().to_owned();
            spawns
                .entry(transaction)
                .or_default()
                .insert(event.drop_id());
        }
    }
    eprintln!(
        "{} events, {copies} identical copies, {} drops",
        events.len(),
        lives.len()
    );
    assert_eq!(copies, 0, "events sent twice");
    // No effect lost: every SPAWN sent has its one CREATED on the topic, read whole here.
    assert_eq!(spawns.len(), LIFECYCLES, "one CREATED for each SPAWN sent");
    assert!(
        spawns.values().all(|drops| drops.len() == 1),
        "a SPAWN created two drops"
    );
    assert_eq!(lives.len(), LIFECYCLES);
    // The generator reads the topic live, as a peer does, and sends each next command when it
    // sees the answer. On Tansu it has, rarely, not seen an event that the whole topic read here
    // holds; its lifecycle then stops at that event. Such stops are told apart from loss: each
    // is one the generator names, and the topic holds the event it waited for.
    let incomplete: Vec<&str> = report
        .lines()
        .filter_map(|line| line.strip_prefix("incomplete: "))
        .collect();
    let missing = report
        .split("missing=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse::<usize>().ok());
    assert_eq!(missing, Some(incomplete.len()), "{report}");
    assert!(report.contains(" misawarded=0"), "{report}");
    // A reservation the generator stopped at is never picked up: if the run lasts long enough
    // it lapses (`RESERVATION_TIMEOUT_MS`, 30 s) and the drop leaves with `EXPIRED`.
    let stopped_at = |life: &[&str]| match life {
        ["CREATED"] => Some("spawn → CREATED"),
        ["CREATED", "RESERVED"] | ["CREATED", "RESERVED", "EXPIRED"] => Some("reserve → RESERVED"),
        // A meso drop's awards are committed with its RESERVED: all or none, never part.
        ["CREATED", "RESERVED", "MESO_AWARDED", "MESO_AWARDED", "MESO_AWARDED"]
        | ["CREATED", "RESERVED", "MESO_AWARDED", "MESO_AWARDED", "MESO_AWARDED", "EXPIRED"] => {
            Some("reserve → MESO_AWARDED")
        }
        _ => None,
    };
    let awards = ["MESO_AWARDED"; 3];
    let meso_life = [&["CREATED", "RESERVED"][..], &awards, &["PICKED_UP"]].concat();
    let meso_lives = lives
        .values()
        .filter(|life| life.contains(&"MESO_AWARDED"))
        .count();
    assert!(meso_lives >= LIFECYCLES / 3 - 10, "{meso_lives} meso drops");
    // Exactly once: each meso drop's three awards add up to its meso, none twice.
    for (drop, sum) in &awarded {
        assert_eq!(*sum, 1_001, "drop {drop}: awards {:?}", lives[drop]);
    }
    let mut stopped: Vec<&str> = Vec::new();
    // The stopped lifecycles' drops that still lie (not lapsed).
    let mut lying = 0;
    for (drop, life) in &lives {
        if life[..] == ["CREATED", "RESERVED", "PICKED_UP"] || life[..] == meso_life[..] {
            continue;
        }
        let step = stopped_at(life);
        assert!(
            step.is_some(),
            "drop {drop}: a life other than CREATED, RESERVED, (3 × MESO_AWARDED,) PICKED_UP: {life:?}"
        );
        stopped.extend(step);
        lying += usize::from(life.last() != Some(&"EXPIRED"));
    }
    stopped.sort();
    let mut awaited: Vec<&str> = incomplete
        .iter()
        .filter_map(|line| line.split("awaiting ").nth(1))
        .filter(|step| *step != "pick-up → PICKED_UP")
        .collect();
    awaited.sort();
    assert_eq!(
        stopped, awaited,
        "every life on the topic complete, but for those the generator stopped in: {report}"
    );
    if !completed {
        eprintln!("the generator did not see events that the topic holds: {incomplete:?}");
    }
    let left = lying;

    // Nothing is left (but the drops of stopped lifecycles): no event waits in the outbox.
    let (status, _, metrics) = http_get(&format!("{}/metrics", services[0].http), &[]).await;
    assert_eq!(status, 200);
    let live = format!("atlas_drops_live_drops {left}\n");
    assert!(metrics.contains(&live), "{metrics}");
    assert!(
        metrics.contains("atlas_drops_outbox_events 0\n"),
        "{metrics}"
    );
    let mut redis = redis_connection().expect("Redis");
    for shard in 0..8 {
        let waiting: usize = redis::cmd("XLEN")
            .arg(format!("{}:outbox:{shard}", names.redis_prefix))
            .query(&mut redis)
            .expect("XLEN");
        assert_eq!(waiting, 0, "outbox {shard}");
    }
    names.clean_redis();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_taking_over_sends_only_what_its_predecessor_had_not() {
    use atlas_drops::kafka::message::event::{encode_key, encode_value};
    use atlas_drops::kafka::message::headers::event_headers;
    use atlas_drops::kafka::{
        client,
        context::KafkaContext,
        outbox::Relay,
        producer::{EventProducer, Producers},
        topics::OurTopics,
    };
    use atlas_drops::store::redis::{decode_event, Keys, OUTBOX_SHARDS};
    use rdkafka::producer::FutureRecord;

    let broker = Broker::start();
    let names = Names::fresh();
    let mut peer = Peer::connect(&broker, &names).await;
    // Drops made by an instance on the shared store whose relay never holds a stream: their
    // CREATED events wait in the outbox.
    let keys = Keys::new(&names.redis_prefix);
    let mut redis = redis_connection().expect("Redis");
    for shard in 0..OUTBOX_SHARDS {
        // Hold every stream's lease, as a relay that is about to die would.
        let _: () = redis::cmd("SET")
            .arg(keys.outbox_relay(shard))
            .arg("dying relay")
            .arg("PX")
            .arg(60_000)
            .query(&mut redis)
            .unwrap();
    }
    let maker = Service::start(&broker, &names, &Options::default().shared());
    maker.ready().await;
    const DROPS: usize = 12;
    for n in 0..DROPS {
        peer.send(&spawn_item(100_000_000 + n as u32, 2_000_000))
            .await;
    }
    // Wait until every CREATED is in the outbox.
    let outbox_len = |redis: &mut redis::Connection| -> usize {
        (0..OUTBOX_SHARDS)
            .map(|shard| {
                redis::cmd("XLEN")
                    .arg(keys.outbox(shard))
                    .query::<usize>(redis)
                    .unwrap()
            })
            .sum()
    };
    let started = std::time::Instant::now();
    while outbox_len(&mut redis) < DROPS {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            maker.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(maker.kill());

    // The dying relay: it handed every entry to the broker and wrote that down; the broker
    // took the first half of each stream's; then it died, deleting nothing.
    let producer: EventProducer = client::layered(&broker.bootstrap, &[("linger.ms", "0")], &[])
        .create_with_context(KafkaContext::default())
        .expect("producer");
    let mut delivered = 0;
    for shard in 0..OUTBOX_SHARDS {
        type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let entries: Entries = redis::cmd("XRANGE")
            .arg(keys.outbox(shard))
            .arg("-")
            .arg("+")
            .query(&mut redis)
            .unwrap();
        let Some((last, _)) = entries.last() else {
            continue;
        };
        let _: () = redis::cmd("HSET")
            .arg(keys.outbox_sent(shard))
            .arg("through")
            .arg(last)
            .query(&mut redis)
            .unwrap();
        for (_, fields) in &entries[..entries.len().div_ceil(2)] {
            // The record a relay makes of the entry's event.
            let event = decode_event(&fields[0].1).expect("an event record");
            let (key, value) = (encode_key(event.drop_id), encode_value(&event));
            let record = FutureRecord::to(&names.events)
                .key(&key)
                .payload(&value)
                .headers(event_headers(&event.tenant, &event.correlation));
            producer
                .send(record, Duration::from_secs(5))
                .await
                .expect("delivered");
            delivered += 1;
        }
        let _: () = redis::cmd("DEL")
            .arg(keys.outbox_relay(shard))
            .query(&mut redis)
            .unwrap();
    }
    assert!(delivered > 0 && delivered < DROPS);

    // The relay that takes over.
    let (stop, stopping) = atlas_drops::shutdown::channel();
    let relaying = Relay {
        redis_url: redis_url(),
        keys: keys.clone(),
        producers: Producers::new(
            client::layered(&broker.bootstrap, &[("linger.ms", "0")], &[]),
            Default::default(),
        )
        .expect("producer"),
        metrics: Default::default(),
        topic: names.events.clone(),
        ours: OurTopics {
            admin: client::layered(&broker.bootstrap, &[], &[]),
            names: vec![names.events.clone()],
            partitions: PARTITIONS,
            replication: 1,
        },
        instance: "taking over".to_owned(),
        reader: client::layered(&broker.bootstrap, &[("group.id", "outbox-reader")], &[]),
    }
    .start(stopping);
    let events = peer.next_events(DROPS, Duration::from_secs(30)).await;
    peer.expect_quiet(Duration::from_secs(2)).await;
    let drops: HashSet<u64> = events.iter().map(|event| event.drop_id()).collect();
    assert_eq!(drops.len(), DROPS, "each CREATED once: {events:#?}");
    assert!(events.iter().all(|event| event.kind() == "CREATED"));
    assert_eq!(outbox_len(&mut redis), 0);
    stop.pull();
    relaying.await.expect("the relay stops");
    names.clean_redis();
}

#[tokio::test(flavor = "multi_thread")]
async fn while_redis_is_unreachable_commands_wait_and_none_is_lost() {
    let redis = redis_url();
    let upstream = redis.trim_start_matches("redis://").trim_end_matches('/');
    let proxy = Proxy::start(upstream.to_owned()).await;
    let via_proxy = format!("redis://127.0.0.1:{}", proxy.port);
    let mut env = TestEnv::with(Options::default().shared().env("REDIS_URL", &via_proxy)).await;
    let (service, peer) = (&env.service, &mut env.peer);
    service.ready().await;
    let first = peer.spawn_drop(&spawn_item(100_000_000, 2_000_000)).await;

    proxy.cut();
    let started = std::time::Instant::now();
    loop {
        let (status, _, body) = http_get(&format!("{}/readyz", service.http), &[]).await;
        if status == 503 {
            assert!(body.contains("Redis"), "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for map in 0..5 {
        peer.send(&spawn_item(100_000_001 + map, 2_000_000)).await;
    }
    peer.send(&pick_up(100_000_000, first.drop_id(), 7)).await;
    peer.expect_quiet(Duration::from_secs(2)).await;

    proxy.restore();
    let events = peer.next_events(6, Duration::from_secs(30)).await;
    peer.expect_quiet(Duration::from_secs(2)).await;
    let created: HashSet<u64> = events
        .iter()
        .filter(|event| event.kind() == "CREATED")
        .map(|event| event.drop_id())
        .collect();
    assert_eq!(created.len(), 5, "{events:#?}");
    assert!(events
        .iter()
        .any(|event| event.kind() == "PICKED_UP" && event.drop_id() == first.drop_id()));
    service.ready().await;
    assert!(service.logs().contains("Redis call failed"));
}
