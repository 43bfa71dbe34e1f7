//! `atlas-drops send`: one command onto the command topic, keyed and headed as the peers do.

use clap::{Args, Subcommand};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

use super::{LocationArgs, TenantArgs};
use crate::config::Settings;
use crate::drop::model::Correlation;
use crate::kafka::client;
use crate::kafka::message::headers::event_headers;

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(subcommand)]
    command: SendCommand,
    #[command(flatten)]
    tenant: TenantArgs,
    /// Transaction id (default: a new one).
    #[arg(long, global = true)]
    transaction: Option<Uuid>,
}

#[derive(Subcommand, Debug)]
enum SendCommand {
    /// SPAWN: a monster's drop.
    Spawn(SpawnArgs),
    /// SPAWN_FROM_CHARACTER: a character's drop.
    SpawnFromCharacter(SpawnArgs),
    /// REQUEST_RESERVATION.
    Reserve(ReserveArgs),
    /// CANCEL_RESERVATION.
    Cancel(DropArgs),
    /// REQUEST_PICK_UP.
    PickUp(DropArgs),
}

#[derive(Args, Debug)]
struct SpawnArgs {
    #[command(flatten)]
    at: LocationArgs,
    #[arg(long, default_value_t = 0)]
    item: u32,
    #[arg(long, default_value_t = 0)]
    equipment: u32,
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    #[arg(long, default_value_t = 0)]
    mesos: u32,
    /// 0 owner only, 1 owner's party, 2 free for all, 3 explosive.
    #[arg(long, default_value_t = 2)]
    drop_type: u8,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    x: i16,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    y: i16,
    #[arg(long, default_value_t = 0)]
    owner: u32,
    #[arg(long, default_value_t = 0)]
    party: u32,
    #[arg(long, default_value_t = 0)]
    dropper: u32,
    #[arg(long)]
    player_drop: bool,
}

#[derive(Args, Debug)]
struct ReserveArgs {
    #[command(flatten)]
    at: LocationArgs,
    #[arg(long)]
    drop: u32,
    #[arg(long)]
    character: u32,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    x: i16,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    y: i16,
    /// -1 for the character, the pet's slot for a pet.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pet_slot: i8,
    #[arg(long, default_value_t = 0)]
    party: u32,
}

#[derive(Args, Debug)]
struct DropArgs {
    #[command(flatten)]
    at: LocationArgs,
    #[arg(long)]
    drop: u32,
    #[arg(long)]
    character: u32,
}

fn spawn_body(args: &SpawnArgs) -> Value {
    json!({
        "itemId": args.item, "equipmentId": args.equipment, "quantity": args.quantity,
        "mesos": args.mesos, "dropType": args.drop_type, "x": args.x, "y": args.y,
        "ownerId": args.owner, "ownerPartyId": args.party, "dropperId": args.dropper,
        "dropperX": args.x, "dropperY": args.y, "playerDrop": args.player_drop, "mod": 0,
    })
}

/// The command's type, where it happens, its body, and its key: the channel service keys
/// reservations by drop id, the other peers key by map id.
fn command(send: &SendCommand) -> (&'static str, LocationArgs, Value, u32) {
    match send {
        SendCommand::Spawn(args) => ("SPAWN", args.at, spawn_body(args), args.at.map),
        SendCommand::SpawnFromCharacter(args) => (
            "SPAWN_FROM_CHARACTER",
            args.at,
            spawn_body(args),
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
    }
}

pub async fn run(args: SendArgs, settings: &Settings) -> Result<(), String> {
    let (kind, at, body, key) = command(&args.command);
    let transaction = args.transaction.unwrap_or_else(Uuid::new_v4);
    let value = json!({
        "transactionId": transaction, "worldId": at.world, "channelId": at.channel,
        "mapId": at.map, "type": kind, "body": body,
    });
    let value = serde_json::to_vec(&value).expect("commands serialize");
    let correlation = Correlation {
        transaction_id: transaction,
        ..Correlation::default()
    };
    let headers = event_headers(&args.tenant.tenant(), &correlation);
    // An operator waits for an answer: give up after a while rather than wait out an outage.
    let producer: FutureProducer = client::producer(settings)
        .set("message.timeout.ms", "15000")
        .create()
        .map_err(|error| format!("producer: {error}"))?;
    let key = key.to_be_bytes();
    let record = FutureRecord::to(&settings.command_topic_drop)
        .key(&key[..])
        .payload(&value[..])
        .headers(headers);
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(error, _)| format!("producing {kind}: {error}"))?;
    println!(
        "sent {kind} transaction {transaction} to {} (partition {}, offset {})",
        settings.command_topic_drop, delivery.partition, delivery.offset
    );
    Ok(())
}
