//! The Windows event source: ETW file, registry and process providers.
//!
//! Empty until the Windows sensor lands; it compiles on every platform so the
//! workspace builds and lints everywhere.
