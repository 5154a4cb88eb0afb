//! The change journal's events, kept in zstd-compressed blocks.
//!
//! A live sensor journals every event it emits. Kept as plain JSON in its
//! row (~1.5 KB an event), the journal was half of the sensor's CPU under a
//! flood: SQLite wrote each event's pages to the WAL and the checkpointer
//! wrote them again into the database (docs/benchmarks.md). The events of
//! one host look alike, so a block of consecutive events compresses ~20×
//! with zstd at level 1 (~1 GB/s). The journal row keeps its searchable
//! columns and an empty `event`; the event's JSON is line `seq - first_seq`
//! of the block whose `first_seq..=last_seq` holds `seq`. SQL reads either
//! form with `vigil_event(seq, event)` ([`register_functions`]).

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};
use std::io::Read;

/// Events per block: a random read decompresses at most ~100 KB.
pub const BLOCK_EVENTS: usize = 64;

/// zstd level 1: the ratio of level 3 on these blocks, at twice the speed.
const LEVEL: i32 = 1;

/// A block larger than this decompressed is damage, not events (64 events
/// of at most a few MB each, their diffs included).
const MAX_BLOCK_BYTES: u64 = 256 << 20;

/// The events journaled since the last block was written, in seq order.
pub(super) struct PendingBlock {
    first_seq: i64,
    last_seq: i64,
    /// Their JSON, each line ended by `\n`.
    lines: Vec<u8>,
    count: usize,
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

impl PendingBlock {
    pub(super) fn new() -> PendingBlock {
        PendingBlock {
            first_seq: 0,
            last_seq: 0,
            lines: Vec::new(),
            count: 0,
            compressor: None,
        }
    }

    /// Whether `seq` continues the block (the next seq, or an empty block).
    pub(super) fn continues(&self, seq: i64) -> bool {
        self.count == 0 || seq == self.last_seq + 1
    }

    /// Adds the event `seq`; `json` holds no newline.
    pub(super) fn push(&mut self, seq: i64, json: &str) {
        debug_assert!(self.continues(seq));
        if self.count == 0 {
            self.first_seq = seq;
        }
        self.last_seq = seq;
        self.lines.extend_from_slice(json.as_bytes());
        self.lines.push(b'\n');
        self.count += 1;
    }

    pub(super) fn is_full(&self) -> bool {
        self.count >= BLOCK_EVENTS
    }

    /// Writes the block, if it holds any event, and empties it.
    pub(super) fn write(&mut self, conn: &Connection) -> Result<(), String> {
        if self.count == 0 {
            return Ok(());
        }
        let compressor = match &mut self.compressor {
            Some(c) => c,
            None => self.compressor.insert(
                zstd::bulk::Compressor::new(LEVEL)
                    .map_err(|e| format!("cannot start the journal's compressor: {e}"))?,
            ),
        };
        let packed = compressor.compress(&self.lines).map_err(|e| {
            format!(
                "cannot compress journal events {}..={}: {e}",
                self.first_seq, self.last_seq
            )
        })?;
        conn.prepare_cached(
            "INSERT INTO journal_blocks (first_seq, last_seq, events) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut st| st.execute(params![self.first_seq, self.last_seq, packed]))
        .map_err(|e| {
            format!(
                "cannot write the block of journal events {}..={}: {e}",
                self.first_seq, self.last_seq
            )
        })?;
        self.clear();
        Ok(())
    }

    /// Forgets the events.
    pub(super) fn clear(&mut self) {
        self.lines.clear();
        self.count = 0;
    }
}

/// A decompressed block: its range and where each line starts.
struct Block {
    first_seq: i64,
    last_seq: i64,
    text: String,
    starts: Vec<usize>,
}

impl Block {
    fn line(&self, seq: i64) -> &str {
        let i = (seq - self.first_seq) as usize;
        // Every line ends with `\n`, the last one included.
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        &self.text[self.starts[i]..end - 1]
    }
}

/// Reads the block holding `seq`.
fn read_block(conn: &Connection, seq: i64) -> Result<Block, String> {
    let row: Option<(i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT first_seq, last_seq, events FROM journal_blocks
             WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(|e| e.to_string())?;
    let damaged = |why: &str| {
        format!("journal entry {seq}: {why}; the store was damaged or edited by hand (the NDJSON output holds the same event)")
    };
    let (first_seq, last_seq, packed) = match row {
        Some(r) if r.1 >= seq => r,
        _ => return Err(damaged("its event is in no journal block")),
    };
    let mut bytes = Vec::new();
    zstd::Decoder::new(&packed[..])
        .and_then(|d| d.take(MAX_BLOCK_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| damaged(&format!("its block does not decompress ({e})")))?;
    if bytes.len() as u64 > MAX_BLOCK_BYTES {
        return Err(damaged("its block decompresses to more than 256 MiB"));
    }
    let text = String::from_utf8(bytes).map_err(|_| damaged("its block is not UTF-8"))?;
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    // The last start is past the final newline.
    starts.pop();
    if starts.len() as i64 != last_seq - first_seq + 1 || !text.ends_with('\n') {
        return Err(damaged(&format!(
            "its block {first_seq}..={last_seq} holds {} events",
            starts.len()
        )));
    }
    Ok(Block {
        first_seq,
        last_seq,
        text,
        starts,
    })
}

/// Registers `vigil_event(seq, event)` on `conn`: the event's JSON, from the
/// row (`event` not empty) or from its block. The last block read is kept,
/// so a scan in seq order decompresses each block once.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let last: std::sync::Mutex<Option<Block>> = Default::default();
    conn.create_scalar_function("vigil_event", 2, FunctionFlags::SQLITE_UTF8, move |ctx| {
        if let ValueRef::Text(t) = ctx.get_raw(1) {
            if !t.is_empty() {
                return Ok(String::from_utf8_lossy(t).into_owned());
            }
        }
        let seq: i64 = ctx.get(0)?;
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some(b) if (b.first_seq..=b.last_seq).contains(&seq) => {}
            _ => {
                // SAFETY: the connection is only read here, and outlives the call.
                let conn = unsafe { ctx.get_connection()? };
                let block = read_block(&conn, seq)
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
                *last = Some(block);
            }
        }
        Ok(last
            .as_ref()
            .map(|b| b.line(seq).to_string())
            .unwrap_or_default())
    })
}
