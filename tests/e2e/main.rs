//! The end-to-end tests: one binary, one module per area. Each test starts a real Kafka-compatible
//! broker, the real `atlas-drops` binary and a peer of its own (see `harness`); `fuzz_decoder`
//! fuzzes the command decoder in-process.

mod harness;

mod atlas_ids;
mod bad_input;
mod broker_loss;
mod cli;
mod configuration;
mod equipment;
mod faults;
mod fuzz_decoder;
mod hostile;
mod landing;
mod lifecycle;
mod load;
mod meso;
mod newer;
mod otlp;
mod party_service;
mod rest;
mod run_local;
mod scale_out;
mod shutdown;
mod telemetry;
mod timing;
