//! The command line: `serve` (the service, also the default), and the operators' tools that
//! speak drops instead of raw bytes: `send` a command, `tail` the events, `list` and `get` drops
//! from a running service's REST API.

mod query;
mod send;
mod tail;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use ureq::http::StatusCode;
use uuid::Uuid;

use crate::config::Settings;
use crate::drop::model::{Location, Tenant, TenantRef};

/// Why an operator's subcommand failed: printed as `atlas-drops: <this>`, and the exit code is 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no tenant: give --tenant <UUID> or set TENANT_ID")]
    NoTenant,
    /// The flags given make no command (`send spawn` without `--item` or `--mesos`).
    #[error("{0}")]
    Usage(&'static str),
    /// librdkafka would not make the client (a bad property, most often).
    #[error("{client}: {source}")]
    Client {
        client: &'static str,
        source: KafkaError,
    },
    #[error("cannot reach the broker at {brokers}: {source}")]
    NoBroker { brokers: String, source: KafkaError },
    #[error(
        "the broker at {brokers} has no topic {topic} (the service creates it when it starts)"
    )]
    NoTopic { brokers: String, topic: String },
    #[error("producing {kind}: {source}")]
    Produce {
        kind: &'static str,
        source: KafkaError,
    },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot reach the service at {base}: {source}")]
    NoService { base: String, source: ureq::Error },
    #[error("GET {url}: {source}")]
    Read { url: String, source: ureq::Error },
    /// The service refused, saying why (a JSON:API error's detail, or the body as it came).
    #[error("GET {url}: {status}: {detail}")]
    Refused {
        url: String,
        status: StatusCode,
        detail: String,
    },
    #[error("GET {url}: not JSON: {source}")]
    NotJson {
        url: String,
        source: serde_json::Error,
    },
    #[error("the service has no {0}")]
    NoRoute(String),
    #[error("no drop {0} for this tenant")]
    NoDrop(u32),
}

#[derive(Parser, Debug)]
#[command(
    name = "atlas-drops",
    version,
    about = "Owns every item and meso drop on the maps of an Atlas MapleStory server.",
    after_help = "Any librdkafka property can also be set from the environment with the prefix \
KAFKA_CFG_, upper case, dots as underscores: KAFKA_CFG_SESSION_TIMEOUT_MS=2000 sets \
session.timeout.ms=2000. --kafka-cfg overrides the environment. Flags go before or after a \
subcommand: atlas-drops tail --bootstrap-servers host:9092."
)]
pub struct Cli {
    #[command(flatten, next_help_heading = SETTINGS_HEADING)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the service's settings show in every subcommand's help: `send` and `tail` use the Kafka
/// ones (brokers, topics, `--kafka-cfg`).
const SETTINGS_HEADING: &str = "Service settings (send and tail use the Kafka ones)";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Build a drop command and produce it, with the right key and tenant headers.
    Send(send::SendArgs),
    /// Follow the event topic, one readable line an event.
    Tail(tail::TailArgs),
    /// List a map's drops from a running service's REST API.
    List(query::ListArgs),
    /// Show one drop from a running service's REST API.
    Get(query::GetArgs),
}

/// The tenant an operator acts for. Its flags are global: `send --tenant … spawn` and
/// `send spawn --tenant …` are the same (so the tenant id cannot be `required` in clap's sense:
/// `tenant` checks it).
#[derive(Args, Debug, Clone)]
pub struct TenantArgs {
    /// Tenant id, a UUID (required).
    #[arg(long = "tenant", global = true, env = "TENANT_ID")]
    pub tenant_id: Option<Uuid>,
    /// Tenant region.
    #[arg(long, global = true, env = "REGION", default_value = "GMS")]
    pub region: String,
    /// Tenant major version.
    #[arg(
        long = "major",
        global = true,
        env = "MAJOR_VERSION",
        default_value_t = 83
    )]
    pub major_version: u16,
    /// Tenant minor version.
    #[arg(
        long = "minor",
        global = true,
        env = "MINOR_VERSION",
        default_value_t = 1
    )]
    pub minor_version: u16,
}

impl TenantArgs {
    fn tenant(&self) -> Result<TenantRef, CliError> {
        let id = self.tenant_id.ok_or(CliError::NoTenant)?;
        Ok(Arc::new(Tenant {
            id,
            region: self.region.clone(),
            major_version: self.major_version,
            minor_version: self.minor_version,
        }))
    }
}

/// World, channel, map and instance.
#[derive(Args, Debug, Clone, Copy)]
pub struct LocationArgs {
    /// World id.
    #[arg(long, default_value_t = 0)]
    pub world: u8,
    /// Channel id.
    #[arg(long, default_value_t = 0)]
    pub channel: u8,
    /// Map id.
    #[arg(long)]
    pub map: u32,
    /// The map's instance, a UUID (default: the nil UUID, a map that is not instanced).
    #[arg(long, default_value_t = Uuid::nil())]
    pub instance: Uuid,
}

impl From<LocationArgs> for Location {
    fn from(at: LocationArgs) -> Location {
        Location {
            world_id: at.world,
            channel_id: at.channel,
            map_id: at.map,
            instance: at.instance,
        }
    }
}

/// How long `send` and `tail` wait for the broker's first answer before they give up.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the broker about `topic`, so that an absent broker is named within seconds rather than
/// waited for; the topic's partition count.
async fn reach_broker<C: ClientContext>(
    client: &Client<C>,
    settings: &Settings,
    topic: &str,
) -> Result<usize, CliError> {
    let brokers = settings.bootstrap_servers.clone();
    // librdkafka blocks: off the runtime's worker (the CLI has nothing else to do meanwhile).
    let metadata =
        match tokio::task::block_in_place(|| client.fetch_metadata(Some(topic), BROKER_TIMEOUT)) {
            Ok(metadata) => metadata,
            Err(source) => return Err(CliError::NoBroker { brokers, source }),
        };
    match metadata.topics().first() {
        Some(found) if found.error().is_none() && !found.partitions().is_empty() => {
            Ok(found.partitions().len())
        }
        _ => Err(CliError::NoTopic {
            brokers,
            topic: topic.to_owned(),
        }),
    }
}

/// Runs an operator's subcommand; `Err` is printed and makes the exit code 1.
pub async fn run(command: Command, settings: &Settings) -> Result<(), CliError> {
    match command {
        Command::Serve => unreachable!("serve is the service, run by main"),
        Command::Send(args) => send::run(args, settings).await,
        Command::Tail(args) => tail::run(args, settings).await,
        Command::List(args) => query::list(args).await,
        Command::Get(args) => query::get(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|error| panic!("{args:?}: {error}"))
    }

    #[test]
    fn flags_go_before_or_after_a_subcommand() {
        for args in [
            &[
                "atlas-drops",
                "serve",
                "--rest-port",
                "8081",
                "--store",
                "redis",
            ][..],
            &[
                "atlas-drops",
                "--rest-port",
                "8081",
                "serve",
                "--store",
                "redis",
            ],
            &["atlas-drops", "--rest-port", "8081", "--store", "redis"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.settings.rest_port, 8081, "{args:?}");
            assert_eq!(
                cli.settings.store,
                crate::config::StoreKind::Redis,
                "{args:?}"
            );
        }
        let tenant = "083839c6-c47c-42a6-9585-76492795d123";
        for args in [
            &[
                "atlas-drops",
                "send",
                "spawn",
                "--map",
                "1",
                "--item",
                "2",
                "--tenant",
                tenant,
                "--region",
                "EMS",
                "--bootstrap-servers",
                "h:1",
            ][..],
            &[
                "atlas-drops",
                "send",
                "--tenant",
                tenant,
                "--region",
                "EMS",
                "spawn",
                "--map",
                "1",
                "--item",
                "2",
                "--bootstrap-servers",
                "h:1",
            ],
            &[
                "atlas-drops",
                "--bootstrap-servers",
                "h:1",
                "send",
                "--tenant",
                tenant,
                "spawn",
                "--region",
                "EMS",
                "--map",
                "1",
                "--item",
                "2",
            ],
        ] {
            let cli = parse(args);
            assert_eq!(cli.settings.bootstrap_servers, "h:1", "{args:?}");
            let Some(Command::Send(send)) = cli.command else {
                panic!("{args:?}: not send");
            };
            let tenant = send.tenant().expect("a tenant");
            assert_eq!(
                tenant.id.to_string(),
                "083839c6-c47c-42a6-9585-76492795d123"
            );
            assert_eq!(tenant.region, "EMS", "{args:?}");
        }
    }

    /// Every flag of every subcommand says what it is.
    #[test]
    fn every_flag_has_a_description() {
        fn visit(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help().is_some() || arg.is_hide_set(),
                    "{path} --{}: no description",
                    arg.get_id()
                );
            }
            for sub in command.get_subcommands() {
                visit(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut command = Cli::command();
        command.build();
        visit(&command, "atlas-drops");
    }
}
