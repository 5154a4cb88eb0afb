//! Where events go: stdout, files, syslog, HTTP collectors.
//!
//! The emit stage renders each event once per schema and hands the line to every
//! sink that uses that schema. Sinks never block the pipeline for long: network
//! sinks queue and spool to disk, and report trouble as [`Health`] notes, which
//! the emit stage turns into `sensor` events on the other sinks.
use crate::event::Severity;
use crate::schema::Format;

/// One rendered event.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub seq: u64,
    /// Seconds since the Unix epoch of the event's `time`.
    pub epoch: f64,
    pub host: String,
    pub kind: &'static str,
    pub action: String,
    pub severity: Severity,
    /// One line of JSON, without the newline.
    pub line: std::sync::Arc<[u8]>,
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
