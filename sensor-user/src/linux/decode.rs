//! Raw ring-buffer records → owned, typed values.
use sensor_common::{
    kind, path_flags, CloseRecord, ExecRecord, FileRecord, PathRecord, TaskRecord, NAME_CAP,
    PATH_CAP,
};
use std::sync::Arc;

/// One decoded kernel record. The large ones are read in place when the
/// bytes are aligned (ring-buffer records are 8-aligned), not copied.
pub enum Record<'a> {
    File(InPlace<'a, FileRecord>),
    Exec(InPlace<'a, ExecRecord>),
    Fork(TaskRecord),
    Exit(TaskRecord),
    /// `code` is a [`sensor_common::blind`] reason.
    BlindSpot(TaskRecord),
    /// The end of a write session whose opening record user space holds.
    Close(CloseRecord),
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

/// A record read where it lies, or (unaligned bytes) a boxed copy.
pub enum InPlace<'a, T> {
    Borrowed(&'a T),
    Copied(Box<T>),
}

impl<T> std::ops::Deref for InPlace<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            InPlace::Borrowed(t) => t,
            InPlace::Copied(t) => t,
        }
    }
}

/// `T` in place if `bytes` is aligned for it, else a copy.
fn view<T: Copy>(bytes: &[u8], kind: u32) -> Result<InPlace<'_, T>, DecodeError> {
    if bytes.as_ptr().align_offset(std::mem::align_of::<T>()) != 0 {
        return read(bytes, kind).map(|t| InPlace::Copied(Box::new(t)));
    }
    if bytes.len() < std::mem::size_of::<T>() {
        return Err(DecodeError::Short {
            kind,
            len: bytes.len(),
        });
    }
    // SAFETY: length and alignment checked; T is a repr(C) record of integers
    // and byte arrays from sensor-common, valid for any bit pattern.
    Ok(InPlace::Borrowed(unsafe { &*(bytes.as_ptr() as *const T) }))
}

pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let k = u32::from_ne_bytes(bytes.get(..4).and_then(|b| b.try_into().ok()).ok_or(
        DecodeError::Short {
            kind: 0,
            len: bytes.len(),
        },
    )?);
    Ok(match k {
        kind::FILE => Record::File(view(bytes, k)?),
        kind::EXEC => Record::Exec(view(bytes, k)?),
        kind::FORK => Record::Fork(read(bytes, k)?),
        kind::EXIT => Record::Exit(read(bytes, k)?),
        kind::BLIND_SPOT => Record::BlindSpot(read(bytes, k)?),
        kind::CLOSE => Record::Close(read(bytes, k)?),
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// Asks the CPU to start loading the parts of a file record that decoding
/// reads (its header and process, the start of each path's components and
/// the first path's name), so the next record is in cache by the time it is
/// decoded. A record is a few KiB of mostly unused buffers, written by
/// another CPU: each of those lines was a cache miss, most of `resolve`'s
/// time. Only a hint: any record kind, any length.
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::mem::offset_of;
        use sensor_common::PathRecord;
        const PATH: usize = offset_of!(FileRecord, path);
        const TARGET: usize = offset_of!(FileRecord, target);
        const LINES: [usize; 8] = [
            0,
            64,
            128,
            192,
            PATH,
            PATH + 64,
            PATH + offset_of!(PathRecord, name),
            TARGET,
        ];
        for off in LINES {
            if let Some(b) = bytes.get(off) {
                // SAFETY: a prefetch has no effect on memory; the address is in `bytes`.
                unsafe {
                    core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                        (b as *const u8).cast(),
                    )
                };
            }
        }
    }
}

/// An all-zero [`FileRecord`] (a valid one: integers and byte arrays).
pub fn zeroed_record() -> Box<FileRecord> {
    // SAFETY: all-zero is a valid FileRecord.
    unsafe { Box::<FileRecord>::new_zeroed().assume_init() }
}

/// A file record kept for later with only the used bytes of its first path
/// (a whole [`FileRecord`] is 3 KiB, mostly empty path buffers). Its target
/// path is not kept.
#[derive(Clone)]
pub struct CompactFileRecord {
    /// The record up to the end of `path`'s used components.
    head: Box<[u8]>,
    /// `path.name`'s used bytes.
    name: Box<[u8]>,
}

impl CompactFileRecord {
    const COMPS: usize =
        std::mem::offset_of!(FileRecord, path) + std::mem::offset_of!(PathRecord, comps);

    pub fn keep(f: &FileRecord) -> CompactFileRecord {
        let used = Self::COMPS + (f.path.comps_len as usize).min(PATH_CAP);
        // SAFETY: a FileRecord is plain integers and byte arrays; `used` stays
        // inside it.
        let bytes =
            unsafe { std::slice::from_raw_parts(f as *const FileRecord as *const u8, used) };
        let name = &f.path.name[..(f.path.name_len as usize).min(NAME_CAP)];
        CompactFileRecord {
            head: bytes.into(),
            name: name.into(),
        }
    }

    /// Writes the record as kept over `f`, which may hold an earlier one: a
    /// 3 KiB zeroed allocation per restore cost more than decoding a whole
    /// record. Bytes past the used lengths of `path` are left as they were
    /// (readers go by the lengths) and `target` is marked empty.
    pub fn restore_into(&self, f: &mut FileRecord) {
        // SAFETY: `head` is at most `COMPS + PATH_CAP` bytes, inside a
        // FileRecord, which is integers and byte arrays.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.head.as_ptr(),
                f as *mut FileRecord as *mut u8,
                self.head.len(),
            )
        };
        f.path.name[..self.name.len()].copy_from_slice(&self.name);
        f.target.flags = 0;
        f.target.comps_len = 0;
        f.target.name_len = 0;
    }

    pub fn same_file(&self, f: &FileRecord) -> bool {
        let (dev, ino) = self.dev_ino();
        dev == f.dev && ino == f.ino
    }

    /// The write session the record opened ([`FileRecord::session`]), or 0.
    pub fn session(&self) -> u64 {
        const AT: usize = std::mem::offset_of!(FileRecord, session);
        u64::from_ne_bytes(self.head[AT..AT + 8].try_into().expect("8 bytes"))
    }

    /// Whether `f` concerns the same session: the same `struct file` when
    /// both carry one, else (the VFS tier's records) the same inode.
    pub fn same_session(&self, f: &FileRecord) -> bool {
        match (self.session(), f.session) {
            (0, _) | (_, 0) => self.same_file(f),
            (a, b) => a == b,
        }
    }

    fn dev_ino(&self) -> (u32, u64) {
        const DEV: usize = std::mem::offset_of!(FileRecord, dev);
        const INO: usize = std::mem::offset_of!(FileRecord, ino);
        let dev = u32::from_ne_bytes(self.head[DEV..DEV + 4].try_into().expect("4 bytes"));
        let ino = u64::from_ne_bytes(self.head[INO..INO + 8].try_into().expect("8 bytes"));
        (dev, ino)
    }
}

/// A path rebuilt from a [`PathRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// Absolute and lexically normalized.
    pub path: Arc<str>,
    /// The syscall's literal name had more than one component (`a/b`), so
    /// the kernel's verdict, taken on the anchor, may not hold for the path.
    pub multi_component_name: bool,
    /// The kernel's walk stopped before the root: the path is a suffix.
    pub truncated: bool,
}

/// Where paths are joined, kept by the caller from record to record: the
/// buffer, and the last few paths made, which are shared rather than made
/// again. A write session's records (the open, the close, a rename) name
/// the same path, and each new string was an allocation here and a free on
/// the output thread.
#[derive(Default)]
pub struct PathScratch {
    buf: Vec<u8>,
    recent: [Option<Arc<str>>; 4],
    next: usize,
}

impl PathScratch {
    /// The joined path in `buf` as a shared string.
    fn share(&mut self) -> Arc<str> {
        let buf = &self.buf[..];
        if let Some(p) = self.recent.iter().flatten().find(|p| p.as_bytes() == buf) {
            return p.clone();
        }
        let path: Arc<str> = utf8_cow(buf).into();
        self.recent[self.next] = Some(path.clone());
        self.next = (self.next + 1) % self.recent.len();
        path
    }
}

/// Joins the anchor's components (leaf first in the record) and the literal
/// name, in `scratch` (so a path costs at most one allocation: the shared
/// string it ends in).
pub fn resolve(rec: &PathRecord, scratch: &mut PathScratch) -> Option<ResolvedPath> {
    if rec.flags & path_flags::HAS_ANCHOR == 0 {
        return None;
    }
    let comps = &rec.comps[..(rec.comps_len as usize).min(PATH_CAP)];
    let name = literal_name_bytes(rec).unwrap_or_default();
    // One buffer, built root first and checked as UTF-8 once. Dentry names
    // never are `.` or `..`, so only a literal name can need normalizing.
    let path = &mut scratch.buf;
    path.clear();
    let mut end = comps.len();
    while end > 0 {
        let start = comps[..end]
            .iter()
            .rposition(|&b| b == 0)
            .map_or(0, |p| p + 1);
        if start < end {
            path.push(b'/');
            path.extend_from_slice(&comps[start..end]);
        }
        end = start.saturating_sub(1);
    }
    let mut normalize = false;
    let mut parts = 0;
    // An absolute name is relative to the anchor, which is then the task's root.
    for part in name.split(|&b| b == b'/') {
        parts += 1;
        if part.is_empty() || part == b"." {
            continue;
        }
        normalize |= part == b"..";
        path.push(b'/');
        path.extend_from_slice(part);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    Some(ResolvedPath {
        path: if normalize {
            let path = utf8_cow(path);
            let n = crate::config::normalize(std::path::Path::new(&*path));
            n.to_str().unwrap_or(&path).into()
        } else {
            scratch.share()
        },
        multi_component_name: parts > 1,
        truncated: rec.flags & path_flags::TRUNCATED != 0,
    })
}

/// The literal name passed to the syscall (a symlink's target, for one), when
/// the record has one.
pub fn literal_name(rec: &PathRecord) -> Option<String> {
    literal_name_bytes(rec).map(utf8)
}

fn literal_name_bytes(rec: &PathRecord) -> Option<&[u8]> {
    (rec.flags & path_flags::HAS_NAME != 0)
        .then(|| &rec.name[..(rec.name_len as usize).min(NAME_CAP)])
}

/// A NUL-terminated byte array as a string.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    utf8(&bytes[..end])
}

/// Kernel bytes as a string.
fn utf8(bytes: &[u8]) -> String {
    utf8_cow(bytes).into_owned()
}

/// Kernel bytes as a string, borrowed when they are UTF-8: checked as UTF-8
/// first, which they nearly always are and which costs far less than the
/// lossy conversion's chunking.
fn utf8_cow(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(rec: &PathRecord) -> Option<ResolvedPath> {
        resolve(rec, &mut PathScratch::default())
    }

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
    fn a_compact_record_gives_back_the_record_without_its_target() {
        // SAFETY: all-zero is a valid FileRecord.
        let mut f = unsafe { Box::<FileRecord>::new_zeroed().assume_init() };
        f.kind = kind::FILE;
        f.op = sensor_common::op::CREATED;
        f.dev = 8;
        f.ino = 1234;
        f.process.tgid = 77;
        f.process.comm[..3].copy_from_slice(b"sed");
        f.path = record(&["w", "tmp", "var"], Some("sedX1"));
        f.target = record(&["etc"], Some("hosts"));
        let kept = CompactFileRecord::keep(&f);
        assert!(kept.head.len() < 1024, "{} bytes kept", kept.head.len());
        let mut back = zeroed_record();
        kept.restore_into(&mut back);
        assert_eq!(back.op, f.op);
        assert_eq!((back.dev, back.ino), (8, 1234));
        assert_eq!(back.process.tgid, 77);
        assert_eq!(cstr(&back.process.comm), "sed");
        assert_eq!(resolved(&back.path), resolved(&f.path));
        assert_eq!(&*resolved(&back.path).unwrap().path, "/var/tmp/w/sedX1");
        assert_eq!(back.target.flags, 0, "the target is not kept");
        assert!(kept.same_file(&f));
        f.ino = 1235;
        assert!(!kept.same_file(&f));
    }

    #[test]
    fn a_restore_over_another_record_reads_back_as_the_kept_one() {
        let mut f = zeroed_record();
        f.kind = kind::FILE;
        f.session = 0xffff_8888_0000_1000;
        f.path = record(&["w", "tmp"], Some("a"));
        let kept = CompactFileRecord::keep(&f);
        // A spare that held a longer record with a target.
        let mut spare = zeroed_record();
        spare.path = record(&["deeper", "much", "path", "some"], Some("longer-name"));
        spare.target = record(&["etc"], Some("hosts"));
        spare.session = 1;
        kept.restore_into(&mut spare);
        assert_eq!(&*resolved(&spare.path).unwrap().path, "/tmp/w/a");
        assert!(resolved(&spare.target).is_none(), "the target is not kept");
        assert_eq!(spare.session, f.session);
        assert_eq!(kept.session(), f.session);
    }

    #[test]
    fn aligned_records_are_read_in_place_and_unaligned_ones_copied() {
        let mut words = vec![0u64; std::mem::size_of::<sensor_common::TaskRecord>() / 8 + 2];
        // SAFETY: a byte view of the u64 buffer.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8)
        };
        let n = std::mem::size_of::<FileRecord>();
        let mut buf = vec![0u64; n / 8 + 2];
        // SAFETY: as above.
        let file =
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, buf.len() * 8) };
        file[..4].copy_from_slice(&kind::FILE.to_ne_bytes());
        file[8..12].copy_from_slice(&kind::FILE.to_ne_bytes());
        assert!(matches!(
            decode(&file[..n]),
            Ok(Record::File(InPlace::Borrowed(_)))
        ));
        assert!(matches!(
            decode(&file[8..8 + n]),
            Ok(Record::File(InPlace::Borrowed(_)))
        ));
        assert!(matches!(
            decode(&file[..n - 1]),
            Err(DecodeError::Short {
                kind: kind::FILE,
                ..
            })
        ));
        file[1..5].copy_from_slice(&kind::FILE.to_ne_bytes());
        assert!(matches!(
            decode(&file[1..1 + n]),
            Ok(Record::File(InPlace::Copied(_)))
        ));
        bytes[..4].copy_from_slice(&kind::EXIT.to_ne_bytes());
        assert!(matches!(decode(bytes), Ok(Record::Exit(_))));
    }

    #[test]
    fn anchor_is_leaf_first() {
        let p = resolved(&record(&["passwd", "etc"], None)).unwrap();
        assert_eq!(&*p.path, "/etc/passwd");
        assert!(!p.multi_component_name);
        assert_eq!(&*resolved(&record(&[], None)).unwrap().path, "/");
    }

    #[test]
    fn a_reused_scratch_buffer_keeps_nothing_of_the_last_path() {
        let mut scratch = PathScratch::default();
        let long = record(&["shadow", "etc"], None);
        assert_eq!(&*resolve(&long, &mut scratch).unwrap().path, "/etc/shadow");
        let short = record(&["tmp"], Some("a"));
        assert_eq!(&*resolve(&short, &mut scratch).unwrap().path, "/tmp/a");
    }

    /// A path made lately is shared, not made again; one that only starts
    /// like it, or one that has left the recent ones, is made anew.
    #[test]
    fn recent_paths_are_shared_and_only_when_equal() {
        let mut scratch = PathScratch::default();
        let mut make =
            |comps: &[&str], name| resolve(&record(comps, name), &mut scratch).unwrap().path;
        let a = make(&["w", "tmp"], Some("a.tmp"));
        let again = make(&["a.tmp", "w", "tmp"], None);
        assert_eq!(&*again, "/tmp/w/a.tmp");
        assert!(Arc::ptr_eq(&a, &again));
        let longer = make(&["w", "tmp"], Some("a.tmpx"));
        assert_eq!(&*longer, "/tmp/w/a.tmpx");
        assert!(!Arc::ptr_eq(&a, &longer));
        for name in ["b", "c", "d", "e"] {
            make(&["w", "tmp"], Some(name));
        }
        let later = make(&["w", "tmp"], Some("a.tmp"));
        assert_eq!(later, a);
        assert!(!Arc::ptr_eq(&a, &later), "only the last four are kept");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_not_dropped() {
        let mut r = record(&["etc"], Some("x"));
        r.name[0] = 0xff;
        let p = resolved(&r).unwrap();
        assert_eq!(&*p.path, "/etc/\u{fffd}");
        assert_eq!(literal_name(&r).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn names_join_and_normalize() {
        let p = resolved(&record(&["tmp"], Some("../etc/./shadow"))).unwrap();
        assert_eq!(&*p.path, "/etc/shadow");
        assert!(p.multi_component_name);
        let r = record(&["w", "tmp"], Some("a//./b"));
        assert_eq!(&*resolved(&r).unwrap().path, "/tmp/w/a/b");
        let r = record(&[], Some("/etc/hosts"));
        assert_eq!(&*resolved(&r).unwrap().path, "/etc/hosts");
        assert_eq!(literal_name(&r).as_deref(), Some("/etc/hosts"));
    }
}
