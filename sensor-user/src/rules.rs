//! Rules: severity, alerts, MITRE ATT&CK techniques, PCI DSS requirements and
//! tags for changes.
//!
//! A rule file is TOML: a list of `[[rule]]` tables, each with a `[rule.match]`
//! table of conditions. Every condition present must hold (AND); each condition
//! is a list whose entries are alternatives (OR). All matching rules apply to an
//! event: the highest severity wins, `alert` is set if any rule sets it, and the
//! rule ids, MITRE, PCI and tag lists are the union in rule order. Rules never
//! drop or hide an event; they only qualify it. The format is documented in
//! docs/rules.md.
//!
//! Unknown keys, bad globs, bad severities and malformed MITRE or PCI ids are
//! errors that name the file, line and column (and the rule id).
//!
//! Evaluation runs once per event, so everything is compiled up front: the path
//! globs of all rules form one [`GlobSet`] matched once per path, actions,
//! kinds, file types and changed fields are bit masks, and the other glob
//! conditions are one [`GlobSet`] each. Evaluating allocates only to record the
//! matches on the event.
use crate::config::{line_col, ConfigError};
use crate::event::{Event, FileChange, Severity};
use fixedbitset::FixedBitSet;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use path_index::PathIndex;
use serde::Deserialize;
use std::cell::RefCell;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use toml::Spanned;

mod path_index;

/// The rule set Vigil ships with (`rules/default.toml`), applied before any
/// local rule file.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// How the built-in rules are named in errors.
const BUILTIN_ORIGIN: &str = "<builtin rules>";

/// Event actions a rule may name (file actions, then sensor actions).
const ACTIONS: &[&str] = &[
    "created",
    "modified",
    "truncated",
    "closed_after_write",
    "deleted",
    "renamed",
    "exchanged",
    "linked",
    "symlinked",
    "permissions_changed",
    "owner_changed",
    "timestamps_changed",
    "xattr_changed",
    "xattr_removed",
    "attributes_changed",
    "mapped_writable",
    "start",
    "stop",
    "gap",
    "error",
    "health",
    "downtime",
    "scan_started",
    "scan_finished",
    "scan_failed",
    "baseline_tampered",
    "package_installed",
    "package_removed",
    "package_upgraded",
    "package_downgraded",
    "package_changed",
    "inventory_recorded",
    "daemon_watch_unavailable",
    "daemon_watch_started",
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
    "service_installed",
    "service_removed",
    "service_start_type_changed",
    "service_config_changed",
];

/// Event kinds.
const KINDS: &[&str] = &["file", "package", "service", "sensor"];

/// Verdicts on append-only files (`details.append_only`).
const APPEND_ONLY: &[&str] = &[
    "appended",
    "truncated",
    "rewritten",
    "replaced",
    "unverified",
];

/// Verdicts of the packaged-file check (`details.package_checksum`).
const PACKAGE_CHECKSUM: &[&str] = &[
    "match",
    "mismatch",
    "no_checksum",
    "not_packaged",
    "missing",
];

/// Names that can appear in `fields_changed` (the `FileState` fields).
const FIELDS: &[&str] = &[
    "type",
    "size",
    "mode",
    "uid",
    "gid",
    "mtime",
    "ctime",
    "inode",
    "nlink",
    "link_target",
    "xattrs",
    "hashes",
    "hash_note",
];

/// File types (`file.type`, `after.type`).
const FILE_TYPES: &[&str] = &[
    "file", "dir", "symlink", "fifo", "socket", "char", "block", "unknown",
];

// ---------------------------------------------------------------------------
// The file format, as parsed.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    severity: Option<Spanned<String>>,
    #[serde(default)]
    alert: bool,
    #[serde(default)]
    mitre: Vec<Spanned<String>>,
    #[serde(default)]
    pci: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    /// Caps the severity of the events it matches and clears their alert
    /// (a suppression rule, e.g. for changes made by package operations).
    #[serde(default)]
    max_severity: Option<Spanned<String>>,
    #[serde(rename = "match")]
    when: RawMatch,
}

type List = Vec<Spanned<String>>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    kind: List,
    #[serde(default)]
    action: List,
    #[serde(default)]
    path: List,
    #[serde(default)]
    not_path: List,
    #[serde(default)]
    file_type: List,
    #[serde(default)]
    fields_changed: List,
    #[serde(default)]
    mode_bits: List,
    #[serde(default)]
    append_only: List,
    #[serde(default)]
    xattr: List,
    #[serde(default)]
    exe: List,
    #[serde(default)]
    not_exe: List,
    #[serde(default)]
    comm: List,
    #[serde(default)]
    user: List,
    #[serde(default)]
    login_user: List,
    #[serde(default)]
    parent_exe: List,
    #[serde(default)]
    parent_comm: List,
    /// Package names (globs): the package of a `package` event, or the
    /// owning package of a file event (`package.name`).
    #[serde(default)]
    package: List,
    /// Whether a package operation made the change (`package.managed`).
    #[serde(default)]
    package_managed: Option<bool>,
    /// `details.package_checksum` verdicts.
    #[serde(default)]
    package_checksum: List,
    /// systemd unit names (globs) of `service` events (`service.unit`).
    #[serde(default)]
    unit: List,
}

// ---------------------------------------------------------------------------
// Compiled rules.

/// One compiled rule. Masks are 0 when the condition is absent.
#[derive(Debug, Clone)]
struct Rule {
    id: String,
    description: String,
    severity: Severity,
    alert: bool,
    mitre: Vec<String>,
    pci: Vec<String>,
    tags: Vec<String>,
    /// Where the rule's id is written, for duplicate-id errors.
    origin: String,
    line: usize,
    column: usize,
    /// See [`RawRule::max_severity`].
    max_severity: Option<Severity>,
    kinds: u32,
    actions: u64,
    file_types: u32,
    fields: u32,
    mode_bits: u32,
    append_only: u32,
    /// Kept to rebuild the set-wide path index when rule sets are merged.
    path: Vec<Glob>,
    not_path: Vec<Glob>,
    xattr: Option<GlobSet>,
    exe: Option<GlobSet>,
    not_exe: Option<GlobSet>,
    comm: Option<GlobSet>,
    user: Option<GlobSet>,
    login_user: Option<GlobSet>,
    parent_exe: Option<GlobSet>,
    parent_comm: Option<GlobSet>,
    package: Option<GlobSet>,
    package_managed: Option<bool>,
    package_checksum: u32,
    unit: Option<GlobSet>,
}

impl Rule {
    fn has_path_condition(&self) -> bool {
        !self.path.is_empty() || !self.not_path.is_empty()
    }
}

/// Which rule a glob of the set-wide path index belongs to.
#[derive(Debug, Clone, Copy)]
struct PathGlob {
    rule: u32,
    negated: bool,
}

/// A compiled set of rules, evaluated in order against every event.
///
/// Build it with [`RuleSet::builtin`], [`RuleSet::parse`] or [`RuleSet::load`];
/// the [`Default`] set is empty and leaves every event at `info`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Which compiled rules these are: keys the per-thread cache of path
    /// matches (a new one each time the rules change).
    generation: u64,
    /// The `path` and `not_path` globs of every rule, matched once per path.
    paths: PathIndex,
    /// For each glob in `paths`, its rule and whether it is a `not_path`.
    path_owner: Vec<PathGlob>,
    /// Rules with `not_path` globs and no `path` glob: the only ones a path
    /// that no glob names can satisfy (the usual case, so kept apart).
    not_path_only: FixedBitSet,
    /// Rules without a path condition.
    path_free: FixedBitSet,
    /// Rules without an `action` condition.
    any_action: FixedBitSet,
    /// For each bit of [`ACTIONS`], the rules whose `action` names it. With
    /// the sets above, an event is tried against the few rules that can
    /// match it, not every rule.
    by_action: Vec<FixedBitSet>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: Vec::new(),
            generation: 0,
            paths: PathIndex::empty(),
            path_owner: Vec::new(),
            not_path_only: FixedBitSet::new(),
            path_free: FixedBitSet::new(),
            any_action: FixedBitSet::new(),
            by_action: Vec::new(),
        }
    }
}

/// Per-thread scratch space for [`RuleSet::evaluate`], so that evaluation does
/// not allocate once warmed up.
#[derive(Default)]
struct Scratch {
    hits: Vec<usize>,
    /// Per rule, for the path being matched: bit 0 a `path` glob matched, bit 1
    /// a `not_path` glob matched.
    per_path: Vec<u8>,
    /// The rules the event's paths satisfy: path conditions hold for at
    /// least one of them, or there are none.
    path_ok: FixedBitSet,
    /// The rules the event's actions satisfy.
    action_ok: FixedBitSet,
    /// The last two events' paths and their `path_ok`, newest first: a
    /// burst of changes names the same files again and again, and matching
    /// a path against the globs is most of an evaluation.
    recent: [Option<RecentPaths>; 2],
}

struct RecentPaths {
    generation: u64,
    path: Arc<str>,
    target: Option<Arc<str>>,
    path_ok: FixedBitSet,
}

impl RecentPaths {
    fn is(&self, generation: u64, path: &Arc<str>, target: Option<&Arc<str>>) -> bool {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
        self.generation == generation
            && same(&self.path, path)
            && match (&self.target, target) {
                (None, None) => true,
                (Some(a), Some(b)) => same(a, b),
                _ => false,
            }
    }
}

/// Numbers each compiled rule set ([`RuleSet::generation`]).
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl RuleSet {
    /// The built-in rule set ([`DEFAULT_RULES`]).
    pub fn builtin() -> RuleSet {
        RuleSet::parse(DEFAULT_RULES, BUILTIN_ORIGIN).expect("the built-in rules are valid")
    }

    /// Parses and compiles rule-file text; `origin` names it in errors, which
    /// carry the line and column of the offending key or value.
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet, ConfigError> {
        let mut set = RuleSet::default();
        set.extend(parse_rules(text, origin)?)?;
        Ok(set)
    }

    /// The built-in rules followed by the rules of each file in `extra`, in
    /// order. A rule id defined twice (in one file or across files, including
    /// the built-in set) is an error naming both places.
    pub fn load(extra: &[PathBuf]) -> anyhow::Result<RuleSet> {
        let mut set = RuleSet::builtin();
        for path in extra {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read rule file {}: {e}", path.display()))?;
            let rules = parse_rules(&text, &path.display().to_string())?;
            set.extend(rules)?;
        }
        Ok(set)
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule ids, in evaluation order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// The description of the rule `id`, if the set has it.
    pub fn description(&self, id: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.description.as_str())
    }

    /// Appends rules, refusing duplicate ids, and rebuilds the path index.
    fn extend(&mut self, rules: Vec<Rule>) -> Result<(), ConfigError> {
        for (i, r) in rules.iter().enumerate() {
            if let Some(first) = self.rules.iter().chain(&rules[..i]).find(|p| p.id == r.id) {
                return Err(ConfigError {
                    origin: r.origin.clone(),
                    line: r.line,
                    column: r.column,
                    message: format!(
                        "duplicate rule id {:?} (first defined at {}:{}:{})",
                        r.id, first.origin, first.line, first.column
                    ),
                });
            }
        }
        self.rules.extend(rules);
        let mut all = Vec::new();
        let mut owner = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            for (globs, negated) in [(&r.path, false), (&r.not_path, true)] {
                for g in globs {
                    all.push(g.clone());
                    owner.push(PathGlob {
                        rule: i as u32,
                        negated,
                    });
                }
            }
        }
        self.paths = PathIndex::build(&all).map_err(|e| {
            let last = self.rules.last();
            ConfigError {
                origin: last.map_or_else(String::new, |r| r.origin.clone()),
                line: last.map_or(1, |r| r.line),
                column: last.map_or(1, |r| r.column),
                message: format!("cannot compile the path globs: {e}"),
            }
        })?;
        self.path_owner = owner;
        self.generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rules_where = |pick: &dyn Fn(&Rule) -> bool| {
            let mut set = FixedBitSet::with_capacity(self.rules.len());
            set.extend((self.rules.iter().enumerate()).filter_map(|(i, r)| pick(r).then_some(i)));
            set
        };
        self.not_path_only = rules_where(&|r| r.path.is_empty() && !r.not_path.is_empty());
        self.path_free = rules_where(&|r| !r.has_path_condition());
        self.any_action = rules_where(&|r| r.actions == 0);
        self.by_action = (0..ACTIONS.len())
            .map(|b| rules_where(&|r| r.actions & (1 << b) != 0))
            .collect();
        Ok(())
    }

    /// Sets `severity`, `alert`, `rules`, `mitre`, `pci` and `tags` on `ev`
    /// from the rules that match it, replacing what was there: severity is the
    /// highest of the matching rules (`info` when none match), `alert` is set
    /// when any matching rule sets it, and the lists are the union of the
    /// matching rules' lists in rule order, without duplicates. The event is
    /// never dropped or otherwise changed.
    pub fn evaluate(&self, ev: &mut Event) {
        ev.severity = Severity::Info;
        ev.alert = false;
        ev.rules.clear();
        ev.mitre.clear();
        ev.pci.clear();
        ev.tags.clear();
        self.evaluate_rules(ev);
        // A change a scan found that the realtime sensor never reported is
        // high severity whatever the rules say: the sensor was blind or
        // something bypassed it (docs/baseline.md).
        // Growth of an append-only file is not a finding to escalate.
        let unattributed = ev.file().is_some_and(|f| {
            f.details.get("unattributed").and_then(|v| v.as_bool()) == Some(true)
                && f.details.get("append_only").and_then(|v| v.as_str()) != Some("appended")
        });
        if unattributed {
            ev.severity = ev.severity.max(Severity::High);
            union(&mut ev.tags, &["unattributed".to_string()]);
        }
    }

    fn evaluate_rules(&self, ev: &mut Event) {
        if self.rules.is_empty() {
            return;
        }
        let facts = Facts::of(ev);
        let mut cap: Option<Severity> = None;
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            self.match_paths(ev, &mut scratch);
            let Scratch {
                path_ok, action_ok, ..
            } = &mut *scratch;
            action_ok.clone_from(&self.any_action);
            let mut actions = facts.action;
            while actions != 0 {
                action_ok.union_with(&self.by_action[actions.trailing_zeros() as usize]);
                actions &= actions - 1;
            }
            path_ok.intersect_with(action_ok);
            // Most rules name paths or actions this event is not on: only the
            // others are tried, in rule order.
            for i in path_ok.ones() {
                let rule = &self.rules[i];
                if !facts.masks_match(rule) || !facts.other_conditions_match(rule, ev) {
                    continue;
                }
                if !process_matches(rule, ev) {
                    continue;
                }
                ev.severity = ev.severity.max(rule.severity);
                ev.alert |= rule.alert;
                ev.rules.push(rule.id.clone());
                union(&mut ev.mitre, &rule.mitre);
                union(&mut ev.pci, &rule.pci);
                union(&mut ev.tags, &rule.tags);
                if let Some(m) = rule.max_severity {
                    cap = Some(cap.map_or(m, |c| c.min(m)));
                }
            }
        });
        if let Some(c) = cap {
            ev.severity = ev.severity.min(c);
            ev.alert = false;
        }
    }

    /// Fills `scratch.path_ok`: the rules without a path condition, and
    /// those with one that one of the event's paths (path or target_path)
    /// satisfies: it matches one of the rule's `path` globs (or it has none)
    /// and none of its `not_path` globs.
    fn match_paths(&self, ev: &Event, scratch: &mut Scratch) {
        let Scratch {
            hits,
            per_path,
            path_ok,
            recent,
            ..
        } = scratch;
        path_ok.clone_from(&self.path_free);
        let Some(fc) = ev.file() else { return };
        if self.path_owner.is_empty() {
            return;
        }
        let target = fc.target_path.as_ref();
        if let Some(i) = (0..recent.len()).find(|&i| {
            recent[i]
                .as_ref()
                .is_some_and(|r| r.is(self.generation, &fc.path, target))
        }) {
            recent[..=i].rotate_right(1);
            path_ok.clone_from(&recent[0].as_ref().expect("found").path_ok);
            return;
        }
        for p in std::iter::once(&*fc.path).chain(fc.target_path.as_deref()) {
            self.paths.matches_into(p, hits);
            if hits.is_empty() {
                // The usual case: no glob names this path. Of the rules with
                // a path condition, only those without `path` globs hold.
                path_ok.union_with(&self.not_path_only);
                continue;
            }
            per_path.clear();
            per_path.resize(self.rules.len(), 0);
            for &h in hits.iter() {
                let o = self.path_owner[h];
                per_path[o.rule as usize] |= if o.negated { 2 } else { 1 };
            }
            for (i, r) in self.rules.iter().enumerate() {
                let m = per_path[i];
                if (r.path.is_empty() || m & 1 != 0) && m & 2 == 0 {
                    path_ok.insert(i);
                }
            }
        }
        // The oldest entry makes way, its bit set reused.
        recent.rotate_right(1);
        let entry = recent[0].get_or_insert_with(|| RecentPaths {
            generation: 0,
            path: fc.path.clone(),
            target: None,
            path_ok: FixedBitSet::new(),
        });
        entry.generation = self.generation;
        entry.path = fc.path.clone();
        entry.target = target.cloned();
        entry.path_ok.clone_from(path_ok);
    }
}

fn union(into: &mut Vec<String>, from: &[String]) {
    for s in from {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
}

/// What the mask conditions look at, computed once per event.
struct Facts {
    kind: u32,
    action: u64,
    file_type: u32,
    fields: u32,
    mode: u32,
    append_only: u32,
    package_checksum: u32,
}

impl Facts {
    fn of(ev: &Event) -> Facts {
        let mut f = Facts {
            kind: bit(KINDS, ev.kind) as u32,
            action: bit(ACTIONS, ev.action),
            file_type: 0,
            fields: 0,
            mode: 0,
            append_only: 0,
            package_checksum: 0,
        };
        if let Some(fc) = ev.file() {
            let ty = match &fc.after {
                Some(a) if !a.file_type.is_empty() => a.file_type,
                _ => fc.file.file_type,
            };
            f.file_type = bit(FILE_TYPES, ty) as u32;
            // A coalesced event stands for every raw change folded into it:
            // `action` conditions see those too (a truncating open inside a
            // write session, a utimensat before the close...).
            for r in &fc.related {
                f.action |= bit(ACTIONS, r.action);
            }
            if fc.details.get("truncated") == Some(&serde_json::Value::Bool(true)) {
                f.action |= bit(ACTIONS, "truncated");
            }
            f.fields = fc
                .fields_changed
                .iter()
                .fold(0, |m, name| m | bit(FIELDS, name) as u32);
            f.mode = event_mode(fc);
            if let Some(v) = fc.details.get("append_only").and_then(|v| v.as_str()) {
                f.append_only = bit(APPEND_ONLY, v) as u32;
            }
            if let Some(v) = fc.details.get("package_checksum").and_then(|v| v.as_str()) {
                f.package_checksum = bit(PACKAGE_CHECKSUM, v) as u32;
            }
        }
        f
    }

    /// The bit-mask conditions, the cheapest; inlined into the rule loop.
    #[inline(always)]
    fn masks_match(&self, r: &Rule) -> bool {
        let any = |want: u32, have: u32| want == 0 || want & have != 0;
        any(r.kinds, self.kind)
            && (r.actions == 0 || r.actions & self.action != 0)
            && any(r.file_types, self.file_type)
            && any(r.fields, self.fields)
            && any(r.mode_bits, self.mode)
            && any(r.append_only, self.append_only)
            && any(r.package_checksum, self.package_checksum)
    }

    /// The other path-free and process-free conditions (package, unit,
    /// xattr), for rules whose masks match.
    fn other_conditions_match(&self, r: &Rule, ev: &Event) -> bool {
        let package = match ev.package() {
            Some(p) => Some((Some(p.package.name.as_str()), false)),
            None => ev
                .file()
                .and_then(|f| f.package.as_ref())
                .map(|p| (p.name.as_deref(), p.managed)),
        };
        if let Some(want) = r.package_managed {
            if package.is_some_and(|(_, m)| m) != want {
                return false;
            }
        }
        if let Some(set) = &r.package {
            if !package
                .and_then(|(n, _)| n)
                .is_some_and(|n| set.is_match(n))
            {
                return false;
            }
        }
        if let Some(set) = &r.unit {
            if !ev.service().is_some_and(|s| set.is_match(&s.service.unit)) {
                return false;
            }
        }
        match &r.xattr {
            None => true,
            Some(set) => ev.file().is_some_and(|fc| xattr_matches(set, fc)),
        }
    }
}

fn bit(list: &[&str], name: &str) -> u64 {
    list.iter().position(|n| *n == name).map_or(0, |i| 1 << i)
}

/// The permission bits of the after state and of a chmod's requested mode,
/// or-ed together.
fn event_mode(fc: &FileChange) -> u32 {
    let after = fc
        .after
        .as_ref()
        .and_then(|a| u32::from_str_radix(&a.mode, 8).ok())
        .unwrap_or(0);
    let requested = match fc.details.get("mode") {
        Some(serde_json::Value::String(s)) => u32::from_str_radix(s, 8).unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0) as u32,
        _ => 0,
    };
    (after | requested) & 0o7777
}

/// An attribute named by `set` is present after the change, was removed or
/// changed value, or is named by the syscall details (`details.name`).
fn xattr_matches(set: &GlobSet, fc: &FileChange) -> bool {
    let after = fc.after.as_ref().map(|a| &a.xattrs);
    if after.is_some_and(|x| x.keys().any(|k| set.is_match(k))) {
        return true;
    }
    if let Some(before) = &fc.before {
        for (k, v) in &before.xattrs {
            if after.and_then(|x| x.get(k)) != Some(v) && set.is_match(k) {
                return true;
            }
        }
    }
    matches!(fc.details.get("name"), Some(serde_json::Value::String(n)) if set.is_match(n))
}

/// The process conditions. A positive condition on an unknown value (no exe,
/// no user name, no parent) fails; a negative one (`not_exe`) holds.
fn process_matches(r: &Rule, ev: &Event) -> bool {
    let proc_ = ev.process();
    let want = |set: &Option<GlobSet>, value: Option<&str>| match set {
        None => true,
        Some(s) => value.is_some_and(|v| s.is_match(v)),
    };
    let exe = proc_.and_then(|p| p.exe.as_deref());
    let parent = proc_.and_then(|p| p.parent.as_ref());
    want(&r.exe, exe)
        && r.not_exe
            .as_ref()
            .is_none_or(|s| !exe.is_some_and(|v| s.is_match(v)))
        && want(&r.comm, proc_.map(|p| p.comm.as_str()))
        && want(&r.user, proc_.and_then(|p| p.user.as_deref()))
        && want(&r.login_user, proc_.and_then(|p| p.login_user.as_deref()))
        && want(&r.parent_exe, parent.and_then(|p| p.exe.as_deref()))
        && want(&r.parent_comm, parent.map(|p| p.comm.as_str()))
}

// ---------------------------------------------------------------------------
// Parsing and validation.

/// Error construction for one rule file.
struct Src<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Src<'_> {
    fn err(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        let (line, column) = line_col(self.text, span.map_or(0, |s| s.start));
        ConfigError {
            origin: self.origin.to_string(),
            line,
            column,
            message,
        }
    }
}

/// How a glob condition is checked before compiling.
#[derive(Clone, Copy, PartialEq)]
enum GlobKind {
    /// Matched against absolute paths: must not be relative or start with `~`.
    Path,
    Name,
}

fn parse_rules(text: &str, origin: &str) -> Result<Vec<Rule>, ConfigError> {
    let src = Src { text, origin };
    let raw: RawFile =
        toml::from_str(text).map_err(|e| src.err(e.span(), e.message().to_string()))?;
    let mut out = Vec::with_capacity(raw.rule.len());
    for r in raw.rule {
        out.push(compile_rule(&src, r)?);
    }
    Ok(out)
}

fn compile_rule(src: &Src, r: RawRule) -> Result<Rule, ConfigError> {
    let id = r.id.get_ref().clone();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(src.err(
            Some(r.id.span()),
            format!("invalid rule id {id:?}: use letters, digits, '-', '_', '.' or ':'"),
        ));
    }
    let bad =
        |s: &Spanned<String>, what: String| src.err(Some(s.span()), format!("rule {id:?}: {what}"));
    let parse_severity = |s: &Spanned<String>| match s.get_ref().as_str() {
        "info" => Ok(Severity::Info),
        "low" => Ok(Severity::Low),
        "medium" => Ok(Severity::Medium),
        "high" => Ok(Severity::High),
        "critical" => Ok(Severity::Critical),
        other => Err(bad(
            s,
            format!("unknown severity {other:?} (use info, low, medium, high or critical)"),
        )),
    };
    let severity = match &r.severity {
        None => Severity::Info,
        Some(s) => parse_severity(s)?,
    };
    let max_severity = r.max_severity.as_ref().map(parse_severity).transpose()?;
    let mut mitre = Vec::new();
    for m in &r.mitre {
        if !valid_technique(m.get_ref()) {
            return Err(bad(
                m,
                format!(
                    "invalid MITRE ATT&CK technique id {:?} (expected T1234 or T1234.001)",
                    m.get_ref()
                ),
            ));
        }
        push_unique(&mut mitre, m.get_ref());
    }
    let mut pci = Vec::new();
    for p in &r.pci {
        if !valid_pci(p.get_ref()) {
            return Err(bad(
                p,
                format!(
                    "invalid PCI DSS requirement {:?} (expected numbers and dots, e.g. 11.5.2)",
                    p.get_ref()
                ),
            ));
        }
        push_unique(&mut pci, p.get_ref());
    }
    let mut tags = Vec::new();
    for t in &r.tags {
        if t.get_ref().trim().is_empty() {
            return Err(bad(t, "empty tag".to_string()));
        }
        push_unique(&mut tags, t.get_ref());
    }

    let m = &r.when;
    let mask = |list: &List, names: &[&str], key: &str| -> Result<u64, ConfigError> {
        let mut mask = 0;
        for s in list {
            match names.iter().position(|n| n == s.get_ref()) {
                Some(i) => mask |= 1 << i,
                None => {
                    return Err(bad(
                        s,
                        format!(
                            "unknown {key} {:?} (one of: {})",
                            s.get_ref(),
                            names.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(mask)
    };
    let globs = |list: &List, kind: GlobKind, key: &str| -> Result<Vec<Glob>, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for s in list {
            let g = s.get_ref();
            if kind == GlobKind::Path
                && g.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '~')
            {
                return Err(bad(
                    s,
                    format!(
                        "{key} glob {g:?} must be absolute (start with / or **/); ~ is not expanded"
                    ),
                ));
            }
            let glob = GlobBuilder::new(g)
                .literal_separator(kind == GlobKind::Path)
                .build()
                .map_err(|e| bad(s, format!("invalid {key} glob {g:?}: {}", e.kind())))?;
            out.push(glob);
        }
        Ok(out)
    };
    let set = |list: &List, kind: GlobKind, key: &str| -> Result<Option<GlobSet>, ConfigError> {
        if list.is_empty() {
            return Ok(None);
        }
        let mut b = GlobSetBuilder::new();
        for g in globs(list, kind, key)? {
            b.add(g);
        }
        b.build()
            .map(Some)
            .map_err(|e| bad(&list[0], format!("cannot compile {key} globs: {e}")))
    };
    let mut mode_bits = 0;
    for s in &m.mode_bits {
        let v = s.get_ref();
        match u32::from_str_radix(v, 8) {
            Ok(bits) if !v.is_empty() && bits != 0 && bits <= 0o7777 => mode_bits |= bits,
            _ => {
                return Err(bad(
                    s,
                    format!(
                        "invalid mode_bits {v:?} (an octal mask from 1 to 7777, e.g. \"6000\")"
                    ),
                ))
            }
        }
    }
    let rule = Rule {
        description: r.description.clone(),
        severity,
        alert: r.alert,
        mitre,
        pci,
        tags,
        origin: src.origin.to_string(),
        line: 0,
        column: 0,
        max_severity,
        kinds: mask(&m.kind, KINDS, "kind")? as u32,
        actions: mask(&m.action, ACTIONS, "action")?,
        file_types: mask(&m.file_type, FILE_TYPES, "file_type")? as u32,
        fields: mask(&m.fields_changed, FIELDS, "fields_changed field")? as u32,
        mode_bits,
        append_only: mask(&m.append_only, APPEND_ONLY, "append_only verdict")? as u32,
        path: globs(&m.path, GlobKind::Path, "path")?,
        not_path: globs(&m.not_path, GlobKind::Path, "not_path")?,
        xattr: set(&m.xattr, GlobKind::Name, "xattr")?,
        exe: set(&m.exe, GlobKind::Path, "exe")?,
        not_exe: set(&m.not_exe, GlobKind::Path, "not_exe")?,
        comm: set(&m.comm, GlobKind::Name, "comm")?,
        user: set(&m.user, GlobKind::Name, "user")?,
        login_user: set(&m.login_user, GlobKind::Name, "login_user")?,
        parent_exe: set(&m.parent_exe, GlobKind::Path, "parent_exe")?,
        parent_comm: set(&m.parent_comm, GlobKind::Name, "parent_comm")?,
        package: set(&m.package, GlobKind::Name, "package")?,
        package_managed: m.package_managed,
        package_checksum: mask(
            &m.package_checksum,
            PACKAGE_CHECKSUM,
            "package_checksum verdict",
        )? as u32,
        unit: set(&m.unit, GlobKind::Name, "unit")?,
        id: id.clone(),
    };
    let (line, column) = line_col(src.text, r.id.span().start);
    let has_condition = rule.kinds != 0
        || rule.actions != 0
        || rule.file_types != 0
        || rule.fields != 0
        || rule.mode_bits != 0
        || rule.append_only != 0
        || rule.package_checksum != 0
        || rule.has_path_condition()
        || [
            &rule.xattr,
            &rule.exe,
            &rule.not_exe,
            &rule.comm,
            &rule.user,
            &rule.login_user,
            &rule.parent_exe,
            &rule.parent_comm,
            &rule.package,
            &rule.unit,
        ]
        .iter()
        .any(|s| s.is_some())
        || rule.package_managed.is_some();
    if !has_condition {
        return Err(src.err(
            Some(r.id.span()),
            format!("rule {id:?} has no conditions in its match table; it would match every event (use kind = [\"file\", \"sensor\"] if that is meant)"),
        ));
    }
    Ok(Rule {
        line,
        column,
        ..rule
    })
}

fn push_unique(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        list.push(s.to_string());
    }
}

/// `T` and four digits, optionally `.` and three digits.
fn valid_technique(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

/// Numbers separated by dots, e.g. `11.5.2` or `10`.
fn valid_pci(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, FileInfo, FileState, ParentProcess, Process, Source};

    fn boxed(s: FileState) -> Option<Box<FileState>> {
        Some(Box::new(s))
    }

    /// A file event as the pipeline produces it, by root running vim.
    fn ev(action: &'static str, path: &str) -> Event {
        let file = FileChange {
            path: path.into(),
            target_path: None,
            file: FileInfo {
                file_type: "file",
                ..Default::default()
            },
            before: None,
            after: None,
            fields_changed: Vec::new(),
            diff: None,
            watch: None,
            package: None,
            process: Process {
                pid: 100,
                exe: Some("/usr/bin/vim.basic".into()),
                comm: "vim".into(),
                user: Some("root".into()),
                login_user: Some("alice".into()),
                parent: Some(ParentProcess {
                    pid: 99,
                    exe: Some("/usr/bin/bash".into()),
                    comm: "bash".into(),
                    cmdline: None,
                }),
                ..Default::default()
            }
            .into(),
            source: Source {
                tier: "tracepoint",
                syscall: "openat",
                decided_by: "inode",
            },
            details: crate::event::Details::new(),
            related: Vec::new(),
        };
        Event {
            seq: 1,
            ..Event::new(
                "file",
                action,
                "2026-01-01T00:00:00.000000000Z",
                "h",
                Body::File(Box::new(file)),
            )
        }
    }

    fn sensor_ev(action: &'static str) -> Event {
        let mut e = ev(action, "/x");
        e.kind = "sensor";
        e.body = Body::Sensor(Box::default());
        e
    }

    fn fc(e: &mut Event) -> &mut FileChange {
        e.file_mut().unwrap()
    }

    fn state(mode: &str) -> FileState {
        FileState {
            file_type: "file",
            mode: mode.into(),
            ..Default::default()
        }
    }

    fn with(mut e: Event, f: impl FnOnce(&mut FileChange)) -> Event {
        f(fc(&mut e));
        e
    }

    /// A one-rule set with id `r` and the given `[rule.match]` body.
    fn one(match_body: &str) -> RuleSet {
        let text =
            format!("[[rule]]\nid = \"r\"\nseverity = \"low\"\n[rule.match]\n{match_body}\n");
        RuleSet::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn hits(set: &RuleSet, mut e: Event) -> bool {
        set.evaluate(&mut e);
        !e.rules.is_empty()
    }

    fn parse_err(text: &str) -> ConfigError {
        RuleSet::parse(text, "t.toml").unwrap_err()
    }

    // --- parsing -----------------------------------------------------------

    #[test]
    fn unknown_rule_field_names_line_and_column() {
        let e = parse_err(
            "[[rule]]\nid = \"a\"\nseverty = \"high\"\n[rule.match]\naction = [\"created\"]\n",
        );
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(
            e.to_string()
                .starts_with("t.toml:3:1: unknown field `severty`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_match_field_names_line_and_column() {
        let e = parse_err(
            "[[rule]]\nid = \"a\"\n[rule.match]\naction = [\"created\"]\n  paths = [\"/etc\"]\n",
        );
        assert_eq!((e.line, e.column), (5, 3), "{e}");
        assert!(e.message.contains("unknown field `paths`"), "{e}");
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let e = parse_err("\n\nrules = []\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown field `rules`"), "{e}");
    }

    #[test]
    fn bad_glob_names_rule_and_line() {
        let e = parse_err(
            "[[rule]]\nid = \"broken\"\n[rule.match]\npath = [\"/etc/ok\", \"/etc/a[\"]\n",
        );
        assert_eq!((e.line, e.column), (4, 20), "{e}");
        assert!(e.message.contains("rule \"broken\""), "{e}");
        assert!(e.message.contains("invalid path glob \"/etc/a[\""), "{e}");
    }

    #[test]
    fn bad_severity_names_rule_and_line() {
        let e = parse_err(
            "[[rule]]\nid = \"sev\"\nseverity = \"hgh\"\n[rule.match]\naction = [\"created\"]\n",
        );
        assert_eq!((e.line, e.column), (3, 12), "{e}");
        assert!(e.message.contains("rule \"sev\""), "{e}");
        assert!(e.message.contains("unknown severity \"hgh\""), "{e}");
    }

    #[test]
    fn duplicate_id_in_one_file_names_both_places() {
        let rule = "[[rule]]\nid = \"dup\"\n[rule.match]\naction = [\"created\"]\n";
        let e = parse_err(&format!("{rule}{rule}"));
        assert_eq!((e.line, e.column), (6, 6), "{e}");
        assert!(e.message.contains("duplicate rule id \"dup\""), "{e}");
        assert!(e.message.contains("first defined at t.toml:2:6"), "{e}");
    }

    #[test]
    fn duplicate_id_across_files_names_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::fs::write(
            &a,
            "[[rule]]\nid = \"local\"\n[rule.match]\npath = [\"/srv/**\"]\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "\n[[rule]]\nid = \"local\"\n[rule.match]\npath = [\"/opt/**\"]\n",
        )
        .unwrap();
        let e = RuleSet::load(&[a.clone(), b.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}:3:6: duplicate rule id \"local\"", b.display())),
            "{e}"
        );
        assert!(
            e.contains(&format!("first defined at {}:2:6", a.display())),
            "{e}"
        );
        // A local rule may not silently redefine a built-in one either.
        std::fs::write(
            &a,
            "[[rule]]\nid = \"cron\"\n[rule.match]\npath = [\"/srv/**\"]\n",
        )
        .unwrap();
        let e = RuleSet::load(&[a]).unwrap_err().to_string();
        assert!(e.contains("duplicate rule id \"cron\""), "{e}");
        assert!(e.contains("first defined at <builtin rules>:"), "{e}");
    }

    #[test]
    fn load_appends_local_rules_after_the_builtin_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("local.toml");
        std::fs::write(&a, "[[rule]]\nid = \"app-config\"\nseverity = \"critical\"\nalert = true\n[rule.match]\npath = [\"/srv/app/*.conf\"]\n").unwrap();
        let set = RuleSet::load(std::slice::from_ref(&a)).unwrap();
        assert_eq!(set.len(), RuleSet::builtin().len() + 1);
        assert_eq!(set.ids().last(), Some("app-config"));
        let mut e = ev("modified", "/srv/app/db.conf");
        set.evaluate(&mut e);
        assert_eq!(e.rules, ["app-config"]);
        assert_eq!(e.severity, Severity::Critical);
        let missing = RuleSet::load(&[dir.path().join("nope.toml")]).unwrap_err();
        assert!(
            missing.to_string().contains("cannot read rule file"),
            "{missing}"
        );
    }

    #[test]
    fn malformed_values_are_errors_at_their_position() {
        let cases: &[(&str, &str, (usize, usize))] = &[
            (
                "mitre = [\"T1098.04\"]\n[rule.match]\naction = [\"created\"]",
                "invalid MITRE ATT&CK technique id \"T1098.04\"",
                (3, 10),
            ),
            (
                "mitre = [\"t1098\"]\n[rule.match]\naction = [\"created\"]",
                "invalid MITRE",
                (3, 10),
            ),
            (
                "pci = [\"11.5.\"]\n[rule.match]\naction = [\"created\"]",
                "invalid PCI DSS requirement",
                (3, 8),
            ),
            (
                "[rule.match]\naction = [\"created\", \"writen\"]",
                "unknown action \"writen\"",
                (4, 22),
            ),
            (
                "[rule.match]\nkind = [\"files\"]",
                "unknown kind \"files\"",
                (4, 9),
            ),
            (
                "[rule.match]\nfields_changed = [\"perms\"]",
                "unknown fields_changed field \"perms\"",
                (4, 19),
            ),
            (
                "[rule.match]\nfile_type = [\"regular\"]",
                "unknown file_type \"regular\"",
                (4, 14),
            ),
            (
                "[rule.match]\nmode_bits = [\"6000\", \"9\"]",
                "invalid mode_bits \"9\"",
                (4, 22),
            ),
            (
                "[rule.match]\nmode_bits = [\"0\"]",
                "invalid mode_bits \"0\"",
                (4, 14),
            ),
            (
                "[rule.match]\npath = [\"etc/passwd\"]",
                "must be absolute",
                (4, 9),
            ),
            (
                "[rule.match]\npath = [\"~/.bashrc\"]",
                "~ is not expanded",
                (4, 9),
            ),
            (
                "[rule.match]\nexe = [\"bash\"]",
                "exe glob \"bash\" must be absolute",
                (4, 8),
            ),
            (
                "[rule.match]\nxattr = [\"security.{a\"]",
                "invalid xattr glob",
                (4, 10),
            ),
            ("[rule.match]", "has no conditions", (2, 6)),
            (
                "[rule.match]\npath = \"/etc/passwd\"",
                "invalid type: string",
                (4, 8),
            ),
        ];
        for (body, want, at) in cases {
            let text = format!("[[rule]]\nid = \"x\"\n{body}\n");
            let e = parse_err(&text);
            assert!(e.message.contains(want), "{body:?}: {e}");
            assert_eq!((e.line, e.column), *at, "{body:?}: {e}");
            if !want.starts_with("invalid type") {
                assert!(e.message.contains("rule \"x\""), "{body:?}: {e}");
            }
        }
        let e = parse_err("[[rule]]\nid = \"x\"\n");
        assert!(e.message.contains("missing field `match`"), "{e}");
        let e = parse_err("[[rule]]\n[rule.match]\naction = [\"created\"]\n");
        assert!(e.message.contains("missing field `id`"), "{e}");
        let e = parse_err("[[rule]]\nid = \"a b\"\n[rule.match]\naction = [\"created\"]\n");
        assert!(e.message.contains("invalid rule id"), "{e}");
    }

    // --- conditions --------------------------------------------------------

    #[test]
    fn path_globs_match_path_or_target_and_star_stays_in_one_component() {
        let set = one("path = [\"/etc/cron.d/*\", \"/etc/passwd\"]");
        assert!(hits(&set, ev("modified", "/etc/cron.d/job")));
        assert!(!hits(&set, ev("modified", "/etc/cron.d/sub/job")));
        assert!(!hits(&set, ev("modified", "/etc/cron.daily/job")));
        assert!(!hits(&set, ev("modified", "/etc/passwd-")));
        let renamed_over = with(ev("renamed", "/etc/passwd+"), |f| {
            f.target_path = Some("/etc/passwd".into())
        });
        assert!(hits(&set, renamed_over));
        let renamed_out = with(ev("renamed", "/etc/cron.d/job"), |f| {
            f.target_path = Some("/tmp/job".into())
        });
        assert!(hits(&set, renamed_out));
        // A double star crosses components but not into the directory itself.
        let set = one("path = [\"/etc/cron.d/**\"]");
        assert!(hits(&set, ev("modified", "/etc/cron.d/sub/job")));
        assert!(!hits(&set, ev("deleted", "/etc/cron.d")));
        assert!(!hits(&set, sensor_ev("gap")));
    }

    #[test]
    fn not_path_excludes_per_path() {
        let set = one("path = [\"/etc/**\"]\nnot_path = [\"**/*.swp\"]");
        assert!(hits(&set, ev("modified", "/etc/hosts")));
        assert!(!hits(&set, ev("modified", "/etc/.hosts.swp")));
        // An excluded temporary file renamed over a watched one still matches
        // through its target.
        let e = with(ev("renamed", "/etc/.passwd.swp"), |f| {
            f.target_path = Some("/etc/passwd".into())
        });
        assert!(hits(&set, e));
        // not_path alone: any path that is not excluded.
        let set = one("not_path = [\"/tmp/**\"]");
        assert!(hits(&set, ev("modified", "/etc/hosts")));
        assert!(!hits(&set, ev("modified", "/tmp/x")));
    }

    #[test]
    fn recent_path_matches_are_reused_only_for_the_same_paths_and_rules() {
        let etc = one("path = [\"/etc/**\"]");
        let tmp = one("path = [\"/tmp/**\"]");
        // Alternating paths and targets, each seen again while cached.
        let renamed =
            |from: &str, to: &str| with(ev("renamed", from), |f| f.target_path = Some(to.into()));
        for _ in 0..3 {
            assert!(hits(&etc, ev("modified", "/etc/hosts")));
            assert!(!hits(&etc, ev("modified", "/tmp/hosts")));
            assert!(hits(&etc, renamed("/tmp/hosts", "/etc/hosts")));
            assert!(!hits(&etc, renamed("/tmp/hosts", "/tmp/hosts2")));
        }
        // Another rule set on this thread, same paths: its own answer.
        assert!(!hits(&tmp, ev("modified", "/etc/hosts")));
        assert!(hits(&tmp, ev("modified", "/tmp/hosts")));
        assert!(hits(&etc, ev("modified", "/etc/hosts")));
    }

    #[test]
    fn action_kind_and_file_type_conditions() {
        let set = one("action = [\"deleted\", \"truncated\"]");
        assert!(hits(&set, ev("deleted", "/a")));
        assert!(hits(&set, ev("truncated", "/a")));
        assert!(!hits(&set, ev("modified", "/a")));

        let set = one("kind = [\"sensor\"]");
        assert!(hits(&set, sensor_ev("gap")));
        assert!(!hits(&set, ev("modified", "/a")));

        let set = one("file_type = [\"dir\"]");
        assert!(!hits(&set, ev("created", "/a")));
        // The after state's type wins over the kernel's "unknown".
        let e = with(ev("permissions_changed", "/a"), |f| {
            f.file.file_type = "unknown";
            f.after = boxed(FileState {
                file_type: "dir",
                ..state("2775")
            });
        });
        assert!(hits(&set, e));
    }

    #[test]
    fn rules_past_the_first_64_are_tried_in_order() {
        // Rule k matches `deleted` under /d<k>, or (every third one) any
        // action there, or (the last) any deletion: the candidate sets span
        // several words.
        let mut text = String::new();
        for k in 0..150 {
            let action = if k % 3 == 0 {
                ""
            } else {
                "action = [\"deleted\"]"
            };
            let path = if k == 149 {
                String::new()
            } else {
                format!("path = [\"/d{k}/*\"]")
            };
            text += &format!(
                "[[rule]]\nid = \"r{k}\"\nseverity = \"low\"\n[rule.match]\n{action}\n{path}\n"
            );
        }
        let set = RuleSet::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let matched = |action, path| {
            let mut e = ev(action, path);
            set.evaluate(&mut e);
            e.rules
        };
        assert_eq!(matched("deleted", "/d100/x"), ["r100", "r149"]);
        assert_eq!(matched("modified", "/d100/x"), Vec::<String>::new());
        assert_eq!(matched("modified", "/d99/x"), ["r99"]);
        assert_eq!(matched("deleted", "/d148/x"), ["r148", "r149"]);
        assert_eq!(matched("deleted", "/elsewhere"), ["r149"]);
    }

    #[test]
    fn fields_changed_condition_is_any_of() {
        let set = one("fields_changed = [\"mode\", \"uid\"]");
        let e = |fields: &[&str]| {
            with(ev("closed_after_write", "/a"), |f| {
                f.fields_changed = fields.iter().map(|s| s.to_string()).collect()
            })
        };
        assert!(hits(&set, e(&["size", "uid"])));
        assert!(hits(&set, e(&["mode"])));
        assert!(!hits(&set, e(&["size", "hashes", "mtime"])));
        assert!(!hits(&set, e(&[])));
    }

    #[test]
    fn process_conditions() {
        let base = || ev("modified", "/etc/hosts");
        assert!(hits(&one("exe = [\"/usr/bin/vim*\"]"), base()));
        assert!(!hits(&one("exe = [\"/usr/bin/nano\"]"), base()));
        assert!(!hits(&one("not_exe = [\"/usr/bin/vim.basic\"]"), base()));
        assert!(hits(&one("not_exe = [\"/usr/sbin/logrotate\"]"), base()));
        // An unknown exe fails a positive condition and passes a negative one.
        let unknown = || {
            with(base(), |f| {
                std::sync::Arc::make_mut(&mut f.process).exe = None
            })
        };
        assert!(!hits(&one("exe = [\"**\"]"), unknown()));
        assert!(hits(&one("not_exe = [\"/usr/bin/*\"]"), unknown()));

        assert!(hits(&one("comm = [\"vi*\"]"), base()));
        assert!(hits(&one("user = [\"root\"]"), base()));
        assert!(!hits(&one("user = [\"www-data\"]"), base()));
        assert!(hits(&one("login_user = [\"alice\", \"bob\"]"), base()));
        assert!(!hits(&one("login_user = [\"bob\"]"), base()));
        let no_login = with(base(), |f| {
            std::sync::Arc::make_mut(&mut f.process).login_user = None
        });
        assert!(!hits(&one("login_user = [\"*\"]"), no_login));
        assert!(hits(&one("parent_exe = [\"/usr/bin/bash\"]"), base()));
        assert!(!hits(&one("parent_exe = [\"/usr/sbin/cron\"]"), base()));
        assert!(hits(&one("parent_comm = [\"bash\", \"sh\"]"), base()));
        let orphan = with(base(), |f| {
            std::sync::Arc::make_mut(&mut f.process).parent = None
        });
        assert!(!hits(&one("parent_comm = [\"*\"]"), orphan));
        // Process conditions never match sensor events.
        assert!(!hits(&one("user = [\"*\"]"), sensor_ev("start")));
    }

    #[test]
    fn mode_bits_look_at_after_mode_and_chmod_mode() {
        let set = one("mode_bits = [\"6000\"]");
        let chmod = |mode: &str| {
            with(ev("permissions_changed", "/usr/local/bin/x"), |f| {
                f.details.insert("mode", mode.into());
            })
        };
        assert!(hits(&set, chmod("4755")));
        assert!(hits(&set, chmod("2755")));
        assert!(!hits(&set, chmod("755")));
        assert!(!hits(&set, chmod("1777")));
        let written = |mode: &str| {
            with(ev("closed_after_write", "/usr/bin/x"), |f| {
                f.after = boxed(state(mode))
            })
        };
        assert!(hits(&set, written("04755")));
        assert!(!hits(&set, written("0755")));
        assert!(!hits(&set, ev("modified", "/usr/bin/x")));
        assert!(hits(&one("mode_bits = [\"0002\"]"), written("0666")));
    }

    #[test]
    fn xattr_matches_present_removed_or_changed_attributes() {
        let set = one("xattr = [\"security.capability\"]");
        let caps = |v: &str| {
            let mut s = state("0755");
            s.xattrs.insert("security.capability".into(), v.into());
            s
        };
        let selinux = {
            let mut s = state("0755");
            s.xattrs.insert("security.selinux".into(), "00".into());
            s
        };
        let set_caps = with(ev("xattr_changed", "/usr/bin/x"), |f| {
            f.after = boxed(caps("0100"))
        });
        assert!(hits(&set, set_caps));
        let removed = with(ev("xattr_removed", "/usr/bin/x"), |f| {
            f.before = boxed(caps("0100"));
            f.after = boxed(state("0755"));
        });
        assert!(hits(&set, removed));
        let other = with(ev("xattr_changed", "/usr/bin/x"), |f| {
            f.before = boxed(state("0755"));
            f.after = boxed(selinux.clone());
        });
        assert!(!hits(&set, other));
        let named = with(ev("xattr_changed", "/usr/bin/x"), |f| {
            f.details.insert("name", "security.capability".into());
        });
        assert!(hits(&set, named));
        assert!(hits(
            &one("xattr = [\"security.*\"]"),
            with(ev("xattr_changed", "/a"), |f| f.after = boxed(selinux))
        ));
    }

    #[test]
    fn all_conditions_must_hold() {
        let set = one(
            "path = [\"/var/log/**\"]\naction = [\"deleted\"]\nnot_exe = [\"/usr/sbin/logrotate\"]",
        );
        assert!(hits(&set, ev("deleted", "/var/log/auth.log")));
        assert!(!hits(&set, ev("modified", "/var/log/auth.log")));
        assert!(!hits(&set, ev("deleted", "/etc/auth.log")));
        let rotated = with(ev("deleted", "/var/log/auth.log"), |f| {
            std::sync::Arc::make_mut(&mut f.process).exe = Some("/usr/sbin/logrotate".into())
        });
        assert!(!hits(&set, rotated));
    }

    // --- semantics ---------------------------------------------------------

    const THREE: &str = r#"
[[rule]]
id = "a"
severity = "medium"
mitre = ["T1000", "T2000"]
pci = ["11.5.2"]
tags = ["x"]
[rule.match]
path = ["/etc/**"]

[[rule]]
id = "b"
severity = "critical"
alert = true
mitre = ["T2000", "T3000.001"]
pci = ["11.5.2", "10.3.4"]
tags = ["y", "x"]
[rule.match]
path = ["/etc/shadow"]

[[rule]]
id = "c"
severity = "low"
mitre = ["T4000"]
tags = ["z"]
[rule.match]
action = ["modified"]
"#;

    #[test]
    fn severity_is_the_max_and_lists_are_unions_in_rule_order() {
        let set = RuleSet::parse(THREE, "t.toml").unwrap();
        assert_eq!(set.len(), 3);
        let mut e = ev("modified", "/etc/shadow");
        set.evaluate(&mut e);
        assert_eq!(e.rules, ["a", "b", "c"]);
        assert_eq!(e.severity, Severity::Critical);
        assert!(e.alert);
        assert_eq!(e.mitre, ["T1000", "T2000", "T3000.001", "T4000"]);
        assert_eq!(e.pci, ["11.5.2", "10.3.4"]);
        assert_eq!(e.tags, ["x", "y", "z"]);

        let mut e = ev("deleted", "/etc/hosts");
        set.evaluate(&mut e);
        assert_eq!(e.rules, ["a"]);
        assert_eq!(e.severity, Severity::Medium);
        assert!(!e.alert);

        // Evaluating again replaces, it does not accumulate.
        let mut e = ev("modified", "/etc/shadow");
        set.evaluate(&mut e);
        set.evaluate(&mut e);
        assert_eq!(e.rules, ["a", "b", "c"]);
        fc(&mut e).path = "/tmp/x".into();
        std::sync::Arc::make_mut(&mut fc(&mut e).process).exe = None;
        e.action = "deleted";
        set.evaluate(&mut e);
        assert!(e.rules.is_empty() && e.mitre.is_empty() && e.pci.is_empty() && e.tags.is_empty());
        assert_eq!(e.severity, Severity::Info);
        assert!(!e.alert);
    }

    #[test]
    fn empty_set_leaves_info() {
        let set = RuleSet::default();
        assert!(set.is_empty());
        let mut e = ev("modified", "/etc/shadow");
        e.severity = Severity::High;
        set.evaluate(&mut e);
        assert_eq!(e.severity, Severity::Info);
        assert!(e.rules.is_empty());
    }

    // --- the built-in rules ------------------------------------------------

    fn builtin() -> &'static RuleSet {
        static SET: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        SET.get_or_init(RuleSet::builtin)
    }

    fn evaluated(mut e: Event) -> Event {
        builtin().evaluate(&mut e);
        e
    }

    #[test]
    fn unattributed_scan_findings_are_at_least_high() {
        let flagged = |v: bool| {
            evaluated(with(ev("modified", "/srv/app/x"), |f| {
                f.details.insert("unattributed", v.into());
            }))
        };
        let e = flagged(true);
        assert!(e.severity >= Severity::High, "{:?}", e.severity);
        assert!(e.tags.contains(&"unattributed".to_string()));
        let e = flagged(false);
        assert!(!e.tags.contains(&"unattributed".to_string()));
        assert!(e.severity < Severity::High, "{:?}", e.severity);
    }

    /// For every built-in rule, a realistic event that must match it.
    fn builtin_cases() -> Vec<(&'static str, Event)> {
        let chmod = |path: &str, mode: &str| {
            with(ev("permissions_changed", path), |f| {
                f.file.file_type = "unknown";
                f.details.insert("mode", mode.into());
            })
        };
        let by = |e: Event, exe: &str| {
            with(e, |f| {
                std::sync::Arc::make_mut(&mut f.process).exe = Some(exe.into())
            })
        };
        vec![
            (
                "ssh-authorized-keys",
                ev("modified", "/root/.ssh/authorized_keys"),
            ),
            (
                "ssh-authorized-keys",
                ev("created", "/home/bob/.ssh/authorized_keys2"),
            ),
            (
                "ssh-server-config",
                ev("closed_after_write", "/etc/ssh/sshd_config.d/50-evil.conf"),
            ),
            (
                "systemd-unit",
                ev("created", "/etc/systemd/system/backdoor.service"),
            ),
            (
                "systemd-unit",
                ev(
                    "symlinked",
                    "/etc/systemd/system/multi-user.target.wants/backdoor.service",
                ),
            ),
            (
                "systemd-unit",
                ev("created", "/home/bob/.config/systemd/user/miner.service"),
            ),
            (
                "systemd-timer",
                ev("created", "/etc/systemd/system/backdoor.timer"),
            ),
            ("cron", ev("closed_after_write", "/etc/cron.d/update")),
            (
                "cron",
                ev("renamed", "/var/spool/cron/crontabs/tmp.X")
                    .tap_target("/var/spool/cron/crontabs/root"),
            ),
            ("cron", ev("modified", "/etc/crontab")),
            (
                "at-job",
                ev("created", "/var/spool/cron/atjobs/a0000101a2b3c4"),
            ),
            ("shell-init-system", ev("modified", "/etc/profile.d/zz.sh")),
            ("shell-init-system", ev("modified", "/root/.bashrc")),
            ("shell-init-system", ev("modified", "/etc/bash.bashrc")),
            ("shell-init-user", ev("modified", "/home/bob/.zshrc")),
            ("init-rc-scripts", ev("created", "/etc/rc.local")),
            ("ld-so-preload", ev("created", "/etc/ld.so.preload")),
            ("ld-so-config", ev("created", "/etc/ld.so.conf.d/evil.conf")),
            (
                "kernel-module-config",
                ev("created", "/etc/modules-load.d/rk.conf"),
            ),
            (
                "kernel-module-config",
                ev("modified", "/etc/modprobe.d/blacklist.conf"),
            ),
            (
                "kernel-module-file",
                ev("created", "/lib/modules/6.1.0-18-amd64/extra/rk.ko"),
            ),
            (
                "kernel-module-file",
                ev("created", "/usr/lib/modules/6.1.0-18-amd64/kernel/x.ko"),
            ),
            ("setuid-setgid", chmod("/usr/local/bin/x", "4755")),
            (
                "setuid-setgid",
                with(ev("closed_after_write", "/tmp/.x"), |f| {
                    f.after = boxed(state("6755"))
                }),
            ),
            (
                "file-capabilities",
                with(ev("xattr_changed", "/usr/local/bin/py"), |f| {
                    let mut s = state("0755");
                    s.xattrs
                        .insert("security.capability".into(), "0100000200000000".into());
                    f.after = boxed(s);
                }),
            ),
            ("sudoers", ev("closed_after_write", "/etc/sudoers")),
            ("sudoers", ev("created", "/etc/sudoers.d/90-nopasswd")),
            ("pam", ev("modified", "/etc/pam.d/common-auth")),
            (
                "pam",
                ev("renamed", "/tmp/pam_unix.so")
                    .tap_target("/lib/x86_64-linux-gnu/security/pam_unix.so"),
            ),
            (
                "account-files",
                ev("renamed", "/etc/passwd+").tap_target("/etc/passwd"),
            ),
            ("account-files", ev("closed_after_write", "/etc/shadow")),
            ("account-files", ev("modified", "/etc/group")),
            ("timestomp", ev("timestamps_changed", "/usr/bin/ls")),
            ("log-cleared", ev("truncated", "/var/log/auth.log")),
            ("log-cleared", ev("deleted", "/var/log/wtmp")),
            (
                "log-archive-removed",
                by(ev("deleted", "/var/log/syslog.7.gz"), "/usr/sbin/logrotate"),
            ),
            (
                "audit-log-tampering",
                ev("truncated", "/var/log/audit/audit.log"),
            ),
            (
                "audit-config",
                ev("closed_after_write", "/etc/audit/rules.d/audit.rules"),
            ),
            ("vigil-config", ev("modified", "/etc/vigil/policy.toml")),
            ("vigil-host-key", ev("deleted", "/var/lib/vigil/host.key")),
            ("hosts-file", ev("modified", "/etc/hosts")),
            ("boot", ev("closed_after_write", "/boot/grub/grub.cfg")),
            ("boot", ev("modified", "/etc/default/grub")),
            (
                "system-binaries",
                by(
                    ev("renamed", "/usr/bin/ls.dpkg-new").tap_target("/usr/bin/ls"),
                    "/usr/bin/dpkg",
                ),
            ),
            ("system-binaries", ev("created", "/sbin/x")),
            (
                "system-libraries",
                ev("closed_after_write", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ),
            ("sensor-gap", sensor_ev("gap")),
            ("output-degraded", sensor_ev("health")),
            ("sensor-stopped", sensor_ev("stop")),
            ("sensor-downtime", sensor_ev("downtime")),
            ("scan-failed", sensor_ev("scan_failed")),
            ("baseline-tampered", sensor_ev("baseline_tampered")),
            (
                "append-only-rewritten",
                with(ev("modified", "/var/log/audit/audit.log"), |f| {
                    f.details.insert("append_only", "rewritten".into());
                }),
            ),
            (
                "append-only-replaced",
                with(ev("modified", "/var/log/audit/audit.log"), |f| {
                    f.details.insert("append_only", "replaced".into());
                }),
            ),
            (
                "package-managed-change",
                with(ev("modified", "/opt/app/bin/x"), |f| {
                    f.package = Some(Box::new(crate::event::PackageRef {
                        manager: "dpkg",
                        managed: true,
                        ..Default::default()
                    }));
                }),
            ),
            (
                "packaged-file-mismatch",
                with(ev("modified", "/opt/app/bin/x"), |f| {
                    f.package = Some(Box::new(crate::event::PackageRef {
                        manager: "dpkg",
                        name: Some("app".into()),
                        ..Default::default()
                    }));
                    f.details.insert("package_checksum", "mismatch".into());
                }),
            ),
            ("package-installed", pkg_ev("package_installed")),
            ("package-upgraded", pkg_ev("package_upgraded")),
            ("package-removed", pkg_ev("package_removed")),
            ("package-downgraded", pkg_ev("package_downgraded")),
            ("package-state-changed", pkg_ev("package_changed")),
            (
                "daemon-watch-unavailable",
                sensor_ev("daemon_watch_unavailable"),
            ),
            ("service-stopped", svc_ev("service_stopped", "cron.service")),
            ("service-stopped", svc_ev("service_failed", "cron.service")),
            (
                "security-service-stopped",
                svc_ev("service_stopped", "auditd.service"),
            ),
            (
                "security-service-stopped",
                svc_ev("service_masked", "ssh.service"),
            ),
            (
                "service-disabled",
                svc_ev("service_disabled", "cron.service"),
            ),
            ("service-enabled", svc_ev("service_enabled", "evil.service")),
            ("service-installed", svc_ev("service_installed", "evil")),
            ("service-removed", svc_ev("service_removed", "Spooler")),
            (
                "service-start-type-changed",
                svc_ev("service_start_type_changed", "Spooler"),
            ),
            (
                "service-config-changed",
                svc_ev("service_config_changed", "Spooler"),
            ),
            (
                "security-service-stopped",
                svc_ev("service_start_type_changed", "WinDefend"),
            ),
        ]
    }

    fn svc_ev(action: &'static str, unit: &str) -> Event {
        let mut e = sensor_ev(action);
        e.kind = "service";
        e.body = Body::Service(Box::new(crate::event::ServiceChange {
            service: crate::event::ServiceInfo {
                manager: "systemd",
                bus: "system".into(),
                unit: unit.into(),
                unit_type: "service".into(),
                ..Default::default()
            },
            process: None,
            source: crate::event::Source {
                tier: "dbus",
                syscall: "PropertiesChanged",
                decided_by: "dbus",
            },
            details: Default::default(),
        }));
        e
    }

    #[test]
    fn service_rules_rate_security_services_higher_and_match_units() {
        let e = evaluated(svc_ev("service_stopped", "sshd.service"));
        assert_eq!(e.severity, Severity::High);
        assert!(e.alert);
        assert!(e.pci.contains(&"10.2.1".to_string()), "{:?}", e.pci);
        let e = evaluated(svc_ev("service_stopped", "cron.service"));
        assert_eq!(e.severity, Severity::Medium);
        assert!(!e.alert);
        let e = evaluated(svc_ev("service_started", "sshd.service"));
        assert_eq!(e.severity, Severity::Info);
        // Windows: Defender's start type changed, a service hijacked.
        let e = evaluated(svc_ev("service_start_type_changed", "WinDefend"));
        assert_eq!(e.severity, Severity::High);
        assert!(e.alert);
        let e = evaluated(svc_ev("service_config_changed", "Spooler"));
        assert_eq!(e.severity, Severity::High);
        assert!(e.alert);
        assert!(e.mitre.contains(&"T1574.011".to_string()), "{:?}", e.mitre);
        let e = evaluated(svc_ev("service_installed", "evil"));
        assert_eq!(e.severity, Severity::Medium);
        // A `unit` condition never matches other kinds of events.
        let set = RuleSet::parse(
            "[[rule]]\nid = \"u\"\nseverity = \"high\"\n[rule.match]\nunit = [\"*.timer\"]\n",
            "t.toml",
        )
        .unwrap();
        let mut e = svc_ev("service_started", "backup.timer");
        set.evaluate(&mut e);
        assert_eq!(e.rules, ["u"]);
        let mut f = ev("modified", "/etc/backup.timer");
        set.evaluate(&mut f);
        assert!(f.rules.is_empty());
    }

    fn pkg_ev(action: &'static str) -> Event {
        let mut e = sensor_ev(action);
        e.kind = "package";
        e.body = Body::Package(Box::new(crate::event::PackageChange {
            package: crate::event::PackageInfo {
                manager: "dpkg",
                name: "app".into(),
                ..Default::default()
            },
            path: "/var/lib/dpkg/status".into(),
            process: None,
            source: crate::event::Source {
                tier: "scan",
                syscall: "inventory",
                decided_by: "database",
            },
            details: Default::default(),
        }));
        e
    }

    trait TapTarget {
        fn tap_target(self, target: &str) -> Event;
    }
    impl TapTarget for Event {
        fn tap_target(self, target: &str) -> Event {
            with(self, |f| f.target_path = Some(target.into()))
        }
    }

    #[test]
    fn action_conditions_see_the_changes_folded_into_a_coalesced_event() {
        // `echo > /var/log/auth.log`: one `modified` that stands for a truncating open.
        let e = with(ev("modified", "/var/log/auth.log"), |f| {
            f.details.insert("truncated", true.into());
        });
        let e = evaluated(e);
        assert!(e.rules.iter().any(|r| r == "log-cleared"), "{:?}", e.rules);
        // `cp -p`: the utimensat inside the write session still counts.
        let e = with(ev("modified", "/etc/hosts"), |f| {
            f.related.push(crate::event::Related {
                action: "timestamps_changed",
                path: f.path.clone(),
                target_path: None,
                time: crate::event::Time::default(),
                syscall: "utimensat",
                details: Default::default(),
            });
        });
        let e = evaluated(e);
        assert!(e.rules.iter().any(|r| r == "timestomp"), "{:?}", e.rules);
    }

    #[test]
    fn builtin_rules_parse_and_every_rule_has_a_matching_case() {
        let set = builtin();
        let cases = builtin_cases();
        for id in set.ids() {
            assert!(
                cases.iter().any(|(c, _)| *c == id),
                "built-in rule {id:?} has no test case"
            );
            assert!(
                set.description(id).is_some_and(|d| d.len() > 20),
                "built-in rule {id:?} needs a description"
            );
        }
        for (id, e) in cases {
            let path = e.file().map(|f| f.path.clone()).unwrap_or_default();
            let action = e.action;
            let e = evaluated(e);
            assert!(
                e.rules.iter().any(|r| r == id),
                "{action} {path}: expected rule {id}, got {:?}",
                e.rules
            );
            // Upgrades are routine; the package cap sets no severity of its own.
            assert!(
                e.severity > Severity::Info
                    || matches!(
                        id,
                        "log-archive-removed" | "package-upgraded" | "package-managed-change"
                    ),
                "{id}: {:?}",
                e.severity
            );
        }
    }

    #[test]
    fn builtin_authorized_keys_alerts_with_t1098_004() {
        let e = evaluated(ev("modified", "/root/.ssh/authorized_keys"));
        assert!(e.alert);
        assert_eq!(e.mitre, ["T1098.004"]);
        assert_eq!(e.pci, ["11.5.2"]);
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.rules, ["ssh-authorized-keys"]);
    }

    #[test]
    fn builtin_setuid_chmod_gets_t1548_001() {
        let e = evaluated(with(ev("permissions_changed", "/usr/local/bin/x"), |f| {
            f.file.file_type = "unknown";
            f.details.insert("mode", "4755".into());
        }));
        assert!(e.mitre.iter().any(|m| m == "T1548.001"), "{:?}", e.mitre);
        assert!(e.alert);
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.rules, ["setuid-setgid", "system-binaries"]);
        // Removing the bit, or a set-group-id directory, is not escalation.
        let e = evaluated(with(ev("permissions_changed", "/usr/local/bin/x"), |f| {
            f.details.insert("mode", "755".into());
        }));
        assert!(!e.mitre.iter().any(|m| m == "T1548.001"));
        let e = evaluated(with(ev("created", "/srv/share/sub"), |f| {
            f.file.file_type = "dir";
            f.after = boxed(FileState {
                file_type: "dir",
                ..state("2775")
            });
        }));
        assert!(e.rules.is_empty(), "{:?}", e.rules);
    }

    #[test]
    fn builtin_timestomp_gets_t1070_006() {
        let e = evaluated(ev("timestamps_changed", "/etc/cron.d/job"));
        assert!(e.mitre.iter().any(|m| m == "T1070.006"), "{:?}", e.mitre);
        assert!(e.mitre.iter().any(|m| m == "T1053.003"), "{:?}", e.mitre);
        assert_eq!(e.severity, Severity::High);
    }

    #[test]
    fn builtin_leaves_unrelated_changes_at_info() {
        for e in [
            ev("modified", "/tmp/build/x.o"),
            ev("deleted", "/home/bob/notes.txt"),
            ev("created", "/var/lib/apt/lists/partial/x"),
            with(ev("closed_after_write", "/srv/share/file"), |f| {
                f.after = boxed(state("0644"))
            }),
            sensor_ev("start"),
        ] {
            let e = evaluated(e);
            assert_eq!(e.severity, Severity::Info, "{:?}", e.rules);
            assert!(!e.alert);
            assert!(
                e.rules.is_empty() && e.mitre.is_empty() && e.pci.is_empty() && e.tags.is_empty()
            );
        }
    }

    #[test]
    fn builtin_log_rotation_is_not_log_clearing() {
        let rotated = evaluated(with(ev("deleted", "/var/log/syslog.7.gz"), |f| {
            std::sync::Arc::make_mut(&mut f.process).exe = Some("/usr/bin/gzip".into())
        }));
        assert_eq!(rotated.rules, ["log-archive-removed"]);
        assert!(!rotated.alert);
        let by_logrotate = evaluated(with(ev("truncated", "/var/log/syslog"), |f| {
            std::sync::Arc::make_mut(&mut f.process).exe = Some("/usr/sbin/logrotate".into())
        }));
        assert!(by_logrotate.rules.is_empty(), "{:?}", by_logrotate.rules);
        let cleared = evaluated(ev("truncated", "/var/log/auth.log"));
        assert_eq!(cleared.mitre, ["T1070.002"]);
        assert!(cleared.alert);
        let auditd = evaluated(with(ev("modified", "/var/log/audit/audit.log"), |f| {
            std::sync::Arc::make_mut(&mut f.process).exe = Some("/usr/sbin/auditd".into())
        }));
        assert!(auditd.rules.is_empty(), "{:?}", auditd.rules);
    }

    #[test]
    fn builtin_timer_is_not_also_a_service_unit() {
        let e = evaluated(ev("created", "/etc/systemd/system/backdoor.timer"));
        assert_eq!(e.rules, ["systemd-timer"]);
        assert_eq!(e.mitre, ["T1053.006"]);
    }

    #[test]
    fn docs_list_every_builtin_rule() {
        let doc = include_str!("../../docs/rules.md");
        for id in builtin().ids() {
            assert!(
                doc.contains(&format!("| `{id}` |")),
                "docs/rules.md has no table row for built-in rule {id:?}"
            );
        }
    }
}

#[cfg(test)]
mod package_tests {
    use super::*;
    use crate::event::*;

    fn file_ev(path: &str, package: Option<PackageRef>, checksum: Option<&str>) -> Event {
        let mut ev = Event::test_file("modified", path, "tracepoint");
        let f = ev.file_mut().unwrap();
        f.package = package.map(Box::new);
        if let Some(c) = checksum {
            f.details.insert("package_checksum", c.into());
        }
        ev
    }

    fn owned(managed: bool) -> Option<PackageRef> {
        Some(PackageRef {
            manager: "dpkg",
            name: Some("openssh-server".into()),
            managed,
            ..Default::default()
        })
    }

    #[test]
    fn a_package_operation_caps_severity_and_clears_the_alert() {
        let set = RuleSet::builtin();
        let mut by_dpkg = file_ev("/etc/ssh/sshd_config", owned(true), None);
        set.evaluate(&mut by_dpkg);
        assert_eq!(by_dpkg.severity, Severity::Low, "{:?}", by_dpkg.rules);
        assert!(!by_dpkg.alert);
        assert!(by_dpkg.rules.contains(&"ssh-server-config".to_string()));
        assert!(by_dpkg
            .rules
            .contains(&"package-managed-change".to_string()));
        let mut by_hand = file_ev("/etc/ssh/sshd_config", owned(false), Some("mismatch"));
        set.evaluate(&mut by_hand);
        assert_eq!(by_hand.severity, Severity::High);
        assert!(by_hand.alert);
        // Configuration files are edited by hand: /etc is not a mismatch alert.
        assert!(!by_hand
            .rules
            .contains(&"packaged-file-mismatch".to_string()));
        let mut binary = file_ev("/usr/sbin/sshd", owned(false), Some("mismatch"));
        set.evaluate(&mut binary);
        assert!(binary.rules.contains(&"packaged-file-mismatch".to_string()));
        assert_eq!(binary.severity, Severity::High);
        let mut fine = file_ev("/usr/sbin/sshd", owned(false), Some("match"));
        set.evaluate(&mut fine);
        assert!(!fine.rules.contains(&"packaged-file-mismatch".to_string()));
    }

    #[test]
    fn package_conditions_match_package_and_file_events() {
        let set = RuleSet::parse(
            "[[rule]]\nid = \"ssh-pkg\"\nseverity = \"high\"\n[rule.match]\npackage = [\"openssh-*\"]\n\n[[rule]]\nid = \"cap\"\nmax_severity = \"medium\"\n[rule.match]\nkind = [\"package\"]\naction = [\"package_removed\"]\n",
            "t.toml",
        )
        .unwrap();
        let mut f = file_ev("/x", owned(false), None);
        set.evaluate(&mut f);
        assert_eq!(f.rules, ["ssh-pkg"]);
        let mut unowned = file_ev("/x", None, None);
        set.evaluate(&mut unowned);
        assert!(unowned.rules.is_empty());
        let mut p = Event {
            kind: "package",
            action: "package_removed",
            body: Body::Package(Box::new(PackageChange {
                package: PackageInfo {
                    manager: "dpkg",
                    name: "openssh-server".into(),
                    ..Default::default()
                },
                path: "/var/lib/dpkg/status".into(),
                process: None,
                source: Source {
                    tier: "scan",
                    syscall: "inventory",
                    decided_by: "database",
                },
                details: Default::default(),
            })),
            ..file_ev("/x", None, None)
        };
        set.evaluate(&mut p);
        assert_eq!(p.rules, ["ssh-pkg", "cap"]);
        assert_eq!(p.severity, Severity::Medium);
        let e = RuleSet::parse(
            "[[rule]]\nid = \"x\"\nmax_severity = \"lowest\"\n[rule.match]\nkind = [\"file\"]\n",
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = RuleSet::parse(
            "[[rule]]\nid = \"x\"\n[rule.match]\npackage_checksum = [\"bad\"]\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("package_checksum verdict"), "{e}");
    }
}
