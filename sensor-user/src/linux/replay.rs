//! Recording raw ring-buffer records, and replaying them through the pipeline
//! without a kernel: the input of `cargo xtask bench pipeline`, and a way to
//! reproduce what a sensor saw.
//!
//! File format: each record as a little-endian u32 length and its bytes, exactly
//! as the ring buffer delivered it.
use super::sensor::Attributor;
use crate::pipeline::{emit::Emitter, Pipeline, Settings};
use crate::policy::Policy;
use crate::process::ProcessTable;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder> {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create record file {}", path.display()))?;
        Ok(Recorder {
            out: std::io::BufWriter::with_capacity(1 << 20, f),
        })
    }

    pub fn write(&mut self, record: &[u8]) -> Result<()> {
        self.out.write_all(&(record.len() as u32).to_le_bytes())?;
        self.out.write_all(record)?;
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// A record file in memory, each record 8-aligned as in the ring buffer (so
/// the decoder reads them in place, as it does live).
pub struct Records {
    arena: Vec<u64>,
    spans: Vec<std::ops::Range<usize>>,
}

impl Records {
    fn new(data: &[u8], spans: Vec<std::ops::Range<usize>>) -> Records {
        let words: usize = spans.iter().map(|r| r.len().div_ceil(8)).sum();
        let mut arena = vec![0u64; words];
        let mut aligned = Vec::with_capacity(spans.len());
        let mut at = 0;
        for r in spans {
            let len = r.len();
            // SAFETY: the arena holds `words * 8` initialized bytes; u8 has no
            // alignment or validity requirements.
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(arena.as_mut_ptr() as *mut u8, words * 8) };
            bytes[at..at + len].copy_from_slice(&data[r]);
            aligned.push(at..at + len);
            at += len.div_ceil(8) * 8;
        }
        Records {
            arena,
            spans: aligned,
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        // SAFETY: as in `new`: a read-only byte view of the arena.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.arena.as_ptr() as *const u8, self.arena.len() * 8)
        };
        self.spans.iter().map(move |r| &bytes[r.clone()])
    }
}

/// Reads a record file; a torn last record is an error.
pub fn read_records(path: &Path) -> Result<Records> {
    let data = std::fs::read(path)
        .with_context(|| format!("cannot read record file {}", path.display()))?;
    let mut spans = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().with_context(|| {
            format!(
                "{}: torn length at byte {}",
                path.display(),
                data.len() - rest.len()
            )
        })?;
        let len = u32::from_le_bytes(*len) as usize;
        anyhow::ensure!(
            tail.len() >= len,
            "{}: record at byte {} is cut short",
            path.display(),
            data.len() - rest.len()
        );
        let start = data.len() - tail.len();
        spans.push(start..start + len);
        rest = &tail[len..];
    }
    Ok(Records::new(&data, spans))
}

/// Which stages a replay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Decode and attribute only; changes are counted and dropped.
    Attribute,
    /// The whole pipeline to the configured sinks.
    All,
}

/// What a replay measured.
#[derive(Debug, serde::Serialize)]
pub struct ReplayStats {
    pub records: u64,
    pub changes: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub changes_per_second: f64,
}

/// Feeds `records` through decode and attribute (and, for [`Stage::All`], the
/// rest of the pipeline) `repeat` times, as fast as the stages take them.
pub fn replay(
    records: &Records,
    repeat: u32,
    stage: Stage,
    policy: Policy,
    settings: Settings,
    emitter: Emitter,
) -> Result<ReplayStats> {
    let host = emitter.host().to_string();
    let out = match stage {
        Stage::All => Some(Pipeline::start(settings, emitter)?),
        Stage::Attribute => None,
    };
    let mut a = Attributor::new(policy, out, host, ProcessTable::from_proc(), None);
    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..repeat {
        a.decode_all(records.iter())?;
        n += records.len() as u64;
    }
    a.stop("replay", None)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ReplayStats {
        records: n,
        changes: a.changes,
        seconds,
        records_per_second: n as f64 / seconds,
        changes_per_second: a.changes as f64 / seconds,
    })
}
