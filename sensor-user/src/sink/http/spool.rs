//! The http sink's disk spool: append-only segment files and a cursor.
//!
//! Layout of the spool directory (mode 0700, one per sink):
//! - `00000000000000000001.seg`, ...: segments, oldest first, each a series of
//!   records `EPOCH SP ID SP JSON LF` (the JSON line has no LF of its own).
//!   Appends are fsync'd per batch; a new segment starts when one would pass
//!   about an eighth of the spool's bound.
//! - `cursor`: `SEGMENT OFFSET`, where delivery resumes; replaced atomically
//!   (write, fsync, rename) after each delivered batch. Fully delivered
//!   segments are deleted.
//! - `lock`: held with flock(2) while a sink uses the directory.
//!
//! After a crash the last segment may end in a torn record (no LF); opening
//! cuts it off. That record was never acknowledged to anyone: its batch had
//! not finished its fsync.
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One spooled event.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub epoch: f64,
    /// Unique per event across sink runs (Elasticsearch `_id`); no spaces.
    pub id: String,
    pub line: Arc<[u8]>,
}

impl Record {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} ", self.epoch, self.id).as_bytes());
        out.extend_from_slice(&self.line);
        out.push(b'\n');
    }

    /// `rec` without its LF.
    fn decode(rec: &[u8]) -> Option<Record> {
        let mut parts = rec.splitn(3, |b| *b == b' ');
        let epoch = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let id = std::str::from_utf8(parts.next()?).ok()?.to_string();
        let line = parts.next().filter(|l| !l.is_empty())?;
        Some(Record {
            epoch,
            id,
            line: line.into(),
        })
    }
}

/// A place in the spool: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub seg: u64,
    pub off: u64,
}

pub struct Spool {
    dir: PathBuf,
    max: u64,
    seg_max: u64,
    /// Segment number → length in bytes.
    segs: BTreeMap<u64, u64>,
    /// Where undelivered records start.
    head: Pos,
    next_seg: u64,
    writer: Option<(u64, File)>,
    _lock: File,
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl Spool {
    /// Opens (creating) the spool in `dir`, bounded to `max` bytes on disk.
    pub fn open(dir: &Path, max: u64) -> std::io::Result<Spool> {
        crate::os::private_dir(std::fs::DirBuilder::new().recursive(true)).create(dir)?;
        let lock =
            crate::os::private_file(OpenOptions::new().create(true).truncate(false).write(true))
                .open(dir.join("lock"))?;
        if let Err(e) = crate::os::try_lock_exclusive(&lock) {
            return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                other(
                    "in use by another sink or process (each http sink needs its own spool_dir)"
                        .into(),
                )
            } else {
                e
            });
        }
        let mut segs = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segs.insert(n, entry.metadata()?.len());
        }
        let cursor = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|c| {
                let (s, o) = c.trim().split_once(' ')?;
                Some(Pos {
                    seg: s.parse().ok()?,
                    off: o.parse().ok()?,
                })
            });
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max,
            seg_max: (max / 8).clamp(64 << 10, 16 << 20),
            next_seg: segs.keys().next_back().map_or(1, |n| n + 1),
            head: Pos { seg: 0, off: 0 },
            segs,
            writer: None,
            _lock: lock,
        };
        let cursor = cursor.unwrap_or(Pos { seg: 0, off: 0 });
        spool.next_seg = spool.next_seg.max(cursor.seg);
        // Segments before the cursor's were delivered (deleting them was cut
        // short): delete them now.
        let done: Vec<u64> = spool.segs.range(..cursor.seg).map(|(n, _)| *n).collect();
        for n in done {
            std::fs::remove_file(spool.seg_path(n))?;
            spool.segs.remove(&n);
        }
        spool.head = match spool.segs.get(&cursor.seg) {
            Some(len) => Pos {
                seg: cursor.seg,
                off: cursor.off.min(*len),
            },
            None => Pos {
                seg: spool.segs.keys().next().copied().unwrap_or(spool.next_seg),
                off: 0,
            },
        };
        spool.repair_tail()?;
        Ok(spool)
    }

    fn seg_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:020}.seg"))
    }

    /// Cuts a torn last record off the newest segment.
    fn repair_tail(&mut self) -> std::io::Result<()> {
        let Some((&n, &len)) = self.segs.iter().next_back() else {
            return Ok(());
        };
        if len == 0 {
            return Ok(());
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.seg_path(n))?;
        let mut last = [0u8; 1];
        crate::os::read_exact_at(&f, &mut last, len - 1)?;
        if last[0] == b'\n' {
            return Ok(());
        }
        let mut all = Vec::new();
        (&f).read_to_end(&mut all)?;
        let good = all
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p as u64 + 1);
        f.set_len(good)?;
        f.sync_all()?;
        self.segs.insert(n, good);
        if self.head.seg == n {
            self.head.off = self.head.off.min(good);
        }
        Ok(())
    }

    /// Bytes on disk, delivered-but-not-yet-deleted records included.
    pub fn bytes(&self) -> u64 {
        self.segs.values().sum()
    }

    /// No undelivered records.
    pub fn is_empty(&self) -> bool {
        self.segs.range(self.head.seg..).all(|(n, len)| {
            if *n == self.head.seg {
                self.head.off >= *len
            } else {
                *len == 0
            }
        })
    }

    /// Appends records in order and fsyncs. Records beyond the bound are not
    /// written; returns how many of those there were.
    pub fn append(&mut self, recs: &[Record]) -> std::io::Result<u64> {
        let room = self.max.saturating_sub(self.bytes());
        let mut buf = Vec::new();
        let mut taken = 0;
        let mut one = Vec::new();
        for r in recs {
            one.clear();
            r.encode(&mut one);
            if (buf.len() + one.len()) as u64 > room {
                break;
            }
            buf.extend_from_slice(&one);
            taken += 1;
        }
        let lost = (recs.len() - taken) as u64;
        if buf.is_empty() {
            return Ok(lost);
        }
        let cur_len = self
            .writer
            .as_ref()
            .map(|(n, _)| self.segs.get(n).copied().unwrap_or(0));
        match cur_len {
            Some(len) if len == 0 || len + buf.len() as u64 <= self.seg_max => {}
            _ => self.start_segment()?,
        }
        let (n, f) = self.writer.as_mut().expect("segment started above");
        let n = *n;
        let len = self.segs[&n];
        if let Err(e) = f.write_all(&buf).and_then(|_| f.sync_data()) {
            // Leave no partial batch behind: it was not written, as far as
            // anyone will know.
            let _ = f.set_len(len);
            return Err(e);
        }
        self.segs.insert(n, len + buf.len() as u64);
        Ok(lost)
    }

    /// Continues the newest segment if it has room (after a restart), else
    /// starts a new one.
    fn start_segment(&mut self) -> std::io::Result<()> {
        if self.writer.is_none() {
            if let Some((&n, &len)) = self.segs.iter().next_back() {
                if len < self.seg_max {
                    let f = OpenOptions::new().append(true).open(self.seg_path(n))?;
                    self.writer = Some((n, f));
                    return Ok(());
                }
            }
        }
        let n = self.next_seg;
        let f = crate::os::private_file(OpenOptions::new().create_new(true).append(true))
            .open(self.seg_path(n))?;
        crate::os::sync_dir(&self.dir)?;
        self.next_seg = n + 1;
        self.segs.insert(n, 0);
        self.writer = Some((n, f));
        Ok(())
    }

    /// Reads up to `max_events` records (about `max_bytes`) from the head,
    /// without consuming them. Returns them, the position after them (for
    /// [`Spool::commit`]) and how many unreadable records were skipped.
    pub fn read(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> std::io::Result<(Vec<Record>, Pos, u64)> {
        // Step over fully read segments.
        while let Some(&len) = self.segs.get(&self.head.seg) {
            if self.head.off < len {
                break;
            }
            match self.segs.range(self.head.seg + 1..).next() {
                Some((&next, _)) => self.head = Pos { seg: next, off: 0 },
                None => break,
            }
        }
        let Some(&len) = self.segs.get(&self.head.seg) else {
            return Ok((Vec::new(), self.head, 0));
        };
        let mut f = File::open(self.seg_path(self.head.seg))?;
        f.seek(SeekFrom::Start(self.head.off))?;
        let mut r = BufReader::new(f.take(len - self.head.off));
        let mut recs = Vec::new();
        let mut bytes = 0;
        let mut corrupt = 0;
        let mut off = self.head.off;
        let mut line = Vec::new();
        while recs.len() < max_events && (recs.is_empty() || bytes < max_bytes) {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            off += n as u64;
            bytes += n;
            match Record::decode(&line[..n - 1]) {
                Some(rec) => recs.push(rec),
                None => corrupt += 1,
            }
        }
        if recs.is_empty() && corrupt == 0 && off < len {
            // Bytes without a record end that are not the tail a crash
            // leaves (cut on open): skip them rather than stall on them.
            corrupt = 1;
            off = len;
        }
        Ok((
            recs,
            Pos {
                seg: self.head.seg,
                off,
            },
            corrupt,
        ))
    }

    /// Marks everything before `end` delivered; deletes segments delivered to
    /// their end.
    pub fn commit(&mut self, end: Pos) -> std::io::Result<()> {
        self.head = end;
        let done: Vec<u64> = self
            .segs
            .range(..=end.seg)
            .filter(|(n, len)| **n < end.seg || end.off >= **len)
            .map(|(n, _)| *n)
            .collect();
        if done.contains(&end.seg) {
            self.head = Pos {
                seg: self
                    .segs
                    .range(end.seg + 1..)
                    .next()
                    .map_or(self.next_seg, |(n, _)| *n),
                off: 0,
            };
        }
        // The cursor first: a crash before the deletions leaves segments the
        // next open knows to be delivered.
        self.write_cursor()?;
        for n in done {
            if self.writer.as_ref().is_some_and(|(w, _)| *w == n) {
                self.writer = None;
            }
            self.segs.remove(&n);
            std::fs::remove_file(self.seg_path(n))?;
        }
        Ok(())
    }

    fn write_cursor(&self) -> std::io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        let mut f =
            crate::os::private_file(OpenOptions::new().create(true).write(true).truncate(true))
                .open(&tmp)?;
        f.write_all(format!("{} {}\n", self.head.seg, self.head.off).as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join("cursor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record {
            epoch: 1_700_000_000.123456 + seq as f64,
            id: format!("run-{seq}"),
            line: format!("{{\"seq\":{seq},\"path\":\"/a b\"}}")
                .into_bytes()
                .into(),
        }
    }

    fn seqs(recs: &[Record]) -> Vec<u64> {
        recs.iter()
            .map(|r| r.id.strip_prefix("run-").unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn records_round_trip() {
        let mut b = Vec::new();
        rec(3).encode(&mut b);
        assert_eq!(*b.last().unwrap(), b'\n');
        assert_eq!(Record::decode(&b[..b.len() - 1]), Some(rec(3)));
        assert_eq!(Record::decode(b"1.5 id"), None);
        assert_eq!(Record::decode(b"x id {}"), None);
    }

    #[test]
    fn replay_in_order_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        // A 1 MiB bound: 128 KiB segments; ~60-byte records, so 3000 span two.
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(s.is_empty());
        for chunk in (1..=3000).collect::<Vec<u64>>().chunks(100) {
            let recs: Vec<_> = chunk.iter().map(|&i| rec(i)).collect();
            assert_eq!(s.append(&recs).unwrap(), 0);
        }
        assert!(s.segs.len() >= 2, "{:?}", s.segs);
        assert!(!s.is_empty());
        let (got, end, bad) = s.read(500, 1 << 20).unwrap();
        assert_eq!((seqs(&got), bad), ((1..=500).collect(), 0));
        // Read again without commit: the same records.
        let (again, _, _) = s.read(500, 1 << 20).unwrap();
        assert_eq!(seqs(&again), seqs(&got));
        s.commit(end).unwrap();
        drop(s);

        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let mut all = Vec::new();
        while !s.is_empty() {
            let (got, end, _) = s.read(700, 1 << 20).unwrap();
            all.extend(seqs(&got));
            s.commit(end).unwrap();
        }
        assert_eq!(all, (501..=3000).collect::<Vec<_>>());
        // Delivered segments are gone; new appends start afresh.
        assert_eq!(s.bytes(), 0);
        assert_eq!(s.append(&[rec(9)]).unwrap(), 0);
        let (got, _, _) = s.read(10, 1 << 20).unwrap();
        assert_eq!(seqs(&got), vec![9]);
    }

    #[test]
    fn bound_counts_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1000).unwrap();
        let recs: Vec<_> = (1..=30).map(rec).collect();
        let one = {
            let mut b = Vec::new();
            rec(10).encode(&mut b);
            b.len() as u64
        };
        let lost = s.append(&recs).unwrap();
        assert_eq!(lost, 30 - 1000 / one);
        assert!(s.bytes() <= 1000);
    }

    #[test]
    fn torn_tail_is_cut_and_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            s.append(&[rec(1), rec(2)]).unwrap();
            let e = Spool::open(dir.path(), 1 << 20).err().unwrap();
            assert!(e.to_string().contains("in use"), "{e}");
        }
        let seg = dir.path().join(format!("{:020}.seg", 1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"1.0 run-3 {\"seq\":3").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let (got, _, bad) = s.read(10, 1 << 20).unwrap();
        assert_eq!((seqs(&got), bad), (vec![1, 2], 0));
        s.append(&[rec(4)]).unwrap();
        let (got, _, _) = s.read(10, 1 << 20).unwrap();
        assert_eq!(seqs(&got), vec![1, 2, 4]);
    }
}
