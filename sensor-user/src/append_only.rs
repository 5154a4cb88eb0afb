//! Append-only files: logs and audit trails may grow, but what they held must
//! never change (PCI DSS 10.3.4, 11.5.2; 11.5.a "historical or archived log
//! and audit files").
//!
//! A change to such a file is judged against a reference state with a BLAKE3
//! digest (the last reported state, or the baseline): the file's first
//! `reference.size` bytes are hashed again, in the same pass as the new
//! digest, and must give the reference digest.

use crate::event::FileState;

/// What happened to an append-only file, as `details.append_only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Only new bytes at the end: not an alert.
    Appended,
    /// Shorter than before, same file.
    Truncated,
    /// Old bytes changed, same file.
    Rewritten,
    /// Another file now has the name (log rotation, or a replacement).
    Replaced,
    /// The reference has no digest (too large, unreadable): cannot tell.
    Unverified,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Appended => "appended",
            Verdict::Truncated => "truncated",
            Verdict::Rewritten => "rewritten",
            Verdict::Replaced => "replaced",
            Verdict::Unverified => "unverified",
        }
    }

    /// Whether old content may have been lost or altered.
    pub fn is_violation(self) -> bool {
        matches!(self, Verdict::Truncated | Verdict::Rewritten)
    }
}

/// The prefix length to hash for a change judged against `reference`:
/// its size, when it is a regular file with a digest.
pub fn prefix_len(reference: &FileState) -> Option<u64> {
    (reference.file_type == "file" && reference.hashes.contains_key("blake3"))
        .then_some(reference.size)
}

/// Judges `after` against `reference`. `prefix_blake3` is the digest of the
/// first `reference.size` bytes of the file now (None if it is shorter or
/// was not hashed). None: not a content change of a regular file.
pub fn judge(
    reference: &FileState,
    after: &FileState,
    prefix_blake3: Option<&str>,
) -> Option<Verdict> {
    if reference.file_type != "file" || after.file_type != "file" {
        return None;
    }
    if reference.inode != after.inode {
        return Some(Verdict::Replaced);
    }
    if after.size < reference.size {
        return Some(Verdict::Truncated);
    }
    let Some(old) = reference.hashes.get("blake3") else {
        return Some(Verdict::Unverified);
    };
    if after.hashes.get("blake3") == Some(old) {
        return None;
    }
    match prefix_blake3 {
        Some(p) if p == old => Some(Verdict::Appended),
        Some(_) => Some(Verdict::Rewritten),
        None => Some(Verdict::Unverified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(inode: u64, size: u64, b3: &str) -> FileState {
        let mut s = FileState {
            file_type: "file",
            size,
            inode,
            ..Default::default()
        };
        s.hashes.insert("blake3".into(), b3.into());
        s
    }

    #[test]
    fn growth_is_appended_and_anything_else_is_named() {
        let r = st(1, 10, "old");
        assert_eq!(
            judge(&r, &st(1, 15, "new"), Some("old")),
            Some(Verdict::Appended)
        );
        assert_eq!(
            judge(&r, &st(1, 15, "new"), Some("other")),
            Some(Verdict::Rewritten)
        );
        assert_eq!(
            judge(&r, &st(1, 10, "new"), Some("new")),
            Some(Verdict::Rewritten)
        );
        assert_eq!(judge(&r, &st(1, 4, "new"), None), Some(Verdict::Truncated));
        assert_eq!(
            judge(&r, &st(2, 15, "new"), Some("old")),
            Some(Verdict::Replaced)
        );
        assert_eq!(judge(&r, &st(1, 10, "old"), Some("old")), None, "unchanged");
        let mut big = r.clone();
        big.hashes.clear();
        assert_eq!(prefix_len(&big), None);
        assert_eq!(
            judge(&big, &st(1, 15, "new"), None),
            Some(Verdict::Unverified)
        );
        assert!(Verdict::Rewritten.is_violation() && !Verdict::Appended.is_violation());
    }
}
