//! `vigil run` on Linux: ring buffer → decode → attribute → emit.
//!
//! The ring buffer is read on a tokio task (its fd is pollable); records are
//! handed over a bounded crossbeam channel to the pipeline thread, which owns the
//! process table and the output. When the pipeline falls behind, the channel
//! blocks the reader, the ring buffer fills, and the kernel counts what it drops:
//! that count becomes a `sensor.gap` event, never silence.
use super::decode::{self, cstr, Record, ResolvedPath};
use super::loader;
use crate::event::*;
use crate::pipeline::coalesce::{Change, Meta};
use crate::pipeline::emit::{sensor_event, Emitter};
use crate::pipeline::{Input, Pipeline, Settings};
use crate::policy::Policy;
use crate::process::{join_args, Names, ProcInfo, ProcessTable};
use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use aya::Ebpf;
use crossbeam_channel::RecvTimeoutError;
use sensor_common::{op, sys, verdict, FileRecord, ProcessInfo};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// The kernel side, loaded and attached, with the privileges it needed
/// dropped ([`attach`]).
pub struct Attached {
    loaded: loader::Loaded,
    ring: RingBuf<MapData>,
    /// What the privilege drop kept and gave up.
    pub privileges: super::privs::Dropped,
}

/// Loads and attaches the eBPF programs for `policy`, opens the ring buffer,
/// then drops the capabilities only loading needed ([`super::privs`]). Call
/// before the process starts any thread (sinks included): capabilities are
/// per thread, and threads started later inherit the reduced sets.
pub fn attach(
    policy: &Policy,
    ring_buffer_mib: u32,
    tier: crate::config::Tier,
) -> Result<Attached> {
    loader::preflight()?;
    let mut loaded = loader::load(policy, ring_buffer_mib, tier)?;
    let ring = RingBuf::try_from(loaded.ebpf.take_map("EVENTS").context("EVENTS map")?)?;
    let privileges = super::privs::drop_after_attach(|| loader::map_access(&mut loaded.ebpf))
        .context("dropping privileges after attaching")?;
    tracing::info!(
        kept = ?privileges.kept,
        dropped = ?privileges.dropped,
        bounding = privileges.bounding,
        "capabilities after attaching"
    );
    Ok(Attached {
        loaded,
        ring,
        privileges,
    })
}

pub struct Options {
    pub policy: Policy,
    pub emitter: Emitter,
    pub settings: Settings,
    /// Also append every raw ring-buffer record here (for `vigil replay`).
    pub record: Option<std::path::PathBuf>,
    /// A `heartbeat` event this often (`[sensor] heartbeat_s`).
    pub heartbeat: Duration,
    /// The verification scans to run alongside (None: realtime only).
    pub scans: Option<crate::daemon::Options>,
    /// The systemd unit watcher (None: `[inventory] daemons` is off).
    pub services: Option<crate::inventory::systemd_bus::Options>,
}

/// Records travel in batches: one channel hand-off per ring-buffer drain
/// rather than per record.
const BATCH: usize = 1024;

enum Msg {
    Records(Vec<Vec<u8>>),
    Gap {
        lost: u64,
        reason: &'static str,
    },
    Heartbeat,
    Stop {
        reason: &'static str,
        message: Option<String>,
    },
}

/// Runs the sensor on what [`attach`] set up, until SIGTERM or SIGINT.
pub fn run(attached: Attached, opts: Options) -> Result<()> {
    let Attached {
        mut loaded,
        ring,
        privileges,
    } = attached;
    let ebpf = Arc::new(Mutex::new(loaded.ebpf));

    // Hooks are attached before /proc is read, so no process falls in between.
    let procs = ProcessTable::from_proc();
    let host = opts.emitter.host().to_string();
    let shared = Pipeline::start(opts.settings, opts.emitter)?;
    let scan_input = shared.sender();
    let service_input = shared.sender();
    let mut pipeline = Attributor::new(opts.policy, Some(shared), host, procs, Some(ebpf.clone()));
    pipeline.invocations = opts.services.as_ref().map(|s| s.invocations.clone());
    pipeline.uring_blind = super::loader::VFS_HOOKS
        .iter()
        .filter(|h| h.mask & sensor_common::vfs::IO_URING != 0)
        .filter(|h| loaded.tiers.get(h.group).is_none_or(|t| t == "tracepoint"))
        .map(|h| h.group)
        .collect::<Vec<_>>()
        .join(", ");
    let watched = pipeline.policy.roots.len();
    pipeline.emit_sensor(
        "start",
        SensorInfo {
            version: env!("CARGO_PKG_VERSION"),
            pid: Some(std::process::id()),
            watches: pipeline
                .policy
                .roots
                .iter()
                .map(|r| r.path.display().to_string())
                .collect(),
            hooks_attached: Some(loaded.attached.len()),
            hooks_failed: std::mem::take(&mut loaded.failed),
            tiers: std::mem::take(&mut loaded.tiers),
            heartbeat_s: Some(opts.heartbeat.as_secs()),
            capabilities: privileges.kept.clone(),
            ..Default::default()
        },
    )?;

    // The start event is the feed's first (it opens the chain): hand it over
    // before the scan thread can emit anything.
    pipeline.flush()?;
    let scans = match opts.scans {
        Some(o) => Some(crate::daemon::ScanDaemon::start(o, scan_input)?),
        None => None,
    };
    let services = match opts.services {
        Some(o) => Some(crate::inventory::systemd_bus::Watcher::start(
            o,
            service_input,
        )?),
        None => None,
    };
    let (tx, rx) = crossbeam_channel::bounded::<Msg>(16384 / BATCH);
    let worker = std::thread::Builder::new()
        .name("vigil-pipeline".into())
        .spawn(move || pipeline.run(rx))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let recorder = match &opts.record {
        Some(p) => Some(super::replay::Recorder::create(p)?),
        None => None,
    };
    // systemd (Type=notify): attached, the start event handed over.
    crate::sdnotify::notify(&format!(
        "READY=1\nSTATUS=watching {} roots\nMAINPID={}",
        watched,
        std::process::id()
    ));
    let read = rt.block_on(read_loop(
        ring,
        ebpf,
        tx,
        recorder,
        opts.heartbeat,
        scans,
        services,
    ));
    crate::sdnotify::notify("STOPPING=1");
    let piped = worker
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))
        .and_then(|r| r);
    // The reader's error is the cause; the pipeline's is then only that its input stopped.
    read.and(piped)
}

/// Reads until SIGTERM or SIGINT, then hands over the stop event with its
/// reason. On an error the stop event says `error` and why, if the pipeline
/// still takes it, and the error is returned.
async fn read_loop(
    ring: RingBuf<MapData>,
    ebpf: Arc<Mutex<Ebpf>>,
    tx: crossbeam_channel::Sender<Msg>,
    recorder: Option<super::replay::Recorder>,
    heartbeat: Duration,
    scans: Option<crate::daemon::ScanDaemon>,
    services: Option<crate::inventory::systemd_bus::Watcher>,
) -> Result<()> {
    let read = read_until_signal(ring, ebpf, &tx, recorder, heartbeat, scans.as_ref()).await;
    // The scan thread's last events (an interrupted scan) go out before the stop event.
    if let Some(s) = scans {
        s.stop();
    }
    // So do the service changes the watcher still holds.
    if let Some(s) = services {
        s.stop();
    }
    match read {
        Ok(signal) => tx
            .send(Msg::Stop {
                reason: signal,
                message: None,
            })
            .map_err(|_| anyhow::anyhow!("pipeline stopped")),
        Err(e) => {
            let _ = tx.send(Msg::Stop {
                reason: "error",
                message: Some(format!("{e:#}")),
            });
            Err(e)
        }
    }
}

async fn read_until_signal(
    ring: RingBuf<MapData>,
    ebpf: Arc<Mutex<Ebpf>>,
    tx: &crossbeam_channel::Sender<Msg>,
    mut recorder: Option<super::replay::Recorder>,
    heartbeat: Duration,
    scans: Option<&crate::daemon::ScanDaemon>,
) -> Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    // SAFETY: the ring buffer owns its fd and outlives the registration (both
    // live in `fd` and are dropped together).
    let mut fd = unsafe { AsyncFd::register(ring)? };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The kernel wakes us only past a fill mark (see WAKEUP_BYTES in sensor-ebpf);
    // this drain bounds the latency of a quiet trickle of events.
    let mut drain = tokio::time::interval(Duration::from_millis(10));
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The first heartbeat one interval after the start event.
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_lost = (0u64, 0u64);
    // systemd's watchdog (WatchdogSec=): pinged from this loop, which stops
    // turning when the pipeline stops taking records (the hand-over blocks),
    // so a wedged sensor is restarted.
    let mut watchdog = crate::sdnotify::watchdog_interval().map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let send = |m: Msg| tx.send(m).map_err(|_| anyhow::anyhow!("pipeline stopped"));
    // Hands over everything the ring buffer holds, in batches.
    let mut drain_ring = |ring: &mut RingBuf<MapData>| -> Result<()> {
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(item) = ring.next() {
            if let Some(r) = recorder.as_mut() {
                r.write(&item)?;
            }
            batch.push(item.to_vec());
            if batch.len() == BATCH {
                send(Msg::Records(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH),
                )))?;
            }
        }
        if !batch.is_empty() {
            send(Msg::Records(batch))?;
        }
        Ok(())
    };
    let signal = loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain_ring(guard.get_inner_mut())?;
                guard.clear_ready();
            }
            _ = drain.tick() => drain_ring(fd.get_mut())?,
            _ = tick.tick() => {
                let lost = loader::lost_counts(&ebpf.lock().expect("ebpf lock"))?;
                for (now, before, reason) in [
                    (lost.0, seen_lost.0, "ring_buffer_full"),
                    (lost.1, seen_lost.1, "syscall_argument_map_full"),
                ] {
                    if now > before {
                        send(Msg::Gap { lost: now - before, reason })?;
                        if let Some(s) = scans {
                            s.gap(now - before, reason);
                        }
                    }
                }
                seen_lost = lost;
            }
            _ = beat.tick() => send(Msg::Heartbeat)?,
            _ = async {
                match watchdog.as_mut() {
                    Some(w) => w.tick().await,
                    None => std::future::pending().await,
                }
            } => {
                crate::sdnotify::notify("WATCHDOG=1");
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    // Drain what the kernel already delivered, then stop.
    drain_ring(fd.get_mut())?;
    Ok(signal)
}

/// Decode and attribute: kernel records become raw changes with their process.
pub(super) struct Attributor {
    policy: Policy,
    /// None: changes are counted and dropped (`vigil replay --stage attribute`).
    out: Option<Pipeline>,
    pub(super) changes: u64,
    host: &'static str,
    procs: ProcessTable,
    names: Names,
    /// None when replaying recorded records: there is no kernel to update.
    ebpf: Option<Arc<Mutex<Ebpf>>>,
    /// CLOCK_REALTIME - CLOCK_BOOTTIME, to turn kernel timestamps into wall time.
    boot_offset_ns: i128,
    /// Event times, with the current second's calendar part kept.
    stamps: Stamps,
    /// Each root's path as events name it (`watch`), by root index.
    root_paths: Vec<&'static str>,
    /// Device numbers as events name them.
    devices: DeviceNames,
    /// Process records by tgid, with the kernel identity they were built from.
    process_cache: foldhash::HashMap<u32, (ProcessInfo, Arc<Process>)>,
    /// Open write sessions per process (the record that opened each, compact): closed
    /// with a marker when the process exits, and cleared from the kernel map.
    sessions: foldhash::HashMap<u32, Vec<decode::CompactFileRecord>>,
    /// A record to restore kept ones into (see `CompactFileRecord::restore_into`).
    spare: Option<Box<FileRecord>>,
    /// Where paths are joined (`decode::resolve`).
    scratch: decode::PathScratch,
    /// Blind spots already reported: (tgid, start time, what, inode or 0).
    blind_reported: std::collections::HashSet<(u32, u64, &'static str, u64)>,
    /// `systemctl` and `service` runs, for the systemd watcher's attribution.
    pub(super) invocations: Option<crate::inventory::systemd::Invocations>,
    /// The operation groups io_uring can reach that are on the tracepoint
    /// tier (named in its `blind_spot` events).
    uring_blind: String,
}

impl Attributor {
    pub(super) fn new(
        policy: Policy,
        out: Option<Pipeline>,
        host: String,
        procs: ProcessTable,
        ebpf: Option<Arc<Mutex<Ebpf>>>,
    ) -> Attributor {
        let root_paths = policy
            .roots
            .iter()
            .map(|r| crate::event::interned(&r.path.to_string_lossy()))
            .collect();
        Attributor {
            root_paths,
            devices: DeviceNames::default(),
            policy,
            out,
            changes: 0,
            host: crate::event::interned(&host),
            procs,
            names: Names::default(),
            ebpf,
            boot_offset_ns: boot_offset_ns(),
            stamps: Default::default(),
            sessions: Default::default(),
            spare: None,
            scratch: decode::PathScratch::default(),
            blind_reported: Default::default(),
            uring_blind: String::new(),
            process_cache: Default::default(),
            invocations: None,
        }
    }

    fn run(mut self, rx: crossbeam_channel::Receiver<Msg>) -> Result<()> {
        let mut since_expire = std::time::Instant::now();
        loop {
            // Nothing may wait in the pipeline's batch while this thread
            // waits for input, nor a held session past its deadline.
            self.flush()?;
            let deadline = self.out.as_ref().and_then(Pipeline::next_deadline);
            let msg = match deadline.map_or_else(
                || rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                |d| rx.recv_deadline(d),
            ) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => anyhow::bail!("reader stopped"),
            };
            match msg {
                Msg::Records(batch) => self.decode_all(batch.iter().map(Vec::as_slice))?,
                Msg::Gap { lost, reason } => self.emit_sensor(
                    "gap",
                    SensorInfo {
                        lost: Some(lost),
                        lost_reason: Some(reason),
                        message: Some("the kernel dropped events: changes in this window were not reported one by one; `vigil scan` finds them".into()),
                        ..Default::default()
                    },
                )?,
                Msg::Heartbeat => self.emit_sensor("heartbeat", SensorInfo::default())?,
                Msg::Stop { reason, message } => return self.stop(reason, message),
            }
            if since_expire.elapsed() > Duration::from_secs(10) {
                self.procs.expire();
                // Follows wall-clock steps (NTP, an operator's date -s).
                self.boot_offset_ns = boot_offset_ns();
                since_expire = std::time::Instant::now();
            }
        }
    }

    /// Emits the stop event (with why: `SIGTERM`, `SIGINT`, `error` and a
    /// message) and waits for the pipeline to deliver everything.
    pub(super) fn stop(&mut self, reason: &str, message: Option<String>) -> Result<()> {
        let stop = sensor_event(
            self.host,
            "stop",
            SensorInfo {
                pid: Some(std::process::id()),
                reason: Some(reason.to_string()),
                message,
                ..Default::default()
            },
        );
        self.push(Input::Stop(stop))?;
        self.flush()?;
        match self.out.take() {
            Some(out) => out.join(),
            None => Ok(()),
        }
    }

    /// Hands what is pending to the pipeline.
    fn flush(&mut self) -> Result<()> {
        self.out.as_mut().map_or(Ok(()), Pipeline::flush)
    }

    fn push(&mut self, input: Input) -> Result<()> {
        self.out.as_mut().map_or(Ok(()), |out| out.push(input))
    }

    /// [`Self::decode_and_record`] each record, the next one's lines
    /// loading while this one is decoded ([`decode::prefetch`]).
    pub(super) fn decode_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<()> {
        let mut records = records.into_iter().peekable();
        while let Some(bytes) = records.next() {
            if let Some(next) = records.peek() {
                decode::prefetch(next);
            }
            self.decode_and_record(bytes)?;
        }
        Ok(())
    }

    /// Decodes one ring-buffer record and attributes it. A record that cannot
    /// be read is reported, never dropped silently.
    pub(super) fn decode_and_record(&mut self, bytes: &[u8]) -> Result<()> {
        match decode::decode(bytes) {
            Ok(r) => self.record(r),
            Err(e) => self.emit_sensor(
                "error",
                SensorInfo {
                    message: Some(e.to_string()),
                    ..Default::default()
                },
            ),
        }
    }

    fn record(&mut self, r: Record) -> Result<()> {
        match &r {
            // An exec changes what this process and its descendants' ancestry show.
            Record::Exec(_) => self.process_cache.clear(),
            Record::Fork(t) | Record::Exit(t) => {
                self.process_cache.remove(&t.process.tgid);
            }
            Record::File(_) | Record::BlindSpot(_) | Record::Close(_) => {}
        }
        match r {
            Record::Exec(e) => {
                let p = &e.process;
                let exe = decode::resolve(&e.exe, &mut self.scratch).map(|r| r.path.to_string());
                let n = (e.args_len as usize).min(e.args.len());
                self.procs.exec(ProcInfo {
                    pid: p.tgid,
                    ppid: p.ppid,
                    exe,
                    cmdline: Some(join_args(&e.args[..n])).filter(|s| !s.is_empty()),
                    comm: cstr(&p.comm),
                    uid: p.uid,
                    loginuid: Some(p.loginuid).filter(|u| *u != u32::MAX),
                    container_id: crate::process::container_id(p.tgid),
                    exited: None,
                });
                self.control_program(&e);
            }
            Record::Fork(t) => {
                self.procs
                    .fork(t.parent_tgid, t.process.tgid, cstr(&t.process.comm))
            }
            Record::Exit(t) => {
                if let Some(open) = self.sessions.remove(&t.process.tgid) {
                    if let Some(ebpf) = &self.ebpf {
                        loader::forget_sessions(
                            &mut ebpf.lock().expect("ebpf lock"),
                            t.process.tgid,
                        )?;
                    }
                    // One marker per file, however many of its sessions were open.
                    let mut seen: Vec<&decode::CompactFileRecord> = Vec::new();
                    for kept in &open {
                        let mut f = self.spare.take().unwrap_or_else(decode::zeroed_record);
                        kept.restore_into(&mut f);
                        if seen.iter().any(|s| s.same_file(&f)) {
                            self.spare = Some(f);
                            continue;
                        }
                        seen.push(kept);
                        f.op = op::CLOSED_WRITE;
                        f.sys = sys::EXIT;
                        f.ts_boot_ns = t.ts_boot_ns;
                        let change = self.file_event(&f);
                        self.spare = Some(f);
                        if let Some(c) = change {
                            self.write(c)?;
                        }
                    }
                }
                if let Some(inv) = &self.invocations {
                    let control = self.procs.get(t.process.tgid).is_some_and(|p| {
                        crate::inventory::systemd::Invocations::is_control_program(
                            p.exe.as_deref(),
                            &p.comm,
                        )
                    });
                    if control {
                        let ns = self.boot_offset_ns + t.ts_boot_ns as i128;
                        let at = std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
                        inv.exited(t.process.tgid, at);
                    }
                }
                self.procs.exit(t.process.tgid);
            }
            Record::BlindSpot(t) => {
                // Once per process: a ring serves many writes.
                if self.blind_reported.insert((
                    t.process.tgid,
                    t.process.start_boottime,
                    "io_uring",
                    0,
                )) {
                    let p = &t.process;
                    let message = format!(
                        "process {} ({}, uid {}) set up io_uring: the file operations it \
                         submits through io_uring make no syscall, and those of the groups \
                         on the tracepoint tier ({}) are not seen (vigil doctor lists the \
                         blind spots); the verification scan is the backstop",
                        p.tgid,
                        cstr(&p.comm),
                        p.uid,
                        if self.uring_blind.is_empty() {
                            "all"
                        } else {
                            &self.uring_blind
                        }
                    );
                    self.emit_sensor(
                        "blind_spot",
                        SensorInfo {
                            message: Some(message),
                            blind_spot: Some("io_uring"),
                            subject_pid: Some(p.tgid),
                            ..Default::default()
                        },
                    )?;
                }
            }
            Record::Close(c) => self.session_closed(&c)?,
            Record::File(f) if f.op == op::MAPPED_WRITABLE && f.sys == sys::MMAP => {
                self.mmap_blind_spot(&f)?;
            }
            Record::File(f) => {
                if let Some(c) = self.file_event(&f) {
                    self.refresh_roots(&c.ev)?;
                    self.write(c)?;
                }
            }
        }
        Ok(())
    }

    /// A [`sensor_common::CloseRecord`]: the close marker is the session's
    /// opening record with the close's syscall, time and thread. No opening
    /// record is kept when user space dropped it (an ignored path, or outside
    /// the policy's roots on a closer look), and then the close is dropped
    /// likewise.
    fn session_closed(&mut self, c: &sensor_common::CloseRecord) -> Result<()> {
        let kept = self.sessions.get_mut(&c.tgid).and_then(|list| {
            let i = list.iter().position(|o| o.session() == c.session)?;
            Some(list.swap_remove(i))
        });
        let Some(kept) = kept else {
            tracing::debug!(
                tgid = c.tgid,
                "close of a session with no kept opening record"
            );
            return Ok(());
        };
        let mut f = self.spare.take().unwrap_or_else(decode::zeroed_record);
        kept.restore_into(&mut f);
        f.op = op::CLOSED_WRITE;
        f.sys = c.sys;
        f.ts_boot_ns = c.ts_boot_ns;
        f.process.pid = c.pid;
        (f.ret, f.flags, f.mode) = (0, 0, 0);
        (f.arg_uid, f.arg_gid) = (u32::MAX, u32::MAX);
        let change = self.file_event(&f);
        self.spare = Some(f);
        if let Some(change) = change {
            self.write(change)?;
        }
        Ok(())
    }

    /// The tracepoint tier's mmap detector: a shared writable mapping of a
    /// watched file, whose stores make no syscall. Reported once per process
    /// and file as a `blind_spot` event (the policy's ignore globs apply).
    fn mmap_blind_spot(&mut self, f: &FileRecord) -> Result<()> {
        let Some(c) = self.file_event(f) else {
            return Ok(());
        };
        let Body::File(fc) = &c.ev.body else {
            return Ok(());
        };
        let p = &f.process;
        if !self
            .blind_reported
            .insert((p.tgid, p.start_boottime, "mmap", f.ino))
        {
            return Ok(());
        }
        // f.mode: the mapping's prot. A read-only shared mapping of a file
        // open for writing can be made writable by mprotect, which names an
        // address, not a file: the tracepoint tier flags it here.
        let how = if f.mode & libc::PROT_WRITE as u32 != 0 {
            "shared and writable"
        } else {
            "shared and read-only from a descriptor open for writing (mprotect can make it writable)"
        };
        let message = format!(
            "process {} ({}, uid {}) mapped {} {how}: stores through the \
             mapping make no syscall and are not seen on the tracepoint tier (vigil \
             doctor lists the blind spots); the verification scan is the backstop",
            p.tgid,
            cstr(&p.comm),
            p.uid,
            fc.path
        );
        self.emit_sensor(
            "blind_spot",
            SensorInfo {
                message: Some(message),
                blind_spot: Some("mmap"),
                subject_pid: Some(p.tgid),
                ..Default::default()
            },
        )
    }

    /// Builds the event for a file record, or None when the policy (ignore
    /// globs, entry kinds, or the final check of a candidate) filters it out.
    fn file_event(&mut self, f: &FileRecord) -> Option<Change> {
        let path = decode::resolve(&f.path, &mut self.scratch)?;
        let target = decode::resolve(&f.target, &mut self.scratch);
        let is_dir = match f.op {
            op::MKDIR | op::RMDIR => Some(true),
            _ if f.i_mode != 0 => Some(f.i_mode & libc::S_IFMT == libc::S_IFDIR),
            _ => None,
        };
        let two_paths = matches!(f.op, op::RENAMED | op::LINKED);
        let (root, decided_by) =
            self.place(f, &path, target.as_ref().filter(|_| two_paths), is_dir)?;
        let ignored = |p: &ResolvedPath| self.policy.ignored(root, Path::new(&*p.path));
        if ignored(&path) && target.as_ref().filter(|_| two_paths).is_none_or(ignored) {
            return None;
        }
        let opens_session = self.track_session(f);
        let mut details = crate::event::Details::new();
        let mut target_path = None;
        let action = match f.op {
            op::RENAMED => {
                let t = target?;
                let inside = |p: &str| self.policy.root_for(Path::new(p), is_dir).is_some();
                let dir = match (inside(&path.path), inside(&t.path)) {
                    (true, true) | (false, false) => crate::fixed!("within"),
                    (false, true) => crate::fixed!("in"),
                    (true, false) => crate::fixed!("out"),
                };
                details.insert_fixed("direction", dir);
                target_path = Some(t.path);
                const RENAME_NOREPLACE: u64 = 1;
                const RENAME_EXCHANGE: u64 = 2;
                if f.flags & RENAME_NOREPLACE != 0 {
                    details.insert("noreplace", true.into());
                }
                if f.flags & RENAME_EXCHANGE != 0 {
                    "exchanged"
                } else {
                    "renamed"
                }
            }
            op::LINKED => {
                target_path = target.map(|t| t.path);
                "linked"
            }
            op::SYMLINKED => {
                if let Some(t) = decode::literal_name(&f.target) {
                    details.insert("link_target", t.into());
                }
                "symlinked"
            }
            op::MODIFIED => "modified",
            op::CREATED => "created",
            op::TRUNCATED => "truncated",
            op::CLOSED_WRITE => "closed_after_write",
            op::DELETED => "deleted",
            op::RMDIR => "deleted",
            op::MKDIR => "created",
            op::MKNOD => "created",
            op::PERMISSIONS => {
                details.insert("mode", format!("{:o}", f.mode & 0o7777).into());
                "permissions_changed"
            }
            op::OWNER => {
                if f.arg_uid != u32::MAX {
                    details.insert("uid", f.arg_uid.into());
                }
                if f.arg_gid != u32::MAX {
                    details.insert("gid", f.arg_gid.into());
                }
                "owner_changed"
            }
            op::TIMESTAMPS => "timestamps_changed",
            op::XATTR_SET => "xattr_changed",
            op::XATTR_REMOVED => "xattr_removed",
            op::MAPPED_WRITABLE => "mapped_writable",
            _ => "changed",
        };
        if matches!(f.sys, sys::FALLOCATE | sys::VFS_FALLOCATE) {
            details.insert("fallocate_mode", f.flags.into());
        }
        if matches!(f.sys, sys::TRUNCATE | sys::FTRUNCATE)
            || (f.sys == sys::NOTIFY_CHANGE && f.op == op::TRUNCATED)
        {
            details.insert("length", f.flags.into());
        }
        let file_type = match (f.op, is_dir) {
            (op::SYMLINKED, _) => "symlink",
            (op::MKNOD, _) => mknod_type(f.mode),
            (_, Some(true)) => "dir",
            _ if f.i_mode != 0 => crate::filestate::type_name(f.i_mode),
            (_, _) => "unknown",
        };
        let watch = root.and_then(|r| self.root_paths.get(r)).copied();
        let file = FileInfo {
            file_type,
            inode: (f.ino != 0).then_some(f.ino),
            dev: (f.ino != 0).then(|| self.devices.name(f.dev)),
            path_truncated: path.truncated,
        };
        let process = self.process(&f.process);
        let ev = self.event(
            "file",
            action,
            Body::File(Box::new(FileChange {
                path: path.path,
                target_path,
                file,
                before: None,
                after: None,
                fields_changed: Vec::new(),
                diff: None,
                watch,
                package: None,
                process,
                source: Source {
                    tier: tier_name(f.tier),
                    syscall: syscall_name(f.sys),
                    decided_by,
                },
                details,
                related: Vec::new(),
            })),
            f.ts_boot_ns,
        );
        Some(Change {
            ev,
            meta: Meta {
                pid: f.process.tgid,
                opens_session,
            },
        })
    }

    /// Keeps the kernel's roots map in step with the file system when a watched
    /// root itself is created, deleted, renamed or replaced: from its creation on
    /// the kernel decides on the new inode, and a deleted root's inode number is
    /// forgotten before the file system reuses it.
    fn refresh_roots(&mut self, ev: &Event) -> Result<()> {
        let Body::File(f) = &ev.body else {
            return Ok(());
        };
        let touched = [Some(&*f.path), f.target_path.as_deref()];
        for i in 0..self.policy.roots.len() {
            let root = &self.policy.roots[i];
            if !touched.contains(&Some(self.root_paths[i])) {
                continue;
            }
            let now = crate::policy::inode_key(&root.path).ok();
            if now == root.inode {
                continue;
            }
            let value = sensor_common::RootValue {
                flags: root.kernel_flags(),
                root_id: i as u32,
            };
            let old = root.inode;
            if let Some(ebpf) = &self.ebpf {
                loader::replace_root(
                    &mut ebpf.lock().expect("ebpf lock"),
                    old,
                    now.map(|k| (k, value)),
                )?;
            }
            self.policy.roots[i].inode = now;
        }
        Ok(())
    }

    /// Remembers which records opened a write session (writes, and creating or
    /// truncating opens for writing) until their close marker. True when `f`
    /// is such a record.
    fn track_session(&mut self, f: &FileRecord) -> bool {
        const WRITE_ACCESS: u64 = (libc::O_WRONLY | libc::O_RDWR) as u64;
        let opens = match f.op {
            op::MODIFIED => !matches!(f.sys, sys::FALLOCATE | sys::VFS_FALLOCATE),
            op::CREATED | op::TRUNCATED => {
                matches!(
                    f.sys,
                    sys::OPEN | sys::OPENAT | sys::OPENAT2 | sys::CREAT | sys::VFS_OPEN
                ) && f.flags & WRITE_ACCESS != 0
            }
            // The mapping is a write session: its release (or the exit) hashes the file.
            op::MAPPED_WRITABLE => f.sys != sys::MMAP,
            _ => false,
        };
        if opens {
            let list = self.sessions.entry(f.process.tgid).or_default();
            if !list.iter().any(|o| o.same_session(f)) {
                list.push(decode::CompactFileRecord::keep(f));
            }
        } else if f.op == op::CLOSED_WRITE && f.sys != sys::EXIT {
            if let Some(list) = self.sessions.get_mut(&f.process.tgid) {
                list.retain(|o| !o.same_session(f));
            }
        }
        opens
    }

    /// Confirms that a record concerns the policy, and finds its root.
    /// Inode verdicts are trusted; candidates and multi-component names under a
    /// non-recursive root are checked on the path string.
    fn place(
        &self,
        f: &FileRecord,
        path: &ResolvedPath,
        target: Option<&ResolvedPath>,
        is_dir: Option<bool>,
    ) -> Option<(Option<usize>, &'static str)> {
        let kernel_root = self
            .policy
            .roots
            .get(f.root_id as usize)
            .map(|_| f.root_id as usize);
        let simple = |p: &ResolvedPath| !p.multi_component_name;
        if f.verdict == verdict::WATCHED && simple(path) && target.is_none_or(simple) {
            let root = kernel_root?;
            return self
                .policy
                .entry_kind_ok(root, Path::new(&*path.path), is_dir)
                .then_some((Some(root), "inode"));
        }
        let by_string = |p: &ResolvedPath| self.policy.root_for(Path::new(&*p.path), is_dir);
        if let Some(r) = by_string(path).or_else(|| target.and_then(by_string)) {
            return Some((Some(r), "path"));
        }
        // Renaming or removing a directory on the way to a root moves or removes watched files.
        if matches!(f.op, op::RENAMED | op::RMDIR)
            && self.policy.is_ancestor_of_root(Path::new(&*path.path))
        {
            return Some((None, "path"));
        }
        None
    }

    /// Remembers a `systemctl` / `service` run (argv and process) for the
    /// systemd watcher, which attributes unit changes to it.
    fn control_program(&mut self, e: &sensor_common::ExecRecord) {
        let Some(inv) = self.invocations.clone() else {
            return;
        };
        let exe = self.procs.get(e.process.tgid).and_then(|p| p.exe.clone());
        if !crate::inventory::systemd::Invocations::is_control_program(
            exe.as_deref(),
            &cstr(&e.process.comm),
        ) {
            return;
        }
        let n = (e.args_len as usize).min(e.args.len());
        let args = e.args[..n]
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let process = self.process(&e.process);
        let ns = self.boot_offset_ns + e.ts_boot_ns as i128;
        let at = std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
        inv.record(crate::inventory::systemd::Invocation {
            at,
            args,
            process,
            exited: None,
        });
    }

    /// The process record of an event: built once per process and shared until
    /// its credentials, name or table entry change.
    fn process(&mut self, p: &ProcessInfo) -> Arc<Process> {
        if let Some((info, built)) = self.process_cache.get(&p.tgid) {
            if info == p {
                return built.clone();
            }
        }
        let built = Arc::new(self.build_process(p));
        self.process_cache.insert(p.tgid, (*p, built.clone()));
        built
    }

    fn build_process(&mut self, p: &ProcessInfo) -> Process {
        let entry = self.procs.lookup(p.tgid).cloned();
        let parent = |q: &ProcInfo| ParentProcess {
            pid: q.pid,
            exe: q.exe.clone(),
            comm: q.comm.clone(),
            cmdline: q.cmdline.clone(),
        };
        let mut ancestry: Vec<ParentProcess> = self
            .procs
            .ancestry(p.tgid)
            .into_iter()
            .map(parent)
            .collect();
        let parent_entry = ancestry.first().cloned();
        // Beyond the parent, exe and comm say enough; command lines can be huge.
        for a in &mut ancestry {
            a.cmdline = None;
        }
        let login_uid = Some(p.loginuid).filter(|u| *u != u32::MAX);
        Process {
            pid: p.tgid,
            tid: p.pid,
            ppid: p.ppid,
            exe: entry.as_ref().and_then(|e| e.exe.clone()),
            cmdline: entry.as_ref().and_then(|e| e.cmdline.clone()),
            comm: cstr(&p.comm),
            uid: p.uid,
            user: self.names.user(p.uid),
            gid: p.gid,
            group: self.names.group(p.gid),
            euid: p.euid,
            egid: p.egid,
            login_uid,
            login_user: login_uid.and_then(|u| self.names.user(u)),
            session_id: Some(p.sessionid).filter(|s| *s != u32::MAX),
            cgroup_id: p.cgroup_id,
            mnt_ns: p.mntns,
            start_time: self.rfc3339(p.start_boottime).to_string(),
            container_id: entry.as_ref().and_then(|e| e.container_id.clone()),
            parent: parent_entry,
            ancestry,
        }
    }

    fn rfc3339(&mut self, boot_ns: u64) -> Time {
        let ns = self.boot_offset_ns + boot_ns as i128;
        // i64 arithmetic when it fits (until 2262): i128 division is a libcall.
        let (secs, nanos) = match i64::try_from(ns) {
            Ok(ns) => (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000)),
            Err(_) => (
                ns.div_euclid(1_000_000_000) as i64,
                ns.rem_euclid(1_000_000_000) as i64,
            ),
        };
        self.stamps.at(secs, nanos as u32)
    }

    fn event(
        &mut self,
        kind: &'static str,
        action: &'static str,
        body: Body,
        boot_ns: u64,
    ) -> Event {
        Event::new(kind, action, self.rfc3339(boot_ns), self.host, body)
    }

    pub(super) fn emit_sensor(&mut self, action: &'static str, info: SensorInfo) -> Result<()> {
        let ev = sensor_event(self.host, action, info);
        self.push(Input::Sensor(ev))
    }

    fn write(&mut self, c: Change) -> Result<()> {
        self.changes += 1;
        self.push(Input::Change(c))
    }
}

/// Event times, with the calendar part kept for the last second written:
/// records come in bursts within a second, and the calendar arithmetic is
/// most of the cost of a time.
#[derive(Default)]
struct Stamps {
    sec: Option<i64>,
    text: [u8; 30],
}

impl Stamps {
    /// As [`rfc3339_nanos`] for `secs` and `nanos` (below one second) since
    /// the epoch; a time chrono cannot represent is written as the epoch.
    fn at(&mut self, secs: i64, nanos: u32) -> Time {
        if self.sec != Some(secs) {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
            self.text.copy_from_slice(rfc3339_nanos(&t).as_bytes());
            self.sec = Some(secs);
        }
        let mut b = self.text;
        put_digits(&mut b[20..29], nanos % 1_000_000_000);
        // SAFETY: `text` is ASCII (from rfc3339_nanos) and put_digits writes
        // ASCII digits; this runs for every record, so no second check.
        Time::new(unsafe { std::str::from_utf8_unchecked(&b) })
    }
}

/// `major:minor` names of device numbers, the last one kept: a run of records
/// is nearly always on one file system.
#[derive(Default)]
struct DeviceNames {
    last: Option<(u32, Arc<str>)>,
}

impl DeviceNames {
    fn name(&mut self, dev: u32) -> Arc<str> {
        match &self.last {
            Some((d, name)) if *d == dev => name.clone(),
            _ => self.last.insert((dev, major_minor(dev).into())).1.clone(),
        }
    }
}

/// `2026-11-26T23:13:10.527875993Z`, as chrono's `to_rfc3339_opts(Nanos,
/// true)` writes it for years 0-9999, without its formatting machinery: this
/// runs for every kernel record.
fn rfc3339_nanos(t: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let mut b = [0u8; 30];
    let mut put = |at: usize, width: usize, v: u32| put_digits(&mut b[at..at + width], v);
    put(0, 4, t.year().clamp(0, 9999) as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    // A leap second is carried in the nanoseconds, as chrono writes it: :60.
    let nanos = t.nanosecond();
    put(17, 2, t.second() + nanos / 1_000_000_000);
    put(20, 9, nanos % 1_000_000_000);
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (29, b'Z'),
    ] {
        b[at] = c;
    }
    String::from_utf8(b.to_vec()).expect("ASCII")
}

/// Writes the last `dst.len()` decimal digits of `v` into `dst`, zero-padded.
fn put_digits(dst: &mut [u8], mut v: u32) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// A kernel `dev_t` as `major:minor`, without the formatting machinery
/// (this runs for every file event).
fn major_minor(dev: u32) -> String {
    fn push_decimal(s: &mut String, v: u32) {
        let width = v.checked_ilog10().unwrap_or(0) as usize + 1;
        let mut digits = [0u8; 10];
        put_digits(&mut digits[..width], v);
        s.push_str(std::str::from_utf8(&digits[..width]).expect("digits"));
    }
    let mut s = String::with_capacity(12);
    push_decimal(&mut s, dev >> 20);
    s.push(':');
    push_decimal(&mut s, dev & 0xfffff);
    s
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

fn boot_offset_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME)
}

/// `source.tier` of a file record.
pub fn tier_name(t: u8) -> &'static str {
    match t {
        sensor_common::tier::FENTRY => "fentry",
        sensor_common::tier::KPROBE => "kprobe",
        _ => "tracepoint",
    }
}

fn mknod_type(mode: u32) -> &'static str {
    // mknod with type bits 0 creates a regular file.
    if mode & libc::S_IFMT == 0 {
        "file"
    } else {
        crate::filestate::type_name(mode)
    }
}

/// The syscall's name as it appears in `source.syscall`.
pub fn syscall_name(s: u16) -> &'static str {
    match s {
        sys::WRITE => "write",
        sys::PWRITE64 => "pwrite64",
        sys::WRITEV => "writev",
        sys::PWRITEV => "pwritev",
        sys::PWRITEV2 => "pwritev2",
        sys::OPEN => "open",
        sys::OPENAT => "openat",
        sys::OPENAT2 => "openat2",
        sys::CREAT => "creat",
        sys::CLOSE => "close",
        sys::UNLINK => "unlink",
        sys::UNLINKAT => "unlinkat",
        sys::RMDIR => "rmdir",
        sys::RENAME => "rename",
        sys::RENAMEAT => "renameat",
        sys::RENAMEAT2 => "renameat2",
        sys::LINK => "link",
        sys::LINKAT => "linkat",
        sys::SYMLINK => "symlink",
        sys::SYMLINKAT => "symlinkat",
        sys::MKDIR => "mkdir",
        sys::MKDIRAT => "mkdirat",
        sys::CHMOD => "chmod",
        sys::FCHMOD => "fchmod",
        sys::FCHMODAT => "fchmodat",
        sys::FCHMODAT2 => "fchmodat2",
        sys::CHOWN => "chown",
        sys::FCHOWN => "fchown",
        sys::LCHOWN => "lchown",
        sys::FCHOWNAT => "fchownat",
        sys::TRUNCATE => "truncate",
        sys::FTRUNCATE => "ftruncate",
        sys::FALLOCATE => "fallocate",
        sys::UTIMENSAT => "utimensat",
        sys::UTIMES => "utimes",
        sys::UTIME => "utime",
        sys::FUTIMESAT => "futimesat",
        sys::SETXATTR => "setxattr",
        sys::LSETXATTR => "lsetxattr",
        sys::FSETXATTR => "fsetxattr",
        sys::REMOVEXATTR => "removexattr",
        sys::LREMOVEXATTR => "lremovexattr",
        sys::FREMOVEXATTR => "fremovexattr",
        sys::MKNOD => "mknod",
        sys::MKNODAT => "mknodat",
        sys::DUP2 => "dup2",
        sys::DUP3 => "dup3",
        sys::EXIT => "exit",
        sys::RW_VERIFY_AREA => "rw_verify_area",
        sys::VFS_UNLINK => "vfs_unlink",
        sys::VFS_RENAME => "vfs_rename",
        sys::NOTIFY_CHANGE => "notify_change",
        sys::VFS_LINK => "vfs_link",
        sys::VFS_SYMLINK => "vfs_symlink",
        sys::VFS_MKDIR => "vfs_mkdir",
        sys::VFS_RMDIR => "vfs_rmdir",
        sys::VFS_OPEN => "vfs_open",
        sys::VFS_SETXATTR => "vfs_setxattr",
        sys::VFS_REMOVEXATTR => "vfs_removexattr",
        sys::VFS_FALLOCATE => "vfs_fallocate",
        sys::SECURITY_MMAP_FILE => "security_mmap_file",
        sys::VFS_MKNOD => "vfs_mknod",
        sys::SECURITY_FILE_MPROTECT => "security_file_mprotect",
        sys::VFS_SET_ACL => "vfs_set_acl",
        sys::VFS_REMOVE_ACL => "vfs_remove_acl",
        sys::FPUT => "__fput",
        sys::SENDFILE => "sendfile",
        sys::COPY_FILE_RANGE => "copy_file_range",
        sys::SPLICE => "splice",
        sys::MMAP => "mmap",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_written_major_colon_minor() {
        for dev in [0, 1, 8 << 20 | 1, 259 << 20 | 0xfffff, u32::MAX] {
            assert_eq!(major_minor(dev), format!("{}:{}", dev >> 20, dev & 0xfffff));
        }
    }

    #[test]
    fn times_within_a_second_reuse_its_calendar_part_and_stay_exact() {
        let mut stamps = Stamps::default();
        for (secs, nanos) in [
            (1_795_999_990, 5),
            (1_795_999_990, 999_999_999),
            (1_795_999_991, 0),
            (1_795_999_990, 123_456_789),
            (951_868_799, 1), // 2000-02-29T23:59:59
            (951_868_800, 2), // 2000-03-01
            (0, 0),
        ] {
            let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
            assert_eq!(
                stamps.at(secs, nanos).as_str(),
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            );
        }
    }

    #[test]
    fn event_times_are_written_as_chrono_writes_them() {
        let check = |secs: i64, nanos: u32| {
            let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
            assert_eq!(
                rfc3339_nanos(&t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            );
        };
        check(0, 0);
        check(1_795_999_990, 527_875_993);
        check(1_795_999_999, 999_999_999);
        // 2016-12-31T23:59:60.5Z, a leap second as chrono carries it.
        check(1_483_228_799, 1_500_000_000);
        check(253_402_300_799, 1); // 9999-12-31T23:59:59
        let mut s: i64 = 951_782_400; // 2000-02-29
        for _ in 0..2000 {
            check(s, (s % 1_000_000_000) as u32);
            s += 86_399 * 7 + 13;
        }
    }
}
