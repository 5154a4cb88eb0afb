//! `cargo xtask bench pipeline`. (Stub.)
use anyhow::{bail, Result};

pub fn main(_args: &[String]) -> Result<()> {
    bail!("bench pipeline: not built yet")
}
