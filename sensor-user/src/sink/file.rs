//! NDJSON appended to a file, rotated by size and by time.
//!
//! Rotated files are numbered, logrotate style: `<path>.1` is the newest,
//! `<path>.<keep>` the oldest; rotating renames each one up and deletes the one
//! beyond `keep`. Lines are written whole: the file is rotated before a line
//! that would not fit, and a write that fails half-way is cut back to the last
//! whole line. Lines that cannot be written (disk full, directory gone) stay in
//! a bounded queue and are retried on the next `flush` (or, at most once a
//! second, on `send`).
use super::{HealthNotes, Rendered, Sink, SinkConfig};
use crate::schema::Format;
use anyhow::{anyhow, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines are written out once this much is queued; `flush` writes the rest.
const BUF: u64 = 256 * 1024;
/// While degraded, `send` retries no more often than this (`flush` always does).
const RETRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct FileOptions {
    pub path: PathBuf,
    pub format: Format,
    /// Bytes; 0: no rotation by size.
    pub max_size: u64,
    pub rotate_every: Option<Duration>,
    pub keep: u32,
    /// Bytes of lines held while writes fail.
    pub queue_max: u64,
}

impl FileOptions {
    pub fn from_config(cfg: &SinkConfig) -> Result<FileOptions> {
        match cfg {
            SinkConfig::File {
                path,
                format,
                max_size_mib,
                rotate_every,
                keep,
                queue_max_mib,
            } => Ok(FileOptions {
                path: path.clone(),
                format: *format,
                max_size: max_size_mib.saturating_mul(1 << 20),
                rotate_every: rotate_every.map(|d| d.0),
                keep: *keep,
                queue_max: queue_max_mib.saturating_mul(1 << 20),
            }),
            _ => Err(anyhow!("sink file: not a file sink configuration")),
        }
    }
}

pub struct FileSink {
    opts: FileOptions,
    name: String,
    file: Option<File>,
    /// Length of the current file: whole lines only.
    size: u64,
    /// A failed write left a partial line past `size`: cut it before writing.
    cut_tail: bool,
    /// Rotation period (`epoch / rotate_every`) of the current file's lines.
    period: Option<u64>,
    queue: Queue,
    last_try: Option<Instant>,
    health: HealthNotes,
}

/// Lines waiting to be written, each with its newline, back to back in one
/// buffer that writes are made from: no allocation or copy per line beyond
/// this one.
#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    /// Where the first unwritten line starts in `buf`.
    start: usize,
    /// Each line's length, newline included, oldest first.
    lens: VecDeque<u32>,
}

impl Queue {
    fn push(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.lens.push_back(line.len() as u32 + 1);
    }

    fn len(&self) -> usize {
        self.lens.len()
    }

    fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Bytes queued, newlines included.
    fn bytes(&self) -> u64 {
        (self.buf.len() - self.start) as u64
    }

    fn front_bytes(&self, n: usize) -> &[u8] {
        &self.buf[self.start..self.start + n]
    }

    /// Drops the first `lines` lines, `bytes` long together.
    fn consume(&mut self, lines: usize, bytes: usize) {
        self.lens.drain(..lines);
        self.start += bytes;
        if self.lens.is_empty() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= BUF as usize && self.start * 2 >= self.buf.len() {
            // Lines left after a partial write: moved to the front once
            // they are the smaller part.
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// `<path>.<n>`, the n-th newest rotated file.
pub fn rotated_name(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Which rotation period a moment falls in: periods are aligned on the Unix
/// epoch, so `1d` turns at midnight UTC and `1h` on the hour.
pub fn period_of(t: SystemTime, every: Duration) -> u64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    secs / every.as_secs().max(1)
}

fn io_message(what: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl FileSink {
    /// Opens (creating, mode 0600) the file. Fails only if it cannot be opened
    /// now; later failures are health notes.
    pub fn open(opts: FileOptions) -> Result<FileSink> {
        let name = format!("file:{}", opts.path.display());
        let mut sink = FileSink {
            health: HealthNotes::new(&name),
            name,
            file: None,
            size: 0,
            cut_tail: false,
            period: None,
            queue: Queue::default(),
            last_try: None,
            opts,
        };
        sink.open_current()
            .map_err(|e| anyhow!("sink file: cannot open {e}"))?;
        Ok(sink)
    }

    fn open_current(&mut self) -> Result<(), String> {
        let path = &self.opts.path;
        let f = crate::os::private_file(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true),
        )
        .open(path)
        .map_err(|e| io_message("", path, &e).trim_start().to_string())?;
        let meta = f.metadata().map_err(|e| io_message("stat", path, &e))?;
        self.size = meta.len();
        self.cut_tail = false;
        self.period = match (self.opts.rotate_every, self.size) {
            (Some(every), 1..) => meta.modified().ok().map(|m| period_of(m, every)),
            _ => None,
        };
        if self.size > 0 {
            // A crash may have left half a line: end it so ours start clean.
            let mut last = [0u8; 1];
            if crate::os::read_exact_at(&f, &mut last, self.size - 1).is_ok() && last[0] != b'\n' {
                (&f).write_all(b"\n")
                    .map_err(|e| io_message("writing", path, &e))?;
                self.size += 1;
            }
        }
        self.file = Some(f);
        Ok(())
    }

    /// Renames `<path>` to `<path>.1` (and so on up) and starts a new file.
    fn rotate(&mut self) -> Result<(), String> {
        self.file = None;
        let path = self.opts.path.clone();
        let keep = self.opts.keep;
        let gone_ok = |r: std::io::Result<()>, what: &str, p: &Path| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_message(what, p, &e)),
            _ => Ok(()),
        };
        if keep == 0 {
            gone_ok(std::fs::remove_file(&path), "removing", &path)?;
        } else {
            let oldest = rotated_name(&path, keep);
            gone_ok(std::fs::remove_file(&oldest), "removing", &oldest)?;
            for n in (1..keep).rev() {
                let from = rotated_name(&path, n);
                gone_ok(
                    std::fs::rename(&from, rotated_name(&path, n + 1)),
                    "renaming",
                    &from,
                )?;
            }
            gone_ok(
                std::fs::rename(&path, rotated_name(&path, 1)),
                "renaming",
                &path,
            )?;
        }
        self.open_current()
    }

    /// Writes queued lines until the queue is empty or a write fails.
    fn write_queue(&mut self) {
        self.last_try = Some(Instant::now());
        while !self.queue.is_empty() {
            if let Err(msg) = self.write_some() {
                self.health.degraded(format!(
                    "{msg}; {} lines queued in memory",
                    self.queue.len()
                ));
                return;
            }
        }
        if self.health.is_degraded() {
            self.health
                .recovered(format!("writing {} again", self.opts.path.display()));
        }
    }

    /// One step: open or rotate if needed, then write the lines that fit.
    fn write_some(&mut self) -> Result<(), String> {
        if self.file.is_none() {
            self.open_current()?;
        }
        let path = self.opts.path.clone();
        if self.cut_tail {
            let f = self.file.as_ref().expect("opened above");
            f.set_len(self.size)
                .map_err(|e| io_message("truncating", &path, &e))?;
            self.cut_tail = false;
        }
        let first = self.queue.lens.front().map_or(0, |&n| n as u64);
        let now_period = self
            .opts
            .rotate_every
            .map(|e| period_of(SystemTime::now(), e));
        let too_big = self.opts.max_size > 0 && self.size + first > self.opts.max_size;
        let too_old = now_period.is_some() && self.period.is_some_and(|p| Some(p) != now_period);
        if self.size > 0 && (too_big || too_old) {
            self.rotate()?;
        }
        if self.size == 0 {
            self.period = now_period;
        }
        // The lines that fit in this file (at least one, so a line larger than
        // max_size still gets written, alone).
        let mut len = 0u64;
        let mut lines = 0;
        for &n in &self.queue.lens {
            let n = n as u64;
            let fits = self.opts.max_size == 0 || self.size + len + n <= self.opts.max_size;
            if lines > 0 && (!fits || len >= BUF) {
                break;
            }
            len += n;
            lines += 1;
        }
        let f = self.file.as_mut().expect("opened above");
        let (written, err) = write_counting(f, self.queue.front_bytes(len as usize));
        // Lines wholly written are done; a partial one is cut off again.
        let mut done_bytes = 0;
        let mut done_lines = 0;
        for &n in self.queue.lens.iter().take(lines) {
            let n = n as usize;
            if done_bytes + n > written {
                break;
            }
            done_bytes += n;
            done_lines += 1;
        }
        self.queue.consume(done_lines, done_bytes);
        self.size += done_bytes as u64;
        match err {
            None => Ok(()),
            Some(e) => {
                if written > done_bytes {
                    self.cut_tail = true;
                    if f.set_len(self.size).is_ok() {
                        self.cut_tail = false;
                    }
                }
                Err(io_message("writing", &path, &e))
            }
        }
    }
}

/// Writes `buf`, returning how much was written before an error, if any.
fn write_counting(f: &mut File, buf: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut done = 0;
    while done < buf.len() {
        match f.write(&buf[done..]) {
            Ok(0) => return (done, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        self.opts.format
    }

    fn send(&mut self, ev: &Rendered) -> Result<()> {
        let n = ev.line.len() as u64 + 1;
        if self.queue.bytes() + n > self.opts.queue_max {
            // The oldest lines are kept: what is lost is the newest, and the
            // gap note says exactly how many.
            self.health.lost(
                1,
                format!(
                    "{}: in-memory queue full ({} MiB), events dropped",
                    self.opts.path.display(),
                    self.opts.queue_max >> 20
                ),
            );
            return Ok(());
        }
        self.queue.push(ev.line);
        let may_retry =
            !self.health.is_degraded() || self.last_try.is_none_or(|t| t.elapsed() >= RETRY_EVERY);
        if self.queue.bytes() >= BUF && may_retry {
            self.write_queue();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_queue();
        Ok(())
    }

    fn take_health(&mut self) -> Vec<super::Health> {
        self.health.take()
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.write_queue();
        if !self.queue.is_empty() {
            return Err(anyhow!(
                "{}: {} lines could not be written and are lost",
                self.name,
                self.queue.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, len: usize) -> Rendered<'static> {
        let mut line = format!("{{\"seq\":{seq},\"pad\":\"");
        while line.len() < len - 2 {
            line.push('x');
        }
        line.push_str("\"}");
        Rendered {
            seq,
            epoch: 0.0,
            host: "h",
            kind: "file",
            action: "write",
            severity: crate::event::Severity::Info,
            line: line.leak().as_bytes(),
        }
    }

    fn opts(path: &Path) -> FileOptions {
        FileOptions {
            path: path.to_path_buf(),
            format: Format::Native,
            max_size: 0,
            rotate_every: None,
            keep: 2,
            queue_max: 1 << 20,
        }
    }

    #[test]
    fn rotated_names_and_periods() {
        assert_eq!(
            rotated_name(Path::new("/var/log/v.json"), 3),
            Path::new("/var/log/v.json.3")
        );
        let day = Duration::from_secs(86_400);
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(period_of(t(86_399), day), 0);
        assert_eq!(period_of(t(86_400), day), 1);
        assert_eq!(period_of(t(3_600 * 5 + 1), Duration::from_secs(3600)), 5);
    }

    #[test]
    fn rotation_keeps_newest_first_and_drops_beyond_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        let mut o = opts(&path);
        o.max_size = 250;
        let mut s = FileSink::open(o).unwrap();
        // 100-byte lines (with newline): two per file.
        for seq in 1..=9 {
            s.send(&ev(seq, 99)).unwrap();
            s.flush().unwrap();
        }
        let seqs = |p: &Path| -> Vec<u64> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        assert_eq!(seqs(&path), vec![9]);
        assert_eq!(seqs(&rotated_name(&path, 1)), vec![7, 8]);
        assert_eq!(seqs(&rotated_name(&path, 2)), vec![5, 6]);
        assert!(!rotated_name(&path, 3).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_line_larger_than_max_size_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        let mut o = opts(&path);
        o.max_size = 100;
        let mut s = FileSink::open(o).unwrap();
        s.send(&ev(1, 50)).unwrap();
        s.send(&ev(2, 300)).unwrap();
        s.send(&ev(3, 50)).unwrap();
        s.flush().unwrap();
        assert_eq!(std::fs::read(rotated_name(&path, 2)).unwrap().len(), 51);
        assert_eq!(std::fs::read(rotated_name(&path, 1)).unwrap().len(), 301);
        assert_eq!(std::fs::read(&path).unwrap().len(), 51);
        assert!(s.take_health().is_empty());
    }

    #[test]
    fn a_torn_last_line_is_ended_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        std::fs::write(&path, b"{\"torn\":").unwrap();
        let mut s = FileSink::open(opts(&path)).unwrap();
        s.send(&ev(1, 20)).unwrap();
        Box::new(s).close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "{\"torn\":");
        assert!(lines[1].starts_with("{\"seq\":1"));
    }

    #[test]
    fn the_queue_keeps_unwritten_lines_whole_across_partial_writes() {
        let line = |i: usize| format!("{i:04}").repeat(256); // 1 KiB
        let mut q = Queue::default();
        for i in 0..400 {
            q.push(line(i).as_bytes());
        }
        assert_eq!((q.len(), q.bytes()), (400, 400 * 1025));
        // Past BUF and half the buffer written: the rest moves to the front.
        q.consume(300, 300 * 1025);
        assert_eq!(q.start, 0);
        q.consume(50, 50 * 1025);
        assert_eq!(q.start, 50 * 1025);
        let next = format!("{}\n", line(350));
        assert_eq!(q.front_bytes(1025), next.as_bytes());
        assert_eq!((q.len(), q.bytes()), (50, 50 * 1025));
        q.consume(50, 50 * 1025);
        assert!(q.is_empty() && q.buf.is_empty());
    }

    #[test]
    fn queue_bound_counts_every_dropped_line() {
        let dir = tempfile::tempdir().unwrap();
        // A path whose directory does not exist yet: every write fails.
        let sub = dir.path().join("later");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("v.json");
        let mut o = opts(&path);
        o.queue_max = 1000;
        let mut s = FileSink::open(o).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        s.file = None; // as after a failed rotation
        for seq in 1..=15 {
            s.send(&ev(seq, 99)).unwrap();
        }
        s.flush().unwrap();
        let notes = s.take_health();
        let lost: u64 = notes
            .iter()
            .map(|n| match n.state {
                super::super::HealthState::Gap { lost } => lost,
                _ => 0,
            })
            .sum();
        assert_eq!(lost, 5, "{notes:?}");
        assert!(notes
            .iter()
            .any(|n| n.state == super::super::HealthState::Degraded));
        std::fs::create_dir(&sub).unwrap();
        s.flush().unwrap();
        assert_eq!(
            s.take_health()
                .into_iter()
                .map(|n| n.state)
                .collect::<Vec<_>>(),
            vec![super::super::HealthState::Recovered]
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10);
    }
}
