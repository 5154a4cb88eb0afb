//! Recorded ETW sequences as NDJSON, for replay in tests.
//!
//! The interpreter's tests use synthetic sequences; the way to check them
//! against Windows is to record what a real host emits (the `etw_record`
//! example, run elevated on Windows, writes this format) and replay it here
//! on any platform. One JSON object per line:
//!
//! ```text
//! {"volume":{"device":"\\Device\\HarddiskVolume3","drive":"C:"}}
//! {"event":{"header":{"timestamp":133...,"pid":4242,"tid":4243,"user_sid":"S-1-5-21-..."},
//!           "record":{"FileCreate":{"irp":1,"file_object":1,...}}}}
//! ```
//!
//! Blank lines and lines starting with `#` are comments. Errors name the
//! origin and line.
use serde::{Deserialize, Serialize};

use crate::paths::VolumeMap;
use crate::records::{Header, Record};

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// An NT device and the drive letter it had on the recording host.
    Volume { device: String, drive: String },
    /// One ETW record.
    Event { header: Header, record: Record },
}

/// A parsed recording.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub volumes: VolumeMap,
    pub events: Vec<(Header, Record)>,
}

/// A line that is not a recording line.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}: {message}")]
pub struct ReplayError {
    pub origin: String,
    pub line: usize,
    pub message: String,
}

/// The NDJSON line of a record (no newline).
pub fn event_line(header: &Header, record: &Record) -> String {
    serde_json::to_string(&Line::Event {
        header: header.clone(),
        record: record.clone(),
    })
    .expect("records serialize")
}

/// The NDJSON lines of a volume map (no trailing newline).
pub fn volume_lines(volumes: &VolumeMap) -> Vec<String> {
    volumes
        .iter()
        .map(|(device, drive)| {
            serde_json::to_string(&Line::Volume {
                device: device.to_string(),
                drive: drive.to_string(),
            })
            .expect("volumes serialize")
        })
        .collect()
}

/// Parses a recording; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Recording, ReplayError> {
    let mut rec = Recording::default();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let line: Line = serde_json::from_str(l).map_err(|e| ReplayError {
            origin: origin.to_string(),
            line: i + 1,
            message: e.to_string(),
        })?;
        match line {
            Line::Volume { device, drive } => rec.volumes.insert(&device, &drive),
            Line::Event { header, record } => rec.events.push((header, record)),
        }
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{MapReader, RegistryBaseline, RegistryValue};
    use crate::interpreter::Interpreter;
    use crate::policy::Policy;

    /// A hand-written recording in the format `etw_record` writes (not from
    /// a real host): `reg add HKLM\SOFTWARE\Vigil /v FIMTEST /d FIMTEST`
    /// and an in-place write of hosts.
    const SAMPLE: &str = include_str!("../tests/sequences/sample.ndjson");

    #[test]
    fn a_recording_replays_through_the_interpreter() {
        let rec = parse(SAMPLE, "sample.ndjson").unwrap();
        assert_eq!(rec.volumes.to_dos(r"\Device\HarddiskVolume3\x"), r"C:\x");
        let mut reader = MapReader::default();
        reader.set(
            r"HKLM\SOFTWARE\Vigil",
            "FIMTEST",
            RegistryValue::sz("FIMTEST"),
        );
        let mut i = Interpreter::new(
            Policy::pci_windows(),
            rec.volumes.clone(),
            Box::new(reader),
            RegistryBaseline::new(),
        );
        let changes: Vec<_> = rec
            .events
            .iter()
            .flat_map(|(h, r)| i.push(h, r.clone()))
            .collect();
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.action.as_str(), c.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("key_created", r"HKLM\SOFTWARE\Vigil"),
                ("value_set", r"HKLM\SOFTWARE\Vigil"),
                ("modified", r"C:\Windows\System32\drivers\etc\hosts"),
            ]
        );
        let v = changes[1].value.as_ref().unwrap();
        assert_eq!(
            (v.before.as_ref(), v.after.as_ref().map(|a| a.display())),
            (None, Some("FIMTEST".into()))
        );
        assert_eq!(
            changes[2].process.as_ref().and_then(|p| p.image.as_deref()),
            Some(r"C:\Windows\System32\notepad.exe")
        );
    }

    #[test]
    fn lines_round_trip_and_errors_name_the_line() {
        let h = Header {
            timestamp: 1,
            pid: 2,
            tid: 3,
            user_sid: None,
        };
        let r = Record::Lost {
            events: 4,
            buffers: 5,
        };
        let vols = VolumeMap::new().with(r"\Device\HarddiskVolume1", "C:");
        let text = format!(
            "{}\n# c\n\n{}\n",
            volume_lines(&vols).join("\n"),
            event_line(&h, &r)
        );
        let rec = parse(&text, "t").unwrap();
        assert_eq!(rec.events, vec![(h, r)]);
        assert_eq!(rec.volumes.to_dos(r"\Device\HarddiskVolume1\a"), r"C:\a");
        let e = parse("\n{\"event\":{}}\n", "bad.ndjson").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(
            e.to_string().starts_with("bad.ndjson:2: missing field"),
            "{e}"
        );
    }
}
