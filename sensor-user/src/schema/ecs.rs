//! ECS 8.11 mapping.
//!
//! ECS describes a file as it is now, so `file.*` is the state after the
//! change (before it, for a deletion) at the file's current path (the new name
//! after a rename or link). Native fields without an ECS field go under the
//! custom `vigil.*` namespace, in their native shape and names, as the ECS
//! custom-field guidance suggests (nest custom fields under a proper name).
//! See the "ECS mapping" section of docs/event-schema.md; the tests check
//! every emitted field against an excerpt of ecs_flat.yml
//! (sensor-user/tests/data/ecs/).
//!
//! To map a new native field: add it to the `json!` of its field set below (an
//! absent value is `None`/null and is pruned), or under `vigil` when ECS has no
//! field for it.
use super::{attack_ids, extension, file_name, parent_dir, prune};
use crate::event::{
    Body, Event, FileChange, FileState, PackageChange, Process, SensorInfo, ServiceChange, Severity,
};
use serde_json::{json, Value};

/// The ECS version written to `ecs.version`.
pub const VERSION: &str = "8.11.0";

/// `event.kind` for a native event.
pub fn kind(ev: &Event) -> &'static str {
    if ev.alert {
        return "alert";
    }
    match (ev.kind, ev.action) {
        ("sensor", "error" | "scan_failed") => "pipeline_error",
        ("sensor", "health" | "heartbeat") => "state",
        _ => "event",
    }
}

/// `event.category` and `event.type` for a native file action.
pub fn file_type(action: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const FILE: &[&str] = &["file"];
    let t: &'static [&'static str] = match action {
        "created" | "linked" | "symlinked" => &["creation"],
        "deleted" => &["deletion"],
        "modified"
        | "truncated"
        | "closed_after_write"
        | "renamed"
        | "exchanged"
        | "permissions_changed"
        | "owner_changed"
        | "timestamps_changed"
        | "xattr_changed"
        | "xattr_removed"
        | "attributes_changed"
        | "mapped_writable" => &["change"],
        _ => &["info"],
    };
    (FILE, t)
}

/// `event.category` and `event.type` for a native package action.
pub fn package_type(action: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const PACKAGE: &[&str] = &["package"];
    let t: &'static [&'static str] = match action {
        "package_installed" => &["installation"],
        "package_removed" => &["deletion"],
        "package_upgraded" | "package_downgraded" | "package_changed" => &["change"],
        _ => &["info"],
    };
    (PACKAGE, t)
}

/// `event.category` and `event.type` for a native service action: a unit
/// starting or stopping is a process event; enabling, disabling or masking
/// it changes configuration.
pub fn service_type(action: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match action {
        "service_started" | "service_restarted" => (&["process"], &["start"]),
        "service_stopped" | "service_failed" => (&["process"], &["end"]),
        "service_reloaded" | "service_reset" => (&["process"], &["change"]),
        "service_enabled" | "service_disabled" | "service_masked" | "service_unmasked" => {
            (&["configuration"], &["change"])
        }
        // Windows services (inventory::win).
        "service_installed" => (&["configuration"], &["creation"]),
        "service_removed" => (&["configuration"], &["deletion"]),
        "service_start_type_changed" | "service_config_changed" => {
            (&["configuration"], &["change"])
        }
        _ => (&["process"], &["info"]),
    }
}

/// `event.category` and `event.type` for a native sensor action.
pub fn sensor_type(action: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match action {
        "start" => (&["process"], &["start"]),
        "stop" => (&["process"], &["end"]),
        // A decoding error has no category: event.kind says what it is.
        "error" => (&[], &[]),
        _ => (&["host"], &["info"]),
    }
}

/// `event.severity`: the same 1-5 scale as OCSF `severity_id`.
pub fn severity(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// Hash names ECS has a `file.hash.*` field for.
const ECS_HASHES: [&str; 6] = ["md5", "sha1", "sha256", "sha384", "sha512", "ssdeep"];

pub fn map(ev: &Event) -> Value {
    let (category, types) = match &ev.body {
        Body::File(_) => file_type(ev.action),
        Body::Package(_) => package_type(ev.action),
        Body::Service(_) => service_type(ev.action),
        Body::Sensor(_) => sensor_type(ev.action),
    };
    let dataset = match &ev.body {
        Body::File(_) => "vigil.file",
        Body::Package(_) => "vigil.package",
        Body::Service(_) => "vigil.service",
        Body::Sensor(_) => "vigil.sensor",
    };
    let (techniques, subtechniques) = attack_ids(&ev.mitre);
    let mut out = json!({
        "@timestamp": ev.time,
        "ecs": { "version": VERSION },
        "event": {
            "kind": kind(ev),
            "category": category,
            "type": types,
            "action": ev.action,
            "module": "vigil",
            "dataset": dataset,
            "sequence": ev.seq,
            "severity": severity(ev.severity),
        },
        "agent": { "type": "vigil", "version": env!("CARGO_PKG_VERSION") },
        "host": { "hostname": ev.host, "name": ev.host },
        "rule": { "id": ev.rules },
        "threat": if ev.mitre.is_empty() { Value::Null } else {
            json!({
                "framework": "MITRE ATT&CK",
                "technique": { "id": techniques, "subtechnique": { "id": subtechniques } },
            })
        },
        "tags": ev.tags,
        "vigil": {
            "schema": ev.schema,
            "severity": ev.severity.as_str(),
            "pci": ev.pci,
        },
    });
    let obj = out.as_object_mut().expect("object");
    match &ev.body {
        Body::File(f) => file_change(ev.action, f, obj),
        Body::Package(p) => package_change(p, obj),
        Body::Service(c) => service_change(c, obj),
        Body::Sensor(s) => sensor(s, obj),
    }
    prune(out)
}

fn file_change(action: &str, f: &FileChange, out: &mut serde_json::Map<String, Value>) {
    out["event"]["outcome"] = json!("success");
    let state = f.after.as_ref().or(f.before.as_ref());
    // Where the file is now: a rename or link made a new name.
    let moved = matches!(action, "renamed" | "linked");
    let path = match (&f.target_path, moved) {
        (Some(t), true) => &**t,
        _ => &*f.path,
    };
    let link_target = state.and_then(|s| s.link_target.clone()).or_else(|| {
        f.details
            .get("link_target")
            .and_then(|v| v.as_str())
            .map(String::from)
    });
    let hash: serde_json::Map<String, Value> = state
        .map(|s| {
            s.hashes
                .iter()
                .filter(|(k, _)| ECS_HASHES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    let other_hashes: serde_json::Map<String, Value> = state
        .map(|s| {
            s.hashes
                .iter()
                .filter(|(k, _)| !ECS_HASHES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    out.insert(
        "file".into(),
        json!({
            "path": path,
            "name": file_name(path),
            "directory": parent_dir(path),
            "extension": extension(path),
            "type": state.map_or(f.file.file_type, |s| s.file_type),
            "inode": state.map(|s| s.inode).or(f.file.inode).map(|i| i.to_string()),
            "device": f.file.dev,
            "size": state.map(|s| s.size),
            "mode": state.map(|s| &s.mode),
            // ECS file.uid: "the user ID (UID) or security identifier
            // (SID) of the file owner": the SID on Windows.
            "uid": state.map(|s| s.owner.clone().unwrap_or_else(|| s.uid.to_string())),
            "gid": state.map(|s| s.gid.to_string()),
            "mtime": state.map(|s| &s.mtime),
            "ctime": state.map(|s| &s.ctime),
            "target_path": link_target,
            "hash": hash,
        }),
    );
    let p = &f.process;
    process_and_user(p, out);
    // The package that owns the file (ECS package.*: an installed package).
    if let Some(pk) = &f.package {
        out.insert(
            "package".into(),
            json!({ "name": pk.name, "version": pk.version, "architecture": pk.architecture }),
        );
    }
    let v = out["vigil"].as_object_mut().expect("object");
    if f.target_path.is_some() {
        v.insert("path".into(), json!(f.path));
        v.insert("target_path".into(), json!(f.target_path));
    }
    v.insert(
        "file".into(),
        json!({
            "hash": other_hashes,
            "nlink": state.map(|s| s.nlink),
            "xattrs": state.map(|s| &s.xattrs),
            "hash_note": state.and_then(|s| s.hash_note.as_ref()),
            "path_truncated": f.file.path_truncated.then_some(true),
        }),
    );
    v.insert(
        "before".into(),
        f.before.as_deref().map(native_state).into(),
    );
    v.insert("fields_changed".into(), json!(f.fields_changed));
    v.insert("diff".into(), json!(f.diff));
    v.insert("watch".into(), json!(f.watch));
    v.insert("source".into(), json!(f.source));
    v.insert("details".into(), json!(f.details));
    v.insert("related".into(), json!(f.related));
    v.insert(
        "package".into(),
        json!(f.package.as_ref().map(|pk| json!({
            "manager": pk.manager,
            "managed": pk.managed,
            "manager_pid": pk.manager_pid,
            "manager_exe": pk.manager_exe,
        }))),
    );
    v.insert(
        "process".into(),
        json!({
            "login_uid": p.login_uid,
            "login_user": p.login_user,
            "session_id": p.session_id,
            "cgroup_id": p.cgroup_id,
            "mnt_ns": p.mnt_ns,
            "ancestry": p.ancestry,
        }),
    );
}

fn process_and_user(p: &Process, out: &mut serde_json::Map<String, Value>) {
    out.insert("process".into(), process(p));
    out.insert(
        "user".into(),
        json!({
            "id": p.uid.to_string(),
            "name": p.user,
            "group": { "id": p.gid.to_string(), "name": p.group },
            "effective": { "id": p.euid.to_string(), "group": { "id": p.egid.to_string() } },
        }),
    );
    out.insert("container".into(), json!({ "id": p.container_id }));
}

fn package_change(c: &PackageChange, out: &mut serde_json::Map<String, Value>) {
    out["event"]["outcome"] = json!("success");
    let pk = &c.package;
    out.insert(
        "package".into(),
        json!({
            "name": pk.name,
            // ECS describes the package as it is now; a removed one as it was.
            "version": pk.version.as_ref().or(pk.previous_version.as_ref()),
            "architecture": pk.architecture,
            // Windows: InstallDate, and a per-user install is `user` scope.
            "installed": pk.install_date,
            "install_scope": match (pk.manager, &pk.user_sid) {
                (_, Some(_)) => Some("user"),
                ("windows-uninstall", None) => Some("global"),
                _ => None,
            },
        }),
    );
    if let Some(p) = &c.process {
        process_and_user(p, out);
    }
    let v = out["vigil"].as_object_mut().expect("object");
    v.insert(
        "package".into(),
        json!({
            "manager": pk.manager,
            "version": pk.version,
            "previous_version": pk.previous_version,
            "status": pk.status,
            "previous_status": pk.previous_status,
            "publisher": pk.publisher,
            "user_sid": pk.user_sid,
        }),
    );
    v.insert("path".into(), json!(c.path));
    v.insert("source".into(), json!(c.source));
    v.insert("details".into(), json!(c.details));
    if let Some(p) = &c.process {
        v.insert(
            "process".into(),
            json!({
                "login_uid": p.login_uid,
                "login_user": p.login_user,
                "session_id": p.session_id,
                "cgroup_id": p.cgroup_id,
                "mnt_ns": p.mnt_ns,
                "ancestry": p.ancestry,
            }),
        );
    }
}

fn native_state(s: &FileState) -> Value {
    json!(s)
}

fn process(p: &Process) -> Value {
    let parent = match &p.parent {
        Some(pp) => json!({
            "pid": pp.pid,
            "name": pp.comm,
            "executable": pp.exe,
            "command_line": pp.cmdline,
        }),
        None if p.ppid != 0 => json!({ "pid": p.ppid }),
        None => Value::Null,
    };
    json!({
        "pid": p.pid,
        "thread": { "id": p.tid },
        "name": p.comm,
        "executable": p.exe,
        "command_line": p.cmdline,
        "start": p.start_time,
        // ECS: process.user is the effective user, real_user the real one.
        "user": { "id": p.euid.to_string() },
        "real_user": { "id": p.uid.to_string(), "name": p.user },
        "real_group": { "id": p.gid.to_string(), "name": p.group },
        "parent": parent,
    })
}

fn service_change(c: &ServiceChange, out: &mut serde_json::Map<String, Value>) {
    let s = &c.service;
    out["event"]["outcome"] = json!(if s.state == "failed" {
        "failure"
    } else {
        "success"
    });
    // ECS service.*: the unit, its manager, its state now.
    out.insert(
        "service".into(),
        json!({ "name": s.unit, "type": s.manager, "state": s.state }),
    );
    if let Some(p) = &c.process {
        process_and_user(p, out);
    }
    let v = out["vigil"].as_object_mut().expect("object");
    v.insert("service".into(), json!(s));
    v.insert("source".into(), json!(c.source));
    v.insert("details".into(), json!(c.details));
    if let Some(p) = &c.process {
        v.insert(
            "process".into(),
            json!({
                "login_uid": p.login_uid,
                "login_user": p.login_user,
                "session_id": p.session_id,
                "cgroup_id": p.cgroup_id,
                "mnt_ns": p.mnt_ns,
                "ancestry": p.ancestry,
            }),
        );
    }
}

fn sensor(s: &SensorInfo, out: &mut serde_json::Map<String, Value>) {
    out.insert("message".into(), json!(s.message));
    if out["event"]["kind"] == "pipeline_error" {
        out.insert("error".into(), json!({ "message": s.message }));
    }
    out.insert("process".into(), json!({ "pid": s.pid }));
    let v = out["vigil"].as_object_mut().expect("object");
    v.insert("watches".into(), json!(s.watches));
    v.insert("hooks_attached".into(), json!(s.hooks_attached));
    v.insert("hooks_failed".into(), json!(s.hooks_failed));
    v.insert("lost".into(), json!(s.lost));
    v.insert("lost_reason".into(), json!(s.lost_reason));
    v.insert("sink".into(), json!(s.sink));
    v.insert("scan".into(), json!(s.scan));
    v.insert("downtime".into(), json!(s.downtime));
    v.insert("heartbeat_s".into(), json!(s.heartbeat_s));
    v.insert("reason".into(), json!(s.reason));
    v.insert("events_emitted".into(), json!(s.events_emitted));
    v.insert("lost_total".into(), json!(s.lost_total));
    v.insert("uptime_s".into(), json!(s.uptime_s));
    if !s.tiers.is_empty() {
        v.insert("tiers".into(), json!(s.tiers));
    }
    if !s.capabilities.is_empty() {
        v.insert("capabilities".into(), json!(s.capabilities));
    }
    v.insert("blind_spot".into(), json!(s.blind_spot));
    v.insert("subject_pid".into(), json!(s.subject_pid));
    v.insert("packages".into(), json!(s.packages));
    v.insert("watcher".into(), json!(s.watcher));
    v.insert("bus".into(), json!(s.bus));
    v.insert("units".into(), json!(s.units));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types() {
        assert_eq!(file_type("created").1, ["creation"]);
        assert_eq!(file_type("symlinked").1, ["creation"]);
        assert_eq!(file_type("modified").1, ["change"]);
        assert_eq!(file_type("renamed").1, ["change"]);
        assert_eq!(file_type("owner_changed").1, ["change"]);
        assert_eq!(file_type("deleted").1, ["deletion"]);
        assert_eq!(file_type("changed").1, ["info"]);
        assert_eq!(file_type("deleted").0, ["file"]);
    }

    #[test]
    fn sensor_types() {
        assert_eq!(sensor_type("start"), (&["process"][..], &["start"][..]));
        assert_eq!(sensor_type("stop"), (&["process"][..], &["end"][..]));
        assert_eq!(sensor_type("gap"), (&["host"][..], &["info"][..]));
        assert!(sensor_type("error").0.is_empty());
    }

    #[test]
    fn severities() {
        assert_eq!(severity(Severity::Info), 1);
        assert_eq!(severity(Severity::High), 4);
    }
}
