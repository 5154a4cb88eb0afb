//! The registry side of baselines and scans (Windows), and registry changes
//! as events.
//!
//! Platform-neutral: the registry is read through [`RegistryTree`]
//! ([`WinTree`] on Windows, [`MapTree`] in tests), so the walk, the
//! comparison and the store rows are tested on Linux too.
//!
//! A registry change is a `kind: "file"` event whose `file.type` is
//! `registry_value` (or `registry_key`), whose `path` is `KEY\VALUE` (the
//! key for key events; Sysmon's TargetObject spelling) and whose
//! `details.registry` holds `key`, `value`, `before` and `after`, each state
//! `{"type": "REG_SZ", "data": "...", "size": N}` (`blake3` instead of `data`
//! for values over 4 KiB) or null (the value did not exist).
use crate::config::Config;
use crate::event::{Body, Event, FileChange, FileInfo, Process, Source};
use crate::scan::Findings;
use crate::store::{self, RegistryRow, Store};
use anyhow::Result;
use sensor_windows::baseline::RegistryData;
use sensor_windows::RegistryValue;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// How deep a recursive registry watch is walked below its key.
pub const MAX_DEPTH: usize = 16;

/// Read access to the registry (or a stand-in for tests).
pub trait RegistryTree {
    /// The value names and subkey names of `key`; None when it cannot be
    /// opened (absent or denied).
    fn list(&self, key: &str) -> Option<(Vec<String>, Vec<String>)>;
    /// A value's type and data; None when it is gone or unreadable.
    fn read(&self, key: &str, value: &str) -> Option<RegistryValue>;
}

/// An in-memory registry: `(key, value) → value`; keys exist when a value
/// or a subkey is under them.
#[derive(Debug, Default, Clone)]
pub struct MapTree {
    pub values: BTreeMap<(String, String), RegistryValue>,
}

impl MapTree {
    pub fn set(&mut self, key: &str, value: &str, v: RegistryValue) {
        self.values.insert((key.to_string(), value.to_string()), v);
    }
}

impl RegistryTree for MapTree {
    fn list(&self, key: &str) -> Option<(Vec<String>, Vec<String>)> {
        let lower = key.to_lowercase();
        let prefix = format!("{lower}\\");
        let mut values = Vec::new();
        let mut subkeys: Vec<String> = Vec::new();
        let mut found = false;
        for (k, v) in self.values.keys() {
            let kl = k.to_lowercase();
            if kl == lower {
                found = true;
                values.push(v.clone());
            } else if let Some(rest) = kl.strip_prefix(&prefix) {
                found = true;
                // The subkey's own spelling, from the stored key.
                let first =
                    &k[prefix.len()..prefix.len() + rest.split('\\').next().map_or(0, str::len)];
                if !subkeys.iter().any(|s| s.eq_ignore_ascii_case(first)) {
                    subkeys.push(first.to_string());
                }
            }
        }
        found.then_some((values, subkeys))
    }

    fn read(&self, key: &str, value: &str) -> Option<RegistryValue> {
        self.values
            .iter()
            .find(|((k, v), _)| k.eq_ignore_ascii_case(key) && v.eq_ignore_ascii_case(value))
            .map(|(_, v)| v.clone())
    }
}

/// The live registry through the Win32 API (sensor-windows' regread).
#[cfg(windows)]
pub struct WinTree;

#[cfg(windows)]
impl RegistryTree for WinTree {
    fn list(&self, key: &str) -> Option<(Vec<String>, Vec<String>)> {
        sensor_windows::regread::list(key)
    }

    fn read(&self, key: &str, value: &str) -> Option<RegistryValue> {
        use sensor_windows::RegistryReader;
        sensor_windows::regread::WinRegReader.read(key, value).ok()
    }
}

/// The sensor-windows policy (files and registry keys) of a Vigil policy:
/// the `[[watch]]`, `[[registry]]` and `ignore` entries as written, checked
/// again by sensor-windows (Windows path rules: case-insensitive, `*` within
/// one component).
pub fn windows_policy(cfg: &Config) -> Result<sensor_windows::Policy> {
    #[derive(serde::Serialize)]
    struct W<'a> {
        path: String,
        recursive: bool,
        include: &'a [String],
        ignore: &'a [String],
    }
    #[derive(serde::Serialize)]
    struct P<'a> {
        ignore: &'a [String],
        watch: Vec<W<'a>>,
        registry: &'a [crate::config::RegistryWatch],
    }
    let p = P {
        ignore: &cfg.ignore_globs,
        watch: cfg
            .watches
            .iter()
            .map(|w| W {
                path: w.path.display().to_string(),
                recursive: w.recursive,
                include: &w.include_globs,
                ignore: &w.ignore_globs,
            })
            .collect(),
        registry: &cfg.registry,
    };
    let text = toml::to_string(&p)?;
    Ok(sensor_windows::Policy::parse(
        &text,
        "<policy for the Windows sensor>",
    )?)
}

/// A registry value's state as events and the store show it.
pub fn state(v: &RegistryValue) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), v.type_name().into());
    match &v.data {
        RegistryData::Bytes(_) => m.insert("data".into(), v.display().into()),
        RegistryData::Blake3 { hex, .. } => m.insert("blake3".into(), hex.clone().into()),
    };
    m.insert("size".into(), v.size().into());
    serde_json::Value::Object(m)
}

/// One registry value found by a walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub value: RegistryValue,
    /// The policy key that covers it.
    pub watch: String,
}

/// Every value the policy's `[[registry]]` watches cover, by (key, value).
/// `HKCU\X` is every loaded user hive's `HKU\<SID>\X` (as ETW names them).
pub fn walk(
    policy: &sensor_windows::Policy,
    tree: &dyn RegistryTree,
) -> BTreeMap<(String, String), Found> {
    let mut out = BTreeMap::new();
    for w in &policy.registry {
        let depth = if w.recursive { MAX_DEPTH } else { 0 };
        for pattern in sensor_windows::paths::registry_pattern(&w.key) {
            for key in expand(tree, &pattern) {
                walk_key(policy, tree, &key, depth, &mut out);
            }
        }
    }
    out
}

fn walk_key(
    policy: &sensor_windows::Policy,
    tree: &dyn RegistryTree,
    key: &str,
    depth: usize,
    out: &mut BTreeMap<(String, String), Found>,
) {
    let Some((values, subkeys)) = tree.list(key) else {
        return;
    };
    for v in values {
        let Some(watch) = policy.registry_watch(key, Some(&v)) else {
            continue;
        };
        if let Some(value) = tree.read(key, &v) {
            let watch = watch.to_string();
            out.insert((key.to_string(), v), Found { value, watch });
        }
    }
    if depth > 0 {
        for s in subkeys {
            walk_key(
                policy,
                tree,
                &sensor_windows::paths::join(key, &s),
                depth - 1,
                out,
            );
        }
    }
}

/// The existing keys a pattern with `*` components names (`HKU\*\Software`).
fn expand(tree: &dyn RegistryTree, pattern: &str) -> Vec<String> {
    let mut keys = vec![String::new()];
    for comp in pattern.split('\\') {
        let mut next = Vec::new();
        for k in &keys {
            if !comp.contains('*') {
                next.push(sensor_windows::paths::join(k, comp));
                continue;
            }
            let Ok(g) = globset::GlobBuilder::new(comp)
                .case_insensitive(true)
                .build()
                .map(|g| g.compile_matcher())
            else {
                continue;
            };
            if let Some((_, subkeys)) = tree.list(k) {
                next.extend(
                    subkeys
                        .iter()
                        .filter(|s| g.is_match(s.as_str()))
                        .map(|s| sensor_windows::paths::join(k, s)),
                );
            }
        }
        keys = next;
    }
    keys
}

/// Records every watched value in the store, replacing what it held;
/// returns how many values were recorded.
pub fn baseline(
    store: &Store,
    policy: &sensor_windows::Policy,
    tree: &dyn RegistryTree,
) -> Result<u64> {
    let now = store::now();
    let found = walk(policy, tree);
    store.begin()?;
    let r = (|| -> Result<()> {
        for row in store.registry_rows()? {
            if !found.contains_key(&(row.key.clone(), row.value.clone())) {
                store.delete_registry(&row.key, &row.value)?;
            }
        }
        for ((key, value), f) in &found {
            store.put_registry(&RegistryRow {
                key: key.clone(),
                value: value.clone(),
                state: state(&f.value),
                watch: Some(f.watch.clone()),
                verified_at: now.clone(),
                updated_at: now.clone(),
            })?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => store.commit()?,
        Err(e) => {
            let _ = store.conn().execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(found.len() as u64)
}

/// What a registry scan saw.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScanSummary {
    pub values_seen: u64,
    pub changes: u64,
}

/// Compares the watched values with the registry baseline and reports each
/// difference: `value_set` (new or changed; `before` null for a new value)
/// and `value_deleted`. Findings are unattributed (`details.unattributed`)
/// and carry `scan_id`. The baseline is not changed (`vigil baseline update`
/// re-records it).
pub fn scan(
    store: &Store,
    policy: &sensor_windows::Policy,
    tree: &dyn RegistryTree,
    out: &mut dyn Findings,
    scan_id: i64,
) -> Result<ScanSummary> {
    let found = walk(policy, tree);
    let rows: BTreeMap<(String, String), RegistryRow> = store
        .registry_rows()?
        .into_iter()
        .map(|r| ((r.key.clone(), r.value.clone()), r))
        .collect();
    let mut sum = ScanSummary {
        values_seen: found.len() as u64,
        changes: 0,
    };
    let mut details = crate::event::Details::new();
    details.insert("scan_id", scan_id.into());
    details.insert("unattributed", true.into());
    let process = crate::scan::unattributed_process();
    for ((key, value), f) in &found {
        let now = state(&f.value);
        let before = rows.get(&(key.clone(), value.clone())).map(|r| &r.state);
        if before == Some(&now) {
            continue;
        }
        let ev = event(
            out.host(),
            "value_set",
            key,
            Some(value),
            before.cloned(),
            Some(now),
            Some(f.watch.clone()),
            process.clone(),
            "scan",
            details.clone(),
        );
        out.report(store, ev, Instant::now())?;
        sum.changes += 1;
    }
    for ((key, value), row) in &rows {
        if found.contains_key(&(key.clone(), value.clone())) {
            continue;
        }
        let ev = event(
            out.host(),
            "value_deleted",
            key,
            Some(value),
            Some(row.state.clone()),
            None,
            row.watch.clone(),
            process.clone(),
            "scan",
            details.clone(),
        );
        out.report(store, ev, Instant::now())?;
        sum.changes += 1;
    }
    Ok(sum)
}

/// [`scan`], recorded in the store's `scans` table (kind `kind`, paths the
/// policy's registry keys) like a file scan. Returns the scan id.
pub fn scan_recorded(
    store: &Store,
    policy: &sensor_windows::Policy,
    tree: &dyn RegistryTree,
    out: &mut dyn Findings,
    kind: &str,
) -> Result<(i64, ScanSummary)> {
    let keys: Vec<String> = policy.registry.iter().map(|w| w.key.clone()).collect();
    let id = store.scan_started(kind, &keys, false)?;
    let r = scan(store, policy, tree, out, id);
    match &r {
        Ok(s) => store.scan_finished(id, "ok", s.values_seen, s.changes, 0, None)?,
        Err(e) => store.scan_finished(id, "failed", 0, 0, 0, Some(&format!("{e:#}")))?,
    }
    out.flush()?;
    Ok((id, r?))
}

/// A registry change as an event (before rules). `value` None: a key event
/// (`key_created`, `key_deleted`, `key_permissions_changed`).
#[allow(clippy::too_many_arguments)]
pub fn event(
    host: &str,
    action: &'static str,
    key: &str,
    value: Option<&str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    watch: Option<String>,
    process: Arc<Process>,
    tier: &'static str,
    mut details: crate::event::Details,
) -> Event {
    let path = match value {
        Some(v) => format!("{key}\\{v}"),
        None => key.to_string(),
    };
    let mut reg = serde_json::Map::new();
    reg.insert("key".into(), key.into());
    if let Some(v) = value {
        reg.insert("value".into(), v.into());
        reg.insert("before".into(), before.unwrap_or(serde_json::Value::Null));
        reg.insert("after".into(), after.unwrap_or(serde_json::Value::Null));
    }
    details.insert("registry", serde_json::Value::Object(reg));
    Event::new(
        "file",
        action,
        store::now(),
        host,
        Body::File(Box::new(FileChange {
            path: path.into(),
            target_path: None,
            file: FileInfo {
                file_type: if value.is_some() {
                    "registry_value"
                } else {
                    "registry_key"
                },
                inode: None,
                dev: None,
                path_truncated: false,
            },
            before: None,
            after: None,
            fields_changed: Vec::new(),
            diff: None,
            watch: watch.as_deref().map(crate::event::interned),
            process,
            source: Source {
                tier,
                syscall: "none",
                decided_by: "path",
            },
            details,
            related: Vec::new(),
            package: None,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect {
        events: Vec<Event>,
    }

    impl Findings for Collect {
        fn host(&self) -> &str {
            "h"
        }
        fn report(&mut self, _: &Store, ev: Event, _: Instant) -> Result<()> {
            self.events.push(ev);
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn policy() -> sensor_windows::Policy {
        let cfg = Config::parse(
            "[[registry]]\nkey = 'HKCU\\Software\\VigilTest'\n\
             [[registry]]\nkey = 'HKLM\\SOFTWARE\\Run'\nrecursive = false\nvalues = ['Keep*']\n",
            "t",
        )
        .unwrap();
        windows_policy(&cfg).unwrap()
    }

    const USER: &str = "HKU\\S-1-5-21-1-2-3-1000\\Software\\VigilTest";

    fn tree() -> MapTree {
        let mut t = MapTree::default();
        t.set(USER, "Existing", RegistryValue::sz("old"));
        t.set(&format!("{USER}\\Sub"), "Deep", RegistryValue::dword(7));
        t.set("HKLM\\SOFTWARE\\Run", "KeepMe", RegistryValue::sz("a.exe"));
        t.set("HKLM\\SOFTWARE\\Run", "Other", RegistryValue::sz("b.exe"));
        t.set(
            "HKLM\\SOFTWARE\\Run\\Nested",
            "KeepDeep",
            RegistryValue::sz("c"),
        );
        t
    }

    fn reg(ev: &Event) -> &serde_json::Value {
        &ev.file().unwrap().details["registry"]
    }

    #[test]
    fn walk_expands_hkcu_to_user_hives_and_honours_values_and_recursion() {
        let found = walk(&policy(), &tree());
        let names: Vec<String> = found.keys().map(|(k, v)| format!("{k}\\{v}")).collect();
        assert_eq!(
            names,
            vec![
                "HKLM\\SOFTWARE\\Run\\KeepMe".to_string(),
                format!("{USER}\\Existing"),
                format!("{USER}\\Sub\\Deep"),
            ]
        );
        assert_eq!(found.values().next().unwrap().watch, "HKLM\\SOFTWARE\\Run");
    }

    #[test]
    fn scan_reports_a_new_value_with_empty_before_then_changes_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Store::open(&dir.path().join("v.db")).unwrap();
        let p = policy();
        let mut t = tree();
        assert_eq!(baseline(&db, &p, &t).unwrap(), 3);
        assert_eq!(db.registry_count().unwrap(), 3);
        let mut out = Collect { events: Vec::new() };
        let s = scan(&db, &p, &t, &mut out, 1).unwrap();
        assert_eq!((s.values_seen, s.changes), (3, 0), "{:?}", out.events);

        // reg add ... /v FIMTEST /d FIMTEST, a changed value, a deleted one.
        t.set(USER, "FIMTEST", RegistryValue::sz("FIMTEST"));
        t.set(USER, "Existing", RegistryValue::sz("new"));
        t.values
            .remove(&(format!("{USER}\\Sub"), "Deep".to_string()));
        let s = scan(&db, &p, &t, &mut out, 2).unwrap();
        assert_eq!(s.changes, 3);
        let by_path = |p: &str| {
            out.events
                .iter()
                .find(|e| &*e.file().unwrap().path == p)
                .unwrap_or_else(|| panic!("no finding for {p}"))
        };
        let new = by_path(&format!("{USER}\\FIMTEST"));
        assert_eq!(new.action, "value_set");
        assert_eq!(new.file().unwrap().file.file_type, "registry_value");
        assert_eq!(reg(new)["before"], serde_json::Value::Null);
        assert_eq!(
            reg(new)["after"],
            serde_json::json!({"type": "REG_SZ", "data": "FIMTEST", "size": 16})
        );
        assert_eq!(reg(new)["key"], USER);
        assert_eq!(reg(new)["value"], "FIMTEST");
        assert_eq!(new.file().unwrap().details["unattributed"], true);
        let changed = by_path(&format!("{USER}\\Existing"));
        assert_eq!(reg(changed)["before"]["data"], "old");
        assert_eq!(reg(changed)["after"]["data"], "new");
        let gone = by_path(&format!("{USER}\\Sub\\Deep"));
        assert_eq!(gone.action, "value_deleted");
        assert_eq!(reg(gone)["before"]["data"], "7");
        assert_eq!(reg(gone)["after"], serde_json::Value::Null);

        // Re-baselined: nothing to report.
        baseline(&db, &p, &t).unwrap();
        out.events.clear();
        assert_eq!(scan(&db, &p, &t, &mut out, 3).unwrap().changes, 0);
    }

    #[test]
    fn large_values_are_kept_as_digests() {
        let v = RegistryValue::new(3, &vec![7u8; 5000]);
        let s = state(&v);
        assert_eq!(s["type"], "REG_BINARY");
        assert_eq!(s["size"], 5000);
        assert!(s.get("data").is_none());
        assert_eq!(s["blake3"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn bad_registry_hives_name_line_and_column() {
        let e = Config::parse("\n[[registry]]\nkey = 'HKXX\\Software'\n", "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (3, 7), "{e}");
        assert!(e.to_string().contains("HKLM\\, HKCU\\"), "{e}");
    }
}
