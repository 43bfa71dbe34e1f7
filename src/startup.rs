//! Wires the service together and takes it apart again.
//!
//! Start: bind the REST port, create missing topics, connect the producer and the consumer,
//! open the store (and, for the shared store, start its outbox relay), then run the partition
//! tasks, the expiry sweep and the REST server until SIGTERM or SIGINT.
//! Stop, within `SHUTDOWN_TIMEOUT_MS`: stop fetching and let each partition finish what it
//! fetched; let the relay send what the outbox holds and give its streams up; expire every drop
//! of the in-memory store (it forgets them, so clients must too; the shared store keeps them);
//! wait until the broker acknowledged every event; commit; leave the group; stop serving HTTP.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::net::TcpListener;
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

use crate::config::{Settings, StoreKind};
use crate::equipment::{EquipmentService, Janitor};
use crate::expiry;
use crate::kafka::client;
use crate::kafka::consumer::{self, handler::Handler, CommandConsumer};
use crate::kafka::context::{Commits, KafkaContext};
use crate::kafka::outbox::Relay;
use crate::kafka::producer::{all_landed, FatalSignal, Producers, Publisher, Topics};
use crate::kafka::topics::OurTopics;
use crate::metrics::{ExpiryCause, Metrics};
use crate::rest::{self, AppState, Readiness};
use crate::shutdown;
use crate::store::redis::Keys;
use crate::store::{DropStore, MemoryStore, RedisStore, RedisStoreConfig};
use crate::trace::SpanExporter;

/// How long leaving the consumer group may take, at most: a gone broker must not hang exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the service until a signal, then shuts it down. `Err` means the process should exit
/// non-zero: it could not start, or could not deliver everything before its deadline.
pub async fn run(settings: Settings) -> Result<(), String> {
    let listener = TcpListener::bind(("0.0.0.0", settings.rest_port))
        .await
        .map_err(|error| format!("REST port {}: {error}", settings.rest_port))?;
    let metrics = Arc::new(Metrics::default());
    let consumer_broke = Arc::new(FatalSignal::default());
    let commits = Arc::new(Commits::default());
    let context = KafkaContext {
        metrics: metrics.clone(),
        fatal: Some(consumer_broke.clone()),
        commits: Some(commits.clone()),
    };
    let mut names = vec![
        settings.command_topic_drop.clone(),
        settings.event_topic_drop_status.clone(),
    ];
    names.extend(settings.dead_letter_topic_drop.clone());
    let our_topics = OurTopics {
        admin: client::admin(&settings),
        names,
        partitions: settings.topic_partitions,
        replication: settings.topic_replication_factor,
    };
    our_topics.ensure().await?;
    let producers = Producers::new(client::producer(&settings), metrics.clone())?;
    let consumer: Arc<CommandConsumer> = Arc::new(
        client::consumer(&settings)
            .create_with_context(context)
            .map_err(|error| format!("consumer: {error}"))?,
    );
    consumer
        .subscribe(&[&settings.command_topic_drop])
        .map_err(|error| format!("subscribing: {error}"))?;

    let store: Arc<dyn DropStore> = match settings.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(settings.rules(), settings.max_live_drops)),
        StoreKind::Redis => Arc::new(tokio::task::block_in_place(|| {
            RedisStore::connect(RedisStoreConfig {
                url: &settings.redis_url,
                key_prefix: &settings.redis_key_prefix,
                rules: settings.rules(),
                max_live_drops: settings.max_live_drops,
            })
        })?),
    };
    // A shared store's events wait in its outbox until the relay sends them.
    let (relay_trigger, relay_stop) = shutdown::channel();
    let relaying = (settings.store == StoreKind::Redis).then(|| {
        let instance = Uuid::new_v4().to_string();
        Relay {
            redis_url: settings.redis_url.clone(),
            keys: Keys::new(&settings.redis_key_prefix),
            producers: producers.clone(),
            metrics: metrics.clone(),
            topic: settings.event_topic_drop_status.clone(),
            ours: our_topics.clone(),
            reader: client::reader(&settings, &instance),
            instance,
        }
        .start(relay_stop)
    });
    let event_topic = settings.event_topic_drop_status.clone();
    let topics = Topics {
        events: event_topic.clone(),
        dead_letters: settings.dead_letter_topic_drop.clone(),
        ours: our_topics.clone(),
    };
    let equipment = settings.equipment_url().map(|url| {
        EquipmentService::new(url, Duration::from_millis(settings.equipment_timeout_ms))
    });
    let (janitor, cleaning) = equipment.clone().map(Janitor::start).unzip();
    let (publisher, _feeder) =
        Publisher::start(producers.clone(), topics, metrics.clone(), janitor);
    let (trigger, listener_of_shutdown) = shutdown::channel();
    let handler = Arc::new(Handler {
        store: store.clone(),
        publisher: publisher.clone(),
        metrics: metrics.clone(),
        spans: match &settings.trace_endpoint {
            Some(endpoint) => SpanExporter::start(
                endpoint,
                settings.trace_protocol,
                settings.trace_sampling_ratio,
            )?,
            None => SpanExporter::disabled(),
        },
        equipment,
        group: settings.kafka_consumer_group.clone(),
        max_record_bytes: settings.max_record_bytes(),
    });
    let consuming = tokio::spawn(consumer::run(
        consumer.clone(),
        handler,
        commits,
        our_topics,
        consumer_broke.clone(),
        listener_of_shutdown.clone(),
    ));
    let expiring = tokio::spawn(expiry::run(
        store.clone(),
        publisher.clone(),
        metrics.clone(),
        listener_of_shutdown.clone(),
    ));
    let (http_trigger, mut http_stop) = shutdown::channel();
    let state = AppState {
        store: store.clone(),
        metrics: metrics.clone(),
        readiness: Arc::new(Readiness {
            consumer: consumer.clone(),
            producers,
            metrics: metrics.clone(),
            event_topic,
            shutdown: listener_of_shutdown,
            store: store.clone(),
        }),
    };
    let serving = tokio::spawn(rest::serve(listener, state, async move {
        http_stop.recv().await
    }));
    tracing::info!(
        command_topic = settings.command_topic_drop,
        event_topic = settings.event_topic_drop_status,
        group = settings.kafka_consumer_group,
        rest_port = settings.rest_port,
        store = settings.store.name(),
        "atlas-drops started"
    );

    // The consumer stops by itself only when it broke for good.
    let mut consuming = consuming;
    let consumer_outcome = tokio::select! {
        _ = shutdown::signal() => None,
        outcome = &mut consuming => Some(outcome),
    };
    trigger.pull();
    let deadline = Instant::now() + settings.shutdown_timeout();
    let mut complete = true;
    let consumed = match consumer_outcome {
        Some(outcome) => Ok(outcome),
        None => timeout_at(deadline, consuming).await,
    };
    match consumed {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(reason))) => {
            tracing::error!(%reason, "stopping: the consumer broke");
            complete = false;
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "the consumer task failed");
            complete = false;
        }
        Err(_) => {
            tracing::error!(
                "partitions did not finish their commands before the shutdown deadline"
            );
            complete = false;
        }
    }
    let _ = timeout_at(deadline, expiring).await;

    // The relay sends what the last commands wrote to the outbox, then gives its streams up.
    relay_trigger.pull();
    if let Some(relaying) = relaying {
        if timeout_at(deadline, relaying).await.is_err() {
            tracing::error!("the outbox relay did not finish before the shutdown deadline");
            complete = false;
        }
    }

    let mut deliveries = Vec::new();
    let expired = store.expire_on_shutdown(&mut |event| deliveries.push(publisher.publish(event)));
    metrics.expired(ExpiryCause::Shutdown, expired);
    let undelivered = deliveries.len();
    match timeout_at(deadline, all_landed(deliveries)).await {
        Ok(Ok(_)) if store.shared() => tracing::info!("the drops stay in the shared store"),
        Ok(Ok(_)) => tracing::info!(expired, "every drop expired"),
        Ok(Err(error)) => {
            tracing::error!(%error, expired, "EXPIRED events were not all delivered");
            complete = false;
        }
        Err(_) => {
            tracing::error!(
                undelivered,
                "EXPIRED events still undelivered at the shutdown deadline"
            );
            complete = false;
        }
    }

    // The expired drops' equipment is deleted once the last publisher (holding the janitor) is gone.
    drop(publisher);
    if let Some(cleaning) = cleaning {
        if timeout_at(deadline, cleaning).await.is_err() {
            tracing::error!("equipment of expired drops still undeleted at the shutdown deadline");
            complete = false;
        }
    }

    // Committing and leaving the group wait on the broker, which may be gone: both are bounded.
    let closing = tokio::task::spawn_blocking(move || {
        let committed = consumer.commit_consumer_state(CommitMode::Sync);
        drop(consumer);
        committed
    });
    match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
        Ok(Ok(Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)))) => {}
        Ok(Ok(Err(error))) => {
            tracing::error!(%error, "final commit failed");
            complete = false;
        }
        Ok(Err(_)) | Err(_) => {
            tracing::error!("final commit and leaving the group did not finish in time");
            complete = false;
        }
    }
    let stalled = metrics.stalled_partitions();
    if !stalled.is_empty() {
        tracing::error!(
            ?stalled,
            "partitions could not commit: an event they caused was not delivered; they are read again from their last commit"
        );
        complete = false;
    }
    http_trigger.pull();
    let _ = serving.await;
    if complete {
        tracing::info!("atlas-drops stopped");
        Ok(())
    } else {
        Err("shutdown incomplete: see the errors above".to_owned())
    }
}
