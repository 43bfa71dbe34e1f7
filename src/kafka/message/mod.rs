//! The wire formats of kafka.md and contract §2, separate from the domain types they carry.

pub mod command;
pub mod event;
pub mod headers;
pub mod stats;
