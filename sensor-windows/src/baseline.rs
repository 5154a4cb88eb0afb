//! Registry values and their baseline: what "before" and "after" are made of.
//!
//! A set-value event says which value changed, not what it holds, so the
//! interpreter reads the new value (through a [`RegistryReader`]) and takes the
//! old one from the [`RegistryBaseline`]. Values larger than
//! [`MAX_INLINE_DATA`] are kept as a BLAKE3 digest and their size: enough to
//! tell that they changed without keeping megabytes of binary blobs.
use std::collections::BTreeMap;

/// Larger values are stored as a digest.
pub const MAX_INLINE_DATA: usize = 4096;

/// Registry value types (`REG_*`).
pub mod reg_type {
    pub const NONE: u32 = 0;
    pub const SZ: u32 = 1;
    pub const EXPAND_SZ: u32 = 2;
    pub const BINARY: u32 = 3;
    pub const DWORD: u32 = 4;
    pub const DWORD_BIG_ENDIAN: u32 = 5;
    pub const LINK: u32 = 6;
    pub const MULTI_SZ: u32 = 7;
    pub const QWORD: u32 = 11;
}

/// The name of a `REG_*` type, e.g. `REG_SZ`.
pub fn type_name(t: u32) -> &'static str {
    match t {
        reg_type::NONE => "REG_NONE",
        reg_type::SZ => "REG_SZ",
        reg_type::EXPAND_SZ => "REG_EXPAND_SZ",
        reg_type::BINARY => "REG_BINARY",
        reg_type::DWORD => "REG_DWORD",
        reg_type::DWORD_BIG_ENDIAN => "REG_DWORD_BIG_ENDIAN",
        reg_type::LINK => "REG_LINK",
        reg_type::MULTI_SZ => "REG_MULTI_SZ",
        8 => "REG_RESOURCE_LIST",
        9 => "REG_FULL_RESOURCE_DESCRIPTOR",
        10 => "REG_RESOURCE_REQUIREMENTS_LIST",
        reg_type::QWORD => "REG_QWORD",
        _ => "REG_UNKNOWN",
    }
}

/// A value's content: the raw bytes, or a digest of large data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryData {
    Bytes(Vec<u8>),
    /// Lower-case hex BLAKE3 of data over [`MAX_INLINE_DATA`] bytes.
    Blake3 {
        hex: String,
        size: u64,
    },
}

/// A registry value as the baseline keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryValue {
    pub value_type: u32,
    pub data: RegistryData,
}

impl RegistryValue {
    /// A value from its type and raw data (as `RegQueryValueExW` returns it).
    pub fn new(value_type: u32, data: &[u8]) -> RegistryValue {
        let data = if data.len() > MAX_INLINE_DATA {
            RegistryData::Blake3 {
                hex: blake3::hash(data).to_hex().to_string(),
                size: data.len() as u64,
            }
        } else {
            RegistryData::Bytes(data.to_vec())
        };
        RegistryValue { value_type, data }
    }

    /// A `REG_SZ` value (UTF-16LE with its terminating NUL, as Windows stores it).
    pub fn sz(s: &str) -> RegistryValue {
        let mut b: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        b.extend([0, 0]);
        RegistryValue::new(reg_type::SZ, &b)
    }

    /// A `REG_DWORD` value.
    pub fn dword(v: u32) -> RegistryValue {
        RegistryValue::new(reg_type::DWORD, &v.to_le_bytes())
    }

    /// `REG_SZ`, `REG_DWORD`...
    pub fn type_name(&self) -> &'static str {
        type_name(self.value_type)
    }

    /// Size of the data in bytes.
    pub fn size(&self) -> u64 {
        match &self.data {
            RegistryData::Bytes(b) => b.len() as u64,
            RegistryData::Blake3 { size, .. } => *size,
        }
    }

    /// The data as people read it: strings decoded (multi-strings joined by
    /// `\n`), numbers in decimal, anything else as lower-case hex; `blake3:<hex>`
    /// for large data.
    pub fn display(&self) -> String {
        let b = match &self.data {
            RegistryData::Blake3 { hex, .. } => return format!("blake3:{hex}"),
            RegistryData::Bytes(b) => b,
        };
        let utf16 = |b: &[u8]| -> Vec<u16> {
            b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        match self.value_type {
            reg_type::SZ | reg_type::EXPAND_SZ | reg_type::LINK => {
                let w = utf16(b);
                let end = w.iter().position(|&c| c == 0).unwrap_or(w.len());
                String::from_utf16_lossy(&w[..end])
            }
            reg_type::MULTI_SZ => utf16(b)
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(String::from_utf16_lossy)
                .collect::<Vec<_>>()
                .join("\n"),
            reg_type::DWORD if b.len() == 4 => {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string()
            }
            reg_type::DWORD_BIG_ENDIAN if b.len() == 4 => {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]).to_string()
            }
            reg_type::QWORD if b.len() == 8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a).to_string()
            }
            _ => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("registry value {key}\\{value} does not exist")]
    NotFound { key: String, value: String },
    #[error("cannot read registry value {key}\\{value}: {message}")]
    Failed {
        key: String,
        value: String,
        message: String,
    },
}

/// Reads a value's current type and data. `key` is in short form
/// (`HKLM\SOFTWARE\...`); `value` is the value name (empty: the default value).
///
/// Injected so the interpreter can be tested without a registry; on Windows
/// the `regread` module implements it with `RegGetValueW`.
pub trait RegistryReader: Send {
    /// The value's current type and data; `NotFound` when it does not exist.
    fn read(&self, key: &str, value: &str) -> Result<RegistryValue, ReadError>;
}

/// A reader for tests and for hosts without a registry: a map.
#[derive(Debug, Default, Clone)]
pub struct MapReader {
    pub values: BTreeMap<(String, String), RegistryValue>,
}

impl MapReader {
    /// Sets a value (keys and names compare case-insensitively).
    pub fn set(&mut self, key: &str, value: &str, v: RegistryValue) {
        self.values
            .insert((key.to_lowercase(), value.to_lowercase()), v);
    }

    /// Removes a value (as a delete would).
    pub fn remove(&mut self, key: &str, value: &str) {
        self.values
            .remove(&(key.to_lowercase(), value.to_lowercase()));
    }
}

impl RegistryReader for MapReader {
    fn read(&self, key: &str, value: &str) -> Result<RegistryValue, ReadError> {
        self.values
            .get(&(key.to_lowercase(), value.to_lowercase()))
            .cloned()
            .ok_or_else(|| ReadError::NotFound {
                key: key.to_string(),
                value: value.to_string(),
            })
    }
}

/// The last known state of each watched value, keyed case-insensitively by
/// (key, value name).
#[derive(Debug, Default, Clone)]
pub struct RegistryBaseline {
    values: BTreeMap<(String, String), RegistryValue>,
}

impl RegistryBaseline {
    /// An empty baseline.
    pub fn new() -> RegistryBaseline {
        RegistryBaseline::default()
    }

    fn id(key: &str, value: &str) -> (String, String) {
        (key.to_lowercase(), value.to_lowercase())
    }

    /// The known state of a value (names compare case-insensitively).
    pub fn get(&self, key: &str, value: &str) -> Option<&RegistryValue> {
        self.values.get(&Self::id(key, value))
    }

    /// Records a value's state; returns the previous one.
    pub fn set(&mut self, key: &str, value: &str, v: RegistryValue) -> Option<RegistryValue> {
        self.values.insert(Self::id(key, value), v)
    }

    /// Forgets a value; returns what it was.
    pub fn remove(&mut self, key: &str, value: &str) -> Option<RegistryValue> {
        self.values.remove(&Self::id(key, value))
    }

    /// Forgets every value of a key and of its subkeys (the key was deleted);
    /// returns how many were known.
    pub fn remove_key(&mut self, key: &str) -> usize {
        let k = key.to_lowercase();
        let sub = format!("{k}\\");
        let before = self.values.len();
        self.values
            .retain(|(key, _), _| *key != k && !key.starts_with(&sub));
        before - self.values.len()
    }

    /// How many values are known.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No value is known.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every (key, value name, value), in key order (lower-cased names).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &RegistryValue)> {
        self.values
            .iter()
            .map(|((k, n), v)| (k.as_str(), n.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_display_as_people_read_them() {
        assert_eq!(RegistryValue::sz("FIMTEST").display(), "FIMTEST");
        assert_eq!(RegistryValue::sz("FIMTEST").size(), 16);
        assert_eq!(RegistryValue::dword(7).display(), "7");
        assert_eq!(
            RegistryValue::new(reg_type::BINARY, &[1, 0xab]).display(),
            "01ab"
        );
        let multi: Vec<u8> = "a\0bc\0\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            RegistryValue::new(reg_type::MULTI_SZ, &multi).display(),
            "a\nbc"
        );
        assert_eq!(RegistryValue::sz("x").type_name(), "REG_SZ");
    }

    #[test]
    fn large_values_are_kept_as_a_digest() {
        let big = vec![7u8; MAX_INLINE_DATA + 1];
        let v = RegistryValue::new(reg_type::BINARY, &big);
        assert_eq!(v.size(), big.len() as u64);
        assert!(matches!(&v.data, RegistryData::Blake3 { hex, .. } if hex.len() == 64));
        assert!(v.display().starts_with("blake3:"));
        assert_ne!(
            v,
            RegistryValue::new(reg_type::BINARY, &vec![8u8; MAX_INLINE_DATA + 1])
        );
    }

    #[test]
    fn baseline_is_case_insensitive_and_drops_deleted_keys() {
        let mut b = RegistryBaseline::new();
        b.set(r"HKLM\SOFTWARE\Vigil", "A", RegistryValue::dword(1));
        b.set(r"HKLM\SOFTWARE\Vigil\Sub", "B", RegistryValue::dword(2));
        b.set(r"HKLM\SOFTWARE\VigilOther", "C", RegistryValue::dword(3));
        assert_eq!(
            b.get(r"hklm\software\vigil", "a"),
            Some(&RegistryValue::dword(1))
        );
        assert_eq!(b.remove_key(r"HKLM\Software\Vigil"), 2);
        assert_eq!(b.len(), 1, "a sibling with the same prefix stays");
    }
}
