//! The policy file: which paths are watched, how, and what is ignored.
//!
//! TOML, with unknown fields rejected; every error names the file, line and
//! column. The embedded default policy (`policy/default.toml`) is what
//! `vigil run` uses when given neither `--config` nor `--watch`.
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

use crate::sink::SinkConfig;

/// The policy Vigil ships with: the usual critical files of a Linux host.
#[cfg(not(windows))]
pub const DEFAULT_POLICY: &str = include_str!("../policy/default.toml");

/// The policy Vigil ships with on Windows: `pci-windows` (sensor-windows).
#[cfg(windows)]
pub const DEFAULT_POLICY: &str = include_str!("../../sensor-windows/policy/pci-windows.toml");

/// Built-in policies, by the name `--profile` takes.
#[cfg(not(windows))]
pub const PROFILES: &[(&str, &str)] = &[
    ("default", DEFAULT_POLICY),
    ("pci-linux", include_str!("../policy/pci-linux.toml")),
];

/// Built-in policies, by the name `--profile` takes.
#[cfg(windows)]
pub const PROFILES: &[(&str, &str)] =
    &[("default", DEFAULT_POLICY), ("pci-windows", DEFAULT_POLICY)];

#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    sensor: SensorSection,
    #[serde(default)]
    watch: Vec<RawWatch>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    #[serde(default)]
    coalesce: CoalesceSection,
    #[serde(default)]
    hash: RawHash,
    #[serde(default)]
    diff: RawDiff,
    /// Rule files applied after the built-in rules, in order.
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    #[serde(default)]
    output: Vec<Spanned<SinkConfig>>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    scan: RawScan,
    /// Files that may grow but never be rewritten (logs, audit trails).
    #[serde(default)]
    append_only: Vec<Spanned<String>>,
    #[serde(default)]
    integrity: RawIntegrity,
    #[serde(default)]
    inventory: RawInventory,
    /// Watched registry keys (Windows; accepted and checked everywhere).
    #[serde(default)]
    registry: Vec<RawRegistry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    key: Spanned<String>,
    #[serde(default = "yes")]
    recursive: bool,
    #[serde(default)]
    values: Vec<Spanned<String>>,
}

/// One watched registry key (`[[registry]]`), as written: sensor-windows
/// matches it (case-insensitive; `HKCU` expands to every loaded user hive).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegistryWatch {
    /// `HKLM\...`, `HKCU\...`, `HKU\...`, `HKCR\...`.
    pub key: String,
    pub recursive: bool,
    /// Value-name globs; empty watches every value.
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawInventory {
    enabled: bool,
    dpkg_status: Spanned<String>,
    package_managers: Option<Vec<Spanned<String>>>,
    checksum: bool,
    daemons: bool,
    systemd_bus: Spanned<String>,
    systemd_unit_types: Option<Vec<Spanned<String>>>,
    rpm_dbpath: Spanned<String>,
}

impl Default for RawInventory {
    fn default() -> Self {
        RawInventory {
            enabled: true,
            dpkg_status: Spanned::new(0..0, crate::inventory::dpkg::DEFAULT_STATUS.into()),
            package_managers: None,
            checksum: true,
            daemons: true,
            systemd_bus: Spanned::new(0..0, "system".into()),
            systemd_unit_types: None,
            rpm_dbpath: Spanned::new(0..0, crate::inventory::rpm::DEFAULT_DBPATH.into()),
        }
    }
}

/// The unit types the systemd watcher reports by default.
pub const DEFAULT_UNIT_TYPES: &[&str] = &["service", "socket", "timer", "path"];

/// `[inventory]`: software inventory, package-owned changes, daemons
/// (docs/inventory.md).
#[derive(Debug, Clone)]
pub struct InventorySection {
    /// Track the dpkg inventory (when the status file is watched) and label
    /// changes made by package operations.
    pub enabled: bool,
    pub dpkg_status: PathBuf,
    /// Process names (exe base name or comm) that are package managers.
    pub package_managers: Vec<String>,
    /// `details.package_checksum` on changes of packaged files made outside
    /// package operations.
    pub checksum: bool,
    /// Watch systemd unit states (Linux), or report why they cannot be.
    pub daemons: bool,
    /// The D-Bus bus of the systemd manager watched: `system`, `user`, or a
    /// D-Bus address (`unix:path=/run/user/1000/bus`).
    pub systemd_bus: String,
    /// Unit types reported (`service`, `socket`, `timer`, `path`...).
    pub systemd_unit_types: Vec<String>,
    /// rpm's database directory (`rpm --dbpath`); must be watched for rpm
    /// inventory events.
    pub rpm_dbpath: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawScan {
    schedule: Spanned<String>,
    catch_up: bool,
    rescan_after_gap: bool,
    auto_baseline: bool,
}

impl Default for RawScan {
    fn default() -> Self {
        RawScan {
            schedule: Spanned::new(0..0, "weekly".into()),
            catch_up: true,
            rescan_after_gap: true,
            auto_baseline: true,
        }
    }
}

/// `[scan]`: the verification scans `vigil run` makes by itself.
#[derive(Debug, Clone)]
pub struct ScanSection {
    /// The scheduled comparison with the baseline (PCI DSS 11.5.2).
    pub schedule: crate::schedule::Schedule,
    /// At start-up, look for changes made while the sensor was down.
    pub catch_up: bool,
    /// After the kernel dropped events, rescan so they become findings.
    pub rescan_after_gap: bool,
    /// Record the baseline at start-up when the store has none.
    pub auto_baseline: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIntegrity {
    key: Option<Spanned<String>>,
}

/// `[integrity]`: the host key that seals the event chain.
#[derive(Debug, Clone, Default)]
pub struct IntegritySection {
    /// The key file; next to the store (`host.key`) when absent, i.e.
    /// [`crate::integrity::DEFAULT_KEY_PATH`] with the default store.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<Spanned<String>>,
}

/// `[store]`: the baseline and change-journal database.
#[derive(Debug, Clone, Default)]
pub struct StoreSection {
    /// The SQLite file; [`crate::store::DEFAULT_PATH`] when absent.
    pub path: Option<PathBuf>,
}

/// `[coalesce]`: folding raw changes into readable events.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct CoalesceSection {
    /// How long a newly written file waits for the rename that makes it a
    /// temporary file (`sed -i`, editors); 0 turns coalescing off.
    pub window_ms: u64,
    /// The longest a write session is held before it is reported anyway.
    pub max_hold_ms: u64,
}

impl Default for CoalesceSection {
    fn default() -> Self {
        CoalesceSection {
            window_ms: 30,
            max_hold_ms: 2000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHash {
    workers: Option<usize>,
    max_size_mib: u64,
    sha256: Vec<Spanned<String>>,
}

impl Default for RawHash {
    fn default() -> Self {
        RawHash {
            workers: None,
            max_size_mib: 1024,
            sha256: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDiff {
    paths: Vec<Spanned<String>>,
    max_bytes: u64,
    secret: Vec<Spanned<String>>,
}

impl Default for RawDiff {
    fn default() -> Self {
        RawDiff {
            paths: Vec::new(),
            max_bytes: 64 * 1024,
            secret: Vec::new(),
        }
    }
}

/// Files whose content is never diffed or kept, whatever the policy says.
pub const DEFAULT_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/ssl/private/**",
    "**/.ssh/id_*",
    "**/ssh_host_*_key",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/*.keytab",
];

/// `[hash]`: content digests.
#[derive(Debug, Clone)]
pub struct HashSection {
    /// Hashing threads; the number of CPUs (at most 4) when absent.
    pub workers: Option<usize>,
    /// Larger files are reported with `hash_note: skipped: too large`.
    pub max_size: u64,
    /// Paths also hashed with SHA-256.
    pub sha256: GlobSet,
}

/// `[diff]`: unified diffs of small text files (opt-in per path).
#[derive(Debug, Clone)]
pub struct DiffSection {
    pub paths: GlobSet,
    pub max_bytes: u64,
    /// [`DEFAULT_SECRETS`] plus the policy's own.
    pub secret: GlobSet,
}

/// `[sensor]`: process-wide settings.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct SensorSection {
    /// NDJSON output file (appended, native schema): shorthand for an
    /// `[[output]]` of type `file`.
    pub output: Option<PathBuf>,
    /// Host name reported in events; the system's when absent.
    pub host: Option<String>,
    /// Kernel ring-buffer size in MiB (power of two); 16 when absent.
    pub ring_buffer_mib: Option<u32>,
    /// Seconds between `heartbeat` events; 60 when absent.
    pub heartbeat_s: Option<u64>,
    /// Hook tier for the VFS operations (`auto` when absent): see [`Tier`].
    pub tier: Option<Tier>,
}

/// Which hook tier reports the file operations the VFS hooks cover (writes,
/// unlink, rename, chmod/chown/truncate/utimes). `auto` takes, per hook, the
/// first of fentry, kprobe, tracepoint the kernel allows; a forced tier uses only
/// that one and falls back to the syscall tracepoints for the hooks it refuses.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

/// Heartbeat interval when `[sensor] heartbeat_s` is absent.
pub const DEFAULT_HEARTBEAT_S: u64 = 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    path: Spanned<String>,
    #[serde(default = "yes")]
    recursive: bool,
    #[serde(default)]
    entries: Entries,
    /// File-name globs (`*.exe`); empty admits every name.
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// Which entries under a watched path are reported.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Entries {
    #[default]
    All,
    Files,
    Dirs,
}

/// One watched path.
#[derive(Debug, Clone)]
pub struct Watch {
    pub path: PathBuf,
    pub recursive: bool,
    pub entries: Entries,
    pub ignore: GlobSet,
    /// File-name globs: only files whose name matches are watched
    /// (directories are always walked). None admits every name.
    pub include: Option<GlobSet>,
    /// The `include` and `ignore` globs as written (for sensor-windows).
    pub include_globs: Vec<String>,
    pub ignore_globs: Vec<String>,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Config {
    pub sensor: SensorSection,
    pub watches: Vec<Watch>,
    pub ignore: GlobSet,
    pub coalesce: CoalesceSection,
    pub hash: HashSection,
    pub diff: DiffSection,
    pub rules: Vec<PathBuf>,
    /// `[[output]]` tables; stdout (native) when there are none.
    pub outputs: Vec<SinkConfig>,
    pub store: StoreSection,
    pub scan: ScanSection,
    /// Files that may only grow: a change to what they held is an alert.
    pub append_only: GlobSet,
    pub integrity: IntegritySection,
    /// `[[registry]]`: watched registry keys (used on Windows).
    pub registry: Vec<RegistryWatch>,
    /// The global `ignore` globs as written (for sensor-windows).
    pub ignore_globs: Vec<String>,
    pub inventory: InventorySection,
}

/// Whether a policy path is absolute on this platform: `/...` on Unix;
/// `C:\...` or `\\server\share\...` on Windows.
pub fn is_absolute(p: &str) -> bool {
    if cfg!(windows) {
        Path::new(p).is_absolute()
    } else {
        p.starts_with('/')
    }
}

/// How an absolute path looks here, for error messages.
const ABSOLUTE_HINT: &str = if cfg!(windows) {
    "like C:\\Windows"
} else {
    "start with /"
};

impl Config {
    /// Parses and validates policy text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = line_col(text, span.map(|s| s.start).unwrap_or(0));
            ConfigError {
                origin: origin.to_string(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().to_string()))?;
        let globs_with = |what: &str, list: &[Spanned<String>], builtin: &[&str]| {
            let mut b = GlobSetBuilder::new();
            for g in builtin {
                b.add(Glob::new(g).expect("built-in globs are valid"));
            }
            for g in list {
                let glob = Glob::new(g.get_ref()).map_err(|e| {
                    err(
                        Some(g.span()),
                        format!("invalid {what} glob {:?}: {e}", g.get_ref()),
                    )
                })?;
                b.add(glob);
            }
            b.build().map_err(|e| err(None, e.to_string()))
        };
        let globs = |list: &[Spanned<String>]| globs_with("ignore", list, &[]);
        let mut watches = Vec::new();
        for w in &raw.watch {
            let p = w.path.get_ref();
            if !is_absolute(p) {
                return Err(err(
                    Some(w.path.span()),
                    format!("watch path {p:?} must be absolute ({ABSOLUTE_HINT})"),
                ));
            }
            let include = if w.include.is_empty() {
                None
            } else {
                Some(globs_with("include", &w.include, &[])?)
            };
            watches.push(Watch {
                path: normalize(Path::new(p)),
                recursive: w.recursive,
                entries: w.entries,
                ignore: globs(&w.ignore)?,
                include,
                include_globs: w.include.iter().map(|g| g.get_ref().clone()).collect(),
                ignore_globs: w.ignore.iter().map(|g| g.get_ref().clone()).collect(),
            });
        }
        if let Some(mib) = raw.sensor.ring_buffer_mib {
            if !mib.is_power_of_two() || mib > 1024 {
                return Err(err(
                    None,
                    format!("[sensor] ring_buffer_mib = {mib}: use a power of two up to 1024"),
                ));
            }
        }
        if let Some(s) = raw.sensor.heartbeat_s {
            if !(1..=86_400).contains(&s) {
                return Err(err(
                    None,
                    format!(
                        "[sensor] heartbeat_s = {s}: use 1 to 86400 seconds (60 is the default)"
                    ),
                ));
            }
        }
        let integrity = match &raw.integrity.key {
            Some(p) if !is_absolute(p.get_ref()) => {
                return Err(err(
                    Some(p.span()),
                    format!("[integrity] key {:?} must be an absolute path", p.get_ref()),
                ))
            }
            p => IntegritySection {
                key: p.as_ref().map(|p| PathBuf::from(p.get_ref())),
            },
        };
        let mut rules = Vec::new();
        for r in &raw.rules {
            if !is_absolute(r.get_ref()) {
                return Err(err(
                    Some(r.span()),
                    format!("rule file {:?} must be an absolute path", r.get_ref()),
                ));
            }
            rules.push(PathBuf::from(r.get_ref()));
        }
        let store = match &raw.store.path {
            Some(p) if !is_absolute(p.get_ref()) => {
                return Err(err(
                    Some(p.span()),
                    format!("[store] path {:?} must be absolute", p.get_ref()),
                ))
            }
            p => StoreSection {
                path: p.as_ref().map(|p| PathBuf::from(p.get_ref())),
            },
        };
        let mut outputs = Vec::new();
        for o in raw.output {
            let span = o.span();
            let o = o.into_inner();
            o.check()
                .map_err(|e| err(Some(span), format!("[[output]]: {e:#}")))?;
            outputs.push(o);
        }
        let scan = ScanSection {
            schedule: crate::schedule::Schedule::parse(raw.scan.schedule.get_ref()).map_err(
                |e| {
                    err(
                        Some(raw.scan.schedule.span()),
                        format!("[scan] schedule: {e}"),
                    )
                },
            )?,
            catch_up: raw.scan.catch_up,
            rescan_after_gap: raw.scan.rescan_after_gap,
            auto_baseline: raw.scan.auto_baseline,
        };
        let mut registry = Vec::new();
        for r in &raw.registry {
            let key = r.key.get_ref();
            let hive = key
                .split('\\')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if !matches!(hive.as_str(), "HKLM" | "HKCU" | "HKU" | "HKCR") {
                return Err(err(
                    Some(r.key.span()),
                    format!(
                        "[[registry]] key {key:?} must start with HKLM\\, HKCU\\, HKU\\ or HKCR\\"
                    ),
                ));
            }
            registry.push(RegistryWatch {
                key: key.clone(),
                recursive: r.recursive,
                values: r.values.iter().map(|v| v.get_ref().clone()).collect(),
            });
        }
        let inv = &raw.inventory;
        if !inv.dpkg_status.get_ref().starts_with('/') {
            return Err(err(
                Some(inv.dpkg_status.span()),
                format!(
                    "[inventory] dpkg_status {:?} must be an absolute path",
                    inv.dpkg_status.get_ref()
                ),
            ));
        }
        let mut package_managers = Vec::new();
        match &inv.package_managers {
            None => package_managers.extend(
                crate::inventory::DEFAULT_MANAGERS
                    .iter()
                    .map(|s| s.to_string()),
            ),
            Some(list) => {
                for m in list {
                    if m.get_ref().is_empty() || m.get_ref().contains('/') {
                        return Err(err(
                            Some(m.span()),
                            format!(
                                "[inventory] package_managers: {:?} is not a program name (no path, e.g. \"dpkg\")",
                                m.get_ref()
                            ),
                        ));
                    }
                    package_managers.push(m.get_ref().clone());
                }
            }
        }
        if !inv.rpm_dbpath.get_ref().starts_with('/') {
            return Err(err(
                Some(inv.rpm_dbpath.span()),
                format!(
                    "[inventory] rpm_dbpath {:?} must be an absolute path",
                    inv.rpm_dbpath.get_ref()
                ),
            ));
        }
        let bus = inv.systemd_bus.get_ref();
        if !(bus == "system" || bus == "user" || bus.contains(':')) {
            return Err(err(
                Some(inv.systemd_bus.span()),
                format!(
                    "[inventory] systemd_bus {bus:?}: use \"system\", \"user\" or a D-Bus address such as \"unix:path=/run/user/1000/bus\""
                ),
            ));
        }
        const UNIT_TYPES: &[&str] = &[
            "service",
            "socket",
            "timer",
            "path",
            "target",
            "mount",
            "automount",
            "swap",
            "device",
            "slice",
            "scope",
        ];
        let mut systemd_unit_types = Vec::new();
        match &inv.systemd_unit_types {
            None => systemd_unit_types.extend(DEFAULT_UNIT_TYPES.iter().map(|s| s.to_string())),
            Some(list) => {
                for t in list {
                    if !UNIT_TYPES.contains(&t.get_ref().as_str()) {
                        return Err(err(
                            Some(t.span()),
                            format!(
                                "[inventory] systemd_unit_types: {:?} is not a systemd unit type (one of {})",
                                t.get_ref(),
                                UNIT_TYPES.join(", ")
                            ),
                        ));
                    }
                    systemd_unit_types.push(t.get_ref().clone());
                }
            }
        }
        let inventory = InventorySection {
            enabled: inv.enabled,
            dpkg_status: PathBuf::from(inv.dpkg_status.get_ref()),
            package_managers,
            checksum: inv.checksum,
            daemons: inv.daemons,
            systemd_bus: bus.clone(),
            systemd_unit_types,
            rpm_dbpath: PathBuf::from(inv.rpm_dbpath.get_ref()),
        };
        Ok(Config {
            inventory,
            registry,
            ignore_globs: raw.ignore.iter().map(|g| g.get_ref().clone()).collect(),
            outputs,
            store,
            scan,
            append_only: globs_with("append_only", &raw.append_only, &[])?,
            integrity,
            sensor: raw.sensor,
            watches,
            ignore: globs(&raw.ignore)?,
            coalesce: raw.coalesce,
            hash: HashSection {
                workers: raw.hash.workers,
                max_size: raw.hash.max_size_mib.saturating_mul(1 << 20),
                sha256: globs_with("[hash] sha256", &raw.hash.sha256, &[])?,
            },
            diff: DiffSection {
                paths: globs_with("[diff] paths", &raw.diff.paths, &[])?,
                max_bytes: raw.diff.max_bytes,
                secret: globs_with("[diff] secret", &raw.diff.secret, DEFAULT_SECRETS)?,
            },
            rules,
        })
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read policy {}: {e}", path.display()))?;
        Ok(Config::parse(&text, &path.display().to_string())?)
    }

    /// The text of a built-in policy; the error lists the names.
    pub fn profile_text(name: &str) -> anyhow::Result<&'static str> {
        PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
                anyhow::anyhow!(
                    "no built-in profile {name:?}: use one of {} (pci-windows ships with the Windows build)",
                    names.join(", ")
                )
            })
    }

    /// A built-in policy.
    pub fn profile(name: &str) -> anyhow::Result<Config> {
        Ok(Config::parse(
            Config::profile_text(name)?,
            &format!("<profile {name}>"),
        )?)
    }

    /// The embedded default policy.
    pub fn default_policy() -> Config {
        Config::parse(DEFAULT_POLICY, "<default policy>").expect("embedded default policy is valid")
    }

    /// A policy watching exactly `paths`, recursively.
    pub fn for_paths(paths: &[PathBuf]) -> anyhow::Result<Config> {
        let mut watches = Vec::new();
        for p in paths {
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                std::env::current_dir()?.join(p)
            };
            watches.push(Watch {
                path: normalize(&abs),
                recursive: true,
                entries: Entries::All,
                ignore: GlobSet::empty(),
                include: None,
                include_globs: Vec::new(),
                ignore_globs: Vec::new(),
            });
        }
        let mut c = Config::parse("", "<command line>").expect("the empty policy is valid");
        c.watches = watches;
        Ok(c)
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Lexically normalizes an absolute path: drops `.` and empty components and
/// applies `..` (never above `/`, or `C:\` on Windows). Symlinks are not
/// resolved.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from(std::path::MAIN_SEPARATOR_STR);
    for c in p.components() {
        match c {
            // Windows: the drive or share and its root start the path.
            std::path::Component::Prefix(_) | std::path::Component::RootDir if cfg!(windows) => {
                out.push(c.as_os_str())
            }
            std::path::Component::Normal(s) => out.push(s),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_parses() {
        let c = Config::default_policy();
        assert!(c.watches.iter().any(|w| w.path == Path::new("/etc")));
    }

    #[test]
    fn every_profile_parses() {
        for (name, _) in PROFILES {
            let c = Config::profile(name).unwrap();
            assert!(!c.watches.is_empty(), "{name}");
        }
        let pci = Config::profile("pci-linux").unwrap();
        assert!(pci.append_only.is_match("/var/log/audit/audit.log"));
        assert!(Config::profile("pci-linx")
            .unwrap_err()
            .to_string()
            .contains("pci-linux"));
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let text = "[[watch]]\npath = \"/etc\"\nrecursiv = true\n";
        let e = Config::parse(text, "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(
            e.to_string()
                .starts_with("p.toml:3:1: unknown field `recursiv`"),
            "{e}"
        );
    }

    #[test]
    fn relative_watch_path_is_an_error_at_its_value() {
        let e = Config::parse("[[watch]]\npath = \"etc\"\n", "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8), "{e}");
        assert!(e.message.contains("must be absolute"));
    }

    #[test]
    fn bad_glob_is_reported() {
        let e = Config::parse("ignore = [\"a[\"]\n", "p.toml").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("invalid ignore glob"), "{e}");
    }

    #[test]
    fn pipeline_sections_parse_and_secrets_are_built_in() {
        let c = Config::parse(
            "[coalesce]\nwindow_ms = 0\n[hash]\nmax_size_mib = 2\nsha256 = [\"/usr/bin/**\"]\n[diff]\npaths = [\"/etc/**\"]\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.coalesce.window_ms, 0);
        assert_eq!(c.hash.max_size, 2 << 20);
        assert!(c.hash.sha256.is_match("/usr/bin/ls"));
        assert!(c.diff.paths.is_match("/etc/hosts"));
        assert!(c.diff.secret.is_match("/etc/shadow"));
        assert!(c.diff.secret.is_match("/root/.ssh/id_ed25519"));
        let e = Config::parse("[diff]\npaths = [\"a[\"]\n", "p.toml").unwrap_err();
        assert!(e.message.contains("invalid [diff] paths glob"), "{e}");
    }

    #[test]
    fn store_section_parses_and_rejects_relative_and_unknown() {
        let c = Config::parse("[store]\npath = \"/tmp/v.db\"\n", "p.toml").unwrap();
        assert_eq!(c.store.path.as_deref(), Some(Path::new("/tmp/v.db")));
        assert_eq!(Config::parse("", "p").unwrap().store.path, None);
        let e = Config::parse("[store]\npath = \"v.db\"\n", "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8), "{e}");
        let e = Config::parse("[store]\npth = \"/v.db\"\n", "p.toml").unwrap_err();
        assert!(e.message.contains("unknown field `pth`"), "{e}");
    }

    #[test]
    fn integrity_and_heartbeat_parse_and_are_checked() {
        let c = Config::parse(
            "[sensor]\nheartbeat_s = 1\n[integrity]\nkey = \"/tmp/k\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.sensor.heartbeat_s, Some(1));
        assert_eq!(c.integrity.key.as_deref(), Some(Path::new("/tmp/k")));
        let e = Config::parse("[sensor]\nheartbeat_s = 0\n", "p.toml").unwrap_err();
        assert!(e.message.contains("heartbeat_s = 0"), "{e}");
        let e = Config::parse("[integrity]\nkey = \"k\"\n", "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 7), "{e}");
    }

    #[test]
    fn sensor_tier_parses_and_names_bad_values() {
        let c = Config::parse("[sensor]\ntier = \"kprobe\"\n", "p.toml").unwrap();
        assert_eq!(c.sensor.tier, Some(Tier::Kprobe));
        assert_eq!(Config::parse("", "p.toml").unwrap().sensor.tier, None);
        let e = Config::parse("[sensor]\ntier = \"lsm\"\n", "p.toml").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("fentry"), "{e}");
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("/etc/../etc/./ssh//x")),
            Path::new("/etc/ssh/x")
        );
        assert_eq!(normalize(Path::new("/../..")), Path::new("/"));
    }
}
