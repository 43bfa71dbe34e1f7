//! Everything that speaks Kafka.

pub mod client;
pub mod consumer;
pub mod context;
pub mod events;
pub mod message;
pub mod outbox;
pub mod producer;
pub mod topics;
