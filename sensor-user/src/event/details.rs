//! An event's `details`: the few facts that qualify its action.
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use smallvec::SmallVec;
use std::borrow::Cow;

/// A small map, sorted by key like a JSON object from `serde_json::Map`.
///
/// A file event has zero to three entries (`direction`, `replaced`,
/// `hash_note`...) and nearly every key is a literal, so the entries are
/// kept inline with borrowed keys: a `serde_json::Map` was a tree node and
/// an owned key per entry, allocated on one thread and freed on another, for
/// every event and every folded change. The common string values are
/// shared statics too ([`fixed!`](crate::fixed)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details(SmallVec<[(Cow<'static, str>, Cow<'static, Value>); 2]>);

/// A `&'static Value` holding a string literal, made once: for the
/// `details` values set on most events (`fixed!("within")`), which would
/// otherwise be a string allocated per event.
#[macro_export]
macro_rules! fixed {
    ($s:literal) => {{
        static VALUE: std::sync::LazyLock<serde_json::Value> =
            std::sync::LazyLock::new(|| serde_json::Value::from($s));
        &*VALUE
    }};
}

static NULL: Value = Value::Null;

impl Details {
    pub fn new() -> Details {
        Details::default()
    }

    /// Sets `key`, replacing what it held; returns the value it replaced.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: Value) -> Option<Value> {
        self.set(key.into(), Cow::Owned(value))
    }

    /// As [`Details::insert`], with a shared value (see [`fixed!`](crate::fixed)).
    pub fn insert_fixed(&mut self, key: &'static str, value: &'static Value) -> Option<Value> {
        self.set(Cow::Borrowed(key), Cow::Borrowed(value))
    }

    fn set(&mut self, key: Cow<'static, str>, value: Cow<'static, Value>) -> Option<Value> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value).into_owned()),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        // A scan, lengths first: a few entries at most, and the rules look
        // up several keys per event, most of them absent.
        self.0
            .iter()
            .find(|(k, _)| k.len() == key.len() && **k == *key)
            .map(|(_, v)| &**v)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key)
            .ok()
            .map(|i| self.0.remove(i).1.into_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }
}

/// `details["key"]`: the value, or null when the key is absent (as
/// indexing a `serde_json::Value` does).
impl std::ops::Index<&str> for Details {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl<K: Into<Cow<'static, str>>, V: Into<Value>> FromIterator<(K, V)> for Details {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Details {
        let mut d = Details::new();
        for (k, v) in iter {
            d.insert(k, v.into());
        }
        d
    }
}

impl From<serde_json::Map<String, Value>> for Details {
    fn from(m: serde_json::Map<String, Value>) -> Details {
        m.into_iter().collect()
    }
}

impl From<Details> for Value {
    fn from(d: Details) -> Value {
        Value::Object(
            (d.0.into_iter())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(&**k, &**v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_sorted_by_key_and_a_key_is_set_once() {
        let mut d = Details::new();
        d.insert("replaced", true.into());
        d.insert("direction", "within".into());
        d.insert(String::from("hash_note"), "gone".into());
        d.insert_fixed("fixed", crate::fixed!("shared"));
        assert_eq!(
            d.insert("direction", "in".into()),
            Some(Value::from("within"))
        );
        let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["direction", "fixed", "hash_note", "replaced"]);
        assert_eq!(d["fixed"], "shared");
        assert_eq!(d["direction"], "in");
        assert_eq!(d["absent"], Value::Null);
        assert_eq!(d.remove("hash_note"), Some(Value::from("gone")));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn it_serializes_as_serde_json_map_does() {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("uid", Value::from(0)),
            ("b", true.into()),
            ("a\"", "x".into()),
        ] {
            m.insert(k.into(), v);
        }
        let d = Details::from(m.clone());
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
        assert_eq!(Value::from(d), Value::Object(m));
    }
}
