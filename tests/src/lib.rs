//! Harness for the root integration tests: starts the real `vigil` binary on a
//! temporary watched directory and reads its NDJSON output.
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for an event before failing a test.
pub const WAIT: Duration = Duration::from_secs(20);

/// How long to wait for the start event: loading and verifying ~100 eBPF
/// programs takes 4-5 s on an idle 2-core machine, several times that while
/// four tests start sensors at once.
pub const START_WAIT: Duration = Duration::from_secs(90);

/// The `vigil` binary next to this test executable (built by `cargo xtask test`),
/// or `$VIGIL_BIN`.
pub fn vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>  →  target/<profile>/vigil
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("vigil");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo xtask test does)",
        bin.display()
    );
    bin
}

pub fn require_root() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "these tests load eBPF programs and must run as root (sudo cargo xtask test)"
    );
}

/// A running sensor and the file it writes to.
pub struct Sensor {
    pub child: Child,
    pub output: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Removes the `/var/tmp/PREFIX*` directories that earlier runs left behind:
/// those of state shared through a static (statics are never dropped, so a
/// `TempDir` there is never removed). Old enough to belong to an earlier run,
/// not to one running now.
fn remove_stale_dirs(prefix: &str) {
    let stale = |e: &std::fs::DirEntry| {
        e.file_name().to_string_lossy().starts_with(prefix)
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3 * 3600))
    };
    for e in std::fs::read_dir("/var/tmp")
        .into_iter()
        .flatten()
        .flatten()
    {
        if stale(&e) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A new `/var/tmp/PREFIX*` directory that outlives this process, for state
/// a test binary shares through a static; earlier runs' are removed first.
pub fn kept_dir(prefix: &str) -> PathBuf {
    remove_stale_dirs(prefix);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .expect("tempdir")
        .keep()
}

impl Sensor {
    /// Starts `vigil run` with `args` (plus `--output`) and waits for its start event.
    pub fn start(args: &[&str], output: Option<PathBuf>) -> Sensor {
        require_root();
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| remove_stale_dirs("vigil-it-"));
        let dir = tempfile::Builder::new()
            .prefix("vigil-it-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let output = output.unwrap_or_else(|| dir.path().join("events.ndjson"));
        let mut cmd = Command::new(vigil_bin());
        cmd.arg("run").args(args).arg("--output").arg(&output);
        // Each sensor journals into a store of its own unless the test names one.
        if !args.contains(&"--db") {
            cmd.arg("--db").arg(dir.path().join("vigil.db"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        // The sensor dies with the thread that started it (tests that share one
        // sensor start it from a thread that lives as long as the test process).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn vigil");
        let mut s = Sensor { child, output, dir };
        let start = Instant::now();
        while !s
            .events()
            .iter()
            .any(|e| e["kind"] == "sensor" && e["action"] == "start")
        {
            // A sensor that cannot start fails the test now, not after a timeout per test.
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("vigil {args:?} exited before its start event: {status}");
            }
            assert!(
                start.elapsed() < START_WAIT,
                "no start event within {START_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Every complete line written so far (a line still being written, without
    /// its newline, is left for the next call).
    pub fn events(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(&self.output) else {
            return Vec::new();
        };
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => return Vec::new(),
        };
        complete
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}"))
            })
            .collect()
    }

    /// Waits until an event matches, and returns it.
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(WAIT, pred)
    }

    /// [`Sensor::wait_for`] with its own limit (e.g. [`START_WAIT`]).
    pub fn wait_for_within(&self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                start.elapsed() < limit,
                "no matching event within {limit:?}; events: {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Events of one process.
    pub fn events_of(&self, pid: u32) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["process"]["pid"] == pid)
            .collect()
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait vigil")
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Waits until `holds` (10 s at most, then panics naming `what`). For the
/// store: `vigil run` commits what it stores with its journal, up to ~150 ms
/// after the event's line is out (docs/baseline.md, `journal`).
pub fn eventually(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holds() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `bin` (the vigil-testop helper) with `args` in `cwd`; returns its pid
/// and whether it succeeded.
pub fn run_in(bin: &str, cwd: &Path, args: &[&str]) -> (u32, bool) {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn vigil-testop");
    let pid = child.id();
    (pid, child.wait().expect("wait vigil-testop").success())
}
