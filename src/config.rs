//! Settings: every one an environment variable (the names the Atlas ecosystem already uses) and
//! a command-line flag of the same name in kebab case. Flags win over the environment.

use std::time::Duration;

use clap::Args;
use tracing_subscriber::filter::LevelFilter;

use crate::drop::model::{self, Environment};
use crate::drop::rules::Rules;
use crate::telemetry::LogFormat;
use crate::trace::TraceProtocol;

/// Prefix of environment variables that set librdkafka properties.
const KAFKA_CFG_PREFIX: &str = "KAFKA_CFG_";

/// The service's settings; the operators' subcommands use the Kafka ones too. Every flag is
/// global: it may come before or after a subcommand (`atlas-drops serve --rest-port 8081`).
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Kafka brokers to bootstrap from, host:port[,host:port...].
    #[arg(
        long,
        global = true,
        env = "BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,

    /// Topic the drop commands arrive on.
    #[arg(
        long,
        global = true,
        env = "COMMAND_TOPIC_DROP",
        default_value = "COMMAND_TOPIC_DROP"
    )]
    pub command_topic_drop: String,

    /// Topic the drop status events are published to.
    #[arg(
        long,
        global = true,
        env = "EVENT_TOPIC_DROP_STATUS",
        default_value = "EVENT_TOPIC_DROP_STATUS"
    )]
    pub event_topic_drop_status: String,

    /// Topic rejected commands are copied to, with the reason in headers (unset: none).
    #[arg(long, global = true, env = "DEAD_LETTER_TOPIC_DROP")]
    pub dead_letter_topic_drop: Option<String>,

    /// Consumer group of the command topic; a new group starts at the earliest offset.
    #[arg(
        long,
        global = true,
        env = "KAFKA_CONSUMER_GROUP",
        default_value = "Drops Service"
    )]
    pub kafka_consumer_group: String,

    /// Port of the REST API (drop queries, /healthz, /readyz, /metrics).
    #[arg(long, global = true, env = "REST_PORT", default_value_t = 8080)]
    pub rest_port: u16,

    /// Partitions of each topic this service creates at start-up when it is missing.
    #[arg(long, global = true, env = "TOPIC_PARTITIONS", default_value_t = 4,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_partitions: i32,

    /// Replication factor of the topics this service creates.
    #[arg(long, global = true, env = "TOPIC_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_replication_factor: i32,

    /// Log level: panic, fatal, error, warn, info, debug or trace (the ecosystem's names).
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info", value_parser = parse_level)]
    pub log_level: LevelFilter,

    /// Log format.
    #[arg(
        long,
        global = true,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// OTLP endpoint to export spans to, e.g. http://otel-collector:4317 (unset: no export).
    #[arg(long, global = true, env = "TRACE_ENDPOINT")]
    pub trace_endpoint: Option<String>,

    /// How spans go to TRACE_ENDPOINT: grpc, or http/protobuf (e.g. http://otel-collector:4318;
    /// /v1/traces is added).
    #[arg(
        long,
        global = true,
        env = "TRACE_PROTOCOL",
        value_enum,
        default_value = "grpc"
    )]
    pub trace_protocol: TraceProtocol,

    /// Share of the traces starting here that are sampled, 0 to 1; a command's own trace keeps
    /// its sender's sampling.
    #[arg(long, global = true, env = "TRACE_SAMPLING_RATIO", default_value_t = 1.0,
          value_parser = parse_ratio)]
    pub trace_sampling_ratio: f64,

    /// Base URL of the equipment service, ending in /api/ (unset: equip drops carry no equipment).
    #[arg(long, global = true, env = "EQUIPABLES_SERVICE_URL")]
    pub equipables_service_url: Option<String>,

    /// The ecosystem-wide base URL, used for each peer service whose own URL is unset.
    #[arg(long, global = true, env = "BASE_SERVICE_URL")]
    pub base_service_url: Option<String>,

    /// How long a call to the equipment service is retried before the spawn is rejected, in ms.
    #[arg(
        long,
        global = true,
        env = "EQUIPMENT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub equipment_timeout_ms: u64,

    /// Base URL of the party service, ending in /api/ (contract-head §4; unset, and no
    /// BASE_SERVICE_URL: a meso drop goes to its picker alone).
    #[arg(long, global = true, env = "PARTIES_SERVICE_URL")]
    pub parties_service_url: Option<String>,

    /// Longest wait for the party service's answer, in ms; past it the picker takes the meso alone.
    #[arg(
        long,
        global = true,
        env = "PARTIES_TIMEOUT_MS",
        default_value_t = 2_000
    )]
    pub parties_timeout_ms: u64,

    /// This instance's Atlas environment (contract-head §6): commands whose ENVIRONMENT header
    /// names another are skipped; drops spawned without one are of this one.
    #[arg(long, global = true, env = "ATLAS_ENVIRONMENT", value_parser = parse_environment)]
    pub atlas_environment: Option<Environment>,

    /// How long an AVAILABLE drop lies before it expires, in ms (0 = never). Unset: the
    /// configuration service's (with SERVICE_ID), else 180000.
    #[arg(long, global = true, env = "DROP_EXPIRE_MS")]
    pub drop_expire_ms: Option<u64>,

    /// Base URL of the configuration service, ending in /api/; BASE_SERVICE_URL is the fallback.
    #[arg(long, global = true, env = "CONFIGURATIONS_SERVICE_URL")]
    pub configurations_service_url: Option<String>,

    /// This service's id at the configuration service: when set (and a URL known), the drop
    /// lifetime is read from it at start-up, unless DROP_EXPIRE_MS is set.
    #[arg(long, global = true, env = "SERVICE_ID", value_parser = parse_service_id)]
    pub service_id: Option<String>,

    /// Base URL of the data service, ending in /api/ (unset: SPAWN_FROM_CHARACTER drops are not
    /// landed on the floor below); BASE_SERVICE_URL is the fallback.
    #[arg(long, global = true, env = "DATA_SERVICE_URL")]
    pub data_service_url: Option<String>,

    /// Longest wait for the data service's floor below a character's drop, in ms; past it the
    /// drop stays where it was dropped.
    #[arg(long, global = true, env = "DATA_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub data_timeout_ms: u64,

    /// How long a reservation holds before the drop returns to AVAILABLE, in ms (0 = never).
    #[arg(
        long,
        global = true,
        env = "RESERVATION_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub reservation_timeout_ms: u64,

    /// How long only the owner (or the owner's party) may take a drop, in ms.
    #[arg(long, global = true, env = "OWNERSHIP_MS", default_value_t = 15_000)]
    pub ownership_ms: u64,

    /// Most drops one map holds; past it the oldest AVAILABLE drop expires (0 = no limit).
    #[arg(long, global = true, env = "MAP_DROP_LIMIT", default_value_t = 200)]
    pub map_drop_limit: usize,

    /// Largest horizontal distance between a character and the drop it reserves (0 = unchecked).
    #[arg(long, global = true, env = "PICKUP_RANGE_X", default_value_t = 800)]
    pub pickup_range_x: u16,

    /// Largest vertical distance between a character and the drop it reserves (0 = unchecked).
    #[arg(long, global = true, env = "PICKUP_RANGE_Y", default_value_t = 600)]
    pub pickup_range_y: u16,

    /// Where drops live: `memory` (this process; one instance) or `redis` (shared by instances).
    #[arg(
        long,
        global = true,
        env = "STORE",
        value_enum,
        default_value = "memory"
    )]
    pub store: StoreKind,

    /// The Redis of `STORE=redis`.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Prefix of every Redis key: deployments sharing a Redis use different ones.
    #[arg(
        long,
        global = true,
        env = "REDIS_KEY_PREFIX",
        default_value = "atlas-drops"
    )]
    pub redis_key_prefix: String,

    /// Where drop ids come from: `own` (our counter) or `atlas` (the Atlas services' shared
    /// object-id allocator in Redis, with monsters and reactors; needs STORE=redis).
    #[arg(
        long,
        global = true,
        env = "DROP_ID_SOURCE",
        value_enum,
        default_value = "own"
    )]
    pub drop_id_source: DropIdSource,

    /// The Atlas environment whose allocator keys DROP_ID_SOURCE=atlas uses
    /// (`<ATLAS_REDIS_ENV>:atlas:oid:…`; unset: ATLAS_ENV, else `atlas:oid:…`).
    #[arg(long, global = true, env = "ATLAS_REDIS_ENV")]
    pub atlas_redis_env: Option<String>,

    /// The Atlas environment, when ATLAS_REDIS_ENV is unset (see there).
    #[arg(long, global = true, env = "ATLAS_ENV")]
    pub atlas_env: Option<String>,

    /// Most drops the service holds on all maps; spawns past it are refused (0 = no limit).
    #[arg(
        long,
        global = true,
        env = "MAX_LIVE_DROPS",
        default_value_t = 2_000_000
    )]
    pub max_live_drops: usize,

    /// How long shutdown may take to finish commands, expire drops and deliver, in ms.
    #[arg(
        long,
        global = true,
        env = "SHUTDOWN_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub shutdown_timeout_ms: u64,

    /// A librdkafka property, KEY=VALUE (repeatable).
    #[arg(long = "kafka-cfg", global = true, value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_cfg: Vec<(String, String)>,

    /// `KAFKA_CFG_*` from the environment, then `--kafka-cfg`: the librdkafka properties to set.
    #[arg(skip)]
    pub kafka_properties: Vec<(String, String)>,
}

/// Where drops live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In this process: fast, lost on exit; run one instance.
    Memory,
    /// In Redis: shared by every instance of the consumer group, kept across restarts.
    Redis,
}

impl StoreKind {
    /// The name `STORE` takes: `memory` or `redis`.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        }
    }
}

/// Where drop ids come from (contract-head §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DropIdSource {
    /// Our own counter (contract §5): ids unique across tenants.
    Own,
    /// The Atlas services' shared object-id allocator in Redis: ids unique per tenant.
    Atlas,
}

/// Settings that are each fine but do not go together: the service does not start.
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    #[error(
        "DROP_ID_SOURCE=atlas takes drop ids from the Redis the Atlas services share, so it needs \
         STORE=redis (STORE is {0})"
    )]
    AtlasIdsNeedRedis(&'static str),
}

/// A setting's value that does not parse (clap says which setting).
#[derive(Debug, thiserror::Error)]
pub enum BadValue {
    #[error("{0:?} is not a log level")]
    LogLevel(String),
    #[error("{0:?} is not KEY=VALUE")]
    Property(String),
    #[error("{0:?} is not a number from 0 to 1")]
    Ratio(String),
    #[error("{0}")]
    Environment(String),
    #[error("{0:?} is not 1 to 128 letters, digits, '-', '_', '.' or '~'")]
    ServiceId(String),
}

/// A service id: it names a path segment of the configuration service's URL, so it is taken
/// only as characters a URL carries unescaped.
fn parse_service_id(text: &str) -> Result<String, BadValue> {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
    let segment = text.chars().all(unreserved) && text.chars().any(|c| c != '.');
    if text.len() <= 128 && segment {
        Ok(text.to_owned())
    } else {
        Err(BadValue::ServiceId(text.to_owned()))
    }
}

/// An Atlas environment's name (`drop::model::parse_environment`).
pub fn parse_environment(text: &str) -> Result<Environment, BadValue> {
    model::parse_environment(text).map_err(BadValue::Environment)
}

/// A number from 0 to 1.
fn parse_ratio(text: &str) -> Result<f64, BadValue> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(BadValue::Ratio(text.to_owned())),
    }
}

/// The Atlas services' (logrus) level names; `panic` and `fatal` log as `error`.
fn parse_level(text: &str) -> Result<LevelFilter, BadValue> {
    match text.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "info" => Ok(LevelFilter::INFO),
        "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        "off" => Ok(LevelFilter::OFF),
        _ => Err(BadValue::LogLevel(text.to_owned())),
    }
}

fn parse_property(text: &str) -> Result<(String, String), BadValue> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| BadValue::Property(text.to_owned()))?;
    Ok((key.to_owned(), value.to_owned()))
}

/// `KAFKA_CFG_SESSION_TIMEOUT_MS` → `session.timeout.ms`.
fn property_of_variable(name: &str) -> Option<String> {
    let key = name.strip_prefix(KAFKA_CFG_PREFIX)?;
    (!key.is_empty()).then(|| key.to_ascii_lowercase().replace('_', "."))
}

impl Settings {
    /// Adds the `KAFKA_CFG_*` properties of the environment to what the command line said.
    pub fn with_environment(self) -> Settings {
        Settings::from_parts(self, std::env::vars())
    }

    fn from_parts(mut settings: Settings, env: impl Iterator<Item = (String, String)>) -> Settings {
        let mut from_env: Vec<(String, String)> = env
            .filter_map(|(name, value)| Some((property_of_variable(&name)?, value)))
            .collect();
        from_env.sort();
        settings.kafka_properties = from_env;
        settings
            .kafka_properties
            .extend(settings.kafka_cfg.iter().cloned());
        settings
    }

    /// Whether the settings go together (checked once, as they are read).
    pub fn check(&self) -> Result<(), Conflict> {
        match (self.drop_id_source, self.store) {
            (DropIdSource::Atlas, StoreKind::Memory) => {
                Err(Conflict::AtlasIdsNeedRedis(self.store.name()))
            }
            (DropIdSource::Atlas, StoreKind::Redis) | (DropIdSource::Own, _) => Ok(()),
        }
    }

    /// The prefix `{P}` of the Atlas allocator's keys when drop ids come from it
    /// (`DROP_ID_SOURCE=atlas`): `<ATLAS_REDIS_ENV>:atlas`, else `<ATLAS_ENV>:atlas`, else `atlas`
    /// (an empty value counts as unset).
    pub fn atlas_ids_prefix(&self) -> Option<String> {
        if self.drop_id_source != DropIdSource::Atlas {
            return None;
        }
        let env = [&self.atlas_redis_env, &self.atlas_env]
            .into_iter()
            .flatten()
            .find(|env| !env.is_empty());
        Some(match env {
            Some(env) => format!("{env}:atlas"),
            None => "atlas".to_owned(),
        })
    }

    /// The rules; the drop lifetime is `DROP_EXPIRE_MS` when set, else `configured` (the
    /// configuration service's), else the default.
    pub fn rules(&self, configured_expire_ms: Option<u64>) -> Rules {
        let expire_ms =
            (self.drop_expire_ms.or(configured_expire_ms)).unwrap_or(Rules::default().expire_ms);
        Rules {
            expire_ms,
            reservation_timeout_ms: self.reservation_timeout_ms,
            ownership_ms: self.ownership_ms,
            map_drop_limit: self.map_drop_limit,
            pickup_range_x: self.pickup_range_x,
            pickup_range_y: self.pickup_range_y,
        }
    }

    /// The equipment service's base URL, if any.
    pub fn equipment_url(&self) -> Option<&str> {
        self.peer_url(&self.equipables_service_url)
    }

    /// The data service's base URL, if any.
    pub fn data_url(&self) -> Option<&str> {
        self.peer_url(&self.data_service_url)
    }

    /// Where to ask for the drop lifetime, `(URL, service id)`: only with `SERVICE_ID` and a
    /// URL, and when `DROP_EXPIRE_MS` does not say it already.
    pub fn lifetime_source(&self) -> Option<(&str, &str)> {
        let url = self.peer_url(&self.configurations_service_url)?;
        let service_id = self.service_id.as_deref()?;
        self.drop_expire_ms.is_none().then_some((url, service_id))
    }

    /// A peer service's own URL, else `BASE_SERVICE_URL`.
    fn peer_url<'a>(&'a self, own: &'a Option<String>) -> Option<&'a str> {
        own.as_deref().or(self.base_service_url.as_deref())
    }

    pub fn data_timeout(&self) -> Duration {
        Duration::from_millis(self.data_timeout_ms)
    }

    /// The party service's base URL, if any.
    pub fn parties_url(&self) -> Option<&str> {
        (self.parties_service_url.as_deref()).or(self.base_service_url.as_deref())
    }

    pub fn parties_timeout(&self) -> Duration {
        Duration::from_millis(self.parties_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// The largest record we may produce: librdkafka's `message.max.bytes` (default 1 000 000,
    /// as the broker's), less room for the record's framing.
    pub fn max_record_bytes(&self) -> usize {
        const FRAMING: usize = 512;
        let limit = (self.kafka_properties.iter().rev())
            .find(|(key, _)| key == "message.max.bytes")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(1_000_000usize);
        limit.saturating_sub(FRAMING)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        settings: Settings,
    }

    impl Settings {
        fn parse_from<const N: usize>(args: [&str; N]) -> Settings {
            Command::parse_from(args).settings
        }
    }

    #[test]
    fn trace_settings_default_to_grpc_and_every_trace() {
        let settings = Settings::parse_from(["atlas-drops"]);
        assert_eq!(settings.trace_protocol, TraceProtocol::Grpc);
        assert_eq!(settings.trace_sampling_ratio, 1.0);
        let settings = Settings::parse_from([
            "atlas-drops",
            "--trace-protocol",
            "http/protobuf",
            "--trace-sampling-ratio",
            "0.25",
        ]);
        assert_eq!(settings.trace_protocol, TraceProtocol::HttpProtobuf);
        assert_eq!(settings.trace_sampling_ratio, 0.25);
        for bad in ["1.5", "-0.1", "NaN", "half"] {
            assert!(parse_ratio(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kafka_cfg_variables_become_properties_and_flags_win() {
        let args = ["atlas-drops", "--kafka-cfg", "session.timeout.ms=3000"];
        let env = [
            ("KAFKA_CFG_SESSION_TIMEOUT_MS".to_owned(), "2000".to_owned()),
            ("KAFKA_CFG_FETCH_WAIT_MAX_MS".to_owned(), "10".to_owned()),
            ("KAFKA_CFG_".to_owned(), "ignored".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let settings = Settings::from_parts(Settings::parse_from(args), env.into_iter());
        assert_eq!(
            settings.kafka_properties,
            [
                ("fetch.wait.max.ms".to_owned(), "10".to_owned()),
                ("session.timeout.ms".to_owned(), "2000".to_owned()),
                ("session.timeout.ms".to_owned(), "3000".to_owned()),
            ]
        );
    }

    #[test]
    fn the_party_service_is_its_own_url_else_the_base_one() {
        let settings = Settings::parse_from(["atlas-drops"]);
        assert_eq!(settings.parties_url(), None);
        assert_eq!(settings.parties_timeout(), Duration::from_millis(2000));
        let base = ["atlas-drops", "--base-service-url", "http://atlas/api/"];
        assert_eq!(
            Settings::parse_from(base).parties_url(),
            Some("http://atlas/api/")
        );
        let own = Settings::parse_from([
            "atlas-drops",
            "--base-service-url",
            "http://atlas/api/",
            "--parties-service-url",
            "http://parties/api/",
            "--parties-timeout-ms",
            "150",
        ]);
        assert_eq!(own.parties_url(), Some("http://parties/api/"));
        assert_eq!(own.parties_timeout(), Duration::from_millis(150));
    }

    #[test]
    fn atlas_ids_need_the_shared_store_and_take_their_prefix_from_the_environment() {
        let settings = Settings::parse_from(["atlas-drops"]);
        assert_eq!(settings.drop_id_source, DropIdSource::Own);
        assert!(settings.check().is_ok());
        assert_eq!(settings.atlas_ids_prefix(), None);
        let atlas = Settings::parse_from(["atlas-drops", "--drop-id-source", "atlas"]);
        let conflict = atlas.check().unwrap_err().to_string();
        assert!(
            conflict.contains("needs STORE=redis (STORE is memory)"),
            "{conflict}"
        );
        let shared = |more: &[&str]| {
            let mut args = vec![
                "atlas-drops",
                "--store",
                "redis",
                "--drop-id-source",
                "atlas",
            ];
            args.extend(more);
            Command::parse_from(args).settings
        };
        assert!(shared(&[]).check().is_ok());
        assert_eq!(shared(&[]).atlas_ids_prefix().as_deref(), Some("atlas"));
        let env = ["--atlas-env", "main"];
        assert_eq!(
            shared(&env).atlas_ids_prefix().as_deref(),
            Some("main:atlas")
        );
        let both = ["--atlas-env", "main", "--atlas-redis-env", "preview-7"];
        assert_eq!(
            shared(&both).atlas_ids_prefix().as_deref(),
            Some("preview-7:atlas")
        );
        let empty = ["--atlas-env", "main", "--atlas-redis-env", ""];
        assert_eq!(
            shared(&empty).atlas_ids_prefix().as_deref(),
            Some("main:atlas")
        );
    }

    #[test]
    fn defaults_are_the_contracts() {
        let settings = Settings::parse_from(["atlas-drops"]);
        assert_eq!(settings.rules(None), Rules::default());
        assert_eq!(settings.kafka_consumer_group, "Drops Service");
        assert_eq!(settings.data_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn an_explicit_drop_lifetime_wins_over_the_configured_one() {
        let base = ["atlas-drops", "--base-service-url", "http://atlas/api/"];
        let configured = Settings::parse_from([base[0], base[1], base[2], "--service-id", "d-1"]);
        assert_eq!(
            configured.lifetime_source(),
            Some(("http://atlas/api/", "d-1"))
        );
        assert_eq!(configured.rules(Some(1500)).expire_ms, 1500);
        assert_eq!(
            configured.rules(None).expire_ms,
            180_000,
            "the default kept"
        );

        let explicit = Settings::parse_from([
            "atlas-drops",
            "--service-id",
            "d-1",
            "--drop-expire-ms",
            "0",
        ]);
        assert_eq!(
            explicit.lifetime_source(),
            None,
            "not asked: DROP_EXPIRE_MS says it"
        );
        assert_eq!(explicit.rules(Some(1500)).expire_ms, 0);

        let own = Settings::parse_from([
            base[0],
            base[1],
            base[2],
            "--configurations-service-url",
            "http://config/api/",
        ]);
        assert_eq!(own.lifetime_source(), None, "no SERVICE_ID: not asked");
        assert_eq!(own.data_url(), Some("http://atlas/api/"));
    }

    #[test]
    fn a_service_id_is_a_plain_path_segment() {
        for good in ["drops", "6f2c1a4e-0b9d-4c1e-9f4a-1a2b3c4d5e6f", "a.b_c~d"] {
            assert_eq!(parse_service_id(good).unwrap(), good);
        }
        for bad in ["", "..", "a/b", "a b", "é", "..%2f", &"x".repeat(129)] {
            assert!(parse_service_id(bad).is_err(), "{bad:?}");
        }
    }
}
