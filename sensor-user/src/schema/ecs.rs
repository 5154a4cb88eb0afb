//! ECS mapping. (Stub: filled by the schema work.)
use crate::event::Event;

pub fn map(_ev: &Event) -> serde_json::Value {
    serde_json::json!({})
}
