//! `atlas-drops send`: one command onto the command topic, keyed and headed as the peers do.

use clap::{Args, Subcommand};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

use super::{CliError, LocationArgs, TenantArgs};
use crate::config::{parse_environment, Settings};
use crate::drop::model::{Correlation, Environment};
use crate::kafka::client;
use crate::kafka::message::headers::event_headers;
use crate::kafka::message::stats::StatsWire;

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(subcommand)]
    command: SendCommand,
    #[command(flatten, next_help_heading = "Tenant and transaction")]
    pub(super) tenant: TenantArgs,
    /// Transaction id, a UUID (default: a new one).
    #[arg(long, global = true, help_heading = "Tenant and transaction")]
    transaction: Option<Uuid>,
    /// The ENVIRONMENT header to send, 1 to 128 bytes (default: none).
    #[arg(long, global = true, help_heading = "Tenant and transaction", value_parser = parse_environment)]
    environment: Option<Environment>,
}

impl SendArgs {
    #[cfg(test)]
    pub(super) fn tenant(&self) -> Result<crate::drop::model::TenantRef, CliError> {
        self.tenant.tenant()
    }
}

#[derive(Subcommand, Debug)]
enum SendCommand {
    /// SPAWN: a monster's drop.
    Spawn(SpawnArgs),
    /// SPAWN_FROM_CHARACTER: a character's drop.
    SpawnFromCharacter(SpawnArgs),
    /// REQUEST_RESERVATION: a character (or its pet) reserves a drop.
    Reserve(ReserveArgs),
    /// CANCEL_RESERVATION: a character lets go of a drop it reserved.
    Cancel(DropArgs),
    /// REQUEST_PICK_UP: a character picks up a drop.
    PickUp(DropArgs),
    /// CONSUME: a reactor or a skill destroys a drop, crediting nobody.
    Consume(ConsumeArgs),
}

#[derive(Args, Debug)]
struct ConsumeArgs {
    #[command(flatten)]
    at: LocationArgs,
    /// Drop id.
    #[arg(long)]
    drop: u32,
}

/// A drop of an item (`--item`) or of mesos (`--mesos`): exactly one of them.
#[derive(Args, Debug)]
struct SpawnArgs {
    #[command(flatten)]
    at: LocationArgs,
    /// Item id (give --item or --mesos).
    #[arg(long)]
    item: Option<u32>,
    /// Item count.
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// Equipment id of an equip item (0: the service creates one when it knows the equipment
    /// service).
    #[arg(long, default_value_t = 0)]
    equipment: u32,
    /// Mesos dropped (give --item or --mesos).
    #[arg(long)]
    mesos: Option<u32>,
    /// Position x, also the dropper's.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    x: i16,
    /// Position y, also the dropper's.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    y: i16,
    /// 0 owner only, 1 owner's party, 2 free for all, 3 explosive.
    #[arg(long, default_value_t = 2)]
    drop_type: u8,
    /// Owner's character id.
    #[arg(long, default_value_t = 0)]
    owner: u32,
    /// Owner's party id.
    #[arg(long, default_value_t = 0)]
    party: u32,
    /// The dropping monster's (or character's) id.
    #[arg(long, default_value_t = 0)]
    dropper: u32,
    /// A character dropped it (playerDrop).
    #[arg(long)]
    player_drop: bool,
    /// An equipment stat carried inline, NAME=VALUE (e.g. weaponAttack=15), repeatable; the
    /// names are the contract's sixteen (strength, dexterity, …, slots).
    #[arg(long = "stat", value_name = "NAME=VALUE", value_parser = parse_stat)]
    stats: Vec<(String, u16)>,
}

/// `NAME=VALUE`, NAME one of the sixteen stats (as `StatsWire` writes them), VALUE 0 to 65535.
fn parse_stat(text: &str) -> Result<(String, u16), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let names = serde_json::to_value(StatsWire::default()).expect("stats serialize");
    if names.get(name).is_none() {
        let names: Vec<&String> = names
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .collect();
        return Err(format!("{name:?} is not a stat: one of {names:?}"));
    }
    let value = value
        .parse()
        .map_err(|_| format!("{name}: {value:?} is not a number from 0 to 65535"))?;
    Ok((name.to_owned(), value))
}

#[derive(Args, Debug)]
struct ReserveArgs {
    #[command(flatten)]
    at: LocationArgs,
    /// Drop id.
    #[arg(long)]
    drop: u32,
    /// Character id.
    #[arg(long)]
    character: u32,
    /// The character's position x.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    x: i16,
    /// The character's position y.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    y: i16,
    /// -1 for the character, the pet's slot for a pet.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pet_slot: i8,
    /// The character's party id (0: none).
    #[arg(long, default_value_t = 0)]
    party: u32,
}

#[derive(Args, Debug)]
struct DropArgs {
    #[command(flatten)]
    at: LocationArgs,
    /// Drop id.
    #[arg(long)]
    drop: u32,
    /// Character id.
    #[arg(long)]
    character: u32,
}

/// What a spawn drops: an item or mesos, never neither or both (the service would reject it as
/// bad input, and the operator would see nothing).
fn contents(args: &SpawnArgs) -> Result<(u32, u32), CliError> {
    match (args.item, args.mesos) {
        (Some(item), None) if item > 0 => Ok((item, 0)),
        (None, Some(mesos)) if mesos > 0 => Ok((0, mesos)),
        (Some(_), Some(_)) => Err(CliError::Usage(
            "a drop is an item or mesos, not both: give --item or --mesos",
        )),
        (Some(_), None) => Err(CliError::Usage("--item must be an item id above 0")),
        (None, Some(_)) => Err(CliError::Usage("--mesos must be above 0")),
        (None, None) => Err(CliError::Usage(
            "what is dropped? give --item ID or --mesos AMOUNT",
        )),
    }
}

fn spawn_body(args: &SpawnArgs) -> Result<Value, CliError> {
    let (item, mesos) = contents(args)?;
    let mut body = json!({
        "itemId": item, "equipmentId": args.equipment, "quantity": args.quantity,
        "mesos": mesos, "dropType": args.drop_type, "x": args.x, "y": args.y,
        "ownerId": args.owner, "ownerPartyId": args.party, "dropperId": args.dropper,
        "dropperX": args.x, "dropperY": args.y, "playerDrop": args.player_drop, "mod": 0,
    });
    for (name, value) in &args.stats {
        body[name] = json!(value);
    }
    Ok(body)
}

/// The command's type, where it happens, its body, and its key: the channel service keys
/// reservations by drop id, the other peers key by map id.
fn command(send: &SendCommand) -> Result<(&'static str, LocationArgs, Value, u32), CliError> {
    Ok(match send {
        SendCommand::Spawn(args) => ("SPAWN", args.at, spawn_body(args)?, args.at.map),
        SendCommand::SpawnFromCharacter(args) => (
            "SPAWN_FROM_CHARACTER",
            args.at,
            spawn_body(args)?,
            args.at.map,
        ),
        SendCommand::Reserve(args) => (
            "REQUEST_RESERVATION",
            args.at,
            json!({"dropId": args.drop, "characterId": args.character, "characterX": args.x,
                   "characterY": args.y, "petSlot": args.pet_slot, "partyId": args.party}),
            args.drop,
        ),
        SendCommand::Cancel(args) => (
            "CANCEL_RESERVATION",
            args.at,
            json!({"dropId": args.drop, "characterId": args.character}),
            args.at.map,
        ),
        SendCommand::PickUp(args) => (
            "REQUEST_PICK_UP",
            args.at,
            json!({"dropId": args.drop, "characterId": args.character}),
            args.at.map,
        ),
        SendCommand::Consume(args) => (
            "CONSUME",
            args.at,
            json!({"dropId": args.drop}),
            args.at.map,
        ),
    })
}

pub async fn run(args: SendArgs, settings: &Settings) -> Result<(), CliError> {
    // Everything the operator gave is checked before the broker is asked anything.
    let (kind, at, body, key) = command(&args.command)?;
    let tenant = args.tenant.tenant()?;
    let transaction = args.transaction.unwrap_or_else(Uuid::new_v4);
    let value = json!({
        "transactionId": transaction, "worldId": at.world, "channelId": at.channel,
        "mapId": at.map, "instance": at.instance, "type": kind, "body": body,
    });
    let value = serde_json::to_vec(&value).expect("commands serialize");
    let correlation = Correlation {
        transaction_id: transaction,
        environment: args.environment.clone(),
        ..Correlation::default()
    };
    let headers = event_headers(&tenant, &correlation);
    // An operator waits for an answer: give up after a while rather than wait out an outage.
    let producer: FutureProducer = client::producer(settings)
        .set("message.timeout.ms", "15000")
        .create()
        .map_err(|source| CliError::Client {
            client: "producer",
            source,
        })?;
    super::reach_broker(producer.client(), settings, &settings.command_topic_drop).await?;
    let key = key.to_be_bytes();
    let record = FutureRecord::to(&settings.command_topic_drop)
        .key(&key[..])
        .payload(&value[..])
        .headers(headers);
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(source, _)| CliError::Produce { kind, source })?;
    println!(
        "sent {kind} transaction {transaction} to {} (partition {}, offset {})",
        settings.command_topic_drop, delivery.partition, delivery.offset
    );
    Ok(())
}
