//! Vigil: a file-integrity-monitoring sensor.
//!
//! Data flows one way: source → decode → attribute → coalesce → hash →
//! evaluate → emit. See docs/architecture.md.
pub mod append_only;
pub mod config;
// The scan daemon of `vigil run`: Linux (eBPF) and Windows (ETW).
pub mod daemon;
pub mod etw_source;
pub mod event;
pub mod filestate;
pub mod hash;
pub mod integrity;
pub mod inventory;
pub mod os;
pub mod pipeline;
pub mod policy;
pub mod process;
pub mod query;
pub mod registry;
pub mod report;
pub mod rules;
pub mod scan;
pub mod schedule;
pub mod schema;
#[cfg(target_os = "linux")]
pub mod sdnotify;
pub mod sink;
pub mod store;

#[cfg(target_os = "linux")]
pub mod linux;

#[cfg(windows)]
pub mod windows;
