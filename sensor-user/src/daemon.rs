//! The verification scans `vigil run` makes by itself, on one background
//! thread at idle priority:
//!
//! - at start-up, the baseline if the store has none (`init`), else a
//!   catch-up scan for changes made while the sensor was down (`catch-up`,
//!   preceded by a `downtime` event with the window);
//! - after the kernel dropped events, a rescan so the lost changes become
//!   findings (`rescan`);
//! - the scheduled comparison with the baseline, weekly by default
//!   (`scheduled`; PCI DSS 11.5.2).
//!
//! Findings and the scans' own `scan_started` / `scan_finished` events go
//! through the running pipeline, so they are numbered, evaluated and
//! journaled in order with the realtime events. The thread has its own store
//! connection (WAL lets it read while the journal is written).
use crate::config::ScanSection;
use crate::event::{Downtime, Event, ScanInfo, SensorInfo};
use crate::pipeline::emit::sensor_event;
use crate::pipeline::Input;
use crate::policy::Policy;
use crate::scan::{self, Against, Findings, ScanRequest, WalkOptions};
use crate::store::Store;
use anyhow::Result;
use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after the last gap the rescan starts: lets the burst end and
/// the pipeline journal what it did deliver.
const RESCAN_DELAY: Duration = Duration::from_secs(5);

/// The longest the thread sleeps without looking at the clock again (the
/// wall clock may step; a suspended host wakes up late).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How long the scan thread waits for the store's write lock.
const STORE_BUSY: Duration = Duration::from_secs(60);

/// What the previous run left in the journal, read before this run wrote to it.
#[derive(Debug, Clone)]
pub struct Previous {
    /// Time of the newest journal event.
    pub last_seen: String,
    /// Whether it was a `stop` event.
    pub clean_stop: bool,
}

impl Previous {
    pub fn read(store: &Store) -> Result<Option<Previous>> {
        Ok(store.last_journal()?.map(|(time, kind, action)| Previous {
            last_seen: time,
            clean_stop: kind == "sensor" && action == "stop",
        }))
    }
}

pub struct Options {
    pub policy: Policy,
    pub store: PathBuf,
    pub host: String,
    /// When this run started.
    pub started: DateTime<Utc>,
    pub previous: Option<Previous>,
    /// The host key: baseline rows are sealed and checked with it.
    pub row_key: Option<[u8; 32]>,
}

enum Wake {
    Gap { lost: u64, reason: &'static str },
}

/// The running scan thread.
pub struct ScanDaemon {
    wake: Sender<Wake>,
    cancel: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ScanDaemon {
    /// Starts the thread; `out` is the pipeline's input.
    pub fn start(opts: Options, out: Sender<Vec<Input>>) -> Result<ScanDaemon> {
        let (wake, wake_rx) = crossbeam_channel::unbounded();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-scan".into())
            .spawn(move || {
                scan::lower_thread_priority();
                let mut d = Daemon {
                    section: opts.policy.config.scan.clone(),
                    opts,
                    out,
                    cancel: c,
                };
                if let Err(e) = d.run(wake_rx) {
                    // The pipeline is gone (stopping) or the store failed: say
                    // so if anyone still listens.
                    tracing::warn!("scan thread: {e:#}");
                    let _ = d.sensor(
                        "error",
                        SensorInfo {
                            message: Some(format!("verification scans stopped: {e:#}")),
                            ..Default::default()
                        },
                    );
                }
            })?;
        Ok(ScanDaemon {
            wake,
            cancel,
            thread,
        })
    }

    /// The kernel dropped events: schedule a rescan.
    pub fn gap(&self, lost: u64, reason: &'static str) {
        let _ = self.wake.send(Wake::Gap { lost, reason });
    }

    /// Interrupts a running scan and waits for the thread; call before the
    /// pipeline's stop so the thread's last events are delivered.
    pub fn stop(self) {
        self.cancel.store(true, Ordering::Relaxed);
        drop(self.wake);
        let _ = self.thread.join();
    }
}

struct Daemon {
    opts: Options,
    section: ScanSection,
    out: Sender<Vec<Input>>,
    cancel: Arc<AtomicBool>,
}

/// Findings go into the pipeline, which numbers and journals them.
struct ToPipeline<'a> {
    out: &'a Sender<Vec<Input>>,
    host: &'a str,
}

impl Findings for ToPipeline<'_> {
    fn host(&self) -> &str {
        self.host
    }

    fn report(&mut self, store: &Store, ev: Event, observed: Instant) -> Result<()> {
        let stopped = || anyhow::anyhow!("the pipeline stopped");
        match self.out.try_send(vec![Input::Finding { ev, observed }]) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(stopped()),
            Err(crossbeam_channel::TrySendError::Full(batch)) => {
                // The pipeline is busy, and may be waiting for the store's
                // write lock to journal: never wait for it while holding the
                // scan's write transaction (that was a deadlock under a
                // flood). Commit, wait, and open the next one.
                let in_tx = !store.conn().is_autocommit();
                if in_tx {
                    store.commit()?;
                }
                self.out.send(batch).map_err(|_| stopped())?;
                if in_tx {
                    store.begin()?;
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What the scan thread does next (the loop's decision, apart from the
/// clock and the store so that it is tested on every platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The scheduled comparison is due (`due` is at or before now).
    Scheduled,
    /// A gap has been quiet for [`RESCAN_DELAY`]: rescan.
    Rescan,
    /// Nothing yet: sleep at most this long (woken early by a gap).
    Sleep(Duration),
}

/// The decision: the scheduled scan first (it also covers what a gap
/// lost), then the rescan of a gap quiet for [`RESCAN_DELAY`]; else sleep
/// until whichever comes first, and never longer than [`MAX_SLEEP`] (the
/// clock may step). `gap_quiet`: how long since the last gap, if one waits.
pub(crate) fn next(
    due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    gap_quiet: Option<Duration>,
) -> Next {
    if due.is_some_and(|d| d <= now) {
        return Next::Scheduled;
    }
    if gap_quiet.is_some_and(|q| q >= RESCAN_DELAY) {
        return Next::Rescan;
    }
    let mut sleep = MAX_SLEEP;
    if let Some(d) = due {
        sleep = sleep.min((d - now).to_std().unwrap_or_default());
    }
    if let Some(q) = gap_quiet {
        sleep = sleep.min(RESCAN_DELAY.saturating_sub(q));
    }
    Next::Sleep(sleep)
}

/// A gap seen and not rescanned yet.
struct PendingGap {
    first: DateTime<Utc>,
    last: Instant,
    lost: u64,
    reasons: Vec<&'static str>,
}

impl Daemon {
    fn run(&mut self, wake: Receiver<Wake>) -> Result<()> {
        // The pipeline journals in transactions of up to 4 096 events, held
        // for as long as a flood keeps it busy: wait for the lock longer than
        // a command line would.
        let mut store = Store::open_with_timeout(&self.opts.store, STORE_BUSY)?;
        if let Some(k) = &self.opts.row_key {
            store = store.with_row_mac(k);
            // Opening a baseline whose rows fail their MAC is an alert.
            let (_, bad) = store.verify_rows()?;
            if !bad.is_empty() {
                let message = scan::tampered_message(&store, &bad, "checked at start");
                self.sensor(
                    "baseline_tampered",
                    SensorInfo {
                        message: Some(message),
                        ..Default::default()
                    },
                )?;
            }
        }
        let stale = store.interrupt_stale_scans()?;
        if stale > 0 {
            tracing::warn!("{stale} scans were left running by a previous run: marked interrupted");
        }
        if store.file_count()? == 0 {
            if self.section.auto_baseline {
                self.baseline(&store, Vec::new())?;
            } else {
                self.sensor(
                    "health",
                    SensorInfo {
                        message: Some(format!(
                        "{}: no baseline: verification scans are off until `vigil baseline init`",
                        store.path().display()
                    )),
                        ..Default::default()
                    },
                )?;
            }
        } else if let Some(prev) = self.previous(&store)? {
            // Roots the policy gained since the baseline are recorded, not
            // reported file by file as created.
            let mut new_roots = Vec::new();
            for r in &self.opts.policy.roots {
                if r.path.exists() && !store.has_rows_under(&r.path)? {
                    new_roots.push(r.path.clone());
                }
            }
            if self.section.auto_baseline && !new_roots.is_empty() {
                self.baseline(&store, new_roots)?;
            }
            let downtime = self.downtime(&prev);
            self.sensor(
                "downtime",
                SensorInfo {
                    downtime: Some(Box::new(downtime.clone())),
                    ..Default::default()
                },
            )?;
            if !prev.clean_stop {
                // Whatever the killed run held (ring buffer, coalescing) is lost.
                self.sensor("gap", SensorInfo {
                    lost_reason: Some("unclean_stop"),
                    message: Some(format!(
                        "the previous run ended without a stop event (killed, crashed or power lost) after {}; \
                         the catch-up scan reports what changed since",
                        prev.last_seen
                    )),
                    ..Default::default()
                })?;
            }
            if self.section.catch_up {
                let mut details = crate::event::Details::new();
                details.insert("downtime", serde_json::to_value(&downtime)?);
                self.scan(&store, "catch-up", Against::LastReported, details)?;
            }
        }
        let mut gap: Option<PendingGap> = None;
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Utc::now();
            let last = store
                .last_scan_started(&["scheduled", "init"])?
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc));
            let due = self.section.schedule.due(last, self.opts.started);
            let sleep = match next(due, now, gap.as_ref().map(|g| g.last.elapsed())) {
                Next::Scheduled => {
                    self.scan(&store, "scheduled", Against::Baseline, Default::default())?;
                    continue;
                }
                Next::Rescan => {
                    let g = gap.take().expect("a gap is pending");
                    let mut details = crate::event::Details::new();
                    details.insert(
                        "gap",
                        serde_json::json!({
                            "since": g.first.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                            "lost": g.lost,
                            "reasons": g.reasons,
                        }),
                    );
                    if !self.scan(&store, "rescan", Against::LastReported, details)? {
                        // Failed (the store stayed locked...): the changes
                        // the kernel dropped are still unreported; try again.
                        gap = Some(PendingGap {
                            last: Instant::now(),
                            ..g
                        });
                    }
                    continue;
                }
                Next::Sleep(d) => d,
            };
            match wake.recv_timeout(sleep) {
                Ok(Wake::Gap { lost, reason }) if self.section.rescan_after_gap => {
                    let g = gap.get_or_insert_with(|| PendingGap {
                        first: Utc::now(),
                        last: Instant::now(),
                        lost: 0,
                        reasons: Vec::new(),
                    });
                    g.last = Instant::now();
                    g.lost += lost;
                    if !g.reasons.contains(&reason) {
                        g.reasons.push(reason);
                    }
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// The previous run's end; without one (the first run after `vigil
    /// baseline init`), the baseline's: nothing watched in between either.
    fn previous(&self, store: &Store) -> Result<Option<Previous>> {
        if let Some(p) = &self.opts.previous {
            return Ok(Some(p.clone()));
        }
        Ok(store.last_baseline()?.map(|t| Previous {
            last_seen: t,
            clean_stop: true,
        }))
    }

    fn downtime(&self, prev: &Previous) -> Downtime {
        let to = self.opts.started;
        let seconds = DateTime::parse_from_rfc3339(&prev.last_seen)
            .map(|f| (to - f.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0);
        Downtime {
            from: prev.last_seen.clone(),
            to: to.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            seconds,
            clean_stop: prev.clean_stop,
        }
    }

    fn walk_options(&self) -> WalkOptions {
        let mut o = WalkOptions::from_policy(&self.opts.policy);
        o.progress = false;
        o.background = true;
        o.cancel = Some(self.cancel.clone());
        o.commit_every = Duration::from_millis(100);
        o
    }

    /// Records the baseline of every root (`init`), or of `only` these
    /// (`update`: roots the policy gained; not a comparison, so it does not
    /// move the schedule).
    fn baseline(&mut self, store: &Store, only: Vec<PathBuf>) -> Result<bool> {
        let kind = if only.is_empty() { "init" } else { "update" };
        let info = |status, against| ScanInfo {
            kind,
            status,
            against,
            ..Default::default()
        };
        self.sensor(
            "scan_started",
            SensorInfo {
                scan: Some(Box::new(info("running", "none"))),
                ..Default::default()
            },
        )?;
        let t0 = Instant::now();
        let mut opts = self.walk_options();
        opts.only = only;
        let r = scan::baseline(store, &self.opts.policy, &opts, kind);
        // Windows: the registry values too, or every later registry scan
        // would report each of them as new.
        #[cfg(windows)]
        if r.is_ok() && kind == "init" {
            let recorded =
                crate::registry::windows_policy(&self.opts.policy.config).and_then(|wpol| {
                    crate::registry::baseline(store, &wpol, &crate::registry::WinTree)
                });
            if let Err(e) = recorded {
                self.registry_error(&e)?;
            }
        }
        self.finished(info("ok", "none"), r, t0)
    }

    fn scan(
        &mut self,
        store: &Store,
        kind: &'static str,
        against: Against,
        details: crate::event::Details,
    ) -> Result<bool> {
        let info = |status| ScanInfo {
            kind,
            status,
            against: match against {
                Against::Baseline => "baseline",
                Against::LastReported => "last_reported",
            },
            ..Default::default()
        };
        self.sensor(
            "scan_started",
            SensorInfo {
                scan: Some(Box::new(info("running"))),
                ..Default::default()
            },
        )?;
        let t0 = Instant::now();
        let req = ScanRequest {
            kind,
            against,
            details,
        };
        let mut out = ToPipeline {
            out: &self.out,
            host: &self.opts.host,
        };
        let r = scan::scan(
            store,
            &self.opts.policy,
            &mut out,
            &self.walk_options(),
            &req,
        );
        #[cfg(windows)]
        if r.is_ok() {
            self.registry_scan(store, kind)?;
        }
        self.finished(info("ok"), r, t0)
    }

    /// Windows: the registry values under the policy's `[[registry]]`
    /// watches compared with their baseline (`registry.rs`), after each file
    /// scan; a failure is an `error` event, the file scan stands.
    #[cfg(windows)]
    fn registry_scan(&mut self, store: &Store, kind: &'static str) -> Result<()> {
        let wpol = match crate::registry::windows_policy(&self.opts.policy.config) {
            Ok(p) if !p.registry.is_empty() => p,
            Ok(_) => return Ok(()),
            Err(e) => return self.registry_error(&e),
        };
        let mut out = ToPipeline {
            out: &self.out,
            host: &self.opts.host,
        };
        match crate::registry::scan_recorded(
            store,
            &wpol,
            &crate::registry::WinTree,
            &mut out,
            kind,
        ) {
            Ok(_) => Ok(()),
            Err(e) => self.registry_error(&e),
        }
    }

    #[cfg(windows)]
    fn registry_error(&self, e: &anyhow::Error) -> Result<()> {
        self.sensor(
            "error",
            SensorInfo {
                message: Some(format!("registry baseline or scan failed: {e:#}")),
                ..Default::default()
            },
        )
    }

    fn finished(
        &mut self,
        mut info: ScanInfo,
        r: Result<scan::Summary>,
        t0: Instant,
    ) -> Result<bool> {
        info.duration_ms = Some(t0.elapsed().as_millis() as u64);
        let mut message = None;
        match r {
            Ok(s) => {
                info.id = Some(s.scan_id);
                info.files_seen = Some(s.files_seen);
                info.changes = Some(s.changes);
                let compared = !matches!(info.kind, "init" | "update");
                info.unattributed = compared.then_some(s.unattributed);
                info.errors = Some(s.errors);
                if !s.error_names.is_empty() {
                    message = Some(format!(
                        "{} entries could not be read: {}{}",
                        s.errors,
                        s.error_names.join("; "),
                        if s.errors as usize > s.error_names.len() {
                            "; ..."
                        } else {
                            ""
                        }
                    ));
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                info.status = if msg == scan::INTERRUPTED {
                    "interrupted"
                } else {
                    "failed"
                };
                message = Some(msg);
            }
        }
        let action = if info.status == "failed" {
            "scan_failed"
        } else {
            "scan_finished"
        };
        self.sensor(
            action,
            SensorInfo {
                scan: Some(Box::new(info)),
                message,
                ..Default::default()
            },
        )?;
        Ok(action == "scan_finished")
    }

    fn sensor(&self, action: &'static str, info: SensorInfo) -> Result<()> {
        let ev = sensor_event(&self.opts.host, action, info);
        self.out
            .send(vec![Input::Sensor(ev)])
            .map_err(|_| anyhow::anyhow!("the pipeline stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_scheduled_scan_comes_first_then_a_quiet_gap_then_sleep() {
        let now = at("2026-11-26T12:00:00Z");
        // Due (or overdue): scan now, whatever gap waits.
        assert_eq!(next(Some(now), now, None), Next::Scheduled);
        assert_eq!(
            next(Some(at("2026-11-20T00:00:00Z")), now, Some(RESCAN_DELAY)),
            Next::Scheduled
        );
        // A gap quiet for RESCAN_DELAY: rescan; still bursting: wait for the rest.
        let later = Some(at("2026-11-27T12:00:00Z"));
        assert_eq!(next(later, now, Some(RESCAN_DELAY)), Next::Rescan);
        assert_eq!(
            next(later, now, Some(Duration::from_secs(2))),
            Next::Sleep(RESCAN_DELAY - Duration::from_secs(2))
        );
        // Nothing pending: sleep until the scan is due, never past MAX_SLEEP.
        assert_eq!(next(later, now, None), Next::Sleep(MAX_SLEEP));
        assert_eq!(
            next(Some(at("2026-11-26T12:00:20Z")), now, None),
            Next::Sleep(Duration::from_secs(20))
        );
        // `off`: no scheduled scan at all.
        assert_eq!(next(None, now, None), Next::Sleep(MAX_SLEEP));
    }

    #[test]
    fn a_weekly_schedule_counts_from_the_last_scan_and_is_due_at_once_when_overdue() {
        let s = crate::schedule::Schedule::parse("weekly").unwrap();
        let started = at("2026-11-26T12:00:00Z");
        let last = at("2026-11-20T12:00:00Z");
        let due = s.due(Some(last), started).unwrap();
        assert_eq!(due, at("2026-11-27T12:00:00Z"));
        assert_eq!(next(Some(due), started, None), Next::Sleep(MAX_SLEEP));
        assert_eq!(next(Some(due), due, None), Next::Scheduled);
        // A sensor down for two weeks scans as soon as it is back.
        let back = at("2026-12-10T00:00:00Z");
        assert_eq!(next(s.due(Some(last), back), back, None), Next::Scheduled);
    }
}
