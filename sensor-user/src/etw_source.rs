//! sensor-windows' [`Change`]s as pipeline inputs: what `vigil run` on
//! Windows feeds the shared pipeline. Platform-neutral, so the mapping is
//! tested on Linux with the interpreter's own output.
//!
//! - file changes become [`Input::Change`]: the pipeline adds `before` (the
//!   last state it emitted), reads `after` and hashes it, as for eBPF events;
//!   the interpreter already made one change per open, so nothing waits for
//!   a close marker (`opens_session: false`);
//! - registry changes are complete (before and after come from the
//!   interpreter's registry baseline and the value read at the event) and go
//!   through in order as they are ([`crate::registry::event`]);
//! - `gap` (ETW lost events or buffers) becomes a `sensor`/`gap` event.
use crate::event::{Body, Event, FileChange, FileInfo, Process, Source};
use crate::pipeline::coalesce::{Change as RawChange, Meta};
use crate::pipeline::emit::sensor_event;
use crate::pipeline::Input;
use sensor_windows::{Action, Change};
use std::sync::Arc;

/// The event's `source.tier` for ETW events.
pub const TIER: &str = "etw";

/// RFC 3339 of an ETW timestamp (FILETIME); now when it is 0.
fn time(filetime: u64) -> String {
    if filetime == 0 {
        return crate::store::now();
    }
    crate::filestate::filetime_rfc3339(filetime as i64)
}

/// The process record of a change: image, command line, user SID (in
/// `user`), parent. Windows has no uids: `uid`/`gid` stay 0.
pub fn process(c: &Change) -> Arc<Process> {
    let info = c.process.as_deref();
    let image = info.and_then(|p| p.image.clone());
    let comm = image
        .as_deref()
        .and_then(|i| i.rsplit('\\').next())
        .unwrap_or_default()
        .to_string();
    Arc::new(Process {
        pid: c.pid,
        tid: c.tid,
        ppid: info.map_or(0, |p| p.parent_pid),
        exe: image,
        cmdline: info.and_then(|p| p.command_line.clone()),
        comm,
        user: c
            .user_sid
            .clone()
            .or_else(|| info.and_then(|p| p.user_sid.clone())),
        session_id: info.and_then(|p| p.session_id),
        start_time: time(info.and_then(|p| p.create_time).unwrap_or(0)),
        parent: info
            .filter(|p| p.parent_pid != 0)
            .map(|p| crate::event::ParentProcess {
                pid: p.parent_pid,
                exe: p.parent_image.clone(),
                comm: p
                    .parent_image
                    .as_deref()
                    .and_then(|i| i.rsplit('\\').next())
                    .unwrap_or_default()
                    .to_string(),
                cmdline: None,
            }),
        ..Default::default()
    })
}

fn details(c: &Change) -> crate::event::Details {
    c.details
        .iter()
        .map(|(k, v)| (format!("etw_{k}"), serde_json::Value::from(v.as_str())))
        .collect()
}

/// The pipeline input for one change.
pub fn input(host: &str, c: &Change) -> Input {
    let action = c.action.as_str();
    if c.action == Action::Gap {
        return Input::Sensor(sensor_event(
            host,
            "gap",
            crate::event::SensorInfo {
                lost: Some(c.lost.unwrap_or(0)),
                lost_reason: Some("etw"),
                message: Some(
                    "ETW lost events or buffers: changes in this window were not reported one by one; `vigil scan` finds them"
                        .into(),
                ),
                ..Default::default()
            },
        ));
    }
    if c.action.is_registry() {
        let state =
            |v: &Option<sensor_windows::RegistryValue>| v.as_ref().map(crate::registry::state);
        let (value, before, after) = match &c.value {
            Some(v) => (Some(v.name.as_str()), state(&v.before), state(&v.after)),
            None => (None, None, None),
        };
        let mut d = details(c);
        if let Some(note) = c.value.as_ref().and_then(|v| v.note.clone()) {
            d.insert("registry_note", note.into());
        }
        let mut ev = crate::registry::event(
            host,
            action,
            &c.path,
            value,
            before,
            after,
            c.watch.clone(),
            process(c),
            TIER,
            d,
        );
        ev.time = time(c.time).into();
        return Input::Sensor(ev);
    }
    let ev = Event::new(
        "file",
        action,
        time(c.time),
        host,
        Body::File(Box::new(FileChange {
            path: c.path.as_str().into(),
            target_path: c.target.as_deref().map(Into::into),
            file: FileInfo {
                file_type: "file",
                ..Default::default()
            },
            before: None,
            after: None,
            fields_changed: Vec::new(),
            diff: None,
            watch: c.watch.as_deref().map(crate::event::interned),
            process: process(c),
            source: Source {
                tier: TIER,
                syscall: "none",
                decided_by: "path",
            },
            details: details(c),
            related: Vec::new(),
            package: None,
        })),
    );
    Input::Change(RawChange {
        ev,
        meta: Meta {
            pid: c.pid,
            opens_session: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_windows::baseline::MapReader;
    use sensor_windows::paths::VolumeMap;
    use sensor_windows::{Header, Interpreter, Record, RegistryBaseline, RegistryValue};

    const KEY: &str = r"\REGISTRY\MACHINE\SOFTWARE\Vigil";

    fn interp(reader: MapReader) -> Interpreter {
        let policy =
            sensor_windows::Policy::parse("[[registry]]\nkey = 'HKLM\\SOFTWARE\\Vigil'\n", "t")
                .unwrap();
        Interpreter::new(
            policy,
            VolumeMap::new(),
            Box::new(reader),
            RegistryBaseline::new(),
        )
    }

    #[test]
    fn reg_add_fimtest_becomes_a_registry_event_with_empty_before() {
        let mut reader = MapReader::default();
        reader.set(
            r"HKLM\SOFTWARE\Vigil",
            "FIMTEST",
            RegistryValue::sz("FIMTEST"),
        );
        let mut i = interp(reader);
        let h = Header {
            timestamp: 133_485_408_000_000_000,
            pid: 4242,
            tid: 1,
            user_sid: Some("S-1-5-18".into()),
        };
        let changes = i.push(
            &h,
            Record::RegSetValue {
                key_object: 1,
                status: 0,
                value_type: 1,
                data_size: 16,
                key_name: KEY.into(),
                value_name: "FIMTEST".into(),
                captured_data: None,
                previous_data_type: None,
                previous_data_size: None,
                previous_data: None,
            },
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        let Input::Sensor(ev) = input("h", &changes[0]) else {
            panic!("registry changes are complete events");
        };
        let f = ev.file().unwrap();
        assert_eq!(ev.action, "value_set");
        assert_eq!(&*f.path, r"HKLM\SOFTWARE\Vigil\FIMTEST");
        assert_eq!(f.file.file_type, "registry_value");
        assert_eq!(f.source.tier, "etw");
        assert_eq!(f.process.pid, 4242);
        assert_eq!(f.process.user.as_deref(), Some("S-1-5-18"));
        assert_eq!(ev.time, "2024-01-01T00:00:00.000000000Z");
        let r = &f.details["registry"];
        assert_eq!(r["before"], serde_json::Value::Null);
        assert_eq!(r["after"]["data"], "FIMTEST");
        assert_eq!(r["after"]["type"], "REG_SZ");
    }

    #[test]
    fn gaps_and_file_changes_map_to_their_inputs() {
        let gap = Change {
            time: 0,
            action: Action::Gap,
            path: String::new(),
            target: None,
            watch: None,
            pid: 0,
            tid: 0,
            user_sid: None,
            process: None,
            value: None,
            lost: Some(17),
            details: Vec::new(),
        };
        let Input::Sensor(ev) = input("h", &gap) else {
            panic!("a gap is a sensor event");
        };
        assert_eq!((ev.kind, ev.action), ("sensor", "gap"));
        let Body::Sensor(s) = &ev.body else { panic!() };
        assert_eq!((s.lost, s.lost_reason), (Some(17), Some("etw")));

        let file = Change {
            action: Action::Modified,
            path: r"C:\Windows\System32\drivers\etc\hosts".into(),
            watch: Some(r"C:\Windows\System32\drivers\etc".into()),
            pid: 900,
            details: vec![("event", "Cleanup".into())],
            lost: None,
            ..gap
        };
        let Input::Change(c) = input("h", &file) else {
            panic!("a file change goes through coalesce and hashing");
        };
        assert_eq!(c.meta.pid, 900);
        assert!(!c.meta.opens_session);
        let f = c.ev.file().unwrap();
        assert_eq!(c.ev.action, "modified");
        assert_eq!(&*f.path, r"C:\Windows\System32\drivers\etc\hosts");
        assert_eq!(f.details["etw_event"], "Cleanup");
        assert!(f.before.is_none() && f.after.is_none());
    }
}

/// The realtime path of the Windows software and service events: ETW
/// registry records through the interpreter under the shipped policy, then
/// the tracker (`inventory::win`).
#[cfg(test)]
mod inventory_tests {
    use crate::inventory::win::{Tracker, SERVICES_KEY, SETTLE};
    use crate::registry::MapTree;
    use sensor_windows::baseline::MapReader;
    use sensor_windows::paths::VolumeMap;
    use sensor_windows::{Header, Interpreter, Record, RegistryBaseline, RegistryValue};
    use std::time::Instant;

    fn set(key: &str, value: &str) -> Record {
        Record::RegSetValue {
            key_object: 1,
            status: 0,
            value_type: 1,
            data_size: 16,
            key_name: key.into(),
            value_name: value.into(),
            captured_data: None,
            previous_data_type: None,
            previous_data_size: None,
            previous_data: None,
        }
    }

    #[test]
    fn msiexec_writing_an_uninstall_entry_becomes_package_installed() {
        let app = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{B1}";
        let mut tree = MapTree::default();
        let mut tracker = Tracker::new("h".into());
        tracker.start(&tree, None, None, None);
        tree.set(app, "DisplayName", RegistryValue::sz("Agent"));
        tree.set(app, "DisplayVersion", RegistryValue::sz("7.1"));
        let mut reader = MapReader::default();
        reader.set(app, "DisplayName", RegistryValue::sz("Agent"));
        reader.set(app, "DisplayVersion", RegistryValue::sz("7.1"));
        let mut i = Interpreter::new(
            sensor_windows::Policy::pci_windows(),
            VolumeMap::new(),
            Box::new(reader),
            RegistryBaseline::new(),
        );
        let h = Header {
            timestamp: 133_485_408_000_000_000,
            pid: 900,
            tid: 1,
            user_sid: Some("S-1-5-18".into()),
        };
        let key = r"\REGISTRY\MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{B1}";
        let t0 = Instant::now();
        let mut touched = 0;
        for v in ["DisplayName", "DisplayVersion"] {
            for c in i.push(&h, set(key, v)) {
                assert!(c.action.is_registry());
                touched += usize::from(tracker.touched(&c.path, Some(super::process(&c)), t0));
            }
        }
        assert_eq!(
            touched, 2,
            "the policy watches the Uninstall entries' names"
        );
        let (evs, _) = tracker.due(&tree, None, t0 + SETTLE);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].action, "package_installed");
        assert_eq!(evs[0].process().map(|p| p.pid), Some(900));
    }

    #[test]
    fn a_start_type_set_under_the_services_key_becomes_start_type_changed() {
        let svc = format!(r"{SERVICES_KEY}\Spooler");
        let mut tree = MapTree::default();
        tree.set(&svc, "Type", RegistryValue::dword(0x10));
        tree.set(&svc, "Start", RegistryValue::dword(2));
        let mut tracker = Tracker::new("h".into());
        tracker.start(&tree, None, None, None);
        tree.set(&svc, "Start", RegistryValue::dword(4));
        let mut reader = MapReader::default();
        reader.set(&svc, "Start", RegistryValue::dword(4));
        let mut i = Interpreter::new(
            sensor_windows::Policy::pci_windows(),
            VolumeMap::new(),
            Box::new(reader),
            RegistryBaseline::new(),
        );
        let h = Header {
            timestamp: 0,
            pid: 77,
            tid: 1,
            user_sid: None,
        };
        let t0 = Instant::now();
        let changes = i.push(
            &h,
            set(
                r"\REGISTRY\MACHINE\SYSTEM\CurrentControlSet\Services\Spooler",
                "Start",
            ),
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(tracker.touched(&changes[0].path, Some(super::process(&changes[0])), t0));
        let (evs, _) = tracker.due(&tree, None, t0 + SETTLE);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].action, "service_start_type_changed");
        assert_eq!(evs[0].process().map(|p| p.pid), Some(77));
    }
}
