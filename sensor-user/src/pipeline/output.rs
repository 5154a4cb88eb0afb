//! The output stage, on a thread of its own after settle: rules, sequence
//! numbers, rendering and the sinks ([`Emitter`]), and the inventory stage
//! around them (package labels, and the events and store rows the package
//! database's changes derive).
//!
//! It needs nothing back from settle and takes its events in settle's order,
//! so the two stages run on two cores: rendering and writing cost about as
//! much as coalescing, reading states and ordering (docs/benchmarks.md).
use super::emit::{self, Emitter};
use crate::event::Event;
use anyhow::Result;
use crossbeam_channel::{Receiver, RecvTimeoutError};

/// How often the sinks are flushed while no event comes.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) struct Output {
    emitter: Emitter,
    /// The derived stage: package labels, inventory events.
    inventory: Option<crate::inventory::Stage>,
}

impl Output {
    pub(super) fn new(emitter: Emitter, inventory: Option<crate::inventory::Settings>) -> Output {
        let host = emitter.host().to_string();
        Output {
            inventory: inventory.map(|i| crate::inventory::Stage::new(i, host)),
            emitter,
        }
    }

    /// Emits every batch in order, flushing the sinks whenever no batch is
    /// waiting, and every [`IDLE_FLUSH`] while none comes: sinks retry on
    /// flush (a full disk, a receiver that is down), and what a flush
    /// reports (their health) is itself written by the next one. The
    /// journal commits in the pauses of a flood only once its transaction
    /// is [`emit::JOURNAL_MIN_AGE`] old, and always when no batch came for
    /// [`IDLE_FLUSH`]. Closes the sinks once settle hangs up.
    pub(super) fn run(mut self, rx: Receiver<Vec<Event>>) -> Result<()> {
        loop {
            match rx.recv_timeout(IDLE_FLUSH) {
                Ok(batch) => {
                    for ev in batch {
                        self.emit(ev)?;
                    }
                    if rx.is_empty() {
                        self.emitter.flush_between_batches()?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.emitter.flush()?,
                Err(RecvTimeoutError::Disconnected) => return self.emitter.close(),
            }
        }
    }

    /// Emits one event, with the inventory stage around it: the package
    /// label before the rules see it; after it, the events it derives (the
    /// inventory compared at `start`, the package changes after a change of
    /// the package database), in order right behind it.
    fn emit(&mut self, mut ev: Event) -> Result<()> {
        if ev.kind == "service" {
            return self.emit_service(ev);
        }
        if ev.kind == "package" {
            // Only sources outside the inventory stage send package events
            // (Windows' Uninstall keys): the stage emits its own directly.
            return self.emit_package(ev);
        }
        let Some(stage) = self.inventory.as_mut() else {
            return self.emitter.emit(ev);
        };
        stage.label(&mut ev);
        let db = stage
            .db_change(&ev)
            .and_then(|m| ev.file().map(|f| (m, f.process.clone(), f.source.tier)));
        let start = ev.kind == "sensor" && ev.action == "start";
        self.emitter.emit(ev)?;
        let mut trouble = Vec::new();
        let derived = if start {
            let mut stored = |manager: &str| match self
                .emitter
                .store()
                .map(|s| s.inventory(manager))
            {
                Some(Ok(inv)) => inv,
                Some(Err(e)) => {
                    trouble.push(format!("cannot read the stored {manager} inventory, so changes made while the sensor was down are not reported: {e}"));
                    None
                }
                None => None,
            };
            let (dpkg, rpm) = (stored("dpkg"), stored("rpm"));
            stage.start(dpkg, rpm, self.emitter.store().is_some())
        } else if let Some((manager, process, tier)) = db {
            stage.db_changed(manager, self.emitter.last_seq(), process, tier)
        } else {
            return Ok(());
        };
        for e in derived.events {
            self.emitter.emit(e)?;
        }
        if let Some(store) = self.emitter.store() {
            let update = |manager: &str, recorded: &Option<_>, changes: &[_]| match recorded {
                Some(inv) => store.record_inventory(manager, inv),
                None if !changes.is_empty() => store.update_inventory(manager, changes),
                None => Ok(()),
            };
            let r = update("dpkg", &derived.recorded, &derived.changes)
                .and_then(|_| update("rpm", &derived.rpm_recorded, &derived.rpm_changes));
            if let Err(e) = r {
                trouble.push(format!("the software inventory could not be stored; the next start may report these changes again: {e}"));
            }
        }
        for message in trouble {
            let host = self.emitter.host().to_string();
            self.emitter.emit(emit::sensor_event(
                &host,
                "error",
                crate::event::SensorInfo {
                    message: Some(message),
                    ..Default::default()
                },
            ))?;
        }
        Ok(())
    }

    /// Emits a service event and stores the unit's new state with it (in
    /// the journal's transaction): the next start compares with it.
    fn emit_service(&mut self, ev: Event) -> Result<()> {
        let removed = ev.action == "service_removed";
        let state = ev.service().map(|s| {
            let i = &s.service;
            (
                i.bus.clone(),
                i.unit.clone(),
                crate::inventory::systemd::UnitState {
                    active: i.state.clone(),
                    sub: i.sub_state.clone(),
                    file_state: i.file_state.clone(),
                    unit_file: i.unit_file.clone(),
                },
            )
        });
        self.emitter.emit(ev)?;
        let (Some(store), Some((bus, unit, st))) = (self.emitter.store(), state) else {
            return Ok(());
        };
        let r = if removed {
            store.delete_unit(&bus, &unit)
        } else {
            store.put_unit(&bus, &unit, &st)
        };
        if let Err(e) = r {
            let host = self.emitter.host().to_string();
            self.emitter.emit(emit::sensor_event(
                &host,
                "error",
                crate::event::SensorInfo {
                    message: Some(format!("the state of {unit} could not be stored; the next start may report this change again: {e}")),
                    ..Default::default()
                },
            ))?;
        }
        Ok(())
    }

    /// Emits a package event from outside the inventory stage (Windows'
    /// Uninstall keys) and applies it to the stored inventory in the
    /// journal's transaction, as the stage does for dpkg.
    fn emit_package(&mut self, ev: Event) -> Result<()> {
        let change = ev.package().map(|p| {
            let i = &p.package;
            let pkg = |version: &Option<String>, status: &Option<String>| {
                version.as_ref().map(|v| crate::inventory::Pkg {
                    version: v.clone(),
                    status: status.clone().unwrap_or_default(),
                })
            };
            (
                i.manager,
                crate::inventory::Change {
                    action: "package",
                    key: crate::inventory::win::package_key(i),
                    before: pkg(&i.previous_version, &i.previous_status),
                    after: pkg(&i.version, &i.status),
                },
            )
        });
        self.emitter.emit(ev)?;
        let (Some(store), Some((manager, c))) = (self.emitter.store(), change) else {
            return Ok(());
        };
        if let Err(e) = store.update_inventory(manager, std::slice::from_ref(&c)) {
            let host = self.emitter.host().to_string();
            self.emitter.emit(emit::sensor_event(
                &host,
                "error",
                crate::event::SensorInfo {
                    message: Some(format!("the {manager} inventory could not be stored; the next start may report the change of {} again: {e}", c.key.name)),
                    ..Default::default()
                },
            ))?;
        }
        Ok(())
    }
}
