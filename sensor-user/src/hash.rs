//! Content hashes: BLAKE3 always, SHA-256 where the policy asks for it.
//!
//! Small files are read into one buffer; large ones that only root can write
//! are memory-mapped so the hasher's SIMD loop runs over the page cache without
//! copies (as `b3sum` does). Large files anyone else can write are read in
//! chunks instead: truncating a mapped file under the hasher raises SIGBUS,
//! and an unprivileged writer must not be able to kill the sensor that way.
//! Both digests, when wanted, come from a single pass over the bytes.
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Files at least this big are memory-mapped...
const MMAP_FROM: u64 = 1 << 20;
/// ...this much at a time (a power of two: whole BLAKE3 chunks per call;
/// small, as the mapped pages count in the RSS of a scan hashing two at once).
const MAP_WINDOW: u64 = 4 << 20;
/// Bytes fed to both hashers in turn when both digests are wanted: small
/// enough to stay in L2 between the two, a power of two so BLAKE3 keeps its
/// full SIMD width.
const PASS_BLOCK: usize = 256 << 10;

/// What to hash and up to what size.
#[derive(Debug, Clone)]
pub struct HashPolicy {
    /// Files larger than this are not hashed (`hash_note: skipped: too large`).
    pub max_size: u64,
}

/// The outcome of hashing one file.
#[derive(Debug, Default, PartialEq)]
pub struct Hashed {
    /// `blake3` and maybe `sha256`, lower-case hex.
    pub hashes: BTreeMap<String, String>,
    /// Why there are no hashes, when there are none.
    pub note: Option<String>,
    /// The content, when the caller asked for it and it was small enough.
    pub content: Option<Vec<u8>>,
    /// BLAKE3 of the first `prefix` bytes, when asked for and the file is at
    /// least that long (append-only checks: did the old content stay?).
    pub prefix_blake3: Option<String>,
}

/// Hashes the regular file at `path`, which `size` bytes long when stat'ed.
/// `keep_content` returns the bytes of files up to that size (for diffs).
pub fn hash_file(
    path: &Path,
    size: u64,
    sha256: bool,
    keep_content: u64,
    policy: &HashPolicy,
) -> Hashed {
    hash_file_with_prefix(path, size, sha256, keep_content, policy, None)
}

/// As [`hash_file`], and also the BLAKE3 of the first `prefix` bytes, taken
/// from the same pass (the hasher's state is copied at that offset).
pub fn hash_file_with_prefix(
    path: &Path,
    size: u64,
    sha256: bool,
    keep_content: u64,
    policy: &HashPolicy,
    prefix: Option<u64>,
) -> Hashed {
    if size > policy.max_size {
        return Hashed {
            note: Some(format!(
                "skipped: too large ({size} bytes > {} bytes)",
                policy.max_size
            )),
            ..Default::default()
        };
    }
    match digest(path, size, sha256, keep_content, prefix) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Hashed {
            note: Some("deleted or renamed before it could be hashed".into()),
            ..Default::default()
        },
        Err(e) => Hashed {
            note: Some(format!("unreadable: {e}")),
            ..Default::default()
        },
    }
}

/// BLAKE3 that also remembers its digest at one offset.
struct Blake3WithPrefix {
    hasher: blake3::Hasher,
    /// Bytes hashed so far.
    at: u64,
    prefix: Option<u64>,
    prefix_digest: Option<String>,
}

impl Blake3WithPrefix {
    fn new(prefix: Option<u64>) -> Self {
        let mut h = Blake3WithPrefix {
            hasher: blake3::Hasher::new(),
            at: 0,
            prefix,
            prefix_digest: None,
        };
        h.update(&[]);
        h
    }

    fn update(&mut self, mut bytes: &[u8]) -> &mut Self {
        if let Some(p) = self
            .prefix
            .filter(|&p| self.prefix_digest.is_none() && p >= self.at)
        {
            let take = ((p - self.at) as usize).min(bytes.len());
            self.hasher.update(&bytes[..take]);
            self.at += take as u64;
            bytes = &bytes[take..];
            if self.at == p {
                self.prefix_digest = Some(self.hasher.finalize().to_hex().to_string());
            }
        }
        self.hasher.update(bytes);
        self.at += bytes.len() as u64;
        self
    }
}

fn digest(
    path: &Path,
    size: u64,
    want_sha256: bool,
    keep_content: u64,
    prefix: Option<u64>,
) -> std::io::Result<Hashed> {
    let mut file = std::fs::File::open(path)?;
    let mut b3 = Blake3WithPrefix::new(prefix);
    let mut sha = want_sha256.then(sha2::Sha256::new);
    let mut content = None;
    if size >= MMAP_FROM {
        let meta = file.metadata()?;
        let mut at = 0;
        if only_root_can_write(&meta) {
            // A window at a time, so the mapped pages counted in the process's
            // RSS stay small however big the file (a scan hashes two at once).
            while at < meta.len() {
                let len = MAP_WINDOW.min(meta.len() - at);
                // The file we opened, not the path again (it may have been
                // replaced). SAFETY: the map is read-only and never leaves
                // this loop. Only files no one but root can write are mapped
                // (see the module doc).
                let Ok(map) = (unsafe {
                    memmap2::MmapOptions::new()
                        .offset(at)
                        .len(len as usize)
                        // One fault-in per window instead of one per few pages.
                        .populate()
                        .map(&file)
                }) else {
                    break;
                };
                match sha.as_mut() {
                    // One call per window: BLAKE3 at its widest SIMD.
                    None => {
                        b3.update(&map);
                    }
                    // One pass for both: each block is still in cache for SHA-256.
                    Some(s) => {
                        for block in map.chunks(PASS_BLOCK) {
                            b3.update(block);
                            s.update(block);
                        }
                    }
                }
                at += len;
            }
        }
        if at < meta.len() {
            // Not mapped (or a map failed): large reads from where we are.
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(at))?;
            let mut buf = vec![0u8; 4 * PASS_BLOCK];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                b3.update(&buf[..n]);
                if let Some(s) = sha.as_mut() {
                    s.update(&buf[..n]);
                }
            }
        }
    } else {
        let mut buf = Vec::with_capacity(size as usize + 1);
        file.read_to_end(&mut buf)?;
        b3.update(&buf);
        if let Some(s) = sha.as_mut() {
            s.update(&buf);
        }
        if buf.len() as u64 <= keep_content {
            content = Some(buf);
        }
    }
    let mut hashes = BTreeMap::new();
    hashes.insert(
        "blake3".to_string(),
        b3.hasher.finalize().to_hex().to_string(),
    );
    if let Some(s) = sha {
        hashes.insert("sha256".to_string(), hex(&s.finalize()));
    }
    Ok(Hashed {
        hashes,
        note: None,
        content,
        prefix_blake3: b3.prefix_digest,
    })
}

/// Owned by root, with no group or other write bit (an ACL granting write
/// shows in the group bits, which then hold the ACL mask).
#[cfg(unix)]
fn only_root_can_write(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.uid() == 0 && m.mode() & 0o022 == 0
}

/// Windows: never map. A mapped view makes the writers' truncation fail
/// (ERROR_USER_MAPPED_FILE); a monitor must not get in their way.
#[cfg(not(unix))]
fn only_root_can_write(_: &std::fs::Metadata) -> bool {
    false
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HashPolicy {
        HashPolicy { max_size: 1 << 30 }
    }

    #[test]
    fn small_and_mapped_files_hash_like_reference_implementations() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0usize,
            5,
            (MMAP_FROM + 12345) as usize,
            (2 * MAP_WINDOW + 12345) as usize,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join(format!("f{size}"));
            std::fs::write(&p, &data).unwrap();
            let h = hash_file(&p, size as u64, true, 0, &policy());
            assert_eq!(h.hashes["blake3"], blake3::hash(&data).to_hex().to_string());
            assert_eq!(h.hashes["sha256"], hex(&sha2::Sha256::digest(&data)));
            assert_eq!(h.note, None);
        }
    }

    #[cfg(unix)]
    #[test]
    fn large_files_others_can_write_are_read_not_mapped_and_hash_the_same() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 << 20) + 7).map(|i: u32| (i % 253) as u8).collect();
        let p = dir.path().join("shared");
        std::fs::write(&p, &data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!only_root_can_write(&std::fs::metadata(&p).unwrap()));
        let h = hash_file(&p, data.len() as u64, true, 0, &policy());
        assert_eq!(h.hashes["blake3"], blake3::hash(&data).to_hex().to_string());
        assert_eq!(h.hashes["sha256"], hex(&sha2::Sha256::digest(&data)));
    }

    #[test]
    fn the_prefix_digest_comes_from_the_same_pass_at_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(MAP_WINDOW as usize) * 2 + 99)
            .map(|i| (i % 241) as u8)
            .collect();
        for (len, prefix) in [
            (10usize, 4u64),
            (10, 0),
            (10, 10),
            (data.len(), 1_500_000),
            (data.len(), MAP_WINDOW + 3),
        ] {
            let p = dir.path().join(format!("f{len}-{prefix}"));
            std::fs::write(&p, &data[..len]).unwrap();
            let h = hash_file_with_prefix(&p, len as u64, true, 0, &policy(), Some(prefix));
            let want = blake3::hash(&data[..prefix as usize]).to_hex().to_string();
            assert_eq!(
                h.prefix_blake3.as_deref(),
                Some(want.as_str()),
                "{len} {prefix}"
            );
            assert_eq!(
                h.hashes["blake3"],
                blake3::hash(&data[..len]).to_hex().to_string()
            );
        }
        // Shorter than the prefix: no prefix digest.
        let p = dir.path().join("short");
        std::fs::write(&p, b"abc").unwrap();
        let h = hash_file_with_prefix(&p, 3, false, 0, &policy(), Some(4));
        assert_eq!(h.prefix_blake3, None);
    }

    #[test]
    fn too_large_and_missing_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, b"0123456789").unwrap();
        let h = hash_file(&p, 10, false, 0, &HashPolicy { max_size: 4 });
        assert!(h.hashes.is_empty());
        assert!(h.note.unwrap().starts_with("skipped: too large"));
        let h = hash_file(&dir.path().join("gone"), 1, false, 0, &policy());
        assert_eq!(
            h.note.as_deref(),
            Some("deleted or renamed before it could be hashed")
        );
    }

    #[test]
    fn content_is_kept_only_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, b"hello\n").unwrap();
        assert_eq!(
            hash_file(&p, 6, false, 6, &policy()).content.as_deref(),
            Some(&b"hello\n"[..])
        );
        assert_eq!(hash_file(&p, 6, false, 5, &policy()).content, None);
    }
}
