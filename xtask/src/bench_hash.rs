//! `cargo xtask bench hash`: the pipeline's hasher (`vigil hash`, which calls
//! `vigil::hash::hash_file` as the pipeline does) side by side with `b3sum`, in
//! one run, on a 1 GiB file of pseudo-random bytes in the page cache.
//!
//! The peer is `b3sum --num-threads 1` (the sensor hashes on one thread); the
//! multithreaded `b3sum`, `sha256sum` and `vigil hash --sha256` are context.
//! Every command runs once untimed, then RUNS times in interleaved rounds (this
//! VM drifts over minutes; interleaving spreads the drift over all commands).
//! Each time is the wall time of the whole process, start to exit. The bench
//! fails if vigil's digests differ from b3sum's or sha256sum's.
use super::{cargo, step, workspace_root};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The peer (Debian's `b3sum`); `sha256sum` comes with coreutils.
const PACKAGES: &[&str] = &["b3sum"];
const SIZE: u64 = 1 << 30;
const DEFAULT_RUNS: usize = 5;
/// The target: vigil at least this fraction of b3sum's single-thread speed.
const TARGET: f64 = 0.9;

struct Tool {
    label: &'static str,
    program: PathBuf,
    args: &'static [&'static str],
    times: Vec<f64>,
    /// The first whitespace-separated fields of the output line.
    digest: Vec<String>,
}

impl Tool {
    fn new(label: &'static str, program: &Path, args: &'static [&'static str]) -> Tool {
        Tool {
            label,
            program: program.to_path_buf(),
            args,
            times: Vec::new(),
            digest: Vec::new(),
        }
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let runs = match args {
        [] => DEFAULT_RUNS,
        [flag, n] if flag == "--runs" => n.parse().context("--runs N")?,
        _ => bail!("usage: cargo xtask bench hash [--runs N]"),
    };
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    super::deps(PACKAGES)?;
    step("building vigil (release)");
    cargo(&["build", "--release", "-p", "sensor-user"])?;
    let root = workspace_root();
    let vigil = root.join("target/release/vigil");
    let file = root.join("target/bench/hash-1GiB.bin");
    make_input(&file)?;
    step("warming the page cache");
    warm(&file)?;

    let b3sum = Path::new("b3sum");
    let mut tools = vec![
        Tool::new("b3sum --num-threads 1", b3sum, &["--num-threads", "1"]),
        Tool::new("vigil hash", &vigil, &["hash"]),
        Tool::new("b3sum (all threads)", b3sum, &[]),
        Tool::new("sha256sum", Path::new("sha256sum"), &[]),
        Tool::new("vigil hash --sha256", &vigil, &["hash", "--sha256"]),
    ];
    step(&format!(
        "timing {} commands: 1 warm-up + {runs} interleaved runs each",
        tools.len()
    ));
    for round in 0..=runs {
        for t in tools.iter_mut() {
            let (secs, digest) = time(t, &file)?;
            if round == 0 {
                t.digest = digest;
            } else {
                t.times.push(secs);
            }
        }
    }
    check_digests(&tools)?;

    let mib = SIZE as f64 / (1 << 20) as f64;
    let base = median(&tools[0].times);
    println!();
    println!(
        "{} of pseudo-random bytes in the page cache; wall time of the whole process; {runs} runs; {}",
        human(SIZE),
        cpu()
    );
    println!(
        "{:<24} {:>10} {:>10} {:>12} {:>10}",
        "command", "median s", "min s", "MiB/s (med)", "vs b3sum-1"
    );
    for t in &tools {
        let (med, min) = (median(&t.times), min(&t.times));
        println!(
            "{:<24} {:>10.3} {:>10.3} {:>12.0} {:>9.2}x",
            t.label,
            med,
            min,
            mib / med,
            base / med
        );
    }
    let ratio = base / median(&tools[1].times);
    println!();
    println!(
        "vigil hash / b3sum --num-threads 1 = {ratio:.2}x by median (target >= {TARGET:.2}x: {}); digests equal",
        if ratio >= TARGET { "met" } else { "NOT met" }
    );
    Ok(())
}

/// Writes SIZE bytes of xorshift64* output to `path`, unless a file of that
/// size is already there.
fn make_input(path: &Path) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == SIZE) {
        step(&format!("reusing {}", path.display()));
        return Ok(());
    }
    step(&format!(
        "writing {} of pseudo-random bytes to {}",
        human(SIZE),
        path.display()
    ));
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension("tmp");
    let mut out = std::fs::File::create(&tmp)?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..SIZE / buf.len() as u64 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            word.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.write_all(&buf)?;
    }
    out.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn warm(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 8 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Runs `t` once on `file`: the wall time in seconds and the output line's
/// digest fields (everything before the path).
fn time(t: &Tool, file: &Path) -> Result<(f64, Vec<String>)> {
    let start = Instant::now();
    let out = Command::new(&t.program)
        .args(t.args)
        .arg(file)
        .output()
        .with_context(|| format!("running {}", t.label))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{} failed with {}: {}",
            t.label,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let name = file.to_string_lossy();
    let fields = text
        .trim_end()
        .strip_suffix(&*name)
        .with_context(|| format!("{}: unexpected output {text:?}", t.label))?
        .split_whitespace()
        .map(String::from)
        .collect();
    Ok((secs, fields))
}

/// vigil's BLAKE3 must equal b3sum's, and its SHA-256 sha256sum's.
fn check_digests(tools: &[Tool]) -> Result<()> {
    let by = |label: &str| &tools.iter().find(|t| t.label == label).unwrap().digest;
    let b3 = &by("b3sum --num-threads 1")[..];
    let sha = &by("sha256sum")[..];
    let checks = [
        ("b3sum (all threads)", by("b3sum (all threads)").clone(), b3),
        ("vigil hash", by("vigil hash").clone(), b3),
        (
            "vigil hash --sha256 (blake3)",
            by("vigil hash --sha256")[..1].to_vec(),
            b3,
        ),
        (
            "vigil hash --sha256 (sha256)",
            by("vigil hash --sha256")[1..].to_vec(),
            sha,
        ),
    ];
    for (what, got, want) in checks {
        if got != want {
            bail!("{what} printed {got:?}, the reference printed {want:?}");
        }
    }
    Ok(())
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn human(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// "CPU model, N CPUs, b3sum version", for the record.
fn cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    let b3sum = Command::new("b3sum")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{model}, {n} CPUs, {b3sum}")
}
