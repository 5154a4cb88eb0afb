//! The Windows event source: ETW file, registry and process providers.
//!
//! The platform-neutral core builds and is tested everywhere:
//! - [`records`]: plain-Rust ETW records with the providers' ids and field names;
//! - [`interpreter`]: the state machine from record sequences to [`Change`]s;
//! - [`policy`]: watched files and registry keys (TOML), the `pci-windows` default;
//! - [`baseline`]: registry values, their baseline, and the [`RegistryReader`] seam;
//! - [`process`]: the process table; [`paths`]: NT ↔ DOS paths, registry key spelling;
//! - [`replay`]: recorded sequences as NDJSON, replayed in tests.
//!
//! Windows only: `etw` (a ferrisetw real-time session feeding the interpreter)
//! and `regread` (a [`RegistryReader`] over the Win32 registry API).
//! sensor-user maps [`Change`] into its `Event` (this crate must not depend on it).
pub mod baseline;
pub mod interpreter;
pub mod paths;
pub mod policy;
pub mod process;
pub mod records;
pub mod replay;

#[cfg(windows)]
pub mod etw;
#[cfg(windows)]
pub mod regread;

pub use baseline::{RegistryBaseline, RegistryReader, RegistryValue};
pub use interpreter::{Action, Change, Interpreter, Stats, ValueChange};
pub use policy::Policy;
pub use records::{Header, Record};
