//! Windows software inventory and services as change events: plain Rust
//! over [`RegistryTree`] (the live registry on Windows, a map in tests), so
//! the reading, the diff and the events are unit-tested on Linux.
//!
//! - **Software**: the Uninstall keys (`HKLM\SOFTWARE\...\Uninstall`, its
//!   `WOW6432Node` twin, and each loaded user hive's
//!   `HKU\<SID>\Software\...\Uninstall`): entries with a DisplayName, keyed by
//!   DisplayName and scope (`x64`, `x86`, `user:<SID>`), diffed like the dpkg
//!   inventory into `package_installed` / `package_removed` /
//!   `package_upgraded` / `package_downgraded` (manager
//!   [`SOFTWARE_MANAGER`]).
//! - **Services**: `HKLM\SYSTEM\CurrentControlSet\Services\<name>` (every
//!   subkey with a `Type` value: Start, Type, ImagePath, ObjectName,
//!   DisplayName) plus the SCM's running state where it is known
//!   ([`ScmStatus`]): `service_installed`, `service_removed`,
//!   `service_start_type_changed`, `service_config_changed` (ImagePath or
//!   account), `service_started`, `service_stopped`, `service_failed`
//!   (manager and bus [`SCM`]).
//!
//! [`Tracker`] keeps what was last reported and turns registry changes
//! (ETW) and SCM polls into events; see docs/inventory.md.
use super::{diff_by, Change, Inventory, Key, Pkg};
use crate::event::{
    Body, Event, PackageChange, PackageInfo, Process, ServiceChange, ServiceInfo, Source,
};
use crate::inventory::systemd::UnitState;
use crate::registry::RegistryTree;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `package.manager` of Windows software events, and its name in the store.
pub const SOFTWARE_MANAGER: &str = "windows-uninstall";
/// `service.manager` and `service.bus` of Windows service events, and the
/// `units.bus` of their stored states.
pub const SCM: &str = "windows-scm";

/// The machine-wide Uninstall keys and their scope.
pub const UNINSTALL_KEYS: [(&str, &str); 2] = [
    (
        r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
        "x64",
    ),
    (
        r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
        "x86",
    ),
];
/// The per-user Uninstall key, under `HKU\<SID>`.
pub const USER_UNINSTALL: &str = r"Software\Microsoft\Windows\CurrentVersion\Uninstall";
/// The services' configuration.
pub const SERVICES_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Services";

/// How long registry changes under an Uninstall or Services key must be
/// quiet before the keys are read again: an MSI install writes dozens of
/// values in a burst, and one reading after it reports the result once.
pub const SETTLE: Duration = Duration::from_millis(1500);
/// How often `vigil run` asks the SCM for every service's running state
/// (start and stop change no registry value).
pub const SCM_POLL: Duration = Duration::from_secs(10);

/// What an Uninstall entry says beyond name and version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The entry's registry key.
    pub key: String,
    pub publisher: Option<String>,
    pub install_date: Option<String>,
}

/// The installed software: the inventory the store and the diff use, and
/// each entry's details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Software {
    pub inventory: Inventory,
    pub entries: BTreeMap<Key, Entry>,
}

fn text(tree: &dyn RegistryTree, key: &str, value: &str) -> Option<String> {
    tree.read(key, value)
        .map(|v| v.display().trim().to_string())
        .filter(|s| !s.is_empty())
}

fn number(tree: &dyn RegistryTree, key: &str, value: &str) -> Option<u32> {
    tree.read(key, value)?.display().parse().ok()
}

/// Reads every Uninstall key. An entry without DisplayName is not listed
/// (Windows' own Programs and Features does the same); two entries of one
/// scope with the same DisplayName are one package at the higher version.
pub fn read_software(tree: &dyn RegistryTree) -> Software {
    let mut out = Software::default();
    let mut roots: Vec<(String, String)> = UNINSTALL_KEYS
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect();
    if let Some((_, sids)) = tree.list("HKU") {
        for sid in sids {
            // `S-1-5-21-..._Classes` is the user's classes hive, not a profile.
            if sid.starts_with("S-1-") && !sid.ends_with("_Classes") {
                roots.push((
                    format!(r"HKU\{sid}\{USER_UNINSTALL}"),
                    format!("user:{sid}"),
                ));
            }
        }
    }
    for (root, scope) in roots {
        let Some((_, subkeys)) = tree.list(&root) else {
            continue;
        };
        for sub in subkeys {
            let key = format!(r"{root}\{sub}");
            let Some(name) = text(tree, &key, "DisplayName") else {
                continue;
            };
            let version = text(tree, &key, "DisplayVersion").unwrap_or_default();
            let k = Key {
                name,
                arch: scope.clone(),
            };
            if let Some(have) = out.inventory.get(&k) {
                if compare_versions(&have.version, &version).is_ge() {
                    continue;
                }
            }
            out.inventory.insert(
                k.clone(),
                Pkg {
                    version,
                    status: "installed".into(),
                },
            );
            let publisher = text(tree, &key, "Publisher");
            let date = text(tree, &key, "InstallDate").map(|d| install_date(&d));
            out.entries.insert(
                k,
                Entry {
                    key,
                    publisher,
                    install_date: date,
                },
            );
        }
    }
    out
}

/// `YYYYMMDD` as `YYYY-MM-DD`; anything else as written.
fn install_date(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// Orders DisplayVersions: runs of digits compare as numbers, runs of
/// letters as text (a number is newer than a letter run, as in rpm), and
/// separators only split (`10.0.19041.1` > `9.9`, `1.2.10` > `1.2.9`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn segments(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = None;
        let bytes = s.as_bytes();
        for (i, c) in bytes.iter().enumerate() {
            let class = |c: u8| {
                if c.is_ascii_digit() {
                    1
                } else if c.is_ascii_alphabetic() {
                    2
                } else {
                    0
                }
            };
            match start {
                Some(st) if class(bytes[st]) == class(*c) => {}
                Some(st) => {
                    out.push(&s[st..i]);
                    start = (class(*c) != 0).then_some(i);
                }
                None => start = (class(*c) != 0).then_some(i),
            }
        }
        if let Some(st) = start {
            out.push(&s[st..]);
        }
        out
    }
    let (x, y) = (segments(a), segments(b));
    for (p, q) in x.iter().zip(&y) {
        let (pn, qn) = (
            p.as_bytes()[0].is_ascii_digit(),
            q.as_bytes()[0].is_ascii_digit(),
        );
        let o = match (pn, qn) {
            (true, true) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => p.to_lowercase().cmp(&q.to_lowercase()),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

/// The software changes from `old` to `new`.
pub fn diff_software(old: &Inventory, new: &Inventory) -> Vec<Change> {
    diff_by(old, new, compare_versions)
}

/// Whether a registry key (as ETW and the walk name it) is under an
/// Uninstall key: its change may be an install or a removal.
pub fn is_software_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let tail = r"microsoft\windows\currentversion\uninstall";
    // `HKU\<SID>\Software\...` is the same path below the user's hive.
    let rest = match k.strip_prefix(r"hku\") {
        Some(r) => match r.split_once('\\') {
            Some((sid, r)) if sid.starts_with("s-1-") => format!(r"hklm\{r}"),
            _ => return false,
        },
        None => k,
    };
    [
        format!(r"hklm\software\{tail}"),
        format!(r"hklm\software\wow6432node\{tail}"),
    ]
    .iter()
    .any(|p| {
        rest.strip_prefix(p.as_str())
            .is_some_and(|r| r.is_empty() || r.starts_with('\\'))
    })
}

/// The service a registry key (or value path) belongs to:
/// `HKLM\SYSTEM\CurrentControlSet\Services\<name>\...` (or `ControlSet00N`,
/// which ETW may name instead of the CurrentControlSet link).
pub fn service_of(key: &str) -> Option<String> {
    let mut parts = key.split('\\');
    let hive = parts.next()?;
    let system = parts.next()?;
    let set = parts.next()?;
    let services = parts.next()?;
    let name = parts.next()?;
    let set = set.to_ascii_lowercase();
    (hive.eq_ignore_ascii_case("HKLM")
        && system.eq_ignore_ascii_case("SYSTEM")
        && (set == "currentcontrolset" || set.starts_with("controlset"))
        && services.eq_ignore_ascii_case("Services")
        && !name.is_empty())
    .then(|| name.to_string())
}

/// A service's configuration, from its Services key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceConfig {
    /// `Start`: 0 boot, 1 system, 2 auto, 3 demand, 4 disabled.
    pub start: Option<u32>,
    /// `DelayedAutostart` = 1 (with Start 2).
    pub delayed: bool,
    /// `Type` (SERVICE_KERNEL_DRIVER 0x1, ..., SERVICE_WIN32_OWN_PROCESS 0x10...).
    pub service_type: u32,
    pub image_path: Option<String>,
    pub account: Option<String>,
    pub display_name: Option<String>,
}

/// The start type's name: `boot`, `system`, `auto`, `auto_delayed`,
/// `demand`, `disabled`.
pub fn start_type(start: Option<u32>, delayed: bool) -> String {
    match start {
        Some(0) => "boot".into(),
        Some(1) => "system".into(),
        Some(2) if delayed => "auto_delayed".into(),
        Some(2) => "auto".into(),
        Some(3) => "demand".into(),
        Some(4) => "disabled".into(),
        Some(n) => format!("start_{n}"),
        None => "unknown".into(),
    }
}

/// The service type's name.
pub fn type_name(t: u32) -> String {
    let base = match t & 0xff {
        0x1 => "kernel_driver",
        0x2 => "file_system_driver",
        0x4 => "adapter",
        0x8 => "recognizer_driver",
        0x10 => "own_process",
        0x20 => "share_process",
        // SERVICE_USER_SERVICE templates (0x50, 0x60).
        0x50 => "user_own_process",
        0x60 => "user_share_process",
        _ => return format!("type_0x{t:x}"),
    };
    if t & 0x100 != 0 {
        format!("{base}_interactive")
    } else {
        base.to_string()
    }
}

/// Reads every service's configuration: the subkeys of [`SERVICES_KEY`]
/// that have a `Type` value (the others hold parameters, not services).
pub fn read_services(tree: &dyn RegistryTree) -> BTreeMap<String, ServiceConfig> {
    let mut out = BTreeMap::new();
    let Some((_, names)) = tree.list(SERVICES_KEY) else {
        return out;
    };
    for name in names {
        if let Some(c) = read_service(tree, &name) {
            out.insert(name, c);
        }
    }
    out
}

/// One service's configuration; None when it has no key or no `Type`.
pub fn read_service(tree: &dyn RegistryTree, name: &str) -> Option<ServiceConfig> {
    let key = format!(r"{SERVICES_KEY}\{name}");
    let service_type = number(tree, &key, "Type")?;
    Some(ServiceConfig {
        start: number(tree, &key, "Start"),
        delayed: number(tree, &key, "DelayedAutostart") == Some(1),
        service_type,
        image_path: text(tree, &key, "ImagePath"),
        account: text(tree, &key, "ObjectName"),
        display_name: text(tree, &key, "DisplayName"),
    })
}

/// What the SCM says of a running or stopped service
/// (`SERVICE_STATUS_PROCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScmStatus {
    /// dwCurrentState: 1 stopped, 2 start pending, 3 stop pending, 4
    /// running, 5 continue pending, 6 pause pending, 7 paused.
    pub state: u32,
    pub exit_code: u32,
    pub service_specific: u32,
}

/// `(ActiveState, SubState)` in systemd's words, so rules and the `units`
/// table treat both alike: running → active, stopped → inactive (failed
/// when it stopped with an error), pending → activating/deactivating.
pub fn scm_state(s: Option<&ScmStatus>) -> (String, String) {
    let Some(s) = s else {
        return ("unknown".into(), "unknown".into());
    };
    let (active, sub) = match s.state {
        1 if s.exit_code != 0 => ("failed", "stopped"),
        1 => ("inactive", "stopped"),
        2 => ("activating", "start_pending"),
        3 => ("deactivating", "stop_pending"),
        4 => ("active", "running"),
        5 => ("activating", "continue_pending"),
        6 => ("deactivating", "pause_pending"),
        7 => ("active", "paused"),
        _ => ("unknown", "unknown"),
    };
    (active.into(), sub.into())
}

/// A service as reported and stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// `active` (ActiveState-like), `sub` (the SCM state), `file_state`
    /// (the start type), `unit_file` (ImagePath): what the `units` table keeps.
    pub unit: UnitState,
    pub service_type: String,
    /// Not stored: known only since this run started.
    pub account: Option<String>,
    pub display_name: Option<String>,
    /// service_failed: `exit-code N` / `service-specific N`.
    pub result: Option<String>,
}

/// A service's view from its configuration and SCM status.
pub fn service(c: &ServiceConfig, scm: Option<&ScmStatus>) -> Service {
    let (active, sub) = scm_state(scm);
    Service {
        unit: UnitState {
            active,
            sub,
            file_state: Some(start_type(c.start, c.delayed)),
            unit_file: c.image_path.clone(),
        },
        service_type: type_name(c.service_type),
        account: c.account.clone(),
        display_name: c.display_name.clone(),
        result: scm.filter(|s| s.state == 1).and_then(|s| {
            // ERROR_SERVICE_SPECIFIC_ERROR: the service's own code says why.
            if s.exit_code == 1066 {
                Some(format!("service-specific {}", s.service_specific))
            } else {
                (s.exit_code != 0).then(|| format!("exit-code {}", s.exit_code))
            }
        }),
    }
}

/// Every service's view.
pub fn services(
    configs: &BTreeMap<String, ServiceConfig>,
    scm: Option<&BTreeMap<String, ScmStatus>>,
) -> BTreeMap<String, Service> {
    configs
        .iter()
        .map(|(n, c)| {
            let s = scm.and_then(|m| m.get(n).or_else(|| lookup_ci(m, n)));
            (n.clone(), service(c, s))
        })
        .collect()
}

fn lookup_ci<'a, V>(m: &'a BTreeMap<String, V>, k: &str) -> Option<&'a V> {
    m.iter()
        .find(|(x, _)| x.eq_ignore_ascii_case(k))
        .map(|(_, v)| v)
}

/// One reportable change of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTransition {
    /// `service_installed`, `service_removed`, `service_start_type_changed`,
    /// `service_config_changed`, `service_started`, `service_stopped`,
    /// `service_failed`.
    pub action: &'static str,
    pub name: String,
    pub before: Option<Service>,
    /// None: removed.
    pub after: Option<Service>,
    /// service_config_changed: `image_path`, `account`.
    pub fields: Vec<&'static str>,
}

/// The actions of Windows service events (for rules and schemas).
pub const SERVICE_ACTIONS: &[&str] = &[
    "service_installed",
    "service_removed",
    "service_start_type_changed",
    "service_config_changed",
];

/// The changes of one service. A running state `unknown` on either side
/// (no SCM answer) is not compared.
pub fn compare_service(name: &str, b: &Service, a: &Service) -> Vec<ServiceTransition> {
    let mut out = Vec::new();
    let t = |action, fields| ServiceTransition {
        action,
        name: name.to_string(),
        before: Some(b.clone()),
        after: Some(a.clone()),
        fields,
    };
    if b.unit.file_state != a.unit.file_state {
        out.push(t("service_start_type_changed", Vec::new()));
    }
    let mut fields = Vec::new();
    if b.unit.unit_file != a.unit.unit_file {
        fields.push("image_path");
    }
    // The account is not stored: compared only when both sides know it.
    if b.account.is_some() && a.account.is_some() && b.account != a.account {
        fields.push("account");
    }
    if !fields.is_empty() {
        out.push(t("service_config_changed", fields));
    }
    let (ba, aa) = (b.unit.active.as_str(), a.unit.active.as_str());
    let action = match (ba, aa) {
        ("unknown", _) | (_, "unknown") => None,
        (x, "active") if x != "active" => Some("service_started"),
        (x, "failed") if x != "failed" => Some("service_failed"),
        ("active" | "deactivating", "inactive") => Some("service_stopped"),
        _ => None,
    };
    if let Some(action) = action {
        out.push(t(action, Vec::new()));
    }
    out
}

/// The changes from `old` to `new`, in name order (names compare
/// case-insensitively, as the registry does).
pub fn diff_services(
    old: &BTreeMap<String, Service>,
    new: &BTreeMap<String, Service>,
) -> Vec<ServiceTransition> {
    let mut out = Vec::new();
    for (name, a) in new {
        match old.get(name).or_else(|| lookup_ci(old, name)) {
            Some(b) => out.extend(compare_service(name, b, a)),
            None => out.push(ServiceTransition {
                action: "service_installed",
                name: name.clone(),
                before: None,
                after: Some(a.clone()),
                fields: Vec::new(),
            }),
        }
    }
    for (name, b) in old {
        if new.get(name).or_else(|| lookup_ci(new, name)).is_none() {
            out.push(ServiceTransition {
                action: "service_removed",
                name: name.clone(),
                before: Some(b.clone()),
                after: None,
                fields: Vec::new(),
            });
        }
    }
    out.sort_by_key(|x| x.name.to_lowercase());
    out
}

/// The stored states (`units` rows of bus [`SCM`]) as services.
pub fn from_units(units: BTreeMap<String, UnitState>) -> BTreeMap<String, Service> {
    units
        .into_iter()
        .map(|(n, unit)| {
            (
                n,
                Service {
                    unit,
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// The states the `units` table keeps.
pub fn to_units(s: &BTreeMap<String, Service>) -> BTreeMap<String, UnitState> {
    s.iter().map(|(n, v)| (n.clone(), v.unit.clone())).collect()
}

/// Where a change came from: `tier` `etw` (a registry change seen in
/// realtime; `process` the writer), `scm` (a poll), `scan` (found at start
/// or by `vigil scan`).
#[derive(Debug, Clone)]
pub struct Origin {
    pub tier: &'static str,
    pub syscall: &'static str,
    pub process: Option<Arc<Process>>,
    /// The registry path whose change triggered the reading.
    pub trigger: Option<String>,
}

impl Origin {
    pub fn scan(syscall: &'static str) -> Origin {
        Origin {
            tier: "scan",
            syscall,
            process: None,
            trigger: None,
        }
    }
}

fn base_event(host: &str, kind: &'static str, action: &'static str, body: Body) -> Event {
    Event::new(
        kind,
        action,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        host,
        body,
    )
}

fn origin_details(o: &Origin) -> crate::event::Details {
    let mut d = crate::event::Details::new();
    if o.tier == "scan" {
        d.insert("unattributed", true.into());
    }
    if let Some(t) = &o.trigger {
        d.insert("registry_trigger", t.clone().into());
    }
    d
}

/// The store key of a package event (what [`read_software`] keys it by).
pub fn package_key(p: &PackageInfo) -> Key {
    Key {
        name: p.name.clone(),
        arch: match &p.user_sid {
            Some(sid) => format!("user:{sid}"),
            None => p.architecture.clone().unwrap_or_default(),
        },
    }
}

/// A software change as a `kind: package` event. `entries`: the details of
/// the entries now installed, then of those before.
pub fn package_event(
    host: &str,
    c: &Change,
    now: &BTreeMap<Key, Entry>,
    before: &BTreeMap<Key, Entry>,
    o: &Origin,
) -> Event {
    let entry = now.get(&c.key).or_else(|| before.get(&c.key));
    let (arch, user_sid) = match c.key.arch.strip_prefix("user:") {
        Some(sid) => (None, Some(sid.to_string())),
        None => (Some(c.key.arch.clone()), None),
    };
    let root = match (&user_sid, arch.as_deref()) {
        (Some(sid), _) => format!(r"HKU\{sid}\{USER_UNINSTALL}"),
        (None, Some("x86")) => UNINSTALL_KEYS[1].0.to_string(),
        _ => UNINSTALL_KEYS[0].0.to_string(),
    };
    let body = Body::Package(Box::new(PackageChange {
        package: PackageInfo {
            manager: SOFTWARE_MANAGER,
            name: c.key.name.clone(),
            version: c.after.as_ref().map(|p| p.version.clone()),
            previous_version: c.before.as_ref().map(|p| p.version.clone()),
            architecture: arch,
            status: c.after.as_ref().map(|p| p.status.clone()),
            previous_status: c.before.as_ref().map(|p| p.status.clone()),
            publisher: entry.and_then(|e| e.publisher.clone()),
            install_date: entry.and_then(|e| e.install_date.clone()),
            user_sid,
        },
        path: entry.map_or(root, |e| e.key.clone()),
        process: o.process.clone(),
        source: Source {
            tier: o.tier,
            syscall: "inventory",
            decided_by: "registry",
        },
        details: origin_details(o),
    }));
    base_event(host, "package", c.action, body)
}

/// A service change as a `kind: service` event.
pub fn service_event(host: &str, t: &ServiceTransition, o: &Origin) -> Event {
    let b = t.before.as_ref();
    let a = t.after.as_ref().or(b).expect("a transition has a side");
    let mut details = origin_details(o);
    if !t.fields.is_empty() {
        details.insert("fields_changed", t.fields.clone().into());
    }
    let removed = t.after.is_none();
    let body = Body::Service(Box::new(ServiceChange {
        service: ServiceInfo {
            manager: SCM,
            bus: SCM.into(),
            unit: t.name.clone(),
            unit_type: a.service_type.clone(),
            state: if removed {
                "removed".into()
            } else {
                a.unit.active.clone()
            },
            previous_state: b.map(|b| b.unit.active.clone()),
            sub_state: if removed {
                "removed".into()
            } else {
                a.unit.sub.clone()
            },
            previous_sub_state: b.map(|b| b.unit.sub.clone()),
            file_state: (!removed).then(|| a.unit.file_state.clone()).flatten(),
            previous_file_state: b.and_then(|b| b.unit.file_state.clone()),
            unit_file: a.unit.unit_file.clone(),
            result: (t.action == "service_failed")
                .then(|| a.result.clone())
                .flatten(),
            display_name: a.display_name.clone(),
            account: a.account.clone(),
            previous_account: b
                .and_then(|b| b.account.clone())
                .filter(|_| t.fields.contains(&"account")),
            previous_unit_file: b
                .and_then(|b| b.unit.unit_file.clone())
                .filter(|_| t.fields.contains(&"image_path")),
        },
        process: o.process.clone(),
        source: Source {
            tier: o.tier,
            syscall: o.syscall,
            decided_by: "registry",
        },
        details,
    }));
    base_event(host, "service", t.action, body)
}

/// A registry change that waits for its burst to end.
#[derive(Debug, Clone)]
struct Pending {
    last: Instant,
    process: Option<Arc<Process>>,
    trigger: String,
}

/// What [`Tracker::start`] produces.
#[derive(Default)]
pub struct Started {
    pub events: Vec<Event>,
    /// The first software inventory, to record as a whole.
    pub record_software: Option<Inventory>,
    /// Changes to apply to the stored inventory.
    pub software_changes: Vec<Change>,
    /// Every service's state, to record as a whole (the first time, and
    /// after each start: services' running states are not journaled one by
    /// one at start).
    pub record_services: Option<BTreeMap<String, UnitState>>,
}

/// The software and services as last reported, and the registry changes
/// waiting to be read. Owned by `vigil run`'s ETW thread on Windows.
pub struct Tracker {
    host: String,
    software: Software,
    services: BTreeMap<String, Service>,
    pending_software: Option<Pending>,
    pending_services: BTreeMap<String, Pending>,
    /// After an ETW gap: every service is read again.
    pending_all_services: Option<Instant>,
}

impl Tracker {
    pub fn new(host: String) -> Tracker {
        Tracker {
            host,
            software: Software::default(),
            services: BTreeMap::new(),
            pending_software: None,
            pending_services: BTreeMap::new(),
            pending_all_services: None,
        }
    }

    /// At start: reads software and services, compares them with what the
    /// store holds (None: nothing recorded yet, or no store), and says what
    /// to record.
    pub fn start(
        &mut self,
        tree: &dyn RegistryTree,
        scm: Option<&BTreeMap<String, ScmStatus>>,
        stored_software: Option<Inventory>,
        stored_services: Option<BTreeMap<String, UnitState>>,
    ) -> Started {
        let mut out = Started::default();
        let o = Origin::scan("startup");
        let sw = read_software(tree);
        match stored_software {
            Some(old) => {
                for c in diff_software(&old, &sw.inventory) {
                    out.events.push(package_event(
                        &self.host,
                        &c,
                        &sw.entries,
                        &BTreeMap::new(),
                        &o,
                    ));
                    out.software_changes.push(c);
                }
            }
            None => {
                out.events.push(crate::pipeline::emit::sensor_event(
                    &self.host,
                    "inventory_recorded",
                    crate::event::SensorInfo {
                        packages: Some(sw.inventory.len() as u64),
                        message: Some(format!(
                            "recorded the Windows software inventory ({} entries of the Uninstall keys)",
                            sw.inventory.len()
                        )),
                        ..Default::default()
                    },
                ));
                out.record_software = Some(sw.inventory.clone());
            }
        }
        self.software = sw;
        let now = services(&read_services(tree), scm);
        if let Some(old) = stored_services {
            for t in diff_services(&from_units(old), &now) {
                out.events.push(service_event(&self.host, &t, &o));
            }
        }
        out.record_services = Some(to_units(&now));
        self.services = now;
        out
    }

    /// A registry change (value or key) at `key`, made by `process`: when
    /// it is under an Uninstall or Services key, the keys are read again
    /// once the burst has been quiet for [`SETTLE`]. Returns whether it
    /// was one.
    pub fn touched(&mut self, key: &str, process: Option<Arc<Process>>, now: Instant) -> bool {
        let p = Pending {
            last: now,
            process,
            trigger: key.to_string(),
        };
        if is_software_key(key) {
            self.pending_software = Some(p);
            true
        } else if let Some(name) = service_of(key) {
            self.pending_services.insert(name, p);
            true
        } else {
            false
        }
    }

    /// ETW lost events: registry changes under the Uninstall and Services
    /// keys may be among them, so everything is read again (after
    /// [`SETTLE`], like a change) and compared with what was last reported.
    pub fn rescan(&mut self, now: Instant) {
        let trigger = "ETW gap".to_string();
        if self.pending_software.is_none() {
            self.pending_software = Some(Pending {
                last: now,
                process: None,
                trigger,
            });
        }
        self.pending_all_services = Some(now);
    }

    /// The reports of changes whose burst has settled by `now`, and, when
    /// `scm` is a fresh poll, of running-state changes.
    pub fn due(
        &mut self,
        tree: &dyn RegistryTree,
        scm: Option<&BTreeMap<String, ScmStatus>>,
        now: Instant,
    ) -> (Vec<Event>, Vec<Change>) {
        let mut events = Vec::new();
        let mut changes = Vec::new();
        if let Some(p) = self
            .pending_software
            .take_if(|p| now.duration_since(p.last) >= SETTLE)
        {
            let sw = read_software(tree);
            let o = Origin {
                tier: "etw",
                syscall: "inventory",
                process: p.process,
                trigger: Some(p.trigger),
            };
            for c in diff_software(&self.software.inventory, &sw.inventory) {
                events.push(package_event(
                    &self.host,
                    &c,
                    &sw.entries,
                    &self.software.entries,
                    &o,
                ));
                changes.push(c);
            }
            self.software = sw;
        }
        if let Some(since) = self
            .pending_all_services
            .take_if(|t| now.duration_since(*t) >= SETTLE)
        {
            let mut new = services(&read_services(tree), None);
            // The running states stay those last polled.
            for (n, s) in new.iter_mut() {
                if let Some(b) = self.services.get(n) {
                    s.unit.active = b.unit.active.clone();
                    s.unit.sub = b.unit.sub.clone();
                }
            }
            let o = Origin {
                tier: "scan",
                syscall: "rescan",
                process: None,
                trigger: Some(format!(
                    "ETW gap ({}s ago)",
                    now.duration_since(since).as_secs()
                )),
            };
            for t in diff_services(&self.services, &new) {
                events.push(service_event(&self.host, &t, &o));
            }
            self.services = new;
            self.pending_services.clear();
        }
        let settled: Vec<String> = self
            .pending_services
            .iter()
            .filter(|(_, p)| now.duration_since(p.last) >= SETTLE)
            .map(|(n, _)| n.clone())
            .collect();
        for name in settled {
            let p = self.pending_services.remove(&name).expect("listed");
            let known = self
                .services
                .keys()
                .find(|k| k.eq_ignore_ascii_case(&name))
                .cloned();
            let before = known.as_ref().and_then(|k| self.services.get(k)).cloned();
            let after = read_service(tree, &name).map(|c| {
                // Keep the running state last polled: the registry does not hold it.
                let mut s = service(&c, None);
                if let Some(b) = &before {
                    s.unit.active = b.unit.active.clone();
                    s.unit.sub = b.unit.sub.clone();
                }
                s
            });
            let o = Origin {
                tier: "etw",
                syscall: "registry",
                process: p.process,
                trigger: Some(p.trigger),
            };
            let ts = match (&before, &after) {
                (None, None) => Vec::new(),
                (Some(b), Some(a)) => compare_service(known.as_deref().unwrap_or(&name), b, a),
                (None, Some(a)) => vec![ServiceTransition {
                    action: "service_installed",
                    name: name.clone(),
                    before: None,
                    after: Some(a.clone()),
                    fields: Vec::new(),
                }],
                (Some(b), None) => vec![ServiceTransition {
                    action: "service_removed",
                    name: known.clone().unwrap_or(name.clone()),
                    before: Some(b.clone()),
                    after: None,
                    fields: Vec::new(),
                }],
            };
            events.extend(ts.iter().map(|t| service_event(&self.host, t, &o)));
            if let Some(k) = &known {
                self.services.remove(k);
            }
            if let Some(a) = after {
                self.services.insert(known.unwrap_or(name), a);
            }
        }
        if let Some(scm) = scm {
            let o = Origin {
                tier: "scm",
                syscall: "EnumServicesStatusEx",
                process: None,
                trigger: None,
            };
            for (name, s) in self.services.iter_mut() {
                let Some(st) = scm.get(name).or_else(|| lookup_ci(scm, name)) else {
                    continue;
                };
                let (active, sub) = scm_state(Some(st));
                if active == s.unit.active && sub == s.unit.sub {
                    continue;
                }
                let mut after = s.clone();
                after.unit.active = active;
                after.unit.sub = sub;
                after.result = service(&ServiceConfig::default(), Some(st)).result;
                for t in compare_service(name, s, &after) {
                    // Only the running state moved here.
                    if matches!(
                        t.action,
                        "service_started" | "service_stopped" | "service_failed"
                    ) {
                        events.push(service_event(&self.host, &t, &o));
                    }
                }
                // Transitional states are remembered, not reported (as systemd's).
                *s = after;
            }
        }
        (events, changes)
    }

    /// When the next pending reading is due (None: nothing pending).
    pub fn next_due(&self) -> Option<Instant> {
        self.pending_software
            .iter()
            .chain(self.pending_services.values())
            .map(|p| p.last + SETTLE)
            .chain(self.pending_all_services.map(|t| t + SETTLE))
            .min()
    }
}

/// `vigil scan` (and the scan daemon) on Windows: software and services
/// compared with what the store last recorded; findings are unattributed.
/// The store is not changed (as registry and file scans leave the baseline).
pub fn scan(
    tree: &dyn RegistryTree,
    scm: Option<&BTreeMap<String, ScmStatus>>,
    stored_software: Option<&Inventory>,
    stored_services: Option<BTreeMap<String, UnitState>>,
    host: &str,
    scan_id: i64,
) -> Vec<Event> {
    let o = Origin::scan("scan");
    let mut out = Vec::new();
    let sw = read_software(tree);
    if let Some(old) = stored_software {
        for c in diff_software(old, &sw.inventory) {
            out.push(package_event(host, &c, &sw.entries, &BTreeMap::new(), &o));
        }
    }
    if let Some(old) = stored_services {
        let now = services(&read_services(tree), scm);
        for t in diff_services(&from_units(old), &now) {
            out.push(service_event(host, &t, &o));
        }
    }
    for ev in &mut out {
        let d = match &mut ev.body {
            Body::Package(p) => &mut p.details,
            Body::Service(s) => &mut s.details,
            _ => continue,
        };
        d.insert("scan_id", scan_id.into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MapTree;
    use sensor_windows::RegistryValue;

    const U64: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";
    const U32: &str = r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall";
    const SID: &str = "S-1-5-21-1-2-3-1001";

    fn app(t: &mut MapTree, root: &str, sub: &str, name: &str, version: &str) {
        let k = format!(r"{root}\{sub}");
        t.set(&k, "DisplayName", RegistryValue::sz(name));
        t.set(&k, "DisplayVersion", RegistryValue::sz(version));
        t.set(&k, "Publisher", RegistryValue::sz("Example Corp"));
        t.set(&k, "InstallDate", RegistryValue::sz("20261126"));
    }

    fn svc(t: &mut MapTree, name: &str, start: u32, image: &str) {
        let k = format!(r"{SERVICES_KEY}\{name}");
        t.set(&k, "Type", RegistryValue::dword(0x10));
        t.set(&k, "Start", RegistryValue::dword(start));
        t.set(&k, "ImagePath", RegistryValue::sz(image));
        t.set(&k, "ObjectName", RegistryValue::sz("LocalSystem"));
        t.set(
            &k,
            "DisplayName",
            RegistryValue::sz(&format!("{name} service")),
        );
    }

    fn tree() -> MapTree {
        let mut t = MapTree::default();
        app(&mut t, U64, "{A1}", "Agent", "1.2.9");
        app(&mut t, U32, "Tool", "Tool", "3.0");
        // No DisplayName: an update or a component, not listed.
        t.set(
            &format!(r"{U64}\KB123"),
            "ParentKeyName",
            RegistryValue::sz("x"),
        );
        app(
            &mut t,
            &format!(r"HKU\{SID}\{USER_UNINSTALL}"),
            "UserApp",
            "User App",
            "0.1",
        );
        // A classes hive is not a profile.
        app(
            &mut t,
            &format!(r"HKU\{SID}_Classes\{USER_UNINSTALL}"),
            "X",
            "Not A Profile",
            "1",
        );
        svc(
            &mut t,
            "W3SVC",
            2,
            r"C:\Windows\system32\svchost.exe -k iissvcs",
        );
        svc(&mut t, "Spooler", 2, r"C:\Windows\System32\spoolsv.exe");
        // Parameters, not a service.
        t.set(
            &format!(r"{SERVICES_KEY}\EventLog-Data"),
            "Whatever",
            RegistryValue::dword(1),
        );
        t
    }

    fn actions(evs: &[Event]) -> Vec<(String, String)> {
        evs.iter()
            .map(|e| {
                let name = match &e.body {
                    Body::Package(p) => p.package.name.clone(),
                    Body::Service(s) => s.service.unit.clone(),
                    Body::Sensor(_) => e.action.to_string(),
                    Body::File(f) => f.path.to_string(),
                };
                (e.action.to_string(), name)
            })
            .collect()
    }

    #[test]
    fn software_is_read_from_machine_wow64_and_user_uninstall_keys() {
        let sw = read_software(&tree());
        let keys: Vec<(String, String, String)> = sw
            .inventory
            .iter()
            .map(|(k, p)| (k.name.clone(), k.arch.clone(), p.version.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("Agent".to_string(), "x64".to_string(), "1.2.9".to_string()),
                ("Tool".into(), "x86".into(), "3.0".into()),
                ("User App".into(), format!("user:{SID}"), "0.1".into()),
            ]
        );
        let e = &sw.entries[&Key {
            name: "Agent".into(),
            arch: "x64".into(),
        }];
        assert_eq!(e.key, format!(r"{U64}\{{A1}}"));
        assert_eq!(e.publisher.as_deref(), Some("Example Corp"));
        assert_eq!(e.install_date.as_deref(), Some("2026-11-26"));
    }

    #[test]
    fn versions_order_numerically_by_segment() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("1.2.10", "1.2.9"), Greater);
        assert_eq!(compare_versions("10.0.19041.1", "9.9"), Greater);
        assert_eq!(compare_versions("1.0", "1.0.0.1"), Less);
        assert_eq!(compare_versions("2.0b", "2.0a"), Greater);
        assert_eq!(compare_versions("1.01", "1.1"), Equal);
        assert_eq!(compare_versions("", "1"), Less);
    }

    #[test]
    fn registry_paths_are_classified() {
        assert!(is_software_key(&format!(r"{U64}\{{A1}}")));
        assert!(is_software_key(&U32.to_lowercase()));
        assert!(is_software_key(&format!(
            r"HKU\{SID}\{USER_UNINSTALL}\UserApp\DisplayVersion"
        )));
        assert!(!is_software_key(
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\UninstallX"
        ));
        assert!(!is_software_key(
            r"HKU\.DEFAULT\Software\Microsoft\Windows\CurrentVersion\Uninstall"
        ));
        assert_eq!(
            service_of(r"HKLM\SYSTEM\CurrentControlSet\Services\W3SVC\Start").as_deref(),
            Some("W3SVC")
        );
        assert_eq!(
            service_of(r"HKLM\SYSTEM\ControlSet001\Services\evil").as_deref(),
            Some("evil")
        );
        assert_eq!(service_of(r"HKLM\SYSTEM\CurrentControlSet\Services"), None);
        assert_eq!(
            service_of(r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa"),
            None
        );
    }

    #[test]
    fn first_start_records_then_a_later_start_reports_what_changed_meanwhile() {
        let mut t = tree();
        let mut tr = Tracker::new("h".into());
        let scm: BTreeMap<String, ScmStatus> = [(
            "W3SVC".to_string(),
            ScmStatus {
                state: 4,
                exit_code: 0,
                service_specific: 0,
            },
        )]
        .into();
        let s = tr.start(&t, Some(&scm), None, None);
        assert_eq!(
            actions(&s.events),
            [("inventory_recorded".into(), "inventory_recorded".into())]
        );
        let inv = s.record_software.unwrap();
        let units = s.record_services.unwrap();
        assert_eq!(units["W3SVC"].active, "active");
        assert_eq!(units["W3SVC"].file_state.as_deref(), Some("auto"));
        assert_eq!(units["Spooler"].active, "unknown");
        assert!(!units.contains_key("EventLog-Data"));

        // While the sensor was down: an upgrade, a removal, an install, a
        // service disabled, a new service, W3SVC stopped.
        app(&mut t, U64, "{A2}", "Agent", "1.2.10");
        t.values
            .retain(|(k, _), _| !k.contains(r"{A1}") && !k.ends_with(r"\Tool"));
        app(&mut t, U64, "New", "New App", "1");
        svc(&mut t, "Spooler", 4, r"C:\Windows\System32\spoolsv.exe");
        svc(&mut t, "evil", 2, r"C:\Users\Public\evil.exe");
        let scm2: BTreeMap<String, ScmStatus> = [(
            "W3SVC".to_string(),
            ScmStatus {
                state: 1,
                exit_code: 0,
                service_specific: 0,
            },
        )]
        .into();
        let mut tr = Tracker::new("h".into());
        let s = tr.start(&t, Some(&scm2), Some(inv), Some(units));
        assert_eq!(
            actions(&s.events),
            [
                ("package_upgraded".to_string(), "Agent".to_string()),
                ("package_installed".into(), "New App".into()),
                ("package_removed".into(), "Tool".into()),
                ("service_installed".into(), "evil".into()),
                ("service_start_type_changed".into(), "Spooler".into()),
                ("service_stopped".into(), "W3SVC".into()),
            ]
        );
        assert!(s.record_software.is_none());
        assert_eq!(s.software_changes.len(), 3);
        let Body::Package(p) = &s.events[0].body else {
            panic!()
        };
        assert_eq!(p.package.manager, SOFTWARE_MANAGER);
        assert_eq!(p.package.version.as_deref(), Some("1.2.10"));
        assert_eq!(p.package.previous_version.as_deref(), Some("1.2.9"));
        assert_eq!(p.package.architecture.as_deref(), Some("x64"));
        assert_eq!(p.path, format!(r"{U64}\{{A2}}"));
        assert!(p.process.is_none());
        assert_eq!(p.details["unattributed"], true);
        let Body::Service(sv) = &s.events[4].body else {
            panic!()
        };
        assert_eq!(sv.service.manager, SCM);
        assert_eq!(sv.service.previous_file_state.as_deref(), Some("auto"));
        assert_eq!(sv.service.file_state.as_deref(), Some("disabled"));
        assert_eq!(sv.source.tier, "scan");
    }

    fn proc(pid: u32, exe: &str) -> Option<Arc<Process>> {
        Some(Arc::new(Process {
            pid,
            exe: Some(exe.into()),
            ..Default::default()
        }))
    }

    #[test]
    fn registry_changes_settle_then_report_attributed_to_the_writer() {
        let mut t = tree();
        let mut tr = Tracker::new("h".into());
        let s = tr.start(&t, None, None, None);
        let inv = s.record_software.unwrap();
        let t0 = Instant::now();
        // msiexec writes the new entry's values in a burst.
        app(&mut t, U64, "{B1}", "Monitoring Agent", "7.1");
        let k = format!(r"{U64}\{{B1}}");
        assert!(tr.touched(&format!(r"{k}\DisplayName"), proc(900, "msiexec.exe"), t0));
        assert!(tr.touched(
            &format!(r"{k}\DisplayVersion"),
            proc(900, "msiexec.exe"),
            t0 + Duration::from_millis(500)
        ));
        assert!(!tr.touched(r"HKLM\SOFTWARE\Other", proc(1, "x"), t0));
        assert_eq!(
            tr.next_due(),
            Some(t0 + Duration::from_millis(500) + SETTLE)
        );
        // Not settled yet.
        let (e, _) = tr.due(&t, None, t0 + Duration::from_millis(1000));
        assert!(e.is_empty());
        let (e, c) = tr.due(&t, None, t0 + Duration::from_secs(3));
        assert_eq!(
            actions(&e),
            [(
                "package_installed".to_string(),
                "Monitoring Agent".to_string()
            )]
        );
        assert_eq!(c.len(), 1);
        assert_eq!(e[0].process().map(|p| p.pid), Some(900));
        let Body::Package(p) = &e[0].body else {
            panic!()
        };
        assert_eq!(p.source.tier, "etw");
        assert_eq!(
            p.details["registry_trigger"],
            format!(r"{k}\DisplayVersion")
        );
        assert_eq!(
            package_key(&p.package),
            Key {
                name: "Monitoring Agent".into(),
                arch: "x64".into()
            }
        );
        assert!(!inv.contains_key(&package_key(&p.package)));
        assert_eq!(tr.next_due(), None);
        // Nothing more to report.
        assert!(tr.due(&t, None, t0 + Duration::from_secs(9)).0.is_empty());

        // A service's ImagePath replaced (T1574.011), then it is removed.
        t.set(
            &format!(r"{SERVICES_KEY}\Spooler"),
            "ImagePath",
            RegistryValue::sz(r"C:\Temp\evil.exe"),
        );
        let k = r"HKLM\SYSTEM\ControlSet001\Services\spooler";
        assert!(tr.touched(k, proc(77, "sc.exe"), t0));
        let (e, c) = tr.due(&t, None, t0 + Duration::from_secs(2));
        assert!(c.is_empty());
        assert_eq!(
            actions(&e),
            [("service_config_changed".to_string(), "Spooler".to_string())]
        );
        let Body::Service(s) = &e[0].body else {
            panic!()
        };
        assert_eq!(s.service.unit_file.as_deref(), Some(r"C:\Temp\evil.exe"));
        assert_eq!(
            s.service.previous_unit_file.as_deref(),
            Some(r"C:\Windows\System32\spoolsv.exe")
        );
        assert_eq!(
            s.details["fields_changed"],
            serde_json::json!(["image_path"])
        );
        assert_eq!(s.process.as_ref().map(|p| p.pid), Some(77));
        t.values.retain(|(k, _), _| !k.ends_with(r"\Spooler"));
        tr.touched(k, proc(77, "sc.exe"), t0);
        let (e, _) = tr.due(&t, None, t0 + Duration::from_secs(2));
        assert_eq!(
            actions(&e),
            [("service_removed".to_string(), "Spooler".to_string())]
        );
        let Body::Service(s) = &e[0].body else {
            panic!()
        };
        assert_eq!(s.service.state, "removed");
        assert_eq!(s.service.previous_file_state.as_deref(), Some("auto"));
    }

    #[test]
    fn an_etw_gap_reads_everything_again_and_reports_what_was_missed() {
        let mut t = tree();
        let mut tr = Tracker::new("h".into());
        tr.start(&t, None, None, None);
        // Changes whose registry events ETW lost: nothing touched them.
        app(&mut t, U64, "Lost", "Lost App", "2");
        svc(
            &mut t,
            "W3SVC",
            4,
            r"C:\Windows\system32\svchost.exe -k iissvcs",
        );
        let t0 = Instant::now();
        assert!(tr.due(&t, None, t0 + SETTLE).0.is_empty());
        tr.rescan(t0);
        assert_eq!(tr.next_due(), Some(t0 + SETTLE));
        let (e, c) = tr.due(&t, None, t0 + SETTLE);
        assert_eq!(
            actions(&e),
            [
                ("package_installed".to_string(), "Lost App".to_string()),
                ("service_start_type_changed".into(), "W3SVC".into()),
            ]
        );
        assert_eq!(c.len(), 1);
        assert!(e.iter().all(|e| e.process().is_none()));
        assert_eq!(tr.next_due(), None);
    }

    #[test]
    fn scm_polls_report_starts_stops_and_failures_not_transitions() {
        let t = tree();
        let mut tr = Tracker::new("h".into());
        let st = |state, exit_code| {
            let m: BTreeMap<String, ScmStatus> = [(
                "w3svc".to_string(),
                ScmStatus {
                    state,
                    exit_code,
                    service_specific: 0,
                },
            )]
            .into();
            m
        };
        tr.start(&t, Some(&st(1, 0)), None, None);
        let now = Instant::now();
        let mut seen = Vec::new();
        for (state, code) in [(2, 0), (4, 0), (3, 0), (1, 0), (4, 0), (1, 1067)] {
            let (e, _) = tr.due(&t, Some(&st(state, code)), now);
            seen.extend(actions(&e).into_iter().map(|(a, _)| a));
            if let Some(Body::Service(s)) = e.first().map(|e| &e.body) {
                if e[0].action == "service_failed" {
                    assert_eq!(s.service.result.as_deref(), Some("exit-code 1067"));
                    assert_eq!(s.service.state, "failed");
                }
                assert_eq!(s.source.tier, "scm");
                assert!(s.process.is_none());
            }
        }
        assert_eq!(
            seen,
            [
                "service_started",
                "service_stopped",
                "service_started",
                "service_failed"
            ]
        );
    }

    #[test]
    fn scan_compares_with_the_store_without_changing_it() {
        let mut t = tree();
        let mut tr = Tracker::new("h".into());
        let s = tr.start(&t, None, None, None);
        let (inv, units) = (s.record_software.unwrap(), s.record_services.unwrap());
        assert!(scan(&t, None, Some(&inv), Some(units.clone()), "h", 9).is_empty());
        app(&mut t, U64, "VigilTestApp", "Vigil Test App", "1.0");
        svc(&mut t, "VigilTestSvc", 3, r"C:\vigil\svc.exe");
        let evs = scan(&t, None, Some(&inv), Some(units.clone()), "h", 9);
        assert_eq!(
            actions(&evs),
            [
                (
                    "package_installed".to_string(),
                    "Vigil Test App".to_string()
                ),
                ("service_installed".into(), "VigilTestSvc".into()),
            ]
        );
        for e in &evs {
            let d = match &e.body {
                Body::Package(p) => &p.details,
                Body::Service(s) => &s.details,
                _ => unreachable!(),
            };
            assert_eq!(d["scan_id"], 9);
            assert_eq!(d["unattributed"], true);
        }
        let Body::Service(s) = &evs[1].body else {
            panic!()
        };
        assert_eq!(s.service.file_state.as_deref(), Some("demand"));
        assert_eq!(s.service.unit_type, "own_process");
        assert_eq!(s.service.account.as_deref(), Some("LocalSystem"));
    }
}

/// `vigil baseline init|update` on Windows: records the software inventory
/// and every service's state as the comparison point for `vigil scan` and
/// the next `vigil run`. Returns (software entries, services).
pub fn record(
    store: &crate::store::Store,
    tree: &dyn RegistryTree,
    scm: Option<&BTreeMap<String, ScmStatus>>,
) -> anyhow::Result<(usize, usize)> {
    let sw = read_software(tree);
    let units = to_units(&services(&read_services(tree), scm));
    store.record_inventory(SOFTWARE_MANAGER, &sw.inventory)?;
    store.record_units(SCM, &units)?;
    Ok((sw.inventory.len(), units.len()))
}

/// `vigil scan` on Windows: software and services compared with what the
/// store recorded ([`scan`]), in a `scans` row of their own (its paths: the
/// Uninstall and Services keys); returns the number of findings, None
/// when nothing was recorded yet (a store from before this feature: `vigil
/// baseline update` records them).
pub fn scan_recorded(
    store: &crate::store::Store,
    tree: &dyn RegistryTree,
    scm: Option<&BTreeMap<String, ScmStatus>>,
    out: &mut dyn crate::scan::Findings,
    kind: &str,
) -> anyhow::Result<Option<u64>> {
    let sw = store.inventory(SOFTWARE_MANAGER)?;
    let units = store.units(SCM)?;
    if sw.is_none() && units.is_none() {
        return Ok(None);
    }
    let keys: Vec<String> = UNINSTALL_KEYS
        .iter()
        .map(|(k, _)| k.to_string())
        .chain([format!(r"HKU\*\{USER_UNINSTALL}"), SERVICES_KEY.to_string()])
        .collect();
    let id = store.scan_started(kind, &keys, false)?;
    let evs = scan(tree, scm, sw.as_ref(), units, out.host(), id);
    let n = evs.len() as u64;
    let seen = sw.map_or(0, |s| s.len() as u64);
    for ev in evs {
        out.report(store, ev, Instant::now())?;
    }
    store.scan_finished(id, "ok", seen, n, 0, None)?;
    out.flush()?;
    Ok(Some(n))
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::registry::MapTree;
    use sensor_windows::RegistryValue;

    struct Collect(Vec<Event>);
    impl crate::scan::Findings for Collect {
        fn host(&self) -> &str {
            "h"
        }
        fn report(&mut self, _: &crate::store::Store, ev: Event, _: Instant) -> anyhow::Result<()> {
            self.0.push(ev);
            Ok(())
        }
        fn flush(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn baseline_then_scan_reports_installs_upgrades_and_removals_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("v.db")).unwrap();
        let mut t = MapTree::default();
        let mut c = Collect(Vec::new());
        assert_eq!(
            scan_recorded(&store, &t, None, &mut c, "scan").unwrap(),
            None
        );
        let app = format!(r"{}\VigilTestApp", UNINSTALL_KEYS[0].0);
        let svc = format!(r"{SERVICES_KEY}\VigilTestSvc");
        let put = |t: &mut MapTree, version: &str, start: u32| {
            t.set(&app, "DisplayName", RegistryValue::sz("Vigil Test App"));
            t.set(&app, "DisplayVersion", RegistryValue::sz(version));
            t.set(&svc, "Type", RegistryValue::dword(16));
            t.set(&svc, "Start", RegistryValue::dword(start));
        };
        assert_eq!(record(&store, &t, None).unwrap(), (0, 0));
        put(&mut t, "1.0", 3);
        assert_eq!(
            scan_recorded(&store, &t, None, &mut c, "scan").unwrap(),
            Some(2)
        );
        assert_eq!(record(&store, &t, None).unwrap(), (1, 1));
        put(&mut t, "2.0", 4);
        assert_eq!(
            scan_recorded(&store, &t, None, &mut c, "scan").unwrap(),
            Some(2)
        );
        t.values.clear();
        assert_eq!(
            scan_recorded(&store, &t, None, &mut c, "scan").unwrap(),
            Some(2)
        );
        let got: Vec<&str> = c.0.iter().map(|e| e.action).collect();
        assert_eq!(
            got,
            [
                "package_installed",
                "service_installed",
                "package_upgraded",
                "service_start_type_changed",
                "package_removed",
                "service_removed"
            ]
        );
    }
}
