//! dpkg's database: the status file (and its `updates/` journal), the file
//! lists (`info/PKG.list`) and recorded checksums (`info/PKG.md5sums`, the
//! `Conffiles` field), and Debian version ordering.
use super::{Inventory, Key, Pkg};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where dpkg keeps its status file unless the policy says otherwise.
pub const DEFAULT_STATUS: &str = "/var/lib/dpkg/status";

/// One stanza of the status file, the fields Vigil uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stanza {
    pub package: String,
    pub version: Option<String>,
    pub architecture: Option<String>,
    /// The third word of `Status:` (`installed`, `config-files`, ...).
    pub state: String,
    /// `Conffiles:` entries: path and recorded md5.
    pub conffiles: Vec<(String, String)>,
}

/// An error in the status file, naming the line.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses status-file text (RFC 822-like stanzas separated by blank lines;
/// continuation lines start with a space or tab). `origin` names the file in
/// errors. A stanza without `Package:` or `Status:` is an error naming its
/// first line.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Stanza>, ParseError> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, Stanza, bool)> = None; // first line, stanza, has status
    let mut field = String::new();
    let err = |line: usize, message: String| ParseError {
        file: origin.to_string(),
        line,
        message,
    };
    let mut finish = |cur: &mut Option<(usize, Stanza, bool)>| -> Result<(), ParseError> {
        if let Some((line, s, has_status)) = cur.take() {
            if s.package.is_empty() {
                return Err(err(line, "stanza without a Package: field".into()));
            }
            if !has_status {
                return Err(err(
                    line,
                    format!("package {:?} has no Status: field", s.package),
                ));
            }
            out.push(s);
        }
        Ok(())
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            finish(&mut cur)?;
            field.clear();
            continue;
        }
        let (_, s, has_status) = cur.get_or_insert_with(|| (n, Stanza::default(), false));
        if raw.starts_with(' ') || raw.starts_with('\t') {
            // Continuation of a multi-line field; only Conffiles is read.
            if field == "Conffiles" {
                let mut w = raw.split_whitespace();
                if let (Some(p), Some(md5)) = (w.next(), w.next()) {
                    s.conffiles.push((p.to_string(), md5.to_string()));
                }
            }
            continue;
        }
        let Some((name, value)) = raw.split_once(':') else {
            return Err(err(n, format!("expected `Field: value`, found {raw:?}")));
        };
        field.clear();
        field.push_str(name);
        let value = value.trim();
        match name {
            "Package" => s.package = value.to_string(),
            "Version" => s.version = Some(value.to_string()),
            "Architecture" => s.architecture = Some(value.to_string()),
            "Status" => {
                // "want flag state", e.g. "install ok installed".
                let words: Vec<&str> = value.split_whitespace().collect();
                if words.len() != 3 {
                    return Err(err(
                        n,
                        format!("Status: {value:?} is not `want flag state`"),
                    ));
                }
                s.state = words[2].to_string();
                *has_status = true;
            }
            _ => {}
        }
    }
    finish(&mut cur)?;
    Ok(out)
}

/// Whether a dpkg state means the package is on the system (its files may
/// be): everything but `not-installed` and `config-files`.
pub fn present(state: &str) -> bool {
    !matches!(state, "not-installed" | "config-files")
}

/// The installed packages the dpkg database at `status` records: the
/// status file with the records of its `updates/` journal applied (dpkg
/// writes each change there first and folds them into the status file at
/// checkpoints).
pub fn read_inventory(status: &Path) -> anyhow::Result<Inventory> {
    let text = std::fs::read_to_string(status).map_err(|e| {
        anyhow::anyhow!("cannot read the dpkg status file {}: {e}", status.display())
    })?;
    let mut map = Inventory::new();
    let mut apply = |stanzas: Vec<Stanza>| {
        for s in stanzas {
            let key = Key {
                name: s.package.clone(),
                arch: s.architecture.clone().unwrap_or_default(),
            };
            if present(&s.state) {
                map.insert(
                    key,
                    Pkg {
                        version: s.version.unwrap_or_default(),
                        status: s.state,
                    },
                );
            } else {
                map.remove(&key);
            }
        }
    };
    apply(parse(&text, &status.display().to_string())?);
    let updates = status.with_file_name("updates");
    if let Ok(rd) = std::fs::read_dir(&updates) {
        let mut names: Vec<(u64, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_str()?.parse::<u64>().ok()?;
                Some((n, e.path()))
            })
            .collect();
        names.sort();
        for (_, p) in names {
            // Deleted by dpkg in between: its content is in the status file now.
            let Ok(t) = std::fs::read_to_string(&p) else {
                continue;
            };
            apply(parse(&t, &p.display().to_string())?);
        }
    }
    Ok(map)
}

// ---------------------------------------------------------------------------
// Versions.

/// Compares two Debian versions (`[epoch:]upstream[-revision]`) as dpkg does
/// (deb-version(7)): epochs numerically, then upstream and revision by
/// alternating non-digit parts (letters before non-letters, `~` before
/// everything, even the end) and numeric parts.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

fn split_version(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = a[i] as i32 - b[j] as i32;
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

// ---------------------------------------------------------------------------
// File owners and recorded checksums.

/// Which package's file list names a path: `info/*.list`, read again only
/// when a list's mtime changes. Paths outside `scope` (the watched roots)
/// are not kept, so the index stays small.
pub struct Owners {
    info: PathBuf,
    scope: Scope,
    /// Per list file: its mtime and the paths it named (in scope).
    lists: HashMap<String, (SystemTime, Vec<String>)>,
    /// Path (as listed, and its merged-/usr alias) → package, path as listed.
    owner: HashMap<String, (String, String)>,
    dir_mtime: Option<SystemTime>,
    /// The merged-/usr directories on this system (`/bin` → `/usr/bin`...).
    merged: Vec<(&'static str, &'static str)>,
    /// What the lists of removed packages said, kept for
    /// [`REMOVED_KEEP`]: dpkg deletes a package's list right after its
    /// files, often before their deletion events are labelled.
    removed: HashMap<String, (String, String, std::time::Instant)>,
    /// When the directory was last read.
    scanned: Option<std::time::Instant>,
    /// When its mtime was last looked at (see [`CHECK_EVERY`]).
    checked: Option<std::time::Instant>,
}

/// How often [`Owners::listed`] looks whether the lists changed. Labelling
/// runs once per event: a stat per event was a tenth of the pipeline's time
/// at 100k events/s. Package operations in progress refresh at once
/// ([`Owners::refresh`]).
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// How often a directory that changed in the last second is read again.
const RECENT_RESCAN: std::time::Duration = std::time::Duration::from_millis(100);

/// How long the paths of a removed package's list still name their owner.
const REMOVED_KEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Directories that merged /usr turns into symlinks into /usr.
const USRMERGE: &[(&str, &str)] = &[
    ("/bin/", "/usr/bin/"),
    ("/sbin/", "/usr/sbin/"),
    ("/lib/", "/usr/lib/"),
    ("/lib32/", "/usr/lib32/"),
    ("/lib64/", "/usr/lib64/"),
    ("/libx32/", "/usr/libx32/"),
];

/// Writes the other name of `path` under merged /usr into `out`; false if
/// it has none. A buffer, not a new `String`: the lists name ~100 000 paths
/// and few aliases are kept.
fn alias_into(merged: &[(&str, &str)], path: &str, out: &mut String) -> bool {
    for (short, long) in merged {
        let (other, rest) = match (path.strip_prefix(short), path.strip_prefix(long)) {
            (Some(rest), _) => (long, rest),
            (_, Some(rest)) => (short, rest),
            _ => continue,
        };
        out.clear();
        out.push_str(other);
        out.push_str(rest);
        return true;
    }
    false
}

/// The path prefixes whose files the index keeps (the watched roots).
struct Scope {
    all: bool,
    dirs: Vec<String>,
}

impl Scope {
    /// Empty `roots`: everything. A root that is not UTF-8 holds no listed
    /// path (dpkg's lists are UTF-8).
    fn new(roots: &[PathBuf]) -> Scope {
        Scope {
            all: roots.is_empty(),
            dirs: roots
                .iter()
                .filter_map(|r| r.to_str())
                .map(|r| r.trim_end_matches('/').to_string())
                .collect(),
        }
    }

    /// `path` is a root or under one. By bytes on `/` boundaries, as
    /// `Path::starts_with` would decide for the clean absolute paths of the
    /// lists, at a fraction of its cost per line.
    fn holds(&self, path: &str) -> bool {
        self.all
            || self.dirs.iter().any(|d| {
                path.strip_prefix(d.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
    }
}

impl Owners {
    /// `info`: dpkg's info directory; `scope`: prefixes to keep (empty: all).
    pub fn new(info: PathBuf, scope: Vec<PathBuf>) -> Owners {
        Owners {
            info,
            scope: Scope::new(&scope),
            lists: HashMap::new(),
            owner: HashMap::new(),
            dir_mtime: None,
            removed: HashMap::new(),
            scanned: None,
            checked: None,
            merged: USRMERGE
                .iter()
                .filter(|(short, _)| {
                    std::fs::symlink_metadata(short.trim_end_matches('/'))
                        .is_ok_and(|m| m.file_type().is_symlink())
                })
                .copied()
                .collect(),
        }
    }

    /// The package (`name` or `name:arch`, as dpkg names list files) whose
    /// list holds `path`. Re-reads the lists that changed when the info
    /// directory changed since the last look (dpkg replaces a list by
    /// renaming, which changes the directory).
    pub fn owner(&mut self, path: &str) -> Option<String> {
        self.listed(path).map(|(pkg, _)| pkg)
    }

    /// As [`Owners::owner`], with the path as the list names it (`/bin/ls`
    /// for `/usr/bin/ls` under merged /usr: dpkg's checksums use that name).
    pub fn listed(&mut self, path: &str) -> Option<(String, String)> {
        if self.checked.is_none_or(|t| t.elapsed() >= CHECK_EVERY) {
            self.refresh();
        }
        self.owner.get(path).cloned().or_else(|| {
            self.removed
                .get(path)
                .filter(|(_, _, t)| t.elapsed() < REMOVED_KEEP)
                .map(|(pkg, listed, _)| (pkg.clone(), listed.clone()))
        })
    }

    /// Re-reads the lists that changed, when the directory changed.
    pub fn refresh(&mut self) {
        self.checked = Some(std::time::Instant::now());
        let mtime = std::fs::metadata(&self.info)
            .and_then(|m| m.modified())
            .ok();
        // Two changes within one tick of the file system's clock leave the
        // same mtime: a directory changed in the last second is read again,
        // at most every RECENT_RESCAN (a large upgrade labels many events).
        let recent = mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age < std::time::Duration::from_secs(1));
        let due = self.scanned.is_none_or(|t| t.elapsed() >= RECENT_RESCAN);
        if mtime.is_some() && mtime == self.dir_mtime && !(recent && due) {
            return;
        }
        self.dir_mtime = mtime;
        self.scanned = Some(std::time::Instant::now());
        let Ok(rd) = std::fs::read_dir(&self.info) else {
            return;
        };
        let mut seen = std::collections::HashSet::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pkg) = name.to_str().and_then(|n| n.strip_suffix(".list")) else {
                continue;
            };
            let pkg = pkg.to_string();
            let Ok(m) = e.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            seen.insert(pkg.clone());
            if self.lists.get(&pkg).is_some_and(|(t, _)| *t == m) {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            // Each listed path, and its merged-/usr alias, keyed to the listed one.
            let mut names: Vec<(String, String)> = Vec::new();
            let mut alias = String::new();
            for p in text.lines() {
                if self.scope.holds(p) {
                    names.push((p.to_string(), p.to_string()));
                }
                if alias_into(&self.merged, p, &mut alias) && self.scope.holds(&alias) {
                    names.push((alias.clone(), p.to_string()));
                }
            }
            self.forget(&pkg);
            let mut keys = Vec::with_capacity(names.len());
            for (key, listed) in names {
                self.owner.insert(key.clone(), (pkg.clone(), listed));
                keys.push(key);
            }
            self.lists.insert(pkg, (m, keys));
        }
        let gone: Vec<String> = self
            .lists
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        self.removed
            .retain(|_, (_, _, t)| t.elapsed() < REMOVED_KEEP);
        for pkg in gone {
            self.forget(&pkg);
        }
    }

    /// Drops what `pkg`'s list said (another package may own a path now, or
    /// its new list names fewer paths). The dropped paths still name `pkg`
    /// for [`REMOVED_KEEP`]: on removal dpkg rewrites the list with only the
    /// leftovers, then deletes it, right after deleting the files.
    fn forget(&mut self, pkg: &str) {
        let now = std::time::Instant::now();
        if let Some((_, old)) = self.lists.remove(pkg) {
            for p in old {
                if let Some(entry) = self.owner.remove(&p) {
                    if entry.0 == pkg {
                        self.removed.insert(p, (entry.0, entry.1, now));
                    } else {
                        self.owner.insert(p, entry);
                    }
                }
            }
        }
    }
}

/// `name:arch` (dpkg's file naming for Multi-Arch: same packages) → name.
pub fn base_name(list_name: &str) -> &str {
    list_name.split_once(':').map_or(list_name, |(n, _)| n)
}

/// The md5 dpkg recorded for `path` of package `pkg` (as named by its list
/// file): `info/PKG.md5sums` (paths without the leading slash), else the
/// package's `Conffiles` in the status file. `None`: nothing recorded.
pub fn recorded_md5(info: &Path, status: &Path, pkg: &str, path: &str) -> Option<String> {
    let rel = path.trim_start_matches('/');
    if let Ok(text) = std::fs::read_to_string(info.join(format!("{pkg}.md5sums"))) {
        for line in text.lines() {
            if let Some((sum, p)) = line.split_once("  ") {
                if p == rel {
                    return Some(sum.to_string());
                }
            }
        }
    }
    let text = std::fs::read_to_string(status).ok()?;
    let stanzas = parse(&text, &status.display().to_string()).ok()?;
    let name = base_name(pkg);
    stanzas
        .into_iter()
        .filter(|s| s.package == name)
        .flat_map(|s| s.conffiles)
        .find(|(p, _)| p == path)
        .map(|(_, sum)| sum)
}

/// The md5 of a file, hex; `None` if it cannot be read.
pub fn md5_file(path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The verdict of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The file's md5 is the one dpkg recorded.
    Match,
    Mismatch,
    /// Owned by a package that recorded no checksum for it (directories,
    /// symlinks, packages without md5sums).
    NoChecksum,
    /// No package's file list names it.
    NotPackaged,
    /// Listed, but not there (or unreadable).
    Missing,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::NoChecksum => "no_checksum",
            Verdict::NotPackaged => "not_packaged",
            Verdict::Missing => "missing",
        }
    }
}

/// Checks the file at `path` against its package's recorded checksum;
/// `owner`: the package and the path as its list names it.
pub fn verify(info: &Path, status: &Path, owner: Option<(&str, &str)>, path: &str) -> Verdict {
    let Some((pkg, listed)) = owner else {
        return Verdict::NotPackaged;
    };
    let Some(want) = recorded_md5(info, status, pkg, listed) else {
        return Verdict::NoChecksum;
    };
    match md5_file(Path::new(path)) {
        Ok(have) if have.eq_ignore_ascii_case(&want) => Verdict::Match,
        Ok(_) => Verdict::Mismatch,
        Err(_) => Verdict::Missing,
    }
}

/// The package dpkg is unpacking right now: `tmp.ci/control` next to the
/// status file (dpkg extracts the control archive there first and removes it
/// when done with the package). Name, version, architecture.
pub fn unpacking(status: &Path) -> Option<(String, Option<String>, Option<String>)> {
    let control = status.with_file_name("tmp.ci").join("control");
    let text = std::fs::read_to_string(control).ok()?;
    let mut name = None;
    let (mut version, mut arch) = (None, None);
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim().to_string();
            match k {
                "Package" => name = Some(v),
                "Version" => version = Some(v),
                "Architecture" => arch = Some(v),
                _ => {}
            }
        }
    }
    Some((name?, version, arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: bash
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b7
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Continued: not a field

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9
Conffiles:
 /etc/ld.so.conf.d/i386-linux-gnu.conf 3ad1c2e1a1d3e6c2b6b4f9c7f0f5e1a2
 /etc/old.conf 0123 obsolete

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9

Package: gone
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: half
Status: install reinstreq half-configured
Architecture: all
Version: 2:1.0~rc1
";

    #[test]
    fn parses_stanzas_multiarch_conffiles_and_states() {
        let s = parse(STATUS, "status").unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].package, "bash");
        assert_eq!(s[0].version.as_deref(), Some("5.2.15-2+b7"));
        assert_eq!(s[0].architecture.as_deref(), Some("amd64"));
        assert_eq!(s[0].state, "installed");
        assert_eq!(
            s[1].conffiles,
            [
                (
                    "/etc/ld.so.conf.d/i386-linux-gnu.conf".to_string(),
                    "3ad1c2e1a1d3e6c2b6b4f9c7f0f5e1a2".to_string()
                ),
                ("/etc/old.conf".to_string(), "0123".to_string())
            ]
        );
        assert_eq!(s[3].state, "config-files");
        assert!(!present(&s[3].state));
        assert_eq!(s[4].state, "half-configured");
        assert!(present(&s[4].state));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("Package: a\nVersion 1\n", "st").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("st", 2), "{e}");
        let e = parse("Package: a\nVersion: 1\n\nPackage: b\n", "st").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(e.message.contains("\"a\" has no Status"), "{e}");
        let e = parse("Version: 1\nStatus: install ok installed\n", "st").unwrap_err();
        assert!(e.message.contains("without a Package"), "{e}");
        let e = parse("Package: a\nStatus: installed\n", "st").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn inventory_keys_by_name_and_arch_and_applies_the_updates_journal() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, STATUS).unwrap();
        let inv = read_inventory(&status).unwrap();
        let keys: Vec<String> = inv
            .keys()
            .map(|k| format!("{}:{}", k.name, k.arch))
            .collect();
        assert_eq!(
            keys,
            ["bash:amd64", "half:all", "libc6:amd64", "libc6:i386"]
        );
        // dpkg's journal: bash removed, a new package unpacked, applied in order.
        std::fs::create_dir(dir.path().join("updates")).unwrap();
        std::fs::write(
            dir.path().join("updates/0001"),
            "Package: bash\nStatus: purge ok not-installed\nArchitecture: amd64\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("updates/0000"),
            "Package: new\nStatus: install ok unpacked\nArchitecture: all\nVersion: 3\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("updates/tmp.i"), "garbage without colon").unwrap();
        let inv = read_inventory(&status).unwrap();
        let keys: Vec<String> = inv.keys().map(|k| k.name.clone()).collect();
        assert_eq!(keys, ["half", "libc6", "libc6", "new"]);
        let new = &inv[&Key {
            name: "new".into(),
            arch: "all".into(),
        }];
        assert_eq!(
            (new.version.as_str(), new.status.as_str()),
            ("3", "unpacked")
        );
    }

    #[test]
    fn this_machines_status_file_parses() {
        let p = Path::new(DEFAULT_STATUS);
        if p.exists() {
            let inv = read_inventory(p).unwrap();
            assert!(inv.keys().any(|k| k.name == "dpkg"));
        }
    }

    #[test]
    fn versions_order_as_dpkg_does() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0+b1", Less),
            ("1.0-1", "1.0-2", Less),
            ("1.0-10", "1.0-9", Greater),
            ("1:0.1", "2.0", Greater),
            ("0:2.0", "2.0", Equal),
            ("1.0a", "1.0+", Less),
            ("2.36-9", "2.36-9+deb12u4", Less),
            ("1.001", "1.1", Equal),
            ("5.2.15-2+b7", "5.2.15-2+b10", Less),
            ("1.0-1", "1.0", Greater),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn scope_holds_roots_and_what_is_under_them() {
        let s = Scope::new(&["/opt".into(), "/etc/ssh/".into()]);
        for (p, want) in [
            ("/opt", true),
            ("/opt/x/y", true),
            ("/optional", false),
            ("/etc/ssh", true),
            ("/etc/ssh/sshd_config", true),
            ("/etc/sshd", false),
            ("/etc", false),
            ("/.", false),
        ] {
            assert_eq!(s.holds(p), want, "{p}");
        }
        assert!(Scope::new(&["/".into()]).holds("/usr/bin/ls"));
        assert!(Scope::new(&[]).holds("anything"));
    }

    #[test]
    fn owners_follow_list_changes_within_scope() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("info");
        std::fs::create_dir(&info).unwrap();
        std::fs::write(info.join("a.list"), "/.\n/opt\n/opt/x\n/usr/share/doc/a\n").unwrap();
        let mut o = Owners::new(info.clone(), vec!["/opt".into()]);
        assert_eq!(o.owner("/opt/x").as_deref(), Some("a"));
        assert_eq!(o.owner("/usr/share/doc/a"), None, "out of scope");
        // dpkg replaces lists by renaming; the directory's mtime changes.
        std::thread::sleep(CHECK_EVERY + std::time::Duration::from_millis(20));
        std::fs::write(info.join("b:amd64.list-new"), "/opt/y\n").unwrap();
        std::fs::rename(info.join("b:amd64.list-new"), info.join("b:amd64.list")).unwrap();
        std::fs::remove_file(info.join("a.list")).unwrap();
        assert_eq!(o.owner("/opt/y").as_deref(), Some("b:amd64"));
        assert_eq!(base_name("b:amd64"), "b");
        // dpkg -r rewrites the list with the leftovers first: /opt/y is no
        // longer listed, yet still names b for a while.
        std::thread::sleep(std::time::Duration::from_millis(120));
        std::fs::write(info.join("b:amd64.list-new"), "/opt\n").unwrap();
        std::fs::rename(info.join("b:amd64.list-new"), info.join("b:amd64.list")).unwrap();
        assert_eq!(o.owner("/opt/y").as_deref(), Some("b:amd64"));
        assert!(!o.owner.contains_key("/opt/y"));
        // A removed package's paths still name it for a while: dpkg deletes
        // the list right after the files, before their events are labelled.
        assert_eq!(o.owner("/opt/x").as_deref(), Some("a"));
        assert!(!o.owner.contains_key("/opt/x"), "a's list is gone");
    }

    #[test]
    fn merged_usr_aliases_name_the_listed_path() {
        let alias = |p: &str| {
            let mut out = String::new();
            alias_into(USRMERGE, p, &mut out).then_some(out)
        };
        assert_eq!(alias("/bin/ls").as_deref(), Some("/usr/bin/ls"));
        assert_eq!(alias("/usr/sbin/x").as_deref(), Some("/sbin/x"));
        assert_eq!(alias("/usr/share/x"), None);
        assert_eq!(alias("/binary"), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("coreutils.list"), "/bin\n/bin/ls\n").unwrap();
        let mut o = Owners::new(dir.path().into(), vec!["/usr/bin".into()]);
        o.merged = USRMERGE.to_vec();
        assert_eq!(
            o.listed("/usr/bin/ls"),
            Some(("coreutils".into(), "/bin/ls".into()))
        );
        assert_eq!(o.listed("/bin/ls"), None, "out of scope");
    }

    #[test]
    fn verify_compares_with_md5sums_and_conffiles() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("info");
        std::fs::create_dir(&info).unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello\n").unwrap();
        let c = dir.path().join("c");
        std::fs::write(&c, "conf\n").unwrap();
        let rel = f.to_str().unwrap().trim_start_matches('/');
        // md5("hello\n")
        std::fs::write(
            info.join("p.md5sums"),
            format!("b1946ac92492d2347c6235b4d2611184  {rel}\n"),
        )
        .unwrap();
        let status = dir.path().join("status");
        std::fs::write(
            &status,
            format!(
                "Package: p\nStatus: install ok installed\nVersion: 1\nConffiles:\n {} 0000\n",
                c.display()
            ),
        )
        .unwrap();
        let v = |owner: Option<&str>, p: &Path| {
            let p = p.to_str().unwrap();
            verify(&info, &status, owner.map(|o| (o, p)), p)
        };
        assert_eq!(v(Some("p"), &f), Verdict::Match);
        assert_eq!(v(Some("p"), &c), Verdict::Mismatch);
        assert_eq!(v(None, &f), Verdict::NotPackaged);
        assert_eq!(v(Some("q"), &dir.path().join("zz")), Verdict::NoChecksum);
        std::fs::write(&f, "hello!\n").unwrap();
        assert_eq!(v(Some("p"), &f), Verdict::Mismatch);
        std::fs::remove_file(&f).unwrap();
        assert_eq!(v(Some("p"), &f), Verdict::Missing);
    }
}
