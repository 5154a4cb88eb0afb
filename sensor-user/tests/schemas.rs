//! The three output schemas against their definitions, offline:
//! - native `vigil/0.2` against docs/schema/vigil-event.schema.json;
//! - OCSF against an excerpt of OCSF 1.4.0 (tests/data/ocsf/, compiled from
//!   the ocsf-schema repository by extract.py): every key an attribute of its
//!   class or object, JSON types, enums and their captions, required
//!   attributes, profiles, type_uid;
//! - ECS against an excerpt of ecs_flat.yml 8.11.0 (tests/data/ecs/): every
//!   field an ECS field (or custom, under `vigil.`), JSON types, allowed values.
//!
//! Each checker also has a test that feeds it a wrong document, so a checker
//! that stopped checking would fail.
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use vigil::event::{
    Body, Event, FileChange, FileInfo, FileState, PackageChange, PackageInfo, PackageRef,
    ParentProcess, Process, Related, SensorInfo, ServiceChange, ServiceInfo, Severity, Source,
    SCHEMA,
};
use vigil::schema::{ecs, ocsf, render, Format};

// ---------------------------------------------------------------------------
// Sample events

const T0: &str = "2026-11-26T08:54:11.126817500Z";
const BLAKE3_OLD: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
const BLAKE3_NEW: &str = "d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24";
const SHA256_NEW: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn load(rel: &str) -> Value {
    let p = data(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn process() -> Process {
    Process {
        pid: 8959,
        tid: 8960,
        ppid: 8545,
        exe: Some("/usr/bin/vim.basic".into()),
        cmdline: Some("vim /etc/ssh/sshd_config".into()),
        comm: "vim".into(),
        uid: 1000,
        user: Some("alice".into()),
        gid: 1000,
        group: Some("alice".into()),
        euid: 0,
        egid: 0,
        login_uid: Some(1000),
        login_user: Some("alice".into()),
        session_id: Some(3),
        cgroup_id: 4242,
        mnt_ns: 4026531832,
        start_time: "2026-11-26T08:50:00.000000001Z".into(),
        container_id: None,
        parent: Some(ParentProcess {
            pid: 8545,
            exe: Some("/usr/bin/sudo".into()),
            comm: "sudo".into(),
            cmdline: Some("sudo vim /etc/ssh/sshd_config".into()),
        }),
        ancestry: vec![
            ParentProcess {
                pid: 8545,
                exe: Some("/usr/bin/sudo".into()),
                comm: "sudo".into(),
                cmdline: None,
            },
            ParentProcess {
                pid: 8000,
                exe: Some("/usr/bin/bash".into()),
                comm: "bash".into(),
                cmdline: None,
            },
        ],
    }
}

fn state(size: u64, mode: &str, blake3: &str, sha256: Option<&str>) -> FileState {
    let mut hashes = BTreeMap::from([("blake3".to_string(), blake3.to_string())]);
    if let Some(s) = sha256 {
        hashes.insert("sha256".into(), s.into());
    }
    FileState {
        file_type: "file",
        size,
        mode: mode.into(),
        uid: 0,
        gid: 0,
        mtime: "2026-11-26T08:54:11.100000000Z".into(),
        ctime: "2026-11-26T08:54:11.100000000Z".into(),
        inode: 1311,
        nlink: 1,
        link_target: None,
        xattrs: BTreeMap::from([(
            "security.selinux".to_string(),
            "73797374656d5f753a6f626a6563745f723a6574635f743a733000".to_string(),
        )]),
        owner: None,
        acl: None,
        hashes,
        hash_note: None,
    }
}

fn file_event(
    seq: u64,
    action: &'static str,
    path: &str,
    change: impl FnOnce(&mut FileChange),
) -> Event {
    let mut f = FileChange {
        path: path.into(),
        target_path: None,
        file: FileInfo {
            file_type: "file",
            inode: Some(1311),
            dev: Some("8:1".into()),
            path_truncated: false,
        },
        before: None,
        after: None,
        fields_changed: Vec::new(),
        diff: None,
        watch: Some("/etc"),
        package: None,
        process: process().into(),
        source: Source {
            tier: "tracepoint",
            syscall: "openat",
            decided_by: "inode",
        },
        details: Default::default(),
        related: Vec::new(),
    };
    change(&mut f);
    Event {
        seq,
        ..Event::new("file", action, T0, "web-1", Body::File(Box::new(f)))
    }
}

fn sensor_event(seq: u64, action: &'static str, info: SensorInfo) -> Event {
    Event {
        schema: SCHEMA,
        seq,
        time: T0.into(),
        host: "web-1",
        kind: "sensor",
        action,
        severity: Severity::Info,
        alert: false,
        rules: Vec::new(),
        mitre: Vec::new(),
        pci: Vec::new(),
        tags: Vec::new(),
        body: Body::Sensor(Box::new(info)),
    }
}

fn package_event(seq: u64, action: &'static str, package: PackageInfo, attributed: bool) -> Event {
    let mut details = vigil::event::Details::new();
    if attributed {
        details.insert("db_seq", json!(seq - 1));
    } else {
        details.insert("unattributed", json!(true));
    }
    Event {
        schema: SCHEMA,
        seq,
        time: T0.into(),
        host: "web-1",
        kind: "package",
        action,
        severity: Severity::Low,
        alert: false,
        rules: vec!["package-installed".into()],
        mitre: Vec::new(),
        pci: vec!["12.5.1".into()],
        tags: vec!["inventory".into()],
        body: Body::Package(Box::new(PackageChange {
            package,
            path: "/var/lib/dpkg/status".into(),
            process: attributed.then(|| {
                Process {
                    exe: Some("/usr/bin/dpkg".into()),
                    comm: "dpkg".into(),
                    ..process()
                }
                .into()
            }),
            source: Source {
                tier: if attributed { "tracepoint" } else { "scan" },
                syscall: "inventory",
                decided_by: "database",
            },
            details,
        })),
    }
}

/// A service event: `attributed` by a systemctl run, or found at start-up.
fn service_event(seq: u64, action: &'static str, service: ServiceInfo, attributed: bool) -> Event {
    let mut details = vigil::event::Details::new();
    if attributed {
        details.insert("attribution", json!("systemctl_exec"));
        details.insert("invocation_ms", json!(41));
    } else {
        details.insert("unattributed", json!(true));
    }
    Event {
        schema: SCHEMA,
        seq,
        time: T0.into(),
        host: "web-1",
        kind: "service",
        action,
        severity: Severity::High,
        alert: true,
        rules: vec!["security-service-stopped".into()],
        mitre: vec!["T1562.001".into()],
        pci: vec!["10.2.1".into()],
        tags: vec!["service".into()],
        body: Body::Service(Box::new(ServiceChange {
            service,
            process: attributed.then(|| {
                Process {
                    exe: Some("/usr/bin/systemctl".into()),
                    comm: "systemctl".into(),
                    cmdline: Some("systemctl stop ssh".into()),
                    ..process()
                }
                .into()
            }),
            source: Source {
                tier: if attributed { "dbus" } else { "scan" },
                syscall: if attributed {
                    "PropertiesChanged"
                } else {
                    "startup"
                },
                decided_by: "dbus",
            },
            details,
        })),
    }
}

fn ssh(state: &str, previous: &str) -> ServiceInfo {
    ServiceInfo {
        manager: "systemd",
        bus: "system".into(),
        unit: "ssh.service".into(),
        unit_type: "service".into(),
        state: state.into(),
        previous_state: Some(previous.into()),
        sub_state: "dead".into(),
        previous_sub_state: Some("running".into()),
        file_state: Some("enabled".into()),
        previous_file_state: Some("enabled".into()),
        unit_file: Some("/lib/systemd/system/ssh.service".into()),
        result: None,
        ..Default::default()
    }
}

fn samples() -> Vec<(&'static str, Event)> {
    let svc_stopped = service_event(30, "service_stopped", ssh("inactive", "active"), true);
    let svc_failed = service_event(
        31,
        "service_failed",
        ServiceInfo {
            sub_state: "failed".into(),
            result: Some("exit-code".into()),
            ..ssh("failed", "active")
        },
        true,
    );
    let svc_disabled = service_event(
        32,
        "service_disabled",
        ServiceInfo {
            file_state: Some("disabled".into()),
            ..ssh("inactive", "inactive")
        },
        false,
    );
    let watch_started = sensor_event(
        33,
        "daemon_watch_started",
        SensorInfo {
            watcher: Some("systemd"),
            bus: Some("system".into()),
            units: Some(212),
            message: Some("watching 212 units".into()),
            ..Default::default()
        },
    );
    let installed = package_event(
        21,
        "package_installed",
        PackageInfo {
            manager: "dpkg",
            name: "nginx".into(),
            version: Some("1.22.1-9".into()),
            architecture: Some("amd64".into()),
            status: Some("installed".into()),
            ..Default::default()
        },
        true,
    );
    let removed = package_event(
        22,
        "package_removed",
        PackageInfo {
            manager: "dpkg",
            name: "auditd".into(),
            previous_version: Some("1:3.0.9-1".into()),
            architecture: Some("amd64".into()),
            previous_status: Some("installed".into()),
            ..Default::default()
        },
        false,
    );
    let upgraded = package_event(
        23,
        "package_upgraded",
        PackageInfo {
            manager: "dpkg",
            name: "openssl".into(),
            version: Some("3.0.15-1~deb12u1".into()),
            previous_version: Some("3.0.14-1~deb12u2".into()),
            architecture: Some("amd64".into()),
            status: Some("installed".into()),
            previous_status: Some("installed".into()),
            ..Default::default()
        },
        true,
    );
    // Windows: an Uninstall entry installed by a user, a service hijacked.
    let win_installed = {
        let mut e = package_event(
            34,
            "package_installed",
            PackageInfo {
                manager: "windows-uninstall",
                name: "Monitoring Agent".into(),
                version: Some("7.1.0".into()),
                status: Some("installed".into()),
                publisher: Some("Example Corp".into()),
                install_date: Some("2026-11-26".into()),
                user_sid: Some("S-1-5-21-1-2-3-1001".into()),
                ..Default::default()
            },
            false,
        );
        if let Body::Package(p) = &mut e.body {
            p.path = r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\Uninstall\Agent".into();
        }
        e
    };
    let win_svc = service_event(
        35,
        "service_config_changed",
        ServiceInfo {
            manager: "windows-scm",
            bus: "windows-scm".into(),
            unit: "Spooler".into(),
            unit_type: "own_process".into(),
            state: "active".into(),
            previous_state: Some("active".into()),
            sub_state: "running".into(),
            previous_sub_state: Some("running".into()),
            file_state: Some("auto".into()),
            previous_file_state: Some("auto".into()),
            unit_file: Some(r"C:\Temp\evil.exe".into()),
            previous_unit_file: Some(r"C:\Windows\System32\spoolsv.exe".into()),
            display_name: Some("Print Spooler".into()),
            account: Some("LocalSystem".into()),
            ..Default::default()
        },
        false,
    );
    // Windows: a scan finds the owner and DACL of hosts changed.
    let win_acl = file_event(
        36,
        "permissions_changed",
        r"C:\Windows\System32\drivers\etc\hosts",
        |f| {
            f.source.tier = "scan";
            let mut before = state(824, "0x00000020", BLAKE3_OLD, None);
            before.xattrs.clear();
            before.owner = Some("S-1-5-32-544".into());
            before.acl = Some("D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)".into());
            let mut after = before.clone();
            after.owner = Some("S-1-5-21-1-2-3-1001".into());
            after.acl = Some("D:AI(A;;FA;;;WD)(A;ID;FA;;;SY)(A;ID;FA;;;BA)".into());
            f.before = Some(Box::new(before));
            f.after = Some(Box::new(after));
            f.fields_changed = vec!["owner".into(), "acl".into()];
        },
    );
    let packaged = file_event(24, "modified", "/usr/sbin/nginx", |f| {
        f.package = Some(Box::new(PackageRef {
            manager: "dpkg",
            name: Some("nginx".into()),
            version: Some("1.22.1-9".into()),
            architecture: Some("amd64".into()),
            managed: true,
            manager_pid: Some(4242),
            manager_exe: Some("/usr/bin/dpkg".into()),
        }));
        f.after = Some(Box::new(state(1200, "0755", BLAKE3_NEW, None)));
    });
    let mismatch = file_event(25, "modified", "/usr/bin/ls", |f| {
        f.package = Some(Box::new(PackageRef {
            manager: "dpkg",
            name: Some("coreutils".into()),
            version: Some("9.1-1".into()),
            architecture: Some("amd64".into()),
            managed: false,
            ..Default::default()
        }));
        f.details.insert("package_checksum", json!("mismatch"));
        f.after = Some(Box::new(state(1200, "0755", BLAKE3_NEW, None)));
    });
    let unavailable = sensor_event(
        26,
        "daemon_watch_unavailable",
        SensorInfo {
            watcher: Some("systemd"),
            message: Some("systemd is not the init system".into()),
            ..Default::default()
        },
    );
    let recorded = sensor_event(
        27,
        "inventory_recorded",
        SensorInfo {
            packages: Some(1432),
            ..Default::default()
        },
    );
    let created = file_event(2, "created", "/etc/cron.d/backup", |f| {
        f.source.syscall = "openat";
        f.after = Some(Box::new(state(120, "0644", BLAKE3_NEW, Some(SHA256_NEW))));
    });
    let modified = file_event(3, "modified", "/etc/ssh/sshd_config", |f| {
        f.source.syscall = "write";
        f.before = Some(Box::new(state(3200, "0644", BLAKE3_OLD, None)));
        let mut after = state(3264, "0644", BLAKE3_NEW, Some(SHA256_NEW));
        after.mtime = "2026-11-26T08:54:12.000000000Z".into();
        f.after = Some(Box::new(after));
        f.fields_changed = vec!["size".into(), "mtime".into(), "hashes".into()];
        f.diff =
            Some("--- a\n+++ b\n@@ -1 +1 @@\n-PermitRootLogin no\n+PermitRootLogin yes\n".into());
        f.related = vec![Related {
            action: "closed_after_write",
            path: "/etc/ssh/sshd_config".into(),
            target_path: None,
            time: "2026-11-26T08:54:12.000000500Z".into(),
            syscall: "close",
            details: Default::default(),
        }];
    });
    let renamed = file_event(4, "renamed", "/etc/.passwd.tmp", |f| {
        f.target_path = Some("/etc/passwd".into());
        f.source.syscall = "renameat2";
        f.after = Some(Box::new(state(1800, "0644", BLAKE3_NEW, None)));
        f.details.insert("direction", json!("within"));
        f.details.insert("noreplace", json!(true));
    });
    let deleted = file_event(5, "deleted", "/var/log/auth.log", |f| {
        f.source.syscall = "unlinkat";
        f.file = FileInfo {
            file_type: "unknown",
            ..Default::default()
        };
        f.before = Some(Box::new(state(99_000, "0640", BLAKE3_OLD, None)));
        std::sync::Arc::make_mut(&mut f.process).container_id = Some("ab".repeat(32));
        std::sync::Arc::make_mut(&mut f.process).parent = None;
        std::sync::Arc::make_mut(&mut f.process).ancestry.clear();
        std::sync::Arc::make_mut(&mut f.process).login_uid = None;
        std::sync::Arc::make_mut(&mut f.process).login_user = None;
        std::sync::Arc::make_mut(&mut f.process).session_id = None;
    });
    let chmod = file_event(6, "permissions_changed", "/usr/local/bin/helper", |f| {
        f.source.syscall = "fchmodat";
        f.before = Some(Box::new(state(5000, "0755", BLAKE3_OLD, None)));
        f.after = Some(Box::new(state(5000, "4755", BLAKE3_OLD, None)));
        f.fields_changed = vec!["mode".into(), "ctime".into()];
        f.details.insert("mode", json!("4755"));
    });
    let mut alert = file_event(7, "modified", "/root/.ssh/authorized_keys", |f| {
        f.source.syscall = "write";
        f.file.file_type = "file";
        f.after = Some(Box::new(state(400, "0600", BLAKE3_NEW, Some(SHA256_NEW))));
        std::sync::Arc::make_mut(&mut f.process).exe = None;
        std::sync::Arc::make_mut(&mut f.process).cmdline = None;
    });
    alert.severity = Severity::High;
    alert.alert = true;
    alert.rules = vec!["ssh-authorized-keys".into()];
    alert.mitre = vec!["T1098.004".into()];
    alert.pci = vec!["11.5.2".into(), "10.2.1".into()];
    alert.tags = vec!["persistence".into(), "ssh".into()];
    let symlink = file_event(8, "symlinked", "/etc/systemd/system/evil.service", |f| {
        f.source.syscall = "symlinkat";
        f.file.file_type = "symlink";
        f.file.inode = None;
        f.file.dev = None;
        f.details.insert("link_target", json!("/tmp/evil.service"));
    });
    let mut unknown = file_event(9, "changed", "/etc/hosts", |_| {});
    unknown.severity = Severity::Low;

    let start = sensor_event(
        1,
        "start",
        SensorInfo {
            version: "0.1.0",
            pid: Some(4242),
            watches: vec!["/etc".into(), "/root/.ssh".into()],
            hooks_attached: Some(31),
            hooks_failed: vec!["sys_enter_fchmodat2: not found".into()],
            ..Default::default()
        },
    );
    let gap = sensor_event(
        10,
        "gap",
        SensorInfo {
            lost: Some(17),
            lost_reason: Some("ring_buffer_full"),
            message: Some("the kernel dropped events".into()),
            ..Default::default()
        },
    );
    let error = sensor_event(
        11,
        "error",
        SensorInfo {
            message: Some("record too short: 12 bytes".into()),
            ..Default::default()
        },
    );
    let health = sensor_event(
        12,
        "health",
        SensorInfo {
            sink: Some("syslog".into()),
            message: Some("sink reconnected".into()),
            ..Default::default()
        },
    );
    let stop = sensor_event(
        13,
        "stop",
        SensorInfo {
            pid: Some(4242),
            reason: Some("SIGTERM".into()),
            events_emitted: Some(12),
            lost_total: Some(17),
            uptime_s: Some(3600),
            ..Default::default()
        },
    );
    let heartbeat = sensor_event(
        14,
        "heartbeat",
        SensorInfo {
            events_emitted: Some(13),
            lost_total: Some(17),
            uptime_s: Some(60),
            ..Default::default()
        },
    );
    vec![
        ("start", start),
        ("created", created),
        ("modified", modified),
        ("renamed", renamed),
        ("deleted", deleted),
        ("permissions_changed", chmod),
        ("alert", alert),
        ("symlinked", symlink),
        ("changed", unknown),
        ("gap", gap),
        ("error", error),
        ("health", health),
        ("stop", stop),
        ("heartbeat", heartbeat),
        ("package_installed", installed),
        ("package_removed", removed),
        ("package_upgraded", upgraded),
        ("package_managed_file", packaged),
        ("package_mismatch_file", mismatch),
        ("daemon_watch_unavailable", unavailable),
        ("inventory_recorded", recorded),
        ("service_stopped", svc_stopped),
        ("service_failed", svc_failed),
        ("service_disabled", svc_disabled),
        ("daemon_watch_started", watch_started),
        ("windows_package_installed", win_installed),
        ("windows_service_config_changed", win_svc),
        ("windows_acl_changed", win_acl),
    ]
}

fn sample(name: &str) -> Event {
    samples()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| e)
        .unwrap()
}

// ---------------------------------------------------------------------------
// Native

fn native_validator() -> jsonschema::Validator {
    let schema = load("../docs/schema/vigil-event.schema.json");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the JSON Schema compiles")
}

fn native_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn native_events_match_the_json_schema() {
    let v = native_validator();
    for (name, ev) in samples() {
        let doc: Value = serde_json::from_slice(&render(Format::Native, &ev)).unwrap();
        let errors = native_errors(&v, &doc);
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
    }
}

#[test]
fn json_schema_rejects_what_the_model_does_not_emit() {
    let v = native_validator();
    let good: Value = serde_json::to_value(sample("modified")).unwrap();
    assert!(native_errors(&v, &good).is_empty());
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        f(&mut d);
        assert!(!native_errors(&v, &d).is_empty(), "accepted: {d:#}");
    };
    bad(&|d| d["action"] = json!("chmodded"));
    bad(&|d| d["unexpected"] = json!(1));
    bad(&|d| d["severity"] = json!("severe"));
    bad(&|d| d["time"] = json!("yesterday"));
    bad(&|d| d["seq"] = json!(0));
    bad(&|d| d["after"]["mode"] = json!("644"));
    bad(&|d| d["after"]["hashes"]["blake3"] = json!("XYZ"));
    bad(&|d| d["process"]["pid"] = json!("8959"));
    bad(&|d| {
        d.as_object_mut()
            .unwrap()
            .remove("process")
            .map(drop)
            .unwrap()
    });
    bad(&|d| d["file"]["type"] = json!("regular"));
    bad(&|d| d["kind"] = json!("sensor"));
    bad(&|d| d["mitre"] = json!(["persistence"]));
}

#[test]
fn render_is_one_line_per_format() {
    for (name, ev) in samples() {
        let native = render(Format::Native, &ev);
        assert_eq!(native, serde_json::to_vec(&ev).unwrap(), "{name}");
        for f in [Format::Native, Format::Ocsf, Format::Ecs] {
            let out = render(f, &ev);
            assert!(!out.contains(&b'\n'), "{name} {f:?}");
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert!(v.as_object().is_some_and(|o| !o.is_empty()), "{name} {f:?}");
        }
    }
}

#[test]
fn sealed_events_carry_key_id_and_chain_in_every_format() {
    use vigil::integrity::{split_chain, Chain, HostKey};
    use vigil::schema::{native_canonical, render_sealed, Seal};
    let v = native_validator();
    let o = Ocsf::load();
    let e = Ecs::load();
    let key = HostKey::from_bytes([9; 32], std::path::Path::new("k"));
    let mut chain = Chain::new(key.clone());
    for (name, ev) in samples() {
        let canonical = native_canonical(&ev, key.id());
        let (line, hex) = chain.seal(&canonical);
        let seal = Seal {
            key_id: key.id(),
            chain: &hex,
        };
        assert_eq!(render_sealed(Format::Native, &ev, seal), line, "{name}");
        let doc: Value = serde_json::from_slice(&line).unwrap();
        let errors = native_errors(&v, &doc);
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
        assert_eq!(doc["key_id"], key.id());
        assert_eq!(doc["chain"], hex.as_str());
        // chain is the last member, so the canonical bytes are the line without it.
        assert_eq!(split_chain(&line).unwrap().0, canonical, "{name}");
        let ocsf_doc: Value =
            serde_json::from_slice(&render_sealed(Format::Ocsf, &ev, seal)).unwrap();
        let errs = o.check(&ocsf_doc);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{ocsf_doc:#}");
        assert_eq!(ocsf_doc["unmapped"]["chain"], hex.as_str());
        assert_eq!(ocsf_doc["unmapped"]["key_id"], key.id());
        assert_eq!(ocsf_doc["metadata"]["sequence"], ev.seq);
        let ecs_doc: Value =
            serde_json::from_slice(&render_sealed(Format::Ecs, &ev, seal)).unwrap();
        let errs = e.check(&ecs_doc);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{ecs_doc:#}");
        assert_eq!(ecs_doc["event"]["hash"], hex.as_str());
        assert_eq!(ecs_doc["vigil"]["key_id"], key.id());
        assert_eq!(ecs_doc["event"]["sequence"], ev.seq);
    }
    // A key_id without a chain (or the reverse) is not a valid event.
    let mut doc: Value = serde_json::to_value(sample("start")).unwrap();
    doc["key_id"] = json!(key.id());
    assert!(!native_errors(&v, &doc).is_empty());
}

// ---------------------------------------------------------------------------
// OCSF

struct Ocsf {
    schema: Value,
}

impl Ocsf {
    fn load() -> Self {
        Ocsf {
            schema: load("tests/data/ocsf/ocsf-1.4.0.json"),
        }
    }

    fn class_by_uid(&self, uid: u64) -> Option<(&str, &Value)> {
        self.schema["classes"]
            .as_object()?
            .iter()
            .find(|(_, c)| c["class_uid"] == uid)
            .map(|(n, c)| (n.as_str(), c))
    }

    /// The primitive a dictionary type reduces to (`timestamp_t` → `long_t`).
    fn base_type<'a>(&'a self, mut t: &'a str) -> &'a str {
        while let Some(parent) = self.schema["types"][t]["type"].as_str() {
            t = parent;
        }
        t
    }

    /// Every problem with `event`, as `path: message`.
    fn check(&self, event: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        let Some(uid) = event["class_uid"].as_u64() else {
            return vec!["class_uid: missing".into()];
        };
        let Some((_, class)) = self.class_by_uid(uid) else {
            return vec![format!("class_uid: {uid} not in the excerpt")];
        };
        let profiles: Vec<&str> = event["metadata"]["profiles"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (k, want) in [
            ("category_uid", &class["category_uid"]),
            ("category_name", &class["category_name"]),
            ("class_name", &class["caption"]),
        ] {
            if &event[k] != want {
                errs.push(format!("{k}: {} is not {want}", event[k]));
            }
        }
        let activity = event["activity_id"].as_u64().unwrap_or(u64::MAX);
        if event["type_uid"].as_u64() != Some(uid * 100 + activity) {
            errs.push(format!(
                "type_uid: {} is not class_uid*100+activity_id",
                event["type_uid"]
            ));
        }
        let activity_caption = &class["attributes"]["activity_id"]["enum"][activity.to_string()];
        let type_name = format!(
            "{}: {}",
            class["caption"].as_str().unwrap_or(""),
            activity_caption.as_str().unwrap_or("?")
        );
        if event["type_name"] != json!(type_name) {
            errs.push(format!(
                "type_name: {} is not {type_name:?}",
                event["type_name"]
            ));
        }
        self.check_object("", event, &class["attributes"], &profiles, &mut errs);
        errs
    }

    fn check_object(
        &self,
        at: &str,
        obj: &Value,
        attrs: &Value,
        profiles: &[&str],
        errs: &mut Vec<String>,
    ) {
        let Some(map) = obj.as_object() else {
            errs.push(format!("{at}: not an object"));
            return;
        };
        let Some(defs) = attrs.as_object() else {
            errs.push(format!("{at}: no attribute list"));
            return;
        };
        for (name, def) in defs {
            let required = def["requirement"] == "required";
            let profile_on = def["profile"]
                .as_str()
                .is_none_or(|p| profiles.contains(&p));
            if required && profile_on && !map.contains_key(name) {
                errs.push(format!("{at}.{name}: required attribute missing"));
            }
        }
        for (key, value) in map {
            let path = format!("{at}.{key}");
            let Some(def) = defs.get(key) else {
                errs.push(format!("{path}: not an OCSF attribute here"));
                continue;
            };
            if let Some(p) = def["profile"].as_str() {
                if !profiles.contains(&p) {
                    errs.push(format!(
                        "{path}: from profile {p}, not in metadata.profiles"
                    ));
                }
            }
            if def["is_array"] == true {
                match value.as_array() {
                    Some(items) => {
                        for (i, item) in items.iter().enumerate() {
                            self.check_value(&format!("{path}[{i}]"), item, def, profiles, errs);
                        }
                    }
                    None => errs.push(format!("{path}: should be an array")),
                }
            } else {
                self.check_value(&path, value, def, profiles, errs);
            }
            if let Some(e) = def["enum"].as_object() {
                let id = value.as_i64().map(|i| i.to_string()).unwrap_or_default();
                match e.get(&id) {
                    None => errs.push(format!("{path}: {value} not in the enum")),
                    Some(caption) => {
                        if let Some(sib) = def["sibling"].as_str() {
                            let s = &map.get(sib).cloned().unwrap_or(Value::Null);
                            if id != "99" && s != caption {
                                errs.push(format!(
                                    "{at}.{sib}: {s} is not the caption {caption} of {key}"
                                ));
                            }
                            if id == "99" && s.as_str().is_none_or(|s| s.is_empty()) {
                                errs.push(format!("{at}.{sib}: must name the Other value"));
                            }
                        }
                    }
                }
            }
        }
    }

    fn check_value(
        &self,
        path: &str,
        v: &Value,
        def: &Value,
        profiles: &[&str],
        errs: &mut Vec<String>,
    ) {
        let t = def["type"].as_str().unwrap_or("?");
        if t == "object_t" {
            let ot = def["object_type"].as_str().unwrap_or("?");
            let Some(o) = self.schema["objects"].get(ot) else {
                errs.push(format!(
                    "{path}: object {ot} is not in the excerpt (add it to extract.py)"
                ));
                return;
            };
            self.check_object(path, v, &o["attributes"], profiles, errs);
            let one_of = o["constraints"]["at_least_one"].as_array();
            if let (Some(map), Some(one_of)) = (v.as_object(), one_of) {
                if !one_of
                    .iter()
                    .any(|k| k.as_str().is_some_and(|k| map.contains_key(k)))
                {
                    errs.push(format!("{path}: {ot} needs at least one of {one_of:?}"));
                }
            }
            return;
        }
        let ok = match self.base_type(t) {
            "string_t" => v.is_string(),
            "integer_t" | "long_t" => v.is_i64() || v.is_u64(),
            "float_t" => v.is_number(),
            "boolean_t" => v.is_boolean(),
            "json_t" => true,
            "object" => v.is_object(),
            other => {
                errs.push(format!("{path}: unknown type {other}"));
                return;
            }
        };
        if !ok {
            errs.push(format!("{path}: {v} is not a {t}"));
        }
    }
}

fn ocsf_samples() -> Vec<(&'static str, Event, Value)> {
    samples()
        .into_iter()
        .map(|(n, e)| {
            let v = ocsf::map(&e);
            (n, e, v)
        })
        .collect()
}

#[test]
fn ocsf_events_match_the_ocsf_excerpt() {
    let o = Ocsf::load();
    assert_eq!(o.schema["ocsf_version"], ocsf::VERSION);
    for (name, _, v) in ocsf_samples() {
        let errs = o.check(&v);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{v:#}");
        assert_eq!(v["metadata"]["version"], ocsf::VERSION, "{name}");
    }
}

#[test]
fn ocsf_checker_rejects_wrong_documents() {
    let o = Ocsf::load();
    let good = ocsf::map(&sample("modified"));
    assert!(o.check(&good).is_empty());
    let bad = |f: &dyn Fn(&mut Value), what: &str| {
        let mut d = good.clone();
        f(&mut d);
        let errs = o.check(&d);
        assert!(errs.iter().any(|e| e.contains(what)), "{what}: {errs:#?}");
    };
    bad(
        &|d| d["file"]["mode"] = json!("0644"),
        ".file.mode: not an OCSF attribute",
    );
    bad(&|d| d["file"]["size"] = json!("3200"), ".file.size:");
    bad(
        &|d| d["activity_id"] = json!(42),
        ".activity_id: 42 not in the enum",
    );
    bad(&|d| d["activity_name"] = json!("Write"), "activity_name");
    bad(&|d| d["type_uid"] = json!(100104), "type_uid");
    bad(&|d| d["severity_id"] = json!(7), ".severity_id");
    bad(
        &|d| d["file"]["hashes"] = json!({"value": "ab"}),
        "should be an array",
    );
    bad(
        &|d| d["file"]["hashes"][0]["algorithm_id"] = json!(12),
        "algorithm_id",
    );
    bad(
        &|d| drop(d.as_object_mut().unwrap().remove("device")),
        ".device: required",
    );
    bad(
        &|d| drop(d["file"].as_object_mut().unwrap().remove("name")),
        ".file.name: required",
    );
    bad(
        &|d| d["metadata"]["profiles"] = json!(["host"]),
        "not in metadata.profiles",
    );
    bad(&|d| d["class_uid"] = json!(1002), "class_uid");
    bad(
        &|d| d["actor"]["process"] = json!({"tid": 1}),
        "at least one of",
    );
}

#[test]
fn ocsf_file_activity_content() {
    let all: BTreeMap<_, _> = ocsf_samples()
        .into_iter()
        .map(|(n, e, v)| (n, (e, v)))
        .collect();
    let (_, created) = &all["created"];
    assert_eq!(created["class_uid"], 1001);
    assert_eq!(created["type_uid"], 100101);
    assert_eq!(created["time"], 1_795_683_251_126i64);
    assert_eq!(created["file"]["path"], "/etc/cron.d/backup");
    assert_eq!(created["file"]["parent_folder"], "/etc/cron.d");
    assert_eq!(created["file"]["uid"], "1311");
    assert!(created.get("file_result").is_none());
    let hashes = created["file"]["hashes"].as_array().unwrap();
    assert!(
        hashes.contains(&json!({"algorithm_id": 99, "algorithm": "BLAKE3", "value": BLAKE3_NEW}))
    );
    assert!(
        hashes.contains(&json!({"algorithm_id": 3, "algorithm": "SHA-256", "value": SHA256_NEW}))
    );
    assert_eq!(created["actor"]["process"]["pid"], 8959);
    assert_eq!(
        created["actor"]["process"]["file"]["path"],
        "/usr/bin/vim.basic"
    );
    assert_eq!(
        created["actor"]["process"]["parent_process"]["name"],
        "sudo"
    );
    assert_eq!(created["actor"]["user"]["uid"], "1000");
    assert_eq!(created["device"]["hostname"], "web-1");
    assert_eq!(created["metadata"]["sequence"], 2);
    assert_eq!(created["metadata"]["event_code"], "created");
    assert_eq!(created["unmapped"]["after"]["mode"], "0644");
    assert_eq!(created["unmapped"]["process"]["login_uid"], 1000);

    let (_, modified) = &all["modified"];
    assert_eq!(modified["activity_id"], 3);
    assert_eq!(modified["file"]["hashes"][0]["value"], BLAKE3_OLD);
    assert_eq!(modified["file_result"]["path"], "/etc/ssh/sshd_config");
    assert_eq!(modified["file_result"]["size"], 3264);
    assert!(modified["file_diff"]
        .as_str()
        .unwrap()
        .contains("PermitRootLogin yes"));
    assert_eq!(
        modified["unmapped"]["fields_changed"],
        json!(["size", "mtime", "hashes"])
    );
    assert_eq!(
        modified["unmapped"]["related"][0]["action"],
        "closed_after_write"
    );

    let (_, renamed) = &all["renamed"];
    assert_eq!(renamed["activity_id"], 5);
    assert_eq!(renamed["file"]["path"], "/etc/.passwd.tmp");
    assert_eq!(renamed["file_result"]["path"], "/etc/passwd");
    assert_eq!(renamed["file_result"]["name"], "passwd");
    assert_eq!(renamed["unmapped"]["details"]["direction"], "within");

    let (_, deleted) = &all["deleted"];
    assert_eq!(deleted["activity_id"], 4);
    assert_eq!(deleted["file"]["size"], 99_000);
    assert!(deleted.get("file_result").is_none());
    assert_eq!(
        deleted["actor"]["process"]["container"]["uid"],
        "ab".repeat(32)
    );
    assert_eq!(
        deleted["actor"]["process"]["parent_process"],
        json!({"pid": 8545})
    );
    assert!(deleted["metadata"]["profiles"]
        .as_array()
        .unwrap()
        .contains(&json!("container")));

    let (_, chmod) = &all["permissions_changed"];
    assert_eq!(chmod["activity_id"], 7);
    assert_eq!(chmod["unmapped"]["before"]["mode"], "0755");
    assert_eq!(chmod["unmapped"]["after"]["mode"], "4755");

    let (_, alert) = &all["alert"];
    assert_eq!(alert["is_alert"], true);
    assert_eq!(alert["severity_id"], 4);
    assert_eq!(alert["severity"], "High");
    assert_eq!(alert["disposition"], "Alert");
    assert_eq!(
        alert["attacks"],
        json!([{"technique": {"uid": "T1098"}, "sub_technique": {"uid": "T1098.004"}}])
    );
    assert_eq!(alert["metadata"]["labels"], json!(["persistence", "ssh"]));
    assert_eq!(alert["unmapped"]["pci"], json!(["11.5.2", "10.2.1"]));
    assert_eq!(alert["unmapped"]["rules"], json!(["ssh-authorized-keys"]));
    assert!(alert["actor"]["process"].get("file").is_none());

    let (_, symlink) = &all["symlinked"];
    assert_eq!(symlink["file"]["type_id"], 7);
    assert_eq!(
        symlink["unmapped"]["details"]["link_target"],
        "/tmp/evil.service"
    );

    let (_, other) = &all["changed"];
    assert_eq!(other["activity_id"], 99);
    assert_eq!(other["activity_name"], "changed");
    assert_eq!(other["type_name"], "File System Activity: Other");
    assert_eq!(other["severity_id"], 2);
}

#[test]
fn ocsf_sensor_events() {
    let all: BTreeMap<_, _> = ocsf_samples().into_iter().map(|(n, _, v)| (n, v)).collect();
    assert_eq!(all["start"]["class_uid"], 6002);
    assert_eq!(all["start"]["type_uid"], 600203);
    assert_eq!(all["start"]["app"]["name"], "Vigil");
    assert_eq!(all["start"]["unmapped"]["hooks_attached"], 31);
    assert!(all["start"].get("is_alert").is_none());
    assert_eq!(all["start"]["metadata"]["profiles"], json!(["host"]));
    assert_eq!(all["stop"]["type_uid"], 600204);
    assert_eq!(all["gap"]["class_uid"], 6008);
    assert_eq!(all["gap"]["activity_id"], 1);
    assert_eq!(all["gap"]["message"], "the kernel dropped events");
    assert_eq!(all["gap"]["unmapped"]["lost"], 17);
    assert_eq!(all["gap"]["metadata"]["event_code"], "gap");
    assert_eq!(all["error"]["class_uid"], 6008);
    assert_eq!(all["health"]["activity_id"], 99);
    assert_eq!(all["health"]["activity_name"], "health");
    assert_eq!(all["health"]["unmapped"]["sink"], "syslog");
}

// ---------------------------------------------------------------------------
// ECS

struct Ecs {
    fields: Map<String, Value>,
}

/// ECS fields Vigil writes as arrays although ECS does not normalize them to
/// arrays (every Elasticsearch field accepts an array of its type).
const ECS_ARRAYS: [&str; 1] = ["rule.id"];

impl Ecs {
    fn load() -> Self {
        let v = load("tests/data/ecs/ecs-8.11.0.json");
        assert_eq!(v["ecs_version"], ecs::VERSION);
        Ecs {
            fields: v["fields"].as_object().unwrap().clone(),
        }
    }

    fn check(&self, doc: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        let mut leaves = Vec::new();
        flatten("", doc, &mut leaves);
        if doc.get("@timestamp").is_none() {
            errs.push("@timestamp: missing".into());
        }
        for (name, value) in &leaves {
            if name == "vigil" || name.starts_with("vigil.") {
                continue;
            }
            let Some(def) = self.fields.get(name) else {
                errs.push(format!("{name}: not an ECS field"));
                continue;
            };
            let is_array = def["normalize"]
                .as_array()
                .is_some_and(|n| n.contains(&json!("array")));
            let items: Vec<&Value> = match value {
                Value::Array(a) if is_array || ECS_ARRAYS.contains(&name.as_str()) => {
                    a.iter().collect()
                }
                Value::Array(_) => {
                    errs.push(format!("{name}: ECS does not expect an array"));
                    continue;
                }
                v if is_array => {
                    errs.push(format!("{name}: ECS expects an array, got {v}"));
                    continue;
                }
                v => vec![v],
            };
            let t = def["type"].as_str().unwrap_or("?");
            for v in items {
                let ok = match t {
                    "keyword" | "wildcard" | "match_only_text" | "text" | "constant_keyword"
                    | "ip" => v.is_string(),
                    "long" => v.is_i64() || v.is_u64(),
                    "float" | "scaled_float" | "double" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    // Elasticsearch's default date format
                    // (strict_date_optional_time) also takes a bare date.
                    "date" => v.as_str().is_some_and(|s| {
                        chrono::DateTime::parse_from_rfc3339(s).is_ok()
                            || chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
                    }),
                    "object" | "flattened" => v.is_object(),
                    other => {
                        errs.push(format!("{name}: type {other} not handled"));
                        continue;
                    }
                };
                if !ok {
                    errs.push(format!("{name}: {v} is not a {t}"));
                }
                if let Some(allowed) = def["allowed_values"].as_object() {
                    if !v.as_str().is_some_and(|s| allowed.contains_key(s)) {
                        errs.push(format!("{name}: {v} is not an allowed value"));
                    }
                }
            }
        }
        // event.type values must be expected for each event.category.
        let allowed = &self.fields["event.category"]["allowed_values"];
        for c in doc["event"]["category"].as_array().into_iter().flatten() {
            for t in doc["event"]["type"].as_array().into_iter().flatten() {
                let expected = allowed[c.as_str().unwrap_or("")].as_array();
                if !expected.is_some_and(|e| e.contains(t)) {
                    errs.push(format!("event.type: {t} not expected for category {c}"));
                }
            }
        }
        errs
    }
}

/// Dotted leaf names. Objects stop at ECS `object`/`flattened` fields (their
/// keys are free), which the checker sees as one value.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    const OPAQUE: [&str; 1] = ["labels"];
    match v {
        Value::Object(m) if !OPAQUE.contains(&prefix) => {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        v => out.push((prefix.to_string(), v.clone())),
    }
}

fn ecs_samples() -> BTreeMap<&'static str, Value> {
    samples()
        .into_iter()
        .map(|(n, e)| (n, ecs::map(&e)))
        .collect()
}

#[test]
fn ecs_events_match_the_ecs_field_list() {
    let e = Ecs::load();
    for (name, v) in ecs_samples() {
        let errs = e.check(&v);
        assert!(errs.is_empty(), "{name}: {errs:#?}\n{v:#}");
        assert_eq!(v["ecs"]["version"], ecs::VERSION, "{name}");
    }
}

#[test]
fn ecs_checker_rejects_wrong_documents() {
    let e = Ecs::load();
    let good = ecs::map(&sample("modified"));
    assert!(e.check(&good).is_empty());
    let bad = |f: &dyn Fn(&mut Value), what: &str| {
        let mut d = good.clone();
        f(&mut d);
        let errs = e.check(&d);
        assert!(errs.iter().any(|e| e.contains(what)), "{what}: {errs:#?}");
    };
    bad(
        &|d| d["file"]["hash"]["blake3"] = json!("ab"),
        "file.hash.blake3: not an ECS field",
    );
    bad(&|d| d["file"]["size"] = json!("3264"), "file.size:");
    bad(&|d| d["file"]["inode"] = json!(1311), "file.inode:");
    bad(&|d| d["event"]["kind"] = json!("change"), "event.kind:");
    bad(
        &|d| d["event"]["category"] = json!("file"),
        "expects an array",
    );
    bad(
        &|d| d["event"]["type"] = json!(["start"]),
        "not expected for category",
    );
    bad(&|d| d["file"]["mtime"] = json!("yesterday"), "file.mtime:");
    bad(
        &|d| d["process"]["pid"] = json!([1, 2]),
        "does not expect an array",
    );
    bad(
        &|d| drop(d.as_object_mut().unwrap().remove("@timestamp")),
        "@timestamp",
    );
}

#[test]
fn ecs_event_content() {
    let all = ecs_samples();
    let c = &all["created"];
    assert_eq!(c["@timestamp"], T0);
    assert_eq!(c["event"]["kind"], "event");
    assert_eq!(c["event"]["category"], json!(["file"]));
    assert_eq!(c["event"]["type"], json!(["creation"]));
    assert_eq!(c["event"]["action"], "created");
    assert_eq!(c["event"]["dataset"], "vigil.file");
    assert_eq!(c["event"]["sequence"], 2);
    assert_eq!(c["event"]["outcome"], "success");
    assert_eq!(c["file"]["path"], "/etc/cron.d/backup");
    assert_eq!(c["file"]["directory"], "/etc/cron.d");
    assert_eq!(c["file"]["name"], "backup");
    assert_eq!(c["file"]["inode"], "1311");
    assert_eq!(c["file"]["device"], "8:1");
    assert_eq!(c["file"]["mode"], "0644");
    assert_eq!(c["file"]["hash"]["sha256"], SHA256_NEW);
    assert_eq!(c["vigil"]["file"]["hash"]["blake3"], BLAKE3_NEW);
    assert_eq!(c["process"]["executable"], "/usr/bin/vim.basic");
    assert_eq!(c["process"]["thread"]["id"], 8960);
    assert_eq!(c["process"]["user"]["id"], "0");
    assert_eq!(c["process"]["real_user"]["name"], "alice");
    assert_eq!(c["process"]["parent"]["pid"], 8545);
    assert_eq!(c["user"]["effective"]["id"], "0");
    assert_eq!(c["host"]["hostname"], "web-1");
    assert_eq!(c["vigil"]["process"]["login_user"], "alice");

    let m = &all["modified"];
    assert_eq!(m["event"]["type"], json!(["change"]));
    assert_eq!(m["file"]["size"], 3264);
    assert_eq!(m["vigil"]["before"]["size"], 3200);
    assert_eq!(m["vigil"]["before"]["hashes"]["blake3"], BLAKE3_OLD);
    assert!(m["vigil"]["diff"]
        .as_str()
        .unwrap()
        .contains("PermitRootLogin"));

    let r = &all["renamed"];
    assert_eq!(r["file"]["path"], "/etc/passwd");
    assert_eq!(r["vigil"]["path"], "/etc/.passwd.tmp");
    assert_eq!(r["vigil"]["target_path"], "/etc/passwd");

    let d = &all["deleted"];
    assert_eq!(d["event"]["type"], json!(["deletion"]));
    assert_eq!(d["file"]["size"], 99_000);
    assert_eq!(d["container"]["id"], "ab".repeat(32));

    let s = &all["symlinked"];
    assert_eq!(s["file"]["type"], "symlink");
    assert_eq!(s["file"]["target_path"], "/tmp/evil.service");

    let a = &all["alert"];
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["event"]["severity"], 4);
    assert_eq!(a["threat"]["framework"], "MITRE ATT&CK");
    assert_eq!(a["threat"]["technique"]["id"], json!(["T1098"]));
    assert_eq!(
        a["threat"]["technique"]["subtechnique"]["id"],
        json!(["T1098.004"])
    );
    assert_eq!(a["rule"]["id"], json!(["ssh-authorized-keys"]));
    assert_eq!(a["tags"], json!(["persistence", "ssh"]));
    assert_eq!(a["vigil"]["pci"], json!(["11.5.2", "10.2.1"]));

    assert_eq!(all["start"]["event"]["type"], json!(["start"]));
    assert_eq!(all["start"]["event"]["dataset"], "vigil.sensor");
    assert_eq!(all["start"]["process"]["pid"], 4242);
    assert_eq!(all["stop"]["event"]["type"], json!(["end"]));
    assert_eq!(all["gap"]["event"]["kind"], "event");
    assert_eq!(all["gap"]["vigil"]["lost"], 17);
    assert_eq!(all["gap"]["message"], "the kernel dropped events");
    assert_eq!(all["error"]["event"]["kind"], "pipeline_error");
    assert_eq!(
        all["error"]["error"]["message"],
        "record too short: 12 bytes"
    );
    assert_eq!(all["health"]["event"]["kind"], "state");
}

#[test]
fn package_events_map_to_software_inventory_and_package_fields() {
    let o: BTreeMap<&str, Value> = ocsf_samples().into_iter().map(|(n, _, v)| (n, v)).collect();
    let inst = &o["package_installed"];
    assert_eq!(inst["class_uid"], 5020, "{inst:#}");
    assert_eq!(inst["type_uid"], 502001, "{inst:#}");
    assert_eq!(inst["metadata"]["event_code"], "package_installed");
    assert_eq!(inst["package"]["name"], "nginx");
    assert_eq!(inst["package"]["version"], "1.22.1-9");
    assert_eq!(
        inst["actor"]["process"]["file"]["path"], "/usr/bin/dpkg",
        "{inst:#}"
    );
    // A removed package is described as it was (version is required).
    let rm = &o["package_removed"];
    assert_eq!(rm["package"]["version"], "1:3.0.9-1", "{rm:#}");
    assert!(rm.get("actor").is_none(), "{rm:#}");
    assert_eq!(rm["unmapped"]["details"]["unattributed"], true, "{rm:#}");
    let up = &o["package_upgraded"];
    assert_eq!(
        up["unmapped"]["package"]["previous_version"],
        "3.0.14-1~deb12u2"
    );
    assert_eq!(
        o["package_managed_file"]["unmapped"]["package"]["managed"],
        true
    );

    let e = ecs_samples();
    let inst = &e["package_installed"];
    assert_eq!(inst["event"]["category"], json!(["package"]), "{inst:#}");
    assert_eq!(inst["event"]["type"], json!(["installation"]));
    assert_eq!(inst["event"]["dataset"], "vigil.package");
    assert_eq!(inst["package"]["name"], "nginx");
    assert_eq!(inst["process"]["executable"], "/usr/bin/dpkg");
    assert_eq!(e["package_removed"]["event"]["type"], json!(["deletion"]));
    assert_eq!(e["package_upgraded"]["event"]["type"], json!(["change"]));
    assert_eq!(
        e["package_upgraded"]["vigil"]["package"]["previous_version"],
        "3.0.14-1~deb12u2"
    );
    let f = &e["package_mismatch_file"];
    assert_eq!(f["package"]["name"], "coreutils", "{f:#}");
    assert_eq!(f["vigil"]["package"]["managed"], false, "{f:#}");
    assert_eq!(
        f["vigil"]["details"]["package_checksum"], "mismatch",
        "{f:#}"
    );
}

#[test]
fn service_events_map_to_application_lifecycle_and_service_fields() {
    let o: BTreeMap<&str, Value> = ocsf_samples().into_iter().map(|(n, _, v)| (n, v)).collect();
    let stop = &o["service_stopped"];
    assert_eq!(stop["class_uid"], 6002, "{stop:#}");
    assert_eq!(stop["activity_id"], 4, "{stop:#}");
    assert_eq!(stop["type_uid"], 600204, "{stop:#}");
    assert_eq!(stop["app"]["name"], "ssh.service", "{stop:#}");
    assert_eq!(stop["app"]["path"], "/lib/systemd/system/ssh.service");
    assert_eq!(
        stop["actor"]["process"]["file"]["path"], "/usr/bin/systemctl",
        "{stop:#}"
    );
    assert_eq!(stop["unmapped"]["service"]["previous_state"], "active");
    assert_eq!(stop["metadata"]["event_code"], "service_stopped");
    let failed = &o["service_failed"];
    assert_eq!(failed["activity_id"], 99, "{failed:#}");
    assert_eq!(failed["activity_name"], "service_failed", "{failed:#}");
    assert_eq!(failed["status_id"], 2, "{failed:#}");
    assert_eq!(failed["status_detail"], "exit-code", "{failed:#}");
    let dis = &o["service_disabled"];
    assert_eq!(dis["activity_id"], 7, "{dis:#}");
    assert!(dis.get("actor").is_none(), "{dis:#}");

    let e = ecs_samples();
    let stop = &e["service_stopped"];
    assert_eq!(stop["event"]["category"], json!(["process"]), "{stop:#}");
    assert_eq!(stop["event"]["type"], json!(["end"]));
    assert_eq!(stop["event"]["dataset"], "vigil.service");
    assert_eq!(stop["service"]["name"], "ssh.service");
    assert_eq!(stop["service"]["type"], "systemd");
    assert_eq!(stop["service"]["state"], "inactive");
    assert_eq!(stop["process"]["executable"], "/usr/bin/systemctl");
    assert_eq!(stop["vigil"]["service"]["previous_state"], "active");
    assert_eq!(e["service_failed"]["event"]["outcome"], "failure");
    let dis = &e["service_disabled"];
    assert_eq!(
        dis["event"]["category"],
        json!(["configuration"]),
        "{dis:#}"
    );
    assert_eq!(dis["vigil"]["details"]["unattributed"], true, "{dis:#}");

    // Windows: a service's ImagePath replaced.
    let w = &o["windows_service_config_changed"];
    assert_eq!(w["activity_id"], 8, "{w:#}");
    assert_eq!(w["app"]["path"], r"C:\Temp\evil.exe", "{w:#}");
    assert_eq!(w["app"]["vendor_name"], "windows-scm", "{w:#}");
    assert_eq!(
        w["unmapped"]["service"]["previous_unit_file"],
        r"C:\Windows\System32\spoolsv.exe"
    );
    let w = &e["windows_service_config_changed"];
    assert_eq!(w["event"]["category"], json!(["configuration"]), "{w:#}");
    assert_eq!(w["event"]["type"], json!(["change"]), "{w:#}");
    assert_eq!(w["service"]["name"], "Spooler");
    assert_eq!(w["service"]["type"], "windows-scm");
    assert_eq!(w["vigil"]["service"]["account"], "LocalSystem");
}

#[test]
fn windows_owner_is_the_ecs_file_uid() {
    let e = ecs_samples();
    let w = &e["windows_acl_changed"];
    assert_eq!(w["file"]["uid"], "S-1-5-21-1-2-3-1001", "{w:#}");
    assert_eq!(e["modified"]["file"]["uid"], "0");
    let o: BTreeMap<&str, Value> = ocsf_samples().into_iter().map(|(n, _, v)| (n, v)).collect();
    let w = &o["windows_acl_changed"];
    // OCSF: `file` as acted on (before), `file_result` after.
    assert_eq!(w["file"]["owner"]["uid"], "S-1-5-32-544", "{w:#}");
    assert_eq!(
        w["file_result"]["owner"]["uid"], "S-1-5-21-1-2-3-1001",
        "{w:#}"
    );
}

#[test]
fn windows_software_maps_publisher_install_date_and_scope() {
    let o: BTreeMap<&str, Value> = ocsf_samples().into_iter().map(|(n, _, v)| (n, v)).collect();
    let w = &o["windows_package_installed"];
    assert_eq!(w["class_uid"], 5020, "{w:#}");
    assert_eq!(w["package"]["name"], "Monitoring Agent");
    assert_eq!(w["package"]["vendor_name"], "Example Corp", "{w:#}");
    assert_eq!(w["unmapped"]["package"]["user_sid"], "S-1-5-21-1-2-3-1001");
    let e = ecs_samples();
    let w = &e["windows_package_installed"];
    assert_eq!(w["package"]["installed"], "2026-11-26", "{w:#}");
    assert_eq!(w["package"]["install_scope"], "user", "{w:#}");
    assert_eq!(w["vigil"]["package"]["publisher"], "Example Corp", "{w:#}");
    // dpkg packages have no scope.
    assert!(e["package_installed"]["package"]
        .get("install_scope")
        .is_none_or(Value::is_null));
}
