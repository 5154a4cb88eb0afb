//! Vigil: a file-integrity-monitoring sensor.
//!
//! Data flows one way: source → decode → attribute → coalesce → hash →
//! evaluate → emit. See docs/architecture.md.
pub mod config;
pub mod event;
pub mod filestate;
pub mod hash;
pub mod pipeline;
pub mod policy;
pub mod process;
pub mod query;
pub mod report;
pub mod rules;
pub mod scan;
pub mod schema;
pub mod sink;
pub mod store;

#[cfg(target_os = "linux")]
pub mod linux;
