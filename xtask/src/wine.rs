//! `cargo xtask wine-test`: sensor-windows' unit tests built for
//! x86_64-pc-windows-gnu (mingw) and run under Wine, including the test that
//! writes and reads the registry through the Win32 API (regread).
//!
//! Not part of `cargo xtask test`: the first run installs Wine and mingw and
//! builds the `windows` crate for a second target (minutes), and Wine is not
//! Windows (see docs/windows.md for what this does and does not prove).
//!
//! Steps: install wine64 and gcc-mingw-w64-x86-64 if missing, add the Rust
//! target, create a Wine prefix in target/wine-prefix, put the
//! bcryptprimitives.dll shim into it (Wine 8 lacks the DLL Rust's std needs
//! for random bytes), then `cargo test -p sensor-windows` with Wine as runner.
use crate::{cargo, installed, run, step, workspace_root};
use anyhow::Result;
use std::process::Command;

const PACKAGES: &[&str] = &["wine64", "gcc-mingw-w64-x86-64"];
const TARGET: &str = "x86_64-pc-windows-gnu";

pub fn main(args: &[String]) -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        step(&format!(
            "installing Debian packages: {}",
            missing.join(" ")
        ));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    run(Command::new("rustup").args(["target", "add", TARGET]))?;
    let root = workspace_root();
    let prefix = root.join("target/wine-prefix");
    let system32 = prefix.join("drive_c/windows/system32");
    if !system32.exists() {
        step("creating the Wine prefix target/wine-prefix (once)");
        run(Command::new("wineboot")
            .arg("--init")
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all"))?;
    }
    let shim = system32.join("bcryptprimitives.dll");
    if !shim.exists() {
        step("building the bcryptprimitives.dll shim into the prefix (Wine 8 lacks it)");
        let src = root.join("sensor-windows/wine");
        run(Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(&shim)
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32"))?;
    }
    step(&format!(
        "cargo test -p sensor-windows --target {TARGET} under Wine"
    ));
    std::env::set_var("WINEPREFIX", &prefix);
    std::env::set_var("WINEDEBUG", "-all");
    std::env::set_var("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine");
    let mut a = vec!["test", "-p", "sensor-windows", "--target", TARGET];
    if !args.is_empty() {
        a.push("--");
        a.extend(args.iter().map(String::as_str));
    }
    cargo(&a)
}
