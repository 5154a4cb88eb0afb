//! Standard output: one JSON line per event.
use super::{Rendered, Sink};
use crate::schema::Format;
use anyhow::{Context, Result};
use std::io::Write;

/// Written out once this much is buffered; `flush` writes the rest.
const BUF: usize = 256 * 1024;

pub struct StdoutSink {
    format: Format,
    /// Whole lines only, so a reader never sees half an event between writes
    /// (a `BufWriter` may cut a line when its buffer fills).
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new(format: Format) -> StdoutSink {
        StdoutSink {
            format,
            buf: Vec::with_capacity(BUF),
        }
    }

    fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let res = out.write_all(&self.buf).and_then(|_| out.flush());
        // Dropped even on error: stdout failing (closed pipe) does not recover,
        // and keeping the lines would only grow the buffer.
        self.buf.clear();
        res.context("writing to stdout")
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send(&mut self, ev: &Rendered) -> Result<()> {
        self.buf.extend_from_slice(ev.line);
        self.buf.push(b'\n');
        if self.buf.len() >= BUF {
            self.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.write_out()
    }
}
