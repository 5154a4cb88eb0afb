//! The native `vigil` event schema (version [`SCHEMA`]).
//!
//! One normalized event per change, serialized per sink as native JSON (this
//! module's serde form), OCSF or ECS (see `schema`). Documented in
//! docs/event-schema.md with a JSON Schema in docs/schema/; field names are part
//! of the contract with SIEM pipelines, so change them only with the version.
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

mod details;
pub use details::Details;

pub const SCHEMA: &str = "vigil/0.2";

/// An event's time as it is written, RFC 3339 UTC with nanoseconds
/// (`2026-11-27T15:43:04.742132529Z`), kept inline: events are made at
/// ~100 k/s, and an owned string was an allocation each, usually freed on
/// another thread than the one that made it.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(arrayvec::ArrayString<{ Time::CAP }>);

impl Time {
    /// Room for any RFC 3339 time (vigil writes 20 to 35 bytes).
    pub const CAP: usize = 40;

    /// `s`, cut to [`Time::CAP`] bytes at a character boundary.
    pub fn new(s: &str) -> Time {
        let mut end = s.len().min(Self::CAP);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Time(arrayvec::ArrayString::from(&s[..end]).expect("cut to capacity"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Time {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Time {
    fn from(s: &str) -> Time {
        Time::new(s)
    }
}

impl From<String> for Time {
    fn from(s: String) -> Time {
        Time::new(&s)
    }
}

impl PartialEq<str> for Time {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Time {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: &'static str,
    /// Per-run sequence number, contiguous from 1; assigned when emitted.
    pub seq: u64,
    /// RFC 3339 UTC with nanoseconds: when the change happened (the first
    /// folded change for a coalesced event).
    pub time: Time,
    /// Every event of a run names the same host: one `'static` string (see
    /// [`interned`]), so an event costs no reference count on it.
    pub host: &'static str,
    /// `file`, `package`, `service` or `sensor`.
    pub kind: &'static str,
    /// One of a fixed vocabulary (docs/event-schema.md), so a static string:
    /// events are made at ~100 k/s and an owned copy each was measurable.
    pub action: &'static str,
    /// `info`, `low`, `medium`, `high` or `critical`; set by the rules.
    pub severity: Severity,
    /// A rule marked this change as an alert.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub alert: bool,
    /// Ids of the rules that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// MITRE ATT&CK technique ids, e.g. `T1098.004`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mitre: Vec<String>,
    /// PCI DSS requirements, e.g. `11.5.2`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pci: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

// Sensor events are rare (start, heartbeat, stop, gaps): their size does not
// matter, and boxing them would change every constructor.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Body {
    File(Box<FileChange>),
    /// A software package installed, removed, upgraded or downgraded
    /// (`kind: package`), derived from the package database changing.
    Package(Box<PackageChange>),
    /// A systemd unit started, stopped, failed, enabled, disabled or masked
    /// (`kind: service`), from systemd's D-Bus signals.
    Service(Box<ServiceChange>),
    /// Boxed like the others: an event moves through every stage, and
    /// this body is the largest.
    Sensor(Box<SensorInfo>),
}

/// A systemd unit as the service manager reports it, before and after a
/// change (docs/inventory.md).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct ServiceInfo {
    /// `systemd`.
    pub manager: &'static str,
    /// Which manager: `system`, `user`, or the D-Bus address configured in
    /// `[inventory] systemd_bus`.
    pub bus: String,
    /// The unit name, e.g. `ssh.service`.
    pub unit: String,
    /// The unit type: `service`, `socket`, `timer`, `path`...
    #[serde(rename = "type")]
    pub unit_type: String,
    /// ActiveState after the change: `active`, `inactive`, `failed`,
    /// `activating`, `deactivating`, `reloading`.
    pub state: String,
    /// ActiveState before the change; absent when unknown (first seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
    /// SubState after the change (`running`, `dead`, `exited`, `failed`...).
    pub sub_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_sub_state: Option<String>,
    /// UnitFileState after the change (`enabled`, `disabled`, `static`,
    /// `masked`...); absent for a unit without a unit file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_file_state: Option<String>,
    /// The unit file (FragmentPath, or the file ListUnitFiles names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_file: Option<String>,
    /// service_failed: the service's Result (`exit-code`, `signal`,
    /// `timeout`, `core-dump`...), when systemd sent it; on Windows
    /// `exit-code <Win32ExitCode>` (or `service-specific <code>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Windows: the service's DisplayName.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Windows: the account the service runs as (ObjectName, e.g.
    /// `LocalSystem`); absent for drivers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Windows, `service_config_changed`: the account before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_account: Option<String>,
    /// Windows, `service_config_changed`: the ImagePath before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_unit_file: Option<String>,
}

/// A change of a systemd unit's state.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceChange {
    pub service: ServiceInfo,
    /// The `systemctl` (or `service`) process whose command line names the
    /// unit, run shortly before the change: a correlation, not a proof
    /// (`details.attribution`); null when there is none, or when the change
    /// was found at start-up.
    pub process: Option<std::sync::Arc<Process>>,
    /// `tier`: `dbus` (realtime) or `scan` (found at start-up); `syscall`:
    /// the D-Bus signal (`PropertiesChanged`, `UnitFilesChanged`) or
    /// `startup`; `decided_by`: `dbus`.
    pub source: Source,
    /// `attribution`: `systemctl_exec` when `process` is set;
    /// `invocation_ms`: how long before the change that process was
    /// started; `unattributed`: found at start-up.
    #[serde(skip_serializing_if = "Details::is_empty")]
    pub details: Details,
}

/// A package as the package manager records it, before and after a change.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PackageInfo {
    /// `dpkg`, `rpm` or `windows-uninstall` (the Uninstall registry keys).
    pub manager: &'static str,
    pub name: String,
    /// The version installed after the change; absent once removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version installed before the change; absent for a new install.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// `amd64`, `all`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The package manager's state after the change (dpkg: `installed`,
    /// `unpacked`, `half-configured`, ...); absent once removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    /// Windows: the Uninstall entry's Publisher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// Windows: the Uninstall entry's InstallDate as `YYYY-MM-DD` (the
    /// registry holds `YYYYMMDD`; kept as written when it is not a date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_date: Option<String>,
    /// Windows: the user whose hive holds a per-user install (SID); absent
    /// for machine-wide software.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_sid: Option<String>,
}

/// A change of the software inventory.
#[derive(Debug, Clone, Serialize)]
pub struct PackageChange {
    pub package: PackageInfo,
    /// The package database file whose change revealed it
    /// (`/var/lib/dpkg/status`), rpm's database directory, or (Windows) the
    /// Uninstall key of the entry.
    pub path: String,
    /// The process that wrote the database (dpkg); null when the change was
    /// found by the start-up comparison with the stored inventory.
    pub process: Option<std::sync::Arc<Process>>,
    /// `tier`: the hook tier of the database's file event, or `scan`;
    /// `syscall`: `inventory`; `decided_by`: `database`.
    pub source: Source,
    /// `db_seq`: the `seq` of the database's file event; `unattributed`:
    /// found at start-up, the writer is unknown.
    #[serde(skip_serializing_if = "Details::is_empty")]
    pub details: Details,
}

/// On a file event: the package that owns the file (dpkg's file lists) and
/// whether a package operation made the change.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PackageRef {
    pub manager: &'static str,
    /// The owning package; null when unknown (a file a maintainer script
    /// wrote, or a new package's file before its list is written).
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The writer or one of its ancestors is a package manager (dpkg, apt,
    /// unattended-upgrades, rpm...): a package operation made the change.
    pub managed: bool,
    /// The package manager process in the writer's ancestry (itself included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_exe: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// Shared, not owned: the pipeline keys its maps by path and folds
    /// changes into `related`, and each of those was a copy.
    pub path: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<Arc<str>>,
    /// What the kernel said about the inode when it saw the change.
    pub file: FileInfo,
    /// The state before the change, when known (baseline or an earlier event).
    pub before: Option<Box<FileState>>,
    /// The state after the change, read when the change settled; null when the
    /// file no longer exists.
    pub after: Option<Box<FileState>>,
    /// Names of [`FileState`] fields that differ between `before` and `after`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields_changed: Vec<String>,
    /// Unified diff of a small text file, where the policy allows it; never
    /// for secret files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The watched root that covers the path ([`interned`]).
    pub watch: Option<&'static str>,
    /// The package that owns the file and whether a package operation made
    /// the change (see docs/inventory.md); absent for unpackaged files
    /// changed outside package operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<Box<PackageRef>>,
    /// Shared by the events of one process (built once, not per event).
    #[serde(serialize_with = "process_json::serialize")]
    pub process: std::sync::Arc<Process>,
    pub source: Source,
    /// Syscall details that qualify the action (new mode, owner, flags...).
    #[serde(skip_serializing_if = "Details::is_empty")]
    pub details: Details,
    /// The raw changes folded into this event (a write session, a temporary
    /// file renamed over this path), oldest first. Nothing is dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

/// A process record's JSON, rendered once per shared record and reused for
/// each of its events: the process object is most of a file event's bytes,
/// and a burst of changes comes from few processes.
pub(crate) mod process_json {
    use super::Process;
    use foldhash::{HashMap, HashMapExt};
    use serde_json::value::RawValue;
    use std::cell::RefCell;
    use std::sync::Arc;

    /// Records rendered on this thread, by address (foldhash: SipHash was
    /// half the cost of a lookup, made for every event). Holding the `Arc` keeps
    /// the address from being reused by another record, and makes any
    /// `Arc::make_mut` copy instead of changing a rendered record in place.
    type Cache = HashMap<*const Process, (Arc<Process>, Box<RawValue>)>;

    /// Past this many records the cache starts over: a fork storm must not
    /// grow it without bound.
    const MAX: usize = 4096;

    thread_local! {
        static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
    }

    pub fn serialize<S: serde::Serializer>(p: &Arc<Process>, s: S) -> Result<S::Ok, S::Error> {
        with_json(p, |json| json.serialize(s))
    }

    /// Calls `f` with the record's JSON, rendered on first use.
    pub fn with_json<R>(p: &Arc<Process>, f: impl FnOnce(&RawValue) -> R) -> R {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, json)) = cache.get(&Arc::as_ptr(p)) {
                return f(json);
            }
            let json = serde_json::value::to_raw_value(&**p)
                .expect("a process record serializes: its map keys are strings");
            if cache.len() >= MAX {
                cache.clear();
            }
            let (_, json) = cache.entry(Arc::as_ptr(p)).or_insert((p.clone(), json));
            f(json)
        })
    }

    use serde::Serialize as _;
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct FileInfo {
    /// file, dir, symlink, fifo, socket, char, block, or unknown.
    #[serde(rename = "type")]
    pub file_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<Arc<str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

/// A file's metadata and content hashes at one moment.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct FileState {
    #[serde(rename = "type")]
    pub file_type: &'static str,
    pub size: u64,
    /// Permission bits including setuid/setgid/sticky, octal, e.g. `"0644"`.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// RFC 3339 UTC with nanoseconds.
    pub mtime: String,
    pub ctime: String,
    pub inode: u64,
    pub nlink: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Security extended attributes (`security.capability`, `security.selinux`,
    /// `security.ima`), hex-encoded.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// Windows: the owner's SID (`S-1-5-32-544`); absent on Linux (`uid`)
    /// and when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Windows: the DACL in SDDL (`D:PAI(A;;FA;;;SY)(A;;FA;;;BA)`),
    /// inherited entries included; absent on Linux and when unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// Lower-case hex digests: `blake3`, and `sha256` where the policy asks.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hashes: BTreeMap<String, String>,
    /// Why `hashes` is empty for a regular file: `skipped: too large`,
    /// `deleted or renamed before it could be hashed`, `unreadable: ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_note: Option<String>,
}

/// One raw change folded into a coalesced event.
#[derive(Debug, Clone, Serialize)]
pub struct Related {
    pub action: &'static str,
    pub path: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<Arc<str>>,
    pub time: Time,
    pub syscall: &'static str,
    #[serde(skip_serializing_if = "Details::is_empty")]
    pub details: Details,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub comm: String,
    pub uid: u32,
    pub user: Option<String>,
    pub gid: u32,
    pub group: Option<String>,
    pub euid: u32,
    pub egid: u32,
    pub login_uid: Option<u32>,
    pub login_user: Option<String>,
    pub session_id: Option<u32>,
    pub cgroup_id: u64,
    pub mnt_ns: u32,
    /// Process start, RFC 3339.
    pub start_time: String,
    pub container_id: Option<String>,
    pub parent: Option<ParentProcess>,
    pub ancestry: Vec<ParentProcess>,
}

#[derive(Debug, Serialize, Clone)]
pub struct ParentProcess {
    pub pid: u32,
    pub exe: Option<String>,
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// Hook tier: `tracepoint`, `fentry`, `kprobe` (realtime) or `scan`.
    pub tier: &'static str,
    pub syscall: &'static str,
    /// `inode`: decided in the kernel on inodes; `path`: confirmed in user space
    /// on the path string.
    pub decided_by: &'static str,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SensorInfo {
    pub version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks_failed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks_attached: Option<usize>,
    /// start (Linux): operation group -> the hook tier reporting it
    /// (`write`, `unlink`, `rename`, `setattr` -> `fentry`, `kprobe`, `tracepoint`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tiers: std::collections::BTreeMap<String, String>,
    /// gap: records the kernel could not deliver since the previous gap event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_reason: Option<&'static str>,
    /// health/gap from a sink: which sink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// start (Linux): the capabilities the sensor kept after attaching
    /// (`CAP_DAC_READ_SEARCH`, ...); every other one was dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// start: the heartbeat interval of this run, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_s: Option<u64>,
    /// stop: why the sensor stopped (`SIGTERM`, `SIGINT`, `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// heartbeat, stop: events emitted in this run before this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_emitted: Option<u64>,
    /// heartbeat, stop: the sum of `lost` over this run's gap events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_total: Option<u64>,
    /// heartbeat, stop: seconds since the sensor started emitting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// blind_spot: what the running hook set cannot see (`io_uring`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blind_spot: Option<&'static str>,
    /// blind_spot: the process it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_pid: Option<u32>,
    /// scan_started / scan_finished: which verification scan, and its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<Box<ScanInfo>>,
    /// downtime: when the sensor was not watching, found at start-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Box<Downtime>>,
    /// inventory_recorded: how many packages the first inventory holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<u64>,
    /// daemon_watch_unavailable, daemon_watch_started: which watcher
    /// (`systemd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watcher: Option<&'static str>,
    /// daemon_watch_started: the D-Bus bus watched (`system`, `user`, an
    /// address) and how many units it tracks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<u64>,
}

/// A verification scan the daemon ran (`scan_started`, `scan_finished`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct ScanInfo {
    /// `scans.id` in the store (absent in `scan_started`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// `init`, `catch-up`, `scheduled`, `rescan`.
    pub kind: &'static str,
    /// `running`, `ok`, `failed`, `interrupted`.
    pub status: &'static str,
    /// `baseline` or `last_reported`.
    pub against: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_seen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unattributed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// Findings the pipeline dropped because a realtime event that read the
    /// file later was already in the feed (counted in `changes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A window in which the sensor was not running.
#[derive(Debug, Clone, Serialize)]
pub struct Downtime {
    /// The last event the store holds from the previous run.
    pub from: String,
    /// This run's start.
    pub to: String,
    pub seconds: f64,
    /// Whether the previous run ended with a `stop` event; if not, it was
    /// killed, crashed or lost power, and its last moments may be missing.
    pub clean_stop: bool,
}

/// `name` as a `'static` string, made once per distinct name and then
/// shared: for the few names every event repeats (the host, the watched
/// roots). An `Arc<str>` per event was a reference count taken on the
/// source's thread and dropped on the output's: one cache line bouncing
/// between the cores for every raw change.
pub fn interned(name: &str) -> &'static str {
    thread_local! {
        static LAST: std::cell::Cell<&'static str> = const { std::cell::Cell::new("") };
    }
    let last = LAST.get();
    // The pointer first: the busiest callers pass back what they were given.
    if std::ptr::eq(last, name) || last == name {
        return last;
    }
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let interned = match names.iter().find(|n| **n == name) {
        Some(n) => n,
        None => {
            let n: &'static str = Box::leak(name.into());
            names.push(n);
            n
        }
    };
    LAST.set(interned);
    interned
}

impl Event {
    /// An event as a source makes it: not yet numbered (`seq` 0) nor judged
    /// by the rules (severity info, no rule, technique or tag).
    pub fn new(
        kind: &'static str,
        action: &'static str,
        time: impl Into<Time>,
        host: &str,
        body: Body,
    ) -> Event {
        Event {
            schema: SCHEMA,
            seq: 0,
            time: time.into(),
            host: interned(host),
            kind,
            action,
            severity: Severity::Info,
            alert: false,
            rules: Vec::new(),
            mitre: Vec::new(),
            pci: Vec::new(),
            tags: Vec::new(),
            body,
        }
    }

    /// A bare file event for unit tests: `action` on `path`, seen by `tier`
    /// (syscall `write`, decided by inode), no process, no states.
    #[cfg(test)]
    pub fn test_file(action: &'static str, path: &str, tier: &'static str) -> Event {
        Event {
            schema: SCHEMA,
            seq: 0,
            time: "t".into(),
            host: "h",
            kind: "file",
            action,
            severity: Severity::Info,
            alert: false,
            rules: vec![],
            mitre: vec![],
            pci: vec![],
            tags: vec![],
            body: Body::File(Box::new(FileChange {
                path: path.into(),
                target_path: None,
                file: FileInfo::default(),
                before: None,
                after: None,
                fields_changed: vec![],
                diff: None,
                watch: None,
                package: None,
                process: Process::default().into(),
                source: Source {
                    tier,
                    syscall: "write",
                    decided_by: "inode",
                },
                details: Default::default(),
                related: vec![],
            })),
        }
    }

    /// The file change, for `kind: file` events.
    pub fn file(&self) -> Option<&FileChange> {
        match &self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    pub fn file_mut(&mut self) -> Option<&mut FileChange> {
        match &mut self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    /// The package change, for `kind: package` events.
    pub fn package(&self) -> Option<&PackageChange> {
        match &self.body {
            Body::Package(p) => Some(p),
            _ => None,
        }
    }

    /// The service change, for `kind: service` events.
    pub fn service(&self) -> Option<&ServiceChange> {
        match &self.body {
            Body::Service(s) => Some(s),
            _ => None,
        }
    }

    /// The process behind a file, package or service event, when known.
    pub fn process(&self) -> Option<&Process> {
        match &self.body {
            Body::File(f) => Some(&f.process),
            Body::Package(p) => p.process.as_deref(),
            Body::Service(s) => s.process.as_deref(),
            Body::Sensor(_) => None,
        }
    }

    /// `time` as seconds since the Unix epoch (for sinks that want a number).
    pub fn epoch_seconds(&self) -> f64 {
        utc_epoch_seconds(&self.time).unwrap_or_else(|| {
            chrono::DateTime::parse_from_rfc3339(&self.time)
                .map(|t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
                .unwrap_or(0.0)
        })
    }
}

/// Seconds since the epoch of a time in the shape vigil writes,
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, without a general parser (every event
/// needs it for its sinks); `None` for any other shape.
fn utc_epoch_seconds(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let punct = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punct.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    // Events come in runs within one second: its date part is kept.
    thread_local! {
        static LAST: std::cell::Cell<Option<([u8; 19], i64)>> = const { std::cell::Cell::new(None) };
    }
    let frac = match &b[19..b.len() - 1] {
        [] => 0.0,
        [b'.', digits @ ..] if !digits.is_empty() && digits.len() <= 9 => {
            const SCALE: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
            num(20..b.len() - 1)? as f64 / SCALE[digits.len()]
        }
        _ => return None,
    };
    let head: [u8; 19] = b[..19].try_into().expect("19 bytes");
    if let Some((h, secs)) = LAST.get() {
        if h == head {
            return Some(secs as f64 + frac);
        }
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    LAST.set(Some((head, secs)));
    Some(secs as f64 + frac)
}

#[cfg(test)]
mod interned_tests {
    use super::interned;

    /// One string per distinct name, whichever thread asks and in whatever
    /// order: the same pointer back, never another name's.
    #[test]
    fn interned_names_are_made_once_and_never_mixed_up() {
        let a = interned("host-a");
        let b = interned(&String::from("host-b"));
        assert_eq!((a, b), ("host-a", "host-b"));
        assert!(std::ptr::eq(a, interned(&String::from("host-a"))));
        assert!(std::ptr::eq(b, interned("host-b")));
        let other = std::thread::spawn(|| interned("host-a") as *const str as *const u8 as usize)
            .join()
            .unwrap();
        assert_eq!(other, a.as_ptr() as usize);
        assert_eq!(interned(""), "");
    }
}

#[cfg(test)]
mod epoch_tests {
    use super::utc_epoch_seconds;

    #[test]
    fn vigils_times_convert_as_chrono_does() {
        for t in [
            "1970-01-01T00:00:00Z",
            "2026-11-27T05:00:00.123456789Z",
            "2024-02-29T23:59:59.5Z",
            "2000-03-01T00:00:00.000000001Z",
            "1969-12-31T23:59:59Z",
            "2100-12-31T12:34:56.999Z",
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(t).unwrap();
            let want = want.timestamp() as f64 + f64::from(want.timestamp_subsec_nanos()) / 1e9;
            assert_eq!(utc_epoch_seconds(t), Some(want), "{t}");
        }
        for other in [
            "",
            "2026-11-27T05:00:00+01:00",
            "2026-11-27 05:00:00Z",
            "2026-13-27T05:00:00Z",
            "2026-11-27T05:00:00.Z",
            "2026-11-27T05:00:00.1234567891Z",
            "2026-11-27T05:0a:00Z",
        ] {
            assert_eq!(utc_epoch_seconds(other), None, "{other}");
        }
    }
}

#[cfg(test)]
mod time_tests {
    use super::Time;

    #[test]
    fn a_time_keeps_what_fits_and_cuts_on_a_character() {
        let t = "2026-11-27T15:43:04.742132529+05:30";
        assert_eq!(Time::new(t), t);
        assert_eq!(
            serde_json::to_string(&Time::new(t)).unwrap(),
            format!("\"{t}\"")
        );
        // 39 ASCII bytes, then a 2-byte character across the capacity.
        let long = format!("{}é", "x".repeat(Time::CAP - 1));
        assert_eq!(Time::new(&long).len(), Time::CAP - 1);
        assert_eq!(Time::new(&"y".repeat(99)).len(), Time::CAP);
    }
}
