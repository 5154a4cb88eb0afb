//! `cargo xtask bench overhead`: what watching costs the workload, side by side
//! with auditd and inotify, in one run.
//!
//! The workload (tests/src/bin/vigil-churn.rs) runs in a watched directory and in
//! an unwatched one, with no monitor, with vigil, with auditd (`-w DIR -p wa`)
//! and with `inotifywait -m -r`; and under a no-op program on each of vigil's
//! syscall tracepoints, the floor of the tracepoint tier, and on the raw
//! `sys_enter`/`sys_exit` tracepoints, the floor of a dispatching design. Each
//! cell is the median of several runs; the ratio is to a no-monitor baseline in
//! the same directory, the mean of one measured just before the monitor starts
//! and one just after it stops. Where those two differ by more than
//! [`DRIFT_FLAG`], the VM changed speed during the monitor's runs and the row
//! is flagged.
use super::{cargo, step, workspace_root};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPS: &str = "20000";
const RUNS: usize = 5;
/// A baseline that moved more than this between before and after a monitor
/// flags that monitor's rows: the ratio then measures this VM's drift too.
const DRIFT_FLAG: f64 = 0.10;

pub fn main(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("overhead") if args.get(1).map(String::as_str) == Some("--vm") => {
            crate::vm::bench(&args[2..])
        }
        Some("overhead") => overhead(),
        Some("hash") => crate::bench_hash::main(&args[1..]),
        Some("pipeline") => crate::bench_pipeline::main(&args[1..]),
        Some("scan") => crate::bench_scan::main(&args[1..]),
        _ => bail!(
            "usage: cargo xtask bench overhead [--vm [--kernel SUITE]...] | hash | pipeline | scan"
        ),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Monitor {
    /// A no-op program on each syscall tracepoint vigil uses (`vigil floor`):
    /// what the tracepoint tier costs before any of vigil's work.
    Floor,
    /// The same on the raw `sys_enter`/`sys_exit` tracepoints (`vigil floor
    /// --raw`): every syscall runs it, but no per-syscall trace record is built.
    FloorRaw,
    Vigil,
    Auditd,
    Inotify,
}

impl Monitor {
    fn name(self) -> &'static str {
        match self {
            Monitor::Floor => "no-op tracepoints",
            Monitor::FloorRaw => "no-op raw syscalls",
            Monitor::Vigil => "vigil",
            Monitor::Auditd => "auditd -w DIR -p wa",
            Monitor::Inotify => "inotifywait -m -r",
        }
    }
}

fn overhead() -> Result<()> {
    step("building vigil (release) and the churn workload");
    cargo(&[
        "build",
        "--release",
        "-p",
        "sensor-user",
        "-p",
        "vigil-tests",
    ])?;
    let root = workspace_root();
    let churn = root.join("target/release/vigil-churn");
    let base = PathBuf::from("/var/tmp/vigil-bench");
    let _ = std::fs::remove_dir_all(&base);
    let (watched, unwatched) = (base.join("watched"), base.join("unwatched"));
    std::fs::create_dir_all(&watched)?;
    std::fs::create_dir_all(&unwatched)?;

    // Each monitor is compared with a no-monitor baseline measured right before
    // and right after it: this VM drifts by tens of percent over minutes, so
    // one baseline for the whole run would mostly measure the drift, and one
    // taken only before cannot tell a monitor's cost from a change of speed.
    let mut rows = Vec::new();
    let mut kernel = Vec::new();
    for m in [
        Monitor::Floor,
        Monitor::FloorRaw,
        Monitor::Vigil,
        Monitor::Auditd,
        Monitor::Inotify,
    ] {
        step(&format!("baseline, then monitor: {}", m.name()));
        let before = [median(&churn, &unwatched)?, median(&churn, &watched)?];
        let loaded_before = crate::bpf_stats::snapshot()?;
        let guard = start(m, &root, &base, &watched)?;
        // vigil's own CPU from here (its start-up, the BPF verifier above
        // all, left out) to its settled output.
        let usage = guard
            .as_ref()
            .filter(|_| m == Monitor::Vigil)
            .map(|c| (c.id(), Usage::read(c.id())));
        // Unwatched first: a monitor still digesting the watched runs' events
        // would otherwise be charged to the unwatched ones.
        let mut timed = Vec::new();
        for (label, dir) in [("unwatched", &unwatched), ("watched", &watched)] {
            timed.push((label, median(&churn, dir)?));
        }
        if m == Monitor::Vigil {
            let events = report_vigil(&base.join("vigil.ndjson"))?;
            if let Some((pid, before)) = usage {
                Usage::read(pid)?.report_since(&before?, events);
            }
            kernel = programs_per_iteration(&churn, &[&unwatched, &watched], &loaded_before)?;
        }
        stop(m, guard)?;
        step(&format!("baseline again, after monitor: {}", m.name()));
        let after = [median(&churn, &unwatched)?, median(&churn, &watched)?];
        for (i, (label, ms)) in timed.into_iter().enumerate() {
            rows.push(Row {
                monitor: m,
                dir: label,
                before: before[i],
                after: after[i],
                ms,
            });
        }
    }
    println!();
    println!(
        "churn: {OPS} × (create + write 4 KiB + close + rename + unlink), median of {RUNS} runs"
    );
    println!(
        "{:<22} {:<10} {:>12} {:>7} {:>10} {:>8}",
        "monitor", "dir", "baseline ms", "drift", "wall ms", "ratio"
    );
    for r in &rows {
        println!(
            "{:<22} {:<10} {:>12.1} {:>6.0}% {:>10.1} {:>7.2}x{}",
            r.monitor.name(),
            r.dir,
            r.baseline(),
            r.drift() * 100.0,
            r.ms,
            r.ms / r.baseline(),
            if r.drift() > DRIFT_FLAG { " *" } else { "" }
        );
    }
    if rows.iter().any(|r| r.drift() > DRIFT_FLAG) {
        println!(
            "* the no-monitor baseline moved more than {:.0} % between before and after this monitor: the machine changed speed during its runs; run again before reading that ratio",
            DRIFT_FLAG * 100.0
        );
    }
    print_kernel_side(&rows, &kernel);
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

/// The time vigil's BPF programs spent in one churn run per directory
/// (`kernel.bpf_stats_enabled`, on for these runs only): per directory, the
/// total ns and the programs by name (ns, calls).
type ProgramTime = (u64, Vec<(String, u64, u64)>);

fn programs_per_iteration(
    churn: &Path,
    dirs: &[&Path],
    loaded_before: &std::collections::HashMap<u32, crate::bpf_stats::Prog>,
) -> Result<Vec<ProgramTime>> {
    let _on = crate::bpf_stats::Enabled::new()?;
    let mut out = Vec::new();
    for dir in dirs {
        let since = crate::bpf_stats::snapshot()?;
        time_churn(churn, dir)?;
        let after = crate::bpf_stats::snapshot()?;
        out.push(crate::bpf_stats::spent(loaded_before, &since, &after));
    }
    Ok(out)
}

/// vigil's kernel side against the no-monitor iteration: what its programs
/// alone add, a figure this VM's changes of speed move much less than the
/// wall-time ratio (the tracepoint machinery around them is not in it).
fn print_kernel_side(rows: &[Row], kernel: &[ProgramTime]) {
    let vigil = rows.iter().filter(|r| r.monitor == Monitor::Vigil);
    let ops: f64 = OPS.parse().unwrap_or(1.0);
    println!();
    println!("vigil's BPF programs (kernel.bpf_stats_enabled, one more churn per dir):");
    println!(
        "{:<10} {:>16} {:>22} {:>10}",
        "dir", "µs an iteration", "no-monitor iteration", "ratio"
    );
    for (r, (ns, progs)) in vigil.zip(kernel) {
        let spent = *ns as f64 / 1000.0 / ops;
        let base = r.baseline() * 1000.0 / ops;
        println!(
            "{:<10} {:>16.2} {:>20.1}µs {:>9.2}x",
            r.dir,
            spent,
            base,
            1.0 + spent / base
        );
        let top: Vec<String> = progs
            .iter()
            .take(6)
            .map(|(name, ns, n)| format!("{name} {} ns × {n}", ns / n.max(&1)))
            .collect();
        println!("           {}", top.join(", "));
    }
}

/// One monitor in one directory: the churn's median wall time under it, and
/// the no-monitor medians just before and just after.
struct Row {
    monitor: Monitor,
    dir: &'static str,
    before: f64,
    after: f64,
    ms: f64,
}

impl Row {
    fn baseline(&self) -> f64 {
        (self.before + self.after) / 2.0
    }

    /// How far the baseline moved, relative to its mean.
    fn drift(&self) -> f64 {
        (self.after - self.before).abs() / self.baseline()
    }
}

/// Waits until vigil has written everything, then counts what it reported:
/// each churn iteration is five kernel changes (created, modified,
/// closed_after_write, renamed, deleted), which coalescing folds into two
/// events (the rename's target `modified` with three `related` steps, and
/// `deleted`). Lost records are counted from the gap events. The output
/// rotates at 100 MiB: every file `vigil.ndjson*` is read. Returns the
/// number of file events.
fn report_vigil(out: &Path) -> Result<u64> {
    let start = Instant::now();
    let size = || -> u64 {
        rotated(out)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    };
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let len = size();
        if len == last {
            break;
        }
        last = len;
    }
    // Before reading the files back: parsing 300 MB of JSON takes this
    // (unoptimised) xtask ~20 s, which earlier runs reported as vigil's.
    let settled = start.elapsed().as_secs_f64() - 1.0;
    let (mut events, mut changes, mut lost) = (0u64, 0u64, 0u64);
    for p in rotated(out) {
        for line in std::fs::read_to_string(&p)?.lines() {
            let ev: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: not JSON", p.display()))?;
            if ev["kind"] == "file" {
                events += 1;
                changes += 1 + ev["related"].as_array().map_or(0, |r| r.len() as u64);
            } else if ev["action"] == "gap" {
                lost += ev["lost"].as_u64().unwrap_or(0);
            }
        }
    }
    let expected = (RUNS * 5 * OPS.parse::<usize>()?) as u64;
    step(&format!(
        "vigil reported {changes} of {expected} kernel changes ({events} events after coalescing), {lost} records lost and reported as gaps; output settled {settled:.1}s after the last run (the last second without growth not counted)"
    ));
    Ok(events)
}

/// A process's CPU time per thread name, and the bytes it has written.
struct Usage {
    cpu_s: std::collections::BTreeMap<String, f64>,
    written: u64,
}

impl Usage {
    fn read(pid: u32) -> Result<Usage> {
        let mut cpu_s = std::collections::BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let dir = task?.path();
            let (Ok(name), Ok(stat)) = (
                std::fs::read_to_string(dir.join("comm")),
                std::fs::read_to_string(dir.join("stat")),
            ) else {
                continue; // the thread ended meanwhile
            };
            // utime and stime: fields 14 and 15, counted after the `(comm)`
            // field (which may hold spaces); in USER_HZ, 100 on Linux.
            let after = &stat[stat.rfind(')').context("/proc stat")? + 2..];
            let f: Vec<f64> = after
                .split(' ')
                .skip(11)
                .take(2)
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            *cpu_s.entry(name.trim().to_string()).or_default() += f.iter().sum::<f64>() / 100.0;
        }
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
        let written = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(Usage { cpu_s, written })
    }

    /// Prints the CPU each thread used since `before`, and per event.
    fn report_since(&self, before: &Usage, events: u64) {
        let mut total = 0.0;
        let mut parts = Vec::new();
        for (name, s) in &self.cpu_s {
            let d = s - before.cpu_s.get(name).copied().unwrap_or(0.0);
            total += d;
            if d >= 0.05 {
                parts.push(format!("{name} {d:.2}"));
            }
        }
        step(&format!(
            "vigil used {total:.2} CPU s for the runs ({:.1} µs an event; by thread: {}) and wrote {} MB",
            total * 1e6 / events.max(1) as f64,
            parts.join(", "),
            (self.written - before.written.min(self.written)) / 1_000_000
        ));
    }
}

/// `out` and its rotated predecessors (`out.1`, `out.2`, ...), oldest first.
fn rotated(out: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|i| PathBuf::from(format!("{}.{i}", out.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(out.to_path_buf());
    files
}

fn median(churn: &Path, dir: &Path) -> Result<f64> {
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| time_churn(churn, dir))
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[RUNS / 2])
}

fn time_churn(churn: &Path, dir: &Path) -> Result<f64> {
    let out = Command::new(churn).arg(dir).arg(OPS).output()?;
    if !out.status.success() {
        bail!(
            "vigil-churn failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ns: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("churn output")?;
    Ok(ns / 1e6)
}

fn start(m: Monitor, root: &Path, base: &Path, watched: &Path) -> Result<Option<Child>> {
    match m {
        Monitor::Floor | Monitor::FloorRaw => {
            let mut child = Command::new(root.join("target/release/vigil"))
                .arg("floor")
                .args((m == Monitor::FloorRaw).then_some("--raw"))
                .stdout(Stdio::piped())
                .spawn()?;
            // It prints one line once every program is attached.
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().context("floor stdout")?),
                &mut line,
            )?;
            if !line.starts_with("ready") {
                bail!("vigil floor did not start: {line:?}");
            }
            step(line.trim());
            Ok(Some(child))
        }
        Monitor::Vigil => {
            let out = base.join("vigil.ndjson");
            let child = Command::new(root.join("target/release/vigil"))
                .args(["run", "--watch"])
                .arg(watched)
                .arg("--output")
                .arg(&out)
                // A fresh store, not the host's default (which grows run by run).
                .arg("--db")
                .arg(base.join("vigil.db"))
                .stdout(Stdio::null())
                .spawn()?;
            wait_until(|| {
                std::fs::read_to_string(&out).is_ok_and(|s| s.contains("\"action\":\"start\""))
            })?;
            Ok(Some(child))
        }
        Monitor::Auditd => {
            // auditd consumes the records; without it the kernel logs them instead.
            let _ = Command::new("auditctl").arg("-D").output();
            if !Command::new("pidof")
                .arg("auditd")
                .output()?
                .status
                .success()
            {
                super::run(&mut Command::new("auditd"))?;
            }
            super::run(Command::new("auditctl").args(["-w"]).arg(watched).args([
                "-p",
                "wa",
                "-k",
                "vigil-bench",
            ]))?;
            Ok(None)
        }
        Monitor::Inotify => {
            let child = Command::new("inotifywait")
                .args(["-m", "-r", "-o"])
                .arg(base.join("inotify.log"))
                .arg(watched)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            // inotifywait says "Watches established." on stderr when ready.
            std::thread::sleep(Duration::from_secs(1));
            Ok(Some(child))
        }
    }
}

fn stop(m: Monitor, child: Option<Child>) -> Result<()> {
    if let Some(mut c) = child {
        terminate(c.id());
        c.wait()?;
    }
    if m == Monitor::Auditd {
        super::run(Command::new("auditctl").arg("-D").stdout(Stdio::null()))?;
        let _ = Command::new("pkill").arg("-x").arg("auditd").status();
    }
    Ok(())
}

pub(crate) fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

pub(crate) fn wait_until(pred: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !pred() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("timed out waiting for the monitor to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
