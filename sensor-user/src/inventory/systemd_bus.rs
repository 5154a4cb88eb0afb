//! The systemd watcher (Linux): systemd's D-Bus API (zbus) into service
//! events through the pipeline.
//!
//! On a thread of its own (`vigil-systemd`): connects to the configured bus
//! (`[inventory] systemd_bus`), calls `Manager.Subscribe()`, reads every
//! unit's state (ListUnits, ListUnitFiles), compares it with the states the
//! store kept from the last run, then turns signals into [`Transition`]s:
//! PropertiesChanged on units (ActiveState, SubState; a service's Result),
//! UnitNew, and UnitFilesChanged / Reloading (unit file states: systemd
//! sends no PropertiesChanged for UnitFileState, so the unit files are
//! listed again). A second thread (`vigil-dbus`) only reads signals, so
//! that the watcher's own method calls never wait behind a full queue.
//!
//! When the bus or systemd is not there, a `daemon_watch_unavailable`
//! event says why, and the watcher tries again every [`RETRY`]; a lost
//! connection is reported the same way, and what changed meanwhile is
//! reported (unattributed) when it is back.
use super::systemd::{service_event, Invocations, Origin, Tracker, Transition, UnitState};
use crate::event::{Event, SensorInfo};
use crate::pipeline::emit::sensor_event;
use crate::pipeline::Input;
use anyhow::{Context, Result};
use crossbeam_channel::{select, Receiver, Sender};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// How often an unavailable bus is tried again.
pub const RETRY: Duration = Duration::from_secs(60);

/// How long a change waits before it is attributed: the `systemctl` run
/// that asked for it reaches the process table through the ring buffer
/// (drained every 10 ms) and the decode thread, which can lag the D-Bus
/// signal.
pub const ATTRIBUTION_DELAY: Duration = Duration::from_millis(150);

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// What the watcher needs.
pub struct Options {
    /// `system`, `user`, or a D-Bus address (`unix:path=...`).
    pub bus: String,
    /// Unit types reported (`service`, `socket`, `timer`, ...).
    pub types: Vec<String>,
    pub host: String,
    /// The store (the watcher opens its own connection): the unit states of
    /// the last run. None: no catch-up at start.
    pub store: Option<PathBuf>,
    /// `systemctl` runs seen by the process table.
    pub invocations: Invocations,
}

/// The running watcher.
pub struct Watcher {
    stop: Sender<()>,
    done: Receiver<()>,
}

impl Watcher {
    /// Starts the watcher thread; its events go to `out`, after whatever
    /// was sent there before (the `start` event).
    pub fn start(o: Options, out: Sender<Vec<Input>>) -> Result<Watcher> {
        let (stop, stop_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("vigil-systemd".into())
            .spawn(move || {
                let mut w = Run::new(o, out);
                w.run(stop_rx);
                let _ = done_tx.send(());
            })
            .context("starting the systemd watcher thread")?;
        Ok(Watcher { stop, done })
    }

    /// Stops the watcher: what it holds is sent first. Waits at most 2 s (a
    /// method call to a hung systemd is not waited for).
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.recv_timeout(Duration::from_secs(2));
    }
}

/// What the signal reader hands over.
enum Signal {
    Message(zbus::Message),
    Lost(String),
}

struct Run {
    o: Options,
    out: Sender<Vec<Input>>,
    tracker: Tracker,
    conn: Option<Connection>,
    signals: Receiver<Signal>,
    /// Transitions waiting for their attribution delay, with when they
    /// were seen (monotonic, for the delay; wall clock, to compare with
    /// exec times).
    pending: VecDeque<(Instant, SystemTime, Transition, &'static str)>,
    /// Whether the last attempt failed (reported once per outage).
    unavailable: bool,
    /// Whether the states of a previous connection (or run) are known.
    synced: bool,
    retry_at: Instant,
}

impl Run {
    fn new(o: Options, out: Sender<Vec<Input>>) -> Run {
        Run {
            tracker: Tracker::new(o.types.clone()),
            o,
            out,
            conn: None,
            signals: crossbeam_channel::never(),
            pending: VecDeque::new(),
            unavailable: false,
            synced: false,
            retry_at: Instant::now(),
        }
    }

    fn send(&self, ev: Event) -> bool {
        self.out.send(vec![Input::Sensor(ev)]).is_ok()
    }

    fn sensor(&self, action: &'static str, info: SensorInfo) -> bool {
        self.send(sensor_event(&self.o.host, action, info))
    }

    fn run(&mut self, stop: Receiver<()>) {
        loop {
            if self.conn.is_none() && Instant::now() >= self.retry_at && !self.connect() {
                return;
            }
            let now = Instant::now();
            let mut wake = self.pending.front().map(|(at, ..)| *at + ATTRIBUTION_DELAY);
            if self.conn.is_none() {
                wake = Some(wake.map_or(self.retry_at, |w| w.min(self.retry_at)));
            }
            let timeout = wake.map_or(Duration::from_secs(3600), |w| {
                w.saturating_duration_since(now)
            });
            select! {
                recv(stop) -> _ => {
                    self.flush(true);
                    return;
                }
                recv(self.signals) -> s => match s {
                    Ok(Signal::Message(m)) => {
                        if let Err(e) = self.handle(&m) {
                            tracing::warn!("systemd signal not understood: {e:#}");
                        }
                    }
                    Ok(Signal::Lost(reason)) => self.lost(reason),
                    Err(_) => self.lost("the signal reader stopped".into()),
                },
                default(timeout) => {}
            }
            if !self.flush(false) {
                return;
            }
        }
    }

    /// Sends the transitions whose attribution delay is over (all when
    /// `all`). False when the pipeline is gone.
    fn flush(&mut self, all: bool) -> bool {
        let now = Instant::now();
        while let Some((at, ..)) = self.pending.front() {
            if !all && now < *at + ATTRIBUTION_DELAY {
                break;
            }
            let (_, seen, t, signal) = self.pending.pop_front().expect("front exists");
            let process = self.o.invocations.find(&t.unit, t.action, seen);
            let ev = service_event(
                &self.o.host,
                &self.o.bus,
                &t,
                Origin {
                    tier: "dbus",
                    signal,
                    process,
                },
            );
            if !self.send(ev) {
                return false;
            }
        }
        true
    }

    fn lost(&mut self, reason: String) {
        self.conn = None;
        self.signals = crossbeam_channel::never();
        self.retry_at = Instant::now() + RETRY;
        self.flush(true);
        self.unavailable = true;
        self.sensor(
            "daemon_watch_unavailable",
            SensorInfo {
                watcher: Some("systemd"),
                bus: Some(self.o.bus.clone()),
                message: Some(format!(
                    "lost the connection to systemd on the {} bus: {reason}; unit state changes are not reported until it is back (tried every {} s), then what changed meanwhile is reported",
                    self.o.bus,
                    RETRY.as_secs()
                )),
                ..Default::default()
            },
        );
    }

    /// Connects, subscribes and compares the units' states with what was
    /// known. False when the pipeline is gone.
    fn connect(&mut self) -> bool {
        match self.try_connect() {
            Ok((conn, snapshot, rx)) => {
                let stored = if self.synced {
                    Ok(Some(self.tracker.states()))
                } else {
                    self.stored_units()
                };
                let (known, trouble) = match stored {
                    Ok(k) => (k, None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                };
                let first = known.is_none();
                let changes = self.tracker.resync(known.as_ref(), snapshot);
                self.synced = true;
                self.conn = Some(conn);
                self.signals = rx;
                self.unavailable = false;
                let ok = self.sensor(
                    "daemon_watch_started",
                    SensorInfo {
                        watcher: Some("systemd"),
                        bus: Some(self.o.bus.clone()),
                        units: Some(self.tracker.len() as u64),
                        message: Some(format!(
                            "watching {} units ({}) of systemd on the {} bus{}",
                            self.tracker.len(),
                            self.o.types.join(", "),
                            self.o.bus,
                            if first && self.o.store.is_some() {
                                "; their states are recorded: changes made while the sensor is down are reported at the next start"
                            } else {
                                ""
                            }
                        )),
                        ..Default::default()
                    },
                );
                if !ok {
                    return false;
                }
                if let Some(t) = trouble {
                    self.sensor(
                        "error",
                        SensorInfo {
                            message: Some(format!("cannot read the stored unit states, so service changes made while the sensor was down are not reported: {t}")),
                            ..Default::default()
                        },
                    );
                }
                for t in &changes {
                    let ev = service_event(
                        &self.o.host,
                        &self.o.bus,
                        t,
                        Origin {
                            tier: "scan",
                            signal: "startup",
                            process: None,
                        },
                    );
                    if !self.send(ev) {
                        return false;
                    }
                }
                // Every unit, unchanged ones included: the next start
                // compares with this.
                if first {
                    if let Err(e) = self.record_units() {
                        self.sensor(
                            "error",
                            SensorInfo {
                                message: Some(format!("the unit states could not be stored; service changes made while the sensor is down will not be found: {e:#}")),
                                ..Default::default()
                            },
                        );
                    }
                }
                true
            }
            Err(reason) => {
                self.retry_at = Instant::now() + RETRY;
                if self.unavailable {
                    return true;
                }
                self.unavailable = true;
                self.sensor(
                    "daemon_watch_unavailable",
                    SensorInfo {
                        watcher: Some("systemd"),
                        bus: Some(self.o.bus.clone()),
                        message: Some(format!(
                            "{reason}: unit state changes are not reported (tried again every {} s); unit files are still watched as files",
                            RETRY.as_secs()
                        )),
                        ..Default::default()
                    },
                )
            }
        }
    }

    fn stored_units(&self) -> Result<Option<BTreeMap<String, UnitState>>> {
        let Some(path) = &self.o.store else {
            return Ok(None);
        };
        let store = crate::store::Store::open_with_timeout(path, Duration::from_secs(10))?;
        Ok(store.units(&self.o.bus)?)
    }

    fn record_units(&self) -> Result<()> {
        let Some(path) = &self.o.store else {
            return Ok(());
        };
        let store = crate::store::Store::open_with_timeout(path, Duration::from_secs(10))?;
        store.record_units(&self.o.bus, &self.tracker.states())?;
        Ok(())
    }

    /// Connection, the units' states, and the signal channel; or why not.
    #[allow(clippy::type_complexity)]
    fn try_connect(
        &self,
    ) -> std::result::Result<(Connection, BTreeMap<String, UnitState>, Receiver<Signal>), String>
    {
        let conn = connect_bus(&self.o.bus)?;
        let has: bool = conn
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "NameHasOwner",
                &(DEST,),
            )
            .and_then(|m| m.body().deserialize())
            .map_err(|e| format!("the {} bus does not answer: {e}", self.o.bus))?;
        if !has {
            return Err(format!(
                "systemd (org.freedesktop.systemd1) is not on the {} bus{}",
                self.o.bus,
                init_hint().map(|h| format!(" ({h})")).unwrap_or_default()
            ));
        }
        // Signals are matched before Subscribe and the snapshot, so that
        // nothing falls in between.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path_namespace(MANAGER_PATH)
            .map_err(|e| e.to_string())?
            .build();
        let iter = zbus::blocking::MessageIterator::for_match_rule(rule, &conn, Some(4096))
            .map_err(|e| format!("cannot receive systemd's signals: {e}"))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("vigil-dbus".into())
            .spawn(move || {
                for m in iter {
                    let sent = match m {
                        Ok(m) => tx.send(Signal::Message(m)),
                        Err(e) => {
                            let _ = tx.send(Signal::Lost(e.to_string()));
                            return;
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                let _ = tx.send(Signal::Lost("the bus closed the connection".into()));
            })
            .map_err(|e| e.to_string())?;
        manager_call::<()>(&conn, "Subscribe", &())
            .map_err(|e| format!("systemd refused Subscribe: {e}"))?;
        let snapshot = snapshot(&conn).map_err(|e| format!("cannot list systemd's units: {e}"))?;
        Ok((conn, snapshot, rx))
    }

    fn handle(&mut self, m: &zbus::Message) -> Result<()> {
        let h = m.header();
        let member = h
            .member()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let path = h.path().map(|p| p.as_str().to_string()).unwrap_or_default();
        let now = Instant::now();
        let seen = SystemTime::now();
        match member.as_str() {
            "PropertiesChanged" => {
                let Some(unit) = super::systemd::unit_from_path(&path) else {
                    return Ok(());
                };
                let (iface, changed, _): (String, HashMap<String, OwnedValue>, Vec<String>) =
                    m.body().deserialize()?;
                let get = |k: &str| changed.get(k).and_then(string);
                let t = match iface.as_str() {
                    "org.freedesktop.systemd1.Unit" => self.tracker.properties(
                        &unit,
                        get("ActiveState").as_deref(),
                        get("SubState").as_deref(),
                        get("FragmentPath").as_deref(),
                        None,
                    ),
                    "org.freedesktop.systemd1.Service" => {
                        self.tracker
                            .properties(&unit, None, None, None, get("Result").as_deref())
                    }
                    _ => None,
                };
                if let Some(t) = t {
                    self.pending.push_back((now, seen, t, "PropertiesChanged"));
                }
            }
            "UnitNew" => {
                let (unit, _): (String, OwnedObjectPath) = m.body().deserialize()?;
                self.tracker.unit_new(&unit);
            }
            "UnitFilesChanged" | "Reloading" => {
                if member == "Reloading" {
                    let (starting,): (bool,) = m.body().deserialize()?;
                    if starting {
                        return Ok(());
                    }
                }
                let Some(conn) = &self.conn else {
                    return Ok(());
                };
                let files = unit_files(conn)?;
                let signal = if member == "Reloading" {
                    "Reloading"
                } else {
                    "UnitFilesChanged"
                };
                for t in self.tracker.unit_files(&files) {
                    self.pending.push_back((now, seen, t, signal));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A string property's value.
fn string(v: &OwnedValue) -> Option<String> {
    match &**v {
        Value::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Why systemd cannot be there at all, when that is so: it is not PID 1.
pub fn init_hint() -> Option<String> {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let init = std::fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Some(format!(
        "systemd is not the init system (PID 1 is {init:?}, /run/systemd/system is missing)"
    ))
}

/// The bus named by `[inventory] systemd_bus`.
fn connect_bus(bus: &str) -> std::result::Result<Connection, String> {
    let hint = || init_hint().map(|h| format!("; {h}")).unwrap_or_default();
    let built = match bus {
        "system" => {
            let socket = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
            if let Some(p) = socket.strip_prefix("unix:path=") {
                if !std::path::Path::new(p).exists() {
                    return Err(format!("no D-Bus system bus ({p} is missing){}", hint()));
                }
            }
            zbus::blocking::connection::Builder::system().and_then(|b| b.build())
        }
        "user" => zbus::blocking::connection::Builder::session().and_then(|b| b.build()),
        address => zbus::blocking::connection::Builder::address(address).and_then(|b| b.build()),
    };
    built.map_err(|e| format!("cannot connect to the D-Bus {bus} bus: {e}{}", hint()))
}

fn manager_call<R>(
    conn: &Connection,
    method: &str,
    body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
) -> zbus::Result<R>
where
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    conn.call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), method, body)?
        .body()
        .deserialize()
}

/// ListUnitFiles: unit name → (state, path).
fn unit_files(conn: &Connection) -> zbus::Result<BTreeMap<String, (String, String)>> {
    let list: Vec<(String, String)> = manager_call(conn, "ListUnitFiles", &())?;
    Ok(list
        .into_iter()
        .filter_map(|(path, state)| {
            let name = path.rsplit('/').next()?.to_string();
            Some((name, (state, path)))
        })
        .collect())
}

type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// Every unit's state: the loaded ones (ListUnits) and every unit file
/// (ListUnitFiles; a unit not loaded is inactive).
fn snapshot(conn: &Connection) -> zbus::Result<BTreeMap<String, UnitState>> {
    let loaded: Vec<ListedUnit> = manager_call(conn, "ListUnits", &())?;
    let files = unit_files(conn)?;
    let mut out = BTreeMap::new();
    for (name, (state, path)) in &files {
        out.insert(
            name.clone(),
            UnitState {
                file_state: Some(state.clone()),
                unit_file: Some(path.clone()),
                ..UnitState::unloaded()
            },
        );
    }
    for (name, _desc, _load, active, sub, ..) in loaded {
        let e = out.entry(name).or_insert_with(UnitState::unloaded);
        e.active = active;
        e.sub = sub;
    }
    Ok(out)
}
