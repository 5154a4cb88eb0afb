//! Where events go: stdout or an NDJSON file (appended).
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Large enough that one event (long command lines included) fits whole.
const BUF: usize = 256 * 1024;

pub struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    name: String,
}

impl Output {
    pub fn stdout() -> Output {
        Output {
            writer: BufWriter::with_capacity(BUF, Box::new(std::io::stdout())),
            name: "stdout".into(),
        }
    }

    /// Appends to `path`, creating it (mode 0600: events name users and commands).
    pub fn file(path: &Path) -> Result<Output> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open output file {}", path.display()))?;
        Ok(Output {
            writer: BufWriter::with_capacity(BUF, Box::new(f)),
            name: path.display().to_string(),
        })
    }

    pub fn write_event<T: serde::Serialize>(&mut self, ev: &T) -> Result<()> {
        serde_json::to_writer(&mut self.writer, ev)?;
        self.writer
            .write_all(b"\n")
            .with_context(|| format!("writing to {}", self.name))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("writing to {}", self.name))
    }
}

/// Until the sink module's stdout and file sinks are wired in.
impl crate::sink::Sink for Output {
    fn name(&self) -> &str {
        &self.name
    }
    fn format(&self) -> crate::schema::Format {
        crate::schema::Format::Native
    }
    fn send(&mut self, ev: &crate::sink::Rendered) -> Result<()> {
        self.writer
            .write_all(&ev.line)
            .and_then(|_| self.writer.write_all(b"\n"))
            .with_context(|| format!("writing to {}", self.name))
    }
    fn flush(&mut self) -> Result<()> {
        Output::flush(self)
    }
    fn close(mut self: Box<Self>) -> Result<()> {
        Output::flush(&mut self)
    }
}
