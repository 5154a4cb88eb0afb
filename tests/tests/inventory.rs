//! Software inventory and package-owned changes (docs/inventory.md): a real
//! .deb built with dpkg-deb, installed, upgraded and removed with the real
//! dpkg under a real sensor; and the daemon watcher's availability.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use vigil_tests::{vigil_bin, Sensor};

const PKG: &str = "vigil-test-pkg";

/// Purges the test package and removes its directory, even when the test
/// fails half-way.
struct Cleanup {
    opt: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PKG]).output();
        let _ = std::fs::remove_dir_all(&self.opt);
    }
}

/// Builds `PKG` at `version`, installing `tool` (with `content`) under `opt`.
fn build_deb(work: &Path, opt: &Path, version: &str, content: &str) -> PathBuf {
    let root = work.join(format!("root-{version}"));
    let bin = root.join(opt.strip_prefix("/").unwrap()).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {PKG}\nVersion: {version}\nArchitecture: all\nMaintainer: Vigil tests <tests@vigil.invalid>\nDescription: Vigil inventory test package\n"
        ),
    )
    .unwrap();
    std::fs::write(bin.join("tool"), content).unwrap();
    let deb = work.join(format!("{PKG}_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb (package dpkg) is needed");
    assert!(out.status.success(), "dpkg-deb: {out:?}");
    deb
}

/// Runs dpkg with `args`; returns its pid.
fn dpkg(args: &[&str]) -> u32 {
    let child = Command::new("dpkg")
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dpkg {args:?}: {out:?}");
    pid
}

fn package_event(s: &Sensor, action: &str) -> Value {
    s.wait_for(|e| e["kind"] == "package" && e["action"] == action && e["package"]["name"] == PKG)
}

fn has_rule(e: &Value, id: &str) -> bool {
    e["rules"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x == id))
}

#[test]
fn dpkg_install_upgrade_remove_are_package_events_and_payload_changes_are_labelled() {
    vigil_tests::require_root();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let opt = PathBuf::from(format!("/opt/vigil-test-{}", std::process::id()));
    let _cleanup = Cleanup { opt: opt.clone() };
    let _ = Command::new("dpkg").args(["--purge", PKG]).output();
    std::fs::create_dir_all(&opt).unwrap();
    let tool = opt.join("bin/tool");
    let v1 = build_deb(work.path(), &opt, "1.0", "#!/bin/sh\necho one\n");
    let v2 = build_deb(work.path(), &opt, "2.0", "#!/bin/sh\necho two\n");

    // A local rule rates the test directory high, so that the package
    // operation's cap to low shows.
    let rules = work.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\nid = \"test-opt\"\nseverity = \"high\"\nalert = true\n[rule.match]\npath = [\"{}/**\"]\n",
            opt.display()
        ),
    )
    .unwrap();
    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "rules = [{rules:?}]\n[[watch]]\npath = \"/var/lib/dpkg/status\"\n[[watch]]\npath = {opt:?}\n"
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
    let rec = s.wait_for(|e| e["action"] == "inventory_recorded");
    assert!(rec["packages"].as_u64().unwrap() > 10, "{rec:#}");

    // Install.
    let pid = dpkg(&["-i", v1.to_str().unwrap()]);
    let inst = package_event(&s, "package_installed");
    assert_eq!(inst["package"]["version"], "1.0", "{inst:#}");
    assert_eq!(inst["package"]["architecture"], "all", "{inst:#}");
    assert_eq!(inst["package"]["status"], "installed", "{inst:#}");
    assert!(
        inst["package"].get("previous_version").is_none(),
        "{inst:#}"
    );
    assert_eq!(inst["process"]["pid"], pid, "{inst:#}");
    assert_eq!(inst["process"]["exe"], "/usr/bin/dpkg", "{inst:#}");
    assert_eq!(inst["process"]["uid"], 0, "{inst:#}");
    assert_eq!(inst["path"], "/var/lib/dpkg/status", "{inst:#}");
    assert!(has_rule(&inst, "package-installed"), "{inst:#}");
    // It follows the status file's own event, which it names.
    let db_seq = inst["details"]["db_seq"].as_u64().unwrap();
    let db_ev = s.wait_for(|e| e["seq"] == db_seq);
    // dpkg writes status-new and renames it over status.
    assert!(
        db_ev["path"] == "/var/lib/dpkg/status" || db_ev["target_path"] == "/var/lib/dpkg/status",
        "{db_ev:#}"
    );
    assert_eq!(db_ev["process"]["pid"], pid, "{db_ev:#}");

    // The payload, written by dpkg: labelled, capped at low, no alert.
    let tool_s = tool.to_str().unwrap().to_string();
    let payload = |s: &Sensor, dpkg_pid: u32| {
        s.wait_for(|e| {
            e["kind"] == "file"
                && (e["path"] == tool_s.as_str() || e["target_path"] == tool_s.as_str())
                && e["process"]["pid"] == dpkg_pid
        })
    };
    let f = payload(&s, pid);
    assert_eq!(f["package"]["managed"], true, "{f:#}");
    assert_eq!(f["package"]["name"], PKG, "{f:#}");
    assert_eq!(f["package"]["manager_pid"], pid, "{f:#}");
    // The version comes from the package being unpacked (dpkg's tmp.ci),
    // when it is still there as the event is labelled.
    assert!(
        f["package"]["version"] == "1.0" || f["package"]["version"].is_null(),
        "{f:#}"
    );
    assert_eq!(f["severity"], "low", "{f:#}");
    assert!(f.get("alert").is_none(), "{f:#}");
    assert!(
        has_rule(&f, "test-opt") && has_rule(&f, "package-managed-change"),
        "{f:#}"
    );
    assert!(f["details"].get("package_checksum").is_none(), "{f:#}");

    // Upgrade.
    let pid2 = dpkg(&["-i", v2.to_str().unwrap()]);
    let up = package_event(&s, "package_upgraded");
    assert_eq!(up["package"]["version"], "2.0", "{up:#}");
    assert_eq!(up["package"]["previous_version"], "1.0", "{up:#}");
    assert_eq!(up["process"]["pid"], pid2, "{up:#}");
    let f2 = payload(&s, pid2);
    assert_eq!(f2["package"]["managed"], true, "{f2:#}");
    assert!(
        f2["package"]["version"] == "2.0" || f2["package"]["version"].is_null(),
        "{f2:#}"
    );
    assert_eq!(f2["severity"], "low", "{f2:#}");

    // A hand edit of the packaged file: not labelled managed, the checksum
    // check says mismatch, the severity is not lowered.
    let editor = Command::new("sh")
        .arg("-c")
        .arg(format!("echo 'echo tampered' >> {tool_s}"))
        .spawn()
        .unwrap();
    let editor_pid = editor.id();
    assert!(editor.wait_with_output().unwrap().status.success());
    let m = s.wait_for(|e| {
        e["kind"] == "file" && e["path"] == tool_s.as_str() && e["process"]["pid"] == editor_pid
    });
    assert_eq!(m["package"]["managed"], false, "{m:#}");
    assert_eq!(m["package"]["name"], PKG, "{m:#}");
    assert_eq!(m["package"]["version"], "2.0", "{m:#}");
    assert_eq!(m["details"]["package_checksum"], "mismatch", "{m:#}");
    assert_eq!(m["severity"], "high", "{m:#}");
    assert_eq!(m["alert"], true, "{m:#}");
    assert!(has_rule(&m, "packaged-file-mismatch"), "{m:#}");
    assert!(!has_rule(&m, "package-managed-change"), "{m:#}");
    // The same verdict from the command line.
    let out = Command::new(vigil_bin())
        .args(["package", "verify", &tool_s])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(text.trim(), format!("mismatch\t{PKG}\t{tool_s}"), "{out:?}");

    // Removal.
    let pid3 = dpkg(&["-r", PKG]);
    let rm = package_event(&s, "package_removed");
    assert_eq!(rm["package"]["previous_version"], "2.0", "{rm:#}");
    assert!(rm["package"].get("version").is_none(), "{rm:#}");
    assert_eq!(rm["process"]["pid"], pid3, "{rm:#}");
    assert!(has_rule(&rm, "package-removed"), "{rm:#}");
    let del = s.wait_for(|e| {
        e["kind"] == "file" && e["action"] == "deleted" && e["path"] == tool_s.as_str()
    });
    assert_eq!(del["package"]["managed"], true, "{del:#}");
    assert_eq!(del["package"]["name"], PKG, "{del:#}");
    assert_eq!(del["severity"], "low", "{del:#}");
    assert!(s.stop().success());

    // Installed while the sensor was down: found at the next start, unattributed.
    dpkg(&["-i", v1.to_str().unwrap()]);
    let s2 = Sensor::start(&args, None);
    let late = package_event(&s2, "package_installed");
    assert_eq!(late["package"]["version"], "1.0", "{late:#}");
    assert!(late["process"].is_null(), "{late:#}");
    assert_eq!(late["details"]["unattributed"], true, "{late:#}");
    assert_eq!(late["source"]["tier"], "scan", "{late:#}");
    assert!(
        !s2.events()
            .iter()
            .any(|e| e["action"] == "inventory_recorded"),
        "the inventory is already in the store"
    );
    // And the store holds it.
    let conn = rusqlite::Connection::open(&db).unwrap();
    vigil_tests::eventually("the store holds the package's version", || {
        let v: Option<String> = conn
            .query_row(
                "SELECT version FROM packages WHERE manager = 'dpkg' AND name = ?1",
                [PKG],
                |r| r.get(0),
            )
            .ok();
        v.as_deref() == Some("1.0")
    });
}

#[test]
fn the_daemon_watcher_says_why_it_is_unavailable() {
    vigil_tests::require_root();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let s = Sensor::start(&["--watch", dir.path().to_str().unwrap()], None);
    // The default bus: the system bus.
    let ev = s.wait_for(|e| {
        e["action"] == "daemon_watch_unavailable" || e["action"] == "daemon_watch_started"
    });
    assert_eq!(ev["kind"], "sensor", "{ev:#}");
    assert_eq!(ev["watcher"], "systemd", "{ev:#}");
    assert_eq!(ev["bus"], "system", "{ev:#}");
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("systemd is running here: the watcher may start");
    } else {
        // This machine: PID 1 is not systemd. Not silence: the reason.
        assert_eq!(ev["action"], "daemon_watch_unavailable", "{ev:#}");
        assert!(has_rule(&ev, "daemon-watch-unavailable"), "{ev:#}");
        let msg = ev["message"].as_str().unwrap();
        let init = std::fs::read_to_string("/proc/1/comm").unwrap();
        assert!(msg.contains("systemd is not the init system"), "{msg}");
        assert!(msg.contains(init.trim()), "{msg}");
    }
    // After the start event (the watcher has a thread of its own).
    let evs = s.events();
    let start = evs.iter().position(|e| e["action"] == "start").unwrap();
    let at = evs
        .iter()
        .position(|e| e["action"] == ev["action"])
        .unwrap();
    assert!(at > start, "{evs:#?}");
}

const RPM_PKG: &str = "vigil-test-rpm";

/// Erases the test rpm from its database and removes its directory, even
/// when the test fails half-way.
struct RpmCleanup {
    db: PathBuf,
    opt: PathBuf,
}

impl Drop for RpmCleanup {
    fn drop(&mut self) {
        let _ = Command::new("rpm")
            .arg("--dbpath")
            .arg(&self.db)
            .args(["-e", "--nodeps", RPM_PKG])
            .output();
        let _ = std::fs::remove_dir_all(&self.opt);
    }
}

/// Runs rpm on the database `db` with `args`; returns its pid.
fn rpm(db: &Path, args: &[&str]) -> u32 {
    let child = Command::new("rpm")
        .arg("--dbpath")
        .arg(db)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rpm (package rpm) is needed");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "rpm {args:?}: {out:?}");
    pid
}

#[test]
fn rpm_install_and_erase_are_package_events_attributed_to_rpm() {
    vigil_tests::require_root();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    // A database of its own (rpm --dbpath): the host's is not touched.
    let db = work.path().join("rpmdb");
    std::fs::create_dir(&db).unwrap();
    let opt = PathBuf::from(format!("/opt/vigil-test-rpm-{}", std::process::id()));
    let _cleanup = RpmCleanup {
        db: db.clone(),
        opt: opt.clone(),
    };
    rpm(&db, &["--initdb"]);
    // A tiny noarch rpm built here.
    let top = work.path().join("top");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = top.join("SPECS/t.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: {RPM_PKG}\nVersion: 1.0\nRelease: 1\nSummary: Vigil test\nLicense: MIT\nBuildArch: noarch\n\
             %description\nVigil inventory test package.\n\
             %install\nmkdir -p %{{buildroot}}{o}\necho hi > %{{buildroot}}{o}/f\n\
             %files\n{o}/f\n",
            o = opt.display()
        ),
    )
    .unwrap();
    let out = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("-bb")
        .arg(&spec)
        .output()
        .expect("rpmbuild (package rpm) is needed");
    assert!(out.status.success(), "rpmbuild: {out:?}");
    let built = top.join(format!("RPMS/noarch/{RPM_PKG}-1.0-1.noarch.rpm"));
    assert!(built.exists(), "{built:?}");

    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("[inventory]\nrpm_dbpath = {db:?}\n[[watch]]\npath = {db:?}\n"),
    )
    .unwrap();
    let s = Sensor::start(&["--config", policy.to_str().unwrap()], None);
    let rec = s.wait_for(|e| {
        e["action"] == "inventory_recorded"
            && e["message"].as_str().is_some_and(|m| m.contains("rpm"))
    });
    assert_eq!(rec["packages"], 0, "{rec:#}");

    let pid = rpm(&db, &["-i", "--nodeps", built.to_str().unwrap()]);
    let rpm_event = |action: &str| {
        s.wait_for(|e| {
            e["kind"] == "package" && e["action"] == action && e["package"]["name"] == RPM_PKG
        })
    };
    let inst = rpm_event("package_installed");
    assert_eq!(inst["package"]["manager"], "rpm", "{inst:#}");
    assert_eq!(inst["package"]["version"], "1.0-1", "{inst:#}");
    assert_eq!(inst["package"]["architecture"], "noarch", "{inst:#}");
    assert_eq!(inst["process"]["pid"], pid, "{inst:#}");
    assert!(
        inst["process"]["exe"].as_str().unwrap().ends_with("/rpm"),
        "{inst:#}"
    );
    assert_eq!(inst["path"], db.to_str().unwrap(), "{inst:#}");
    assert!(has_rule(&inst, "package-installed"), "{inst:#}");

    let pid = rpm(&db, &["-e", RPM_PKG]);
    let rm = rpm_event("package_removed");
    assert_eq!(rm["package"]["previous_version"], "1.0-1", "{rm:#}");
    assert_eq!(rm["process"]["pid"], pid, "{rm:#}");
    assert!(has_rule(&rm, "package-removed"), "{rm:#}");
}
