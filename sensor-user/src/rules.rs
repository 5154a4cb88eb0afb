//! Rules: severity, tags and alerts for changes. (Stub: filled by the rules work.)
use crate::event::Event;

/// A set of rules, evaluated in order.
#[derive(Debug, Default)]
pub struct RuleSet {}

impl RuleSet {
    /// Sets `severity`, `alert`, `rules`, `mitre`, `pci` and `tags` on `ev`.
    pub fn evaluate(&self, _ev: &mut Event) {}
}
