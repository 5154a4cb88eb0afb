//! Where events go: stdout, files, syslog, HTTP collectors.
//!
//! The emit stage renders each event once per schema and hands the line to every
//! sink that uses that schema. Sinks never block the pipeline for long: network
//! sinks queue and spool to disk, and report trouble as [`Health`] notes, which
//! the emit stage turns into `sensor` events on the other sinks.
use crate::event::Severity;
use crate::schema::Format;

mod config;
pub mod file;
pub mod http;
pub mod stdout;
pub mod syslog;

pub use config::{Facility, HttpKind, HumanDuration, SinkConfig};

/// One rendered event, borrowed from the emitter: one is made per sink and
/// event, and a sink that keeps the line copies it.
#[derive(Debug, Clone)]
pub struct Rendered<'a> {
    pub seq: u64,
    /// Seconds since the Unix epoch of the event's `time`.
    pub epoch: f64,
    pub host: &'a str,
    pub kind: &'static str,
    pub action: &'a str,
    pub severity: Severity,
    /// One line of JSON, without the newline.
    pub line: &'a [u8],
}

/// A sink's report about its own delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub sink: String,
    pub state: HealthState,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthState {
    /// Delivery fails; events are kept (spooled) and retried.
    Degraded,
    /// Delivery works again after being degraded.
    Recovered,
    /// Events were lost for good (e.g. spool full); `lost` counts them.
    Gap { lost: u64 },
}

pub trait Sink: Send {
    /// A name for messages, e.g. `file:/var/log/vigil.json`.
    fn name(&self) -> &str;
    fn format(&self) -> Format;
    /// Accepts one event. Must not block for long.
    fn send(&mut self, ev: &Rendered) -> anyhow::Result<()>;
    /// Pushes buffered events towards their destination.
    fn flush(&mut self) -> anyhow::Result<()>;
    /// Health notes since the last call.
    fn take_health(&mut self) -> Vec<Health> {
        Vec::new()
    }
    /// Delivers what is queued (bounded wait) and stops.
    fn close(self: Box<Self>) -> anyhow::Result<()>;
}

/// Opens the sink `cfg` describes. `host` is the name reported in events (the
/// syslog HOSTNAME and the HEC `host` when an event has none).
///
/// Errors start with `sink <type>:` and name the key to fix.
pub fn open(cfg: &SinkConfig, host: &str) -> anyhow::Result<Box<dyn Sink>> {
    cfg.check()?;
    Ok(match cfg {
        SinkConfig::Stdout { format } => Box::new(stdout::StdoutSink::new(*format)),
        SinkConfig::File { .. } => {
            Box::new(file::FileSink::open(file::FileOptions::from_config(cfg)?)?)
        }
        SinkConfig::Syslog { .. } => Box::new(syslog::SyslogSink::open(cfg, host)?),
        SinkConfig::Http { .. } => Box::new(http::HttpSink::open(cfg, host)?),
    })
}

/// Health bookkeeping shared by the sinks: one `Degraded` per outage, one
/// `Recovered` when it ends, and `Gap` notes whose counts add up exactly.
#[derive(Debug)]
pub(crate) struct HealthNotes {
    sink: String,
    degraded: bool,
    notes: Vec<Health>,
}

impl HealthNotes {
    pub(crate) fn new(sink: &str) -> HealthNotes {
        HealthNotes {
            sink: sink.to_string(),
            degraded: false,
            notes: Vec::new(),
        }
    }

    pub(crate) fn is_degraded(&self) -> bool {
        self.degraded
    }

    /// Delivery failed; noted once until [`HealthNotes::recovered`].
    pub(crate) fn degraded(&mut self, message: impl Into<String>) {
        if !self.degraded {
            self.degraded = true;
            self.push(HealthState::Degraded, message.into());
        }
    }

    /// Delivery works again; noted only after [`HealthNotes::degraded`].
    pub(crate) fn recovered(&mut self, message: impl Into<String>) {
        if self.degraded {
            self.degraded = false;
            self.push(HealthState::Recovered, message.into());
        }
    }

    /// `n` events are lost for good. Consecutive losses for the same reason
    /// fold into one note (not yet taken) so the counts stay exact and few.
    pub(crate) fn lost(&mut self, n: u64, message: impl Into<String>) {
        if n == 0 {
            return;
        }
        let message = message.into();
        if let Some(Health {
            state: HealthState::Gap { lost },
            message: m,
            ..
        }) = self.notes.last_mut()
        {
            if *m == message {
                *lost += n;
                return;
            }
        }
        self.push(HealthState::Gap { lost: n }, message);
    }

    fn push(&mut self, state: HealthState, message: String) {
        self.notes.push(Health {
            sink: self.sink.clone(),
            state,
            message,
        });
    }

    pub(crate) fn take(&mut self) -> Vec<Health> {
        std::mem::take(&mut self.notes)
    }
}

/// Locks a mutex even if a thread panicked while holding it: the notes stay
/// usable, and losing health notes is worse than reading a half-updated list.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sinks for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::schema::Format;
    use std::sync::{Arc, Mutex};

    /// A sink that records lines, or fails every send and reports itself degraded.
    pub(crate) struct Probe {
        pub name: String,
        pub failing: bool,
        pub lines: Arc<Mutex<Vec<String>>>,
        pub health: Vec<Health>,
    }

    impl Probe {
        /// A working sink recording into `lines`.
        pub(crate) fn recording(lines: &Arc<Mutex<Vec<String>>>) -> Box<dyn Sink> {
            Box::new(Probe {
                name: "probe".into(),
                failing: false,
                lines: lines.clone(),
                health: Vec::new(),
            })
        }
    }

    impl Sink for Probe {
        fn name(&self) -> &str {
            &self.name
        }
        fn format(&self) -> Format {
            Format::Native
        }
        fn send(&mut self, ev: &Rendered) -> anyhow::Result<()> {
            if self.failing {
                self.health.push(Health {
                    sink: self.name.clone(),
                    state: HealthState::Gap { lost: 1 },
                    message: "spool full".into(),
                });
                anyhow::bail!("receiver down");
            }
            let line = String::from_utf8(ev.line.to_vec()).unwrap();
            self.lines.lock().unwrap().push(line);
            Ok(())
        }
        fn flush(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
        fn take_health(&mut self) -> Vec<Health> {
            std::mem::take(&mut self.health)
        }
        fn close(self: Box<Self>) -> anyhow::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_notes_fold_gaps_and_note_each_outage_once() {
        let mut h = HealthNotes::new("x");
        h.recovered("not degraded: ignored");
        h.degraded("down");
        h.degraded("still down");
        h.lost(2, "queue full");
        h.lost(3, "queue full");
        h.lost(1, "too large");
        h.recovered("up");
        let states: Vec<_> = h.take().into_iter().map(|n| n.state).collect();
        assert_eq!(
            states,
            vec![
                HealthState::Degraded,
                HealthState::Gap { lost: 5 },
                HealthState::Gap { lost: 1 },
                HealthState::Recovered
            ]
        );
        assert!(h.take().is_empty());
    }
}
