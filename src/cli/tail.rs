//! `atlas-drops tail`: follows the event topic, one readable line an event.

use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::CliError;
use crate::config::Settings;
use crate::drop::model::Millis;
use crate::kafka::client;
use crate::kafka::message::headers::REFUSAL_REASON;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Print each event's raw JSON value instead.
    #[arg(long)]
    json: bool,
    /// Start at the topic's beginning instead of its end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<usize>,
    /// Only this tenant's events (tenant id).
    #[arg(long)]
    tenant: Option<String>,
    /// Only events of this map.
    #[arg(long)]
    map: Option<u32>,
    /// Only events of this drop.
    #[arg(long)]
    drop: Option<u32>,
    /// Only events of this type (CREATED, RESERVED, ...).
    #[arg(long = "type")]
    kind: Option<String>,
}

/// The type column's width: the longest event type, `RESERVATION_FAILURE`, so the columns after
/// it line up whatever the events.
const TYPE_WIDTH: usize = "RESERVATION_FAILURE".len();

/// A record's timestamp as `tail` shows it: UTC, always three fractional digits, so the times
/// line up (`2026-11-27T14:12:59.090Z`). Not the events' `dropTime` format, which drops
/// trailing zeros.
fn time(millis: i64) -> String {
    let millis = millis.max(0) as u64;
    let seconds = crate::kafka::message::event::rfc3339(Millis(millis - millis % 1000));
    let seconds = seconds.trim_end_matches('Z');
    format!("{seconds}.{:03}Z", millis % 1000)
}

/// One event as `tail` shows it.
struct Shown {
    timestamp: Option<i64>,
    tenant: String,
    region: String,
    version: String,
    drop_id: Option<u32>,
    /// The rule that refused a reservation (`REFUSAL_REASON`).
    refused: Option<String>,
    value: Value,
    raw: String,
}

fn header_text(message: &impl Message, name: &str) -> Option<String> {
    let headers = message.headers()?;
    let value = headers.iter().find(|h| h.key == name)?.value?;
    Some(match value {
        [high, low] if name.ends_with("_VERSION") => u16::from_be_bytes([*high, *low]).to_string(),
        _ => String::from_utf8_lossy(value).into_owned(),
    })
}

impl Shown {
    fn read(message: &impl Message) -> Shown {
        let raw = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        // The key is the drop id, little-endian, in its first four bytes.
        let drop_id = message
            .key()
            .and_then(|key| key.get(..4))
            .map(|bytes| u32::from_le_bytes(bytes.try_into().expect("4 bytes")));
        Shown {
            timestamp: message.timestamp().to_millis(),
            tenant: header_text(message, "TENANT_ID").unwrap_or_default(),
            region: header_text(message, "REGION").unwrap_or_default(),
            version: format!(
                "{}.{}",
                header_text(message, "MAJOR_VERSION").unwrap_or_default(),
                header_text(message, "MINOR_VERSION").unwrap_or_default()
            ),
            drop_id,
            refused: header_text(message, REFUSAL_REASON),
            value: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        }
    }

    fn wanted(&self, args: &TailArgs) -> bool {
        args.tenant
            .as_ref()
            .is_none_or(|tenant| *tenant == self.tenant)
            && args.map.is_none_or(|map| self.value["mapId"] == map)
            && args.drop.is_none_or(|drop| self.drop_id == Some(drop))
            && args
                .kind
                .as_ref()
                .is_none_or(|kind| self.value["type"] == kind.as_str())
    }

    /// `time type tenant region version wN/cN/mN[/iUUID] drop=… tx=… body summary` (the
    /// instance only when the map is instanced)
    fn line(&self) -> String {
        let v = &self.value;
        let time = self.timestamp.map_or_else(|| "-".to_owned(), time);
        let body = &v["body"];
        let number = |name: &str| body[name].as_i64().unwrap_or_default();
        let summary = match v["type"].as_str().unwrap_or_default() {
            "CREATED" if number("meso") > 0 => format!(
                "{} meso at ({},{}) owner {}",
                number("meso"),
                number("x"),
                number("y"),
                number("ownerId")
            ),
            "CREATED" => format!(
                "item {} x{} at ({},{}) owner {}",
                number("itemId"),
                number("quantity"),
                number("x"),
                number("y"),
                number("ownerId")
            ),
            "RESERVED" | "PICKED_UP" => {
                let what = if number("meso") > 0 {
                    format!("{} meso", number("meso"))
                } else {
                    format!("item {} x{}", number("itemId"), number("quantity"))
                };
                let pet = body
                    .get("petSlot")
                    .map(|slot| format!(" pet {slot}"))
                    .unwrap_or_default();
                format!("character {} {what}{pet}", number("characterId"))
            }
            "MESO_AWARDED" => format!(
                "character {} {} meso{}",
                number("characterId"),
                number("amount"),
                if body["picker"] == true {
                    " (picker)"
                } else {
                    ""
                }
            ),
            "RESERVATION_FAILURE" => match &self.refused {
                Some(rule) => format!("character {} refused: {rule}", number("characterId")),
                None => format!("character {}", number("characterId")),
            },
            _ => String::new(),
        };
        let instance = match v["instance"].as_str() {
            Some(instance) if instance != NIL_INSTANCE => format!("/i{instance}"),
            _ => String::new(),
        };
        format!(
            "{time} {:<TYPE_WIDTH$} tenant={} {} {} w{}/c{}/m{}{instance} drop={} tx={} {summary}",
            v["type"].as_str().unwrap_or("?"),
            self.tenant,
            self.region,
            self.version,
            v["worldId"],
            v["channelId"],
            v["mapId"],
            self.drop_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            v["transactionId"].as_str().unwrap_or("-"),
        )
    }
}

/// The instance of a map that is not instanced, as events carry it.
const NIL_INSTANCE: &str = "00000000-0000-0000-0000-000000000000";

pub async fn run(args: TailArgs, settings: &Settings) -> Result<(), CliError> {
    let topic = &settings.event_topic_drop_status;
    let consumer: StreamConsumer = client::admin(settings)
        .set(
            "group.id",
            format!("atlas-drops-tail-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|source| CliError::Client {
            client: "consumer",
            source,
        })?;
    let partitions = super::reach_broker(consumer.client(), settings, topic).await?;
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(topic, partition, start)?;
    }
    consumer.assign(&assignment)?;
    let mut printed = 0;
    while args.count.is_none_or(|count| printed < count) {
        let message = consumer.recv().await?;
        let shown = Shown::read(&message);
        if shown.wanted(&args) {
            println!(
                "{}",
                if args.json {
                    shown.raw.clone()
                } else {
                    shown.line()
                }
            );
            printed += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_three_fractional_digits() {
        assert_eq!(time(1_795_788_779_093), "2026-11-27T14:12:59.093Z");
        assert_eq!(time(1_795_788_779_090), "2026-11-27T14:12:59.090Z");
        assert_eq!(time(1_795_788_779_000), "2026-11-27T14:12:59.000Z");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_type_column_fits_every_type() {
        for kind in [
            "CREATED",
            "RESERVED",
            "RESERVATION_FAILURE",
            "PICKED_UP",
            "EXPIRED",
        ] {
            let shown = Shown {
                timestamp: Some(1_795_788_779_090),
                tenant: "t".to_owned(),
                region: "GMS".to_owned(),
                version: "83.1".to_owned(),
                drop_id: Some(1),
                refused: Some("out_of_range".to_owned()),
                value: serde_json::json!({"type": kind}),
                raw: String::new(),
            };
            let line = shown.line();
            assert_eq!(line.find(" tenant="), Some(24 + 1 + TYPE_WIDTH), "{line}");
        }
    }
}
