//! Raw ring-buffer records → owned, typed values.
use sensor_common::{
    kind, path_flags, ExecRecord, FileRecord, PathRecord, TaskRecord, NAME_CAP, PATH_CAP,
};
use std::path::PathBuf;

/// One decoded kernel record.
pub enum Record {
    File(Box<FileRecord>),
    Exec(Box<ExecRecord>),
    Fork(TaskRecord),
    Exit(TaskRecord),
    /// `code` is a [`sensor_common::blind`] reason.
    BlindSpot(TaskRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("ring-buffer record of {len} bytes is too short for kind {kind}")]
    Short { kind: u32, len: usize },
    #[error("unknown ring-buffer record kind {0}")]
    UnknownKind(u32),
}

fn read<T: Copy>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    if bytes.len() < std::mem::size_of::<T>() {
        return Err(DecodeError::Short {
            kind,
            len: bytes.len(),
        });
    }
    // SAFETY: length checked; T is a repr(C) plain-data record from sensor-common.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let k = u32::from_ne_bytes(bytes.get(..4).and_then(|b| b.try_into().ok()).ok_or(
        DecodeError::Short {
            kind: 0,
            len: bytes.len(),
        },
    )?);
    Ok(match k {
        kind::FILE => Record::File(Box::new(read(bytes, k)?)),
        kind::EXEC => Record::Exec(Box::new(read(bytes, k)?)),
        kind::FORK => Record::Fork(read(bytes, k)?),
        kind::EXIT => Record::Exit(read(bytes, k)?),
        kind::BLIND_SPOT => Record::BlindSpot(read(bytes, k)?),
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// A path rebuilt from a [`PathRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// Absolute and lexically normalized.
    pub path: PathBuf,
    /// The literal name as passed to the syscall, when there was one.
    pub name: Option<String>,
    /// The kernel's walk stopped before the root: the path is a suffix.
    pub truncated: bool,
}

/// Joins the anchor's components (leaf first in the record) and the literal name.
pub fn resolve(rec: &PathRecord) -> Option<ResolvedPath> {
    if rec.flags & path_flags::HAS_ANCHOR == 0 {
        return None;
    }
    let used = (rec.comps_len as usize).min(PATH_CAP);
    // One string, built leaf-last. Dentry names never are `.` or `..`, so only
    // a literal name from the syscall can need normalizing.
    let mut path = String::with_capacity(used + 64);
    for c in rec.comps[..used]
        .split(|b| *b == 0)
        .rev()
        .filter(|c| !c.is_empty())
    {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(c));
    }
    let mut name = None;
    let mut normalize = false;
    if rec.flags & path_flags::HAS_NAME != 0 {
        let n = (rec.name_len as usize).min(NAME_CAP);
        let literal = String::from_utf8_lossy(&rec.name[..n]).into_owned();
        // An absolute name is relative to the anchor, which is then the task's root.
        for part in literal.split('/').filter(|p| !p.is_empty() && *p != ".") {
            normalize |= part == "..";
            path.push('/');
            path.push_str(part);
        }
        name = Some(literal);
    }
    if path.is_empty() {
        path.push('/');
    }
    let path = PathBuf::from(path);
    Some(ResolvedPath {
        path: if normalize {
            crate::config::normalize(&path)
        } else {
            path
        },
        name,
        truncated: rec.flags & path_flags::TRUNCATED != 0,
    })
}

/// A NUL-terminated byte array as a string.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(comps: &[&str], name: Option<&str>) -> PathRecord {
        let mut r = PathRecord {
            flags: path_flags::HAS_ANCHOR,
            comps_len: 0,
            name_len: 0,
            _pad: 0,
            comps: [0; PATH_CAP],
            name: [0; NAME_CAP],
        };
        let mut off = 0;
        for c in comps {
            r.comps[off..off + c.len()].copy_from_slice(c.as_bytes());
            off += c.len() + 1;
        }
        r.comps_len = off as u16;
        if let Some(n) = name {
            r.flags |= path_flags::HAS_NAME;
            r.name[..n.len()].copy_from_slice(n.as_bytes());
            r.name_len = n.len() as u16;
        }
        r
    }

    #[test]
    fn anchor_is_leaf_first() {
        let p = resolve(&record(&["passwd", "etc"], None)).unwrap();
        assert_eq!(p.path, PathBuf::from("/etc/passwd"));
    }

    #[test]
    fn names_join_and_normalize() {
        let p = resolve(&record(&["tmp"], Some("../etc/./shadow"))).unwrap();
        assert_eq!(p.path, PathBuf::from("/etc/shadow"));
        let p = resolve(&record(&[], Some("/etc/hosts"))).unwrap();
        assert_eq!(p.path, PathBuf::from("/etc/hosts"));
        assert_eq!(p.name.as_deref(), Some("/etc/hosts"));
    }
}
