//! `cargo xtask vm-test`: the same statically linked `vigil` on real Debian
//! kernels (bullseye 5.10, bookworm 6.1, trixie 6.12) booted under qemu TCG.
//! This is the CO-RE test: one binary, no rebuild per kernel.
//!
//!   cargo xtask vm-test [--kernel SUITE|VERSION]...   (default: all three)
//!
//! Steps: install qemu, busybox-static, cpio, musl-tools and the musl target;
//! fetch each kernel package with a private apt configuration into
//! target/vm/debs/ (once: the .deb is kept) and extract the kernel ELF from its
//! vmlinuz; build vigil, vigil-testop and vigil-vmcheck for
//! x86_64-unknown-linux-musl; pack them with busybox and an /init script into
//! an initramfs; boot each kernel, collect the serial console, parse the
//! `VMTEST` lines of vigil-vmcheck and print a kernel x scenario table.
//! Fails when a scenario fails, is missing, or a boot times out.
use crate::{cargo, deps, run, step, workspace_root, BUILD_PACKAGES};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian packages the VM stage needs on the host.
const VM_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "musl-tools",
    "xz-utils",
    "zstd",
];
const MUSL: &str = "x86_64-unknown-linux-musl";
const MIRROR: &str = "http://deb.debian.org/debian";
/// (Debian suite, kernel line) booted by default.
const KERNELS: &[(&str, &str)] = &[
    ("bullseye", "5.10"),
    ("bookworm", "6.1"),
    ("trixie", "6.12"),
];
/// Booting takes 5-10 s under TCG, loading vigil's programs about a minute
/// (the verifier is slow in emulation); this only catches a hang.
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
/// The `vigil run --tier` values the guest runs, one sensor start each: auto
/// (per hook the first of fentry, kprobe that the kernel allows), kprobe forced,
/// and the syscall tracepoints alone.
const TIERS: &[&str] = &["auto", "kprobe", "tracepoint"];

struct Kernel {
    suite: &'static str,
    line: &'static str,
    /// Debian package version, e.g. 6.1.176-1.
    version: String,
    vmlinux: PathBuf,
}

struct Boot {
    kernel: String,
    /// (tier, scenario) -> (PASS, SKIP or FAIL; detail)
    results: BTreeMap<(String, String), (String, String)>,
    order: Vec<(String, String)>,
    hooks_failed: Vec<String>,
    /// The guest's `VMBOOT` line: kernel release, lockdown modes, LSM list.
    boot_line: Option<String>,
    /// `VMBENCH` lines (bench mode): tier, baseline ms, with-vigil ms, ratio.
    bench: Vec<Vec<String>>,
    secs: f64,
    problem: Option<String>,
    log: PathBuf,
}

/// What a boot runs: the scenario suite per tier, or the overhead benchmark.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Test,
    Bench,
}

pub fn main(args: &[String]) -> Result<()> {
    run_mode(args, Mode::Test)
}

/// `cargo xtask bench overhead --vm [--kernel K]...`: the churn workload with
/// no sensor and with vigil on each tier, inside each kernel's VM (one CPU,
/// TCG): only the ratios mean something.
pub fn bench(args: &[String]) -> Result<()> {
    run_mode(args, Mode::Bench)
}

fn run_mode(args: &[String], mode: Mode) -> Result<()> {
    let mut wanted: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel" => wanted.push(it.next().context("--kernel needs a value")?.clone()),
            other => bail!(
                "vm-test: unknown argument {other:?} (usage: vm-test [--kernel SUITE|VERSION]...)"
            ),
        }
    }
    let selected: Vec<(&str, &str)> = KERNELS
        .iter()
        .copied()
        .filter(|(s, l)| wanted.is_empty() || wanted.iter().any(|w| w == s || w == l))
        .collect();
    if selected.is_empty() {
        bail!("no kernel matches {wanted:?}; known: {KERNELS:?}");
    }
    let started = Instant::now();
    deps(BUILD_PACKAGES)?;
    deps(VM_PACKAGES)?;
    if !String::from_utf8_lossy(
        &Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()?
            .stdout,
    )
    .lines()
    .any(|l| l.trim() == MUSL)
    {
        step(&format!("adding the {MUSL} target (static guest binaries)"));
        run(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    let vm = workspace_root().join("target/vm");
    let kernels = selected
        .iter()
        .map(|(suite, line)| fetch_kernel(&vm, suite, line))
        .collect::<Result<Vec<_>>>()?;

    step(&format!(
        "building vigil, vigil-testop, vigil-vmcheck for {MUSL} (static)"
    ));
    cargo(&[
        "build",
        "--release",
        "--target",
        MUSL,
        "-p",
        "sensor-user",
        "-p",
        "vigil-tests",
        "--bin",
        "vigil",
        "--bin",
        "vigil-testop",
        "--bin",
        "vigil-vmcheck",
        "--bin",
        "vigil-churn",
    ])?;
    let bin_dir = workspace_root().join("target").join(MUSL).join("release");
    let bins: Vec<PathBuf> = ["vigil", "vigil-testop", "vigil-vmcheck", "vigil-churn"]
        .iter()
        .map(|b| bin_dir.join(b))
        .collect();
    for b in &bins {
        if !is_static_elf(b)? {
            bail!(
                "{} is dynamically linked: the initramfs has no libc",
                b.display()
            );
        }
    }
    let initrd = initramfs(&vm, &bins)?;
    let prepared = started.elapsed();

    let mut boots = Vec::new();
    for k in &kernels {
        step(&format!(
            "booting Debian {} {} ({}) under qemu TCG",
            k.suite, k.line, k.version
        ));
        let b = boot(&vm, k, &initrd, mode)?;
        eprintln!(
            "    {:.1} s{}",
            b.secs,
            b.problem
                .as_deref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        );
        boots.push(b);
    }
    if mode == Mode::Bench {
        return bench_report(&boots);
    }
    let ok = report(&boots);
    eprintln!(
        "vm-test: preparation {:.0} s, boots {:.0} s, total {:.0} s",
        prepared.as_secs_f64(),
        boots.iter().map(|b| b.secs).sum::<f64>(),
        started.elapsed().as_secs_f64()
    );
    if !ok {
        bail!(
            "vm-test failed (serial logs: {})",
            vm.join("logs").display()
        );
    }
    Ok(())
}

/// apt-get / apt-cache with a private configuration for one suite: its own
/// sources list, lists and cache under target/vm/apt/SUITE; the system's apt
/// state is neither read nor changed.
fn apt(vm: &Path, tool: &str, suite: &str) -> Result<Command> {
    let dir = vm.join("apt").join(suite);
    std::fs::create_dir_all(dir.join("lists/partial"))?;
    std::fs::create_dir_all(dir.join("cache/archives/partial"))?;
    let list = dir.join("sources.list");
    std::fs::write(
        &list,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {suite} main\n"
        ),
    )?;
    let mut cmd = Command::new(tool);
    let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
    cmd.arg("-q")
        .arg("-o")
        .arg(opt("Dir::Etc::SourceList", &list))
        .args(["-o", "Dir::Etc::SourceParts=/dev/null"])
        .arg("-o")
        .arg(opt("Dir::State::Lists", &dir.join("lists")))
        .arg("-o")
        .arg(opt("Dir::Cache", &dir.join("cache")))
        .args(["-o", "Dir::State::Status=/dev/null"])
        .args(["-o", "APT::Sandbox::User=root"]);
    Ok(cmd)
}

/// The newest `linux-image-*-amd64` of `suite` (downloaded once, then reused)
/// and the kernel ELF extracted from it.
fn fetch_kernel(vm: &Path, suite: &'static str, line: &'static str) -> Result<Kernel> {
    let debs = vm.join("debs").join(suite);
    std::fs::create_dir_all(&debs)?;
    let find_deb = || -> Option<PathBuf> {
        std::fs::read_dir(&debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("linux-image-") && n.ends_with(".deb")
                })
            })
    };
    let deb = match find_deb() {
        Some(d) => d,
        None => {
            step(&format!(
                "fetching the Debian {suite} kernel package (once; kept in {})",
                debs.display()
            ));
            run(apt(vm, "apt-get", suite)?.arg("update"))?;
            let out = apt(vm, "apt-cache", suite)?
                .args(["depends", "linux-image-amd64"])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let pkg = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Depends: "))
                .map(|p| p.trim_matches(|c| c == '<' || c == '>').to_string())
                .find(|p| p.starts_with("linux-image-"))
                .with_context(|| {
                    format!("no linux-image dependency of linux-image-amd64 in {suite}: {text}")
                })?;
            run(apt(vm, "apt-get", suite)?
                .args(["download", &pkg])
                .current_dir(&debs))?;
            find_deb().context("apt-get download left no .deb")?
        }
    };
    // linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb -> 6.1.176-1
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let version = name.split('_').nth(1).unwrap_or(&name).to_string();
    let kdir = vm.join("kernels").join(suite);
    let vmlinux = kdir.join(format!("vmlinux-{version}"));
    if !vmlinux.exists() {
        step(&format!("extracting the kernel ELF from {name}"));
        let _ = std::fs::remove_dir_all(&kdir);
        let x = kdir.join("deb");
        std::fs::create_dir_all(&x)?;
        run(Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\" --wildcards './boot/vmlinuz-*' './boot/config-*'")
            .args(["sh", &deb.display().to_string(), &x.display().to_string()]))?;
        let vmlinuz = std::fs::read_dir(x.join("boot"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .context("no /boot/vmlinuz-* in the package")?;
        decompress_kernel(&vmlinuz, &vmlinux)?;
    }
    Ok(Kernel {
        suite,
        line,
        version,
        vmlinux,
    })
}

/// bzImage -> vmlinux: the payload is an xz (bullseye, bookworm) or zstd
/// (trixie) stream after the setup code. Booting the ELF directly (PVH entry)
/// skips the in-guest decompression, which costs 10-20 s under TCG.
fn decompress_kernel(vmlinuz: &Path, out: &Path) -> Result<()> {
    let data = std::fs::read(vmlinuz)?;
    let find = |magic: &[u8]| data.windows(magic.len()).position(|w| w == magic);
    let xz = find(b"\xfd7zXZ\x00").map(|o| (o, "xz"));
    let zstd = find(b"\x28\xb5\x2f\xfd").map(|o| (o, "zstd"));
    let (offset, tool) = [xz, zstd]
        .into_iter()
        .flatten()
        .min()
        .with_context(|| format!("{}: neither xz nor zstd inside", vmlinuz.display()))?;
    let mut cmd = Command::new(tool);
    match tool {
        "xz" => cmd.args(["-dc", "--single-stream"]),
        _ => cmd.args(["-dc"]),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(out)?)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {tool}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let payload = data[offset..].to_vec();
    let writer = std::thread::spawn(move || {
        // zstd stops reading at the trailing size word: a broken pipe is expected.
        let _ = stdin.write_all(&payload);
    });
    // zstd exits non-zero on the 4 bytes the kernel build appends after the
    // frame; what counts is a complete ELF, checked below.
    let _ = child.wait()?;
    let _ = writer.join();
    let elf = std::fs::read(out)?;
    if !elf_complete(&elf) {
        let _ = std::fs::remove_file(out);
        bail!(
            "{}: {tool} did not produce a complete kernel ELF",
            vmlinuz.display()
        );
    }
    Ok(())
}

/// Program headers of a 64-bit little-endian ELF: (p_type, p_offset, p_filesz).
fn program_headers(elf: &[u8]) -> Option<Vec<(u32, u64, u64)>> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(32)? as usize;
    let phentsize = u16_at(54)? as usize;
    let phnum = u16_at(56)? as usize;
    (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            Some((u32_at(h)?, u64_at(h + 8)?, u64_at(h + 32)?))
        })
        .collect()
}

/// Every loadable segment is inside the file (a truncated decompression is not).
fn elf_complete(elf: &[u8]) -> bool {
    program_headers(elf).is_some_and(|phs| {
        !phs.is_empty()
            && phs
                .iter()
                .filter(|(t, _, _)| *t == 1)
                .all(|(_, off, size)| off + size <= elf.len() as u64)
    })
}

/// No PT_INTERP: no dynamic loader needed.
fn is_static_elf(path: &Path) -> Result<bool> {
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let phs =
        program_headers(&elf).with_context(|| format!("{} is not an ELF64", path.display()))?;
    Ok(!phs.iter().any(|(t, _, _)| *t == 3))
}

/// The guest's /init: mounts what vigil needs, runs the checks, and reports the
/// exit code through the isa-debug-exit port (qemu then exits with rc*2+1).
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t securityfs securityfs /sys/kernel/security
mkdir -p /w /u
mount -t tmpfs tmpfs /w
mount -t tmpfs tmpfs /u
hostname vigil-vm
echo "VMBOOT $(cat /proc/sys/kernel/osrelease) lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null)"
rc=0
if grep -q vigil.bench /proc/cmdline; then
    /vigil-vmcheck bench || rc=$?
else
    for tier in @TIERS@; do
        /vigil-vmcheck $tier || rc=$?
    done
fi
echo "VMDONE rc=$rc"
printf "\\$(printf %03o $rc)" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
"#;

/// busybox + /init + the static binaries, as an uncompressed newc cpio (the
/// kernel unpacks it faster than it would gunzip it under TCG).
fn initramfs(vm: &Path, bins: &[PathBuf]) -> Result<PathBuf> {
    step("packing the initramfs (busybox, /init, vigil, vigil-testop, vigil-vmcheck, vigil-churn)");
    let stage = vm.join("initramfs");
    let _ = std::fs::remove_dir_all(&stage);
    for d in ["bin", "dev", "proc", "sys", "etc", "w", "u"] {
        std::fs::create_dir_all(stage.join(d))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !is_static_elf(busybox)? {
        bail!("/bin/busybox is not static: apt-get install busybox-static");
    }
    std::fs::copy(busybox, stage.join("bin/busybox"))?;
    for b in bins {
        std::fs::copy(b, stage.join(b.file_name().unwrap()))?;
    }
    std::fs::write(stage.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    std::fs::write(stage.join("etc/group"), "root:x:0:\n")?;
    let init = stage.join("init");
    std::fs::write(&init, INIT.replace("@TIERS@", &TIERS.join(" ")))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let out = vm.join("initramfs.cpio");
    run(Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > \"$2\"")
        .args([
            "sh",
            &stage.display().to_string(),
            &out.display().to_string(),
        ]))?;
    Ok(out)
}

fn boot(vm: &Path, k: &Kernel, initrd: &Path, mode: Mode) -> Result<Boot> {
    let logs = vm.join("logs");
    std::fs::create_dir_all(&logs)?;
    let (log_suffix, append) = match mode {
        Mode::Test => ("", "console=ttyS0 panic=-1 quiet loglevel=3"),
        Mode::Bench => (
            "-bench",
            "console=ttyS0 panic=-1 quiet loglevel=3 vigil.bench",
        ),
    };
    let log = logs.join(format!("{}-{}{log_suffix}.log", k.suite, k.line));
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "512M", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-nographic"])
        .args(["-serial", "stdio", "-monitor", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(&k.vmlinux)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let t = Instant::now();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let log_path = log.clone();
    let reader = std::thread::spawn(move || -> Vec<String> {
        let mut file = std::fs::File::create(&log_path).ok();
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            lines.push(line);
        }
        lines
    });
    let mut problem = None;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if t.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            problem = Some(format!("timed out after {BOOT_TIMEOUT:?}"));
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = t.elapsed().as_secs_f64();
    let lines = reader.join().unwrap_or_default();
    let qemu_err = err_reader.join().unwrap_or_default();
    if let Some(s) = status {
        // isa-debug-exit: qemu exits with (guest code << 1) | 1.
        match s.code() {
            Some(1) => {}
            Some(c) if c & 1 == 1 => problem = Some(format!("guest exit code {}", c >> 1)),
            _ => {
                problem = Some(format!(
                "qemu exited with {s} without a guest exit code (guest crashed or powered off) {}",
                qemu_err.trim()
            ))
            }
        }
    }
    let mut b = Boot {
        kernel: format!("{} {}", k.line, k.suite),
        results: BTreeMap::new(),
        order: Vec::new(),
        hooks_failed: Vec::new(),
        boot_line: None,
        bench: Vec::new(),
        secs,
        problem,
        log,
    };
    for line in &lines {
        // The console may prefix a line with escape codes: find the marker.
        if let Some(i) = line.find("VMTEST ") {
            let f: Vec<&str> = line[i..].splitn(6, ' ').collect();
            if f.len() >= 5 {
                let key = (f[2].to_string(), f[3].to_string());
                if !b.order.contains(&key) {
                    b.order.push(key.clone());
                }
                b.results
                    .insert(key, (f[4].to_string(), f.get(5).unwrap_or(&"").to_string()));
            }
        } else if let Some(i) = line.find("VMBOOT ") {
            b.boot_line = Some(line[i + 7..].to_string());
        } else if let Some(i) = line.find("VMBENCH ") {
            b.bench
                .push(line[i..].split(' ').skip(2).map(String::from).collect());
        } else if let Some(i) = line.find("VMHOOK ") {
            let f: Vec<&str> = line[i..].splitn(4, ' ').collect();
            if let Some(h) = f.get(3) {
                b.hooks_failed.push(format!("[{}] {h}", f[2]));
            }
        }
    }
    Ok(b)
}

/// "write=fentry,unlink=fentry,..." -> "fentry" when all agree, else the most
/// common tier and the groups on another: "fentry; tracepoint: rmdir,setacl".
fn tier_cell(detail: &str) -> String {
    let pairs: Vec<(&str, &str)> = detail
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, t) in &pairs {
        *count.entry(t).or_default() += 1;
    }
    let Some((main, _)) = count.iter().max_by_key(|(_, n)| **n) else {
        return String::new();
    };
    let mut cell = main.to_string();
    for t in count.keys().filter(|t| *t != main) {
        let groups: Vec<&str> = pairs
            .iter()
            .filter(|(_, u)| u == t)
            .map(|(g, _)| *g)
            .collect();
        cell.push_str(&format!("; {t}: {}", groups.join(",")));
    }
    cell
}

/// Prints the kernel x scenario table and every failure; true when all passed.
fn report(boots: &[Boot]) -> bool {
    let mut rows: Vec<(String, String)> = Vec::new();
    for b in boots {
        for k in &b.order {
            if !rows.contains(k) {
                rows.push(k.clone());
            }
        }
    }
    let width = rows
        .iter()
        .map(|(t, s)| t.len() + s.len() + 1)
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    out.push_str(&format!("\n{:width$}", "scenario"));
    for b in boots {
        out.push_str(&format!(" | {:>16}", b.kernel));
    }
    out.push('\n');
    let mut ok = true;
    for (tier, sc) in &rows {
        out.push_str(&format!("{:width$}", format!("{tier}/{sc}")));
        for b in boots {
            let cell = match b.results.get(&(tier.clone(), sc.clone())) {
                // The tier each operation group got: the tier column of the table.
                Some((st, d)) if st == "PASS" && sc == "tiers" => &tier_cell(d),
                // A skip says the kernel lacks the operation (its reason is listed below).
                Some((st, _)) if st == "PASS" || st == "SKIP" => st,
                Some(_) => {
                    ok = false;
                    "FAIL"
                }
                None => {
                    ok = false;
                    "missing"
                }
            };
            out.push_str(&format!(" | {cell:>16}"));
        }
        out.push('\n');
    }
    out.push_str(&format!("{:width$}", "boot seconds"));
    for b in boots {
        out.push_str(&format!(" | {:>16.1}", b.secs));
    }
    out.push('\n');
    println!("{out}");
    for b in boots {
        if let Some(p) = &b.problem {
            ok = false;
            println!("{}: {p} (log: {})", b.kernel, b.log.display());
        }
        if b.results.is_empty() {
            ok = false;
            println!("{}: no VMTEST lines (log: {})", b.kernel, b.log.display());
        }
        for ((tier, sc), (status, detail)) in &b.results {
            match status.as_str() {
                "PASS" => {}
                "SKIP" => println!("{} {tier}/{sc} SKIP: {detail}", b.kernel),
                _ => println!("{} {tier}/{sc} FAIL: {detail}", b.kernel),
            }
        }
        for h in &b.hooks_failed {
            println!("{}: hook not attached: {h}", b.kernel);
        }
        if let Some(l) = &b.boot_line {
            println!("{}: {l}", b.kernel);
        }
    }
    ok
}

/// Prints the bench table: per kernel and tier, the churn's wall time without
/// and with vigil, and the ratio.
fn bench_report(boots: &[Boot]) -> Result<()> {
    println!("\nchurn in the VM (1 vCPU, TCG), median of the runs; only the ratios compare");
    println!(
        "{:<16} {:<11} {:>12} {:>10} {:>7}",
        "kernel", "tier", "baseline ms", "vigil ms", "ratio"
    );
    let mut ok = true;
    for b in boots {
        if let Some(p) = &b.problem {
            ok = false;
            println!("{}: {p} (log: {})", b.kernel, b.log.display());
        }
        if b.bench.is_empty() {
            ok = false;
            println!("{}: no VMBENCH lines (log: {})", b.kernel, b.log.display());
        }
        for f in &b.bench {
            let g = |i: usize| f.get(i).map(String::as_str).unwrap_or("?");
            println!(
                "{:<16} {:<11} {:>12} {:>10} {:>6}x",
                b.kernel,
                g(0),
                g(1),
                g(2),
                g(3)
            );
        }
    }
    if !ok {
        bail!("bench overhead --vm: a boot failed");
    }
    Ok(())
}
