//! Serializing events: the native schema, OCSF 1.x and ECS, chosen per sink.
use crate::event::Event;
use serde::Deserialize;

pub mod ecs;
pub mod ocsf;

/// The schema a sink writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `vigil/0.2`, see docs/event-schema.md.
    #[default]
    Native,
    /// OCSF 1.x File System Activity (class_uid 1001).
    Ocsf,
    /// Elastic Common Schema.
    Ecs,
}

/// One event as a single line of JSON in `format` (no trailing newline).
pub fn render(format: Format, ev: &Event) -> Vec<u8> {
    let out = match format {
        Format::Native => serde_json::to_vec(ev),
        Format::Ocsf => serde_json::to_vec(&ocsf::map(ev)),
        Format::Ecs => serde_json::to_vec(&ecs::map(ev)),
    };
    out.expect("events serialize: all keys are strings")
}
