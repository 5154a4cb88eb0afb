//! `vigil run` on Windows: the ETW session (sensor-windows) → the
//! interpreter → the shared pipeline (coalesce, hash, rules, sinks, journal).
//!
//! The ETW callbacks hand parsed records over a bounded channel to this
//! thread, which owns the interpreter. Registry values are read into the
//! interpreter's baseline at start (so a `value_set` has its `before`).
//! ETW's own loss counters become `sensor`/`gap` events (etw_source).
pub mod scm;
pub mod service;

use crate::etw_source;
use crate::pipeline::emit::{sensor_event, Emitter};
use crate::pipeline::{Input, Pipeline, Settings};
use crate::policy::Policy;
use anyhow::{anyhow, Result};
use sensor_windows::etw;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub policy: Policy,
    pub emitter: Emitter,
    pub settings: Settings,
    /// A `heartbeat` event this often.
    pub heartbeat: Duration,
    /// Set to stop (the service control handler); Ctrl-C and Ctrl-Break
    /// on the console stop the sensor too.
    pub stop: Arc<AtomicBool>,
    /// The store (its own connection for the inventory at start); None
    /// when it cannot be opened: the inventory is then kept in memory.
    pub store: Option<std::path::PathBuf>,
    /// The verification scans (catch-up, rescan after an ETW gap,
    /// scheduled): None when there is no store.
    pub scans: Option<crate::daemon::Options>,
}

/// Software and services at start (`inventory::win`): compared with what
/// the store holds, the first reading recorded. Returns the tracker (None
/// when `[inventory] enabled = false`) and the events to emit.
fn inventory_start(
    opts: &Options,
    host: &str,
) -> (Option<crate::inventory::win::Tracker>, Vec<Input>) {
    use crate::inventory::win;
    if !opts.policy.config.inventory.enabled {
        return (None, Vec::new());
    }
    let mut out = Vec::new();
    let error = |message: String| {
        Input::Sensor(sensor_event(
            host,
            "error",
            crate::event::SensorInfo {
                message: Some(message),
                ..Default::default()
            },
        ))
    };
    let scm = match scm::statuses() {
        Ok(s) => Some(s),
        Err(e) => {
            out.push(error(format!(
                "{e}; service starts and stops are not reported"
            )));
            None
        }
    };
    let store = opts
        .store
        .as_deref()
        .map(crate::store::Store::open)
        .transpose()
        .unwrap_or_else(|e| {
            out.push(error(format!("cannot open the store for the software inventory: {e}; changes made while the sensor was down are not reported")));
            None
        });
    let (sw, units) = match &store {
        Some(st) => (
            st.inventory(win::SOFTWARE_MANAGER).unwrap_or_default(),
            st.units(win::SCM).unwrap_or_default(),
        ),
        None => (None, None),
    };
    let mut tracker = win::Tracker::new(host.to_string());
    let started = tracker.start(&crate::registry::WinTree, scm.as_ref(), sw, units);
    if let Some(st) = &store {
        let r = started
            .record_software
            .as_ref()
            .map_or(Ok(()), |inv| {
                st.record_inventory(win::SOFTWARE_MANAGER, inv)
            })
            .and_then(|_| {
                started
                    .record_services
                    .as_ref()
                    .map_or(Ok(()), |u| st.record_units(win::SCM, u))
            });
        if let Err(e) = r {
            out.push(error(format!("the Windows software and service states could not be stored: {e}; the next start may report changes again")));
        }
    }
    out.extend(started.events.into_iter().map(Input::Sensor));
    (Some(tracker), out)
}

/// Set by the console control handler; the console event is kept for the
/// stop event's reason.
static CONSOLE_STOP: AtomicBool = AtomicBool::new(false);
static CONSOLE_EVENT: AtomicU32 = AtomicU32::new(0);

unsafe extern "system" fn on_console(ctrl: u32) -> windows_sys::Win32::Foundation::BOOL {
    CONSOLE_EVENT.store(ctrl, Ordering::Relaxed);
    CONSOLE_STOP.store(true, Ordering::Relaxed);
    1
}

/// How many inputs travel to the pipeline in one hand-off.
const BATCH: usize = 256;

pub fn run(opts: Options) -> Result<()> {
    // Before the policy's keys are spelled: ETW names CurrentControlSet's
    // keys by the set's number.
    match sensor_windows::regread::current_control_set() {
        Ok(n) => sensor_windows::paths::set_current_control_set(n),
        Err(e) => tracing::warn!(
            r"cannot read HKLM\SYSTEM\Select\Current ({e}); keys under ControlSet001 are taken for CurrentControlSet"
        ),
    }
    let wpol = crate::registry::windows_policy(&opts.policy.config)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(65_536);
    // First, so that a host (or Wine) without ETW, or a process that is not
    // elevated, fails before anything is emitted.
    let session = etw::start(tx).map_err(|e| {
        anyhow!("{e}: vigil run on Windows takes its events from ETW kernel providers; run it elevated (an Administrator console, or the service: `vigil service install`)")
    })?;
    let mut baseline = sensor_windows::RegistryBaseline::new();
    let seeded = sensor_windows::regread::seed_policy(&mut baseline, &wpol);
    tracing::info!("registry baseline: {seeded} values read");
    let watches: Vec<String> = wpol
        .files
        .iter()
        .map(|w| w.path.clone())
        .chain(wpol.registry.iter().map(|w| w.key.clone()))
        .collect();
    let mut interp = sensor_windows::Interpreter::new(
        wpol,
        etw::volume_map(),
        Box::new(sensor_windows::regread::WinRegReader),
        baseline,
    );
    let host = opts.emitter.host().to_string();
    let (mut tracker, inventory) = inventory_start(&opts, &host);
    let mut pipeline = Pipeline::start(opts.settings, opts.emitter)?;
    pipeline.send(vec![Input::Sensor(sensor_event(
        &host,
        "start",
        crate::event::SensorInfo {
            version: env!("CARGO_PKG_VERSION"),
            pid: Some(std::process::id()),
            watches,
            heartbeat_s: Some(opts.heartbeat.as_secs()),
            ..Default::default()
        },
    ))])?;
    // After the start event, which opens the feed.
    if !inventory.is_empty() {
        pipeline.send(inventory)?;
    }
    let scans = match opts.scans {
        Some(o) => Some(crate::daemon::ScanDaemon::start(o, pipeline.sender())?),
        None => None,
    };
    let mut scm_polled = Instant::now();
    // SAFETY: registers a handler that only stores to atomics.
    unsafe {
        windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(on_console), 1);
    }
    let mut beat = Instant::now();
    let mut malformed_logged = 0u32;
    let (reason, message) = loop {
        let mut batch = Vec::new();
        // Woken in time for a held session's deadline (`send` expires it).
        let wait = pipeline
            .next_deadline()
            .map_or(Duration::from_millis(200), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200))
            });
        match rx.recv_timeout(wait) {
            Ok(first) => {
                // Drain what is there, up to a batch.
                for input in std::iter::once(first).chain(rx.try_iter().take(BATCH)) {
                    match input {
                        etw::Input::Record(h, rec) => {
                            for c in interp.push(&h, rec) {
                                if let (Some(t), true) = (&mut tracker, c.action.is_registry()) {
                                    t.touched(
                                        &c.path,
                                        Some(etw_source::process(&c)),
                                        Instant::now(),
                                    );
                                }
                                if c.action == sensor_windows::Action::Gap {
                                    if let Some(s) = &scans {
                                        s.gap(c.lost.unwrap_or(0), "etw");
                                    }
                                    if let Some(t) = &mut tracker {
                                        t.rescan(Instant::now());
                                    }
                                }
                                batch.push(etw_source::input(&host, &c));
                            }
                        }
                        etw::Input::Malformed(e) => {
                            // Counted in the stop event's statistics; the first
                            // few are named so that a new Windows build's
                            // manifest change is visible.
                            interp.count_malformed();
                            if malformed_logged < 20 {
                                malformed_logged += 1;
                                tracing::warn!("ETW record skipped: {e}");
                            }
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                break ("error", Some("the ETW session ended".to_string()));
            }
        }
        if let Some(t) = &mut tracker {
            let scm = (scm_polled.elapsed() >= crate::inventory::win::SCM_POLL)
                .then(|| {
                    scm_polled = Instant::now();
                    scm::statuses().ok()
                })
                .flatten();
            let (events, _) = t.due(&crate::registry::WinTree, scm.as_ref(), Instant::now());
            batch.extend(events.into_iter().map(Input::Sensor));
        }
        if beat.elapsed() >= opts.heartbeat {
            beat = Instant::now();
            batch.push(Input::Sensor(sensor_event(
                &host,
                "heartbeat",
                Default::default(),
            )));
        }
        pipeline.send(batch)?;
        if opts.stop.load(Ordering::Relaxed) {
            break ("service stop", None);
        }
        if CONSOLE_STOP.load(Ordering::Relaxed) {
            let why = match CONSOLE_EVENT.load(Ordering::Relaxed) {
                0 => "Ctrl-C",
                1 => "Ctrl-Break",
                2 => "console closed",
                5 | 6 => "logoff or shutdown",
                _ => "console event",
            };
            break (why, None);
        }
    };
    session.stop();
    // The scan thread's last events go out before the stop event.
    if let Some(s) = scans {
        s.stop();
    }
    let s = interp.stats();
    let stats = format!(
        "{} records, {} changes, {} malformed, {} unknown file objects, {} unresolved keys, {} evicted sessions, {} events and {} buffers lost",
        s.records,
        s.changes,
        s.malformed,
        s.unknown_file_objects,
        s.unresolved_keys,
        s.evicted,
        s.lost_events,
        s.lost_buffers
    );
    tracing::info!("ETW: {stats}");
    let message = Some(match message {
        Some(m) => format!("{m}; {stats}"),
        None => stats,
    });
    pipeline.send(vec![Input::Stop(sensor_event(
        &host,
        "stop",
        crate::event::SensorInfo {
            pid: Some(std::process::id()),
            reason: Some(reason.to_string()),
            message,
            ..Default::default()
        },
    ))])?;
    pipeline.join()
}
