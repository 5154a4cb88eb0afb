//! The shared half of the data flow: coalesce → hash → evaluate → emit.
//!
//! Sources (the eBPF ring buffer, ETW, scans) hand raw changes to
//! [`Pipeline::push`], which folds them ([`coalesce`]) on the source's own
//! thread, while each change is still in that core's cache. One thread
//! (settle) owns the order of events: it hands hashing to a worker pool
//! ([`enrich`]), and releases events in arrival order once each event's
//! `after` state is back, so a file's events never overtake each other.
//! `before` is the last state this pipeline released for the path. Released
//! events go, in that order, to the output thread (`output`: labels, rules,
//! rendering, sinks).
pub mod coalesce;
pub mod emit;
pub mod enrich;
mod output;
pub mod seed;

use crate::event::{Event, FileState};
use crate::filestate::fields_changed;
use crate::hash::HashPolicy;
use anyhow::Result;
use coalesce::{Change, Coalescer, Timing};
use crossbeam_channel::{select, Receiver, Sender};
use emit::Emitter;
use enrich::{Done, Job};
use globset::GlobSet;
// foldhash (randomly seeded): SipHash of the path keys was most of each map operation.
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the shared stages.
pub struct Settings {
    pub timing: Timing,
    pub hash: HashPolicy,
    pub hash_workers: usize,
    /// Paths also hashed with SHA-256.
    pub sha256: GlobSet,
    /// Paths whose small text content is diffed.
    pub diff: GlobSet,
    pub diff_max_bytes: u64,
    /// Paths never diffed (and whose content is never kept).
    pub secret: GlobSet,
    /// Watched roots (and whether recursive), read at start for diffable files.
    pub seed_roots: Vec<(PathBuf, bool)>,
    /// Files that may only grow (`details.append_only` on their changes).
    pub append_only: GlobSet,
    /// The software inventory and package labelling stage; None: off.
    pub inventory: Option<crate::inventory::Settings>,
}

impl Settings {
    pub fn from_policy(p: &crate::policy::Policy) -> Settings {
        let c = &p.config;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            timing: Timing {
                rename_window: Duration::from_millis(c.coalesce.window_ms),
                max_hold: Duration::from_millis(c.coalesce.max_hold_ms),
            },
            hash: HashPolicy {
                max_size: c.hash.max_size,
            },
            hash_workers: c.hash.workers.unwrap_or(cpus.min(4)),
            sha256: c.hash.sha256.clone(),
            diff: c.diff.paths.clone(),
            diff_max_bytes: c.diff.max_bytes,
            secret: c.diff.secret.clone(),
            seed_roots: p
                .roots
                .iter()
                .map(|r| (r.path.clone(), r.recursive))
                .collect(),
            append_only: c.append_only.clone(),
            inventory: c.inventory.enabled.then(|| {
                let status = &c.inventory.dpkg_status;
                crate::inventory::Settings {
                    // Only a watched database is seen changing.
                    inventory: p.root_for(status, Some(false)).is_some(),
                    // dpkg's file lists: not on Windows.
                    label: !cfg!(windows),
                    checksum: c.inventory.checksum,
                    // On Linux the D-Bus watcher reports for itself, on
                    // Windows the SCM tracker (inventory::win).
                    daemons: c.inventory.daemons && !cfg!(any(target_os = "linux", windows)),
                    dpkg_status: status.clone(),
                    managers: c.inventory.package_managers.clone(),
                    scope: p.roots.iter().map(|r| r.path.clone()).collect(),
                    max_size: c.hash.max_size,
                    // Only a watched database is seen changing.
                    rpm_dbpath: Some(c.inventory.rpm_dbpath.clone())
                        .filter(|d| p.root_for(&d.join("rpmdb.sqlite"), Some(false)).is_some()),
                }
            }),
        }
    }
}

/// What sources send.
pub enum Input {
    /// A raw change: [`Pipeline::push`] folds it into an [`Input::Event`].
    Change(Change),
    /// A file event as the coalescer completed it.
    Event(Event),
    /// A sensor event (start, gap, error...): emitted in order, unchanged.
    Sensor(Event),
    /// A scan finding, complete with its before and after: emitted in order,
    /// and its `after` becomes the path's known state. `observed` is when
    /// the scan read the file: a finding older than the newest realtime
    /// event on its path is superseded by it (see [`Settle::superseded`]).
    Finding { ev: Event, observed: Instant },
    /// Emit what is held, then the given stop event, and end.
    Stop(Event),
}

/// The source's end of the pipeline. Raw changes are folded here, on the
/// source's thread: handing each one to the settle thread first cost a
/// cache miss per change there (most of its time), for events half as many.
pub struct Pipeline {
    tx: Sender<Vec<Input>>,
    thread: std::thread::JoinHandle<Result<()>>,
    coalescer: Coalescer,
    /// Inputs not yet handed over (sent in batches).
    pending: Vec<Input>,
    /// What the coalescer completed, kept from change to change.
    complete: Vec<Event>,
    /// The time the coalescer goes by, read when a batch starts.
    now: Instant,
}

/// Inputs handed over at once: one channel operation (and one wake-up of the
/// settle thread) per batch, not per change.
const BATCH: usize = 256;

impl Pipeline {
    pub fn start(settings: Settings, emitter: Emitter) -> Result<Pipeline> {
        // Inputs come in batches of up to a few hundred.
        let (tx, rx) = crossbeam_channel::bounded(64);
        let timing = settings.timing;
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let (jobs, workers) =
            enrich::spawn_pool(settings.hash_workers, settings.hash.clone(), done_tx)?;
        let (seed_tx, seed_rx) = crossbeam_channel::bounded(1);
        let scope = seed::Scope {
            roots: settings.seed_roots.clone(),
            diff: settings.diff.clone(),
            secret: settings.secret.clone(),
            sha256: settings.sha256.clone(),
            max_bytes: settings.diff_max_bytes,
            hash: settings.hash.clone(),
            append_only: settings.append_only.clone(),
        };
        std::thread::Builder::new()
            .name("vigil-seed".into())
            .spawn(move || {
                let _ = seed_tx.send(seed::read(&scope));
            })?;
        let thread = std::thread::Builder::new()
            .name("vigil-settle".into())
            .spawn(move || {
                let mut s = Settle::new(settings, emitter, jobs)?;
                let r = s.run(rx, done_rx, seed_rx);
                drop(s);
                for w in workers {
                    let _ = w.join();
                }
                r
            })?;
        Ok(Pipeline {
            tx,
            thread,
            coalescer: Coalescer::new(timing),
            pending: Vec::with_capacity(BATCH),
            complete: Vec::new(),
            now: Instant::now(),
        })
    }

    /// Takes one input, folding raw changes; hands over a full batch.
    /// Call [`Pipeline::flush`] before waiting for more input.
    pub fn push(&mut self, input: Input) -> Result<()> {
        if self.pending.is_empty() {
            self.now = Instant::now();
        }
        match input {
            Input::Change(c) => {
                self.coalescer.push(c, self.now, &mut self.complete);
                self.pending
                    .extend(self.complete.drain(..).map(Input::Event));
            }
            Input::Stop(ev) => {
                // What is held is complete: it goes out before the stop event.
                self.pending
                    .extend(self.coalescer.flush().into_iter().map(Input::Event));
                self.pending.push(Input::Stop(ev));
            }
            other => self.pending.push(other),
        }
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands over what is pending, with the held sessions whose wait is
    /// over; blocks while the pipeline is full (backpressure).
    pub fn flush(&mut self) -> Result<()> {
        let due = self.coalescer.expire(Instant::now());
        self.pending.extend(due.into_iter().map(Input::Event));
        if self.pending.is_empty() {
            return Ok(());
        }
        // Sized for a full batch: growing it from empty copies it 8 times.
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
        self.tx
            .send(batch)
            .map_err(|_| anyhow::anyhow!("the pipeline thread stopped"))
    }

    /// [`Pipeline::push`] each input, then [`Pipeline::flush`].
    pub fn send(&mut self, batch: Vec<Input>) -> Result<()> {
        for input in batch {
            self.push(input)?;
        }
        self.flush()
    }

    /// When a held session is due: the source calls [`Pipeline::flush`] by
    /// then even if no input came.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.coalescer.next_deadline()
    }

    /// Another way in, for a second producer (the daemon's scans). Sends fail
    /// once the pipeline has stopped.
    pub fn sender(&self) -> Sender<Vec<Input>> {
        self.tx.clone()
    }

    /// Waits for the pipeline to finish after [`Input::Stop`].
    pub fn join(self) -> Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?
    }
}

/// An event in the settle queue. Its `after` state is written into the
/// event as soon as it is read; what else is kept stays small, since each
/// pending event is moved in and out of the queue.
struct Pending {
    ev: Event,
    /// Waiting for the worker pool.
    waiting: bool,
    content: Option<Vec<u8>>,
    /// A scan finding: before and after are filled in already.
    complete: bool,
    /// Append-only files only.
    append: Option<Box<AppendCheck>>,
}

impl Pending {
    fn new(ev: Event, complete: bool) -> Pending {
        Pending {
            ev,
            waiting: false,
            content: None,
            complete,
            append: None,
        }
    }

    fn set_after(&mut self, after: Option<FileState>) {
        if let Some(f) = self.ev.file_mut() {
            f.after = after.map(Box::new);
        }
    }
}

/// An append-only file's change: the state it is judged against, and the
/// digest of as many leading bytes of the file now.
struct AppendCheck {
    reference: FileState,
    prefix_blake3: Option<String>,
}

struct Settle {
    s: Settings,
    /// To the output stage; None once stopped.
    out: Option<Sender<Vec<Event>>>,
    output: Option<std::thread::JoinHandle<Result<()>>>,
    /// Finished events not yet handed to the output stage.
    finished: Vec<Event>,
    jobs: Option<Sender<Job>>,
    /// Events in arrival order; `first_id` is the id of the front.
    queue: VecDeque<Pending>,
    first_id: u64,
    /// Last emitted state per path: the next event's `before`.
    states: HashMap<Arc<str>, FileState>,
    /// Last seen content of diffable paths.
    contents: HashMap<Arc<str>, Vec<u8>>,
    /// When each path's newest realtime event was queued (its state is read
    /// at or after that moment). Pruned of entries older than
    /// [`CHANGED_AT_KEEP`].
    changed_at: HashMap<Arc<str>, Instant>,
    /// Paths mapped shared and writable whose write session has not closed:
    /// their digests are never reused. Stores through a mapping need not move
    /// mtime or ctime (tmpfs never does; other file systems only at the first
    /// write fault after writeback), so "same metadata" does not mean "same
    /// content" there (vm-test found a stale hash on tmpfs).
    mapped: HashSet<Arc<str>>,
    last_prune: Instant,
    /// Findings dropped as superseded, per scan id, until the scan's
    /// `scan_finished` passes and carries the count.
    superseded: HashMap<i64, u64>,
    /// Per input of the batch in hand: whether a later input deletes the
    /// path its state would be read from ([`Settle::mark_deleted_later`]).
    deleted_later: Vec<bool>,
    /// The paths deleted further on in that batch (kept for its capacity).
    deleted: HashSet<Arc<str>>,
}

/// How long a realtime event can supersede a scan finding: far longer than
/// a finding waits between the scan's read and the pipeline.
const CHANGED_AT_KEEP: Duration = Duration::from_secs(600);
/// Past this many paths in `changed_at`, entries are kept [`CHANGED_AT_MIN`].
const CHANGED_AT_MAX: usize = 1 << 18;
const CHANGED_AT_MIN: Duration = Duration::from_secs(60);

/// The most events the settle stage holds at once: queued in arrival order,
/// being hashed, or hashed and waiting for an earlier event. Enough to keep
/// the hash workers busy; each costs a few KiB (the event, its raw steps,
/// its state).
pub const MAX_PENDING: usize = 4096;

/// The path a file event's `after` state is read from: the target of a
/// rename or link, the path otherwise; none for a deletion.
fn state_path(ev: &Event) -> Option<&Arc<str>> {
    let f = ev.file()?;
    match ev.action {
        "deleted" => None,
        "renamed" | "exchanged" | "linked" => f.target_path.as_ref(),
        _ => Some(&f.path),
    }
}

impl Settle {
    /// Starts the output stage's thread behind it.
    fn new(s: Settings, emitter: Emitter, jobs: Sender<Job>) -> Result<Settle> {
        // A batch is what one turn of the loop finished: up to MAX_PENDING
        // events, usually one input batch's worth. Few are queued, so a slow
        // sink holds back settle (and, through it, the sources).
        let (out, rx) = crossbeam_channel::bounded(4);
        let stage = output::Output::new(emitter, s.inventory.clone());
        let output = std::thread::Builder::new()
            .name("vigil-output".into())
            .spawn(move || stage.run(rx))?;
        Ok(Settle {
            out: Some(out),
            output: Some(output),
            finished: Vec::new(),
            s,
            jobs: Some(jobs),
            queue: VecDeque::new(),
            first_id: 0,
            states: HashMap::new(),
            contents: HashMap::new(),
            changed_at: HashMap::new(),
            mapped: Default::default(),
            last_prune: Instant::now(),
            superseded: HashMap::new(),
            deleted_later: Vec::new(),
            deleted: Default::default(),
        })
    }

    fn run(
        &mut self,
        rx: Receiver<Vec<Input>>,
        done: Receiver<Done>,
        mut seed: Receiver<seed::Seed>,
    ) -> Result<()> {
        let full = crossbeam_channel::never();
        let mut last_report = Instant::now();
        loop {
            // Backpressure: with MAX_PENDING events held, only finished
            // hashes are taken until the front moves. The sources then
            // block, the ring buffer fills and the kernel counts what it
            // drops (a gap event and a rescan), instead of this queue and
            // the workers' results growing without bound under a flood.
            let input = if self.queue.len() >= MAX_PENDING {
                &full
            } else {
                &rx
            };
            select! {
                recv(input) -> batch => {
                    let batch = batch.map_err(|_| anyhow::anyhow!("the source stopped without a stop event"))?;
                    self.mark_deleted_later(&batch);
                    for (i, input) in batch.into_iter().enumerate() {
                        let gone = self.deleted_later[i];
                        match input {
                            Input::Event(ev) => self.enqueue(ev, gone)?,
                            // Only from a `Pipeline::sender`, which does not fold.
                            Input::Change(c) => self.enqueue(c.ev, gone)?,
                            Input::Sensor(mut ev) => {
                                self.count_superseded(&mut ev);
                                self.enqueue(ev, false)?
                            }
                            Input::Finding { ev, observed } => {
                                if !self.superseded(&ev, observed) {
                                    self.queue.push_back(Pending::new(ev, true));
                                    self.emit_ready()?;
                                }
                            }
                            Input::Stop(ev) => return self.stop(ev, &done),
                        }
                    }
                }
                recv(done) -> d => self.complete(d?)?,
                recv(seed) -> s => {
                    // Delivered once; a finished channel would always be ready.
                    seed = crossbeam_channel::never();
                    // What events have shown since is newer than the seed.
                    if let Ok(s) = s {
                        for (path, st) in s.states {
                            self.states.entry(path.into()).or_insert(st);
                        }
                        for (path, c) in s.contents {
                            self.contents.entry(path.into()).or_insert(c);
                        }
                    }
                }
                default(Duration::from_millis(100)) => {}
            }
            // Past CHANGED_AT_MAX paths (a flood of distinct names), entries
            // are kept for CHANGED_AT_MIN only: far longer than a finding
            // waits in a queue bounded by MAX_PENDING.
            let keep = if self.changed_at.len() > CHANGED_AT_MAX {
                CHANGED_AT_MIN
            } else {
                CHANGED_AT_KEEP
            };
            if self.last_prune.elapsed() > keep {
                self.last_prune = Instant::now();
                self.changed_at.retain(|_, t| t.elapsed() < keep);
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                last_report = Instant::now();
                tracing::debug!(
                    target: "vigil::load",
                    input = rx.len(),
                    queued = self.queue.len(),
                    hashed = done.len(),
                    states = self.states.len(),
                    changed_at = self.changed_at.len(),
                    "settle stage"
                );
            }
            self.hand_over()?;
        }
    }

    /// Emits what is held and in flight, then `stop`, and closes the sinks.
    fn stop(&mut self, stop: Event, done: &Receiver<Done>) -> Result<()> {
        self.enqueue(stop, false)?;
        self.jobs = None;
        while !self.queue.is_empty() {
            let d = done.recv()?;
            self.complete(d)?;
        }
        self.hand_over()?;
        // Hanging up tells the output stage to close the sinks.
        self.out = None;
        self.join_output()
    }

    /// Hands the finished events to the output stage. If it has stopped,
    /// its error is the one to report.
    fn hand_over(&mut self) -> Result<()> {
        if self.finished.is_empty() {
            return Ok(());
        }
        // Sized like this one: growing a vector of events by doubling copies
        // them several times (they are a few hundred bytes each).
        let room = self.finished.len();
        let batch = std::mem::replace(&mut self.finished, Vec::with_capacity(room));
        let out = self.out.as_ref().expect("open until stop");
        if out.send(batch).is_err() {
            self.join_output()?;
            anyhow::bail!("the output stage stopped");
        }
        Ok(())
    }

    fn join_output(&mut self) -> Result<()> {
        match self.output.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("the output stage panicked"),
            None => Ok(()),
        }
    }

    /// Whether `ev` (on `path`) belongs to a shared writable mapping's session,
    /// keeping [`Settle::mapped`] in step: a `mapped_writable` change opens it,
    /// the session's close (or the file's deletion) ends it.
    fn mapped_session(&mut self, ev: &Event, path: &str) -> bool {
        let Some(f) = ev.file() else {
            return false;
        };
        let actions = std::iter::once(ev.action).chain(f.related.iter().map(|r| r.action));
        let (mut opened, mut closed) = (false, false);
        for a in actions {
            match a {
                "mapped_writable" => opened = true,
                "closed_after_write" | "deleted" => closed = true,
                _ => {}
            }
        }
        let was = self.mapped.contains(path);
        if closed {
            self.mapped.remove(path);
        } else if opened {
            self.mapped.insert(path.into());
        }
        was || opened
    }

    /// Fills [`Settle::deleted_later`] for `batch`: walking it backwards,
    /// an event whose state would be read from a path that a later event of
    /// the batch deletes. That deletion has already happened (Linux reports
    /// it at the syscall's exit, Windows at the close of the handle that
    /// set it), so the read could only fail, or,
    /// were the path created again since, find another file's state: the
    /// event's `after` is none without a `statx`. A flood of short-lived
    /// files (temporary files, the churn benchmark) pays one read less each.
    fn mark_deleted_later(&mut self, batch: &[Input]) {
        self.deleted_later.clear();
        self.deleted_later.resize(batch.len(), false);
        self.deleted.clear();
        for (i, input) in batch.iter().enumerate().rev() {
            let ev = match input {
                Input::Event(ev) => ev,
                Input::Change(c) => &c.ev,
                _ => continue,
            };
            if ev.action == "deleted" {
                if let Some(f) = ev.file() {
                    self.deleted.insert(f.path.clone());
                }
            } else if !self.deleted.is_empty() {
                self.deleted_later[i] = state_path(ev).is_some_and(|p| self.deleted.contains(p));
            }
        }
    }

    /// Queues an event; file events first get their `after` state read,
    /// unless `deleted_later` (see [`Settle::mark_deleted_later`]).
    fn enqueue(&mut self, ev: Event, deleted_later: bool) -> Result<()> {
        let id = self.first_id + self.queue.len() as u64;
        let mut pending = Pending::new(ev, false);
        let path = state_path(&pending.ev).cloned();
        if let Some(f) = pending.ev.file() {
            let now = Instant::now();
            self.changed_at.insert(f.path.clone(), now);
            if let Some(t) = &f.target_path {
                self.changed_at.insert(t.clone(), now);
            }
        }
        if let Some(path) = path {
            let mapped = self.mapped_session(&pending.ev, &path);
            if deleted_later {
                return self.queue_or_release(pending);
            }
            let hint = self.states.get(&path).filter(|_| !mapped);
            let path = Path::new(&*path);
            let diffable = self.s.diff.is_match(path) && !self.s.secret.is_match(path);
            let sha256 = self.s.sha256.is_match(path);
            let keep_content = if diffable { self.s.diff_max_bytes } else { 0 };
            // Judged against the state known now: an earlier event on the
            // path may still change `states` before this one is finished.
            pending.append = hint
                .filter(|_| self.s.append_only.is_match(path))
                .filter(|h| crate::append_only::prefix_len(h).is_some())
                .map(|h| {
                    Box::new(AppendCheck {
                        reference: h.clone(),
                        prefix_blake3: None,
                    })
                });
            let prefix = pending.append.as_ref().map(|a| a.reference.size);
            match enrich::stat(path, hint, sha256, keep_content) {
                Some((state, true)) => {
                    let jobs = self.jobs.as_ref().expect("jobs are open until stop");
                    jobs.send(Job {
                        id,
                        path: path.to_path_buf(),
                        state,
                        sha256,
                        keep_content,
                        prefix,
                    })
                    .map_err(|_| anyhow::anyhow!("the hash workers stopped"))?;
                    pending.waiting = true;
                }
                Some((state, false)) => pending.set_after(Some(state)),
                None => {}
            }
        }
        self.queue_or_release(pending)
    }

    fn queue_or_release(&mut self, pending: Pending) -> Result<()> {
        if self.queue.is_empty() && !pending.waiting {
            // Nothing ahead of it and nothing to wait for: finished now,
            // without the two moves through the queue.
            self.release(pending);
            return Ok(());
        }
        self.queue.push_back(pending);
        self.emit_ready()
    }

    /// Whether a scan finding is older than a realtime event already queued
    /// on its path. That event read the file after the scan did, so it is
    /// emitted first yet says something newer: the finding would make the
    /// feed's last word on the path a stale state. It is dropped, and
    /// counted in its scan's `scan_finished` (`superseded`).
    fn superseded(&mut self, ev: &Event, observed: Instant) -> bool {
        let Some(f) = ev.file() else {
            return false;
        };
        if self.changed_at.get(&f.path).is_none_or(|t| *t <= observed) {
            return false;
        }
        tracing::debug!(path = %f.path, "scan finding superseded by a newer realtime event");
        let scan_id = f.details.get("scan_id").and_then(|v| v.as_i64());
        *self.superseded.entry(scan_id.unwrap_or(0)).or_default() += 1;
        true
    }

    /// Fills `scan.superseded` of a `scan_finished` / `scan_failed` event.
    fn count_superseded(&mut self, ev: &mut Event) {
        if let crate::event::Body::Sensor(s) = &mut ev.body {
            if let Some(scan) = s.scan.as_mut() {
                let n = scan.id.and_then(|id| self.superseded.remove(&id));
                if scan.status != "running" {
                    scan.superseded = n;
                }
            }
        }
    }

    fn complete(&mut self, d: Done) -> Result<()> {
        let i = (d.id - self.first_id) as usize;
        let p = &mut self.queue[i];
        p.waiting = false;
        p.set_after(d.after);
        p.content = d.content;
        if let Some(a) = p.append.as_mut() {
            a.prefix_blake3 = d.prefix_blake3;
        }
        self.emit_ready()
    }

    fn emit_ready(&mut self) -> Result<()> {
        while self.queue.front().is_some_and(|p| !p.waiting) {
            let p = self.queue.pop_front().expect("front exists");
            self.release(p);
        }
        Ok(())
    }

    /// Finishes the front event (queued or about to be) for the output stage.
    fn release(&mut self, p: Pending) {
        self.first_id += 1;
        let ev = self.finish(p);
        self.finished.push(ev);
    }

    /// Fills before/after, fields_changed and diff, and updates the known states.
    fn finish(&mut self, p: Pending) -> Event {
        let Pending {
            mut ev,
            content,
            complete,
            append,
            ..
        } = p;
        if complete {
            if let Some(f) = ev.file() {
                let path = f.path.clone();
                self.contents.remove(&path);
                match &f.after {
                    Some(a) => self.states.insert(path, (**a).clone()),
                    None => self.states.remove(&path),
                };
            }
            return ev;
        }
        let action = ev.action;
        if let Some(f) = ev.file_mut() {
            let path = f.path.clone();
            let after = f.after.take();
            let before = self.states.get(&path).cloned().map(Box::new);
            match action {
                "deleted" => {
                    self.states.remove(&path);
                    self.contents.remove(&path);
                }
                "renamed" | "linked" | "exchanged" => {
                    let target = f.target_path.clone().unwrap_or_default();
                    if action == "exchanged" {
                        let other = self.states.remove(&target);
                        match other {
                            Some(o) => self.states.insert(path.clone(), o),
                            None => self.states.remove(&path),
                        };
                    } else if action == "renamed" {
                        self.states.remove(&path);
                        self.contents.remove(&path);
                    }
                    if let Some(a) = &after {
                        self.states.insert(target, (**a).clone());
                    }
                }
                _ => {
                    if let Some(a) = &after {
                        self.states.insert(path.clone(), (**a).clone());
                    } else {
                        self.states.remove(&path);
                    }
                    // Without new content (too large, unreadable, gone) the old
                    // one is dropped: a later diff must not skip versions.
                    let old = match content {
                        Some(new) => self.contents.insert(path.clone(), new),
                        None => self.contents.remove(&path),
                    };
                    f.diff = old
                        .zip(self.contents.get(&path))
                        .and_then(|(old, new)| unified_diff(&path, &old, new));
                }
            }
            if after.is_none() && action != "deleted" {
                f.details.insert_fixed(
                    "hash_note",
                    crate::fixed!("deleted or renamed before it could be hashed"),
                );
            }
            if let (Some(b), Some(a)) = (&before, &after) {
                f.fields_changed = fields_changed(b, a);
            }
            if let (Some(r), Some(a)) = (&append, &after) {
                if let Some(v) =
                    crate::append_only::judge(&r.reference, a, r.prefix_blake3.as_deref())
                {
                    f.details.insert("append_only", v.as_str().into());
                }
            }
            f.before = before;
            f.after = after;
        }
        ev
    }
}

/// A unified diff of two small text files, or None if either is not text.
fn unified_diff(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
    let is_text = |b: &[u8]| !b.contains(&0);
    let (old, new) = (
        std::str::from_utf8(old).ok()?,
        std::str::from_utf8(new).ok()?,
    );
    if old == new || !is_text(old.as_bytes()) || !is_text(new.as_bytes()) {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(path, path)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use crate::rules::RuleSet;
    use crate::sink::testing::Probe;
    use std::sync::{Arc, Mutex};

    fn settings() -> Settings {
        Settings {
            timing: Timing {
                rename_window: Duration::ZERO,
                max_hold: Duration::from_secs(1),
            },
            hash: HashPolicy { max_size: 1 << 20 },
            hash_workers: 1,
            sha256: GlobSet::empty(),
            diff: GlobSet::empty(),
            diff_max_bytes: 0,
            secret: GlobSet::empty(),
            seed_roots: Vec::new(),
            append_only: GlobSet::empty(),
            inventory: None,
        }
    }

    fn file_event(action: &'static str, path: &str, tier: &'static str) -> Event {
        let mut ev = Event::test_file(action, path, tier);
        if tier == "scan" {
            ev.file_mut().unwrap().details.insert("scan_id", 7.into());
        }
        ev
    }

    /// An emitter whose one sink records the native lines.
    fn recording_emitter() -> (Emitter, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let emitter = Emitter::new(
            vec![Probe::recording(&lines)],
            RuleSet::builtin(),
            "h".into(),
        );
        (emitter, lines)
    }

    /// A pipeline behind [`recording_emitter`].
    fn recording_pipeline() -> (Pipeline, Arc<Mutex<Vec<String>>>) {
        let (emitter, lines) = recording_emitter();
        (Pipeline::start(settings(), emitter).unwrap(), lines)
    }

    /// Sends `p` its stop event and waits for it to finish.
    fn stop(mut p: Pipeline) {
        p.send(vec![Input::Stop(emit::sensor_event(
            "h",
            "stop",
            SensorInfo::default(),
        ))])
        .unwrap();
        p.join().unwrap();
    }

    /// Stops `p` and returns every event it emitted, the stop event last.
    fn stop_and_read(p: Pipeline, lines: &Mutex<Vec<String>>) -> Vec<serde_json::Value> {
        stop(p);
        lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_settle_stage_holds_at_most_max_pending_events_and_loses_none() {
        // A hash that does not come back (a slow disk, a huge file) at the
        // front of the queue: the stage keeps at most MAX_PENDING events and
        // leaves the rest in its input channel (whose sender then blocks),
        // while the other hashes are done and come back at once.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "content\n").unwrap();
        let path = path.to_str().unwrap().to_string();
        let (emitter, lines) = recording_emitter();
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let (tx, rx) = crossbeam_channel::bounded(64);
        let settle = std::thread::spawn(move || {
            let mut s = Settle::new(settings(), emitter, jobs_tx).unwrap();
            s.run(rx, done_rx, crossbeam_channel::never())
        });
        let total = MAX_PENDING * 3;
        let producer = {
            let path = path.clone();
            std::thread::spawn(move || {
                for chunk in 0..total / 256 {
                    let batch = (0..256)
                        .map(|i| {
                            let mut ev = file_event("modified", &path, "tracepoint");
                            ev.time = format!("{}", chunk * 256 + i).into();
                            Input::Event(ev)
                        })
                        .collect();
                    tx.send(batch).unwrap();
                }
                tx
            })
        };
        let done = |j: Job| Done {
            id: j.id,
            after: Some(j.state),
            content: None,
            prefix_blake3: None,
        };
        let first = jobs_rx.recv().unwrap();
        let mut received = 1;
        // Until the stage stops asking: it has all it may hold.
        while let Ok(j) = jobs_rx.recv_timeout(Duration::from_millis(500)) {
            received += 1;
            done_tx.send(done(j)).unwrap();
        }
        assert!(
            received <= MAX_PENDING + 256,
            "{received} events taken in while the front one waits"
        );
        assert!(
            lines.lock().unwrap().is_empty(),
            "nothing overtakes the front"
        );
        // The front comes back: everything flows, in order.
        done_tx.send(done(first)).unwrap();
        while received < total {
            let j = jobs_rx.recv().unwrap();
            received += 1;
            done_tx.send(done(j)).unwrap();
        }
        let tx = producer.join().unwrap();
        tx.send(vec![Input::Stop(emit::sensor_event(
            "h",
            "stop",
            SensorInfo::default(),
        ))])
        .unwrap();
        settle.join().unwrap().unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), total + 1);
        for (i, l) in lines[..total].iter().enumerate() {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(e["time"], i.to_string(), "in arrival order");
        }
    }

    #[test]
    fn a_finding_read_before_a_queued_realtime_event_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "final\n").unwrap();
        let path = path.to_str().unwrap();
        let (mut p, lines) = recording_pipeline();
        let scan_read = Instant::now();
        let realtime = Change {
            ev: file_event("modified", path, "tracepoint"),
            meta: coalesce::Meta {
                pid: 1,
                opens_session: false,
            },
        };
        p.send(vec![Input::Change(realtime)]).unwrap();
        // Read by the scan before the realtime event was queued: stale.
        let stale = file_event("modified", path, "scan");
        p.send(vec![Input::Finding {
            ev: stale,
            observed: scan_read,
        }])
        .unwrap();
        // Read after it (it is out, so it was queued before): emitted.
        while lines.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let fresh = file_event("attributes_changed", path, "scan");
        p.send(vec![Input::Finding {
            ev: fresh,
            observed: Instant::now(),
        }])
        .unwrap();
        let finished = emit::sensor_event(
            "h",
            "scan_finished",
            SensorInfo {
                scan: Some(Box::new(ScanInfo {
                    id: Some(7),
                    kind: "rescan",
                    status: "ok",
                    ..Default::default()
                })),
                ..Default::default()
            },
        );
        p.send(vec![Input::Sensor(finished)]).unwrap();
        let evs = stop_and_read(p, &lines);
        let seen: Vec<(&str, &str)> = evs
            .iter()
            .map(|e| {
                let tier = e["source"]["tier"].as_str().unwrap_or("-");
                (e["action"].as_str().unwrap(), tier)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("modified", "tracepoint"),
                ("attributes_changed", "scan"),
                ("scan_finished", "-"),
                ("stop", "-")
            ],
            "{evs:#?}"
        );
        assert_eq!(evs[2]["scan"]["superseded"], 1, "{:#}", evs[2]);
        // The realtime event read the file.
        assert!(evs[0]["after"]["hashes"]["blake3"].is_string());
    }

    #[test]
    fn a_change_whose_file_a_later_event_deletes_does_not_read_the_new_file() {
        // The file was modified, deleted and created again before the
        // pipeline saw any of it: what is on disk now is the new file, which
        // must not be passed off as the state after the first change.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "the new file\n").unwrap();
        let path = path.to_str().unwrap();
        let (mut p, lines) = recording_pipeline();
        let (other, renamed_away) = (dir.path().join("g"), dir.path().join("h"));
        std::fs::write(&other, "g\n").unwrap();
        let mut rename = file_event("renamed", other.to_str().unwrap(), "tracepoint");
        rename.file_mut().unwrap().target_path = Some(path.into());
        let mut kept = file_event("renamed", renamed_away.to_str().unwrap(), "tracepoint");
        kept.file_mut().unwrap().target_path = Some(other.to_str().unwrap().into());
        p.send(
            [
                file_event("modified", path, "tracepoint"),
                rename,
                file_event("deleted", path, "tracepoint"),
                kept,
                file_event("created", path, "tracepoint"),
            ]
            .into_iter()
            .map(Input::Event)
            .collect(),
        )
        .unwrap();
        let evs = stop_and_read(p, &lines);
        let actions: Vec<&str> = evs.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(
            actions,
            ["modified", "renamed", "deleted", "renamed", "created", "stop"]
        );
        // Deleted further on: no state, whatever is at the path now.
        assert!(evs[0]["after"].is_null(), "{:#}", evs[0]);
        assert!(evs[1]["after"].is_null(), "{:#}", evs[1]);
        // A path no later event deletes is read, as is the new file.
        assert_eq!(evs[3]["after"]["size"], 2, "{:#}", evs[3]);
        assert_eq!(evs[4]["after"]["size"], 13, "{:#}", evs[4]);
        assert!(evs[4]["after"]["hashes"]["blake3"].is_string());
    }

    /// A sink that writes only on flush, and notes at its first flush that
    /// it recovered (as the file sink does once a full disk has room again).
    struct FlushWrites {
        queued: Vec<String>,
        lines: Arc<Mutex<Vec<String>>>,
        health: Vec<crate::sink::Health>,
        recovered: bool,
    }

    impl crate::sink::Sink for FlushWrites {
        fn name(&self) -> &str {
            "flush-writes"
        }
        fn format(&self) -> crate::schema::Format {
            crate::schema::Format::Native
        }
        fn send(&mut self, ev: &crate::sink::Rendered) -> Result<()> {
            self.queued.push(String::from_utf8(ev.line.to_vec())?);
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            self.lines.lock().unwrap().append(&mut self.queued);
            if !std::mem::replace(&mut self.recovered, true) {
                self.health.push(crate::sink::Health {
                    sink: "flush-writes".into(),
                    state: crate::sink::HealthState::Recovered,
                    message: "writing again".into(),
                });
            }
            Ok(())
        }
        fn take_health(&mut self) -> Vec<crate::sink::Health> {
            std::mem::take(&mut self.health)
        }
        fn close(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    /// What a flush reports (a sink's health) is written by a later flush,
    /// so the output stage flushes while no event comes: otherwise the note
    /// would wait for the next change, which on a quiet host may be hours.
    #[test]
    fn sinks_are_flushed_while_no_event_comes() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = FlushWrites {
            queued: Vec::new(),
            lines: lines.clone(),
            health: Vec::new(),
            recovered: false,
        };
        let emitter = Emitter::new(vec![Box::new(sink)], RuleSet::builtin(), "h".into());
        let mut p = Pipeline::start(settings(), emitter).unwrap();
        let hb = emit::sensor_event("h", "heartbeat", SensorInfo::default());
        p.send(vec![Input::Sensor(hb)]).unwrap();
        let t0 = Instant::now();
        let recovered = || {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("recovered: writing again"))
        };
        while !recovered() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the health note was never written: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let stop = emit::sensor_event("h", "stop", SensorInfo::default());
        p.send(vec![Input::Stop(stop)]).unwrap();
        p.join().unwrap();
    }

    /// Windows software and service events sent by the source are applied
    /// to the stored inventory and unit states as they are journaled; a
    /// removed service is forgotten.
    #[test]
    fn windows_package_and_service_events_update_the_store() {
        use crate::inventory::win::{self, Tracker};
        use crate::registry::MapTree;
        use sensor_windows::RegistryValue;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v.db");
        let u = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";
        let mut t = MapTree::default();
        t.set(&format!(r"{u}\A"), "DisplayName", RegistryValue::sz("App"));
        t.set(
            &format!(r"{u}\A"),
            "DisplayVersion",
            RegistryValue::sz("1.0"),
        );
        let svc = format!(r"{}\Svc", win::SERVICES_KEY);
        t.set(&svc, "Type", RegistryValue::dword(0x10));
        t.set(&svc, "Start", RegistryValue::dword(3));
        let mut tr = Tracker::new("h".into());
        let first = tr.start(&t, None, None, None);
        {
            let store = crate::store::Store::open(&db).unwrap();
            store
                .record_inventory(
                    win::SOFTWARE_MANAGER,
                    first.record_software.as_ref().unwrap(),
                )
                .unwrap();
            store
                .record_units(win::SCM, first.record_services.as_ref().unwrap())
                .unwrap();
        }
        let emitter = Emitter::new(Vec::new(), RuleSet::builtin(), "h".into())
            .with_journal(crate::store::Store::open(&db).map_err(Into::into));
        let mut p = Pipeline::start(settings(), emitter).unwrap();
        t.set(
            &format!(r"{u}\A"),
            "DisplayVersion",
            RegistryValue::sz("2.0"),
        );
        t.set(&svc, "Start", RegistryValue::dword(2));
        let t0 = Instant::now();
        tr.touched(&format!(r"{u}\A"), None, t0);
        tr.touched(&svc, None, t0);
        let (evs, _) = tr.due(&t, None, t0 + win::SETTLE);
        assert_eq!(evs.len(), 2);
        p.send(evs.into_iter().map(Input::Sensor).collect())
            .unwrap();
        t.values.retain(|(k, _), _| !k.ends_with("Svc"));
        tr.touched(&svc, None, t0);
        let (evs, _) = tr.due(&t, None, t0 + win::SETTLE);
        assert_eq!(evs[0].action, "service_removed");
        p.send(evs.into_iter().map(Input::Sensor).collect())
            .unwrap();
        stop(p);
        let store = crate::store::Store::open(&db).unwrap();
        let inv = store.inventory(win::SOFTWARE_MANAGER).unwrap().unwrap();
        let k = crate::inventory::Key {
            name: "App".into(),
            arch: "x64".into(),
        };
        assert_eq!(inv[&k].version, "2.0");
        let units = store.units(win::SCM).unwrap().unwrap();
        assert!(units.is_empty(), "{units:?}");
    }

    /// A shared writable mapping's session never reuses digests, from its
    /// `mapped_writable` to its close: stores through the mapping need not move
    /// mtime or ctime (tmpfs on 6.1 keeps both: vm-test saw the close marker
    /// carry the pre-store hash). Outside such a session digests are reused.
    #[test]
    fn a_mapped_session_never_reuses_digests() {
        let (emitter, _lines) = recording_emitter();
        let (jobs, _rx) = crossbeam_channel::bounded(1);
        let mut s = Settle::new(settings(), emitter, jobs).unwrap();
        let mut check = |action: &'static str, path: &str| {
            s.mapped_session(&file_event(action, path, "fentry"), path)
        };
        assert!(!check("modified", "/w/f"));
        assert!(check("mapped_writable", "/w/f"));
        assert!(check("modified", "/w/f"));
        assert!(!check("modified", "/w/g"));
        assert!(check("closed_after_write", "/w/f"));
        assert!(!check("modified", "/w/f"));
        // A coalesced event that holds the mapping and its close: no reuse, and
        // the session is over.
        let mut ev = file_event("mapped_writable", "/w/h", "fentry");
        if let Body::File(f) = &mut ev.body {
            f.related.push(crate::event::Related {
                action: "closed_after_write",
                path: "/w/h".into(),
                target_path: None,
                time: "t".into(),
                syscall: "__fput",
                details: Default::default(),
            });
        }
        assert!(s.mapped_session(&ev, "/w/h"));
        assert!(!s.mapped_session(&file_event("modified", "/w/h", "fentry"), "/w/h"));
    }
}
