//! Batches POSTed to Splunk HEC, Elasticsearch `_bulk`, or an NDJSON endpoint,
//! with a disk spool for when the receiver is down.
//!
//! `send` hands events to a worker thread over a bounded crossbeam channel;
//! the worker batches them and POSTs with `ureq` (blocking, so the sink needs
//! no async runtime; the worker is the only thread that waits on the network).
//!
//! Delivery: while the receiver accepts, batches go straight from memory. When
//! a POST fails (connection error, timeout, 408, 429, 5xx, and 3xx/401/403/404,
//! which an operator fixes without the events being at fault), the batch goes
//! to the spool, and so does every later batch until the spool is empty again:
//! the spool is replayed oldest first, one batch at a time, with exponential
//! backoff between failures, so events arrive in order. Other 4xx answers
//! reject the batch for good (a gap). See [`spool`] for the disk format.
//!
//! Elasticsearch: documents are sent with `create` and an `_id` made of a
//! per-sink-run id and the event's seq. Only the items that failed with 429 or
//! 5xx are retried; a `409` (the document exists) counts as delivered, so a
//! batch replayed after a crash does not duplicate documents.
use super::{lock, HealthNotes, HttpKind, Rendered, Sink, SinkConfig};
use crate::schema::Format;
use anyhow::{anyhow, bail, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod spool;
use spool::{Record, Spool};

/// Events waiting for the worker; beyond this `send` drops and counts.
const CHANNEL: usize = 65_536;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long `close` waits for the spool to drain.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The checked, resolved configuration of an http sink.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub kind: HttpKind,
    /// The `Authorization` header, if any.
    pub auth: Option<String>,
    pub index: Option<String>,
    pub sourcetype: String,
    pub host: String,
    pub spool_dir: PathBuf,
    pub spool_max: u64,
    pub batch_max_events: usize,
    pub batch_max_bytes: usize,
    pub batch_delay: Duration,
    pub timeout: Duration,
    pub format: Format,
}

impl Settings {
    pub fn from_config(cfg: &SinkConfig, host: &str) -> Result<Settings> {
        let SinkConfig::Http {
            url,
            kind,
            token,
            username,
            password,
            index,
            sourcetype,
            spool_dir,
            spool_max_mib,
            batch_max_events,
            batch_max_bytes,
            batch_delay_ms,
            timeout_ms,
            format,
        } = cfg
        else {
            bail!("sink http: not an http sink configuration");
        };
        let bad_url = |why: String| anyhow!("sink http: url '{url}' is not a valid URL: {why}");
        let uri: ureq::http::Uri = url.parse().map_err(|e| bad_url(format!("{e}")))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            return Err(bad_url("it must start with http:// or https://".into()));
        }
        let Some(authority) = uri.authority() else {
            return Err(bad_url("it names no host".into()));
        };
        let mut url = url.clone();
        if uri.path() == "/" && !url.contains('?') {
            let path = match kind {
                HttpKind::Hec => "/services/collector/event",
                HttpKind::Elastic => "/_bulk",
                HttpKind::Generic => "/",
            };
            url = format!("{}://{}{}", scheme, authority, path);
        }
        let path = url
            .parse::<ureq::http::Uri>()
            .map_err(|e| bad_url(format!("{e}")))?
            .path()
            .to_string();
        let auth = match (kind, token, username, password) {
            (HttpKind::Hec, None, ..) => {
                bail!("sink http: kind hec needs `token` (the HEC token)")
            }
            (_, Some(_), Some(_), _) => {
                bail!("sink http: give either `token` or `username`/`password`, not both")
            }
            (_, None, None, Some(_)) => bail!("sink http: `password` needs `username`"),
            (HttpKind::Hec, Some(t), ..) => Some(format!("Splunk {t}")),
            (HttpKind::Elastic, Some(t), ..) => Some(format!("ApiKey {t}")),
            (HttpKind::Generic, Some(t), ..) => Some(format!("Bearer {t}")),
            (_, None, Some(u), p) => Some(format!(
                "Basic {}",
                base64(format!("{u}:{}", p.as_deref().unwrap_or("")).as_bytes())
            )),
            (_, None, None, None) => None,
        };
        if *kind == HttpKind::Elastic && index.is_none() && path == "/_bulk" {
            bail!("sink http: kind elastic needs `index`, or a url ending in /<index>/_bulk");
        }
        if *batch_max_events == 0 || *batch_max_bytes < 1024 {
            bail!(
                "sink http: batch_max_events must be at least 1 and batch_max_bytes at least 1024"
            );
        }
        if *spool_max_mib == 0 {
            bail!("sink http: spool_max_mib must be at least 1");
        }
        if *timeout_ms == 0 {
            bail!("sink http: timeout_ms must be more than 0");
        }
        let spool_dir = spool_dir.clone().unwrap_or_else(|| {
            let safe: String = authority
                .as_str()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let kind = format!("{kind:?}").to_lowercase();
            Path::new(crate::store::DEFAULT_PATH)
                .with_file_name("spool")
                .join(format!("{kind}-{safe}"))
        });
        Ok(Settings {
            url,
            kind: *kind,
            auth,
            index: index.clone(),
            sourcetype: sourcetype.clone(),
            host: host.to_string(),
            spool_dir,
            spool_max: spool_max_mib.saturating_mul(1 << 20),
            batch_max_events: *batch_max_events,
            batch_max_bytes: *batch_max_bytes,
            batch_delay: Duration::from_millis(*batch_delay_ms),
            timeout: Duration::from_millis(*timeout_ms),
            format: *format,
        })
    }
}

/// Standard base64 with padding (for Basic authentication).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// HEC: one `{"time","host","sourcetype",["index",]"event"}` object per event,
/// newline separated (HEC accepts concatenated objects).
pub fn hec_body(recs: &[Record], host: &str, sourcetype: &str, index: Option<&str>) -> Vec<u8> {
    let mut b = Vec::new();
    let host = serde_json::to_string(host).expect("strings serialize");
    let st = serde_json::to_string(sourcetype).expect("strings serialize");
    let index = index.map(|i| serde_json::to_string(i).expect("strings serialize"));
    for r in recs {
        b.extend_from_slice(
            format!(
                "{{\"time\":{:.3},\"host\":{host},\"sourcetype\":{st}",
                r.epoch
            )
            .as_bytes(),
        );
        if let Some(i) = &index {
            b.extend_from_slice(b",\"index\":");
            b.extend_from_slice(i.as_bytes());
        }
        b.extend_from_slice(b",\"event\":");
        b.extend_from_slice(&r.line);
        b.extend_from_slice(b"}\n");
    }
    b
}

/// Elasticsearch `_bulk`: a `create` action (with `_id`, and `_index` when
/// configured) and the document, per event.
pub fn bulk_body(recs: &[Record], index: Option<&str>) -> Vec<u8> {
    let mut b = Vec::new();
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let index = index.map(|i| format!("\"_index\":{},", quote(i)));
    for r in recs {
        let action = format!(
            "{{\"create\":{{{}\"_id\":{}}}}}\n",
            index.as_deref().unwrap_or(""),
            quote(&r.id)
        );
        b.extend_from_slice(action.as_bytes());
        b.extend_from_slice(&r.line);
        b.push(b'\n');
    }
    b
}

/// One event per line.
pub fn ndjson_body(recs: &[Record]) -> Vec<u8> {
    let mut b = Vec::new();
    for r in recs {
        b.extend_from_slice(&r.line);
        b.push(b'\n');
    }
    b
}

/// What became of one POST.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Every record was accepted, or `rejected` of them refused for good.
    Done { rejected: u64, why: String },
    /// The records at `retry` (indices into the batch) must be sent again; the
    /// others are done (`rejected` of them refused for good).
    Retry {
        retry: Vec<usize>,
        rejected: u64,
        why: String,
    },
}

fn retry_all(n: usize, why: String) -> Outcome {
    Outcome::Retry {
        retry: (0..n).collect(),
        rejected: 0,
        why,
    }
}

/// Judges an HTTP answer to a batch of `n` records.
pub fn judge(kind: HttpKind, n: usize, status: u16, body: &str) -> Outcome {
    let snippet: String = body.chars().take(200).collect();
    match status {
        200..=299 if kind == HttpKind::Elastic => judge_bulk(n, body),
        200..=299 => Outcome::Done {
            rejected: 0,
            why: String::new(),
        },
        300..=399 | 401 | 403 | 404 | 408 | 429 | 500..=599 => {
            retry_all(n, format!("HTTP {status}: {snippet}"))
        }
        _ => Outcome::Done {
            rejected: n as u64,
            why: format!("HTTP {status}, batch rejected: {snippet}"),
        },
    }
}

/// Per-item results of `_bulk`: 2xx and 409 (already created) are done, 429
/// and 5xx are retried, anything else is rejected.
fn judge_bulk(n: usize, body: &str) -> Outcome {
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return retry_all(n, format!("_bulk answer is not JSON: {e}")),
    };
    if v["errors"] == serde_json::Value::Bool(false) {
        return Outcome::Done {
            rejected: 0,
            why: String::new(),
        };
    }
    let Some(items) = v["items"].as_array().filter(|i| i.len() == n) else {
        return retry_all(n, format!("_bulk answer has no {n} items"));
    };
    let mut retry = Vec::new();
    let mut rejected = 0;
    let mut why = String::new();
    for (i, item) in items.iter().enumerate() {
        let res = item
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or_default();
        let status = res["status"].as_u64().unwrap_or(0);
        match status {
            200..=299 | 409 => continue,
            429 | 500..=599 => retry.push(i),
            _ => rejected += 1,
        }
        if why.is_empty() {
            why = format!("_bulk item status {status}: {}", res["error"]);
        }
    }
    if retry.is_empty() {
        Outcome::Done { rejected, why }
    } else {
        Outcome::Retry {
            retry,
            rejected,
            why,
        }
    }
}

enum Msg {
    Event(Record),
    Flush,
    Close(Instant),
}

pub struct HttpSink {
    name: String,
    format: Format,
    run: String,
    tx: Option<Sender<Msg>>,
    health: Arc<Mutex<HealthNotes>>,
    worker: Option<JoinHandle<()>>,
}

impl HttpSink {
    pub fn open(cfg: &SinkConfig, host: &str) -> Result<HttpSink> {
        let s = Settings::from_config(cfg, host)?;
        let spool = Spool::open(&s.spool_dir, s.spool_max)
            .map_err(|e| anyhow!("sink http: spool_dir {}: {e}", s.spool_dir.display()))?;
        let name = format!("http:{}", s.url);
        let health = Arc::new(Mutex::new(HealthNotes::new(&name)));
        let builder = ureq::Agent::config_builder();
        // Windows builds carry the system's TLS (SChannel) instead of rustls.
        #[cfg(windows)]
        let builder = builder.tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .build(),
        );
        let agent: ureq::Agent = builder
            .timeout_global(Some(s.timeout))
            .http_status_as_error(false)
            // A redirect is a configuration matter (http to https...): the
            // events wait in the spool until the url is fixed.
            .max_redirects(0)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        // Unique enough across restarts of this sink: the moment and the pid.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let run = format!("{:x}{:05x}", now.as_micros(), std::process::id() & 0xfffff);
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let worker = Worker {
            name: name.clone(),
            agent,
            s: s.clone(),
            spool,
            health: health.clone(),
            batch: Vec::new(),
            batch_bytes: 0,
            batch_since: None,
            inflight: None,
            backoff: BACKOFF_MIN,
            next_try: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("vigil-http".into())
            .spawn(move || worker.run(rx))?;
        Ok(HttpSink {
            name,
            format: s.format,
            run,
            tx: Some(tx),
            health,
            worker: Some(handle),
        })
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send(&mut self, ev: &Rendered) -> Result<()> {
        let rec = Record {
            epoch: ev.epoch,
            id: format!("{}-{}", self.run, ev.seq),
            line: ev.line.into(),
        };
        let tx = self.tx.as_ref().expect("open until close");
        match tx.try_send(Msg::Event(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => lock(&self.health).lost(
                1,
                format!("send queue full ({CHANNEL} events), events dropped"),
            ),
            Err(TrySendError::Disconnected(_)) => {
                lock(&self.health).lost(1, "worker thread gone, events dropped")
            }
        }
        Ok(())
    }

    /// Sends the batch being gathered now rather than after `batch_delay_ms`.
    fn flush(&mut self) -> Result<()> {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Msg::Flush);
        }
        Ok(())
    }

    fn take_health(&mut self) -> Vec<super::Health> {
        lock(&self.health).take()
    }

    /// Sends what is gathered and drains the spool for up to 10 s; what is
    /// left stays in the spool for the next start.
    fn close(mut self: Box<Self>) -> Result<()> {
        let deadline = Instant::now() + CLOSE_WAIT;
        if let Some(tx) = self.tx.take() {
            let _ = tx.send_timeout(Msg::Close(deadline), CLOSE_WAIT);
        }
        if let Some(w) = self.worker.take() {
            w.join()
                .map_err(|_| anyhow!("{}: worker thread panicked", self.name))?;
        }
        Ok(())
    }
}

impl Drop for HttpSink {
    /// Without `close`: the worker spools what it holds (no network) and
    /// stops; waiting for it keeps the spool directory's lock until then.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

struct Inflight {
    recs: Vec<Record>,
    /// The spool position just after these records.
    end: spool::Pos,
}

struct Worker {
    name: String,
    agent: ureq::Agent,
    s: Settings,
    spool: Spool,
    health: Arc<Mutex<HealthNotes>>,
    batch: Vec<Record>,
    batch_bytes: usize,
    batch_since: Option<Instant>,
    /// Records read from the spool and not yet delivered.
    inflight: Option<Inflight>,
    backoff: Duration,
    next_try: Instant,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut closing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let backlog = self.inflight.is_some() || !self.spool.is_empty();
            if let Some(d) = closing {
                if !backlog || now >= d {
                    return;
                }
            }
            let mut wake: Option<Instant> = self.batch_since.map(|t| t + self.s.batch_delay);
            if backlog {
                wake = Some(wake.map_or(self.next_try, |w| w.min(self.next_try)));
            }
            if let Some(d) = closing {
                wake = Some(wake.map_or(d, |w| w.min(d)));
            }
            let got = match wake {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(w) => rx.recv_timeout(w.saturating_duration_since(now)),
            };
            match got {
                Ok(m) => {
                    self.take(m, &mut closing);
                    // Whatever else is waiting, without blocking.
                    while let Ok(m) = rx.try_recv() {
                        self.take(m, &mut closing);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Dropped without close: keep everything on disk, stop.
                    let batch = std::mem::take(&mut self.batch);
                    self.spool_records(batch);
                    return;
                }
            }
            if self
                .batch_since
                .is_some_and(|t| t.elapsed() >= self.s.batch_delay)
            {
                self.ship();
            }
            if Instant::now() >= self.next_try {
                self.replay_one();
            }
        }
    }

    fn take(&mut self, m: Msg, closing: &mut Option<Instant>) {
        match m {
            Msg::Event(r) => {
                self.batch_bytes += r.line.len() + r.id.len() + 100;
                self.batch.push(r);
                self.batch_since.get_or_insert_with(Instant::now);
                if self.batch.len() >= self.s.batch_max_events
                    || self.batch_bytes >= self.s.batch_max_bytes
                {
                    self.ship();
                }
            }
            Msg::Flush => self.ship(),
            Msg::Close(deadline) => {
                self.ship();
                *closing = Some(deadline);
            }
        }
    }

    /// Sends the gathered batch, or spools it behind older events.
    fn ship(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.batch_since = None;
        if batch.is_empty() {
            return;
        }
        let backlog = self.inflight.is_some() || !self.spool.is_empty();
        if backlog || Instant::now() < self.next_try {
            return self.spool_records(batch);
        }
        match self.post(&batch) {
            Outcome::Done { rejected, why } => {
                self.rejected(rejected, &why);
                self.succeeded();
            }
            Outcome::Retry {
                retry,
                rejected,
                why,
            } => {
                self.rejected(rejected, &why);
                self.failed(&why);
                let keep = pick(batch, &retry);
                self.spool_records(keep);
            }
        }
    }

    /// Sends the oldest spooled batch (one per call, so new events keep
    /// flowing into the spool meanwhile).
    fn replay_one(&mut self) {
        if self.inflight.is_none() {
            if self.spool.is_empty() {
                return;
            }
            match self
                .spool
                .read(self.s.batch_max_events, self.s.batch_max_bytes)
            {
                Ok((recs, end, corrupt)) => {
                    if corrupt > 0 {
                        lock(&self.health).lost(
                            corrupt,
                            format!("{}: unreadable spool records skipped", self.name),
                        );
                    }
                    self.inflight = Some(Inflight { recs, end });
                }
                Err(e) => return self.failed(&format!("reading the spool: {e}")),
            }
        }
        let inflight = self.inflight.as_mut().expect("set above");
        let outcome = if inflight.recs.is_empty() {
            Outcome::Done {
                rejected: 0,
                why: String::new(),
            }
        } else {
            let recs = std::mem::take(&mut inflight.recs);
            let o = self.post(&recs);
            self.inflight.as_mut().expect("still set").recs = recs;
            o
        };
        match outcome {
            Outcome::Done { rejected, why } => {
                self.rejected(rejected, &why);
                let done = self.inflight.take().expect("still set");
                if let Err(e) = self.spool.commit(done.end) {
                    // Delivered but not recorded: these may be sent again.
                    tracing::warn!("{}: recording spool progress: {e}", self.name);
                }
                if self.spool.is_empty() {
                    self.succeeded();
                } else {
                    self.backoff = BACKOFF_MIN;
                }
            }
            Outcome::Retry {
                retry,
                rejected,
                why,
            } => {
                self.rejected(rejected, &why);
                self.failed(&why);
                let inflight = self.inflight.as_mut().expect("still set");
                inflight.recs = pick(std::mem::take(&mut inflight.recs), &retry);
            }
        }
    }

    fn spool_records(&mut self, recs: Vec<Record>) {
        let n = recs.len() as u64;
        match self.spool.append(&recs) {
            Ok(0) => {}
            Ok(lost) => lock(&self.health).lost(
                lost,
                format!(
                    "{}: spool full ({} MiB), events dropped",
                    self.name,
                    self.s.spool_max >> 20
                ),
            ),
            Err(e) => {
                lock(&self.health).lost(n, format!("{}: cannot write the spool: {e}", self.name))
            }
        }
    }

    fn post(&self, recs: &[Record]) -> Outcome {
        let (body, ctype) = match self.s.kind {
            HttpKind::Hec => (
                hec_body(
                    recs,
                    &self.s.host,
                    &self.s.sourcetype,
                    self.s.index.as_deref(),
                ),
                "application/json",
            ),
            HttpKind::Elastic => (
                bulk_body(recs, self.s.index.as_deref()),
                "application/x-ndjson",
            ),
            HttpKind::Generic => (ndjson_body(recs), "application/x-ndjson"),
        };
        let mut req = self.agent.post(&self.s.url).header("Content-Type", ctype);
        if let Some(a) = &self.s.auth {
            req = req.header("Authorization", a);
        }
        match req.send(&body[..]) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_string()
                    .unwrap_or_default();
                judge(self.s.kind, recs.len(), status, &text)
            }
            Err(e) => retry_all(recs.len(), e.to_string()),
        }
    }

    fn rejected(&self, n: u64, why: &str) {
        lock(&self.health).lost(n, format!("{}: {why}", self.name));
    }

    fn succeeded(&mut self) {
        self.backoff = BACKOFF_MIN;
        lock(&self.health).recovered(format!("{}: delivering again", self.name));
    }

    fn failed(&mut self, why: &str) {
        lock(&self.health).degraded(format!(
            "{}: {why}; spooling to {}",
            self.name,
            self.s.spool_dir.display()
        ));
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// The records at `idx` (ascending), in order.
fn pick(recs: Vec<Record>, idx: &[usize]) -> Vec<Record> {
    let mut want = idx.iter().peekable();
    recs.into_iter()
        .enumerate()
        .filter(|(i, _)| {
            if want.peek() == Some(&i) {
                want.next();
                true
            } else {
                false
            }
        })
        .map(|(_, r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record {
            epoch: 1_700_000_000.5,
            id: format!("r-{seq}"),
            line: format!("{{\"seq\":{seq}}}").into_bytes().into(),
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn hec_body_is_one_object_per_event() {
        let b = hec_body(&[rec(1), rec(2)], "web-1", "vigil", Some("fim"));
        let text = String::from_utf8(b).unwrap();
        let objs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(objs.len(), 2);
        assert_eq!(
            objs[1],
            serde_json::json!({"time": 1_700_000_000.5, "host": "web-1", "sourcetype": "vigil",
                               "index": "fim", "event": {"seq": 2}})
        );
    }

    #[test]
    fn bulk_body_pairs_create_actions_and_documents() {
        let b = String::from_utf8(bulk_body(&[rec(1), rec(2)], Some("fim"))).unwrap();
        let lines: Vec<&str> = b.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], r#"{"create":{"_index":"fim","_id":"r-1"}}"#);
        assert_eq!(lines[1], r#"{"seq":1}"#);
        assert_eq!(lines[2], r#"{"create":{"_index":"fim","_id":"r-2"}}"#);
        assert!(b.ends_with('\n'));
        let b = String::from_utf8(bulk_body(&[rec(1)], None)).unwrap();
        assert!(b.starts_with(r#"{"create":{"_id":"r-1"}}"#));
        assert_eq!(
            ndjson_body(&[rec(1), rec(2)]),
            b"{\"seq\":1}\n{\"seq\":2}\n"
        );
    }

    #[test]
    fn answers_are_judged() {
        use HttpKind::*;
        let done = Outcome::Done {
            rejected: 0,
            why: String::new(),
        };
        assert_eq!(
            judge(Hec, 2, 200, "{\"text\":\"Success\",\"code\":0}"),
            done
        );
        assert_eq!(judge(Generic, 2, 204, ""), done);
        assert!(
            matches!(judge(Hec, 2, 503, "busy"), Outcome::Retry { retry, .. } if retry == vec![0, 1])
        );
        assert!(matches!(judge(Generic, 2, 401, ""), Outcome::Retry { .. }));
        assert!(matches!(judge(Generic, 2, 301, ""), Outcome::Retry { .. }));
        assert!(matches!(
            judge(Hec, 2, 400, "bad"),
            Outcome::Done { rejected: 2, .. }
        ));
        assert_eq!(
            judge(Elastic, 1, 200, r#"{"errors":false,"items":[]}"#),
            done
        );
        let bulk = r#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}},
            {"create":{"status":503}}]}"#;
        match judge(Elastic, 5, 200, bulk) {
            Outcome::Retry {
                retry, rejected, ..
            } => {
                assert_eq!(retry, vec![2, 4]);
                assert_eq!(rejected, 1);
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            judge(Elastic, 2, 200, "not json"),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn pick_keeps_order() {
        let got: Vec<String> = pick((0..5).map(rec).collect(), &[1, 3, 4])
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, vec!["r-1", "r-3", "r-4"]);
    }

    fn cfg(url: &str, kind: HttpKind) -> SinkConfig {
        SinkConfig::Http {
            url: url.into(),
            kind,
            token: Some("t".into()),
            username: None,
            password: None,
            index: None,
            sourcetype: "vigil".into(),
            spool_dir: None,
            spool_max_mib: 1,
            batch_max_events: 10,
            batch_max_bytes: 1 << 20,
            batch_delay_ms: 100,
            timeout_ms: 1000,
            format: Format::Native,
        }
    }

    #[test]
    fn urls_get_the_kinds_usual_path() {
        let s = Settings::from_config(&cfg("https://splunk:8088", HttpKind::Hec), "h").unwrap();
        assert_eq!(s.url, "https://splunk:8088/services/collector/event");
        assert_eq!(s.auth.as_deref(), Some("Splunk t"));
        assert_eq!(
            s.spool_dir,
            PathBuf::from("/var/lib/vigil/spool/hec-splunk-8088")
        );
        let s = Settings::from_config(&cfg("http://es:9200/fim/_bulk", HttpKind::Elastic), "h")
            .unwrap();
        assert_eq!(s.url, "http://es:9200/fim/_bulk");
        let e = Settings::from_config(&cfg("http://es:9200", HttpKind::Elastic), "h").unwrap_err();
        assert!(e.to_string().contains("needs `index`"), "{e}");
        let e = Settings::from_config(&cfg("ftp://x/", HttpKind::Generic), "h").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sink http: url 'ftp://x/' is not a valid URL"),
            "{e}"
        );
    }
}
