//! librdkafka configuration for our three clients. Our defaults come first; the operator's
//! `KAFKA_CFG_*` properties come last and win.

use rdkafka::ClientConfig;

use crate::config::Settings;

fn base(settings: &Settings, defaults: &[(&str, &str)]) -> ClientConfig {
    layered(
        &settings.bootstrap_servers,
        defaults,
        &settings.kafka_properties,
    )
}

/// A client of `bootstrap`: `defaults` first, then the operator's `properties`, which win.
pub fn layered(
    bootstrap: &str,
    defaults: &[(&str, &str)],
    properties: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

pub fn admin(settings: &Settings) -> ClientConfig {
    base(settings, &[])
}

/// Idempotent, so retries neither duplicate nor reorder; murmur2 as Java clients hash keys, so
/// peers and we agree on a drop's partition. A record not acknowledged within
/// `message.timeout.ms` is not lost: the publisher replaces the producer and sends it again
/// (`kafka::producer`), which also frees an idempotent producer caught retrying forever against
/// a broker that lost its state. Topics are never created by a produce as a side effect: the
/// service creates its own, with their partitions, at start-up and when they went missing.
pub fn producer(settings: &Settings) -> ClientConfig {
    base(
        settings,
        &[
            ("enable.idempotence", "true"),
            ("partitioner", "murmur2_random"),
            ("linger.ms", "1"),
            ("message.timeout.ms", "10000"),
            ("allow.auto.create.topics", "false"),
            ("queue.buffering.max.messages", "1000000"),
        ],
    )
}

/// Reads the event topic outside any group, for the outbox relay to see what a relay that died
/// had sent already.
pub fn reader(settings: &Settings, instance: &str) -> ClientConfig {
    let mut config = base(
        settings,
        &[
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "50"),
            // Should an offset read as "out of range", reading from the start finds more, never
            // less (latest would find nothing).
            ("auto.offset.reset", "earliest"),
        ],
    );
    config.set("group.id", format!("atlas-drops-outbox-{instance}"));
    config
}

/// Offsets are stored by hand, only once a command's events are acknowledged (at-least-once),
/// and committed in the background and at shutdown.
pub fn consumer(settings: &Settings) -> ClientConfig {
    let mut config = base(
        settings,
        &[
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "10000"),
            ("fetch.wait.max.ms", "50"),
            ("enable.partition.eof", "false"),
            ("statistics.interval.ms", "5000"),
        ],
    );
    if !settings
        .kafka_properties
        .iter()
        .any(|(key, _)| key == "group.id")
    {
        config.set("group.id", &settings.kafka_consumer_group);
    }
    config
}
