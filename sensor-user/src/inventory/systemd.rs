//! systemd units as change events: the state machine from what systemd's
//! D-Bus API reports (ActiveState, SubState, UnitFileState) to
//! `service_started`, `service_stopped`, `service_failed`, ... events, and
//! the correlation of a change with the `systemctl` run that asked for it.
//!
//! Plain Rust types, no bus: the D-Bus side (`systemd_bus.rs`, Linux) feeds
//! [`Tracker`] and turns its [`Transition`]s into events with
//! [`service_event`]. See docs/inventory.md.
use crate::event::{Body, Event, Process, ServiceChange, ServiceInfo, Source};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What is known of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    /// ActiveState: `active`, `inactive`, `failed`, `activating`,
    /// `deactivating`, `reloading`, `maintenance`.
    pub active: String,
    /// SubState: `running`, `dead`, `exited`, `failed`, ...
    pub sub: String,
    /// UnitFileState (`enabled`, `disabled`, `static`, `masked`, ...); None
    /// for a unit without a unit file (or not known yet).
    pub file_state: Option<String>,
    /// The unit file.
    pub unit_file: Option<String>,
}

impl UnitState {
    /// A unit systemd does not have loaded: inactive (systemd unloads only
    /// inactive units).
    pub fn unloaded() -> UnitState {
        UnitState {
            active: "inactive".into(),
            sub: "dead".into(),
            file_state: None,
            unit_file: None,
        }
    }
}

/// One reportable change of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `service_started`, `service_stopped`, `service_failed`,
    /// `service_restarted`, `service_reloaded`, `service_reset`,
    /// `service_enabled`, `service_disabled`, `service_masked`,
    /// `service_unmasked`.
    pub action: &'static str,
    pub unit: String,
    /// None: the unit was not known before.
    pub before: Option<UnitState>,
    pub after: UnitState,
    /// service_failed: the service's `Result`, when known.
    pub result: Option<String>,
}

/// The action names, for rules and schemas.
pub const ACTIONS: &[&str] = &[
    "service_started",
    "service_stopped",
    "service_failed",
    "service_restarted",
    "service_reloaded",
    "service_reset",
    "service_enabled",
    "service_disabled",
    "service_masked",
    "service_unmasked",
];

/// The reportable change from one ActiveState to the next: `stable` is the
/// last reported of `active`/`inactive`/`failed`, `raw` the last state seen
/// (transitional ones included), `went_down` whether the unit passed
/// through `deactivating` or `inactive` since it was last `active` (a
/// restart never shows `inactive` when systemd folds the steps).
fn active_action(stable: &str, raw: &str, went_down: bool, new: &str) -> Option<&'static str> {
    match new {
        "active" if stable == "active" && went_down => Some("service_restarted"),
        "active" if stable == "active" && raw == "reloading" => Some("service_reloaded"),
        "active" if stable != "active" => Some("service_started"),
        "failed" if stable != "failed" => Some("service_failed"),
        "inactive" if stable == "active" => Some("service_stopped"),
        // reset-failed, or a failed unit garbage-collected.
        "inactive" if stable == "failed" => Some("service_reset"),
        // activating, deactivating, reloading: only remembered.
        _ => None,
    }
}

/// The reportable change from one UnitFileState to the next.
fn file_action(before: Option<&str>, after: Option<&str>) -> Option<&'static str> {
    let masked = |s: Option<&str>| s.is_some_and(|s| s.starts_with("masked"));
    let enabled = |s: Option<&str>| s.is_some_and(|s| s.starts_with("enabled"));
    if before == after {
        return None;
    }
    if masked(after) {
        return Some("service_masked");
    }
    if masked(before) {
        return Some("service_unmasked");
    }
    if enabled(after) && !enabled(before) {
        return Some("service_enabled");
    }
    if enabled(before) && !enabled(after) && after.is_some() {
        return Some("service_disabled");
    }
    None
}

/// Whether the state machine reports changes of `unit` (its type suffix is
/// one of `types`).
pub fn unit_watched(unit: &str, types: &[String]) -> bool {
    unit.rsplit_once('.')
        .is_some_and(|(_, t)| types.iter().any(|w| w == t))
}

#[derive(Debug, Clone)]
struct Tracked {
    /// The state as last reported (its `active` is stable).
    state: UnitState,
    raw: String,
    went_down: bool,
    /// The service's `Result` (Service interface), when sent.
    result: Option<String>,
}

impl Tracked {
    fn new(state: UnitState) -> Tracked {
        Tracked {
            raw: state.active.clone(),
            state,
            went_down: false,
            result: None,
        }
    }
}

/// The units of one service manager and their last reported states.
#[derive(Debug, Default)]
pub struct Tracker {
    units: BTreeMap<String, Tracked>,
    /// Unit types watched (`service`, `socket`, ...).
    types: Vec<String>,
}

impl Tracker {
    pub fn new(types: Vec<String>) -> Tracker {
        Tracker {
            units: BTreeMap::new(),
            types,
        }
    }

    pub fn watches(&self, unit: &str) -> bool {
        unit_watched(unit, &self.types)
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The states as last reported (what the store keeps).
    pub fn states(&self) -> BTreeMap<String, UnitState> {
        self.units
            .iter()
            .map(|(k, t)| (k.clone(), t.state.clone()))
            .collect()
    }

    /// Replaces everything with `snapshot`, and returns the changes from
    /// what was known before (nothing the first time: `reported` is then
    /// None). Used at start against the stored states, and after a lost
    /// connection against the last known ones.
    pub fn resync(
        &mut self,
        reported: Option<&BTreeMap<String, UnitState>>,
        snapshot: BTreeMap<String, UnitState>,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let snapshot: BTreeMap<String, UnitState> = snapshot
            .into_iter()
            .filter(|(k, _)| self.watches(k))
            .collect();
        if let Some(old) = reported {
            for (unit, after) in &snapshot {
                // A unit not known before is new (installed, or loaded):
                // nothing to compare with.
                let Some(before) = old.get(unit) else {
                    continue;
                };
                out.extend(compare(unit, before, after));
            }
            for (unit, before) in old {
                if snapshot.contains_key(unit) || !self.watches(unit) {
                    continue;
                }
                // Gone: no file and not loaded, so inactive.
                let after = UnitState::unloaded();
                if let Some(action) =
                    active_action(&before.active, &before.active, false, "inactive")
                {
                    out.push(Transition {
                        action,
                        unit: unit.clone(),
                        before: Some(before.clone()),
                        after,
                        result: None,
                    });
                }
            }
        }
        self.units = snapshot
            .into_iter()
            .map(|(k, s)| (k, Tracked::new(s)))
            .collect();
        out
    }

    /// A unit was loaded (UnitNew): a fresh unit is inactive.
    pub fn unit_new(&mut self, unit: &str) {
        if self.watches(unit) {
            self.units
                .entry(unit.to_string())
                .or_insert_with(|| Tracked::new(UnitState::unloaded()));
        }
    }

    /// PropertiesChanged on the Unit interface (ActiveState, SubState,
    /// FragmentPath when sent) or the Service interface (Result).
    pub fn properties(
        &mut self,
        unit: &str,
        active: Option<&str>,
        sub: Option<&str>,
        fragment: Option<&str>,
        result: Option<&str>,
    ) -> Option<Transition> {
        if !self.watches(unit) {
            return None;
        }
        let known = self.units.contains_key(unit);
        let t = self
            .units
            .entry(unit.to_string())
            .or_insert_with(|| Tracked::new(UnitState::unloaded()));
        if let Some(r) = result {
            t.result = Some(r.to_string()).filter(|r| !r.is_empty());
        }
        if let Some(f) = fragment.filter(|f| !f.is_empty()) {
            t.state.unit_file = Some(f.to_string());
        }
        let new = active?;
        let before = t.state.clone();
        let action = active_action(&t.state.active, &t.raw, t.went_down, new);
        if matches!(new, "deactivating" | "inactive") && t.state.active == "active" {
            t.went_down = true;
        }
        t.raw = new.to_string();
        let sub = sub
            .map(str::to_string)
            .unwrap_or_else(|| t.state.sub.clone());
        match action {
            Some(action) => {
                t.state.active = new.to_string();
                t.state.sub = sub;
                t.went_down = false;
                Some(Transition {
                    action,
                    unit: unit.to_string(),
                    before: known.then_some(before),
                    after: t.state.clone(),
                    result: t.result.clone().filter(|_| action == "service_failed"),
                })
            }
            None => {
                if matches!(new, "active" | "inactive" | "failed") {
                    t.state.active = new.to_string();
                    t.state.sub = sub;
                    t.went_down = false;
                }
                None
            }
        }
    }

    /// The unit files as ListUnitFiles lists them now (after
    /// UnitFilesChanged or a reload): unit → (state, path).
    pub fn unit_files(&mut self, files: &BTreeMap<String, (String, String)>) -> Vec<Transition> {
        let mut out = Vec::new();
        for (unit, (state, path)) in files {
            if !self.watches(unit) {
                continue;
            }
            let known = self.units.contains_key(unit);
            let t = self
                .units
                .entry(unit.clone())
                .or_insert_with(|| Tracked::new(UnitState::unloaded()));
            let before = t.state.clone();
            t.state.file_state = Some(state.clone());
            if t.state.unit_file.is_none()
                || state.starts_with("masked")
                || before
                    .file_state
                    .as_deref()
                    .is_some_and(|s| s.starts_with("masked"))
            {
                t.state.unit_file = Some(path.clone());
            }
            // A unit file seen for the first time: nothing to compare with
            // unless it arrives masked or enabled (systemctl link + enable).
            let prev = if known {
                before.file_state.as_deref()
            } else {
                None
            };
            if let Some(action) = file_action(prev, Some(state)) {
                out.push(Transition {
                    action,
                    unit: unit.clone(),
                    before: known.then_some(before),
                    after: t.state.clone(),
                    result: None,
                });
            }
        }
        // Unit files that are gone: a unit that was masked is unmasked
        // (its mask was its only file), others lose their file state.
        for (unit, t) in self.units.iter_mut() {
            if files.contains_key(unit) || t.state.file_state.is_none() {
                continue;
            }
            let before = t.state.clone();
            t.state.file_state = None;
            if let Some(action) = file_action(before.file_state.as_deref(), None) {
                t.state.unit_file = None;
                out.push(Transition {
                    action,
                    unit: unit.clone(),
                    before: Some(before),
                    after: t.state.clone(),
                    result: None,
                });
            }
        }
        out
    }
}

/// The changes between two states of one unit found apart (at start-up):
/// the file state and the active state compared on their own.
fn compare(unit: &str, before: &UnitState, after: &UnitState) -> Vec<Transition> {
    let mut out = Vec::new();
    if let Some(action) = file_action(before.file_state.as_deref(), after.file_state.as_deref()) {
        out.push(Transition {
            action,
            unit: unit.to_string(),
            before: Some(before.clone()),
            after: after.clone(),
            result: None,
        });
    }
    if let Some(action) = active_action(&before.active, &before.active, false, &after.active) {
        out.push(Transition {
            action,
            unit: unit.to_string(),
            before: Some(before.clone()),
            after: after.clone(),
            result: None,
        });
    }
    out
}

/// systemd's object path of a unit back to its name:
/// `/org/freedesktop/systemd1/unit/ssh_2eservice` → `ssh.service`
/// (every byte but ASCII letters and digits is `_` and two hex digits).
pub fn unit_from_path(path: &str) -> Option<String> {
    let escaped = path.strip_prefix("/org/freedesktop/systemd1/unit/")?;
    let b = escaped.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------
// Attribution: the systemctl run behind a change.

/// How long after a `systemctl` run started a change of a unit it names
/// can be attributed to it: systemctl waits for its job, and a service may
/// take long to start or stop (systemd's default timeout is 90 s).
pub const CORRELATION_WINDOW: Duration = Duration::from_secs(90);

/// How long after a `systemctl` run exited a change can still be its own:
/// systemctl returns once its job is done or, for enable/disable/mask, once
/// systemd answered (after it sent UnitFilesChanged), so only `--no-block`
/// jobs finish later.
pub const EXIT_GRACE: Duration = Duration::from_secs(1);

/// The most runs remembered.
const MAX_INVOCATIONS: usize = 256;

/// systemctl verbs (and `service` actions) that change a unit's state or
/// unit file state.
const CHANGING_VERBS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "try-restart",
    "condrestart",
    "reload",
    "reload-or-restart",
    "try-reload-or-restart",
    "reload-or-try-restart",
    "force-reload",
    "kill",
    "clean",
    "freeze",
    "thaw",
    "isolate",
    "reset-failed",
    "enable",
    "disable",
    "reenable",
    "preset",
    "mask",
    "unmask",
    "link",
    "revert",
    "edit",
    "add-wants",
    "add-requires",
    "set-property",
];

/// Verbs that start a unit.
const START_VERBS: &[&str] = &[
    "start",
    "restart",
    "try-restart",
    "condrestart",
    "reload-or-restart",
    "try-reload-or-restart",
    "reload-or-try-restart",
    "force-reload",
    "isolate",
    "enable",
    "reenable",
    "thaw",
];
/// Verbs that stop a unit.
const STOP_VERBS: &[&str] = &[
    "stop",
    "restart",
    "try-restart",
    "condrestart",
    "reload-or-restart",
    "try-reload-or-restart",
    "reload-or-try-restart",
    "force-reload",
    "kill",
    "isolate",
    "disable",
    "mask",
    "freeze",
    "clean",
];
/// Verbs that change unit files.
const FILE_VERBS: &[&str] = &[
    "enable",
    "disable",
    "reenable",
    "preset",
    "mask",
    "unmask",
    "link",
    "revert",
    "edit",
    "add-wants",
    "add-requires",
    "set-property",
];

/// Whether `verb` can have caused a change `action`: a service that stops
/// on its own right after a `systemctl start` is not the start's doing.
pub fn verb_fits(verb: &str, action: &str) -> bool {
    let any = |l: &[&str]| l.contains(&verb);
    match action {
        "service_started" | "service_restarted" => any(START_VERBS),
        "service_stopped" => any(STOP_VERBS),
        // A failure at start, or while stopping.
        "service_failed" => any(START_VERBS) || any(STOP_VERBS),
        "service_reloaded" => verb.contains("reload"),
        "service_reset" => verb == "reset-failed" || any(STOP_VERBS) || any(START_VERBS),
        "service_enabled" | "service_disabled" | "service_masked" | "service_unmasked" => {
            any(FILE_VERBS)
        }
        _ => CHANGING_VERBS.contains(&verb),
    }
}

/// Whether a command line can have caused `action` on `unit`: it names the
/// unit with a verb that fits, and `enable`, `reenable`, `disable` and
/// `mask` start or stop units only with `--now`.
pub fn run_fits(args: &[String], unit: &str, action: &str) -> bool {
    let Some(verb) = verb_of(args, unit) else {
        return false;
    };
    let file_change = matches!(
        action,
        "service_enabled" | "service_disabled" | "service_masked" | "service_unmasked"
    );
    let needs_now = !file_change && matches!(verb, "enable" | "reenable" | "disable" | "mask");
    verb_fits(verb, action) && (!needs_now || args.iter().any(|a| a == "--now"))
}

/// A run of a service control program.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When it was exec'd (the kernel's timestamp, as wall-clock time).
    pub at: SystemTime,
    /// argv.
    pub args: Vec<String>,
    pub process: Arc<Process>,
    /// When it exited, once it has.
    pub exited: Option<SystemTime>,
}

/// Recent `systemctl` and `service` runs, filled by the process table
/// (exec events) and read by the daemon watcher. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Invocations(Arc<Mutex<VecDeque<Invocation>>>);

impl Invocations {
    /// Whether a program (exe path, comm) controls services.
    pub fn is_control_program(exe: Option<&str>, comm: &str) -> bool {
        let base = exe.and_then(|e| e.rsplit('/').next());
        ["systemctl", "service"]
            .iter()
            .any(|p| base == Some(p) || comm == *p)
    }

    pub fn record(&self, inv: Invocation) {
        let mut q = self.0.lock().expect("invocations lock");
        while q.len() >= MAX_INVOCATIONS
            || q.front().is_some_and(|f| {
                inv.at.duration_since(f.at).unwrap_or_default() > CORRELATION_WINDOW
            })
        {
            q.pop_front();
        }
        q.push_back(inv);
    }

    /// A run's process exited at `at`.
    pub fn exited(&self, pid: u32, at: SystemTime) {
        let mut q = self.0.lock().expect("invocations lock");
        if let Some(i) = q.iter_mut().rev().find(|i| i.process.pid == pid) {
            i.exited.get_or_insert(at);
        }
    }

    /// The most recent run started within [`CORRELATION_WINDOW`] before
    /// `at` (when the change was seen) that names `unit`, if its verb fits
    /// `action`, and how long before `at` it started. A run started
    /// after the change, or ended more than [`EXIT_GRACE`] before it, did
    /// not cause it.
    pub fn find(
        &self,
        unit: &str,
        action: &str,
        at: SystemTime,
    ) -> Option<(Arc<Process>, Duration)> {
        let q = self.0.lock().expect("invocations lock");
        q.iter()
            .rev()
            .filter_map(|i| Some((i, at.duration_since(i.at).ok()?)))
            .filter(|(_, age)| *age <= CORRELATION_WINDOW)
            // A run that had ended well before the change did not cause it.
            .filter(|(i, _)| i.exited.is_none_or(|x| at <= x + EXIT_GRACE))
            // The newest run on the unit speaks for it: a `start` after a
            // `stop` means a later stop is not that earlier run's doing.
            .find(|(i, _)| names_unit(&i.args, unit))
            .filter(|(i, _)| run_fits(&i.args, unit, action))
            .map(|(i, age)| (i.process.clone(), age))
    }
}

/// Whether a command line (argv) changes `unit`: `systemctl [options] VERB
/// UNIT...` (a name without a type means `.service`), or `service NAME
/// ACTION`.
pub fn names_unit(args: &[String], unit: &str) -> bool {
    verb_of(args, unit).is_some()
}

/// The verb of a command line that changes `unit` (see [`names_unit`]).
pub fn verb_of<'a>(args: &'a [String], unit: &str) -> Option<&'a str> {
    let prog = args.first().map(|a| a.rsplit('/').next().unwrap_or(a))?;
    let same = |a: &str| a == unit || format!("{a}.service") == unit;
    let words: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if prog == "service" {
        return (words.len() >= 2 && same(words[0]) && CHANGING_VERBS.contains(&words[1]))
            .then_some(words[1]);
    }
    let (verb, units) = words.split_first()?;
    (CHANGING_VERBS.contains(verb) && units.iter().any(|u| same(u))).then_some(*verb)
}

// ---------------------------------------------------------------------------
// Events.

/// How a service event came about.
pub struct Origin {
    /// `dbus` (realtime) or `scan` (found at start-up).
    pub tier: &'static str,
    /// The D-Bus signal, or `startup`.
    pub signal: &'static str,
    /// The correlated systemctl run and how long before the change it started.
    pub process: Option<(Arc<Process>, Duration)>,
}

/// The event of one transition.
pub fn service_event(host: &str, bus: &str, t: &Transition, origin: Origin) -> Event {
    let mut details = crate::event::Details::new();
    let process = origin.process.map(|(p, age)| {
        details.insert("attribution", "systemctl_exec".into());
        details.insert("invocation_ms", (age.as_millis() as u64).into());
        p
    });
    if origin.tier == "scan" {
        details.insert("unattributed", true.into());
    }
    let before = t.before.as_ref();
    Event::new(
        "service",
        t.action,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        host,
        Body::Service(Box::new(ServiceChange {
            service: ServiceInfo {
                manager: "systemd",
                bus: bus.to_string(),
                unit: t.unit.clone(),
                unit_type: t
                    .unit
                    .rsplit_once('.')
                    .map(|(_, ty)| ty.to_string())
                    .unwrap_or_default(),
                state: t.after.active.clone(),
                previous_state: before.map(|b| b.active.clone()),
                sub_state: t.after.sub.clone(),
                previous_sub_state: before.map(|b| b.sub.clone()),
                file_state: t.after.file_state.clone(),
                previous_file_state: before.and_then(|b| b.file_state.clone()),
                unit_file: t
                    .after
                    .unit_file
                    .clone()
                    .or_else(|| before.and_then(|b| b.unit_file.clone())),
                result: t.result.clone(),
                ..Default::default()
            },
            process,
            source: Source {
                tier: origin.tier,
                syscall: origin.signal,
                decided_by: "dbus",
            },
            details,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        Tracker::new(vec!["service".into(), "timer".into()])
    }

    fn st(active: &str, sub: &str, file: Option<&str>) -> UnitState {
        UnitState {
            active: active.into(),
            sub: sub.into(),
            file_state: file.map(str::to_string),
            unit_file: Some("/etc/systemd/system/a.service".into()),
        }
    }

    fn seeded(units: &[(&str, UnitState)]) -> Tracker {
        let mut t = tracker();
        let snap = units
            .iter()
            .map(|(u, s)| (u.to_string(), s.clone()))
            .collect();
        assert!(t.resync(None, snap).is_empty());
        t
    }

    #[test]
    fn start_stop_and_failure_are_reported_once_with_the_states_before_and_after() {
        let mut t = seeded(&[("a.service", st("inactive", "dead", Some("disabled")))]);
        // inactive → activating → active (running): one start.
        assert_eq!(
            t.properties("a.service", Some("activating"), Some("start"), None, None),
            None
        );
        let s = t
            .properties("a.service", Some("active"), Some("running"), None, None)
            .unwrap();
        assert_eq!(s.action, "service_started");
        assert_eq!(s.before.as_ref().unwrap().active, "inactive");
        assert_eq!(s.before.as_ref().unwrap().sub, "dead");
        assert_eq!(
            (s.after.active.as_str(), s.after.sub.as_str()),
            ("active", "running")
        );
        // A SubState change alone is not a transition.
        assert_eq!(
            t.properties("a.service", None, Some("exited"), None, None),
            None
        );
        assert_eq!(
            t.properties("a.service", Some("active"), Some("running"), None, None),
            None
        );
        // active → deactivating → inactive: one stop.
        assert_eq!(
            t.properties(
                "a.service",
                Some("deactivating"),
                Some("stop-sigterm"),
                None,
                None
            ),
            None
        );
        let s = t
            .properties("a.service", Some("inactive"), Some("dead"), None, None)
            .unwrap();
        assert_eq!(s.action, "service_stopped");
        assert_eq!(s.before.unwrap().active, "active");
        // A start that fails: started, then failed with the Result.
        t.properties("a.service", Some("active"), Some("running"), None, None)
            .unwrap();
        assert_eq!(
            t.properties("a.service", None, None, None, Some("exit-code")),
            None
        );
        let f = t
            .properties("a.service", Some("failed"), Some("failed"), None, None)
            .unwrap();
        assert_eq!(f.action, "service_failed");
        assert_eq!(f.result.as_deref(), Some("exit-code"));
        assert_eq!(f.before.unwrap().active, "active");
        // reset-failed.
        let r = t
            .properties("a.service", Some("inactive"), Some("dead"), None, None)
            .unwrap();
        assert_eq!(r.action, "service_reset");
        // A failed start straight from activating.
        t.properties("a.service", Some("activating"), None, None, None);
        let f = t
            .properties("a.service", Some("failed"), Some("failed"), None, None)
            .unwrap();
        assert_eq!(
            (f.action, f.before.unwrap().active.as_str()),
            ("service_failed", "inactive")
        );
    }

    #[test]
    fn restarts_and_reloads_are_told_apart_from_nothing_happening() {
        let mut t = seeded(&[("a.service", st("active", "running", Some("enabled")))]);
        // systemd may fold a restart's inactive step away.
        t.properties("a.service", Some("deactivating"), None, None, None);
        t.properties("a.service", Some("activating"), None, None, None);
        let r = t
            .properties("a.service", Some("active"), Some("running"), None, None)
            .unwrap();
        assert_eq!(r.action, "service_restarted");
        t.properties("a.service", Some("reloading"), Some("reload"), None, None);
        let r = t
            .properties("a.service", Some("active"), Some("running"), None, None)
            .unwrap();
        assert_eq!(r.action, "service_reloaded");
        // A restart that shows inactive: stopped, then started.
        t.properties("a.service", Some("deactivating"), None, None, None);
        assert_eq!(
            t.properties("a.service", Some("inactive"), Some("dead"), None, None)
                .unwrap()
                .action,
            "service_stopped"
        );
        assert_eq!(
            t.properties("a.service", Some("active"), Some("running"), None, None)
                .unwrap()
                .action,
            "service_started"
        );
    }

    #[test]
    fn units_of_other_types_are_not_tracked_and_new_units_start_inactive() {
        let mut t = seeded(&[]);
        assert_eq!(
            t.properties("dev-sda.device", Some("active"), None, None, None),
            None
        );
        assert_eq!(t.len(), 0);
        // Loaded by `systemctl start` (UnitNew), then started: the state
        // before is the fresh unit's.
        t.unit_new("b.service");
        let s = t
            .properties("b.service", Some("active"), Some("running"), None, None)
            .unwrap();
        assert_eq!(s.before.unwrap().active, "inactive");
        // Never seen at all: started, with no state before.
        let s = t
            .properties("c.timer", Some("active"), Some("waiting"), None, None)
            .unwrap();
        assert_eq!((s.action, s.before), ("service_started", None));
    }

    #[test]
    fn unit_file_states_give_enabled_disabled_masked_unmasked() {
        let mut t = seeded(&[("a.service", st("inactive", "dead", Some("disabled")))]);
        let files = |state: &str, path: &str| {
            BTreeMap::from([(
                "a.service".to_string(),
                (state.to_string(), path.to_string()),
            )])
        };
        let p = "/etc/systemd/system/a.service";
        let e = t.unit_files(&files("enabled", p));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].action, "service_enabled");
        assert_eq!(
            e[0].before.as_ref().unwrap().file_state.as_deref(),
            Some("disabled")
        );
        assert_eq!(e[0].after.file_state.as_deref(), Some("enabled"));
        assert!(
            t.unit_files(&files("enabled", p)).is_empty(),
            "no change, no event"
        );
        assert_eq!(
            t.unit_files(&files("disabled", p))[0].action,
            "service_disabled"
        );
        let m = t.unit_files(&files("masked", "/etc/systemd/system/a.service"));
        assert_eq!(m[0].action, "service_masked");
        assert_eq!(m[0].after.unit_file.as_deref(), Some(p));
        assert_eq!(
            t.unit_files(&files("disabled", p))[0].action,
            "service_unmasked"
        );
        // static ↔ indirect and the like are not reported.
        assert!(t.unit_files(&files("static", p)).is_empty());
        // The mask was the only file: removing it unmasks.
        t.unit_files(&files("masked", p));
        let u = t.unit_files(&BTreeMap::new());
        assert_eq!(u[0].action, "service_unmasked");
        assert_eq!(u[0].after.file_state, None);
        // A unit file seen for the first time is reported only when it
        // arrives enabled or masked.
        let new = BTreeMap::from([
            (
                "n.service".to_string(),
                ("disabled".to_string(), "/x/n.service".to_string()),
            ),
            (
                "m.service".to_string(),
                ("enabled".to_string(), "/x/m.service".to_string()),
            ),
        ]);
        let got: Vec<_> = t
            .unit_files(&new)
            .into_iter()
            .map(|t| (t.action, t.unit))
            .collect();
        assert_eq!(got, [("service_enabled", "m.service".to_string())]);
    }

    #[test]
    fn resync_reports_what_changed_while_unwatched() {
        let mut t = tracker();
        let stored = BTreeMap::from([
            (
                "a.service".to_string(),
                st("active", "running", Some("enabled")),
            ),
            (
                "b.service".to_string(),
                st("inactive", "dead", Some("enabled")),
            ),
            (
                "c.service".to_string(),
                st("active", "running", Some("static")),
            ),
            (
                "d.service".to_string(),
                st("inactive", "dead", Some("disabled")),
            ),
        ]);
        let now = BTreeMap::from([
            (
                "a.service".to_string(),
                st("failed", "failed", Some("enabled")),
            ),
            (
                "b.service".to_string(),
                st("active", "running", Some("disabled")),
            ),
            // c: unloaded (stopped, collected): not listed.
            (
                "d.service".to_string(),
                st("inactive", "dead", Some("disabled")),
            ),
            (
                "e.service".to_string(),
                st("active", "running", Some("enabled")),
            ),
            ("x.device".to_string(), st("active", "plugged", None)),
        ]);
        let got: Vec<_> = t
            .resync(Some(&stored), now)
            .into_iter()
            .map(|t| (t.unit, t.action))
            .collect();
        assert_eq!(
            got,
            [
                ("a.service".to_string(), "service_failed"),
                ("b.service".into(), "service_disabled"),
                ("b.service".into(), "service_started"),
                ("c.service".into(), "service_stopped"),
            ]
        );
        assert_eq!(t.len(), 4, "e is tracked from now on, devices are not");
    }

    #[test]
    fn unit_object_paths_are_unescaped() {
        assert_eq!(
            unit_from_path("/org/freedesktop/systemd1/unit/ssh_2eservice").as_deref(),
            Some("ssh.service")
        );
        assert_eq!(
            unit_from_path("/org/freedesktop/systemd1/unit/getty_40tty1_2eservice").as_deref(),
            Some("getty@tty1.service")
        );
        assert_eq!(
            unit_from_path("/org/freedesktop/systemd1/unit/vigil_2dtest_2dsleep_2eservice")
                .as_deref(),
            Some("vigil-test-sleep.service")
        );
        assert_eq!(unit_from_path("/org/freedesktop/systemd1"), None);
        assert_eq!(
            unit_from_path("/org/freedesktop/systemd1/unit/bad_zz"),
            None
        );
    }

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn systemctl_runs_are_matched_on_verb_and_unit() {
        assert!(names_unit(&argv("systemctl stop ssh"), "ssh.service"));
        assert!(names_unit(
            &argv("/usr/bin/systemctl --user start vt.service"),
            "vt.service"
        ));
        assert!(names_unit(
            &argv("systemctl enable --now a b.timer"),
            "b.timer"
        ));
        assert!(names_unit(&argv("service ssh restart"), "ssh.service"));
        assert!(!names_unit(&argv("systemctl status ssh"), "ssh.service"));
        assert!(!names_unit(&argv("systemctl stop ssh"), "sshd.service"));
        assert!(!names_unit(
            &argv("systemctl stop ssh.socket"),
            "ssh.service"
        ));
        assert!(!names_unit(&argv("service ssh status"), "ssh.service"));
        assert!(!names_unit(&argv("systemctl"), "ssh.service"));
    }

    #[test]
    fn the_most_recent_matching_run_within_the_window_is_taken() {
        let inv = Invocations::default();
        let t0 = SystemTime::now();
        let p = |pid| {
            Arc::new(Process {
                pid,
                ..Default::default()
            })
        };
        inv.record(Invocation {
            at: t0,
            args: argv("systemctl stop a"),
            process: p(1),
            exited: None,
        });
        inv.record(Invocation {
            at: t0 + Duration::from_millis(5),
            args: argv("systemctl status a"),
            process: p(2),
            exited: None,
        });
        inv.record(Invocation {
            at: t0 + Duration::from_millis(10),
            args: argv("systemctl stop a"),
            process: p(3),
            exited: None,
        });
        let (got, age) = inv
            .find(
                "a.service",
                "service_stopped",
                t0 + Duration::from_millis(40),
            )
            .unwrap();
        assert_eq!((got.pid, age), (3, Duration::from_millis(30)));
        assert!(inv
            .find(
                "b.service",
                "service_stopped",
                t0 + Duration::from_millis(40)
            )
            .is_none());
        assert!(inv
            .find(
                "a.service",
                "service_stopped",
                t0 + CORRELATION_WINDOW + Duration::from_secs(1)
            )
            .is_none());
        // A later run on the unit with another verb speaks for it: a stop
        // after `systemctl start a` is not the earlier `stop`'s doing.
        inv.record(Invocation {
            at: t0 + Duration::from_millis(50),
            args: argv("systemctl start a"),
            process: p(4),
            exited: Some(t0 + Duration::from_millis(60)),
        });
        assert!(inv
            .find(
                "a.service",
                "service_stopped",
                t0 + Duration::from_millis(70)
            )
            .is_none());
        assert!(Invocations::is_control_program(
            Some("/usr/bin/systemctl"),
            "systemctl"
        ));
        assert!(Invocations::is_control_program(
            Some("/usr/sbin/service"),
            "service"
        ));
        assert!(!Invocations::is_control_program(
            Some("/usr/bin/systemd"),
            "systemd"
        ));
    }

    #[test]
    fn the_verb_must_fit_the_change() {
        assert!(verb_fits("start", "service_failed"));
        assert!(!verb_fits("start", "service_stopped"));
        assert!(verb_fits("enable", "service_enabled"));
        assert!(!verb_fits("status", "service_stopped"));
        // disable and mask stop a unit only with --now.
        assert!(!run_fits(
            &argv("systemctl disable a"),
            "a.service",
            "service_stopped"
        ));
        assert!(run_fits(
            &argv("systemctl disable --now a"),
            "a.service",
            "service_stopped"
        ));
        assert!(run_fits(
            &argv("systemctl disable a"),
            "a.service",
            "service_disabled"
        ));
        assert!(!run_fits(
            &argv("systemctl start a"),
            "a.service",
            "service_stopped"
        ));
        assert!(run_fits(
            &argv("service a restart"),
            "a.service",
            "service_started"
        ));
    }
}
