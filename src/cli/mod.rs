//! The command line: `serve` (the service, also the default), and the operators' tools that
//! speak drops instead of raw bytes: `send` a command, `tail` the events, `list` and `get` drops
//! from a running service's REST API.

mod query;
mod send;
mod tail;

use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::config::Settings;
use crate::drop::model::{Location, Tenant, TenantRef};

#[derive(Parser, Debug)]
#[command(
    name = "atlas-drops",
    version,
    about = "Owns every item and meso drop on the maps of an Atlas MapleStory server.",
    after_help = "Any librdkafka property can also be set from the environment with the prefix \
KAFKA_CFG_, upper case, dots as underscores: KAFKA_CFG_SESSION_TIMEOUT_MS=2000 sets \
session.timeout.ms=2000. --kafka-cfg overrides the environment. Service flags go before a \
subcommand: atlas-drops --bootstrap-servers host:9092 tail."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

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

/// The tenant an operator acts for.
#[derive(Args, Debug, Clone)]
pub struct TenantArgs {
    /// Tenant id (UUID).
    #[arg(long = "tenant", env = "TENANT_ID")]
    pub tenant_id: Uuid,
    #[arg(long, env = "REGION", default_value = "GMS")]
    pub region: String,
    #[arg(long = "major", env = "MAJOR_VERSION", default_value_t = 83)]
    pub major_version: u16,
    #[arg(long = "minor", env = "MINOR_VERSION", default_value_t = 1)]
    pub minor_version: u16,
}

impl TenantArgs {
    fn tenant(&self) -> TenantRef {
        Arc::new(Tenant {
            id: self.tenant_id,
            region: self.region.clone(),
            major_version: self.major_version,
            minor_version: self.minor_version,
        })
    }
}

/// World, channel and map.
#[derive(Args, Debug, Clone, Copy)]
pub struct LocationArgs {
    #[arg(long, default_value_t = 0)]
    pub world: u8,
    #[arg(long, default_value_t = 0)]
    pub channel: u8,
    #[arg(long)]
    pub map: u32,
}

impl From<LocationArgs> for Location {
    fn from(at: LocationArgs) -> Location {
        Location {
            world_id: at.world,
            channel_id: at.channel,
            map_id: at.map,
        }
    }
}

/// Runs an operator's subcommand; `Err` is printed and makes the exit code 1.
pub async fn run(command: Command, settings: &Settings) -> Result<(), String> {
    match command {
        Command::Serve => unreachable!("serve is the service, run by main"),
        Command::Send(args) => send::run(args, settings).await,
        Command::Tail(args) => tail::run(args, settings).await,
        Command::List(args) => query::list(args).await,
        Command::Get(args) => query::get(args).await,
    }
}
