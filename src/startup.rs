//! The service as one value: `Service::start` builds every part and spawns it; `Service::stop`
//! takes the parts down again in the documented stages (README, "Shutdown"), one method a
//! stage, and reports what it could not finish.
//!
//! Start: bind the REST port, create missing topics, connect the producer and the consumer,
//! open the store (and, for the shared store, start its outbox relay), then spawn the partition
//! tasks, the expiry sweep and the REST server.
//!
//! Stop, within `SHUTDOWN_TIMEOUT_MS`: stop fetching and let each partition finish what it
//! fetched; stop the sweep; let the relay send what the outbox holds and give its streams up;
//! expire every drop of the in-memory store (it forgets them, so clients must too; the shared
//! store keeps them) and wait until the broker acknowledged every event; let the janitor delete
//! the expired drops' equipment; commit and leave the group; name the partitions that could not
//! commit; stop serving HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::net::TcpListener;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

use crate::config::{Settings, StoreKind};
use crate::configuration;
use crate::drop::rules::Rules;
use crate::equipment::{EquipmentService, Janitor};
use crate::expiry;
use crate::footholds::DataService;
use crate::kafka::client;
use crate::kafka::consumer::drop_order::DropOrder;
use crate::kafka::consumer::{self, handler::Handler, CommandConsumer, ConsumerBroke};
use crate::kafka::context::{Commits, KafkaContext};
use crate::kafka::events::{Events, Route};
use crate::kafka::outbox::Relay;
use crate::kafka::producer::{
    all_landed, FatalSignal, NotDelivered, ProducerError, Producers, Publisher, Topics,
};
use crate::kafka::topics::{OurTopics, TopicsError};
use crate::metrics::{ExpiryCause, Metrics};
use crate::party::PartyService;
use crate::rest::{self, AppState, Readiness};
use crate::shutdown::{self, Trigger};
use crate::store::redis::{IdSource, Keys};
use crate::store::{DropStore, MemoryStore, RedisStore, RedisStoreConfig, StoreError};
use crate::trace::{SpanExporter, TraceError};

/// How long committing and leaving the consumer group may take, at most, past the deadline:
/// a gone broker must not hang exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("REST port {port}: {source}")]
    RestPort { port: u16, source: std::io::Error },
    #[error(transparent)]
    Topics(#[from] TopicsError),
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("consumer: {0}")]
    Consumer(KafkaError),
    #[error("subscribing: {0}")]
    Subscribing(KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// A running service: every part spawned, and what is needed to stop them in order.
pub struct Service {
    rest_address: SocketAddr,
    shutdown_timeout: Duration,
    metrics: Arc<Metrics>,
    store: Arc<DropStore>,
    consumer: Arc<CommandConsumer>,
    /// Given up once no change makes events any more: the janitor it holds then ends.
    events: Option<Events>,
    /// Pulled first: partitions stop fetching, the sweep stops, `/readyz` says shutting down.
    stopping: Trigger,
    consuming: Consuming,
    expiring: JoinHandle<()>,
    /// The shared store's outbox relay.
    relaying: Option<Stoppable>,
    /// The janitor deleting expired drops' equipment.
    cleaning: Option<JoinHandle<()>>,
    serving: Stoppable,
}

/// A task with a stop of its own.
struct Stoppable {
    stop: Trigger,
    task: JoinHandle<()>,
}

/// The consumer's task, and how it ended once it did (by itself, only when it broke).
struct Consuming {
    task: JoinHandle<Result<(), ConsumerBroke>>,
    ended: Option<Result<Result<(), ConsumerBroke>, JoinError>>,
}

impl Service {
    /// Builds every part and spawns it; the service runs until `stop`.
    pub async fn start(settings: Settings) -> Result<Service, StartError> {
        let port = settings.rest_port;
        let listener = (TcpListener::bind(("0.0.0.0", port)).await)
            .map_err(|source| StartError::RestPort { port, source })?;
        let rest_address =
            (listener.local_addr()).map_err(|source| StartError::RestPort { port, source })?;
        let metrics = Arc::new(Metrics::default());
        let topics = our_topics(&settings);
        topics.ensure().await?;
        let producers = Producers::new(client::producer(&settings), metrics.clone())?;
        let Subscribed {
            consumer,
            commits,
            broke,
        } = subscribe(&settings, &metrics)?;
        let rules = rules(&settings).await;
        let store = open_store(&settings, rules).await?;
        let relaying = (settings.store == StoreKind::Redis)
            .then(|| start_relay(&settings, &producers, &metrics, &topics));
        let equipment = settings.equipment_url().map(|url| {
            EquipmentService::new(url, Duration::from_millis(settings.equipment_timeout_ms))
        });
        let (janitor, cleaning) = equipment.clone().map(Janitor::start).unzip();
        let destinations = Topics {
            events: settings.event_topic_drop_status.clone(),
            dead_letters: settings.dead_letter_topic_drop.clone(),
            ours: topics.clone(),
        };
        let (publisher, _feeder) =
            Publisher::start(producers.clone(), destinations, metrics.clone());
        // Chosen here, once: the shared store's events are in its outbox already.
        let route = match settings.store {
            StoreKind::Memory => Route::Broker,
            StoreKind::Redis => Route::Outbox,
        };
        let events = Events::new(route, publisher.clone(), metrics.clone(), janitor);
        let (stopping, shutdown) = shutdown::channel();
        let handler = Arc::new(Handler {
            store: store.clone(),
            events: events.clone(),
            publisher,
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
            floor: (settings.data_url()).map(|url| DataService::new(url, settings.data_timeout())),
            group: settings.kafka_consumer_group.clone(),
            max_record_bytes: settings.max_record_bytes(),
            environment: settings.atlas_environment.clone(),
            parties: (settings.parties_url())
                .map(|url| PartyService::new(url, settings.parties_timeout())),
            drop_order: DropOrder::default(),
        });
        let consuming = tokio::spawn(consumer::run(
            consumer.clone(),
            handler,
            commits,
            topics,
            broke,
            shutdown.clone(),
        ));
        let expiring = tokio::spawn(expiry::run(
            store.clone(),
            events.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        let state = AppState {
            store: store.clone(),
            metrics: metrics.clone(),
            readiness: Arc::new(Readiness {
                consumer: consumer.clone(),
                producers,
                metrics: metrics.clone(),
                event_topic: settings.event_topic_drop_status.clone(),
                shutdown,
                store: store.clone(),
            }),
        };
        let serving = serve(listener, state);
        tracing::info!(
            command_topic = settings.command_topic_drop,
            event_topic = settings.event_topic_drop_status,
            group = settings.kafka_consumer_group,
            rest_port = settings.rest_port,
            store = settings.store.name(),
            "atlas-drops started"
        );
        Ok(Service {
            rest_address,
            shutdown_timeout: settings.shutdown_timeout(),
            metrics,
            store,
            consumer,
            events: Some(events),
            stopping,
            consuming: Consuming {
                task: consuming,
                ended: None,
            },
            expiring,
            relaying,
            cleaning,
            serving,
        })
    }

    /// Where the REST API listens (its port is the one bound, when `REST_PORT` was 0).
    pub fn rest_address(&self) -> SocketAddr {
        self.rest_address
    }

    /// Runs until SIGTERM or SIGINT, or until the consumer breaks for good, then stops within
    /// `SHUTDOWN_TIMEOUT_MS`.
    pub async fn run_until_stopped(mut self) -> StopReport {
        tokio::select! {
            _ = shutdown::signal() => {}
            ended = &mut self.consuming.task => self.consuming.ended = Some(ended),
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        self.stop(deadline).await
    }

    /// Stops the service, stage by stage, each within `deadline` (committing and leaving the
    /// group `CLOSE_TIMEOUT` at most after it); what could not be finished is logged, and
    /// returned.
    pub async fn stop(mut self, deadline: Instant) -> StopReport {
        let mut report = StopReport::default();
        report.add(self.finish_partitions(deadline).await);
        self.stop_sweeping(deadline).await;
        report.add(self.drain_outbox(deadline).await);
        report.add(self.expire_drops(deadline).await);
        report.add(self.delete_equipment(deadline).await);
        report.add(self.commit_and_leave().await);
        report.add(self.stalled_partitions());
        self.stop_serving().await;
        if report.is_complete() {
            tracing::info!("atlas-drops stopped");
        }
        report
    }

    /// Stops fetching; each partition finishes what it fetched and waits until the broker
    /// acknowledged its events (with the shared store: until they are in the outbox).
    async fn finish_partitions(&mut self, deadline: Instant) -> Result<(), Unfinished> {
        self.stopping.pull();
        let ended = match self.consuming.ended.take() {
            Some(ended) => ended,
            None => (timeout_at(deadline, &mut self.consuming.task).await)
                .map_err(|_| Unfinished::Partitions)?,
        };
        match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(broke)) => Err(Unfinished::ConsumerBroke(broke)),
            Err(error) => Err(Unfinished::ConsumerFailed(error)),
        }
    }

    /// Lets the expiry sweep finish the sweep it is in, if any.
    async fn stop_sweeping(&mut self, deadline: Instant) {
        let _ = timeout_at(deadline, &mut self.expiring).await;
    }

    /// With the shared store: the relay sends what the last commands wrote to the outbox, then
    /// gives its streams up.
    async fn drain_outbox(&mut self, deadline: Instant) -> Result<(), Unfinished> {
        let Some(relaying) = self.relaying.take() else {
            return Ok(());
        };
        relaying.stop.pull();
        match timeout_at(deadline, relaying.task).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Unfinished::Outbox),
        }
    }

    /// With the in-memory store: every drop expires with `EXPIRED` (the store forgets them, so
    /// clients must too), and the broker acknowledges every event. The shared store keeps its
    /// drops for the other instances and the next start.
    async fn expire_drops(&mut self, deadline: Instant) -> Result<(), Unfinished> {
        let events = self.events.as_ref().expect("taken only after this stage");
        let mut sink = events.sink();
        let expired = (self.store).expire_on_shutdown(&mut |event| sink.take(event));
        let deliveries = sink.deliveries;
        self.metrics.expired(ExpiryCause::Shutdown, expired);
        let undelivered = deliveries.len();
        match timeout_at(deadline, all_landed(deliveries)).await {
            Ok(Ok(_)) if matches!(*self.store, DropStore::Shared(_)) => {
                tracing::info!("the drops stay in the shared store")
            }
            Ok(Ok(_)) => tracing::info!(expired, "every drop expired"),
            Ok(Err(error)) => return Err(Unfinished::ExpiredNotDelivered { error, expired }),
            Err(_) => return Err(Unfinished::ExpiredUndelivered { undelivered }),
        }
        Ok(())
    }

    /// The janitor deletes the equipment of the drops that expired; it ends once the last
    /// `Events` (which hands it the expired drops) is gone.
    async fn delete_equipment(&mut self, deadline: Instant) -> Result<(), Unfinished> {
        self.events = None;
        let Some(cleaning) = self.cleaning.take() else {
            return Ok(());
        };
        match timeout_at(deadline, cleaning).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Unfinished::Equipment),
        }
    }

    /// Commits what the partitions stored and leaves the group. Both wait on the broker, which
    /// may be gone: bounded by `CLOSE_TIMEOUT`.
    async fn commit_and_leave(&mut self) -> Result<(), Unfinished> {
        let consumer = self.consumer.clone();
        let closing = tokio::task::spawn_blocking(move || {
            let committed = consumer.commit_consumer_state(CommitMode::Sync);
            drop(consumer);
            committed
        });
        match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            Ok(Ok(Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)))) => Ok(()),
            Ok(Ok(Err(error))) => Err(Unfinished::Commit(error)),
            Ok(Err(_)) | Err(_) => Err(Unfinished::Leaving),
        }
    }

    /// Partitions that stopped committing because an event they caused was not delivered: they
    /// are read again from their last commit.
    fn stalled_partitions(&self) -> Result<(), Unfinished> {
        let stalled = self.metrics.stalled_partitions();
        if stalled.is_empty() {
            Ok(())
        } else {
            Err(Unfinished::StalledPartitions(stalled))
        }
    }

    /// Stops serving HTTP, last: `/readyz` answered "shutting down" meanwhile.
    async fn stop_serving(self) {
        self.serving.stop.pull();
        let _ = self.serving.task.await;
    }
}

/// Why the process exits 1: it could not start, or could not finish stopping.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("shutdown incomplete: see the errors above")]
    Stop(StopReport),
}

/// What shutdown could not finish; each is logged as an error when its stage ends.
#[derive(Debug, thiserror::Error)]
pub enum Unfinished {
    #[error("stopping: the consumer broke")]
    ConsumerBroke(ConsumerBroke),
    #[error("the consumer task failed")]
    ConsumerFailed(JoinError),
    #[error("partitions did not finish their commands before the shutdown deadline")]
    Partitions,
    #[error("the outbox relay did not finish before the shutdown deadline")]
    Outbox,
    #[error("EXPIRED events were not all delivered")]
    ExpiredNotDelivered { error: NotDelivered, expired: usize },
    #[error("EXPIRED events still undelivered at the shutdown deadline")]
    ExpiredUndelivered { undelivered: usize },
    #[error("equipment of expired drops still undeleted at the shutdown deadline")]
    Equipment,
    #[error("final commit failed")]
    Commit(KafkaError),
    #[error("final commit and leaving the group did not finish in time")]
    Leaving,
    #[error("partitions could not commit: an event they caused was not delivered; they are read again from their last commit")]
    StalledPartitions(Vec<String>),
}

impl Unfinished {
    fn log(&self) {
        match self {
            Unfinished::ConsumerBroke(reason) => tracing::error!(%reason, "{self}"),
            Unfinished::ConsumerFailed(error) => tracing::error!(%error, "{self}"),
            Unfinished::ExpiredNotDelivered { error, expired } => {
                tracing::error!(%error, expired, "{self}")
            }
            Unfinished::ExpiredUndelivered { undelivered } => {
                tracing::error!(undelivered, "{self}")
            }
            Unfinished::Commit(error) => tracing::error!(%error, "{self}"),
            Unfinished::StalledPartitions(stalled) => tracing::error!(?stalled, "{self}"),
            Unfinished::Partitions | Unfinished::Outbox | Unfinished::Equipment => {
                tracing::error!("{self}")
            }
            Unfinished::Leaving => tracing::error!("{self}"),
        }
    }
}

/// What a stop could not finish: empty after a clean stop.
#[derive(Debug, Default)]
pub struct StopReport {
    pub unfinished: Vec<Unfinished>,
}

impl StopReport {
    /// Takes a stage's outcome: what it could not finish is logged and kept.
    fn add(&mut self, stage: Result<(), Unfinished>) {
        if let Err(unfinished) = stage {
            unfinished.log();
            self.unfinished.push(unfinished);
        }
    }

    pub fn is_complete(&self) -> bool {
        self.unfinished.is_empty()
    }

    pub fn into_result(self) -> Result<(), Failed> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(Failed::Stop(self))
        }
    }
}

/// The topics the service uses, created when missing.
fn our_topics(settings: &Settings) -> OurTopics {
    let mut names = vec![
        settings.command_topic_drop.clone(),
        settings.event_topic_drop_status.clone(),
    ];
    names.extend(settings.dead_letter_topic_drop.clone());
    OurTopics {
        admin: client::admin(settings),
        names,
        partitions: settings.topic_partitions,
        replication: settings.topic_replication_factor,
    }
}

/// The consumer of the command topic, subscribed.
struct Subscribed {
    consumer: Arc<CommandConsumer>,
    /// Where it notes the commits the broker confirmed.
    commits: Arc<Commits>,
    /// Raised when it breaks for good.
    broke: Arc<FatalSignal>,
}

fn subscribe(settings: &Settings, metrics: &Arc<Metrics>) -> Result<Subscribed, StartError> {
    let broke = Arc::new(FatalSignal::default());
    let commits = Arc::new(Commits::default());
    let context = KafkaContext {
        metrics: metrics.clone(),
        fatal: Some(broke.clone()),
        commits: Some(commits.clone()),
    };
    let consumer: CommandConsumer =
        (client::consumer(settings).create_with_context(context)).map_err(StartError::Consumer)?;
    (consumer.subscribe(&[&settings.command_topic_drop])).map_err(StartError::Subscribing)?;
    Ok(Subscribed {
        consumer: Arc::new(consumer),
        commits,
        broke,
    })
}

/// The rules the store applies. The drop lifetime is read from the configuration service when
/// `SERVICE_ID` is set and `DROP_EXPIRE_MS` is not; without an answer the default is kept and
/// the service starts all the same (the older service exited).
async fn rules(settings: &Settings) -> Rules {
    let Some((url, service_id)) = settings.lifetime_source() else {
        return settings.rules(None);
    };
    match configuration::drop_lifetime(url, service_id).await {
        Ok(expire_ms) => {
            tracing::info!(
                drop_expire_ms = expire_ms,
                service_id,
                "drop lifetime read from the configuration service"
            );
            settings.rules(Some(expire_ms))
        }
        Err(error) => {
            let rules = settings.rules(None);
            tracing::warn!(
                %error,
                service_id,
                drop_expire_ms = rules.expire_ms,
                "drop lifetime not read from the configuration service: the default is kept"
            );
            rules
        }
    }
}

async fn open_store(settings: &Settings, rules: Rules) -> Result<Arc<DropStore>, StartError> {
    Ok(Arc::new(match settings.store {
        StoreKind::Memory => DropStore::Memory(MemoryStore::new(rules, settings.max_live_drops)),
        StoreKind::Redis => DropStore::Shared(Box::new(
            RedisStore::connect(RedisStoreConfig {
                url: &settings.redis_url,
                key_prefix: &settings.redis_key_prefix,
                rules,
                max_live_drops: settings.max_live_drops,
                ids: match settings.atlas_ids_prefix() {
                    Some(prefix) => IdSource::Atlas { prefix },
                    None => IdSource::Own,
                },
            })
            .await?,
        )),
    }))
}

/// The shared store's events wait in its outbox until this relay sends them.
fn start_relay(
    settings: &Settings,
    producers: &Arc<Producers>,
    metrics: &Arc<Metrics>,
    topics: &OurTopics,
) -> Stoppable {
    let (stop, stopped) = shutdown::channel();
    let instance = Uuid::new_v4().to_string();
    let relay = Relay {
        redis_url: settings.redis_url.clone(),
        keys: Keys::new(&settings.redis_key_prefix),
        producers: producers.clone(),
        metrics: metrics.clone(),
        topic: settings.event_topic_drop_status.clone(),
        ours: topics.clone(),
        reader: client::reader(settings, &instance),
        instance,
    };
    Stoppable {
        stop,
        task: relay.start(stopped),
    }
}

fn serve(listener: TcpListener, state: AppState) -> Stoppable {
    let (stop, mut stopped) = shutdown::channel();
    let task = tokio::spawn(rest::serve(
        listener,
        state,
        async move { stopped.recv().await },
    ));
    Stoppable { stop, task }
}
