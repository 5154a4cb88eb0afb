//! `cargo xtask bench hash`. (Stub.)
use anyhow::{bail, Result};

pub fn main(_args: &[String]) -> Result<()> {
    bail!("bench hash: not built yet")
}
