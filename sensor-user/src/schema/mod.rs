//! Serializing events: the native schema, OCSF 1.x and ECS, chosen per sink.
use crate::event::Event;
use serde::Deserialize;

pub mod ecs;
pub mod native;
pub mod ocsf;

/// The schema a sink writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `vigil/0.2`, see docs/event-schema.md.
    #[default]
    Native,
    /// OCSF 1.x File System Activity (class_uid 1001).
    Ocsf,
    /// Elastic Common Schema.
    Ecs,
}

/// One event as a single line of JSON in `format` (no trailing newline).
pub fn render(format: Format, ev: &Event) -> Vec<u8> {
    // Sized for a typical event (growing a small buffer by doubling copies the
    // line several times), with room for the chain to be appended in place.
    let mut out = Vec::with_capacity(4096);
    render_into(format, ev, &mut out);
    out
}

/// As [`render`], into `out` (cleared first): a caller that renders many
/// events keeps one buffer instead of allocating one a line.
pub fn render_into(format: Format, ev: &Event, out: &mut Vec<u8>) {
    out.clear();
    match format {
        Format::Native => native_into(ev, out),
        Format::Ocsf => to_json_into(&ocsf::map(ev), out),
        Format::Ecs => to_json_into(&ecs::map(ev), out),
    }
}

fn to_json_into<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    serde_json::to_writer(out, v).expect("events serialize: all keys are strings");
}

/// The native rendering: file events by [`native`], the rest (rare) by serde.
fn native_into(ev: &Event, out: &mut Vec<u8>) {
    if !native::write_file_event(out, ev) {
        to_json_into(ev, out);
    }
}

/// What a chained run adds to every event: the host key's id and the event's
/// link in the hash chain (see `crate::integrity`).
#[derive(Debug, Clone, Copy)]
pub struct Seal<'a> {
    pub key_id: &'a str,
    pub chain: &'a str,
}

/// The canonical bytes of a chained event: its native rendering with
/// `key_id` (after every other member) and without `chain`. The sealed line
/// is these bytes with `,"chain":"<hex>"` inserted before the final `}`.
pub fn native_canonical(ev: &Event, key_id: &str) -> Vec<u8> {
    let mut out = render(Format::Native, ev);
    // `key_id` as the last member: before the closing brace.
    debug_assert_eq!(out.last(), Some(&b'}'));
    out.pop();
    out.extend_from_slice(b",\"key_id\":");
    serde_json::to_writer(&mut out, key_id).expect("strings serialize");
    out.push(b'}');
    out
}

/// One event as a single line of JSON in `format`, carrying `key_id` and
/// `chain`: native, as the last members; OCSF, `unmapped.key_id` and
/// `unmapped.chain` (next to `metadata.sequence`); ECS, `event.hash` (the
/// chain) and `vigil.key_id` (next to `event.sequence`).
pub fn render_sealed(format: Format, ev: &Event, seal: Seal) -> Vec<u8> {
    use serde_json::{json, Value};
    let mut v = match format {
        Format::Native => {
            return crate::integrity::append_chain(&native_canonical(ev, seal.key_id), seal.chain)
        }
        Format::Ocsf => ocsf::map(ev),
        Format::Ecs => ecs::map(ev),
    };
    let obj = v.as_object_mut().expect("mappings are objects");
    let (outer, key_id_in) = match format {
        Format::Ocsf => ("unmapped", "unmapped"),
        _ => ("event", "vigil"),
    };
    let chain_key = if format == Format::Ocsf {
        "chain"
    } else {
        "hash"
    };
    if let Value::Object(m) = obj.entry(outer).or_insert_with(|| json!({})) {
        m.insert(chain_key.into(), json!(seal.chain));
    }
    if let Value::Object(m) = obj.entry(key_id_in).or_insert_with(|| json!({})) {
        m.insert("key_id".into(), json!(seal.key_id));
    }
    serde_json::to_vec(&v).expect("events serialize: all keys are strings")
}

// Helpers shared by the mappings.

/// RFC 3339 to milliseconds since the Unix epoch (OCSF `timestamp_t`).
pub(crate) fn epoch_ms(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The last component of a path (`/etc/passwd` → `passwd`).
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The directory holding a path (`/etc/passwd` → `/etc`, `/etc` → `/`).
pub(crate) fn parent_dir(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// The extension without the dot (`a.tar.gz` → `gz`); none for `.bashrc`.
pub(crate) fn extension(path: &str) -> Option<&str> {
    let name = file_name(path);
    match name.rfind('.') {
        Some(0) | None => None,
        Some(i) if i + 1 == name.len() => None,
        Some(i) => Some(&name[i + 1..]),
    }
}

/// Drops nulls, and objects and arrays left empty by that, so the mappings
/// can list every field with `json!` and leave absent values as `None`.
pub(crate) fn prune(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        }
    }
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).filter(|v| !empty(v)).collect()),
        v => v,
    }
}

/// MITRE ATT&CK ids split into techniques and sub-techniques:
/// `T1098.004` → technique `T1098`, sub-technique `T1098.004`.
pub(crate) fn attack_ids(ids: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut techniques = Vec::new();
    let mut subs = Vec::new();
    for id in ids {
        let t = id.split('.').next().unwrap_or(id);
        if !techniques.contains(&t) {
            techniques.push(t);
        }
        if t.len() < id.len() {
            subs.push(id.as_str());
        }
    }
    (techniques, subs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts() {
        assert_eq!(file_name("/etc/passwd"), "passwd");
        assert_eq!(parent_dir("/etc/passwd"), Some("/etc"));
        assert_eq!(parent_dir("/etc"), Some("/"));
        assert_eq!(parent_dir("/"), None);
        assert_eq!(extension("/a/b.tar.gz"), Some("gz"));
        assert_eq!(extension("/root/.bashrc"), None);
        assert_eq!(extension("/tmp/x."), None);
        assert_eq!(extension("/usr/bin/ls"), None);
    }

    #[test]
    fn epoch_ms_keeps_milliseconds() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.234567890Z"), Some(1234));
        assert_eq!(epoch_ms("not a time"), None);
    }

    #[test]
    fn prune_drops_nulls_and_empties() {
        let v =
            prune(serde_json::json!({"a": null, "b": {"c": null}, "d": [null], "e": 0, "f": ""}));
        assert_eq!(v, serde_json::json!({"e": 0, "f": ""}));
    }

    #[test]
    fn attack_ids_split() {
        let ids = vec![
            "T1098.004".to_string(),
            "T1098".to_string(),
            "T1543.002".to_string(),
        ];
        let (t, s) = attack_ids(&ids);
        assert_eq!(t, vec!["T1098", "T1543"]);
        assert_eq!(s, vec!["T1098.004", "T1543.002"]);
    }
}
