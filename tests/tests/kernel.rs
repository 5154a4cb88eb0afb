//! Root integration tests on the real kernel: every hooked syscall, performed by
//! a child process with a known pid and executable in a watched directory, must
//! produce one event with the right action, path, pid, exe and uid; operations
//! elsewhere, and failed ones, must produce none.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use vigil_tests::Sensor;

const TESTOP: &str = env!("CARGO_BIN_EXE_vigil-testop");

struct Shared {
    sensor: Sensor,
    watched: PathBuf,
    unwatched: PathBuf,
}

/// One sensor for the whole test binary, started from a thread that never exits
/// (the child gets SIGTERM when this test process dies, via PDEATHSIG).
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let base = vigil_tests::kept_dir("vigil-kernel-");
            let watched = base.join("watched");
            let unwatched = base.join("unwatched");
            std::fs::create_dir_all(&watched).unwrap();
            std::fs::create_dir_all(&unwatched).unwrap();
            let sensor = Sensor::start(
                &["--raw", "--watch", watched.to_str().unwrap()],
                Some(base.join("events.ndjson")),
            );
            tx.send(Shared {
                sensor,
                watched,
                unwatched,
            })
            .unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("sensor started")
    })
}

/// A fresh directory for one test, inside the watched (or unwatched) tree.
fn test_dir(name: &str, watched: bool) -> PathBuf {
    let s = shared();
    let d = if watched {
        s.watched.join(name)
    } else {
        s.unwatched.join(name)
    };
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs vigil-testop in `cwd`; returns its pid and success.
fn run_op(cwd: &Path, args: &[&str]) -> (u32, bool) {
    vigil_tests::run_in(TESTOP, cwd, args)
}

fn testop_exe() -> String {
    std::fs::canonicalize(TESTOP).unwrap().display().to_string()
}

/// Waits for the event of `pid` with `action` and checks attribution.
fn expect(pid: u32, action: &str, path: &Path, syscall: &str) -> Value {
    let s = shared();
    let e = s
        .sensor
        .wait_for(|e| e["process"]["pid"] == pid && e["action"] == action);
    assert_eq!(e["path"], path.display().to_string(), "{e:#}");
    assert_eq!(e["source"]["syscall"], syscall, "{e:#}");
    assert_eq!(e["process"]["exe"], testop_exe(), "{e:#}");
    assert_eq!(e["process"]["uid"], 0, "{e:#}");
    assert_eq!(e["process"]["comm"], "vigil-testop", "{e:#}");
    assert_eq!(e["kind"], "file");
    e
}

/// `pid`'s events once everything it caused is in the output: runs a
/// sentinel op in the watched tree after it and waits for that.
fn settled_events_of(pid: u32) -> Vec<Value> {
    let d = test_dir("sentinels", true);
    let name = format!("sentinel-{pid}");
    let (spid, ok) = run_op(&d, &["mkdir", &name]);
    assert!(ok);
    shared().sensor.wait_for(|e| e["process"]["pid"] == spid);
    shared().sensor.events_of(pid)
}

/// Proves a negative: `pid` caused no event.
fn assert_no_events(pid: u32) {
    let evs = settled_events_of(pid);
    assert!(
        evs.is_empty(),
        "expected no events from pid {pid}, got {evs:#?}"
    );
}

/// `pid` wrote `f` in one session: one `modified`, then the marker of its
/// close(2), and nothing else.
fn assert_one_session(pid: u32, f: &Path) {
    expect(pid, "closed_after_write", f, "close");
    let evs = settled_events_of(pid);
    let actions: Vec<&str> = evs.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, vec!["modified", "closed_after_write"], "{evs:#?}");
}

fn touch(p: &Path) {
    std::fs::write(p, b"seed").unwrap();
}

/// A single-path operation on `file` (created first unless `create` is false).
fn single(test: &str, op: &str, action: &str, syscall: &str, seed: bool) -> Value {
    let d = test_dir(test, true);
    let f = d.join("target");
    if seed {
        touch(&f);
    }
    let (pid, ok) = run_op(&d, &[op, "target"]);
    assert!(ok, "vigil-testop {op} failed");
    let e = expect(pid, action, &f, syscall);
    if BY_FD.contains(&op) {
        assert_identity(&e, &f);
    }
    e
}

/// The operations whose target the kernel side reaches through an fd (the new
/// one, for an open), and so reports its inode; the others name it.
const BY_FD: &[&str] = &[
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "creat",
    "open-creat",
    "openat-creat",
    "openat-trunc",
    "openat2-creat",
    "fchmod",
    "fchown",
    "ftruncate",
    "fallocate",
    "futimens",
    "fsetxattr",
];

/// The event's inode number, device and type are those of `f`: the kernel
/// side reads them from `struct inode` at relocated offsets, and a wrong one
/// shows here.
fn assert_identity(e: &Value, f: &Path) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(f).unwrap();
    assert_eq!(e["file"]["inode"], m.ino(), "{e:#}");
    let dev = format!("{}:{}", libc::major(m.dev()), libc::minor(m.dev()));
    assert_eq!(e["file"]["dev"], dev, "{e:#}");
    let t = m.file_type();
    let kind = match () {
        _ if t.is_dir() => "dir",
        _ if t.is_fifo() => "fifo",
        _ if t.is_file() => "file",
        _ => "other",
    };
    assert_eq!(e["file"]["type"], kind, "{e:#}");
}

macro_rules! single_tests {
    ($($name:ident: $op:literal => $action:literal via $sys:literal, seeded $seed:literal;)*) => {$(
        #[test]
        fn $name() {
            single(stringify!($name), $op, $action, $sys, $seed);
        }
    )*};
}

single_tests! {
    write: "write" => "modified" via "write", seeded true;
    pwrite64: "pwrite64" => "modified" via "pwrite64", seeded true;
    writev: "writev" => "modified" via "writev", seeded true;
    pwritev: "pwritev" => "modified" via "pwritev", seeded true;
    pwritev2: "pwritev2" => "modified" via "pwritev2", seeded true;
    creat: "creat" => "created" via "creat", seeded false;
    open_creat: "open-creat" => "created" via "open", seeded false;
    openat_creat: "openat-creat" => "created" via "openat", seeded false;
    openat_trunc: "openat-trunc" => "truncated" via "openat", seeded true;
    openat2_creat: "openat2-creat" => "created" via "openat2", seeded false;
    unlink: "unlink" => "deleted" via "unlink", seeded true;
    unlinkat: "unlinkat" => "deleted" via "unlinkat", seeded true;
    mkdir: "mkdir" => "created" via "mkdir", seeded false;
    mkdirat: "mkdirat" => "created" via "mkdirat", seeded false;
    mknod: "mknod" => "created" via "mknod", seeded false;
    mknodat: "mknodat" => "created" via "mknodat", seeded false;
    chmod: "chmod" => "permissions_changed" via "chmod", seeded true;
    fchmod: "fchmod" => "permissions_changed" via "fchmod", seeded true;
    fchmodat: "fchmodat" => "permissions_changed" via "fchmodat", seeded true;
    chown: "chown" => "owner_changed" via "chown", seeded true;
    fchown: "fchown" => "owner_changed" via "fchown", seeded true;
    lchown: "lchown" => "owner_changed" via "lchown", seeded true;
    fchownat: "fchownat" => "owner_changed" via "fchownat", seeded true;
    truncate: "truncate" => "truncated" via "truncate", seeded true;
    ftruncate: "ftruncate" => "truncated" via "ftruncate", seeded true;
    fallocate: "fallocate" => "modified" via "fallocate", seeded true;
    utimensat: "utimensat" => "timestamps_changed" via "utimensat", seeded true;
    futimens: "futimens" => "timestamps_changed" via "utimensat", seeded true;
    utimes: "utimes" => "timestamps_changed" via "utimes", seeded true;
    utime: "utime" => "timestamps_changed" via "utime", seeded true;
    futimesat: "futimesat" => "timestamps_changed" via "futimesat", seeded true;
    setxattr: "setxattr" => "xattr_changed" via "setxattr", seeded true;
    lsetxattr: "lsetxattr" => "xattr_changed" via "lsetxattr", seeded true;
    fsetxattr: "fsetxattr" => "xattr_changed" via "fsetxattr", seeded true;
}

#[test]
fn fchmodat2() {
    // fchmodat2 exists from Linux 6.6; older kernels refuse it (ENOSYS), which
    // is fine: there is then nothing to watch.
    let d = test_dir("fchmodat2", true);
    touch(&d.join("target"));
    let (pid, ok) = run_op(&d, &["fchmodat2", "target"]);
    if ok {
        let e = expect(pid, "permissions_changed", &d.join("target"), "fchmodat2");
        assert_eq!(e["details"]["mode"], "606");
    }
}

#[test]
fn chmod_reports_new_mode_and_chown_the_owner() {
    let e = single("chmod_mode", "chmod", "permissions_changed", "chmod", true);
    assert_eq!(e["details"]["mode"], "600");
    let e = single("chown_owner", "fchownat", "owner_changed", "fchownat", true);
    assert_eq!(
        (e["details"]["uid"].as_u64(), e["details"]["gid"].as_u64()),
        (Some(4), Some(4))
    );
}

#[test]
fn removexattr_family() {
    for (i, (op, sys)) in [
        ("removexattr", "removexattr"),
        ("lremovexattr", "lremovexattr"),
        ("fremovexattr", "fremovexattr"),
    ]
    .into_iter()
    .enumerate()
    {
        let d = test_dir(&format!("removexattr{i}"), true);
        touch(&d.join("target"));
        assert!(run_op(&d, &["setxattr", "target"]).1);
        let (pid, ok) = run_op(&d, &[op, "target"]);
        assert!(ok);
        expect(pid, "xattr_removed", &d.join("target"), sys);
    }
}

#[test]
fn rmdir_and_unlinkat_removedir() {
    for (i, (op, sys)) in [("rmdir", "rmdir"), ("unlinkat-dir", "unlinkat")]
        .into_iter()
        .enumerate()
    {
        let d = test_dir(&format!("rmdir{i}"), true);
        std::fs::create_dir(d.join("target")).unwrap();
        let (pid, ok) = run_op(&d, &[op, "target"]);
        assert!(ok);
        let e = expect(pid, "deleted", &d.join("target"), sys);
        assert_eq!(e["file"]["type"], "dir");
    }
}

fn two_path(test: &str, op: &str, action: &str, syscall: &str, seed_new: bool) -> Value {
    let d = test_dir(test, true);
    touch(&d.join("old"));
    if seed_new {
        touch(&d.join("new"));
    }
    let (pid, ok) = run_op(&d, &[op, "old", "new"]);
    assert!(ok, "{op} failed");
    let e = expect(pid, action, &d.join("old"), syscall);
    assert_eq!(
        e["target_path"],
        d.join("new").display().to_string(),
        "{e:#}"
    );
    e
}

#[test]
fn rename_family() {
    two_path("rename", "rename", "renamed", "rename", false);
    two_path("renameat", "renameat", "renamed", "renameat", false);
    let e = two_path(
        "renameat2_noreplace",
        "renameat2-noreplace",
        "renamed",
        "renameat2",
        false,
    );
    assert_eq!(e["details"]["noreplace"], true);
    two_path(
        "renameat2_exchange",
        "renameat2-exchange",
        "exchanged",
        "renameat2",
        true,
    );
}

#[test]
fn link_family() {
    two_path("link", "link", "linked", "link", false);
    two_path("linkat", "linkat", "linked", "linkat", false);
}

#[test]
fn symlink_family() {
    for op in ["symlink", "symlinkat"] {
        let d = test_dir(op, true);
        let (pid, ok) = run_op(&d, &[op, "/etc/passwd", "link"]);
        assert!(ok);
        let e = expect(pid, "symlinked", &d.join("link"), op);
        assert_eq!(e["details"]["link_target"], "/etc/passwd");
        assert_eq!(e["file"]["type"], "symlink");
    }
}

#[test]
fn absolute_names_are_matched_on_the_path() {
    let d = test_dir("absolute", true);
    let f = d.join("target");
    touch(&f);
    let (pid, ok) = run_op(Path::new("/"), &["chmod", f.to_str().unwrap()]);
    assert!(ok);
    let e = expect(pid, "permissions_changed", &f, "chmod");
    assert_eq!(e["source"]["decided_by"], "path");
    // ... and a relative name with `..` that climbs into the watched tree.
    let u = test_dir("dotdot", false);
    let rel = "../../watched/absolute/target";
    let (pid, ok) = run_op(&u, &["utimes", rel]);
    assert!(ok);
    expect(pid, "timestamps_changed", &f, "utimes");
}

#[test]
fn rename_into_and_out_of_the_watched_tree() {
    let w = test_dir("move", true);
    let u = test_dir("move", false);
    touch(&u.join("incoming"));
    let (pid, ok) = run_op(
        Path::new("/"),
        &[
            "rename",
            u.join("incoming").to_str().unwrap(),
            w.join("arrived").to_str().unwrap(),
        ],
    );
    assert!(ok);
    let e = expect(pid, "renamed", &u.join("incoming"), "rename");
    assert_eq!(e["target_path"], w.join("arrived").display().to_string());
    assert_eq!(e["details"]["direction"], "in");

    let (pid, ok) = run_op(
        Path::new("/"),
        &[
            "rename",
            w.join("arrived").to_str().unwrap(),
            u.join("gone").to_str().unwrap(),
        ],
    );
    assert!(ok);
    let e = expect(pid, "renamed", &w.join("arrived"), "rename");
    assert_eq!(e["details"]["direction"], "out");

    // Same with relative names through directory fds (decided on inodes).
    touch(&u.join("second"));
    let (pid, ok) = run_op(
        &u,
        &["renameat", "second", w.join("second").to_str().unwrap()],
    );
    assert!(ok);
    expect(pid, "renamed", &u.join("second"), "renameat");
}

/// The in-kernel decision cache: a rename within one directory keeps every
/// cached answer (no inode changes ancestry); a move to another directory
/// must not leave a file, or the files under a moved directory, with the
/// answer of their old place.
#[test]
fn cached_decisions_follow_moves_between_directories() {
    let w = test_dir("cache", true);
    let u = test_dir("cache", false);
    std::fs::create_dir_all(u.join("dir")).unwrap();
    touch(&u.join("f"));
    touch(&u.join("dir/g"));
    // Writes decide (and cache) both files as unwatched. No sentinel until the
    // end: its mkdir would invalidate the cache and hide a stale answer.
    let mut quiet = Vec::new();
    for f in ["f", "dir/g"] {
        let (pid, ok) = run_op(&u, &["write", f]);
        assert!(ok);
        quiet.push(pid);
    }
    // Same directory: still unwatched.
    let (_, ok) = run_op(&u, &["rename", "f", "f2"]);
    assert!(ok);
    let (pid, ok) = run_op(&u, &["write", "f2"]);
    assert!(ok);
    quiet.push(pid);
    // Into the watched tree: the file, and a moved directory's file.
    for name in ["f2", "dir"] {
        let (_, ok) = run_op(
            Path::new("/"),
            &[
                "rename",
                u.join(name).to_str().unwrap(),
                w.join(name).to_str().unwrap(),
            ],
        );
        assert!(ok);
    }
    for f in ["f2", "dir/g"] {
        let (pid, ok) = run_op(&w, &["write", f]);
        assert!(ok);
        expect(pid, "modified", &w.join(f), "write");
    }
    // A rename inside the watched directory keeps it watched.
    let (_, ok) = run_op(&w, &["rename", "f2", "f3"]);
    assert!(ok);
    let (pid, ok) = run_op(&w, &["write", "f3"]);
    assert!(ok);
    expect(pid, "modified", &w.join("f3"), "write");
    for pid in quiet {
        assert_no_events(pid);
    }
}

#[test]
fn unwatched_directory_produces_nothing() {
    let u = test_dir("quiet", false);
    touch(&u.join("f"));
    for op in ["write", "chmod", "setxattr", "truncate", "unlink"] {
        let (pid, ok) = run_op(&u, &[op, "f"]);
        assert!(ok, "{op}");
        assert_no_events(pid);
    }
    let (pid, ok) = run_op(&u, &["openat-creat", "g"]);
    assert!(ok);
    assert_no_events(pid);
}

#[test]
fn failed_operations_produce_nothing() {
    let d = test_dir("failures", true);
    for op in [
        "unlink",
        "chmod",
        "rmdir",
        "truncate",
        "utimes",
        "removexattr",
    ] {
        let (pid, ok) = run_op(&d, &[op, "does-not-exist"]);
        assert!(!ok, "{op} should fail");
        assert_no_events(pid);
    }
    touch(&d.join("a"));
    touch(&d.join("b"));
    let (pid, ok) = run_op(&d, &["renameat2-noreplace", "a", "b"]);
    assert!(!ok, "RENAME_NOREPLACE onto an existing file fails");
    assert_no_events(pid);
}

#[test]
fn one_modified_event_per_open_for_a_gibibyte_of_writes() {
    let d = test_dir("gib", true);
    let f = d.join("big");
    touch(&f);
    let blocks = (1u64 << 30) / 4096;
    let (pid, ok) = run_op(&d, &["write-many", "big", &blocks.to_string()]);
    assert!(ok);
    assert_one_session(pid, &f);
    std::fs::remove_file(&f).unwrap();
}

#[test]
fn a_close_ends_the_session_while_a_forked_child_holds_the_file() {
    // Before, the marker waited for the writer's exit (the file's reference
    // count said "still open"), and the session stayed in the kernel's map.
    let d = test_dir("fork-close", true);
    let f = d.join("target");
    touch(&f);
    let (pid, ok) = run_op(&d, &["write-fork-close", "target"]);
    assert!(ok);
    assert_one_session(pid, &f);
}

#[test]
fn a_dup_keeps_the_session_open_until_the_last_fd_closes() {
    let d = test_dir("dup-close", true);
    let f = d.join("target");
    touch(&f);
    let (pid, ok) = run_op(&d, &["write-dup-close", "target"]);
    assert!(ok);
    assert_one_session(pid, &f);
}

/// The close of a session is sent as a short marker when no rename happened
/// since the session began; a rename of the file, or of a directory above it,
/// while it is open must still give the close the file's new path.
/// `vigil-testop write-rename-close FILE FROM TO` in `d`: the write names
/// `FILE`, the close `closed_as`.
fn assert_close_follows_rename(d: &Path, file: &str, from: &str, to: &str, closed_as: &str) {
    let (pid, ok) = run_op(d, &["write-rename-close", file, from, to]);
    assert!(ok);
    expect(pid, "modified", &d.join(file), "write");
    expect(pid, "closed_after_write", &d.join(closed_as), "close");
}

#[test]
fn a_file_renamed_while_open_is_closed_under_its_new_name() {
    let d = test_dir("rename-open", true);
    touch(&d.join("target"));
    assert_close_follows_rename(&d, "target", "target", "moved", "moved");
}

#[test]
fn a_directory_renamed_above_an_open_file_moves_its_close() {
    // A rename within one directory keeps the kernel's cached decisions;
    // the path of everything below the renamed directory still changes.
    let d = test_dir("rename-open-dir", true);
    std::fs::create_dir(d.join("sub")).unwrap();
    touch(&d.join("sub/target"));
    assert_close_follows_rename(&d, "sub/target", "sub", "sub2", "sub2/target");
}

#[test]
fn two_opens_of_one_file_are_two_sessions_with_a_close_each() {
    let d = test_dir("two-opens", true);
    let f = d.join("target");
    touch(&f);
    let (pid, ok) = run_op(&d, &["write-twice-close", "target"]);
    assert!(ok);
    expect(pid, "closed_after_write", &f, "close");
    let evs = settled_events_of(pid);
    let actions: Vec<&str> = evs.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "modified",
            "modified",
            "closed_after_write",
            "closed_after_write"
        ],
        "{evs:#?}"
    );
    assert!(
        evs.iter().all(|e| e["path"] == f.display().to_string()),
        "{evs:#?}"
    );
}

#[test]
fn a_process_that_exits_right_after_writing_is_attributed() {
    // vigil-testop exits as soon as its one write returns, without closing.
    let d = test_dir("exit", true);
    touch(&d.join("target"));
    let (pid, ok) = run_op(&d, &["write", "target"]);
    assert!(ok);
    let e = expect(pid, "modified", &d.join("target"), "write");
    assert!(
        e["process"]["cmdline"]
            .as_str()
            .unwrap()
            .ends_with("vigil-testop write target"),
        "{e:#}"
    );
    // The file was still open at exit: the marker comes from the exit.
    expect(pid, "closed_after_write", &d.join("target"), "exit");
}

#[test]
fn parent_and_ancestry_are_reported() {
    let d = test_dir("parent", true);
    touch(&d.join("target"));
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {TESTOP} chmod target"))
        .current_dir(&d)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let e = expect(pid, "permissions_changed", &d.join("target"), "chmod");
    assert_eq!(e["process"]["ppid"], std::process::id(), "{e:#}");
    assert_eq!(e["process"]["parent"]["pid"], std::process::id(), "{e:#}");
    assert!(!e["process"]["ancestry"].as_array().unwrap().is_empty());
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
}
