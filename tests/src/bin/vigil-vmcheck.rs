//! Guest side of `cargo xtask vm-test`: runs inside a qemu guest booted on a
//! distribution kernel, as the child of the initramfs' /init (statically linked,
//! musl). It starts the same `vigil` binary the host built, performs the
//! operation suite with `vigil-testop` (one raw syscall per process, so pid,
//! exe and syscall are known) and checks each event.
//!
//! Prints one line per check on stdout (the serial console):
//!   VMTEST <kernel> <tier> <scenario> PASS|FAIL <detail>
//!   VMHOOK <kernel> <tier> <hook: reason>        (each hook the kernel refused)
//! and exits 0 when every scenario passed.
//!
//!   VMTEST <kernel> <tier> tiers PASS write=fentry,...  (the tier per operation group)
//!
//! Usage: vigil-vmcheck [TIER]    (`vigil run --tier`: auto, fentry, kprobe, tracepoint)
//!
//! A scenario whose operation a VFS hook reports (`group`) expects that hook's
//! tier and VFS function in `source`; the start event says which tier each
//! group got. The io_uring scenario expects an event attributed to the
//! submitting process where the write group is on a VFS tier, and none (a blind
//! spot, named by `vigil doctor`) where it is on the tracepoints.
use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VIGIL: &str = "/vigil";
const TESTOP: &str = "/vigil-testop";
const OUTPUT: &str = "/out.ndjson";
const WATCHED: &str = "/w";
const UNWATCHED: &str = "/u";
/// tmpfs has trusted.* xattrs on every kernel (user.* only from 6.6).
const XATTR: &str = "trusted.vigil";
/// TCG is 10-50x slower than the host; events still come within milliseconds.
const WAIT: Duration = Duration::from_secs(20);
/// Under TCG the verifier takes about a second per program: vigil needs a
/// minute or more to load and attach its ~50 hooks.
const START_WAIT: Duration = Duration::from_secs(240);

/// What a scenario needs in its directory before the operation.
#[derive(Clone, Copy)]
enum Seed {
    Nothing,
    File,
    Dir,
    OldAndNew,
    Old,
    /// A file with the `XATTR` attribute set.
    FileXattr,
}

/// One operation and the event it must produce.
struct Scenario {
    name: &'static str,
    /// vigil-testop arguments; names are relative to the scenario directory.
    args: &'static [&'static str],
    seed: Seed,
    action: &'static str,
    /// The event's `path` (relative).
    path: &'static str,
    syscall: &'static str,
    /// The event's `target_path` (relative), for two-path operations.
    target: Option<&'static str>,
    /// Further fields that must match: (JSON pointer, value).
    fields: &'static [(&'static str, &'static str)],
    /// The operation group a VFS hook reports, and that hook's `source.syscall`.
    vfs: Option<(&'static str, &'static str)>,
    /// Submitted through io_uring (no file syscall): on a VFS tier the event
    /// must name the submitting process; with the group on the tracepoint tier
    /// no event may come and the ring's setup must be a `blind_spot`.
    uring: bool,
}

const fn s(
    name: &'static str,
    args: &'static [&'static str],
    seed: Seed,
    action: &'static str,
    path: &'static str,
    syscall: &'static str,
) -> Scenario {
    Scenario {
        name,
        args,
        seed,
        action,
        path,
        syscall,
        target: None,
        fields: &[],
        vfs: None,
        uring: false,
    }
}

const WRITE: Option<(&str, &str)> = Some(("write", "rw_verify_area"));
const UNLINK: Option<(&str, &str)> = Some(("unlink", "vfs_unlink"));
const RENAME: Option<(&str, &str)> = Some(("rename", "vfs_rename"));
const SETATTR: Option<(&str, &str)> = Some(("setattr", "notify_change"));
const OPEN: Option<(&str, &str)> = Some(("open", "vfs_open"));
const LINK: Option<(&str, &str)> = Some(("link", "vfs_link"));
const SYMLINK: Option<(&str, &str)> = Some(("symlink", "vfs_symlink"));
const MKDIR: Option<(&str, &str)> = Some(("mkdir", "vfs_mkdir"));
const RMDIR: Option<(&str, &str)> = Some(("rmdir", "vfs_rmdir"));
const SETXATTR: Option<(&str, &str)> = Some(("setxattr", "vfs_setxattr"));
const REMOVEXATTR: Option<(&str, &str)> = Some(("removexattr", "vfs_removexattr"));
const FALLOCATE: Option<(&str, &str)> = Some(("fallocate", "vfs_fallocate"));
const MKNOD: Option<(&str, &str)> = Some(("mknod", "vfs_mknod"));

fn scenarios() -> Vec<Scenario> {
    use Seed::*;
    vec![
        Scenario {
            vfs: OPEN,
            ..s(
                "create",
                &["openat-creat", "f"],
                Nothing,
                "created",
                "f",
                "openat",
            )
        },
        Scenario {
            vfs: WRITE,
            ..s("write", &["write", "f"], File, "modified", "f", "write")
        },
        // vigil-testop exits without closing: the marker comes from sched_process_exit.
        Scenario {
            vfs: Some(("write", "exit")),
            ..s(
                "write-exit",
                &["write", "f"],
                File,
                "closed_after_write",
                "f",
                "exit",
            )
        },
        // The writer closes while a forked child holds the file: its close
        // ends its session (on every tier: close(2) is a tracepoint).
        s(
            "write-fork-close",
            &["write-fork-close", "f"],
            File,
            "closed_after_write",
            "f",
            "close",
        ),
        Scenario {
            vfs: SETATTR,
            ..s(
                "truncate",
                &["truncate", "f"],
                File,
                "truncated",
                "f",
                "truncate",
            )
        },
        Scenario {
            vfs: SETATTR,
            ..s(
                "ftruncate",
                &["ftruncate", "f"],
                File,
                "truncated",
                "f",
                "ftruncate",
            )
        },
        Scenario {
            vfs: OPEN,
            ..s(
                "open-trunc",
                &["openat-trunc", "f"],
                File,
                "truncated",
                "f",
                "openat",
            )
        },
        Scenario {
            target: Some("new"),
            vfs: RENAME,
            ..s(
                "rename",
                &["rename", "old", "new"],
                Old,
                "renamed",
                "old",
                "rename",
            )
        },
        Scenario {
            target: Some("new"),
            vfs: RENAME,
            ..s(
                "rename-exchange",
                &["renameat2-exchange", "old", "new"],
                OldAndNew,
                "exchanged",
                "old",
                "renameat2",
            )
        },
        Scenario {
            vfs: UNLINK,
            ..s("unlink", &["unlink", "f"], File, "deleted", "f", "unlink")
        },
        Scenario {
            fields: &[("/file/type", "dir")],
            vfs: RMDIR,
            ..s("rmdir", &["rmdir", "d"], Dir, "deleted", "d", "rmdir")
        },
        Scenario {
            fields: &[("/file/type", "dir")],
            vfs: RMDIR,
            ..s(
                "unlinkat-dir",
                &["unlinkat-dir", "d"],
                Dir,
                "deleted",
                "d",
                "unlinkat",
            )
        },
        Scenario {
            vfs: MKDIR,
            ..s("mkdir", &["mkdir", "d"], Nothing, "created", "d", "mkdir")
        },
        Scenario {
            target: Some("new"),
            vfs: LINK,
            ..s(
                "link",
                &["link", "old", "new"],
                Old,
                "linked",
                "old",
                "link",
            )
        },
        Scenario {
            fields: &[
                ("/details/link_target", "/etc/passwd"),
                ("/file/type", "symlink"),
            ],
            vfs: SYMLINK,
            ..s(
                "symlink",
                &["symlink", "/etc/passwd", "l"],
                Nothing,
                "symlinked",
                "l",
                "symlink",
            )
        },
        Scenario {
            fields: &[("/details/mode", "600")],
            vfs: SETATTR,
            ..s(
                "chmod",
                &["chmod", "f"],
                File,
                "permissions_changed",
                "f",
                "chmod",
            )
        },
        Scenario {
            vfs: SETATTR,
            ..s(
                "chown",
                &["chown", "f"],
                File,
                "owner_changed",
                "f",
                "chown",
            )
        },
        Scenario {
            vfs: SETATTR,
            ..s(
                "utimensat",
                &["utimensat", "f"],
                File,
                "timestamps_changed",
                "f",
                "utimensat",
            )
        },
        Scenario {
            vfs: SETXATTR,
            ..s(
                "setxattr",
                &["setxattr", "f"],
                File,
                "xattr_changed",
                "f",
                "setxattr",
            )
        },
        Scenario {
            vfs: REMOVEXATTR,
            ..s(
                "removexattr",
                &["removexattr", "f"],
                FileXattr,
                "xattr_removed",
                "f",
                "removexattr",
            )
        },
        Scenario {
            vfs: FALLOCATE,
            ..s(
                "fallocate",
                &["fallocate", "f"],
                File,
                "modified",
                "f",
                "fallocate",
            )
        },
        // Writes without write(2): the tracepoint tier hooks these syscalls
        // too; a VFS tier sees them in rw_verify_area.
        Scenario {
            vfs: WRITE,
            ..s(
                "sendfile",
                &["sendfile", "old", "new"],
                OldAndNew,
                "modified",
                "new",
                "sendfile",
            )
        },
        Scenario {
            vfs: WRITE,
            ..s(
                "copy_file_range",
                &["copy_file_range", "old", "new"],
                OldAndNew,
                "modified",
                "new",
                "copy_file_range",
            )
        },
        Scenario {
            vfs: WRITE,
            ..s("splice", &["splice", "f"], File, "modified", "f", "splice")
        },
        Scenario {
            fields: &[("/file/type", "fifo")],
            vfs: MKNOD,
            ..s("mknod", &["mknod", "p"], Nothing, "created", "p", "mknod")
        },
        // A regular file made by mknod: vfs_create, not vfs_mknod, so the
        // tracepoints report it on every tier (and the VFS hook does not twice).
        Scenario {
            fields: &[("/file/type", "file")],
            ..s(
                "mknod-reg",
                &["mknod-reg", "r"],
                Nothing,
                "created",
                "r",
                "mknod",
            )
        },
        // setfacl: 6.2 moved POSIX ACLs from vfs_setxattr to vfs_set_acl;
        // where the kernel has no vfs_set_acl they stay with the xattr
        // syscall tracepoints on every tier.
        Scenario {
            vfs: Some(("setacl", "vfs_set_acl")),
            ..s(
                "setfacl",
                &["setxattr-acl", "f"],
                File,
                "xattr_changed",
                "f",
                "setxattr",
            )
        },
        // io_uring operations other than writes (IORING_OP_UNLINKAT and
        // RENAMEAT from 5.11, MKDIRAT, SYMLINKAT, LINKAT from 5.15: a kernel
        // without the opcode is a SKIP).
        Scenario {
            vfs: OPEN,
            uring: true,
            ..s(
                "io_uring-openat",
                &["io_uring-openat-creat", "f"],
                Nothing,
                "created",
                "f",
                "",
            )
        },
        Scenario {
            vfs: UNLINK,
            uring: true,
            ..s(
                "io_uring-unlinkat",
                &["io_uring-unlinkat", "f"],
                File,
                "deleted",
                "f",
                "",
            )
        },
        Scenario {
            fields: &[("/file/type", "dir")],
            vfs: RMDIR,
            uring: true,
            ..s(
                "io_uring-unlinkat-dir",
                &["io_uring-unlinkat-dir", "d"],
                Dir,
                "deleted",
                "d",
                "",
            )
        },
        Scenario {
            target: Some("new"),
            vfs: RENAME,
            uring: true,
            ..s(
                "io_uring-renameat",
                &["io_uring-renameat", "old", "new"],
                Old,
                "renamed",
                "old",
                "",
            )
        },
        Scenario {
            vfs: MKDIR,
            uring: true,
            ..s(
                "io_uring-mkdirat",
                &["io_uring-mkdirat", "d"],
                Nothing,
                "created",
                "d",
                "",
            )
        },
        Scenario {
            fields: &[("/details/link_target", "/etc/passwd")],
            vfs: SYMLINK,
            uring: true,
            ..s(
                "io_uring-symlinkat",
                &["io_uring-symlinkat", "/etc/passwd", "l"],
                Nothing,
                "symlinked",
                "l",
                "",
            )
        },
        Scenario {
            target: Some("new"),
            vfs: LINK,
            uring: true,
            ..s(
                "io_uring-linkat",
                &["io_uring-linkat", "old", "new"],
                Old,
                "linked",
                "old",
                "",
            )
        },
    ]
}

/// A check's outcome: PASS and SKIP (the kernel lacks what it needs, with the
/// reason) count as success, FAIL does not.
enum Outcome {
    Pass(String),
    Skip(String),
    Fail(String),
}

impl From<Result<String, String>> for Outcome {
    fn from(r: Result<String, String>) -> Outcome {
        match r {
            Ok(d) => Outcome::Pass(d),
            Err(d) => match d.strip_prefix(SKIP) {
                Some(why) => Outcome::Skip(why.to_string()),
                None => Outcome::Fail(d),
            },
        }
    }
}

/// The prefix of an error that is a skip (vigil-testop exit code 3).
const SKIP: &str = "SKIP: ";

fn main() {
    let tier = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tracepoint".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    if tier == "bench" {
        std::process::exit(bench(&kernel));
    }
    let report = |scenario: &str, ok: bool, detail: &str| {
        println!(
            "VMTEST {kernel} {tier} {scenario} {} {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
    };
    // Each tier's run starts from empty trees and an empty feed.
    let _ = fs::remove_file(OUTPUT);
    for d in [WATCHED, UNWATCHED] {
        fs::create_dir_all(d).expect("mkdir");
        for entry in fs::read_dir(d).into_iter().flatten().flatten() {
            let p = entry.path();
            let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
        }
    }
    let tiers: serde_json::Map<String, Value>;
    let sensor = match start_sensor(&tier, true) {
        Ok((child, start)) => {
            tiers = start["tiers"].as_object().cloned().unwrap_or_default();
            let failed: Vec<String> = start["hooks_failed"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            for hook in &failed {
                println!("VMHOOK {kernel} {tier} {hook}");
            }
            report(
                "start",
                true,
                &format!(
                    "hooks_attached={} hooks_failed={}",
                    start["hooks_attached"],
                    failed.len()
                ),
            );
            let list: Vec<String> = tiers
                .iter()
                .map(|(g, t)| format!("{g}={}", t.as_str().unwrap_or("?")))
                .collect();
            report("tiers", !list.is_empty(), &list.join(","));
            child
        }
        Err(why) => {
            report("start", false, &why);
            std::process::exit(1);
        }
    };
    let mut failures = 0;
    let group_tier = |g: &str| {
        tiers
            .get(g)
            .and_then(Value::as_str)
            .unwrap_or("tracepoint")
            .to_string()
    };
    let mut outcome = |name: &str, r: Result<String, String>| match Outcome::from(r) {
        Outcome::Pass(d) => println!("VMTEST {kernel} {tier} {name} PASS {d}"),
        Outcome::Skip(d) => println!("VMTEST {kernel} {tier} {name} SKIP {d}"),
        Outcome::Fail(d) => {
            failures += 1;
            println!("VMTEST {kernel} {tier} {name} FAIL {d}")
        }
    };
    for sc in scenarios() {
        outcome(sc.name, run_scenario(&sc, &group_tier));
    }
    outcome("io_uring-write", io_uring_write(&group_tier("write")));
    outcome(
        "mmap-write",
        mmap_write(
            "mmap-write",
            &group_tier("mmap"),
            "security_mmap_file",
            &group_tier("close"),
        ),
    );
    outcome(
        "mprotect-write",
        mmap_write(
            "mprotect-write",
            &group_tier("mprotect"),
            "security_file_mprotect",
            &group_tier("close"),
        ),
    );
    outcome("unwatched", unwatched_is_quiet());
    drop(sensor);
    std::process::exit(if failures == 0 { 0 } else { 1 });
}

struct Sensor(Child);

impl Drop for Sensor {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Starts vigil (`raw`: without coalescing) and waits for its start event.
fn start_sensor(tier: &str, raw: bool) -> Result<(Sensor, Value), String> {
    let _ = fs::remove_file(OUTPUT);
    *FEED.lock().unwrap() = (0, Vec::new());
    let mut cmd = Command::new(VIGIL);
    cmd.arg("run")
        .args(raw.then_some("--raw"))
        .args(["--watch", WATCHED, "--output", OUTPUT])
        .args(["--tier", tier])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("spawning {VIGIL}: {e}"))?;
    let mut sensor = Sensor(child);
    let t = Instant::now();
    loop {
        if let Some(e) = events()
            .into_iter()
            .find(|e| e["kind"] == "sensor" && e["action"] == "start")
        {
            println!("VMINFO vigil started in {:.1} s", t.elapsed().as_secs_f64());
            return Ok((sensor, e));
        }
        if let Ok(Some(status)) = sensor.0.try_wait() {
            return Err(format!("vigil exited before its start event: {status}"));
        }
        if t.elapsed() > START_WAIT {
            return Err(format!("no start event within {START_WAIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The feed read so far: (bytes consumed, events parsed).
static FEED: std::sync::Mutex<(u64, Vec<Value>)> = std::sync::Mutex::new((0, Vec::new()));

/// Every complete line of the sensor's output. Only what was appended since
/// the last call is read and parsed: the checks poll every 20 ms on one
/// emulated CPU that the sensor needs too.
fn events() -> Vec<Value> {
    use std::io::{Read, Seek, SeekFrom};
    let mut feed = FEED.lock().unwrap();
    let Ok(mut f) = fs::File::open(OUTPUT) else {
        *feed = (0, Vec::new());
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < feed.0 {
        // A new sensor run started a new feed.
        *feed = (0, Vec::new());
    }
    let mut text = Vec::new();
    if f.seek(SeekFrom::Start(feed.0)).is_ok() && f.read_to_end(&mut text).is_ok() {
        if let Some(end) = text.iter().rposition(|b| *b == b'\n') {
            for line in text[..end].split(|b| *b == b'\n') {
                if let Ok(v) = serde_json::from_slice(line) {
                    feed.1.push(v);
                }
            }
            feed.0 += end as u64 + 1;
        }
    }
    feed.1.clone()
}

fn wait_for(pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let t = Instant::now();
    loop {
        if let Some(e) = events().into_iter().find(|e| pred(e)) {
            return Some(e);
        }
        if t.elapsed() > WAIT {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs vigil-testop in `cwd`; returns its pid, or why it failed.
fn testop(cwd: &Path, args: &[&str]) -> Result<u32, String> {
    let child = Command::new(TESTOP)
        .args(args)
        .current_dir(cwd)
        .env("VIGIL_TESTOP_XATTR", XATTR)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {TESTOP}: {e}"))?;
    let pid = child.id();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(pid),
        // The kernel lacks the operation (an io_uring opcode).
        Some(3) => Err(format!("{SKIP}{args:?}: {stderr}")),
        _ => Err(format!(
            "vigil-testop {args:?} failed: {}: {stderr}",
            out.status
        )),
    }
}

fn seed(dir: &Path, seed: Seed) -> std::io::Result<()> {
    match seed {
        Seed::Nothing => Ok(()),
        Seed::File => fs::write(dir.join("f"), b"seed"),
        Seed::Dir => fs::create_dir(dir.join("d")),
        Seed::Old => fs::write(dir.join("old"), b"old"),
        Seed::OldAndNew => {
            fs::write(dir.join("old"), b"old")?;
            fs::write(dir.join("new"), b"new")
        }
        Seed::FileXattr => {
            let f = dir.join("f");
            fs::write(&f, b"seed")?;
            let path = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
            let name = std::ffi::CString::new(XATTR).unwrap();
            let r =
                unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

/// Ok("ok ...") or Err(what differs).
fn run_scenario(sc: &Scenario, group_tier: &dyn Fn(&str) -> String) -> Result<String, String> {
    // A VFS hook reports it when its group is on a VFS tier; else the tracepoints.
    let (tier, syscall) = match sc.vfs {
        Some((group, vfs_syscall)) if group_tier(group) != "tracepoint" => {
            (group_tier(group), vfs_syscall)
        }
        _ => ("tracepoint".to_string(), sc.syscall),
    };
    let dir = PathBuf::from(WATCHED).join(sc.name);
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    seed(&dir, sc.seed).map_err(|e| format!("seeding: {e}"))?;
    let pid = testop(&dir, sc.args)?;
    let path = dir.join(sc.path).display().to_string();
    if sc.uring && tier == "tracepoint" {
        return uring_blind_spot(&dir, pid, sc.action, &path);
    }
    let e =
        wait_for(|e| e["process"]["pid"] == pid && e["action"] == sc.action).ok_or_else(|| {
            let seen: Vec<String> = events()
                .iter()
                .filter(|e| e["process"]["pid"] == pid || e["path"] == path.as_str())
                .map(|e| {
                    format!(
                        "{}:{} pid={} comm={}",
                        e["action"],
                        e["source"]["syscall"],
                        e["process"]["pid"],
                        e["process"]["comm"]
                    )
                })
                .collect();
            format!(
                "no {} event from pid {pid} within {WAIT:?}; its events and the path's: [{}]",
                sc.action,
                seen.join(",")
            )
        })?;
    let mut checks: Vec<(&str, String)> = vec![
        ("/path", path),
        ("/source/syscall", syscall.to_string()),
        ("/source/tier", tier.clone()),
        ("/process/exe", TESTOP.to_string()),
        ("/kind", "file".to_string()),
    ];
    // io_uring runs these in an io-wq worker: a thread of the submitter
    // (`iou-wrk-<tid>`), whose comm is its own; the pid and exe are checked.
    if !sc.uring {
        checks.push(("/process/comm", "vigil-testop".to_string()));
    }
    if let Some(t) = sc.target {
        checks.push(("/target_path", dir.join(t).display().to_string()));
    }
    for (ptr, want) in sc.fields {
        checks.push((ptr, want.to_string()));
    }
    let mut wrong = Vec::new();
    for (ptr, want) in &checks {
        let got = e.pointer(ptr).cloned().unwrap_or(Value::Null);
        let got_s = match &got {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if got_s != *want {
            wrong.push(format!("{ptr}={got_s:?} (want {want:?})"));
        }
    }
    if e["process"]["uid"] != 0 {
        wrong.push(format!("/process/uid={} (want 0)", e["process"]["uid"]));
    }
    if wrong.is_empty() {
        Ok(format!(
            "ok pid={pid} {}:{syscall} comm={}",
            sc.action, e["process"]["comm"]
        ))
    } else {
        Err(wrong.join(" "))
    }
}

/// An io_uring operation whose group is on the tracepoint tier: no event for
/// it (proven by a sentinel that comes after it), and the ring's setup
/// reported as a `blind_spot` (io_uring) naming the submitter.
fn uring_blind_spot(dir: &Path, pid: u32, action: &str, path: &str) -> Result<String, String> {
    let sentinel = testop(dir, &["mkdir", "sentinel"])?;
    wait_for(|e| e["process"]["pid"] == sentinel)
        .ok_or_else(|| format!("no event for the sentinel mkdir (pid {sentinel})"))?;
    if let Some(e) = events()
        .iter()
        .find(|e| e["action"] == action && e["path"] == path)
    {
        return Err(format!(
            "a {action} event with the group on the tracepoint tier: the blind-spot list is wrong: {e}"
        ));
    }
    match wait_for(|e| e["action"] == "blind_spot" && e["subject_pid"] == pid) {
        Some(b) if b["blind_spot"] == "io_uring" => Ok(format!(
            "ok pid={pid}: not seen on the tracepoint tier; io_uring_setup flagged (sensor blind_spot)"
        )),
        Some(b) => Err(format!("blind_spot {} (want io_uring)", b["blind_spot"])),
        None => Err(format!("no blind_spot event for pid {pid}'s io_uring_setup")),
    }
}

/// An IORING_OP_WRITE to a watched file: no write syscall is made. On a VFS tier
/// the event must name the submitting process (io-wq workers are threads of it
/// from 5.12 on); on the tracepoint tier no event comes (the documented blind
/// spot), proven by a sentinel that comes after it.
fn io_uring_write(write_tier: &str) -> Result<String, String> {
    let dir = PathBuf::from(WATCHED).join("io_uring");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    seed(&dir, Seed::File).map_err(|e| format!("seeding: {e}"))?;
    let pid = testop(&dir, &["io_uring-write", "f"])?;
    let path = dir.join("f").display().to_string();
    if write_tier == "tracepoint" {
        let sentinel = testop(&dir, &["mkdir", "sentinel"])?;
        wait_for(|e| e["process"]["pid"] == sentinel)
            .ok_or_else(|| format!("no event for the sentinel mkdir (pid {sentinel})"))?;
        let seen = events()
            .iter()
            .any(|e| e["action"] == "modified" && e["path"] == path.as_str());
        if seen {
            return Err(
                "a modified event on the tracepoint tier: the blind-spot list is wrong".into(),
            );
        }
        let flagged = wait_for(|e| e["action"] == "blind_spot" && e["subject_pid"] == pid);
        return match flagged {
            Some(_) => Ok(format!(
                "ok pid={pid}: write not seen on the tracepoint tier; io_uring_setup flagged (sensor blind_spot)"
            )),
            None => Err(format!("no blind_spot event for pid {pid}'s io_uring_setup")),
        };
    }
    let e =
        wait_for(|e| e["action"] == "modified" && e["path"] == path.as_str()).ok_or_else(|| {
            format!("no modified event for {path} within {WAIT:?} (write group on {write_tier})")
        })?;
    let mut wrong = Vec::new();
    for (ptr, want) in [
        ("/process/pid", pid.to_string()),
        ("/source/tier", write_tier.to_string()),
        ("/source/syscall", "rw_verify_area".to_string()),
        ("/process/exe", TESTOP.to_string()),
    ] {
        let got = match e.pointer(ptr) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "null".into(),
        };
        if got != want {
            wrong.push(format!("{ptr}={got:?} (want {want:?})"));
        }
    }
    if wrong.is_empty() {
        Ok(format!(
            "ok pid={pid} modified:rw_verify_area comm={}",
            e["process"]["comm"]
        ))
    } else {
        Err(wrong.join(" "))
    }
}

/// Stores through a shared writable mapping (the fd closed first, so munmap
/// releases the file). On a VFS tier: a `mapped_writable` event from
/// security_mmap_file with the process, then the close marker from `__fput`
/// (or the process exit when the close group is on the tracepoints) whose
/// `after` hash is that of the stored content. On the tracepoint tier: a
/// `blind_spot` (mmap) event and no mapped_writable event.
///
/// `op` is `mmap-write` (mapped writable) or `mprotect-write` (mapped
/// read-only, made writable by mprotect: `security_file_mprotect` on a VFS
/// tier; the tracepoint tier flags the read-only shared mapping of a file open
/// for writing at the mmap).
fn mmap_write(op: &str, mmap_tier: &str, vfs_fn: &str, close_tier: &str) -> Result<String, String> {
    let dir = PathBuf::from(WATCHED).join(op);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    seed(&dir, Seed::File).map_err(|e| format!("seeding: {e}"))?;
    let pid = testop(&dir, &[op, "f"])?;
    let path = dir.join("f").display().to_string();
    if mmap_tier == "tracepoint" {
        let sentinel = testop(&dir, &["mkdir", "sentinel"])?;
        wait_for(|e| e["process"]["pid"] == sentinel)
            .ok_or_else(|| format!("no event for the sentinel mkdir (pid {sentinel})"))?;
        if events()
            .iter()
            .any(|e| e["action"] == "mapped_writable" && e["path"] == path.as_str())
        {
            return Err("a mapped_writable event on the tracepoint tier".into());
        }
        let flagged = wait_for(|e| {
            e["action"] == "blind_spot" && e["blind_spot"] == "mmap" && e["subject_pid"] == pid
        });
        return match flagged {
            Some(_) => Ok(format!(
                "ok pid={pid}: stores not seen on the tracepoint tier; the mapping flagged (sensor blind_spot mmap)"
            )),
            None => Err(format!("no blind_spot (mmap) event for pid {pid}")),
        };
    }
    let mapped = wait_for(|e| e["action"] == "mapped_writable" && e["path"] == path.as_str())
        .ok_or_else(|| format!("no mapped_writable event for {path} within {WAIT:?}"))?;
    let mut wrong = Vec::new();
    for (ptr, want) in [
        ("/process/pid", pid.to_string()),
        ("/source/tier", mmap_tier.to_string()),
        ("/source/syscall", vfs_fn.to_string()),
        ("/process/exe", TESTOP.to_string()),
    ] {
        let got = match mapped.pointer(ptr) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "null".into(),
        };
        if got != want {
            wrong.push(format!("mapped_writable {ptr}={got:?} (want {want:?})"));
        }
    }
    let marker = if close_tier == "tracepoint" {
        "exit"
    } else {
        "__fput"
    };
    let closed = wait_for(|e| {
        e["action"] == "closed_after_write"
            && e["path"] == path.as_str()
            && e["process"]["pid"] == pid
    });
    let content = fs::read(dir.join("f")).map_err(|e| e.to_string())?;
    if content != b"MMAP" {
        wrong.push(format!("the file holds {content:?}, not the stores"));
    }
    let want_hash = blake3::hash(&content).to_hex().to_string();
    match closed {
        None => wrong.push(format!(
            "no closed_after_write event for {path} from pid {pid}"
        )),
        Some(c) => {
            if c["source"]["syscall"] != marker {
                wrong.push(format!(
                    "closed_after_write from {} (want {marker})",
                    c["source"]["syscall"]
                ));
            }
            if c["after"]["hashes"]["blake3"] != want_hash.as_str() {
                wrong.push(format!(
                    "closed_after_write after.hashes.blake3={} (want {want_hash}, the stored content)",
                    c["after"]["hashes"]["blake3"]
                ));
            }
        }
    }
    if wrong.is_empty() {
        Ok(format!(
            "ok pid={pid} mapped_writable:{vfs_fn}, closed_after_write:{marker} hashed after the stores"
        ))
    } else {
        Err(wrong.join(" "))
    }
}

/// Operations outside the watched tree produce nothing (the in-kernel filter
/// walks the dentry parents through CO-RE reads): proven by a sentinel in the
/// watched tree that comes after them.
fn unwatched_is_quiet() -> Result<String, String> {
    let dir = Path::new(UNWATCHED);
    fs::write(dir.join("f"), b"seed").map_err(|e| e.to_string())?;
    let mut pids = Vec::new();
    for op in ["write", "chmod", "setxattr", "truncate", "unlink"] {
        pids.push(testop(dir, &[op, "f"])?);
    }
    let sentinel = testop(Path::new(WATCHED), &["mkdir", "sentinel"])?;
    wait_for(|e| e["process"]["pid"] == sentinel)
        .ok_or_else(|| format!("no event for the sentinel mkdir (pid {sentinel})"))?;
    let leaked: Vec<String> = events()
        .iter()
        .filter(|e| pids.iter().any(|p| e["process"]["pid"] == *p))
        .map(|e| format!("{}:{}", e["action"], e["path"]))
        .collect();
    if leaked.is_empty() {
        Ok(format!("ok {} operations, no events", pids.len()))
    } else {
        Err(format!(
            "events outside the watched tree: {}",
            leaked.join(",")
        ))
    }
}

/// `vigil-vmcheck bench`: the overhead benchmark's churn (create, write, close,
/// rename, unlink) in the watched tree, without a sensor and with vigil on each
/// tier (coalescing on, as deployed). One line per tier:
///   VMBENCH <kernel> <tier> <baseline ms> <with vigil ms> <ratio>
/// The baseline is measured right before each tier. Under TCG with one vCPU
/// the times are slow and the sensor's user space shares the CPU with the
/// workload: only the ratios between tiers compare.
fn bench(kernel: &str) -> i32 {
    const CHURN: &str = "/vigil-churn";
    const N: &str = "2000";
    const RUNS: usize = 5;
    let dir = PathBuf::from(WATCHED).join("bench");
    let _ = fs::create_dir_all(&dir);
    let median = || -> Result<f64, String> {
        let mut ms = Vec::new();
        for _ in 0..RUNS {
            let out = Command::new(CHURN)
                .arg(&dir)
                .arg(N)
                .output()
                .map_err(|e| format!("{CHURN}: {e}"))?;
            let ns: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|e| format!("{CHURN} output: {e}"))?;
            ms.push(ns / 1e6);
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms[RUNS / 2])
    };
    let mut rc = 0;
    for tier in ["fentry", "kprobe", "tracepoint"] {
        let result = (|| -> Result<(f64, f64, String), String> {
            let base = median()?;
            let (sensor, start) = start_sensor(tier, false)?;
            let tiers: Vec<String> = start["tiers"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, t)| *t != tier)
                .map(|(g, t)| format!("{g}={}", t.as_str().unwrap_or("?")))
                .collect();
            let with = median()?;
            drop(sensor);
            Ok((base, with, tiers.join(",")))
        })();
        match result {
            Ok((base, with, other)) => {
                println!(
                    "VMBENCH {kernel} {tier} {base:.1} {with:.1} {:.2}",
                    with / base
                );
                if !other.is_empty() {
                    println!("VMINFO bench {tier}: groups on another tier: {other}");
                }
            }
            Err(e) => {
                println!("VMINFO bench {tier} failed: {e}");
                rc = 1;
            }
        }
    }
    rc
}
