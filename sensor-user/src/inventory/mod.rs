//! Beyond files: the software inventory and package-owned changes.
//!
//! A derived stage of the pipeline (run on the settle thread, right after
//! the emit of the event that triggers it, so its events follow that event
//! in `seq`):
//!
//! - **Inventory.** When a file event shows the dpkg status file replaced or
//!   modified, the database is parsed again and diffed with the previous
//!   inventory: `package_installed`, `package_removed`, `package_upgraded`,
//!   `package_downgraded` events (`kind: package`), attributed to the process
//!   that wrote the database. The inventory is kept in the store (`packages`
//!   table), so that changes made while the sensor was down are reported at
//!   the next start (unattributed).
//! - **Labelling.** A file event made by a package operation (a package
//!   manager is the writer or in its ancestry) carries `package` with
//!   `managed: true` and the owning package from dpkg's file lists; rules
//!   can lower its severity (`package_managed`). A change of a packaged
//!   file outside a package operation carries the owner and
//!   `details.package_checksum`: whether the file still matches the md5
//!   dpkg recorded for it.
//! - **Daemons.** systemd unit states from systemd's D-Bus API
//!   ([`systemd`]: the state machine; `systemd_bus`: the watcher thread,
//!   Linux); where it is not available a `daemon_watch_unavailable` event
//!   says why.
//!
//! See docs/inventory.md.
pub mod dpkg;
pub mod rpm;
pub mod systemd;
#[cfg(target_os = "linux")]
pub mod systemd_bus;
pub mod win;

use crate::event::{
    Body, Event, PackageChange, PackageInfo, PackageRef, Process, SensorInfo, Source,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A package's identity: dpkg allows one name per architecture
/// (Multi-Arch: same).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub name: String,
    pub arch: String,
}

/// What the database says about an installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkg {
    pub version: String,
    /// The dpkg state: `installed`, `unpacked`, `half-configured`, ...
    pub status: String,
}

/// The installed packages of one package manager.
pub type Inventory = BTreeMap<Key, Pkg>;

/// One difference between two inventories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `package_installed`, `package_removed`, `package_upgraded`,
    /// `package_downgraded`, or `package_changed` (same version, another state,
    /// e.g. a failed configuration: `half-configured`).
    pub action: &'static str,
    pub key: Key,
    pub before: Option<Pkg>,
    pub after: Option<Pkg>,
}

/// The changes from `old` to `new` (dpkg versions), in package order.
pub fn diff(old: &Inventory, new: &Inventory) -> Vec<Change> {
    diff_by(old, new, dpkg::compare_versions)
}

/// The changes from `old` to `new`, versions ordered by `cmp`.
pub fn diff_by(
    old: &Inventory,
    new: &Inventory,
    cmp: fn(&str, &str) -> std::cmp::Ordering,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (k, b) in old {
        match new.get(k) {
            None => out.push(Change {
                action: "package_removed",
                key: k.clone(),
                before: Some(b.clone()),
                after: None,
            }),
            Some(a) if a != b => {
                let action = match cmp(&a.version, &b.version) {
                    std::cmp::Ordering::Greater => "package_upgraded",
                    std::cmp::Ordering::Less => "package_downgraded",
                    std::cmp::Ordering::Equal => "package_changed",
                };
                out.push(Change {
                    action,
                    key: k.clone(),
                    before: Some(b.clone()),
                    after: Some(a.clone()),
                });
            }
            Some(_) => {}
        }
    }
    for (k, a) in new {
        if !old.contains_key(k) {
            out.push(Change {
                action: "package_installed",
                key: k.clone(),
                before: None,
                after: Some(a.clone()),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// `[inventory]` as the stage uses it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Track the dpkg inventory (the status file must be watched).
    pub inventory: bool,
    /// Label file events with their package and package operation.
    pub label: bool,
    /// Check changes of packaged files against dpkg's recorded md5.
    pub checksum: bool,
    /// Report at start that systemd unit states are not watched (where the
    /// D-Bus watcher is not built: not Linux).
    pub daemons: bool,
    pub dpkg_status: PathBuf,
    /// Process names (exe base name or comm) of package managers.
    pub managers: Vec<String>,
    /// The watched roots: the file-owner index keeps only paths under them.
    pub scope: Vec<PathBuf>,
    /// Files larger than this are not checksummed (`[hash] max_size_mib`).
    pub max_size: u64,
    /// The rpm database directory, when it is watched (and rpm inventory is
    /// tracked).
    pub rpm_dbpath: Option<PathBuf>,
}

/// The package managers recognised by default.
pub const DEFAULT_MANAGERS: &[&str] = &[
    "dpkg",
    "apt",
    "apt-get",
    "aptitude",
    "unattended-upgrade",
    "unattended-upgrades",
    "packagekitd",
    "rpm",
    "dnf",
    "yum",
    "zypper",
];

/// The stage. Owned by the settle thread.
pub struct Stage {
    s: Settings,
    host: String,
    /// The inventory as last reported; None until [`Stage::start`].
    current: Option<Inventory>,
    /// The rpm inventory as last reported.
    rpm_current: Option<Inventory>,
    owners: Option<dpkg::Owners>,
    /// The first index, read on its own thread from the start: reading every
    /// file list takes a noticeable moment, which would otherwise stall the
    /// first labelled event (and every event behind it).
    owners_rx: Option<crossbeam_channel::Receiver<dpkg::Owners>>,
    /// The last process record asked about and its package manager, if any:
    /// a process's events share one record, so runs of events ask once.
    last_manager: Option<(Arc<Process>, Option<Manager>)>,
}

/// What [`Stage::start`] and [`Stage::db_changed`] produce: events to emit
/// in order, and the changes to write to the store.
#[derive(Default)]
pub struct Derived {
    pub events: Vec<Event>,
    pub changes: Vec<Change>,
    /// The first inventory: written to the store as a whole.
    pub recorded: Option<Inventory>,
    /// The same for rpm.
    pub rpm_changes: Vec<Change>,
    pub rpm_recorded: Option<Inventory>,
}

impl Stage {
    pub fn new(s: Settings, host: String) -> Stage {
        let owners_rx = s.label.then(|| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let mut o = dpkg::Owners::new(s.dpkg_status.with_file_name("info"), s.scope.clone());
            let spawned = std::thread::Builder::new()
                .name("vigil-owners".into())
                .spawn(move || {
                    o.refresh();
                    let _ = tx.send(o);
                });
            // Without the thread, the index is read at the first label.
            spawned.ok().map(|_| rx)
        });
        Stage {
            s,
            host,
            current: None,
            rpm_current: None,
            owners: None,
            owners_rx: owners_rx.flatten(),
            last_manager: None,
        }
    }

    /// At start (after the `start` event): the daemon watcher's availability,
    /// and the inventory compared with the one the store holds (`stored`:
    /// None when the store has none or there is no store).
    pub fn start(
        &mut self,
        stored: Option<Inventory>,
        rpm_stored: Option<Inventory>,
        has_store: bool,
    ) -> Derived {
        let mut out = Derived::default();
        self.start_rpm(rpm_stored, has_store, &mut out);
        if self.s.daemons {
            if let Err(reason) = systemd_availability() {
                out.events.push(crate::pipeline::emit::sensor_event(
                    &self.host,
                    "daemon_watch_unavailable",
                    SensorInfo {
                        watcher: Some("systemd"),
                        message: Some(reason),
                        ..Default::default()
                    },
                ));
            }
        }
        if !self.s.inventory {
            return out;
        }
        let now = match dpkg::read_inventory(&self.s.dpkg_status) {
            Ok(inv) => inv,
            Err(e) => {
                out.events.push(self.error(format!(
                    "software inventory not tracked: {e:#}; fix the file or set [inventory] dpkg_status"
                )));
                self.s.inventory = false;
                return out;
            }
        };
        let path = self.s.dpkg_status.display().to_string();
        let (changes, recorded) = self.compare_at_start(
            "dpkg",
            &path,
            stored,
            &now,
            has_store,
            diff,
            &mut out.events,
        );
        out.changes.extend(changes);
        out.recorded = recorded;
        self.current = Some(now);
        out
    }

    /// One manager's inventory at start: the differences from the stored
    /// one as unattributed package events (found while the sensor was down),
    /// or, with none stored, an `inventory_recorded` event and the inventory
    /// to record. Returns (changes, inventory to record).
    #[allow(clippy::too_many_arguments)]
    fn compare_at_start(
        &self,
        manager: &'static str,
        path: &str,
        stored: Option<Inventory>,
        now: &Inventory,
        has_store: bool,
        diff: impl Fn(&Inventory, &Inventory) -> Vec<Change>,
        events: &mut Vec<Event>,
    ) -> (Vec<Change>, Option<Inventory>) {
        let Some(old) = stored else {
            events.push(crate::pipeline::emit::sensor_event(
                &self.host,
                "inventory_recorded",
                SensorInfo {
                    packages: Some(now.len() as u64),
                    message: Some(if has_store {
                        format!(
                            "recorded the {manager} inventory ({} packages) from {path}",
                            now.len()
                        )
                    } else {
                        format!("the store is not open: the {manager} inventory is kept in memory only, changes made while the sensor is down will not be found")
                    }),
                    ..Default::default()
                },
            ));
            return (Vec::new(), Some(now.clone()));
        };
        let changes = diff(&old, now);
        for c in &changes {
            let mut details = crate::event::Details::new();
            details.insert("unattributed", true.into());
            events.push(self.package_event(manager, c, path, None, "scan", details));
        }
        (changes, None)
    }

    /// The rpm inventory at start, compared with the stored one.
    fn start_rpm(&mut self, stored: Option<Inventory>, has_store: bool, out: &mut Derived) {
        let Some(dbpath) = self.s.rpm_dbpath.clone() else {
            return;
        };
        let now = match rpm::read_inventory(&dbpath) {
            Ok(inv) => inv,
            Err(e) => {
                out.events.push(self.error(format!(
                    "rpm inventory not tracked: {e:#}; install rpm or set [inventory] rpm_dbpath"
                )));
                self.s.rpm_dbpath = None;
                return;
            }
        };
        let path = dbpath.display().to_string();
        let diff_rpm = |old: &Inventory, new: &Inventory| diff_by(old, new, rpm::compare_evr);
        let (changes, recorded) = self.compare_at_start(
            "rpm",
            &path,
            stored,
            &now,
            has_store,
            diff_rpm,
            &mut out.events,
        );
        out.rpm_changes.extend(changes);
        out.rpm_recorded = recorded;
        self.rpm_current = Some(now);
    }

    /// Which package database `ev` (a file event) shows changed: `dpkg`
    /// (the status file modified, created, or renamed over) or `rpm` (a
    /// file in its database directory written, created or renamed).
    pub fn db_change(&self, ev: &Event) -> Option<&'static str> {
        if self.is_db_change(ev) {
            return Some("dpkg");
        }
        let dbpath = self.s.rpm_dbpath.as_ref()?;
        self.rpm_current.as_ref()?;
        let f = ev.file()?;
        // The sensor's own `rpm -qa` touches the database too (sqlite's
        // shared-memory index): reading again for it would never end.
        if f.process.ppid == std::process::id() {
            return None;
        }
        let path = match ev.action {
            "renamed" | "linked" => f.target_path.as_deref()?,
            "modified" | "created" | "truncated" | "closed_after_write" => &*f.path,
            _ => return None,
        };
        // The database proper (sqlite, ndb, Berkeley DB): rpm writes it
        // last, when the transaction is over (sqlite checkpoints its WAL
        // when rpm closes the database). Its -wal, -shm and lock files
        // change during the transaction, before the new state is in place.
        let p = Path::new(path);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        (p.parent().is_some_and(|p| p == dbpath) && rpm::DB_FILES.contains(&name)).then_some("rpm")
    }

    /// Whether `ev` (a file event) leaves a new version of the package
    /// database in place: the status file modified, created, or renamed over.
    pub fn is_db_change(&self, ev: &Event) -> bool {
        if !self.s.inventory || self.current.is_none() {
            return false;
        }
        let Some(f) = ev.file() else { return false };
        let db = self.s.dpkg_status.as_os_str();
        match ev.action {
            "renamed" | "linked" => f.target_path.as_deref().map(std::ffi::OsStr::new) == Some(db),
            "modified" | "created" | "truncated" | "closed_after_write" => {
                std::ffi::OsStr::new(&*f.path) == db
            }
            _ => false,
        }
    }

    /// The database changed (`db_seq`: the `seq` of its file event, whose
    /// writer is `process`): parse it again and report the differences.
    pub fn db_changed(
        &mut self,
        manager: &'static str,
        db_seq: u64,
        process: Arc<Process>,
        tier: &'static str,
    ) -> Derived {
        let mut out = Derived::default();
        if manager == "rpm" {
            self.rpm_changed(db_seq, process, tier, &mut out);
            return out;
        }
        let now = match dpkg::read_inventory(&self.s.dpkg_status) {
            Ok(inv) => inv,
            Err(e) => {
                // Keep the previous inventory: the next change is diffed against it.
                out.events.push(self.error(format!(
                    "the package database changed but cannot be read: {e:#}; its changes are reported at the next readable version"
                )));
                return out;
            }
        };
        let old = self.current.take().unwrap_or_default();
        let path = self.s.dpkg_status.display().to_string();
        for c in diff(&old, &now) {
            let mut details = crate::event::Details::new();
            details.insert("db_seq", db_seq.into());
            out.events.push(self.package_event(
                "dpkg",
                &c,
                &path,
                Some(process.clone()),
                tier,
                details,
            ));
            out.changes.push(c);
        }
        self.current = Some(now);
        out
    }

    /// The rpm database changed: `rpm -qa` again, and the differences.
    fn rpm_changed(
        &mut self,
        db_seq: u64,
        process: Arc<Process>,
        tier: &'static str,
        out: &mut Derived,
    ) {
        let Some(dbpath) = self.s.rpm_dbpath.clone() else {
            return;
        };
        let now = match rpm::read_inventory(&dbpath) {
            Ok(inv) => inv,
            Err(e) => {
                out.events.push(self.error(format!(
                    "the rpm database changed but cannot be read: {e:#}; its changes are reported at the next readable version"
                )));
                return;
            }
        };
        let old = self.rpm_current.take().unwrap_or_default();
        let path = dbpath.display().to_string();
        for c in diff_by(&old, &now, rpm::compare_evr) {
            let mut details = crate::event::Details::new();
            details.insert("db_seq", db_seq.into());
            out.events.push(self.package_event(
                "rpm",
                &c,
                &path,
                Some(process.clone()),
                tier,
                details,
            ));
            out.rpm_changes.push(c);
        }
        self.rpm_current = Some(now);
    }

    fn error(&self, message: String) -> Event {
        crate::pipeline::emit::sensor_event(
            &self.host,
            "error",
            SensorInfo {
                message: Some(message),
                ..Default::default()
            },
        )
    }

    fn package_event(
        &self,
        manager: &'static str,
        c: &Change,
        path: &str,
        process: Option<Arc<Process>>,
        tier: &'static str,
        details: crate::event::Details,
    ) -> Event {
        Event::new(
            "package",
            c.action,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            &self.host,
            Body::Package(Box::new(PackageChange {
                package: PackageInfo {
                    manager,
                    name: c.key.name.clone(),
                    version: c.after.as_ref().map(|p| p.version.clone()),
                    previous_version: c.before.as_ref().map(|p| p.version.clone()),
                    architecture: Some(c.key.arch.clone()).filter(|a| !a.is_empty()),
                    status: c.after.as_ref().map(|p| p.status.clone()),
                    previous_status: c.before.as_ref().map(|p| p.status.clone()),
                    ..Default::default()
                },
                path: path.to_string(),
                process,
                source: Source {
                    tier,
                    syscall: "inventory",
                    decided_by: "database",
                },
                details,
            })),
        )
    }

    /// Labels a file event before the rules see it: `package` (owner,
    /// managed) and, outside package operations, `details.package_checksum`.
    pub fn label(&mut self, ev: &mut Event) {
        if !self.s.label {
            return;
        }
        let action = ev.action;
        let Some(f) = ev.file_mut() else { return };
        if f.source.tier == "scan" {
            // A scan finding has no writer: only the checksum would apply,
            // and the scan already compared with the baseline.
            return;
        }
        let managed = match &self.last_manager {
            Some((p, m)) if Arc::ptr_eq(p, &f.process) => m.clone(),
            _ => {
                let m = manager_in(&f.process, &self.s.managers);
                self.last_manager = Some((f.process.clone(), m.clone()));
                m
            }
        };
        let path = match action {
            "renamed" | "linked" | "exchanged" => f.target_path.clone().unwrap_or_default(),
            _ => f.path.clone(),
        };
        if self.owners.is_none() {
            self.owners = self.owners_rx.take().and_then(|rx| rx.recv().ok());
        }
        let owners = self
            .owners
            .get_or_insert_with(|| dpkg::Owners::new(info_dir(&self.s), self.s.scope.clone()));
        if managed.is_some() {
            // A package operation in progress rewrites the lists now.
            owners.refresh();
        }
        let listed = owners.listed(&path);
        let mut owner = listed.as_ref().map(|(o, _)| o.clone());
        let mut version = None;
        let mut arch = None;
        if managed.is_some() {
            // A package being unpacked: its list is written right after its
            // files are in place, so it may not be there yet.
            if let Some((name, v, a)) = dpkg::unpacking(&self.s.dpkg_status) {
                match &owner {
                    None => {
                        owner = owners.owner(&path).or(Some(name.clone()));
                        if owner.as_deref().map(dpkg::base_name) == Some(name.as_str()) {
                            version = v;
                            arch = a;
                        }
                    }
                    Some(o) if dpkg::base_name(o) == name => {
                        version = v;
                        arch = a;
                    }
                    Some(_) => {}
                }
            }
        }
        if owner.is_none() && managed.is_none() {
            return;
        }
        if let Some(o) = &owner {
            let name = dpkg::base_name(o);
            let list_arch = o.split_once(':').map(|(_, a)| a.to_string());
            // During a package operation the database is about to change:
            // only the package being unpacked names a version for sure.
            if version.is_none() && managed.is_none() {
                if let Some((k, p)) = self.current.as_ref().and_then(|inv| {
                    inv.iter().find(|(k, _)| {
                        k.name == name && list_arch.as_ref().is_none_or(|a| *a == k.arch)
                    })
                }) {
                    version = Some(p.version.clone());
                    arch = Some(k.arch.clone());
                }
            }
            arch = arch.or(list_arch);
        }
        if managed.is_none() && self.s.checksum {
            let is_file = f.after.as_ref().is_some_and(|a| a.file_type == "file");
            let small = f.after.as_ref().is_some_and(|a| a.size <= self.s.max_size);
            let verdict = if action == "deleted" || f.after.is_none() {
                Some(dpkg::Verdict::Missing)
            } else if is_file && small {
                Some(dpkg::verify(
                    &info_dir(&self.s),
                    &self.s.dpkg_status,
                    listed.as_ref().map(|(o, l)| (o.as_str(), l.as_str())),
                    &path,
                ))
            } else {
                None
            };
            if let Some(v) = verdict {
                f.details.insert("package_checksum", v.as_str().into());
            }
        }
        let (manager_pid, manager_exe) = match managed {
            Some((pid, exe)) => (Some(pid), exe),
            None => (None, None),
        };
        f.package = Some(Box::new(PackageRef {
            manager: "dpkg",
            name: owner.as_deref().map(|o| dpkg::base_name(o).to_string()),
            version,
            architecture: arch,
            managed: manager_pid.is_some(),
            manager_pid,
            manager_exe,
        }));
    }
}

/// dpkg's `info` directory (file lists and md5sums), beside its status file.
fn info_dir(s: &Settings) -> PathBuf {
    s.dpkg_status.with_file_name("info")
}

/// `vigil package list`: one line per installed package.
pub fn list(status: &Path, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    for (k, p) in dpkg::read_inventory(status)? {
        writeln!(out, "{}\t{}\t{}\t{}", k.name, p.version, k.arch, p.status)?;
    }
    Ok(())
}

/// `vigil package verify`: checks `paths` (all packaged files when empty)
/// against dpkg's recorded md5 sums; returns how many are mismatched or
/// missing.
pub fn verify_files(
    status: &Path,
    paths: &[PathBuf],
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u64> {
    let info = status.with_file_name("info");
    if !info.is_dir() {
        anyhow::bail!(
            "{} is not a directory: is {} dpkg's status file?",
            info.display(),
            status.display()
        );
    }
    let mut bad = 0;
    let mut line =
        |out: &mut dyn std::io::Write, v: dpkg::Verdict, pkg: Option<&str>, path: &str| {
            if matches!(v, dpkg::Verdict::Mismatch | dpkg::Verdict::Missing) {
                bad += 1;
            }
            writeln!(
                out,
                "{}\t{}\t{}",
                v.as_str(),
                pkg.map_or("-", dpkg::base_name),
                path
            )
        };
    if paths.is_empty() {
        let mut sums: Vec<PathBuf> = std::fs::read_dir(&info)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "md5sums"))
            .collect();
        sums.sort();
        for file in sums {
            let pkg = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let text = std::fs::read_to_string(&file)?;
            for l in text.lines() {
                let Some((want, rel)) = l.split_once("  ") else {
                    continue;
                };
                let path = format!("/{rel}");
                let v = match dpkg::md5_file(Path::new(&path)) {
                    Ok(have) if have.eq_ignore_ascii_case(want) => continue,
                    Ok(_) => dpkg::Verdict::Mismatch,
                    Err(_) => dpkg::Verdict::Missing,
                };
                line(out, v, Some(&pkg), &path)?;
            }
        }
        return Ok(bad);
    }
    let mut owners = dpkg::Owners::new(info.clone(), Vec::new());
    for p in paths {
        let abs = std::path::absolute(p)?;
        let path = abs.to_string_lossy();
        let listed = owners.listed(&path);
        let owner = listed.as_ref().map(|(o, l)| (o.as_str(), l.as_str()));
        let v = dpkg::verify(&info, status, owner, &path);
        line(out, v, owner.map(|(o, _)| o), &path)?;
    }
    Ok(bad)
}

/// A package manager found in a process's ancestry: its pid and exe.
type Manager = (u32, Option<String>);

/// The nearest package-manager process among the writer and its ancestry.
fn manager_in(p: &Process, managers: &[String]) -> Option<Manager> {
    let is = |exe: Option<&str>, comm: &str| {
        let base = exe.and_then(|e| Path::new(e).file_name()?.to_str());
        managers.iter().any(|m| {
            base == Some(m.as_str())
                || comm == m
                // comm is cut at 15 bytes (unattended-upgrade runs as python3).
                || (comm.len() == 15 && m.starts_with(comm))
        })
    };
    if is(p.exe.as_deref(), &p.comm) {
        return Some((p.pid, p.exe.clone()));
    }
    p.parent
        .iter()
        .chain(p.ancestry.iter())
        .find(|a| is(a.exe.as_deref(), &a.comm))
        .map(|a| (a.pid, a.exe.clone()))
}

/// Whether systemd unit states can be watched here; the reason when not.
/// systemd's own test (sd_booted): `/run/systemd/system` exists.
pub fn systemd_availability() -> Result<(), String> {
    if !Path::new("/run/systemd/system").is_dir() {
        let init = std::fs::read_to_string("/proc/1/comm")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        return Err(format!(
            "systemd is not the init system (PID 1 is {init:?}, /run/systemd/system is missing): unit state changes cannot be watched; unit files are still watched as files"
        ));
    }
    if !Path::new("/run/dbus/system_bus_socket").exists() {
        return Err("no D-Bus system bus (/run/dbus/system_bus_socket is missing): unit state changes cannot be watched; unit files are still watched as files".into());
    }
    Err("this build has no systemd D-Bus watcher yet (docs/inventory.md): unit state changes are not reported; unit files are still watched as files".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ParentProcess;

    fn inv(list: &[(&str, &str, &str, &str)]) -> Inventory {
        list.iter()
            .map(|(n, a, v, s)| {
                (
                    Key {
                        name: n.to_string(),
                        arch: a.to_string(),
                    },
                    Pkg {
                        version: v.to_string(),
                        status: s.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn diff_reports_installs_removals_upgrades_downgrades_and_state_changes() {
        let old = inv(&[
            ("a", "amd64", "1.0", "installed"),
            ("b", "all", "2.0-1", "installed"),
            ("c", "all", "1:1.0", "installed"),
            ("d", "amd64", "1.0", "installed"),
            ("e", "all", "3", "installed"),
            ("lib", "i386", "1", "installed"),
        ]);
        let new = inv(&[
            ("a", "amd64", "1.0", "installed"),
            ("b", "all", "2.0-2", "installed"),
            ("c", "all", "9.0", "installed"),
            ("e", "all", "3", "half-configured"),
            ("f", "all", "0.1", "unpacked"),
            ("lib", "amd64", "1", "installed"),
        ]);
        let got: Vec<(&str, String)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.action, format!("{}:{}", c.key.name, c.key.arch)))
            .collect();
        assert_eq!(
            got,
            [
                ("package_upgraded", "b:all".to_string()),
                ("package_downgraded", "c:all".into()),
                ("package_removed", "d:amd64".into()),
                ("package_changed", "e:all".into()),
                ("package_installed", "f:all".into()),
                // A crossgrade is one package out, another in.
                ("package_installed", "lib:amd64".into()),
                ("package_removed", "lib:i386".into()),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn package_managers_are_found_in_the_writer_or_its_ancestry() {
        let m: Vec<String> = DEFAULT_MANAGERS.iter().map(|s| s.to_string()).collect();
        let mut p = Process {
            pid: 10,
            exe: Some("/usr/bin/sed".into()),
            comm: "sed".into(),
            ..Default::default()
        };
        assert_eq!(manager_in(&p, &m), None);
        p.ancestry = vec![
            ParentProcess {
                pid: 9,
                exe: Some("/usr/bin/dash".into()),
                comm: "postinst".into(),
                cmdline: None,
            },
            ParentProcess {
                pid: 8,
                exe: Some("/usr/bin/dpkg".into()),
                comm: "dpkg".into(),
                cmdline: None,
            },
        ];
        assert_eq!(manager_in(&p, &m), Some((8, Some("/usr/bin/dpkg".into()))));
        let u = Process {
            pid: 5,
            exe: Some("/usr/bin/python3.11".into()),
            comm: "unattended-upgr".into(),
            ..Default::default()
        };
        assert_eq!(manager_in(&u, &m).map(|x| x.0), Some(5));
        // A name that merely starts like one is not one.
        let d = Process {
            pid: 6,
            exe: Some("/usr/local/bin/dpkg-evil".into()),
            comm: "dpkg-evil".into(),
            ..Default::default()
        };
        assert_eq!(manager_in(&d, &m), None);
    }
}
