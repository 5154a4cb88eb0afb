//! `vigil verify`: checks a native NDJSON feed against the host key.
//!
//! A feed is a sequence of runs ("segments"): each starts with a `sensor` /
//! `start` event with `seq` 1 that chains from [`GENESIS`], and should end
//! with a `stop` event. Within a run, each line's `chain` must be the keyed
//! BLAKE3 of the previous event's chain and the line's canonical bytes.
//!
//! Two ways to find an event's predecessor are tried: the previous line
//! (what a single edit leaves intact) and the event whose `seq` is one less
//! (what a reordering leaves intact). That tells the usual tampering apart:
//! - an edited line: it chains from neither; the next line still chains from it;
//! - a line whose `seq` was edited: the next line chains from it, under
//!   another number;
//! - removed lines: `seq` numbers missing at the end of the run;
//! - moved lines: an event arrives after a higher `seq` and chains from its
//!   own predecessor;
//! - a restart without a start event: `seq` goes back to a number already
//!   seen, with different content, or to 1 without a start;
//! - a cut end: no `stop` event (a warning: the sensor may still be running).
use super::{link, split_chain, GENESIS};
use crate::integrity::HostKey;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

/// How bad a finding is: breaks fail verification, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Break,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    /// 1-based line number in the feed.
    pub line: usize,
    pub seq: Option<u64>,
    /// A stable name: `edited`, `missing`, `out_of_order`, `duplicate`,
    /// `restart_without_start`, `not_an_event`, `unchained`, `wrong_key`,
    /// `no_stop`, `starts_mid_run`, `silence`, `incomplete_line`.
    pub what: &'static str,
    pub message: String,
}

/// What `vigil verify` found.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: usize,
    pub events: u64,
    /// Runs of the sensor found in the feed.
    pub segments: usize,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub findings: Vec<Finding>,
}

impl Summary {
    pub fn breaks(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level == Level::Break)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.len() - self.breaks()
    }

    pub fn ok(&self) -> bool {
        self.breaks() == 0
    }

    /// The findings (in line order) and a summary line, as `vigil verify`
    /// prints them; `name` is the feed's name.
    pub fn render(&self, name: &str, key: &HostKey) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let level = match f.level {
                Level::Break => "BREAK",
                Level::Warning => "warning",
            };
            let seq = f.seq.map(|s| format!(" seq {s}:")).unwrap_or_default();
            out.push_str(&format!(
                "{name}:{}: {level} [{}]:{seq} {}\n",
                f.line, f.what, f.message
            ));
        }
        let verdict = if self.ok() { "OK" } else { "FAILED" };
        out.push_str(&format!(
            "{name}: {verdict}: {} events in {} lines, {} runs ({} restarts), {} breaks, {} warnings; key id {}; first event {}, last event {}\n",
            self.events,
            self.lines,
            self.segments,
            self.segments.saturating_sub(1),
            self.breaks(),
            self.warnings(),
            key.id(),
            self.first_time.as_deref().unwrap_or("-"),
            self.last_time.as_deref().unwrap_or("-"),
        ));
        out
    }
}

/// Reads a feed line by line and checks it.
pub fn verify(mut input: impl BufRead, key: &HostKey) -> std::io::Result<Summary> {
    let mut v = Verifier::new(key);
    let mut buf = Vec::new();
    let mut no = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        no += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        }
        v.line(no, &buf, complete);
    }
    Ok(v.finish())
}

/// The fields verification reads; the rest of the line is only hashed.
#[derive(Deserialize)]
struct Head {
    schema: Option<String>,
    seq: Option<u64>,
    time: Option<String>,
    kind: Option<String>,
    action: Option<String>,
    key_id: Option<String>,
    heartbeat_s: Option<u64>,
}

/// One line that parsed as a chained event.
struct Line {
    no: usize,
    seq: u64,
    chain: [u8; 32],
    canonical: Vec<u8>,
    head: Head,
}

impl Line {
    fn is(&self, kind: &str, action: &str) -> bool {
        self.head.kind.as_deref() == Some(kind) && self.head.action.as_deref() == Some(action)
    }

    fn what(&self) -> String {
        format!(
            "{}/{}",
            self.head.kind.as_deref().unwrap_or("?"),
            self.head.action.as_deref().unwrap_or("?")
        )
    }
}

/// One run of the sensor.
struct Segment {
    start_line: usize,
    first_seq: u64,
    /// Every seq recorded in this run.
    seen: BTreeSet<u64>,
    /// seq → (stated chain, line).
    by_seq: HashMap<u64, ([u8; 32], usize)>,
    /// The next seq in order.
    expected: u64,
    /// Lines whose predecessor had not appeared yet: checked when it does.
    pending: HashMap<u64, (usize, Vec<u8>, [u8; 32])>,
    stopped: bool,
    heartbeat_s: Option<u64>,
    /// The last start/heartbeat/stop: (time, line).
    clock: Option<(chrono::DateTime<chrono::FixedOffset>, usize)>,
    wrong_key: bool,
    last_line: usize,
    last_seq: u64,
}

impl Segment {
    fn new(line: &Line) -> Segment {
        Segment {
            start_line: line.no,
            first_seq: line.seq,
            seen: BTreeSet::new(),
            by_seq: HashMap::new(),
            expected: line.seq,
            pending: HashMap::new(),
            stopped: false,
            heartbeat_s: line.head.heartbeat_s,
            clock: None,
            wrong_key: false,
            last_line: line.no,
            last_seq: line.seq,
        }
    }
}

/// The previous line of the feed (whatever its seq), for the adjacency check.
struct Prev {
    no: usize,
    seq: u64,
    chain: [u8; 32],
}

/// A line whose seq was seen before with other content: decided by the
/// next line (a restart without start, or a line whose seq was edited).
struct Suspect {
    line: Line,
}

struct Verifier<'k> {
    key: &'k HostKey,
    seg: Option<Segment>,
    prev: Option<Prev>,
    suspect: Option<Suspect>,
    summary: Summary,
}

const BY_SEQ_WINDOW: usize = 1 << 20;

impl<'k> Verifier<'k> {
    fn new(key: &'k HostKey) -> Verifier<'k> {
        Verifier {
            key,
            seg: None,
            prev: None,
            suspect: None,
            summary: Summary::default(),
        }
    }

    fn report(
        &mut self,
        level: Level,
        line: usize,
        seq: Option<u64>,
        what: &'static str,
        msg: String,
    ) {
        self.summary.findings.push(Finding {
            level,
            line,
            seq,
            what,
            message: msg,
        });
    }

    fn link_ok(&self, prev: &[u8; 32], line: &Line) -> bool {
        link(self.key.bytes(), prev, &line.canonical) == line.chain
    }

    fn line(&mut self, no: usize, bytes: &[u8], complete: bool) {
        self.summary.lines = no;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let head: Head = match serde_json::from_slice(bytes) {
            Ok(h) => h,
            Err(e) if !complete => {
                return self.report(
                    Level::Warning,
                    no,
                    None,
                    "incomplete_line",
                    format!("the last line is incomplete (no newline, {e}): the sensor may be writing it, or the feed was cut mid-line"),
                )
            }
            Err(e) => {
                return self.report(
                    Level::Break,
                    no,
                    None,
                    "not_an_event",
                    format!("not a JSON event ({e}): the line was damaged or inserted"),
                )
            }
        };
        if !head
            .schema
            .as_deref()
            .is_some_and(|s| s.starts_with("vigil/"))
        {
            return self.report(
                Level::Break,
                no,
                head.seq,
                "not_an_event",
                "not a native Vigil event (no \"schema\": \"vigil/...\"): vigil verify checks native feeds; OCSF and ECS outputs carry seq, key_id and chain for checks in the SIEM".into(),
            );
        }
        let Some(seq) = head.seq.filter(|s| *s >= 1) else {
            return self.report(
                Level::Break,
                no,
                head.seq,
                "not_an_event",
                "no seq (a positive integer): the line was damaged or inserted".into(),
            );
        };
        self.summary.events += 1;
        if let Some(t) = &head.time {
            if self.summary.first_time.as_ref().is_none_or(|f| t < f) {
                self.summary.first_time = Some(t.clone());
            }
            if self.summary.last_time.as_ref().is_none_or(|l| t > l) {
                self.summary.last_time = Some(t.clone());
            }
        }
        let Some((canonical, chain)) = split_chain(bytes) else {
            return self.report(
                Level::Break,
                no,
                Some(seq),
                "unchained",
                "no \"chain\" at the end of the line: written without a host key (`vigil scan`, an older sensor) or changed; it is skipped".into(),
            );
        };
        let line = Line {
            no,
            seq,
            chain,
            canonical,
            head,
        };
        self.event(line);
    }

    fn event(&mut self, line: Line) {
        if let Some(s) = self.suspect.take() {
            self.decide_suspect(s, &line);
        }
        let linked_prev = self
            .prev
            .as_ref()
            .is_some_and(|p| self.link_ok(&p.chain, &line));
        // The previous line is this one's predecessor under another seq: its
        // seq was edited.
        if linked_prev {
            if let Some(p) = &self.prev {
                if p.seq + 1 != line.seq && line.seq > 1 {
                    let (pno, pseq, pchain) = (p.no, p.seq, p.chain);
                    self.report(
                        Level::Break,
                        pno,
                        Some(pseq),
                        "edited",
                        format!("seq reads {pseq} but the chain places this event at seq {}: its seq (at least) was changed after it was written", line.seq - 1),
                    );
                    if let Some(seg) = &mut self.seg {
                        if seg.by_seq.get(&pseq).is_some_and(|(_, l)| *l == pno) {
                            seg.seen.remove(&pseq);
                            seg.by_seq.remove(&pseq);
                        }
                        seg.pending.remove(&pseq);
                        seg.seen.insert(line.seq - 1);
                        seg.by_seq.insert(line.seq - 1, (pchain, pno));
                        seg.expected = line.seq;
                    }
                }
            }
        }
        if line.seq == 1 {
            return self.start_segment(line);
        }
        if self.seg.is_none() {
            self.report(
                Level::Warning,
                line.no,
                Some(line.seq),
                "starts_mid_run",
                format!("the feed starts at seq {}, not with a start event (seq 1): its beginning is in an earlier file (rotation) or was cut; this event is taken as given. To check across files, concatenate them in order: `cat older newer | vigil verify -`", line.seq),
            );
            let mut seg = Segment::new(&line);
            self.check_key(&mut seg, &line);
            self.seg = Some(seg);
            return self.record(line);
        }
        let seg = self.seg.as_ref().expect("segment");
        let by_seq = seg.by_seq.get(&(line.seq - 1)).map(|(c, _)| *c);
        let linked_seq = by_seq.map(|c| self.link_ok(&c, &line));
        let linked = linked_prev || linked_seq == Some(true);
        let expected = seg.expected;
        let seen_same = seg
            .by_seq
            .get(&line.seq)
            .map(|(c, l)| (*c == line.chain, *l));
        let max = seg.seen.last().copied().unwrap_or(0);
        let max_line = seg.by_seq.get(&max).map_or(0, |(_, l)| *l);
        let mut seg = self.seg.take().expect("segment");
        self.check_key(&mut seg, &line);
        let wrong_key = seg.wrong_key;
        self.seg = Some(seg);
        if line.seq == expected {
            if !linked && !wrong_key {
                self.report(
                    Level::Break,
                    line.no,
                    Some(line.seq),
                    "edited",
                    "chain mismatch: this event was changed after it was written (or replaced by a forged line)".into(),
                );
            }
            return self.record(line);
        }
        if line.seq > expected {
            // Missing seqs are reported when the run ends: they may still arrive.
            if !linked && by_seq.is_none() {
                let seg = self.seg.as_mut().expect("segment");
                seg.pending
                    .insert(line.seq, (line.no, line.canonical.clone(), line.chain));
            } else if !linked && !wrong_key {
                self.report(
                    Level::Break,
                    line.no,
                    Some(line.seq),
                    "edited",
                    "chain mismatch: this event was changed after it was written".into(),
                );
            }
            return self.record(line);
        }
        // line.seq < expected
        match seen_same {
            Some((true, at)) => self.report(
                Level::Break,
                line.no,
                Some(line.seq),
                "duplicate",
                format!("repeats line {at}: the same event appears twice"),
            ),
            Some((false, _)) if !linked => {
                // Decided by the next line.
                self.prev = Some(Prev {
                    no: line.no,
                    seq: line.seq,
                    chain: line.chain,
                });
                self.suspect = Some(Suspect { line });
            }
            _ => {
                if linked || wrong_key {
                    self.report(
                        Level::Break,
                        line.no,
                        Some(line.seq),
                        "out_of_order",
                        format!("arrives after seq {max} (line {max_line}): the event was moved; it belongs before that line"),
                    );
                } else if by_seq.is_some() {
                    self.report(
                        Level::Break,
                        line.no,
                        Some(line.seq),
                        "edited",
                        format!("arrives after seq {max} (line {max_line}) and does not chain from seq {}: moved and changed, or forged", line.seq - 1),
                    );
                } else {
                    self.report(
                        Level::Break,
                        line.no,
                        Some(line.seq),
                        "out_of_order",
                        format!("arrives after seq {max} (line {max_line}); seq {} is missing, so its chain cannot be checked", line.seq - 1),
                    );
                }
                self.record(line);
            }
        }
    }

    /// A line whose seq was already seen, with other content: if the next
    /// line chains from it as its successor, it began a run whose start
    /// event is gone; otherwise it was edited or forged.
    fn decide_suspect(&mut self, s: Suspect, next: &Line) {
        let Suspect { line } = s;
        let follows = self.link_ok(&line.chain, next);
        if follows && next.seq == line.seq + 1 {
            self.report(
                Level::Break,
                line.no,
                Some(line.seq),
                "restart_without_start",
                format!(
                    "seq goes back to {} without a start event: the sensor restarted and the first {} events of this run, its start included, are missing (removed, or never written)",
                    line.seq,
                    line.seq - 1
                ),
            );
            self.end_segment(Some(line.no));
            let mut seg = Segment::new(&line);
            self.check_key(&mut seg, &line);
            self.seg = Some(seg);
            self.record(line);
        } else if follows {
            // The next line's adjacency check reports the edited seq.
        } else {
            self.report(
                Level::Break,
                line.no,
                Some(line.seq),
                "edited",
                format!(
                    "seq {} was already seen (line {}) with other content, and this line chains from nothing: changed or forged, or the first event left of a run whose start was removed",
                    line.seq,
                    self.seg
                        .as_ref()
                        .and_then(|s| s.by_seq.get(&line.seq))
                        .map_or(0, |(_, l)| *l)
                ),
            );
        }
    }

    fn start_segment(&mut self, line: Line) {
        if self.seg.is_some() {
            self.end_segment(Some(line.no));
        }
        let mut seg = Segment::new(&line);
        self.check_key(&mut seg, &line);
        let wrong_key = seg.wrong_key;
        self.seg = Some(seg);
        if !line.is("sensor", "start") {
            self.report(
                Level::Break,
                line.no,
                Some(1),
                "restart_without_start",
                format!("seq restarts at 1 but the event is {}, not a sensor start: a restart whose start event was removed or replaced, or lines from another source (`vigil scan` writes its own numbering)", line.what()),
            );
        }
        if !self.link_ok(&GENESIS, &line) && !wrong_key {
            self.report(
                Level::Break,
                line.no,
                Some(1),
                "edited",
                "chain mismatch: the first event of a run must chain from the genesis value (32 zero bytes); this one was changed after it was written".into(),
            );
        }
        self.record(line);
    }

    /// Checks the event's key id against the key, once per run.
    fn check_key(&mut self, seg: &mut Segment, line: &Line) {
        if seg.wrong_key {
            return;
        }
        let id = line.head.key_id.as_deref();
        if id != Some(self.key.id()) {
            seg.wrong_key = true;
            let msg = match id {
                Some(id) => format!(
                    "sealed with key id {id}, but the key {} has id {}: use the key of the host that wrote the feed; chains of this run are not checked",
                    self.key.path().display(),
                    self.key.id()
                ),
                None => "no key_id: this run was not sealed; its chains are not checked".into(),
            };
            self.report(Level::Break, line.no, Some(line.seq), "wrong_key", msg);
        }
    }

    fn record(&mut self, line: Line) {
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        seg.seen.insert(line.seq);
        seg.by_seq.insert(line.seq, (line.chain, line.no));
        if seg.by_seq.len() > 2 * BY_SEQ_WINDOW {
            let floor = line.seq.saturating_sub(BY_SEQ_WINDOW as u64);
            seg.by_seq.retain(|s, _| *s >= floor);
        }
        if line.seq >= seg.expected {
            seg.expected = line.seq + 1;
            seg.last_line = line.no;
            seg.last_seq = line.seq;
        }
        if line.is("sensor", "stop") {
            seg.stopped = true;
        }
        if line.seq == seg.first_seq && line.head.heartbeat_s.is_some() {
            seg.heartbeat_s = line.head.heartbeat_s;
        }
        // Silence: sensor events are stamped when made, so start, heartbeat
        // and stop are at most heartbeat_s apart in a healthy run.
        let clock_event = line.head.kind.as_deref() == Some("sensor")
            && matches!(
                line.head.action.as_deref(),
                Some("start" | "heartbeat" | "stop")
            );
        let mut silence = None;
        if clock_event {
            if let Some(t) = line
                .head
                .time
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            {
                if let (Some((before, at)), Some(hb)) = (seg.clock, seg.heartbeat_s) {
                    let quiet = (t - before).num_seconds();
                    if quiet > (2 * hb + 5) as i64 {
                        silence = Some((at, quiet, hb));
                    }
                }
                seg.clock = Some((t, line.no));
            }
        }
        let resolve = seg.pending.remove(&(line.seq + 1));
        let chain = line.chain;
        let (no, seq) = (line.no, line.seq);
        if let Some((at, quiet, hb)) = silence {
            self.report(
                Level::Warning,
                no,
                Some(seq),
                "silence",
                format!("{quiet} s since the previous start/heartbeat (line {at}) with heartbeat_s = {hb}: the sensor was paused (SIGSTOP), starved or suspended, or its heartbeats were held back"),
            );
        }
        if let Some((pno, canonical, pchain)) = resolve {
            if link(self.key.bytes(), &chain, &canonical) != pchain
                && !self.seg.as_ref().is_some_and(|s| s.wrong_key)
            {
                self.report(
                    Level::Break,
                    pno,
                    Some(seq + 1),
                    "edited",
                    "chain mismatch: this event was changed after it was written".into(),
                );
            }
        }
        self.prev = Some(Prev { no, seq, chain });
    }

    /// Reports what a finished run lacks: missing seqs and its stop event.
    /// `next` is the line that starts the next run (None: end of feed).
    fn end_segment(&mut self, next: Option<usize>) {
        let Some(seg) = self.seg.take() else {
            return;
        };
        let mut missing: Vec<(u64, u64)> = Vec::new();
        let mut want = seg.first_seq;
        for &s in &seg.seen {
            if s > want {
                missing.push((want, s - 1));
            }
            want = want.max(s + 1);
        }
        for (a, b) in missing {
            let line_of = |s: u64| seg.by_seq.get(&s).map(|(_, l)| *l);
            let after = line_of(b + 1).unwrap_or(seg.last_line);
            let before = line_of(a - 1)
                .map(|l| format!("line {l} (seq {})", a - 1))
                .unwrap_or_else(|| "the previous line".into());
            let n = b - a + 1;
            let range = if a == b {
                format!("seq {a} is")
            } else {
                format!("seq {a}-{b} ({n} events) are")
            };
            self.report(
                Level::Break,
                after,
                Some(b + 1),
                "missing",
                format!("{range} missing between {before} and this line: removed from the feed; the chain of the event after the gap cannot be checked"),
            );
        }
        if !seg.stopped {
            let msg = match next {
                Some(n) => format!(
                    "the run that starts at line {} ends at line {} (seq {}) without a stop event: the sensor was killed (kill -9, crash, power loss) or the end of the run was removed; the next run starts at line {n}",
                    seg.start_line, seg.last_line, seg.last_seq
                ),
                None => format!(
                    "feed ends without a stop event (truncated or sensor still running): last event at line {} (seq {})",
                    seg.last_line, seg.last_seq
                ),
            };
            self.report(
                Level::Warning,
                seg.last_line,
                Some(seg.last_seq),
                "no_stop",
                msg,
            );
        }
        self.summary.segments += 1;
    }

    fn finish(mut self) -> Summary {
        if let Some(s) = self.suspect.take() {
            let l = &s.line;
            let msg = format!(
                "seq {} was already seen with other content, and nothing follows: changed or forged, or a restart whose start was removed",
                l.seq
            );
            self.report(Level::Break, l.no, Some(l.seq), "edited", msg);
        }
        self.end_segment(None);
        self.summary.findings.sort_by_key(|f| f.line);
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::Chain;
    use std::path::Path;

    fn key() -> HostKey {
        HostKey::from_bytes([42; 32], Path::new("/test/host.key"))
    }

    /// One run: start, `files` file events, then stop (if `stop`).
    fn run(key: &HostKey, files: usize, stop: bool) -> Vec<String> {
        // Each run at another hour, as real runs are.
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let hour = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 24;
        let mut c = Chain::new(key.clone());
        let mut lines = Vec::new();
        let mut seq = 0;
        let mut push = |kind: &str, action: &str, extra: &str| {
            seq += 1;
            let canonical = format!(
                r#"{{"schema":"vigil/0.2","seq":{seq},"time":"2026-11-26T{hour:02}:00:{:02}.000000000Z","host":"h","kind":"{kind}","action":"{action}","severity":"info"{extra},"key_id":"{}"}}"#,
                seq % 60,
                key.id()
            );
            let (line, _) = c.seal(canonical.as_bytes());
            lines.push(String::from_utf8(line).unwrap());
        };
        push("sensor", "start", r#","version":"0.1.0","heartbeat_s":60"#);
        for i in 0..files {
            push("file", "modified", &format!(r#","path":"/etc/f{i}""#));
        }
        if stop {
            push("sensor", "stop", r#","version":"0.1.0","reason":"SIGTERM""#);
        }
        lines
    }

    fn check(lines: &[String]) -> Summary {
        let text = lines.join("\n") + "\n";
        verify(text.as_bytes(), &key()).unwrap()
    }

    fn whats(s: &Summary) -> Vec<(usize, &'static str)> {
        s.findings.iter().map(|f| (f.line, f.what)).collect()
    }

    #[test]
    fn an_intact_feed_verifies() {
        let mut lines = run(&key(), 5, true);
        lines.extend(run(&key(), 3, true));
        let s = check(&lines);
        assert!(s.ok(), "{:#?}", s.findings);
        assert!(s.findings.is_empty(), "{:#?}", s.findings);
        assert_eq!(s.events, 12);
        assert_eq!(s.segments, 2);
        assert!(s.render("f", &key()).contains("f: OK: 12 events"));
    }

    #[test]
    fn an_edited_event_is_named_by_line() {
        let mut lines = run(&key(), 5, true);
        lines[3] = lines[3].replace("/etc/f2", "/etc/f9");
        let s = check(&lines);
        assert_eq!(whats(&s), [(4, "edited")], "{:#?}", s.findings);
        assert_eq!(s.findings[0].seq, Some(4));
        let text = s.render("feed", &key());
        assert!(
            text.contains("feed:4: BREAK [edited]: seq 4: chain mismatch"),
            "{text}"
        );
        assert!(text.contains("FAILED"), "{text}");
    }

    #[test]
    fn an_edited_seq_is_placed_by_the_chain() {
        let mut lines = run(&key(), 5, true);
        lines[2] = lines[2].replace(r#""seq":3,"#, r#""seq":30,"#);
        let s = check(&lines);
        assert_eq!(whats(&s), [(3, "edited")], "{:#?}", s.findings);
        assert!(
            s.findings[0].message.contains("at seq 3"),
            "{:#?}",
            s.findings
        );
        // To a seq already seen.
        let mut lines = run(&key(), 5, true);
        lines[3] = lines[3].replace(r#""seq":4,"#, r#""seq":2,"#);
        let s = check(&lines);
        assert_eq!(whats(&s), [(4, "edited")], "{:#?}", s.findings);
    }

    #[test]
    fn removed_events_are_a_gap() {
        let mut lines = run(&key(), 6, true);
        lines.drain(2..4);
        let s = check(&lines);
        assert_eq!(whats(&s), [(3, "missing")], "{:#?}", s.findings);
        assert!(
            s.findings[0].message.contains("seq 3-4 (2 events)"),
            "{:#?}",
            s.findings
        );
    }

    #[test]
    fn moved_events_are_out_of_order() {
        let mut lines = run(&key(), 6, true);
        lines.swap(3, 4);
        let s = check(&lines);
        assert_eq!(whats(&s), [(5, "out_of_order")], "{:#?}", s.findings);
        let mut lines = run(&key(), 6, true);
        let l = lines.remove(2);
        lines.insert(6, l);
        let s = check(&lines);
        assert_eq!(whats(&s), [(7, "out_of_order")], "{:#?}", s.findings);
    }

    #[test]
    fn a_duplicated_line_is_reported() {
        let mut lines = run(&key(), 3, true);
        let l = lines[2].clone();
        lines.insert(3, l);
        let s = check(&lines);
        assert_eq!(whats(&s), [(4, "duplicate")], "{:#?}", s.findings);
    }

    #[test]
    fn a_cut_end_is_a_warning_not_a_break() {
        let lines = run(&key(), 3, false);
        let s = check(&lines);
        assert!(s.ok());
        assert_eq!(whats(&s), [(4, "no_stop")]);
        assert!(s.findings[0]
            .message
            .contains("feed ends without a stop event (truncated or sensor still running)"));
        // A line cut in the middle of writing.
        let mut text = run(&key(), 3, true).join("\n");
        text.truncate(text.len() - 20);
        let s = verify(text.as_bytes(), &key()).unwrap();
        assert_eq!(whats(&s), [(4, "no_stop"), (5, "incomplete_line")]);
    }

    #[test]
    fn a_killed_run_then_a_restart_is_a_warning() {
        let mut lines = run(&key(), 3, false);
        lines.extend(run(&key(), 2, true));
        let s = check(&lines);
        assert!(s.ok(), "{:#?}", s.findings);
        assert_eq!(whats(&s), [(4, "no_stop")]);
        assert_eq!(s.segments, 2);
    }

    #[test]
    fn a_restart_without_start_is_a_break() {
        // The start of the second run was removed.
        let mut lines = run(&key(), 3, true);
        let mut second = run(&key(), 5, true);
        second.remove(0);
        lines.extend(second);
        let s = check(&lines);
        assert_eq!(
            whats(&s),
            [(6, "restart_without_start")],
            "{:#?}",
            s.findings
        );
        // seq 1 that is not a start (another source's numbering).
        let mut lines = run(&key(), 3, true);
        let mut c = Chain::new(key());
        let canonical = format!(
            r#"{{"schema":"vigil/0.2","seq":1,"time":"2026-11-26T10:00:00.000000000Z","host":"h","kind":"file","action":"modified","severity":"info","key_id":"{}"}}"#,
            key().id()
        );
        lines.push(String::from_utf8(c.seal(canonical.as_bytes()).0).unwrap());
        let s = check(&lines);
        assert!(
            whats(&s).contains(&(6, "restart_without_start")),
            "{:#?}",
            s.findings
        );
    }

    #[test]
    fn another_key_and_unchained_lines_are_breaks() {
        let other = HostKey::from_bytes([1; 32], Path::new("other"));
        let lines = run(&other, 2, true);
        let s = check(&lines);
        assert_eq!(whats(&s), [(1, "wrong_key")], "{:#?}", s.findings);
        assert!(s.findings[0].message.contains(other.id()));
        let mut lines = run(&key(), 2, true);
        lines.push(r#"{"schema":"vigil/0.2","seq":1,"kind":"file","action":"modified"}"#.into());
        lines.push("garbage".into());
        let s = check(&lines);
        assert_eq!(whats(&s), [(5, "unchained"), (6, "not_an_event")]);
    }

    #[test]
    fn damaged_lines_never_panic() {
        let lines = run(&key(), 3, true);
        let text = lines.join("\n") + "\n";
        // Every single-byte change and every cut: reported, never a panic.
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x01;
            let s = verify(&b[..], &key()).unwrap();
            assert!(!s.findings.is_empty() || b[i] == b'\n', "byte {i}");
            let _ = verify(&text.as_bytes()[..i], &key()).unwrap();
        }
        let zero = lines[1].replace(r#""seq":2,"#, r#""seq":0,"#);
        let s = check(&[lines[0].clone(), zero]);
        assert!(
            whats(&s).contains(&(2, "not_an_event")),
            "{:#?}",
            s.findings
        );
    }

    #[test]
    fn a_long_silence_between_heartbeats_is_a_warning() {
        let mut lines = Vec::new();
        let mut c = Chain::new(key());
        for (seq, action, time) in [
            (1, "start", "10:00:00"),
            (2, "heartbeat", "10:01:00"),
            (3, "heartbeat", "10:09:00"),
            (4, "stop", "10:09:30"),
        ] {
            let canonical = format!(
                r#"{{"schema":"vigil/0.2","seq":{seq},"time":"2026-11-26T{time}.000000000Z","host":"h","kind":"sensor","action":"{action}","severity":"info","heartbeat_s":60,"key_id":"{}"}}"#,
                key().id()
            );
            lines.push(String::from_utf8(c.seal(canonical.as_bytes()).0).unwrap());
        }
        let s = check(&lines);
        assert!(s.ok());
        assert_eq!(whats(&s), [(3, "silence")], "{:#?}", s.findings);
    }
}
