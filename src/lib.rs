//! atlas-drops: the service that owns the life of every item and meso drop on the maps of an
//! Atlas MapleStory server. See README.md for the tour.
//!
//! - `drop`: the domain — plain data and the pure rules of a drop's life.
//! - `store`: where drops live; each state change one atomic call.
//! - `kafka`: the wire — decoding commands, encoding events, consuming, producing.
//! - `rest`: the JSON:API queries, health, readiness and metrics over HTTP.
//! - `equipment`, `party`: the peers we call over HTTP.
//! - `expiry`, `metrics`, `startup`, `shutdown`, `config`, `telemetry`, `clock`: the edges.

pub mod cli;
pub mod clock;
pub mod config;
pub mod configuration;
pub mod drop;
pub mod equipment;
pub mod expiry;
pub mod footholds;
pub mod kafka;
#[cfg(test)]
mod layers;
pub mod metrics;
pub mod party;
pub mod peer;
pub mod rest;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod trace;
