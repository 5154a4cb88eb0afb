//! `cargo xtask ...`: everything a fresh Debian machine needs, in one place.
//!
//!   cargo xtask deps             install what is missing (apt packages, nightly
//!                                rust-src, bpf-linker against nightly's LLVM)
//!   cargo xtask run [ARGS...]    deps + build + `vigil run` with the embedded
//!                                default policy (ARGS are passed to `vigil run`)
//!   cargo xtask test             deps + build + lints (also sensor-windows for
//!                                the Windows target) + every test (needs root),
//!                                then wine-test and vm-test
//!   cargo xtask soak [CHANGES [FILES]]
//!                                deps + build + the full-size fault tests
//!                                (needs root): a burst of 1 000 000 changes
//!                                over 10 000 watched files through a 1 MiB
//!                                ring buffer (tests/tests/faults.rs, burst_soak,
//!                                against the release build of vigil)
//!   cargo xtask fuzz [--seconds N] [TARGET...]
//!                                cargo-fuzz (nightly) on the record decoder,
//!                                the policy and rule parsers and the ETW
//!                                interpreter, N seconds each (default 180);
//!                                not part of `test` (fuzz/README.md)
//!   cargo xtask bench overhead   deps + the overhead benchmark (needs root)
//!   cargo xtask bench hash|pipeline|scan  the hashing, pipeline and scan benchmarks
//!                                (docs/benchmarks.md)
//!   cargo xtask windows-lint     clippy of sensor-windows and sensor-user for
//!                                x86_64-pc-windows-msvc
//!   cargo xtask wine-test        sensor-windows' tests for x86_64-pc-windows-gnu
//!                                under Wine (see xtask/src/wine.rs)
//!   cargo xtask vm-test          the static vigil on Debian 5.10, 6.1 and 6.12
//!                                kernels under qemu (see xtask/src/vm.rs)
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the build and the tests need (clang and libbpf headers for
/// the CO-RE shim).
const BUILD_PACKAGES: &[&str] = &["clang", "libbpf-dev", "libc6-dev"];
/// The peers `cargo xtask bench` compares against.
const BENCH_PACKAGES: &[&str] = &["auditd", "inotify-tools"];
/// What the host tests run for real: rsyslogd for the syslog sink, headless
/// Chromium to render the HTML report (sensor-user/tests/report.rs), a
/// systemd user manager on a dbus-daemon session bus for the service
/// events (tests/tests/services.rs; nsenter and unshare are util-linux), rpm
/// and rpmbuild for the rpm inventory (tests/tests/inventory.rs).
const TEST_PACKAGES: &[&str] = &[
    "rsyslog",
    "chromium",
    "systemd",
    "dbus",
    "util-linux",
    "rpm",
];
const BPF_LINKER_VERSION: &str = "0.13.0";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("deps") => deps(BUILD_PACKAGES),
        Some("run") => {
            deps(BUILD_PACKAGES)?;
            cargo(&["build", "--release", "-p", "sensor-user"])?;
            let passthrough = match args.get(1).map(String::as_str) {
                Some("--") => &args[2..],
                _ => &args[1..],
            };
            let mut cmd = Command::new(root.join("target/release/vigil"));
            cmd.arg("run").args(passthrough);
            step("running vigil with the embedded default policy (Ctrl-C to stop)");
            let status = cmd.status().context("starting vigil")?;
            if !status.success() {
                bail!("vigil exited with {status}");
            }
            Ok(())
        }
        Some("test") => test(),
        Some("soak") => soak(&args[1..]),
        Some("fuzz") => {
            deps(BUILD_PACKAGES)?;
            fuzz(&args[1..])
        }
        Some("windows-lint") => windows_lint(),
        Some("wine-test") => wine::main(&args[1..]),
        Some("vm-test") => vm::main(&args[1..]),
        Some("bench") => {
            deps(BUILD_PACKAGES)?;
            deps(BENCH_PACKAGES)?;
            bench::main(&args[1..])
        }
        _ => {
            eprintln!("usage: cargo xtask deps | run [VIGIL-RUN-ARGS...] | test | soak [CHANGES [FILES]] | fuzz [--seconds N] [TARGET...] | windows-lint | wine-test | vm-test [--kernel SUITE] | bench overhead|hash|pipeline|scan");
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args))
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs what is missing (`packages` from Debian, the Rust pieces always
/// checked), saying what it does.
fn deps(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        step(&format!(
            "installing Debian packages: {}",
            missing.join(" ")
        ));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    for (component, subcommand) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        if !succeeds(Command::new("cargo").args([subcommand, "--version"])) {
            step(&format!(
                "adding the {component} component (cargo xtask test runs the lints)"
            ));
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        step("installing the nightly Rust toolchain (the eBPF crate needs -Z build-std)");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let sysroot = String::from_utf8(
        Command::new("rustup")
            .args(["run", "nightly", "rustc", "--print", "sysroot"])
            .output()?
            .stdout,
    )?;
    let sysroot = PathBuf::from(sysroot.trim());
    if !sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        step("adding rust-src to nightly (build-std=core for bpfel-unknown-none)");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let linker_ok = Command::new("rustup")
        .args(["run", "nightly", "bpf-linker", "--version"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        });
    if !linker_ok {
        install_bpf_linker(&sysroot)?;
    }
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// bpf-linker must use the same LLVM as nightly rustc: link it against the
/// libLLVM that ships inside the nightly toolchain.
fn install_bpf_linker(sysroot: &Path) -> Result<()> {
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against nightly's LLVM (a few minutes, once)"
    ));
    let lib = std::fs::read_dir(sysroot.join("lib"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libLLVM.so."))
        })
        .context("nightly toolchain has no libLLVM.so.*")?;
    let name = lib.file_name().unwrap().to_string_lossy().into_owned();
    // libLLVM.so.22.1-rust-1.97.0-nightly → feature llvm-22
    let major = name
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .unwrap_or("")
        .to_string();
    let prefix = workspace_root().join("target/llvm-prefix");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)?;
    run(Command::new("cargo")
        .args([
            "+nightly",
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .env("LLVM_PREFIX", &prefix))
}

fn test() -> Result<()> {
    deps(BUILD_PACKAGES)?;
    deps(TEST_PACKAGES)?;
    if !is_root() {
        bail!("the integration tests load eBPF programs: run `sudo cargo xtask test`");
    }
    step("building vigil and the test helpers");
    cargo(&["build", "-p", "sensor-user", "-p", "vigil-tests"])?;
    step("lints: cargo fmt --check, cargo clippy -D warnings");
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    windows_lint()?;
    step("unit tests and root integration tests on this kernel");
    cargo(&["test", "--", "--test-threads", "4"])?;
    step("the Windows build's tests and vigil.exe under Wine (wine-test)");
    wine::main(&[])?;
    step("the same static vigil on Debian 5.10, 6.1 and 6.12 kernels under qemu (vm-test)");
    vm::main(&[])
}

/// The fault tests too long for `cargo xtask test`: the full-size burst
/// (1 000 000 changes over 10 000 files unless CHANGES and FILES say
/// otherwise). Prints how many files the realtime path attributed, how many
/// only the rescan found, and the sensor's peak RSS.
/// The fuzz targets in fuzz/fuzz_targets, in the order they run.
const FUZZ_TARGETS: &[&str] = &["decode", "config", "rules", "etw"];

/// `cargo xtask fuzz [--seconds N] [TARGET...]`: each target for N seconds
/// (libFuzzer's -max_total_time), from the seeds in fuzz/seeds/TARGET and
/// the corpus earlier runs grew (fuzz/target/corpus/TARGET). A crash stops
/// the run and leaves its input in fuzz/artifacts/TARGET/.
fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 180u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a number")?;
                seconds =
                    v.parse().ok().filter(|n| *n > 0).with_context(|| {
                        format!("--seconds {v:?}: a positive number of seconds")
                    })?;
            }
            t if FUZZ_TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "unknown fuzz target or option {other:?}: cargo xtask fuzz [--seconds N] [{}]",
                FUZZ_TARGETS.join("|")
            ),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    if !succeeds(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        step("installing cargo-fuzz (once)");
        cargo(&["install", "cargo-fuzz", "--locked"])?;
    }
    let root = workspace_root();
    for t in targets {
        let corpus = root.join("fuzz/target/corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        step(&format!("fuzzing {t} for {seconds} s"));
        run(Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "fuzz", "run", t])
            .arg(&corpus)
            .arg(root.join("fuzz/seeds").join(t))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=8192",
                "-print_final_stats=1",
            ]))
        .with_context(|| {
            format!(
                "fuzz target {t} found a crash: its input is in fuzz/artifacts/{t}/; \
                 reproduce with `cargo +nightly fuzz run {t} fuzz/artifacts/{t}/<file>`, \
                 fix it and add the input as a regression unit test"
            )
        })?;
    }
    Ok(())
}

fn soak(args: &[String]) -> Result<()> {
    deps(BUILD_PACKAGES)?;
    if !is_root() {
        bail!("the soak test loads eBPF programs: run `sudo cargo xtask soak`");
    }
    let changes = args.first().map(String::as_str).unwrap_or("1000000");
    let files = args.get(1).map(String::as_str).unwrap_or("10000");
    for (what, v) in [("CHANGES", changes), ("FILES", files)] {
        if v.parse::<u64>().map_or(true, |n| n == 0) {
            bail!(
                "{what} must be a positive number, not {v:?}: cargo xtask soak [CHANGES [FILES]]"
            );
        }
    }
    // The sensor as it ships (release); the test and its writers in debug.
    step("building vigil (release) and the test helpers");
    cargo(&["build", "--release", "--bin", "vigil"])?;
    cargo(&["build", "-p", "sensor-user", "-p", "vigil-tests"])?;
    let vigil = workspace_root().join("target/release/vigil");
    step(&format!(
        "burst: {changes} changes over {files} watched files, 1 MiB ring buffer"
    ));
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "test",
                "-p",
                "vigil-tests",
                "--test",
                "faults",
                "--",
                "--ignored",
            ])
            .args(["--exact", "burst_soak", "--nocapture"])
            .env("VIGIL_BIN", &vigil)
            .env("VIGIL_SOAK_CHANGES", changes)
            .env("VIGIL_SOAK_FILES", files),
    )
}

/// What the Windows lint needs besides rustup's target: a C compiler and a
/// lib.exe-style archiver for the build scripts of C dependencies (bundled
/// SQLite). mingw's gcc compiles their objects and llvm-lib archives them;
/// clippy never links, so no MSVC toolchain is needed.
const WINDOWS_LINT_PACKAGES: &[&str] = &["gcc-mingw-w64-x86-64", "llvm"];

/// The Windows side must lint for Windows too: clippy type-checks
/// sensor-windows and sensor-user (the `vigil` binary) for the MSVC target.
fn windows_lint() -> Result<()> {
    const TARGET: &str = "x86_64-pc-windows-msvc";
    deps(WINDOWS_LINT_PACKAGES)?;
    step(&format!(
        "lints for Windows: cargo clippy -p sensor-windows -p sensor-user --target {TARGET}"
    ));
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        });
    if !installed {
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    std::env::set_var("CC_x86_64_pc_windows_msvc", "x86_64-w64-mingw32-gcc");
    std::env::set_var("AR_x86_64_pc_windows_msvc", "llvm-lib");
    cargo(&[
        "clippy",
        "-p",
        "sensor-windows",
        "-p",
        "sensor-user",
        "--target",
        TARGET,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

mod bench;
mod bench_hash;
mod bench_pipeline;
mod bench_scan;
mod bpf_stats;
mod vm;
mod wine;
