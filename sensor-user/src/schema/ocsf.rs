//! OCSF 1.4.0 mapping.
//!
//! File events become File System Activity (class 1001, System Activity);
//! package events Software Inventory Info (5020, Discovery) with activity
//! Log and the native action in `metadata.event_code`; service events
//! (systemd units) Application Lifecycle (6002: start, stop, restart,
//! enable, disable) with the unit as `app`.
//! Sensor events become Application Lifecycle (6002: start, stop, health) or
//! Application Error (6008: gap, error). Native fields without an OCSF
//! attribute go to `unmapped`, in their native shape and names. See the "OCSF
//! mapping" section of docs/event-schema.md; the tests check every emitted key
//! against an excerpt of the schema (sensor-user/tests/data/ocsf/).
//!
//! To map a new native field: add it to the `json!` of its object below (an
//! absent value is `None`/null and is pruned), or to `unmapped` when OCSF has
//! no attribute for it.
use super::{epoch_ms, extension, file_name, parent_dir, prune};
use crate::event::{
    Body, Event, FileChange, FileState, PackageChange, Process, SensorInfo, ServiceChange, Severity,
};
use serde_json::{json, Value};

/// The OCSF version written to `metadata.version`.
pub const VERSION: &str = "1.4.0";
pub const PRODUCT_NAME: &str = "Vigil";
pub const VENDOR_NAME: &str = "Vigil";

/// An OCSF event class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub uid: u32,
    pub name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
}

pub const FILE_ACTIVITY: Class = Class {
    uid: 1001,
    name: "File System Activity",
    category_uid: 1,
    category_name: "System Activity",
};
pub const APPLICATION_LIFECYCLE: Class = Class {
    uid: 6002,
    name: "Application Lifecycle",
    category_uid: 6,
    category_name: "Application Activity",
};
pub const APPLICATION_ERROR: Class = Class {
    uid: 6008,
    name: "Application Error",
    category_uid: 6,
    category_name: "Application Activity",
};
pub const SOFTWARE_INVENTORY: Class = Class {
    uid: 5020,
    name: "Software Inventory Info",
    category_uid: 5,
    category_name: "Discovery",
};

/// `activity_id` and its caption for a native file action.
pub fn file_activity(action: &str) -> (u32, &'static str) {
    match action {
        "created" | "linked" | "symlinked" => (1, "Create"),
        "modified" | "truncated" | "closed_after_write" | "mapped_writable" => (3, "Update"),
        "deleted" => (4, "Delete"),
        "renamed" | "exchanged" => (5, "Rename"),
        "timestamps_changed" | "xattr_changed" | "xattr_removed" | "attributes_changed" => {
            (6, "Set Attributes")
        }
        "permissions_changed" | "owner_changed" => (7, "Set Security"),
        _ => (99, "Other"),
    }
}

/// Class, `activity_id` and its caption for a native sensor action.
pub fn sensor_activity(action: &str) -> (Class, u32, &'static str) {
    match action {
        "start" => (APPLICATION_LIFECYCLE, 3, "Start"),
        "stop" => (APPLICATION_LIFECYCLE, 4, "Stop"),
        "gap" | "error" | "scan_failed" => (APPLICATION_ERROR, 1, "General Error"),
        _ => (APPLICATION_LIFECYCLE, 99, "Other"),
    }
}

/// Application Lifecycle `activity_id` and caption for a native service
/// action: the unit is the application. A mask is a disable that also
/// forbids starting; failures, reloads, resets and unmasks are Other.
pub fn service_activity(action: &str) -> (Class, u32, &'static str) {
    match action {
        "service_started" => (APPLICATION_LIFECYCLE, 3, "Start"),
        "service_stopped" => (APPLICATION_LIFECYCLE, 4, "Stop"),
        "service_restarted" => (APPLICATION_LIFECYCLE, 5, "Restart"),
        "service_enabled" => (APPLICATION_LIFECYCLE, 6, "Enable"),
        "service_disabled" | "service_masked" => (APPLICATION_LIFECYCLE, 7, "Disable"),
        // Windows services (inventory::win).
        "service_installed" => (APPLICATION_LIFECYCLE, 1, "Install"),
        "service_removed" => (APPLICATION_LIFECYCLE, 2, "Remove"),
        "service_start_type_changed" | "service_config_changed" => {
            (APPLICATION_LIFECYCLE, 8, "Update")
        }
        _ => (APPLICATION_LIFECYCLE, 99, "Other"),
    }
}

/// `severity_id` and its caption.
pub fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// File `type_id` and its caption for a native file type.
pub fn file_type(t: &str) -> (u32, &'static str) {
    match t {
        "file" => (1, "Regular File"),
        "dir" => (2, "Folder"),
        "char" => (3, "Character Device"),
        "block" => (4, "Block Device"),
        "socket" => (5, "Local Socket"),
        "fifo" => (6, "Named Pipe"),
        "symlink" => (7, "Symbolic Link"),
        _ => (0, "Unknown"),
    }
}

/// Fingerprint `algorithm_id` and name for a native hash name.
pub fn hash_algorithm(name: &str) -> (u32, String) {
    match name {
        "md5" => (1, "MD5".into()),
        "sha1" => (2, "SHA-1".into()),
        "sha256" => (3, "SHA-256".into()),
        "sha512" => (4, "SHA-512".into()),
        other => (99, other.to_uppercase()),
    }
}

pub fn map(ev: &Event) -> Value {
    let (class, activity_id, caption) = match &ev.body {
        Body::File(_) => {
            let (id, caption) = file_activity(ev.action);
            (FILE_ACTIVITY, id, caption)
        }
        // OCSF has no install/remove activities: Log, with the native action
        // in metadata.event_code.
        Body::Package(_) => (SOFTWARE_INVENTORY, 1, "Log"),
        Body::Service(_) => service_activity(ev.action),
        Body::Sensor(_) => sensor_activity(ev.action),
    };
    // For Other, activity_name carries the source's own name for the activity.
    let activity_name = if activity_id == 99 {
        ev.action
    } else {
        caption
    };
    let (severity_id, severity_name) = severity(ev.severity);
    // One attack per native id: `T1098.004` is technique T1098, sub-technique
    // T1098.004.
    let attacks: Vec<Value> = ev
        .mitre
        .iter()
        .map(|id| {
            let (technique, sub) = match id.split_once('.') {
                Some((t, _)) => (t, Some(json!({ "uid": id }))),
                None => (id.as_str(), None),
            };
            json!({ "technique": { "uid": technique }, "sub_technique": sub })
        })
        .collect();

    let mut out = json!({
        "class_uid": class.uid,
        "class_name": class.name,
        "category_uid": class.category_uid,
        "category_name": class.category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class.uid * 100 + activity_id,
        "type_name": format!("{}: {}", class.name, caption),
        "severity_id": severity_id,
        "severity": severity_name,
        "time": epoch_ms(&ev.time),
        "timezone_offset": 0,
        "device": {
            "hostname": ev.host,
            "type_id": 0,
            "type": "Unknown",
        },
    });
    let mut unmapped = json!({
        "rules": ev.rules,
        "pci": ev.pci,
    });
    let mut profiles = vec!["host"];
    let obj = out.as_object_mut().expect("object");
    // The security_control profile carries the rule verdict: on every file
    // event (the rules saw it), on a sensor event only when a rule set it.
    if !matches!(ev.body, Body::Sensor(_)) || ev.alert || !attacks.is_empty() {
        profiles.push("security_control");
        let sc = json!({
            "is_alert": ev.alert,
            // A sensor observes, it does not block.
            "action_id": 3,
            "action": "Observed",
            "disposition_id": if ev.alert { 19 } else { 17 },
            "disposition": if ev.alert { "Alert" } else { "Logged" },
            "attacks": attacks,
        });
        obj.extend(sc.as_object().expect("object").clone());
    }
    match &ev.body {
        Body::File(f) => {
            file_change(f, obj, &mut unmapped);
            if f.process.container_id.is_some() {
                profiles.push("container");
            }
        }
        Body::Package(p) => {
            package_change(p, obj, &mut unmapped);
            if p.process.as_ref().is_some_and(|p| p.container_id.is_some()) {
                profiles.push("container");
            }
        }
        Body::Service(c) => {
            service_change(c, obj, &mut unmapped);
            if c.process.as_ref().is_some_and(|p| p.container_id.is_some()) {
                profiles.push("container");
            }
        }
        Body::Sensor(s) => sensor(s, obj, &mut unmapped),
    }
    obj.insert(
        "metadata".into(),
        json!({
            "version": VERSION,
            "product": product(env!("CARGO_PKG_VERSION")),
            "sequence": ev.seq,
            "event_code": ev.action,
            "log_version": ev.schema,
            "labels": ev.tags,
            "profiles": profiles,
        }),
    );
    obj.insert("unmapped".into(), unmapped);
    prune(out)
}

fn product(version: &str) -> Value {
    json!({ "name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": version })
}

fn file_change(f: &FileChange, out: &mut serde_json::Map<String, Value>, unmapped: &mut Value) {
    // `file` is the target as it was acted on (before the change where known);
    // `file_result` the result: the new name of a rename or link, or the state
    // after a change whose state before is known.
    let state = f.before.as_deref().or(f.after.as_deref());
    out.insert(
        "file".into(),
        file(&f.path, f.file.file_type, f.file.inode, state),
    );
    let result_path = match (&f.target_path, &f.before, &f.after) {
        (Some(t), _, _) => Some(&**t),
        (None, Some(_), Some(_)) => Some(&*f.path),
        _ => None,
    };
    if let Some(p) = result_path {
        out.insert(
            "file_result".into(),
            file(p, f.file.file_type, f.file.inode, f.after.as_deref()),
        );
    }
    out.insert("file_diff".into(), json!(f.diff));
    out.insert(
        "actor".into(),
        json!({ "process": process(&f.process), "user": user(f.process.uid, &f.process.user) }),
    );
    // Successful syscalls only: the kernel side drops failed calls.
    out.insert("status_id".into(), json!(1));
    out.insert("status".into(), json!("Success"));

    let p = &f.process;
    let u = unmapped.as_object_mut().expect("object");
    u.insert(
        "file".into(),
        json!({ "dev": f.file.dev, "path_truncated": f.file.path_truncated.then_some(true) }),
    );
    u.insert("before".into(), f.before.as_deref().map(state_rest).into());
    u.insert("after".into(), f.after.as_deref().map(state_rest).into());
    u.insert("fields_changed".into(), json!(f.fields_changed));
    u.insert("watch".into(), json!(f.watch));
    u.insert("source".into(), json!(f.source));
    u.insert("details".into(), json!(f.details));
    u.insert("related".into(), json!(f.related));
    u.insert("package".into(), json!(f.package));
    u.insert(
        "process".into(),
        json!({
            "gid": p.gid,
            "group": p.group,
            "euid": p.euid,
            "egid": p.egid,
            "login_uid": p.login_uid,
            "login_user": p.login_user,
            "session_id": p.session_id,
            "cgroup_id": p.cgroup_id,
            "mnt_ns": p.mnt_ns,
        }),
    );
}

fn package_change(
    c: &PackageChange,
    out: &mut serde_json::Map<String, Value>,
    unmapped: &mut Value,
) {
    let p = &c.package;
    out.insert(
        "package".into(),
        json!({
            "name": p.name,
            // Required: the version installed, or the one removed.
            "version": p.version.as_ref().or(p.previous_version.as_ref()),
            "architecture": p.architecture,
            // Windows: the Uninstall entry's Publisher.
            "vendor_name": p.publisher,
        }),
    );
    if let Some(proc_) = &c.process {
        out.insert(
            "actor".into(),
            json!({ "process": process(proc_), "user": user(proc_.uid, &proc_.user) }),
        );
    }
    out.insert("status_id".into(), json!(1));
    out.insert("status".into(), json!("Success"));
    let u = unmapped.as_object_mut().expect("object");
    u.insert(
        "package".into(),
        json!({
            "manager": p.manager,
            "version": p.version,
            "previous_version": p.previous_version,
            "status": p.status,
            "previous_status": p.previous_status,
            "install_date": p.install_date,
            "user_sid": p.user_sid,
        }),
    );
    u.insert("path".into(), json!(c.path));
    u.insert("source".into(), json!(c.source));
    u.insert("details".into(), json!(c.details));
    if let Some(p) = &c.process {
        u.insert(
            "process".into(),
            json!({
                "gid": p.gid,
                "group": p.group,
                "euid": p.euid,
                "egid": p.egid,
                "login_uid": p.login_uid,
                "login_user": p.login_user,
                "session_id": p.session_id,
                "cgroup_id": p.cgroup_id,
                "mnt_ns": p.mnt_ns,
            }),
        );
    }
}

fn service_change(
    c: &ServiceChange,
    out: &mut serde_json::Map<String, Value>,
    unmapped: &mut Value,
) {
    let s = &c.service;
    out.insert(
        "app".into(),
        json!({ "name": s.unit, "path": s.unit_file, "vendor_name": s.manager }),
    );
    if let Some(p) = &c.process {
        out.insert(
            "actor".into(),
            json!({ "process": process(p), "user": user(p.uid, &p.user) }),
        );
    }
    // A unit that failed: the change is a failure, the Result says which.
    if s.state == "failed" {
        out.insert("status_id".into(), json!(2));
        out.insert("status".into(), json!("Failure"));
        out.insert("status_detail".into(), json!(s.result));
    } else {
        out.insert("status_id".into(), json!(1));
        out.insert("status".into(), json!("Success"));
    }
    let u = unmapped.as_object_mut().expect("object");
    u.insert("service".into(), json!(s));
    u.insert("source".into(), json!(c.source));
    u.insert("details".into(), json!(c.details));
    if let Some(p) = &c.process {
        u.insert(
            "process".into(),
            json!({
                "gid": p.gid,
                "group": p.group,
                "euid": p.euid,
                "egid": p.egid,
                "login_uid": p.login_uid,
                "login_user": p.login_user,
                "session_id": p.session_id,
                "cgroup_id": p.cgroup_id,
                "mnt_ns": p.mnt_ns,
            }),
        );
    }
}

fn sensor(s: &SensorInfo, out: &mut serde_json::Map<String, Value>, unmapped: &mut Value) {
    if out["class_uid"] == APPLICATION_LIFECYCLE.uid {
        out.insert("app".into(), product(env!("CARGO_PKG_VERSION")));
    }
    out.insert("message".into(), json!(s.message));
    let u = unmapped.as_object_mut().expect("object");
    u.insert("pid".into(), json!(s.pid));
    u.insert("watches".into(), json!(s.watches));
    u.insert("hooks_attached".into(), json!(s.hooks_attached));
    u.insert("hooks_failed".into(), json!(s.hooks_failed));
    u.insert("lost".into(), json!(s.lost));
    u.insert("lost_reason".into(), json!(s.lost_reason));
    u.insert("sink".into(), json!(s.sink));
    u.insert("scan".into(), json!(s.scan));
    u.insert("downtime".into(), json!(s.downtime));
    u.insert("heartbeat_s".into(), json!(s.heartbeat_s));
    u.insert("reason".into(), json!(s.reason));
    u.insert("events_emitted".into(), json!(s.events_emitted));
    u.insert("lost_total".into(), json!(s.lost_total));
    u.insert("uptime_s".into(), json!(s.uptime_s));
    if !s.tiers.is_empty() {
        u.insert("tiers".into(), json!(s.tiers));
    }
    if !s.capabilities.is_empty() {
        u.insert("capabilities".into(), json!(s.capabilities));
    }
    u.insert("blind_spot".into(), json!(s.blind_spot));
    u.insert("subject_pid".into(), json!(s.subject_pid));
    u.insert("packages".into(), json!(s.packages));
    u.insert("watcher".into(), json!(s.watcher));
    u.insert("bus".into(), json!(s.bus));
    u.insert("units".into(), json!(s.units));
}

/// An OCSF `file` object for `path` with what is known of its state.
fn file(path: &str, info_type: &str, inode: Option<u64>, state: Option<&FileState>) -> Value {
    let (type_id, type_name) = file_type(state.map_or(info_type, |s| s.file_type));
    let hashes: Vec<Value> = state
        .map(|s| {
            s.hashes
                .iter()
                .map(|(name, value)| {
                    let (id, algorithm) = hash_algorithm(name);
                    json!({ "algorithm_id": id, "algorithm": algorithm, "value": value })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "path": path,
        "name": file_name(path),
        "parent_folder": parent_dir(path),
        "ext": extension(path),
        "type_id": type_id,
        "type": type_name,
        "uid": state.map(|s| s.inode).or(inode).map(|i| i.to_string()),
        "size": state.map(|s| s.size),
        "modified_time": state.and_then(|s| epoch_ms(&s.mtime)),
        // Windows: the owner's SID.
        "owner": state.map(|s| json!({ "uid": s.owner.clone().unwrap_or_else(|| s.uid.to_string()) })),
        "hashes": hashes,
        "xattributes": state.map(|s| json!(s.xattrs)),
    })
}

/// The [`FileState`] fields OCSF `file` has no attribute for.
fn state_rest(s: &FileState) -> Value {
    json!({
        "mode": s.mode,
        "gid": s.gid,
        "ctime": s.ctime,
        "nlink": s.nlink,
        "link_target": s.link_target,
        "hash_note": s.hash_note,
    })
}

fn user(uid: u32, name: &Option<String>) -> Value {
    json!({ "uid": uid.to_string(), "name": name })
}

fn exe_file(exe: &Option<String>) -> Option<Value> {
    exe.as_deref()
        .map(|p| json!({ "path": p, "name": file_name(p), "type_id": 1, "type": "Regular File" }))
}

fn process(p: &Process) -> Value {
    let parent = match &p.parent {
        Some(pp) => json!({
            "pid": pp.pid,
            "name": pp.comm,
            "cmd_line": pp.cmdline,
            "file": exe_file(&pp.exe),
        }),
        None if p.ppid != 0 => json!({ "pid": p.ppid }),
        None => Value::Null,
    };
    let ancestry: Vec<Value> = p
        .ancestry
        .iter()
        .map(|a| json!({ "pid": a.pid, "name": a.comm, "path": a.exe, "cmd_line": a.cmdline }))
        .collect();
    json!({
        "pid": p.pid,
        "tid": p.tid,
        "name": p.comm,
        "cmd_line": p.cmdline,
        "file": exe_file(&p.exe),
        "user": user(p.uid, &p.user),
        "created_time": epoch_ms(&p.start_time),
        "parent_process": parent,
        "ancestry": ancestry,
        "container": p.container_id.as_ref().map(|c| json!({ "uid": c })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE_ACTIONS: [&str; 16] = [
        "created",
        "modified",
        "truncated",
        "closed_after_write",
        "deleted",
        "renamed",
        "exchanged",
        "linked",
        "symlinked",
        "permissions_changed",
        "owner_changed",
        "timestamps_changed",
        "xattr_changed",
        "xattr_removed",
        "attributes_changed",
        "mapped_writable",
    ];

    #[test]
    fn every_documented_file_action_has_an_activity() {
        for a in FILE_ACTIONS {
            assert_ne!(file_activity(a).0, 99, "{a} falls to Other");
        }
        assert_eq!(file_activity("changed"), (99, "Other"));
    }

    #[test]
    fn file_activities() {
        assert_eq!(file_activity("created"), (1, "Create"));
        assert_eq!(file_activity("symlinked"), (1, "Create"));
        assert_eq!(file_activity("modified"), (3, "Update"));
        assert_eq!(file_activity("closed_after_write"), (3, "Update"));
        assert_eq!(file_activity("deleted"), (4, "Delete"));
        assert_eq!(file_activity("renamed"), (5, "Rename"));
        assert_eq!(file_activity("xattr_removed"), (6, "Set Attributes"));
        assert_eq!(file_activity("permissions_changed"), (7, "Set Security"));
        assert_eq!(file_activity("owner_changed"), (7, "Set Security"));
    }

    #[test]
    fn sensor_activities() {
        assert_eq!(
            sensor_activity("start"),
            (APPLICATION_LIFECYCLE, 3, "Start")
        );
        assert_eq!(sensor_activity("stop"), (APPLICATION_LIFECYCLE, 4, "Stop"));
        assert_eq!(
            sensor_activity("gap"),
            (APPLICATION_ERROR, 1, "General Error")
        );
        assert_eq!(
            sensor_activity("error"),
            (APPLICATION_ERROR, 1, "General Error")
        );
        assert_eq!(
            sensor_activity("health"),
            (APPLICATION_LIFECYCLE, 99, "Other")
        );
    }

    #[test]
    fn severities_and_types() {
        assert_eq!(severity(Severity::Info), (1, "Informational"));
        assert_eq!(severity(Severity::Critical), (5, "Critical"));
        assert_eq!(file_type("dir"), (2, "Folder"));
        assert_eq!(file_type("unknown"), (0, "Unknown"));
        assert_eq!(hash_algorithm("sha256"), (3, "SHA-256".to_string()));
        assert_eq!(hash_algorithm("blake3"), (99, "BLAKE3".to_string()));
    }
}
