//! The last stage: sequence numbers, rendering per schema, and the sinks.
use crate::event::{Body, Event, SensorInfo};
use crate::integrity::{Chain, HostKey};
use crate::rules::RuleSet;
use crate::schema::{render_into, render_sealed, Format, Seal};
use crate::sink::{HealthState, Rendered, Sink};
use anyhow::Result;

pub struct Emitter {
    sinks: Vec<Box<dyn Sink>>,
    rules: RuleSet,
    host: String,
    seq: u64,
    journal: Option<Journal>,
    /// Trouble found before the first event (a journal that could not be
    /// opened), reported with it.
    early: Vec<(String, String)>,
    /// The hash chain over the native rendering (`vigil run` with a host key).
    chain: Option<Chain>,
    /// Sum of `lost` over the gap events emitted so far.
    lost_total: u64,
    /// When the first event was emitted (uptime of heartbeats).
    started: Option<std::time::Instant>,
    /// Each format's rendering of the event being delivered, lent to the
    /// sinks (those that keep a line copy it): kept from event to event, so
    /// a line costs no allocation.
    lines: [Vec<u8>; 3],
}

/// The store's change journal, appended in batches: one transaction per idle
/// moment of the pipeline once it is [`JOURNAL_MIN_AGE`] old, per 4 096
/// events, or per [`JOURNAL_MAX_AGE`] (a continuous flood never idles: the
/// journal still stays about a second behind the feed, which is what a
/// `kill -9` can take from it).
struct Journal {
    store: crate::store::Store,
    /// Checkpoints off the pipeline's thread; None if it could not start
    /// (SQLite then checkpoints in commits, as by default).
    _checkpointer: Option<crate::store::Checkpointer>,
    in_tx: usize,
    /// When the open transaction began.
    opened: std::time::Instant,
    max_age: std::time::Duration,
}

/// The oldest an open journal transaction gets before it is committed.
pub const JOURNAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// The youngest open journal transaction that a short pause between two
/// batches commits ([`Emitter::flush_between_batches`]). Each commit writes
/// the last page of the journal, of its blocks and of each index to the WAL
/// again: committing at every pause of a flood wrote ~6× the journal's size.
pub const JOURNAL_MIN_AGE: std::time::Duration = std::time::Duration::from_millis(50);

impl Journal {
    fn new(store: crate::store::Store, max_age: std::time::Duration) -> Journal {
        let checkpointer = store
            .checkpoint_in_background(std::time::Duration::from_secs(1))
            .map_err(|e| tracing::warn!("{e:#}"))
            .ok();
        Journal {
            _checkpointer: checkpointer,
            store,
            in_tx: 0,
            opened: std::time::Instant::now(),
            max_age,
        }
    }

    /// `line`: the event's native rendering.
    fn append(&mut self, ev: &Event, line: &[u8]) -> Result<()> {
        if self.in_tx == 0 {
            self.store.begin()?;
            self.opened = std::time::Instant::now();
        }
        let json = std::str::from_utf8(line).unwrap_or_default().trim_end();
        self.store.journal_rendered(ev, json)?;
        self.in_tx += 1;
        if self.in_tx >= 4096 || self.opened.elapsed() >= self.max_age {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.commit_if_older(std::time::Duration::ZERO)
    }

    fn commit_if_older(&mut self, min_age: std::time::Duration) -> Result<()> {
        if self.in_tx > 0 && self.opened.elapsed() >= min_age {
            self.in_tx = 0;
            self.store.commit()?;
        }
        Ok(())
    }
}

impl Emitter {
    pub fn new(sinks: Vec<Box<dyn Sink>>, rules: RuleSet, host: String) -> Emitter {
        Emitter {
            sinks,
            rules,
            host,
            seq: 0,
            journal: None,
            early: Vec::new(),
            chain: None,
            lost_total: 0,
            started: None,
            lines: Default::default(),
        }
    }

    /// Seals every event into a hash chain under the host key: each carries
    /// `key_id` and `chain` (see `crate::integrity`).
    pub fn with_chain(mut self, key: HostKey) -> Emitter {
        self.chain = Some(Chain::new(key));
        self
    }

    /// Appends every emitted event to the store's journal (`vigil run`). When
    /// the store cannot be opened, the sensor runs without it and says so in a
    /// `health` event.
    pub fn with_journal(self, store: Result<crate::store::Store>) -> Emitter {
        self.with_journal_age(store, JOURNAL_MAX_AGE)
    }

    /// As [`Emitter::with_journal`], committing transactions older than `max_age`.
    pub fn with_journal_age(
        mut self,
        store: Result<crate::store::Store>,
        max_age: std::time::Duration,
    ) -> Emitter {
        match store {
            Ok(store) => self.journal = Some(Journal::new(store, max_age)),
            Err(e) => self
                .early
                .push(("journal".into(), format!("events are not journaled: {e:#}"))),
        }
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The journal's store connection, for stages that keep state in the
    /// store in step with the events they emit (the software inventory).
    /// Writes join the journal's open transaction.
    pub fn store(&self) -> Option<&crate::store::Store> {
        self.journal.as_ref().map(|j| &j.store)
    }

    /// The `seq` of the last event emitted.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Applies the rules, numbers the event and hands it to every sink. A sink
    /// that fails is reported in a `health` event; the event still reaches the others.
    pub fn emit(&mut self, ev: Event) -> Result<()> {
        self.emit_with(ev, |_| {})
    }

    /// As [`Emitter::emit`], and hands the event as emitted (rules applied,
    /// numbered) to `record` first, e.g. to append it to the store's journal.
    pub fn emit_with(&mut self, mut ev: Event, record: impl FnOnce(&Event)) -> Result<()> {
        self.rules.evaluate(&mut ev);
        self.number(&mut ev);
        record(&ev);
        let mut failures = std::mem::take(&mut self.early);
        let chain_hex = self.native_line(&ev);
        if let Some(j) = &mut self.journal {
            if let Err(e) = j.append(&ev, &self.lines[Format::Native as usize]) {
                // Once, not per event: the sinks still get every event.
                failures.push((
                    "journal".into(),
                    format!("journal stopped, events are no longer appended: {e:#}"),
                ));
                self.journal = None;
            }
        }
        self.deliver(&ev, chain_hex, &mut failures);
        self.report_health(failures)
    }

    /// Renders the native line, sealed into the chain when the run has one
    /// (the chain links the native rendering, in seq order, whatever formats
    /// the sinks write); returns the chain value.
    fn native_line(&mut self, ev: &Event) -> Option<String> {
        let out = &mut self.lines[Format::Native as usize];
        match &mut self.chain {
            Some(chain) => {
                let canonical = crate::schema::native_canonical(ev, chain.key_id());
                let (line, hex) = chain.seal_owned(canonical);
                *out = line;
                Some(hex)
            }
            None => {
                render_into(Format::Native, ev, out);
                None
            }
        }
    }

    /// Assigns the next `seq`, and the run's counters to heartbeat and stop
    /// events.
    fn number(&mut self, ev: &mut Event) {
        self.seq += 1;
        ev.seq = self.seq;
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        if let Body::Sensor(info) = &mut ev.body {
            if matches!(ev.action, "heartbeat" | "stop") {
                info.events_emitted = Some(self.seq - 1);
                info.lost_total = Some(self.lost_total);
                info.uptime_s = Some(started.elapsed().as_secs());
            }
            if ev.action == "gap" {
                self.lost_total += info.lost.unwrap_or(0);
            }
        }
    }

    /// Renders the event once per format in use (sealing it into the chain
    /// when the run has one) and hands it to every sink; a sink that fails is
    /// added to `failures`.
    fn deliver(
        &mut self,
        ev: &Event,
        chain_hex: Option<String>,
        failures: &mut Vec<(String, String)>,
    ) {
        // The native line is rendered already.
        let mut rendered = [false; 3];
        rendered[Format::Native as usize] = true;
        let epoch = ev.epoch_seconds();
        for sink in &mut self.sinks {
            let format = sink.format();
            let line = &mut self.lines[format as usize];
            if !std::mem::replace(&mut rendered[format as usize], true) {
                match (&self.chain, &chain_hex) {
                    (Some(c), Some(hex)) => {
                        let seal = Seal {
                            key_id: c.key_id(),
                            chain: hex,
                        };
                        *line = render_sealed(format, ev, seal);
                    }
                    _ => render_into(format, ev, line),
                }
            }
            let r = Rendered {
                seq: ev.seq,
                epoch,
                host: ev.host,
                kind: ev.kind,
                action: ev.action,
                severity: ev.severity,
                line: line.as_slice(),
            };
            if let Err(e) = sink.send(&r) {
                failures.push((sink.name().to_string(), format!("{e:#}")));
            }
        }
    }

    /// Flushes the sinks and commits the journal.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_journal_older_than(std::time::Duration::ZERO)
    }

    /// As [`Emitter::flush`] in a short pause: the journal's transaction is
    /// committed only once it is [`JOURNAL_MIN_AGE`] old.
    pub fn flush_between_batches(&mut self) -> Result<()> {
        self.flush_journal_older_than(JOURNAL_MIN_AGE)
    }

    fn flush_journal_older_than(&mut self, min_age: std::time::Duration) -> Result<()> {
        let mut failures = Vec::new();
        if let Some(j) = &mut self.journal {
            if let Err(e) = j.commit_if_older(min_age) {
                failures.push(("journal".into(), format!("journal stopped: {e:#}")));
                self.journal = None;
            }
        }
        for sink in &mut self.sinks {
            if let Err(e) = sink.flush() {
                failures.push((sink.name().to_string(), format!("{e:#}")));
            }
        }
        self.report_health(failures)
    }

    /// Delivers what the sinks hold and closes them.
    pub fn close(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(mut j) = self.journal.take() {
            if let Err(e) = j.commit() {
                errors.push(format!("journal: {e:#}"));
            }
        }
        for sink in std::mem::take(&mut self.sinks) {
            let name = sink.name().to_string();
            if let Err(e) = sink.close() {
                errors.push(format!("{name}: {e:#}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("sinks failed at close: {}", errors.join("; "))
        }
    }

    /// A sensor event stamped now.
    pub fn sensor_event(&self, action: &'static str, info: SensorInfo) -> Event {
        sensor_event(&self.host, action, info)
    }

    fn report_health(&mut self, failures: Vec<(String, String)>) -> Result<()> {
        let mut notes: Vec<(String, &'static str, Option<u64>, String)> = failures
            .into_iter()
            .map(|(sink, msg)| (sink, "health", None, msg))
            .collect();
        for sink in &mut self.sinks {
            for h in sink.take_health() {
                let (action, lost) = match h.state {
                    HealthState::Gap { lost } => ("gap", Some(lost)),
                    HealthState::Degraded | HealthState::Recovered => ("health", None),
                };
                let state = match h.state {
                    HealthState::Degraded => "degraded: ",
                    HealthState::Recovered => "recovered: ",
                    HealthState::Gap { .. } => "",
                };
                notes.push((h.sink, action, lost, format!("{state}{}", h.message)));
            }
        }
        for (sink, action, lost, message) in notes {
            let mut ev = self.sensor_event(
                action,
                SensorInfo {
                    sink: Some(sink),
                    lost,
                    lost_reason: lost.map(|_| "sink"),
                    message: Some(message),
                    ..Default::default()
                },
            );
            self.rules.evaluate(&mut ev);
            // Sent directly rather than through `emit`, so a sink that keeps
            // failing cannot recurse; the failing sink gets its own report
            // too (it queues or spools it like any event).
            self.number(&mut ev);
            let chain_hex = self.native_line(&ev);
            if let Some(j) = &mut self.journal {
                // A journal that fails here is reported with the next event.
                let _ = j.append(&ev, &self.lines[Format::Native as usize]);
            }
            let mut ignored = Vec::new();
            self.deliver(&ev, chain_hex, &mut ignored);
        }
        Ok(())
    }
}

/// A sensor event stamped with the current time.
pub fn sensor_event(host: &str, action: &'static str, info: SensorInfo) -> Event {
    Event::new(
        "sensor",
        action,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        host,
        Body::Sensor(Box::new(SensorInfo {
            version: env!("CARGO_PKG_VERSION"),
            ..info
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testing::Probe;
    use std::sync::{Arc as StdArc, Mutex};

    #[test]
    fn a_chained_run_verifies_health_events_included_and_counts_are_filled() {
        use crate::integrity::{verify::verify, HostKey};
        let good = StdArc::new(Mutex::new(Vec::new()));
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(Probe {
                name: "http".into(),
                failing: true,
                lines: StdArc::default(),
                health: Vec::new(),
            }),
            Box::new(Probe {
                name: "file".into(),
                failing: false,
                lines: good.clone(),
                health: Vec::new(),
            }),
        ];
        let key = HostKey::from_bytes([3; 32], std::path::Path::new("k"));
        let mut e = Emitter::new(sinks, RuleSet::builtin(), "h".into()).with_chain(key.clone());
        e.emit(e.sensor_event("start", SensorInfo::default()))
            .unwrap();
        e.emit(e.sensor_event("heartbeat", SensorInfo::default()))
            .unwrap();
        e.emit(e.sensor_event(
            "stop",
            SensorInfo {
                reason: Some("SIGTERM".into()),
                ..Default::default()
            },
        ))
        .unwrap();
        let lines = good.lock().unwrap().clone();
        let text = lines.join("\n") + "\n";
        let s = verify(text.as_bytes(), &key).unwrap();
        assert!(s.ok(), "{:#?}\n{text}", s.findings);
        let evs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let hb = evs.iter().find(|e| e["action"] == "heartbeat").unwrap();
        // start + its health + gap before the heartbeat; one event lost per failed send.
        assert_eq!(hb["events_emitted"], 3, "{hb:#}");
        assert_eq!(hb["lost_total"], 1, "{hb:#}");
        let stop = evs.iter().find(|e| e["action"] == "stop").unwrap();
        assert_eq!(stop["reason"], "SIGTERM");
        // The sum of `lost` over the gap events before it.
        let lost: u64 = evs
            .iter()
            .take_while(|e| e["action"] != "stop")
            .filter(|e| e["action"] == "gap")
            .map(|e| e["lost"].as_u64().unwrap())
            .sum();
        assert_eq!(stop["lost_total"], lost, "{stop:#}");
        assert_eq!(stop["events_emitted"], stop["seq"].as_u64().unwrap() - 1);
        assert!(evs.iter().all(|e| e["key_id"] == key.id()));
    }

    #[test]
    fn the_journal_commits_a_transaction_older_than_its_max_age_without_an_idle_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vigil.db");
        let rows = || -> i64 {
            // A plain reader: it sees committed transactions only (WAL).
            let reader = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            reader
                .query_row("SELECT count(*) FROM journal", [], |r| r.get(0))
                .unwrap()
        };
        let probe = || Probe::recording(&StdArc::default());
        // No age limit: the events wait in the open transaction for an idle
        // moment (flush) or 4 096 of them.
        let mut e = Emitter::new(vec![probe()], RuleSet::builtin(), "h".into()).with_journal_age(
            crate::store::Store::open(&db).map_err(Into::into),
            std::time::Duration::MAX,
        );
        e.emit(e.sensor_event("heartbeat", SensorInfo::default()))
            .unwrap();
        assert_eq!(rows(), 0);
        e.flush().unwrap();
        assert_eq!(rows(), 1);
        // A transaction past its age is committed by the next append, busy or not.
        let mut e = Emitter::new(vec![probe()], RuleSet::builtin(), "h".into()).with_journal_age(
            crate::store::Store::open(&db).map_err(Into::into),
            std::time::Duration::ZERO,
        );
        for _ in 0..3 {
            e.emit(e.sensor_event("heartbeat", SensorInfo::default()))
                .unwrap();
        }
        assert_eq!(rows(), 4);
    }

    #[test]
    fn a_failing_sink_is_reported_on_the_others_with_contiguous_seq() {
        let good = StdArc::new(Mutex::new(Vec::new()));
        let probe = |name: &str, failing: bool, lines: &StdArc<Mutex<Vec<String>>>| {
            Box::new(Probe {
                name: name.into(),
                failing,
                lines: lines.clone(),
                health: Vec::new(),
            }) as Box<dyn Sink>
        };
        let mut e = Emitter::new(
            vec![
                probe("http", true, &StdArc::default()),
                probe("file", false, &good),
            ],
            RuleSet::builtin(),
            "h".into(),
        );
        e.emit(e.sensor_event("start", SensorInfo::default()))
            .unwrap();
        let lines: Vec<serde_json::Value> = good
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let actions: Vec<&str> = lines
            .iter()
            .map(|l| l["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["start", "health", "gap"], "{lines:#?}");
        assert_eq!(lines[1]["sink"], "http");
        assert!(lines[1]["message"]
            .as_str()
            .unwrap()
            .contains("receiver down"));
        assert_eq!(lines[2]["lost"], 1);
        assert_eq!(lines[2]["lost_reason"], "sink");
        // The rules apply to health events too.
        assert!(lines[2]["rules"]
            .as_array()
            .unwrap()
            .contains(&"sensor-gap".into()));
        let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
}
