//! systemd units as service events (docs/inventory.md), against a REAL
//! systemd: this machine's PID 1 is not systemd, so the test runs a systemd
//! user manager (`systemd --user`) on a private D-Bus session bus
//! (`dbus-daemon --session`), and points the sensor at that bus
//! (`[inventory] systemd_bus`). Test units are started, stopped, enabled,
//! disabled, masked and made to fail with the real `systemctl --user`.
//!
//! `systemd --user` refuses to run unless `/run/systemd/system` exists
//! ("not booted with systemd"), and `systemctl` edits unit files itself,
//! without the manager, under the same condition. So both run in a private
//! mount namespace where a tmpfs over `/run/systemd` holds that directory;
//! the host's `/run` is untouched.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil_tests::Sensor;

/// A systemd user manager on its own session bus.
struct UserManager {
    dir: tempfile::TempDir,
    dbus: Child,
    systemd: Child,
}

impl UserManager {
    fn bus(&self) -> String {
        format!("unix:path={}", self.dir.path().join("run/bus").display())
    }

    fn env(&self, c: &mut Command) {
        c.env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("HOME", self.dir.path().join("home"))
            .env("DBUS_SESSION_BUS_ADDRESS", self.bus());
    }

    fn start() -> UserManager {
        let dir = tempfile::Builder::new()
            .prefix("vigil-systemd-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let run = dir.path().join("run");
        let units = dir.path().join("home/.config/systemd/user");
        // A unit in a lower-priority directory, so that masking it (a link
        // to /dev/null in ~/.config) is possible.
        let data_units = dir.path().join("home/.local/share/systemd/user");
        for d in [&run, &units, &data_units] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        std::fs::write(
            units.join("vigil-test-sleep.service"),
            "[Service]\nExecStart=/bin/sleep 300\n[Install]\nWantedBy=default.target\n",
        )
        .unwrap();
        std::fs::write(
            units.join("vigil-test-fail.service"),
            "[Service]\nExecStart=/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            data_units.join("vigil-test-mask.service"),
            "[Service]\nExecStart=/bin/sleep 300\n",
        )
        .unwrap();
        let bus = format!("unix:path={}", run.join("bus").display());
        let dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--address", &bus])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus) is needed");
        let script = "if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; \
                      else mount -t tmpfs tmpfs /run; mkdir /run/systemd; fi && \
                      mkdir /run/systemd/system && exec /usr/lib/systemd/systemd --user";
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("systemd.log")).unwrap());
        let mut m = UserManager {
            dbus,
            systemd: Command::new("true").spawn().unwrap(),
            dir,
        };
        m.env(&mut c);
        m.systemd = c.spawn().expect("unshare (util-linux) is needed");
        // systemd takes the name org.freedesktop.systemd1 once it is up.
        let start = Instant::now();
        loop {
            let out = Command::new("busctl")
                .args(["--address", &m.bus(), "list", "--acquired"])
                .output()
                .expect("busctl (package systemd) is needed");
            if String::from_utf8_lossy(&out.stdout).contains("org.freedesktop.systemd1") {
                break;
            }
            if let Ok(Some(status)) = m.systemd.try_wait() {
                panic!(
                    "systemd --user exited ({status}): {}",
                    std::fs::read_to_string(m.dir.path().join("systemd.log")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "systemd --user did not appear on its bus within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    /// `systemctl --user ARGS` in systemd's mount namespace; its pid (nsenter
    /// execs systemctl in place).
    fn systemctl(&self, args: &[&str]) -> u32 {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.systemd.id().to_string(),
            "-m",
            "systemctl",
            "--user",
        ])
        .args(args)
        .stdout(Stdio::null());
        self.env(&mut c);
        let child = c.stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "systemctl --user {args:?}: {out:?}");
        pid
    }

    fn unit_dir(&self) -> PathBuf {
        self.dir.path().join("home/.config/systemd/user")
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // systemd stops its units (the sleeps) when it exits.
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.systemd.id().to_string(),
            "-m",
            "systemctl",
            "--user",
            "stop",
        ])
        .args(["vigil-test-sleep.service", "vigil-test-mask.service"])
        .stderr(Stdio::null());
        self.env(&mut c);
        let _ = c.status();
        unsafe { libc::kill(self.systemd.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while matches!(self.systemd.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.systemd.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.systemd.wait();
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}

fn service(s: &Sensor, action: &str, unit: &str) -> Value {
    s.wait_for(|e| e["kind"] == "service" && e["action"] == action && e["service"]["unit"] == unit)
}

fn has_rule(e: &Value, id: &str) -> bool {
    e["rules"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x == id))
}

/// The event names the systemctl run `pid` as its process.
fn attributed_to(e: &Value, pid: u32, verb: &str) {
    assert_eq!(e["process"]["pid"], pid, "{e:#}");
    assert!(
        e["process"]["exe"]
            .as_str()
            .unwrap()
            .ends_with("/systemctl"),
        "{e:#}"
    );
    assert!(
        e["process"]["cmdline"].as_str().unwrap().contains(verb),
        "{e:#}"
    );
    assert_eq!(e["details"]["attribution"], "systemctl_exec", "{e:#}");
    assert_eq!(e["source"]["tier"], "dbus", "{e:#}");
}

#[test]
fn systemd_unit_changes_are_service_events_attributed_to_systemctl() {
    vigil_tests::require_root();
    let m = UserManager::start();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let watched = work.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[inventory]\nsystemd_bus = {:?}\n[[watch]]\npath = {watched:?}\n",
            m.bus()
        ),
    )
    .unwrap();
    let db = work.path().join("vigil.db");
    let args = [
        "--config",
        policy.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ];
    let mut s = Sensor::start(&args, None);
    let started = s.wait_for(|e| e["action"] == "daemon_watch_started");
    assert_eq!(started["watcher"], "systemd", "{started:#}");
    assert_eq!(started["bus"], m.bus(), "{started:#}");
    assert!(started["units"].as_u64().unwrap() >= 3, "{started:#}");
    assert!(
        !s.events()
            .iter()
            .any(|e| e["action"] == "daemon_watch_unavailable"),
        "{:#?}",
        s.events()
    );
    let sleep_file = m.unit_dir().join("vigil-test-sleep.service");

    let pid = m.systemctl(&["start", "vigil-test-sleep.service"]);
    let e = service(&s, "service_started", "vigil-test-sleep.service");
    let svc = &e["service"];
    assert_eq!(svc["previous_state"], "inactive", "{e:#}");
    assert_eq!(svc["state"], "active", "{e:#}");
    assert_eq!(svc["sub_state"], "running", "{e:#}");
    assert_eq!(svc["type"], "service", "{e:#}");
    assert_eq!(svc["manager"], "systemd", "{e:#}");
    assert_eq!(svc["file_state"], "disabled", "{e:#}");
    assert_eq!(svc["unit_file"], sleep_file.to_str().unwrap(), "{e:#}");
    attributed_to(&e, pid, "start");

    let pid = m.systemctl(&["enable", "vigil-test-sleep.service"]);
    let e = service(&s, "service_enabled", "vigil-test-sleep.service");
    assert_eq!(e["service"]["previous_file_state"], "disabled", "{e:#}");
    assert_eq!(e["service"]["file_state"], "enabled", "{e:#}");
    assert_eq!(e["source"]["syscall"], "UnitFilesChanged", "{e:#}");
    assert!(has_rule(&e, "service-enabled"), "{e:#}");
    attributed_to(&e, pid, "enable");

    let pid = m.systemctl(&["stop", "vigil-test-sleep"]);
    let e = service(&s, "service_stopped", "vigil-test-sleep.service");
    assert_eq!(e["service"]["previous_state"], "active", "{e:#}");
    assert_eq!(e["service"]["previous_sub_state"], "running", "{e:#}");
    assert_eq!(e["service"]["state"], "inactive", "{e:#}");
    assert_eq!(e["service"]["sub_state"], "dead", "{e:#}");
    assert!(has_rule(&e, "service-stopped"), "{e:#}");
    assert_eq!(e["severity"], "medium", "{e:#}");
    attributed_to(&e, pid, "stop");

    let pid = m.systemctl(&["disable", "vigil-test-sleep.service"]);
    let e = service(&s, "service_disabled", "vigil-test-sleep.service");
    assert_eq!(e["service"]["previous_file_state"], "enabled", "{e:#}");
    assert_eq!(e["service"]["file_state"], "disabled", "{e:#}");
    attributed_to(&e, pid, "disable");

    // ExecStart=/bin/false: the start succeeds, the service then fails.
    let pid = m.systemctl(&["start", "vigil-test-fail.service"]);
    let e = service(&s, "service_failed", "vigil-test-fail.service");
    assert_eq!(e["service"]["state"], "failed", "{e:#}");
    assert_eq!(e["service"]["result"], "exit-code", "{e:#}");
    assert!(has_rule(&e, "service-stopped"), "{e:#}");
    attributed_to(&e, pid, "start");

    let pid = m.systemctl(&["mask", "vigil-test-mask.service"]);
    let e = service(&s, "service_masked", "vigil-test-mask.service");
    assert_eq!(e["service"]["file_state"], "masked", "{e:#}");
    assert!(has_rule(&e, "service-disabled"), "{e:#}");
    attributed_to(&e, pid, "mask");

    // A change made without systemctl (the service's own exit) has no
    // process: never a guessed one.
    m.systemctl(&["start", "vigil-test-sleep.service"]);
    service(&s, "service_started", "vigil-test-sleep.service");
    let main_pid = {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &m.systemd.id().to_string(),
            "-m",
            "systemctl",
            "--user",
            "show",
        ])
        .args(["-p", "MainPID", "--value", "vigil-test-sleep.service"]);
        m.env(&mut c);
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    assert!(main_pid > 0);
    unsafe { libc::kill(main_pid, libc::SIGTERM) };
    let e = s.wait_for(|e| {
        e["kind"] == "service"
            && e["service"]["unit"] == "vigil-test-sleep.service"
            && e["service"]["previous_state"] == "active"
            && (e["action"] == "service_stopped" || e["action"] == "service_failed")
            && e["process"].is_null()
    });
    assert!(
        e.get("details")
            .is_none_or(|d| d.get("attribution").is_none()),
        "{e:#}"
    );

    // Every native line matches the JSON Schema (service events included).
    s.stop();

    // A change while the sensor is down is reported at the next start,
    // unattributed; the store holds the unit states.
    m.systemctl(&["start", "vigil-test-sleep.service"]);
    let s2 = Sensor::start(&args, None);
    let late = service(&s2, "service_started", "vigil-test-sleep.service");
    assert!(late["process"].is_null(), "{late:#}");
    assert_eq!(late["source"]["tier"], "scan", "{late:#}");
    assert_eq!(late["source"]["syscall"], "startup", "{late:#}");
    assert_eq!(late["details"]["unattributed"], true, "{late:#}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    vigil_tests::eventually("the store holds the unit's new state", || {
        let state: String = conn
            .query_row(
                "SELECT active_state FROM units WHERE unit = 'vigil-test-sleep.service'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        state == "active"
    });
    let masked: String = conn
        .query_row(
            "SELECT file_state FROM units WHERE unit = 'vigil-test-mask.service'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(masked, "masked");
    drop(s2);
    assert!(Path::new(&db).exists());
}

#[test]
fn the_daemon_watcher_says_why_when_there_is_no_systemd_on_the_bus() {
    vigil_tests::require_root();
    // A real bus without systemd on it.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let bus = format!("unix:path={}", dir.path().join("bus").display());
    let mut dbus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--address", &bus])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (package dbus) is needed");
    let start = Instant::now();
    while !dir.path().join("bus").exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "no bus socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[inventory]\nsystemd_bus = {bus:?}\n[[watch]]\npath = {:?}\n",
            dir.path()
        ),
    )
    .unwrap();
    let s = Sensor::start(&["--config", policy.to_str().unwrap()], None);
    let ev = s.wait_for(|e| e["action"] == "daemon_watch_unavailable");
    let _ = dbus.kill();
    let _ = dbus.wait();
    assert_eq!(ev["watcher"], "systemd", "{ev:#}");
    assert_eq!(ev["bus"], bus, "{ev:#}");
    let msg = ev["message"].as_str().unwrap();
    assert!(
        msg.contains("org.freedesktop.systemd1) is not on the"),
        "{msg}"
    );
    // And a bus that does not exist.
    let missing = format!("unix:path={}", dir.path().join("nobus").display());
    std::fs::write(
        &policy,
        format!(
            "[inventory]\nsystemd_bus = {missing:?}\n[[watch]]\npath = {:?}\n",
            dir.path()
        ),
    )
    .unwrap();
    let s = Sensor::start(&["--config", policy.to_str().unwrap()], None);
    let ev = s.wait_for(|e| e["action"] == "daemon_watch_unavailable");
    let msg = ev["message"].as_str().unwrap();
    assert!(msg.contains("cannot connect to the D-Bus"), "{msg}");
}
