//! Verification scans: walk the watched roots in parallel, read each entry's
//! state and hashes, and record it (`vigil baseline init|update`) or compare
//! it with the baseline (`vigil scan`).
//!
//! One thread walks (directory reads are cheap); a pool of workers stats and
//! hashes; the calling thread owns the store and the emitter, so the store is
//! written from one connection and events leave in one order. The comparison
//! ([`compare`]) and the event built from it ([`finding_event`]) are
//! separate functions so that the daemon's scheduled and catch-up scans
//! produce exactly the same events.
use crate::append_only::{self, Verdict};
use crate::event::{Body, Event, FileChange, FileInfo, FileState, Process, Source};
use crate::filestate::{fields_changed, read_state, same_content};
use crate::hash::{hash_file, hash_file_with_prefix, HashPolicy};
use crate::pipeline::emit::Emitter;
use crate::policy::Policy;
use crate::store::{self, FileRow, Store};
use anyhow::{Context, Result};
use globset::GlobSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a walk reads.
#[derive(Clone)]
pub struct WalkOptions {
    /// Stat and hash threads (at least 1).
    pub workers: usize,
    pub hash: HashPolicy,
    /// Paths also hashed with SHA-256.
    pub sha256: GlobSet,
    /// Do not hash: size, times, inode and mode decide.
    pub metadata_only: bool,
    /// Restrict the walk to these absolute paths (and what is under them);
    /// empty: every watched root.
    pub only: Vec<PathBuf>,
    /// Progress on stderr: a bar on a terminal, lines otherwise.
    pub progress: bool,
    /// Set to stop the walk (the daemon shutting down); the scan then ends
    /// `interrupted` and reports no deletions.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Run at idle CPU and I/O priority (the daemon's scans yield to the
    /// event pipeline and to the host's work).
    pub background: bool,
    /// How long one store transaction stays open during a walk: short in the
    /// daemon, whose event journal shares the database.
    pub commit_every: Duration,
}

impl WalkOptions {
    pub fn from_policy(policy: &Policy) -> WalkOptions {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let c = &policy.config;
        WalkOptions {
            workers: c.hash.workers.unwrap_or(cpus.clamp(2, 8)).max(1),
            hash: HashPolicy {
                max_size: c.hash.max_size,
            },
            sha256: c.hash.sha256.clone(),
            metadata_only: false,
            only: Vec::new(),
            progress: true,
            cancel: None,
            background: false,
            commit_every: Duration::from_secs(1),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Lowers the calling thread to idle CPU and I/O priority.
pub fn lower_thread_priority() {
    crate::os::lower_thread_priority()
}

/// One entry the walk found.
pub struct Seen {
    pub path: String,
    /// The watched root that covers it.
    pub watch: String,
    /// None when it vanished between the directory read and the stat.
    pub state: Option<FileState>,
    /// Taken before the entry was read: a realtime event whose state was
    /// read later describes the file at least as recently.
    pub observed: Instant,
}

/// What a baseline or scan did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub scan_id: i64,
    pub files_seen: u64,
    pub bytes_hashed: u64,
    /// Findings (scan) or rows that changed (baseline update).
    pub changes: u64,
    pub unattributed: u64,
    /// Entries that could not be read (named on stderr).
    pub errors: u64,
    /// What the first [`MAX_ERROR_NAMES`] errors were, path first (the
    /// daemon puts them in its `scan_finished` event).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_names: Vec<String>,
}

/// How many walk errors a [`Summary`] names.
pub const MAX_ERROR_NAMES: usize = 10;

/// The walk's errors: how many, and the first few by name.
#[derive(Debug, Default)]
pub struct WalkErrors {
    pub count: u64,
    pub names: Vec<String>,
}

impl WalkErrors {
    fn add(&mut self, msg: String) {
        tracing::warn!("scan: {msg}");
        eprintln!("vigil: {msg}");
        self.count += 1;
        if self.names.len() < MAX_ERROR_NAMES {
            self.names.push(msg);
        }
    }
}

/// Whether `a` is `b` or under it, or `b` under `a`.
fn related(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Walks the policy's roots and calls `each` on the calling thread for every
/// entry the policy covers (honouring recursion, `entries` and ignore globs).
/// Returns the walk errors (unreadable directories), each named on stderr.
/// A root that does not exist is named there too, but not counted: policies
/// list roots that appear later (the sensor watches them from then on).
pub fn walk(policy: &Policy, opts: &WalkOptions, mut each: impl FnMut(Seen)) -> WalkErrors {
    let (job_tx, job_rx) = crossbeam_channel::bounded::<(PathBuf, usize)>(4096);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Seen>(4096);
    let mut errors = WalkErrors::default();
    std::thread::scope(|scope| {
        let walker = scope.spawn(move || {
            if opts.background {
                lower_thread_priority();
            }
            let mut errors = WalkErrors::default();
            for (i, root) in policy.roots.iter().enumerate() {
                if !opts.only.is_empty() && !opts.only.iter().any(|p| related(p, &root.path)) {
                    continue;
                }
                let depth = if root.recursive { usize::MAX } else { 1 };
                let it = walkdir::WalkDir::new(&root.path)
                    .follow_links(false)
                    .max_depth(depth)
                    .into_iter()
                    .filter_entry(|e| {
                        let p = e.path();
                        (e.depth() == 0 || !policy.ignored(Some(i), p))
                            && (opts.only.is_empty() || opts.only.iter().any(|o| related(o, p)))
                    });
                for entry in it {
                    let entry = match entry {
                        Ok(e) => e,
                        Err(e) => {
                            let gone = e
                                .io_error()
                                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
                            let at = e.path().unwrap_or(&root.path).display();
                            if gone && e.depth() == 0 {
                                let msg = format!(
                                    "watched root {at} does not exist: nothing to scan there \
                                     (create it, or remove it from the policy)"
                                );
                                tracing::warn!("scan: {msg}");
                                eprintln!("vigil: {msg}");
                            } else if !gone {
                                let what = match e.io_error() {
                                    Some(io) => io.to_string(),
                                    None => e.to_string(),
                                };
                                errors.add(format!(
                                    "{at}: {what}: not scanned (check its permissions; \
                                     the sensor needs CAP_DAC_READ_SEARCH or root)"
                                ));
                            }
                            continue;
                        }
                    };
                    if opts.cancelled() {
                        return errors;
                    }
                    let path = entry.path();
                    if !opts.only.is_empty() && !opts.only.iter().any(|o| path.starts_with(o)) {
                        continue;
                    }
                    if policy.ignored(Some(i), path) {
                        continue;
                    }
                    let is_dir = entry.file_type().is_dir();
                    if policy.root_for(path, Some(is_dir)) != Some(i) {
                        continue;
                    }
                    if job_tx.send((entry.into_path(), i)).is_err() {
                        return errors;
                    }
                }
            }
            errors
        });
        for _ in 0..opts.workers.max(1) {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                if opts.background {
                    lower_thread_priority();
                }
                for (path, root) in job_rx {
                    let seen = read_one(policy, opts, path, root);
                    if done_tx.send(seen).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        drop(job_rx);
        for seen in done_rx {
            each(seen);
        }
        errors = walker.join().unwrap_or_else(|_| WalkErrors {
            count: 1,
            names: vec!["the directory walk failed".into()],
        });
    });
    errors
}

fn read_one(policy: &Policy, opts: &WalkOptions, path: PathBuf, root: usize) -> Seen {
    let watch = policy.roots[root].path.display().to_string();
    let observed = Instant::now();
    let state = match read_state(&path) {
        Ok(mut s) => {
            if s.file_type == "file" && !opts.metadata_only {
                let h = hash_file(&path, s.size, opts.sha256.is_match(&path), 0, &opts.hash);
                s.hashes = h.hashes;
                s.hash_note = h.note;
            }
            Some(s)
        }
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("vigil: {}: {e}", path.display());
            }
            None
        }
    };
    Seen {
        path: path.to_string_lossy().into_owned(),
        watch,
        state,
        observed,
    }
}

/// What a comparison found: the action and the fields that differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub action: &'static str,
    pub fields_changed: Vec<String>,
}

/// Compares a baseline state with the current one. None: nothing to report.
///
/// One finding per path, named by its most significant change: `modified`
/// (type, size, content hash or link target; or, without comparable hashes,
/// mtime or inode), then `permissions_changed`, `owner_changed`,
/// `xattr_changed`, `timestamps_changed` (mtime, content verified equal) and
/// `attributes_changed` (the rest: ctime, inode, nlink). `fields_changed`
/// always lists every field that differs. Directories are not reported for
/// size, times and link count: those follow from their entries, which are
/// reported themselves.
pub fn compare(
    before: Option<&FileState>,
    after: Option<&FileState>,
    metadata_only: bool,
) -> Option<Finding> {
    let (b, a) = match (before, after) {
        (None, None) => return None,
        (None, Some(_)) => {
            return Some(Finding {
                action: "created",
                fields_changed: Vec::new(),
            })
        }
        (Some(_), None) => {
            return Some(Finding {
                action: "deleted",
                fields_changed: Vec::new(),
            })
        }
        (Some(b), Some(a)) => (b, a),
    };
    let fields = fields_changed(b, a);
    let has = |f: &str| fields.iter().any(|x| x == f);
    let dir = b.file_type == "dir" && a.file_type == "dir";
    if fields
        .iter()
        .all(|f| dir && matches!(f.as_str(), "size" | "mtime" | "ctime" | "nlink"))
    {
        return None;
    }
    // Both sides have a digest of the same kind: content was verified.
    let comparable = !metadata_only && b.hashes.keys().any(|k| a.hashes.contains_key(k));
    let content = has("type")
        || has("link_target")
        || has("hashes")
        || (!dir && has("size"))
        || (a.file_type == "file" && !comparable && (has("mtime") || has("inode")));
    let action = if content {
        "modified"
    } else if has("mode") {
        "permissions_changed"
    } else if has("uid") || has("gid") {
        "owner_changed"
    } else if has("xattrs") {
        "xattr_changed"
    } else if has("mtime") && !dir {
        "timestamps_changed"
    } else {
        "attributes_changed"
    };
    Some(Finding {
        action,
        fields_changed: fields,
    })
}

/// The process of a scan finding: none could be attributed.
pub fn unattributed_process() -> Arc<Process> {
    Arc::new(Process {
        comm: String::new(),
        start_time: "1970-01-01T00:00:00.000000000Z".into(),
        ..Default::default()
    })
}

/// A path and its two states, as a comparison saw them.
pub struct Subject {
    pub path: String,
    /// The watched root that covers it.
    pub watch: Option<String>,
    /// The baseline state.
    pub before: Option<FileState>,
    /// The state now; None when the file is gone.
    pub after: Option<FileState>,
}

/// The event for a scan finding (`source.tier = "scan"`), before rules.
/// `details` carries what the caller knows (`scan_id`, `unattributed`...).
pub fn finding_event(
    host: &str,
    subject: Subject,
    finding: Finding,
    process: Arc<Process>,
    details: crate::event::Details,
) -> Event {
    let Subject {
        path,
        watch,
        before,
        after,
    } = subject;
    let now = store::now();
    let current = after.as_ref().or(before.as_ref());
    Event::new(
        "file",
        finding.action,
        now,
        host,
        Body::File(Box::new(FileChange {
            path: path.into(),
            target_path: None,
            file: FileInfo {
                file_type: current.map_or("unknown", |s| s.file_type),
                inode: current.map(|s| s.inode),
                dev: None,
                path_truncated: false,
            },
            before: before.map(Box::new),
            after: after.map(Box::new),
            fields_changed: finding.fields_changed,
            diff: None,
            watch: watch.as_deref().map(crate::event::interned),
            package: None,
            process,
            source: Source {
                tier: "scan",
                syscall: "none",
                decided_by: "path",
            },
            details,
            related: Vec::new(),
        })),
    )
}

/// Progress on stderr: an indicatif spinner on a terminal, otherwise a plain
/// line every few seconds.
struct Progress {
    what: &'static str,
    bar: Option<indicatif::ProgressBar>,
    last: Instant,
    every: Duration,
    start: Instant,
    enabled: bool,
}

impl Progress {
    fn new(what: &'static str, enabled: bool) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix}: {pos} files, {msg} [{elapsed_precise}]",
                )
                .expect("static template"),
            );
            b.set_prefix(what);
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        let every = std::env::var("VIGIL_PROGRESS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_secs_f64);
        Progress {
            what,
            bar,
            last: Instant::now(),
            every,
            start: Instant::now(),
            enabled,
        }
    }

    fn tick(&mut self, s: &Summary) {
        if let Some(b) = &self.bar {
            b.set_position(s.files_seen);
            if s.files_seen.is_multiple_of(256) {
                b.set_message(format!(
                    "{} MiB hashed, {} changes",
                    s.bytes_hashed >> 20,
                    s.changes
                ));
            }
        } else if self.enabled && self.last.elapsed() >= self.every {
            self.last = Instant::now();
            eprintln!(
                "vigil: {}: {} files, {} MiB hashed, {} changes, {:.0} s",
                self.what,
                s.files_seen,
                s.bytes_hashed >> 20,
                s.changes,
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The ranges a walk covers, for finding baseline rows that were not seen:
/// each root in scope, narrowed to the `only` paths under it.
fn scopes(policy: &Policy, only: &[PathBuf]) -> Vec<(usize, PathBuf)> {
    let mut out = Vec::new();
    for (i, r) in policy.roots.iter().enumerate() {
        if only.is_empty() {
            out.push((i, r.path.clone()));
        }
        for o in only {
            if o.starts_with(&r.path) {
                out.push((i, o.clone()));
            } else if r.path.starts_with(o) {
                out.push((i, r.path.clone()));
            }
        }
    }
    out
}

/// Whether the baseline row `row`, not seen by the walk, was deleted (rather
/// than left out by a changed policy or hidden by an unreadable directory).
fn vanished(policy: &Policy, root: usize, row: &FileRow) -> bool {
    let is_dir = row.state.file_type == "dir";
    policy.root_for(Path::new(&row.path), Some(is_dir)) == Some(root)
        && !policy.ignored(Some(root), Path::new(&row.path))
        && std::fs::symlink_metadata(&row.path)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Commits every so often, so a long walk neither holds one huge
/// transaction nor pays for one per row.
struct Batch<'a> {
    store: &'a Store,
    n: u32,
    last: Instant,
    every: Duration,
}

impl<'a> Batch<'a> {
    fn new(store: &'a Store, every: Duration) -> Result<Batch<'a>> {
        store.begin()?;
        Ok(Batch {
            store,
            n: 0,
            last: Instant::now(),
            every,
        })
    }

    fn op(&mut self) -> Result<()> {
        self.n += 1;
        if self.n >= 4096 || self.last.elapsed() > self.every {
            self.store.commit()?;
            self.store.begin()?;
            self.n = 0;
            self.last = Instant::now();
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        Ok(self.store.commit()?)
    }
}

/// `vigil baseline init|update`: records the current state of every covered
/// entry, and removes rows of entries that are gone. `kind` is recorded in
/// `scans` (`init`, `update`).
pub fn baseline(store: &Store, policy: &Policy, opts: &WalkOptions, kind: &str) -> Result<Summary> {
    let paths: Vec<String> = scope_names(policy, &opts.only);
    let id = store.scan_started(kind, &paths, opts.metadata_only)?;
    let r = baseline_inner(store, policy, opts, kind, id);
    // Re-recording re-seals the rows; say which ones did not verify before.
    let bad = store.take_tampered();
    if !bad.is_empty() {
        let msg = tampered_message(store, &bad, &format!("baseline {kind} {id}, now re-sealed"));
        tracing::warn!("{msg}");
        eprintln!("vigil: warning: {msg}");
    }
    finish_scan(store, id, &r)?;
    r
}

fn baseline_inner(
    store: &Store,
    policy: &Policy,
    opts: &WalkOptions,
    kind: &str,
    id: i64,
) -> Result<Summary> {
    let mut sum = Summary {
        scan_id: id,
        ..Default::default()
    };
    let mut progress = Progress::new(
        if kind == "init" {
            "baseline"
        } else {
            "re-baseline"
        },
        opts.progress,
    );
    store.seen_reset()?;
    let mut batch = Batch::new(store, opts.commit_every)?;
    let mut failed: Option<anyhow::Error> = None;
    let now = store::now();
    let walk_errors = walk(policy, opts, |seen| {
        if failed.is_some() {
            return;
        }
        let r = (|| -> Result<()> {
            let Some(state) = seen.state else {
                return Ok(());
            };
            sum.files_seen += 1;
            if state.hashes.contains_key("blake3") {
                sum.bytes_hashed += state.size;
            }
            let old = store.get_file(&seen.path)?;
            let changed = compare(old.as_ref().map(|r| &r.state), Some(&state), false).is_some();
            if changed {
                sum.changes += u64::from(old.is_some());
            }
            store.put_file(&FileRow {
                path: seen.path.clone(),
                state,
                watch: Some(seen.watch),
                verified_at: now.clone(),
                updated_at: match (changed, old) {
                    (false, Some(o)) => o.updated_at,
                    _ => now.clone(),
                },
            })?;
            store.seen_add(&seen.path)?;
            batch.op()?;
            progress.tick(&sum);
            Ok(())
        })();
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    progress.finish();
    if let Some(e) = failed {
        let _ = store.commit();
        return Err(e);
    }
    sum.errors = walk_errors.count;
    sum.error_names = walk_errors.names;
    if opts.cancelled() {
        batch.finish()?;
        anyhow::bail!(INTERRUPTED);
    }
    for (root, scope) in scopes(policy, &opts.only) {
        for row in store.unseen_under(&scope)? {
            if vanished(policy, root, &row)
                || policy
                    .root_for(Path::new(&row.path), Some(row.state.file_type == "dir"))
                    .is_none()
            {
                store.delete_file(&row.path)?;
                sum.changes += 1;
                batch.op()?;
            }
        }
    }
    batch.finish()?;
    Ok(sum)
}

fn scope_names(policy: &Policy, only: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = scopes(policy, only)
        .into_iter()
        .map(|(_, p)| p.display().to_string())
        .collect();
    v.dedup();
    v
}

/// The message of a scan stopped by [`WalkOptions::cancel`].
pub const INTERRUPTED: &str = "interrupted: the sensor is stopping";

fn finish_scan(store: &Store, id: i64, r: &Result<Summary>) -> Result<()> {
    match r {
        Ok(s) => store.scan_finished(id, "ok", s.files_seen, s.changes, s.errors, None)?,
        Err(e) => {
            let msg = format!("{e:#}");
            let status = if msg == INTERRUPTED {
                "interrupted"
            } else {
                "failed"
            };
            store.scan_finished(id, status, 0, 0, 0, Some(&msg))?
        }
    }
    Ok(())
}

/// What a scan compares the files with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// The baseline: every difference since it was recorded or accepted is a
    /// finding (`vigil scan`, the scheduled scan; PCI DSS 11.5.2).
    Baseline,
    /// What the feed last reported about each path (its newest journal
    /// event, else the baseline): only changes the feed has not shown yet are
    /// findings, and each is unattributed (the catch-up scan after downtime,
    /// the rescan after the kernel dropped events).
    LastReported,
}

/// Which scan to run and what its findings say.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// Recorded in `scans.kind`: `scan`, `scheduled`, `catch-up`, `rescan`.
    pub kind: &'static str,
    pub against: Against,
    /// Added to every finding's `details` (the downtime window, the gap
    /// that triggered a rescan...).
    pub details: crate::event::Details,
}

impl ScanRequest {
    /// `vigil scan`: against the baseline.
    pub fn baseline(kind: &'static str) -> ScanRequest {
        ScanRequest {
            kind,
            against: Against::Baseline,
            details: crate::event::Details::new(),
        }
    }
}

/// Where findings go: an [`Emitter`] (the `vigil scan` command) or the
/// daemon's event pipeline. Either way each is numbered, evaluated by the
/// rules, sent to the sinks and appended to the journal.
pub trait Findings {
    fn host(&self) -> &str;
    /// `observed`: when the state the event reports was read (see
    /// [`Seen::observed`]).
    fn report(&mut self, store: &Store, ev: Event, observed: Instant) -> Result<()>;
    fn flush(&mut self) -> Result<()>;
}

impl Findings for Emitter {
    fn host(&self) -> &str {
        Emitter::host(self)
    }

    fn report(&mut self, store: &Store, ev: Event, _observed: Instant) -> Result<()> {
        let mut journaled = Ok(0);
        self.emit_with(ev, |ev| journaled = store.journal(ev))?;
        journaled?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Emitter::flush(self)
    }
}

/// Compares every covered entry with the baseline (or with what the feed last
/// reported, see [`Against`]) and reports a finding per difference.
pub fn scan(
    store: &Store,
    policy: &Policy,
    out: &mut dyn Findings,
    opts: &WalkOptions,
    req: &ScanRequest,
) -> Result<Summary> {
    if store.file_count()? == 0 && store.registry_count()? == 0 {
        anyhow::bail!(
            "{}: holds no baseline yet: run `vigil baseline init` first",
            store.path().display()
        );
    }
    let paths = scope_names(policy, &opts.only);
    let id = store.scan_started(req.kind, &paths, opts.metadata_only)?;
    let r = scan_inner(store, policy, out, opts, req, id);
    let tampered = report_tampered(store, out, &format!("{} scan {id}", req.kind));
    finish_scan(store, id, &r)?;
    out.flush()?;
    tampered?;
    r
}

/// How many tampered rows a `baseline_tampered` event names.
const MAX_TAMPERED_NAMES: usize = 50;

/// Reports the baseline rows read since the last call whose MAC failed
/// (`Store::take_tampered`) as one `sensor`/`baseline_tampered` event (rule
/// `baseline-tampered`, critical), naming them. Returns how many there were.
pub fn report_tampered(store: &Store, out: &mut dyn Findings, during: &str) -> Result<usize> {
    let bad = store.take_tampered();
    if bad.is_empty() {
        return Ok(0);
    }
    let ev = crate::pipeline::emit::sensor_event(
        out.host(),
        "baseline_tampered",
        crate::event::SensorInfo {
            message: Some(tampered_message(store, &bad, during)),
            ..Default::default()
        },
    );
    out.report(store, ev, Instant::now())?;
    Ok(bad.len())
}

/// What `baseline_tampered` events and `vigil baseline verify` say.
pub fn tampered_message(store: &Store, bad: &[store::Tampered], during: &str) -> String {
    let names: Vec<String> = bad
        .iter()
        .take(MAX_TAMPERED_NAMES)
        .map(|t| {
            let why = match t.reason {
                "missing" => "no MAC",
                _ => "MAC mismatch",
            };
            format!("{} ({why})", t.path)
        })
        .collect();
    format!(
        "{}: {} baseline rows fail their MAC under the host key ({during}): {}{}; \
         the store was changed outside Vigil (or the rows predate row MACs, or the \
         host key was replaced); `vigil baseline verify` lists them all, `vigil baseline \
         update` re-records and re-seals them once investigated",
        store.path().display(),
        bad.len(),
        names.join(", "),
        if bad.len() > names.len() { ", ..." } else { "" }
    )
}

/// The state a path is compared with, and what the finding says about it.
struct Reference {
    state: Option<FileState>,
    /// Since when a realtime event would have covered the change.
    since: Option<String>,
    /// The journal entry the state comes from (LastReported).
    reported_seq: Option<i64>,
    /// The state is the baseline's: a match verifies the row.
    is_baseline: bool,
}

fn reference(
    store: &Store,
    against: Against,
    path: &str,
    row: Option<&FileRow>,
    last_baseline: &Option<String>,
) -> Result<Reference> {
    let baseline = Reference {
        state: row.map(|r| r.state.clone()),
        since: row.map(|r| r.updated_at.clone()).or(last_baseline.clone()),
        reported_seq: None,
        is_baseline: true,
    };
    if against == Against::Baseline {
        return Ok(baseline);
    }
    match store.last_reported(path)? {
        // An accept after the event re-blesses the baseline.
        Some(r) if row.is_none_or(|row| r.time > row.updated_at) => Ok(Reference {
            state: r.state,
            since: Some(r.time),
            reported_seq: Some(r.seq),
            is_baseline: false,
        }),
        _ => Ok(baseline),
    }
}

fn scan_inner(
    store: &Store,
    policy: &Policy,
    out: &mut dyn Findings,
    opts: &WalkOptions,
    req: &ScanRequest,
    id: i64,
) -> Result<Summary> {
    let mut sum = Summary {
        scan_id: id,
        ..Default::default()
    };
    let mut progress = Progress::new("scan", opts.progress);
    let process = unattributed_process();
    let last_baseline = store.last_baseline()?;
    store.seen_reset()?;
    let mut batch = Batch::new(store, opts.commit_every)?;
    let mut failed: Option<anyhow::Error> = None;
    let now = store::now();
    let host = out.host().to_string();
    let report = |out: &mut dyn Findings,
                  sum: &mut Summary,
                  path: &str,
                  watch: Option<String>,
                  reference: Reference,
                  after: Option<FileState>,
                  finding: Finding,
                  append_only: Option<Verdict>,
                  observed: Instant|
     -> Result<()> {
        // Against the baseline, the realtime sensor saw the change if the
        // journal has a non-scan event on the path since the baseline
        // recorded it. Against the last report, nobody did: that is what
        // makes it a finding.
        let realtime = match (req.against, &reference.since) {
            (Against::Baseline, Some(t)) => store.realtime_event_since(path, t)?,
            _ => None,
        };
        let mut details = req.details.clone();
        details.insert("scan_id", id.into());
        details.insert("scan_kind", req.kind.into());
        details.insert("unattributed", realtime.is_none().into());
        if let Some(seq) = realtime {
            details.insert("realtime_seq", seq.into());
        }
        if let Some(seq) = reference.reported_seq {
            details.insert("last_reported_seq", seq.into());
        }
        if let Some(t) = &reference.since {
            let key = if reference.is_baseline {
                "baseline_time"
            } else {
                "last_reported_time"
            };
            details.insert(key, t.clone().into());
        }
        if let (Some(b), Some(a)) = (&reference.state, &after) {
            if b.inode != a.inode && a.file_type == "file" {
                details.insert("replaced", true.into());
            }
        }
        if let Some(v) = append_only {
            details.insert("append_only", v.as_str().into());
        }
        sum.changes += 1;
        sum.unattributed += u64::from(realtime.is_none());
        let subject = Subject {
            path: path.to_string(),
            watch,
            before: reference.state,
            after,
        };
        out.report(
            store,
            finding_event(&host, subject, finding, process.clone(), details),
            observed,
        )
    };
    let walk_errors = walk(policy, opts, |seen| {
        if failed.is_some() {
            return;
        }
        let r = (|| -> Result<()> {
            let Some(mut state) = seen.state else {
                return Ok(());
            };
            sum.files_seen += 1;
            if state.hashes.contains_key("blake3") {
                sum.bytes_hashed += state.size;
            }
            store.seen_add(&seen.path)?;
            let row = store.get_file(&seen.path)?;
            let refer = reference(store, req.against, &seen.path, row.as_ref(), &last_baseline)?;
            if let Some(b) = &refer.state {
                // Digests are not recomputed with --metadata-only: carry the
                // reference's over when the stat says the bytes are the same.
                if opts.metadata_only && same_content(b, &state) {
                    state.hashes = b.hashes.clone();
                    state.hash_note = b.hash_note.clone();
                }
            }
            match compare(refer.state.as_ref(), Some(&state), opts.metadata_only) {
                Some(f) => {
                    let verdict = append_only_verdict(policy, opts, &seen.path, &refer, &state);
                    report(
                        out,
                        &mut sum,
                        &seen.path,
                        Some(seen.watch),
                        refer,
                        Some(state),
                        f,
                        verdict,
                        seen.observed,
                    )?
                }
                None if refer.is_baseline => store.mark_verified(&seen.path, &now)?,
                None => {}
            }
            batch.op()?;
            progress.tick(&sum);
            Ok(())
        })();
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    progress.finish();
    if let Some(e) = failed {
        let _ = store.commit();
        return Err(e);
    }
    sum.errors = walk_errors.count;
    sum.error_names = walk_errors.names;
    if opts.cancelled() {
        batch.finish()?;
        anyhow::bail!(INTERRUPTED);
    }
    let mut deleted = std::collections::BTreeSet::new();
    for (root, scope) in scopes(policy, &opts.only) {
        for row in store.unseen_under(&scope)? {
            let observed = Instant::now();
            if deleted.contains(&row.path) || !vanished(policy, root, &row) {
                continue;
            }
            deleted.insert(row.path.clone());
            let refer = reference(store, req.against, &row.path, Some(&row), &last_baseline)?;
            let Some(finding) = compare(refer.state.as_ref(), None, opts.metadata_only) else {
                continue;
            };
            report(
                out,
                &mut sum,
                &row.path,
                row.watch.clone(),
                refer,
                None,
                finding,
                None,
                observed,
            )?;
            batch.op()?;
        }
    }
    if req.against == Against::LastReported {
        // Created after the baseline, reported, and gone since.
        for (root, scope) in scopes(policy, &opts.only) {
            for path in store.reported_unseen_under(&scope)? {
                let p = Path::new(&path);
                let observed = Instant::now();
                let gone = std::fs::symlink_metadata(p)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                if deleted.contains(&path)
                    || !gone
                    || policy.ignored(Some(root), p)
                    || policy.root_for(p, None).is_none_or(|r| r != root)
                {
                    continue;
                }
                let refer = reference(store, req.against, &path, None, &last_baseline)?;
                let Some(finding) = compare(refer.state.as_ref(), None, opts.metadata_only) else {
                    continue;
                };
                deleted.insert(path.clone());
                let watch = Some(policy.roots[root].path.display().to_string());
                report(
                    out, &mut sum, &path, watch, refer, None, finding, None, observed,
                )?;
                batch.op()?;
            }
        }
    }
    batch.finish()?;
    Ok(sum)
}

/// For an append-only file, whether it only grew since `reference` (its
/// leading bytes are hashed again; also in metadata-only scans).
fn append_only_verdict(
    policy: &Policy,
    opts: &WalkOptions,
    path: &str,
    reference: &Reference,
    now: &FileState,
) -> Option<Verdict> {
    if !policy.config.append_only.is_match(path) {
        return None;
    }
    let r = reference.state.as_ref()?;
    let prefix = append_only::prefix_len(r).filter(|_| now.inode == r.inode && now.size >= r.size);
    let digest = prefix.and_then(|n| {
        hash_file_with_prefix(Path::new(path), now.size, false, 0, &opts.hash, Some(n))
            .prefix_blake3
    });
    append_only::judge(r, now, digest.as_deref())
}

/// What `vigil baseline accept` blessed.
#[derive(Debug)]
pub struct Accepted {
    pub id: i64,
    pub path: String,
    pub journal_seq: Option<i64>,
    pub before: Option<FileState>,
    /// The state now in the baseline; None: the row was removed (a deletion
    /// was accepted).
    pub after: Option<FileState>,
    /// The file no longer matches the accepted change (it changed again).
    pub changed_since: bool,
}

/// `vigil baseline accept PATH|CHANGE-ID --reason TEXT`.
///
/// A path: its current state (read and hashed now) becomes the baseline, or
/// its row is removed if it no longer exists. A change id (a `journal.seq`):
/// the state that change recorded (`after`) becomes the baseline, so a later
/// change the acceptor has not seen is still reported by the next scan.
/// Either way `accepts` records who, when, why, and the states before and after.
pub fn accept(
    store: &Store,
    policy: &Policy,
    opts: &WalkOptions,
    target: &str,
    reason: &str,
    who: &store::Who,
) -> Result<Accepted> {
    if reason.trim().is_empty() {
        anyhow::bail!(
            "--reason must say why the change is accepted (a change ticket, for example)"
        );
    }
    let (path, journal_seq, wanted) = match target.parse::<i64>() {
        Ok(seq) => {
            let (_, ev) = store.journal_entry(seq)?.with_context(|| {
                format!("{}: no change {seq} in the journal", store.path().display())
            })?;
            if ev.get("kind").and_then(|k| k.as_str()) != Some("file") {
                anyhow::bail!("change {seq} is not a file change");
            }
            let path = ev
                .get("target_path")
                .or_else(|| ev.get("path"))
                .and_then(|p| p.as_str())
                .context("the journal entry has no path")?
                .to_string();
            let after = ev.get("after").and_then(store::state_from_json);
            (path, Some(seq), Some(after))
        }
        Err(_) => {
            let p = Path::new(target);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir()?.join(p)
            };
            (
                crate::config::normalize(&abs).display().to_string(),
                None,
                None,
            )
        }
    };
    let before = store.get_file(&path)?;
    let current = match read_state(Path::new(&path)) {
        Ok(mut s) => {
            if s.file_type == "file" {
                let h = hash_file(
                    Path::new(&path),
                    s.size,
                    opts.sha256.is_match(&path),
                    0,
                    &opts.hash,
                );
                s.hashes = h.hashes;
                s.hash_note = h.note;
            }
            Some(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("{path}: {e}"),
    };
    let root = policy.root_for(
        Path::new(&path),
        current.as_ref().map(|s| s.file_type == "dir"),
    );
    if root.is_none() && before.is_none() {
        anyhow::bail!("{path}: not covered by the policy's watches (and not in the baseline)");
    }
    let (after, changed_since) = match wanted {
        Some(after) => {
            let changed = compare(after.as_ref(), current.as_ref(), false).is_some();
            (after, changed)
        }
        None => (current, false),
    };
    if before.is_none() && after.is_none() {
        anyhow::bail!("{path}: neither in the baseline nor on disk: nothing to accept");
    }
    let now = store::now();
    store.begin()?;
    match &after {
        Some(state) => store.put_file(&FileRow {
            path: path.clone(),
            state: state.clone(),
            watch: root
                .map(|r| policy.roots[r].path.display().to_string())
                .or_else(|| before.as_ref().and_then(|b| b.watch.clone())),
            verified_at: now.clone(),
            updated_at: now,
        })?,
        None => {
            store.delete_file(&path)?;
        }
    }
    let before = before.map(|r| r.state);
    let id = store.record_accept(
        who,
        &path,
        journal_seq,
        reason,
        before.as_ref(),
        after.as_ref(),
    )?;
    store.commit()?;
    Ok(Accepted {
        id,
        path,
        journal_seq,
        before,
        after,
        changed_since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> FileState {
        let mut s = FileState {
            file_type: "file",
            size: 3,
            mode: "0644".into(),
            mtime: "m1".into(),
            ctime: "c1".into(),
            inode: 1,
            nlink: 1,
            ..Default::default()
        };
        s.hashes.insert("blake3".into(), "aa".into());
        s
    }

    fn action(b: &FileState, a: &FileState, meta: bool) -> Option<&'static str> {
        compare(Some(b), Some(a), meta).map(|f| f.action)
    }

    #[test]
    fn findings_are_named_by_their_most_significant_change() {
        let b = st();
        assert_eq!(action(&b, &b, false), None);
        assert_eq!(compare(None, Some(&b), false).unwrap().action, "created");
        assert_eq!(compare(Some(&b), None, false).unwrap().action, "deleted");
        // Timestomp: same size and mtime, new bytes, new ctime.
        let mut a = b.clone();
        a.ctime = "c2".into();
        a.hashes.insert("blake3".into(), "bb".into());
        let f = compare(Some(&b), Some(&a), false).unwrap();
        assert_eq!(
            (f.action, f.fields_changed),
            ("modified", vec!["ctime".into(), "hashes".into()])
        );
        // Without hashes the same change is only an attribute change.
        let mut m = a.clone();
        m.hashes.clear();
        assert_eq!(action(&b, &m, true), Some("attributes_changed"));
        let mut a = b.clone();
        a.mode = "4755".into();
        a.uid = 5;
        a.ctime = "c2".into();
        assert_eq!(action(&b, &a, false), Some("permissions_changed"));
        a.mode = b.mode.clone();
        assert_eq!(action(&b, &a, false), Some("owner_changed"));
        let mut a = b.clone();
        a.mtime = "m0".into();
        assert_eq!(action(&b, &a, false), Some("timestamps_changed"));
        assert_eq!(
            action(&b, &a, true),
            Some("modified"),
            "unverified mtime change"
        );
        let mut a = b.clone();
        a.xattrs.insert("security.capability".into(), "01".into());
        assert_eq!(action(&b, &a, false), Some("xattr_changed"));
    }

    #[test]
    fn directories_are_not_reported_for_their_entries() {
        let mut b = st();
        b.file_type = "dir";
        b.hashes.clear();
        let mut a = b.clone();
        a.mtime = "m2".into();
        a.ctime = "c2".into();
        a.size = 4096;
        a.nlink = 3;
        assert_eq!(action(&b, &a, false), None);
        a.mode = "0777".into();
        assert_eq!(action(&b, &a, false), Some("permissions_changed"));
    }
}
