//! From ETW record sequences to changes: the Windows sensor's state machine.
//!
//! Kernel-File reports steps, not changes: an open (Create) names a file
//! object, writes and set-information calls name only the object, the last
//! handle's Cleanup ends the open, Close frees the object. So the interpreter
//! keeps one *session* per FileObject (its path, process, and what happened to
//! it) and settles it at Cleanup: one `created`, `modified` or `deleted` per
//! open, the way the Linux side reports one change per open and settles it at
//! the last close. Renames and security changes are reported when they happen.
//!
//! Kernel-Registry names keys by KeyObject, with a full name only at open, so
//! the interpreter keeps KeyObject → key path from CreateKey/OpenKey and drops
//! it at CloseKey. Set-value changes carry the value's before (from the
//! [`RegistryBaseline`]) and after (read through the [`RegistryReader`]).
//!
//! Only changes under a watched path or key come out; everything else only
//! updates the maps. Nothing panics on odd input: unknown objects, failed
//! operations and malformed records are counted in [`Stats`].
use std::collections::HashMap;
use std::sync::Arc;

use crate::baseline::{ReadError, RegistryBaseline, RegistryReader, RegistryValue};
use crate::paths::{self, VolumeMap};
use crate::policy::Policy;
use crate::process::{ProcessInfo, ProcessTable};
use crate::records::{nt, FileIo, Header, PathOp, Record, SetInfoOp};

/// At most this many open-file sessions and key objects are tracked; beyond
/// that, sessions that have nothing to report are dropped first (creates
/// that failed never get a Cleanup, so their sessions would otherwise stay).
pub const MAX_SESSIONS: usize = 1 << 16;
/// At most this many KeyObject names are kept (CloseKey normally drops them).
pub const MAX_KEYS: usize = 1 << 16;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A file or directory was created (settled at the creating open's cleanup).
    Created,
    /// A file's content changed: written, truncated or extended (once per open).
    Modified,
    /// A file or directory was deleted (SetDisposition, delete-on-close, DeletePath).
    Deleted,
    /// Renamed; `target` is the new path (None when ETW did not say).
    Renamed,
    /// A hard link `target` was made to `path`.
    Linked,
    /// Attributes or timestamps changed (FileBasicInformation).
    AttributesChanged,
    /// The security descriptor (owner, DACL, SACL) changed.
    PermissionsChanged,
    /// A registry key was created.
    KeyCreated,
    /// A registry key was deleted.
    KeyDeleted,
    /// A key's security descriptor changed.
    KeyPermissionsChanged,
    /// A registry value was set; see [`Change::value`].
    ValueSet,
    /// A registry value was deleted.
    ValueDeleted,
    /// ETW lost events: the caller emits `sensor.gap` and rescans.
    Gap,
}

impl Action {
    /// The action's name in Vigil's events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Modified => "modified",
            Action::Deleted => "deleted",
            Action::Renamed => "renamed",
            Action::Linked => "linked",
            Action::AttributesChanged => "attributes_changed",
            Action::PermissionsChanged => "permissions_changed",
            Action::KeyCreated => "key_created",
            Action::KeyDeleted => "key_deleted",
            Action::KeyPermissionsChanged => "key_permissions_changed",
            Action::ValueSet => "value_set",
            Action::ValueDeleted => "value_deleted",
            Action::Gap => "gap",
        }
    }

    /// A registry change (path is a key).
    pub fn is_registry(self) -> bool {
        matches!(
            self,
            Action::KeyCreated
                | Action::KeyDeleted
                | Action::KeyPermissionsChanged
                | Action::ValueSet
                | Action::ValueDeleted
        )
    }
}

/// A registry value's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueChange {
    /// The value name (empty: the key's default value).
    pub name: String,
    /// From the baseline (or, failing that, the event's own PreviousData);
    /// None for a new value.
    pub before: Option<RegistryValue>,
    /// Read after the event; None when deleted or unreadable (see `note`).
    pub after: Option<RegistryValue>,
    /// Why `after` (or `before`) is missing or where it came from.
    pub note: Option<String>,
}

/// One change, in plain Rust; sensor-user maps it into its `Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// FILETIME of the record that completed the change.
    pub time: u64,
    pub action: Action,
    /// A file path (DOS form where the volume is known) or a registry key
    /// (`HKLM\...`); empty for a gap.
    pub path: String,
    /// Rename and link target.
    pub target: Option<String>,
    /// The policy watch (path or key as written) that covers the change.
    pub watch: Option<String>,
    pub pid: u32,
    pub tid: u32,
    /// The user whose token made the change (the opener's, for files), from
    /// the records' SID extended data; None when ETW did not attach one.
    pub user_sid: Option<String>,
    pub process: Option<Arc<ProcessInfo>>,
    pub value: Option<ValueChange>,
    /// Gap: events ETW lost since the previous gap.
    pub lost: Option<u64>,
    /// Qualifiers: the ETW event that completed the change, InfoClass, lost
    /// buffers, why a target is unknown...
    pub details: Vec<(&'static str, String)>,
}

/// Counters of what the interpreter saw but could not or did not report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub changes: u64,
    /// Records skipped by the caller because a field was missing or malformed.
    pub malformed: u64,
    /// File events on a FileObject/FileKey never seen opened or named.
    pub unknown_file_objects: u64,
    /// Registry events whose key could not be named.
    pub unresolved_keys: u64,
    /// Registry operations that failed (non-zero Status): nothing changed.
    pub failed_registry_ops: u64,
    /// Set-value events that left a watched value as the baseline had it.
    pub unchanged_values: u64,
    /// Values that could not be read after a set.
    pub read_errors: u64,
    /// Sessions or key names dropped because the maps were full.
    pub evicted: u64,
    /// Opens whose FileObject was opened again before their Cleanup was
    /// seen (a lost Cleanup, or a Create that failed).
    pub replaced_sessions: u64,
    /// Events ETW reported lost.
    pub lost_events: u64,
    pub lost_buffers: u64,
}

/// Who made a change: process, thread and token user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Actor {
    pid: u32,
    tid: u32,
    sid: Option<String>,
}

impl Actor {
    fn of(h: &Header) -> Actor {
        Actor {
            pid: h.pid,
            tid: h.tid,
            sid: h.user_sid.clone(),
        }
    }
}

/// One open of a file (one FileObject) while it lasts.
#[derive(Debug, Clone)]
struct Session {
    path: String,
    /// Who opened the file: changes settled later (even by the System
    /// process's lazy writer) are theirs.
    who: Actor,
    file_key: u64,
    /// CreateNewFile: this open created the file.
    created: bool,
    /// Opened with a superseding or overwriting disposition (content replaced).
    truncated: bool,
    written: bool,
    attrs: bool,
    delete_on_close: bool,
    delete_pending: bool,
    /// A RenamePath whose target is not known yet (the path it named).
    rename_pending: Option<String>,
    /// Cleanup already reported this open's content change: writes after it
    /// are the cache manager flushing the same data, not a new change.
    content_reported: bool,
    /// FILETIME of this open's Cleanup.
    cleaned_at: Option<u64>,
}

impl Session {
    fn new(path: String, who: Actor) -> Session {
        Session {
            path,
            who,
            file_key: 0,
            created: false,
            truncated: false,
            written: false,
            attrs: false,
            delete_on_close: false,
            delete_pending: false,
            rename_pending: None,
            content_reported: false,
            cleaned_at: None,
        }
    }

    /// Something seen after the open shows that the open succeeded.
    fn proven(&self) -> bool {
        self.created
            || self.written
            || self.attrs
            || self.delete_pending
            || self.rename_pending.is_some()
    }

    /// Something will be reported at cleanup or close.
    fn dirty(&self) -> bool {
        self.created
            || self.truncated
            || self.written
            || self.attrs
            || self.delete_on_close
            || self.delete_pending
            || self.rename_pending.is_some()
    }
}

/// The state machine. Feed it records in order with [`Interpreter::push`].
pub struct Interpreter {
    policy: Policy,
    volumes: VolumeMap,
    reader: Box<dyn RegistryReader>,
    baseline: RegistryBaseline,
    processes: ProcessTable,
    /// FileObject → its open.
    sessions: HashMap<u64, Session>,
    /// FileKey → the file's current name (NameCreate/NameDelete, opens).
    file_names: HashMap<u64, String>,
    /// KeyObject → key path (short form).
    keys: HashMap<u64, String>,
    /// Lower-cased path → FILETIME of its last reported content change.
    content_reports: HashMap<String, u64>,
    stats: Stats,
}

impl Interpreter {
    /// An interpreter for `policy`, naming volumes with `volumes`, reading
    /// values through `reader`, starting from `baseline` (see
    /// `regread::seed_policy` on Windows).
    pub fn new(
        policy: Policy,
        volumes: VolumeMap,
        reader: Box<dyn RegistryReader>,
        baseline: RegistryBaseline,
    ) -> Interpreter {
        Interpreter {
            policy,
            volumes,
            reader,
            baseline,
            processes: ProcessTable::new(),
            sessions: HashMap::new(),
            file_names: HashMap::new(),
            keys: HashMap::new(),
            content_reports: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// What was counted so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The registry baseline as the changes left it.
    pub fn baseline(&self) -> &RegistryBaseline {
        &self.baseline
    }

    /// The process table.
    pub fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    /// The caller skipped a record it could not parse (counted, not fatal).
    pub fn count_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    /// Takes one record; returns the changes it completes, in order.
    pub fn push(&mut self, h: &Header, rec: Record) -> Vec<Change> {
        self.stats.records += 1;
        let mut out = Vec::new();
        match rec {
            Record::FileNameCreate {
                file_key,
                file_name,
            } => {
                let name = self.volumes.to_dos(&file_name);
                self.name_created(h, file_key, name, &mut out);
            }
            Record::FileNameDelete { file_key, .. } => {
                self.file_names.remove(&file_key);
            }
            Record::FileCreate {
                file_object,
                create_options,
                file_name,
                new_file,
                ..
            } => self.file_create(
                h,
                file_object,
                create_options,
                &file_name,
                new_file,
                &mut out,
            ),
            Record::FileWrite { io, .. } => {
                if let Some(s) = self.session(h, &io) {
                    s.written = true;
                }
            }
            Record::FileSetInfo {
                op, io, info_class, ..
            } => self.set_info(h, op, &io, info_class, &mut out),
            Record::FilePathOp {
                op, io, file_path, ..
            } => {
                let path = self.volumes.to_dos(&file_path);
                self.path_op(h, op, &io, path, &mut out);
            }
            Record::FileCleanup(io) => {
                if let Some(mut s) = self.sessions.remove(&io.file_object) {
                    self.settle(h, &mut s, "Cleanup", &mut out);
                    self.sessions.insert(io.file_object, s);
                }
            }
            Record::FileClose(io) => {
                // Writes after cleanup (the cache manager flushing) still count.
                if let Some(mut s) = self.sessions.remove(&io.file_object) {
                    self.settle(h, &mut s, "Close", &mut out);
                }
            }
            Record::RegOpenKey {
                base_object,
                key_object,
                status,
                disposition,
                base_name,
                relative_name,
                create,
            } => {
                if status != 0 {
                    self.stats.failed_registry_ops += u64::from(create);
                    return out;
                }
                let full = paths::registry_object(&relative_name).or_else(|| {
                    let base = (base_object != 0)
                        .then(|| self.keys.get(&base_object).cloned())
                        .flatten()
                        .or_else(|| paths::registry_object(&base_name))?;
                    // A key opened relative to HKLM\SYSTEM can name the
                    // control set by number.
                    Some(paths::current_control_set(paths::join(
                        &base,
                        &relative_name,
                    )))
                });
                let Some(full) = full else {
                    self.stats.unresolved_keys += 1;
                    return out;
                };
                if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(&key_object) {
                    // Names of keys closed while events were lost; start over.
                    self.stats.evicted += self.keys.len() as u64;
                    self.keys.clear();
                }
                self.keys.insert(key_object, full.clone());
                if create && disposition == nt::REG_CREATED_NEW_KEY {
                    self.registry_change(h, Action::KeyCreated, full, None, "CreateKey", &mut out);
                }
            }
            Record::RegCloseKey { key_object, .. } => {
                self.keys.remove(&key_object);
            }
            Record::RegDeleteKey {
                key_object,
                status,
                key_name,
            } => {
                if let Some(key) = self.registry_key(key_object, status, &key_name) {
                    if self.policy.registry_watch(&key, None).is_some() {
                        self.baseline.remove_key(&key);
                    }
                    self.registry_change(h, Action::KeyDeleted, key, None, "DeleteKey", &mut out);
                }
            }
            Record::RegSetSecurity {
                key_object,
                status,
                key_name,
            } => {
                if let Some(key) = self.registry_key(key_object, status, &key_name) {
                    let a = Action::KeyPermissionsChanged;
                    self.registry_change(h, a, key, None, "SetSecurityKey", &mut out);
                }
            }
            Record::RegSetValue {
                key_object,
                status,
                value_type,
                data_size,
                key_name,
                value_name,
                captured_data,
                previous_data_type,
                previous_data_size,
                previous_data,
            } => {
                let Some(key) = self.registry_key(key_object, status, &key_name) else {
                    return out;
                };
                if self
                    .policy
                    .registry_watch(&key, Some(&value_name))
                    .is_none()
                {
                    return out;
                }
                // The event's own copies count only when complete.
                let captured = captured_data
                    .filter(|d| d.len() as u64 == u64::from(data_size))
                    .map(|d| RegistryValue::new(value_type, &d));
                let previous = match (previous_data, previous_data_type, previous_data_size) {
                    (Some(d), Some(t), Some(n)) if d.len() as u64 == u64::from(n) => {
                        Some(RegistryValue::new(t, &d))
                    }
                    _ => None,
                };
                let mut notes: Vec<String> = Vec::new();
                let before = match self.baseline.get(&key, &value_name).cloned() {
                    Some(b) => Some(b),
                    None if previous.is_some() => {
                        notes.push("before from the event's PreviousData".into());
                        previous
                    }
                    None => None,
                };
                // The event's complete CapturedData is this set's own data;
                // a read can already see a later set.
                let after = match captured {
                    Some(c) => Some(c),
                    None => match self.reader.read(&key, &value_name) {
                        Ok(v) => Some(v),
                        Err(ReadError::NotFound { .. }) => {
                            self.stats.read_errors += 1;
                            notes.push("deleted again before it could be read".into());
                            None
                        }
                        Err(ReadError::Failed { message, .. }) => {
                            self.stats.read_errors += 1;
                            notes.push(format!("unreadable after the change: {message}"));
                            None
                        }
                    },
                };
                if before.is_some() && before == after {
                    self.stats.unchanged_values += 1;
                    return out;
                }
                match &after {
                    Some(a) => self.baseline.set(&key, &value_name, a.clone()),
                    None => self.baseline.remove(&key, &value_name),
                };
                let value = ValueChange {
                    name: value_name,
                    before,
                    after,
                    note: (!notes.is_empty()).then(|| notes.join("; ")),
                };
                self.registry_change(
                    h,
                    Action::ValueSet,
                    key,
                    Some(value),
                    "SetValueKey",
                    &mut out,
                );
            }
            Record::RegDeleteValue {
                key_object,
                status,
                key_name,
                value_name,
            } => {
                let Some(key) = self.registry_key(key_object, status, &key_name) else {
                    return out;
                };
                if self
                    .policy
                    .registry_watch(&key, Some(&value_name))
                    .is_none()
                {
                    return out;
                }
                let before = self.baseline.remove(&key, &value_name);
                let value = ValueChange {
                    note: before.is_none().then(|| "not in the baseline".to_string()),
                    name: value_name,
                    before,
                    after: None,
                };
                self.registry_change(
                    h,
                    Action::ValueDeleted,
                    key,
                    Some(value),
                    "DeleteValueKey",
                    &mut out,
                );
            }
            Record::ProcessStart {
                process_id,
                parent_process_id,
                create_time,
                session_id,
                image_name,
                command_line,
                user_sid,
            } => {
                self.processes.expire(h.timestamp);
                self.processes.start(ProcessInfo {
                    pid: process_id,
                    parent_pid: parent_process_id,
                    image: (!image_name.is_empty()).then(|| self.volumes.to_dos(&image_name)),
                    command_line,
                    user_sid,
                    session_id: Some(session_id),
                    create_time: Some(create_time),
                    ..ProcessInfo::default()
                });
            }
            Record::ProcessStop {
                process_id,
                image_name,
                exit_code,
            } => self
                .processes
                .stop(process_id, h.timestamp, exit_code, &image_name),
            Record::Lost { events, buffers } => {
                self.stats.lost_events += events;
                self.stats.lost_buffers += buffers;
                if events > 0 || buffers > 0 {
                    let mut c = self.change(h, Action::Gap, String::new(), &Actor::of(h));
                    c.lost = Some(events);
                    c.details.push(("buffers_lost", buffers.to_string()));
                    out.push(c);
                }
            }
        }
        self.stats.changes += out.len() as u64;
        out
    }

    fn change(&self, h: &Header, action: Action, path: String, who: &Actor) -> Change {
        Change {
            time: h.timestamp,
            action,
            path,
            target: None,
            watch: None,
            pid: who.pid,
            tid: who.tid,
            user_sid: who.sid.clone(),
            process: self.processes.get(who.pid),
            value: None,
            lost: None,
            details: Vec::new(),
        }
    }

    // ---- files ----

    fn file_create(
        &mut self,
        h: &Header,
        file_object: u64,
        options: u32,
        name: &str,
        new_file: bool,
        out: &mut Vec<Change>,
    ) {
        let path = self.volumes.to_dos(name);
        let disposition = options >> nt::DISPOSITION_SHIFT;
        let truncating = matches!(
            disposition,
            nt::FILE_SUPERSEDE | nt::FILE_OVERWRITE | nt::FILE_OVERWRITE_IF
        );
        let delete_on_close = options & nt::FILE_DELETE_ON_CLOSE != 0;
        // Create (12) and CreateNewFile (30) of one open, in either order:
        // the same object, path and thread, nothing done with it yet.
        if let Some(s) = self.sessions.get_mut(&file_object) {
            let same_open = s.path.eq_ignore_ascii_case(&path)
                && s.who.tid == h.tid
                && s.cleaned_at.is_none()
                && !s.written;
            if same_open && (new_file || s.created) {
                s.created |= new_file;
                s.truncated |= truncating;
                s.delete_on_close |= delete_on_close;
                return;
            }
        }
        // The object is open again, so the previous open ended unseen (its
        // Cleanup was lost) or never succeeded (Create has no status). Only
        // an open that did something proves it succeeded: report that.
        if let Some(mut old) = self.sessions.remove(&file_object) {
            self.stats.replaced_sessions += 1;
            if old.proven() {
                self.settle(h, &mut old, "Create (object reused, cleanup unseen)", out);
            }
        }
        let mut s = Session::new(path, Actor::of(h));
        s.created = new_file;
        s.truncated = truncating;
        s.delete_on_close = delete_on_close;
        if self.sessions.len() >= MAX_SESSIONS && !self.sessions.contains_key(&file_object) {
            let before = self.sessions.len();
            self.sessions.retain(|_, s| s.dirty());
            if self.sessions.len() >= MAX_SESSIONS {
                self.sessions.clear();
            }
            self.stats.evicted += (before - self.sessions.len()) as u64;
        }
        self.sessions.insert(file_object, s);
    }

    /// The session of an I/O event; for a file opened before the trace
    /// started, one is made from the FileKey's name if known.
    fn session(&mut self, h: &Header, io: &FileIo) -> Option<&mut Session> {
        if !self.sessions.contains_key(&io.file_object) {
            let Some(name) = self.file_names.get(&io.file_key).cloned() else {
                self.stats.unknown_file_objects += 1;
                return None;
            };
            self.sessions
                .insert(io.file_object, Session::new(name, Actor::of(h)));
        }
        let s = self.sessions.get_mut(&io.file_object)?;
        if io.file_key != 0 && s.file_key == 0 {
            s.file_key = io.file_key;
            self.file_names.insert(io.file_key, s.path.clone());
        }
        Some(s)
    }

    fn set_info(
        &mut self,
        h: &Header,
        op: SetInfoOp,
        io: &FileIo,
        class: u32,
        out: &mut Vec<Change>,
    ) {
        if op == SetInfoOp::SetSecurity {
            if let Some(s) = self.session(h, io) {
                let (path, who) = (s.path.clone(), s.who.clone());
                self.file_change(
                    h,
                    Action::PermissionsChanged,
                    path,
                    None,
                    &who,
                    "SetSecurity",
                    out,
                );
            }
            return;
        }
        let Some(s) = self.session(h, io) else { return };
        match (op, class) {
            (SetInfoOp::SetDelete, _)
            | (_, nt::FILE_DISPOSITION_INFORMATION | nt::FILE_DISPOSITION_INFORMATION_EX) => {
                s.delete_pending = true;
            }
            (_, nt::FILE_END_OF_FILE_INFORMATION | nt::FILE_ALLOCATION_INFORMATION) => {
                s.written = true;
            }
            (_, nt::FILE_BASIC_INFORMATION) => s.attrs = true,
            // Rename (19) carries no path; RenamePath (27) reports it.
            _ => {}
        }
    }

    fn path_op(
        &mut self,
        h: &Header,
        op: PathOp,
        io: &FileIo,
        path: String,
        out: &mut Vec<Change>,
    ) {
        if !self.sessions.contains_key(&io.file_object) {
            // Opened before the trace started: the event names the file.
            let known = self.file_names.get(&io.file_key).cloned();
            let name = match op {
                PathOp::DeletePath => path.clone(),
                _ => known.unwrap_or_else(|| path.clone()),
            };
            self.sessions
                .insert(io.file_object, Session::new(name, Actor::of(h)));
        }
        let Some(s) = self.sessions.get_mut(&io.file_object) else {
            return;
        };
        if io.file_key != 0 {
            s.file_key = io.file_key;
        }
        match op {
            PathOp::DeletePath => {
                s.delete_pending = true;
            }
            PathOp::SetLinkPath => {
                let (source, who) = (s.path.clone(), s.who.clone());
                self.file_change(
                    h,
                    Action::Linked,
                    source,
                    Some(path),
                    &who,
                    "SetLinkPath",
                    out,
                );
            }
            PathOp::RenamePath => {
                if s.path.eq_ignore_ascii_case(&path) {
                    // The event named the file itself: the new name comes
                    // with the next NameCreate of its FileKey (or never).
                    s.rename_pending = Some(path);
                } else {
                    let (source, who) =
                        (std::mem::replace(&mut s.path, path.clone()), s.who.clone());
                    let key = s.file_key;
                    if key != 0 {
                        self.file_names.insert(key, path.clone());
                    }
                    self.file_change(
                        h,
                        Action::Renamed,
                        source,
                        Some(path),
                        &who,
                        "RenamePath",
                        out,
                    );
                }
            }
        }
    }

    /// A file key got a (new) name: resolves a pending rename of that file.
    fn name_created(&mut self, h: &Header, file_key: u64, name: String, out: &mut Vec<Change>) {
        self.file_names.insert(file_key, name.clone());
        let pending: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.file_key == file_key
                    && s.rename_pending
                        .as_ref()
                        .is_some_and(|p| !p.eq_ignore_ascii_case(&name))
            })
            .map(|(fo, _)| *fo)
            .collect();
        for fo in pending {
            let Some(s) = self.sessions.get_mut(&fo) else {
                continue;
            };
            let source = s.rename_pending.take().unwrap_or_default();
            s.path = name.clone();
            let who = s.who.clone();
            self.file_change(
                h,
                Action::Renamed,
                source,
                Some(name.clone()),
                &who,
                "NameCreate",
                out,
            );
        }
    }

    /// Reports what an open did, at its Cleanup (or, for late writes, Close).
    fn settle(&mut self, h: &Header, s: &mut Session, event: &'static str, out: &mut Vec<Change>) {
        let (path, who) = (s.path.clone(), s.who.clone());
        // Writes between Cleanup and Close flush what a Cleanup reported:
        // this open's, or another open's of the same file (the cache
        // manager writes through whichever file object set up caching).
        let flushed = s.cleaned_at.is_some_and(|t| {
            self.content_reports
                .get(&path.to_lowercase())
                .is_some_and(|r| *r >= t)
        });
        if s.content_reported || flushed {
            s.written = false;
        }
        if let Some(source) = s.rename_pending.take() {
            let before = out.len();
            self.file_change(h, Action::Renamed, source, None, &who, event, out);
            if let Some(c) = out.get_mut(before) {
                c.details
                    .push(("target", "unknown: rescan the directory".into()));
            }
        }
        if s.delete_pending || s.delete_on_close {
            if s.created {
                self.file_change(h, Action::Created, path.clone(), None, &who, event, out);
            }
            self.file_change(h, Action::Deleted, path, None, &who, event, out);
            if let Some(key) = (s.file_key != 0).then_some(s.file_key) {
                self.file_names.remove(&key);
            }
        } else if s.created || s.written || s.truncated {
            let a = if s.created {
                Action::Created
            } else {
                Action::Modified
            };
            self.file_change(h, a, path.clone(), None, &who, event, out);
            s.content_reported = true;
            if self.content_reports.len() >= MAX_SESSIONS {
                self.content_reports.clear();
            }
            self.content_reports
                .insert(path.to_lowercase(), h.timestamp);
        }
        if s.attrs && !(s.delete_pending || s.delete_on_close) {
            self.file_change(
                h,
                Action::AttributesChanged,
                s.path.clone(),
                None,
                &who,
                event,
                out,
            );
        }
        let keep = Session::new(s.path.clone(), who);
        *s = Session {
            file_key: s.file_key,
            content_reported: s.content_reported,
            cleaned_at: s.cleaned_at.or((event == "Cleanup").then_some(h.timestamp)),
            ..keep
        };
    }

    #[allow(clippy::too_many_arguments)]
    fn file_change(
        &self,
        h: &Header,
        action: Action,
        path: String,
        target: Option<String>,
        who: &Actor,
        event: &'static str,
        out: &mut Vec<Change>,
    ) {
        let watch = self
            .policy
            .file_watch(&path)
            .or_else(|| target.as_deref().and_then(|t| self.policy.file_watch(t)));
        let Some(watch) = watch else { return };
        let mut c = self.change(h, action, path, who);
        c.watch = Some(watch.to_string());
        c.target = target;
        c.details.push(("event", event.to_string()));
        out.push(c);
    }

    // ---- registry ----

    /// The key a registry event is about, or None (counted) when the
    /// operation failed or the key cannot be named.
    fn registry_key(&mut self, key_object: u64, status: u32, key_name: &str) -> Option<String> {
        if status != 0 {
            self.stats.failed_registry_ops += 1;
            return None;
        }
        let key = paths::registry_object(key_name).or_else(|| {
            let base = self.keys.get(&key_object)?;
            // A relative KeyName is relative to the object's own key only
            // when it is the key's last component; otherwise the object wins.
            Some(base.clone())
        });
        if key.is_none() {
            self.stats.unresolved_keys += 1;
        }
        key
    }

    fn registry_change(
        &self,
        h: &Header,
        action: Action,
        key: String,
        value: Option<ValueChange>,
        event: &'static str,
        out: &mut Vec<Change>,
    ) {
        let name = value.as_ref().map(|v| v.name.as_str());
        let Some(watch) = self.policy.registry_watch(&key, name) else {
            return;
        };
        let mut c = self.change(h, action, key, &Actor::of(h));
        c.watch = Some(watch.to_string());
        c.value = value;
        c.details.push(("event", event.to_string()));
        out.push(c);
    }
}

#[cfg(test)]
#[path = "interpreter_tests.rs"]
mod tests;
