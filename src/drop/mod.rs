//! The drop domain: plain data and the pure rules of a drop's life. Nothing here touches
//! Kafka, HTTP, a store or a clock.

pub mod award;
pub mod command;
pub mod event;
pub mod floor;
pub mod model;
pub mod rules;
pub mod transition;

#[cfg(test)]
mod rules_tests;
