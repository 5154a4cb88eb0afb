//! `cargo xtask bench scan`: recording a baseline of a tree (`vigil baseline
//! init`, the walk every verification scan makes) side by side with
//! `aide --init` on the same tree, the same worker count and a warm page
//! cache, in one run; and the read floor, `find | xargs cat`.
//!
//! vigil runs with BLAKE3 (its default) and with BLAKE3 + SHA-256; AIDE with
//! SHA-256 (it has no BLAKE3) and the same metadata (`p+i+n+u+g+s+m+c+xattrs`).
//! Each command runs once untimed, then RUNS times in interleaved rounds; a
//! cell is the median wall time and the peak RSS of the process (wait4).
//! The hash floors, `find | xargs -P WORKERS b3sum`, `... sha256sum` and
//! `... openssl dgst -sha256` (SHA-NI where the CPU has it), say
//! what hashing every byte costs with the standard tools and the same number
//! of processes: with SHA-256 selected, that is the part no walker can save.
//! `--million` also baselines a generated tree of one million small files
//! (made once under target/bench) and reports vigil's peak RSS there.
use super::{cargo, step, workspace_root};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PACKAGES: &[&str] = &["aide", "b3sum"];
const DEFAULT_RUNS: usize = 3;
const WORKERS: usize = 2;
/// The issue's targets.
const TARGET_VS_AIDE: f64 = 5.0;
const TARGET_VS_FLOOR: f64 = 1.5;
const TARGET_RSS_MIB: f64 = 64.0;

/// Builds the command for one run in a fresh scratch directory.
type MakeCommand = Box<dyn Fn(&Path) -> Result<Command>>;

struct Case {
    label: &'static str,
    command: MakeCommand,
    times: Vec<f64>,
    rss_kib: Vec<u64>,
}

pub fn main(args: &[String]) -> Result<()> {
    let mut tree = PathBuf::from("/usr");
    let mut runs = DEFAULT_RUNS;
    let mut million = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tree" => tree = it.next().context("--tree PATH")?.into(),
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            "--million" => million = true,
            _ => bail!("usage: cargo xtask bench scan [--tree PATH] [--runs N] [--million]"),
        }
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    super::deps(PACKAGES)?;
    step("building vigil (release)");
    cargo(&["build", "--release", "-p", "sensor-user"])?;
    let root = workspace_root();
    let vigil = root.join("target/release/vigil");
    let scratch = root.join("target/bench/scan");
    std::fs::create_dir_all(&scratch)?;
    let (files, bytes) = count(&tree)?;
    step(&format!(
        "{}: {files} files, {:.1} GiB; warming the page cache",
        tree.display(),
        bytes as f64 / (1u64 << 30) as f64
    ));
    read_floor(&tree)?;

    let mut cases = vec![
        Case::new("read floor: find | xargs cat", {
            let tree = tree.clone();
            move |_| Ok(read_floor_command(&tree))
        }),
        vigil_case("vigil baseline init (BLAKE3)", &vigil, &tree, false),
        vigil_case("vigil baseline init (BLAKE3+SHA-256)", &vigil, &tree, true),
        aide_case(&tree),
        hash_floor_case("hash floor: find | xargs b3sum", "b3sum", &tree),
        hash_floor_case("hash floor: find | xargs sha256sum", "sha256sum", &tree),
        // OpenSSL uses the CPU's SHA extensions (SHA-NI), coreutils does not:
        // this is the SHA-256 floor of the hardware.
        hash_floor_case(
            "hash floor: find | xargs openssl sha256",
            "openssl dgst -sha256",
            &tree,
        ),
    ];
    step(&format!(
        "timing {} commands: 1 warm-up + {runs} interleaved runs each, {WORKERS} workers",
        cases.len()
    ));
    for round in 0..=runs {
        for c in cases.iter_mut() {
            let dir = scratch.join("run");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let (secs, rss) = measure((c.command)(&dir)?, c.label)?;
            if round > 0 {
                c.times.push(secs);
                c.rss_kib.push(rss);
            }
        }
    }

    println!();
    println!(
        "{} ({files} files, {:.1} GiB) in the page cache; {WORKERS} workers; wall time of the whole process; {runs} runs",
        tree.display(),
        bytes as f64 / (1u64 << 30) as f64
    );
    println!(
        "{:<40} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "command", "median s", "min s", "files/s", "peak MiB", "vs floor"
    );
    let floor = median(&cases[0].times);
    for c in &cases {
        let med = median(&c.times);
        println!(
            "{:<40} {:>9.2} {:>9.2} {:>10.0} {:>10.1} {:>9.2}x",
            c.label,
            med,
            c.times.iter().cloned().fold(f64::MAX, f64::min),
            files as f64 / med,
            *c.rss_kib.iter().max().unwrap_or(&0) as f64 / 1024.0,
            med / floor
        );
    }
    let aide = median(&cases[3].times);
    println!();
    // BLAKE3 against b3sum; BLAKE3+SHA-256 against OpenSSL's SHA-256, the
    // faster of the two SHA-256 floors.
    for (c, hash_floor) in [(&cases[1], &cases[4]), (&cases[2], &cases[6])] {
        let med = median(&c.times);
        println!(
            "{}: {:.2}x faster than aide --init (target >= {TARGET_VS_AIDE}x: {}), {:.2}x the read floor (target <= {TARGET_VS_FLOOR}x: {}), {:.2}x {}",
            c.label,
            aide / med,
            verdict(aide / med >= TARGET_VS_AIDE),
            med / floor,
            verdict(med / floor <= TARGET_VS_FLOOR),
            med / median(&hash_floor.times),
            hash_floor.label,
        );
    }
    if million {
        million_files(&vigil, &root.join("target/bench/scan-1M"), &scratch)?;
    }
    Ok(())
}

impl Case {
    fn new(label: &'static str, f: impl Fn(&Path) -> Result<Command> + 'static) -> Case {
        Case {
            label,
            command: Box::new(f),
            times: Vec::new(),
            rss_kib: Vec::new(),
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// `vigil baseline init` of `tree` into a fresh store.
fn vigil_case(label: &'static str, vigil: &Path, tree: &Path, sha256: bool) -> Case {
    let (vigil, tree) = (vigil.to_path_buf(), tree.to_path_buf());
    Case::new(label, move |dir| {
        let policy = dir.join("policy.toml");
        let sha = if sha256 { "sha256 = [\"/**\"]\n" } else { "" };
        std::fs::write(
            &policy,
            format!("[[watch]]\npath = {tree:?}\n[hash]\nworkers = {WORKERS}\n{sha}"),
        )?;
        let mut c = Command::new(&vigil);
        c.args(["baseline", "init", "--config"])
            .arg(&policy)
            .arg("--db")
            .arg(dir.join("vigil.db"));
        Ok(c)
    })
}

/// `aide --init` of `tree` with SHA-256 and the metadata vigil records.
fn aide_case(tree: &Path) -> Case {
    let tree = tree.to_path_buf();
    Case::new("aide --init (SHA-256)", move |dir| {
        let config = dir.join("aide.conf");
        std::fs::write(
            &config,
            format!(
                "database_out=file:{}\ngzip_dbout=no\nreport_url=file:/dev/null\nnum_workers={WORKERS}\n\
                 Bench = p+i+n+u+g+s+m+c+xattrs+sha256\n{} Bench\n",
                dir.join("aide.db").display(),
                tree.display()
            ),
        )?;
        let mut c = Command::new("aide");
        c.arg("--init")
            .arg(format!("--config={}", config.display()));
        Ok(c)
    })
}

fn read_floor_command(tree: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"find "$1" -type f -print0 | xargs -0 cat > /dev/null"#)
        .arg("sh")
        .arg(tree);
    c
}

/// Every file hashed by `tool`, WORKERS processes at a time.
fn hash_floor_case(label: &'static str, tool: &'static str, tree: &Path) -> Case {
    let tree = tree.to_path_buf();
    Case::new(label, move |_| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                r#"find "$1" -type f -print0 | xargs -0 -n 256 -P {WORKERS} {tool} > /dev/null 2>&1"#
            ))
            .arg("sh")
            .arg(&tree);
        Ok(c)
    })
}

fn read_floor(tree: &Path) -> Result<()> {
    let status = read_floor_command(tree).status()?;
    // Unreadable files make cat exit 1; the cache is warm all the same.
    if status.code().is_none() {
        bail!("warming the cache: {status}");
    }
    Ok(())
}

/// Runs the command; its wall time and peak RSS (KiB), from wait4.
fn measure(mut cmd: Command, label: &str) -> Result<(f64, u64)> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {label}"))?;
    let stderr = child.stderr.take();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 reaps our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4 {label}: {}", std::io::Error::last_os_error());
    }
    let secs = start.elapsed().as_secs_f64();
    let stderr = err.join().unwrap_or_default();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // find|cat exits 1 on unreadable files; AIDE's init exits 0.
    let ok = match label {
        l if l.contains("floor") => code.is_some(),
        _ => code == Some(0),
    };
    if !ok {
        bail!("{label} failed (status {status:#x}): {stderr}");
    }
    Ok((secs, usage.ru_maxrss as u64))
}

fn count(tree: &Path) -> Result<(u64, u64)> {
    let out = Command::new("find")
        .arg(tree)
        .args(["-type", "f", "-printf", "%s\\n"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sizes: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    Ok((sizes.len() as u64, sizes.iter().sum()))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

/// One million small files in 1000 directories, made once.
fn million_files(vigil: &Path, tree: &Path, scratch: &Path) -> Result<()> {
    let done = tree.join(".complete");
    if !done.exists() {
        step(&format!("making 1,000,000 files under {}", tree.display()));
        let _ = std::fs::remove_dir_all(tree);
        for d in 0..1000 {
            let dir = tree.join(format!("d{d:03}"));
            std::fs::create_dir_all(&dir)?;
            for f in 0..1000 {
                std::fs::write(dir.join(format!("f{f:03}")), format!("{d} {f}\n"))?;
            }
        }
        std::fs::write(&done, "")?;
    }
    let dir = scratch.join("million");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let case = vigil_case("vigil baseline init, 1M files", vigil, tree, false);
    let (secs, rss) = measure((case.command)(&dir)?, case.label)?;
    let mib = rss as f64 / 1024.0;
    println!();
    println!(
        "vigil baseline init of 1,000,001 files: {secs:.1} s, peak RSS {mib:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        verdict(mib < TARGET_RSS_MIB)
    );
    Ok(())
}
