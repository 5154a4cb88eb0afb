//! Vigil: a file-integrity-monitoring sensor.
//!
//! Data flows one way: source → decode → attribute → emit (coalescing, hashing
//! and rules come with the pipeline work). See docs/architecture.md.
pub mod config;
pub mod event;
pub mod output;
pub mod policy;
pub mod process;

#[cfg(target_os = "linux")]
pub mod linux;
