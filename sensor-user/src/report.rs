//! `vigil report`: the periodic (PCI DSS 11.5.2 weekly) comparison report,
//! built from the store alone.
//!
//! [`build`] reads the journal, scans, baseline and accepts of one period
//! (read-only) into a [`Report`]; [`render_text`], JSON (serde, schema
//! [`SCHEMA`], documented in docs/report.md) and [`html::render`] present it.
//! Unattributed changes (scan findings the realtime sensor never reported)
//! come first everywhere: they mean the sensor was blind or was bypassed.
pub mod html;

use crate::store::ScanRow;
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, DurationRound, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The version of the JSON form; bumped when a field changes meaning or goes.
pub const SCHEMA: &str = "vigil-report/1";

/// How many rows of each "top" list and paths not verified are listed.
pub const DEFAULT_TOP: usize = 10;

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text.
    Text,
    /// The [`Report`] as JSON (schema `vigil-report/1`, docs/report.md).
    Json,
    /// One self-contained HTML file with charts.
    Html,
}

/// `vigil report`'s options (the store is named by `--db`/`--config`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Start of the period: a span back from now (7d, 24h), RFC 3339 or a date.
    #[arg(long, default_value = "7d", value_name = "TIME")]
    pub since: String,
    /// End of the period (same forms); now when absent.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Rows in the top paths and top processes lists.
    #[arg(long, default_value_t = DEFAULT_TOP, value_name = "N")]
    pub top: usize,
}

/// `vigil report` on the store at `db`; `host` names the host when the
/// journal does not.
pub fn run(db: &std::path::Path, host: &str, args: &Args) -> Result<()> {
    let now = Utc::now();
    let opts = Options {
        since: crate::query::parse_time(&args.since, now, "--since")?,
        until: match &args.until {
            Some(u) => crate::query::parse_time(u, now, "--until")?,
            None => crate::query::stamp(now),
        },
        top: args.top.max(1),
        host: host.to_string(),
        store: db.display().to_string(),
    };
    let conn = crate::query::open_read_only(db)?;
    let report = build(&conn, &opts)?;
    let text = match args.format {
        Format::Text => render_text(&report),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Html => html::render(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("{}: cannot write the report", path.display()))?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let written = out.write_all(text.as_bytes()).and_then(|_| out.flush());
            crate::query::quiet_broken_pipe(written.map_err(Into::into))?;
        }
    }
    Ok(())
}

/// What a report covers.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start of the period (inclusive), RFC 3339 UTC as the store writes it.
    pub since: String,
    /// End of the period (exclusive).
    pub until: String,
    /// Rows in each top list.
    pub top: usize,
    /// The host the store belongs to, when the journal does not say.
    pub host: String,
    /// The store's path, for the record.
    pub store: String,
}

/// The report (its JSON form is `vigil report --format json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// When the report was built.
    pub generated: String,
    /// The host whose events these are.
    pub host: String,
    /// The store read.
    pub store: String,
    pub period: Period,
    pub totals: Totals,
    /// Scan findings no realtime event explains, oldest first. Listed first:
    /// the sensor was blind or something bypassed it.
    pub unattributed: Vec<Change>,
    /// Every event a rule marked as an alert: unattributed ones first, then
    /// oldest first.
    pub alerts: Vec<Change>,
    /// File changes per action, most frequent first.
    pub by_action: Vec<Count>,
    /// The `top` paths with the most changes.
    pub by_path: Vec<Count>,
    /// The `top` processes (exe, else comm) with the most changes; scan
    /// findings count as `(scan: no process)`.
    pub by_process: Vec<Count>,
    /// File changes over time.
    pub timeline: Timeline,
    /// Scans (baselines and comparisons) that started or finished in the period.
    pub scans: Vec<ScanRow>,
    pub coverage: Coverage,
    pub sensor: SensorHealth,
    /// Changes accepted (blessed) in the period.
    pub accepts: Vec<AcceptRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// Inclusive.
    pub since: String,
    /// Exclusive.
    pub until: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Journal events in the period (file and sensor).
    pub events: u64,
    /// `kind: file` events.
    pub file_changes: u64,
    /// File changes seen by the realtime sensor (not a scan).
    pub realtime_changes: u64,
    /// File changes found by scans.
    pub scan_findings: u64,
    /// Scan findings flagged `unattributed`.
    pub unattributed: u64,
    /// Events marked as alerts.
    pub alerts: u64,
    /// `kind: sensor` events.
    pub sensor_events: u64,
    /// Sensor gap events (loss) and the records they say were lost.
    pub gaps: u64,
    pub lost: u64,
}

/// A key and how many events have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

/// One journal event as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Journal sequence number (the CHANGE-ID of `vigil baseline accept`).
    pub seq: i64,
    pub time: String,
    /// `file` or `sensor`.
    pub kind: String,
    pub action: String,
    pub severity: String,
    pub alert: bool,
    /// Empty for sensor events.
    pub path: String,
    pub target_path: Option<String>,
    /// `source.tier`: `scan` for scan findings, else the realtime hook tier.
    pub tier: Option<String>,
    pub unattributed: bool,
    /// Executable (else comm) of the process that made it; none for scan findings.
    pub process: Option<String>,
    pub pid: Option<u64>,
    /// User, and login user when it differs (`root (login alice)`).
    pub user: Option<String>,
    pub rules: Vec<String>,
    pub fields_changed: Vec<String>,
    pub scan_id: Option<i64>,
    /// Sensor events: what the sensor said.
    pub message: Option<String>,
    /// The accept that blessed this change (or a later state of its path).
    pub accepted: Option<AcceptRow>,
}

/// Changes over time, in equal buckets covering the period.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// `hour` (periods up to 2 days), `day` (up to 92 days) or `week`.
    pub bucket: &'static str,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Start of the bucket, RFC 3339 UTC.
    pub start: String,
    /// File changes in it.
    pub changes: u64,
    /// Of which unattributed.
    pub unattributed: u64,
    /// Alerts (any kind).
    pub alerts: u64,
}

/// What the baseline covers and how much of it a scan verified in the period.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Rows in the baseline now.
    pub baseline_files: u64,
    /// Rows a scan (or a baseline update) found exactly as recorded during
    /// the period. A row only just recorded by `init` is not yet verified.
    pub verified_in_period: u64,
    /// The rest: not compared in the period, or changed (with a finding).
    pub not_verified: u64,
    /// Up to `top` of them, by path.
    pub not_verified_sample: Vec<String>,
    /// Paths with scan findings (changes found) in the period.
    pub changed_in_period: u64,
    /// When the last successful baseline (init or update) finished.
    pub last_baseline: Option<String>,
    /// Comparison scans (not baselines) that finished `ok` in the period.
    pub comparison_scans_ok: u64,
}

/// Whether the realtime sensor ran and lost nothing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SensorHealth {
    /// Events of `vigil run` (not scans) in the period.
    pub realtime_events: u64,
    /// `gap` (loss), `health` (an output degraded) and `error` events.
    pub gaps: Vec<Change>,
    /// `start` and `stop` events.
    pub lifecycle: Vec<Change>,
    /// When the sensor was not running.
    pub downtime: Vec<Downtime>,
}

/// A window in which the sensor did not run.
#[derive(Debug, Clone, Serialize)]
pub struct Downtime {
    /// The stop event, or the sensor's last event before an unclean stop;
    /// None when unknown.
    pub from: Option<String>,
    /// The next start; None: still stopped at the end of the period.
    pub to: Option<String>,
    /// A `stop` event was recorded (false: crashed or killed).
    pub clean: bool,
}

/// A row of `accepts`.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptRow {
    pub id: i64,
    pub time: String,
    pub who: String,
    pub path: String,
    pub journal_seq: Option<i64>,
    pub reason: String,
}

/// The journal columns (and event fields) the report reads.
const EVENT_COLUMNS: &str =
    "seq, time, kind, action, severity, alert, tier, path, target_path, scan_id,
    json_extract(vigil_event(seq, event), '$.details.unattributed'), json_extract(vigil_event(seq, event), '$.process.exe'),
    json_extract(vigil_event(seq, event), '$.process.comm'), json_extract(vigil_event(seq, event), '$.process.pid'),
    json_extract(vigil_event(seq, event), '$.process.user'), json_extract(vigil_event(seq, event), '$.process.login_user'),
    json_extract(vigil_event(seq, event), '$.rules'), json_extract(vigil_event(seq, event), '$.fields_changed'),
    json_extract(vigil_event(seq, event), '$.message'), json_extract(vigil_event(seq, event), '$.lost'), json_extract(vigil_event(seq, event), '$.host')";

fn change_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Change, Option<u64>, Option<String>)> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        Ok(r.get::<_, Option<String>>(i)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default())
    };
    let tier: Option<String> = r.get(6)?;
    let exe: Option<String> = r.get(11)?;
    let comm: Option<String> = r.get(12)?;
    let user: Option<String> = r.get(14)?;
    let login: Option<String> = r.get(15)?;
    let scan = tier.as_deref() == Some("scan");
    let process = if scan {
        None
    } else {
        exe.or(comm).filter(|s| !s.is_empty())
    };
    let user = match (user, login) {
        (Some(u), Some(l)) if u != l => Some(format!("{u} (login {l})")),
        (u, l) => u.or(l),
    };
    let change = Change {
        seq: r.get(0)?,
        time: r.get(1)?,
        kind: r.get(2)?,
        action: r.get(3)?,
        severity: r.get(4)?,
        alert: r.get(5)?,
        path: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        target_path: r.get(8)?,
        tier,
        scan_id: r.get(9)?,
        unattributed: r.get::<_, Option<bool>>(10)?.unwrap_or(false),
        process,
        pid: if scan { None } else { r.get(13)? },
        user: if scan { None } else { user },
        rules: list(16)?,
        fields_changed: list(17)?,
        message: r.get(18)?,
        accepted: None,
    };
    Ok((change, r.get(19)?, r.get(20)?))
}

/// The bucket size for a period.
fn bucket_size(since: DateTime<Utc>, until: DateTime<Utc>) -> (&'static str, Duration) {
    let span = until - since;
    if span <= Duration::days(2) {
        ("hour", Duration::hours(1))
    } else if span <= Duration::days(92) {
        ("day", Duration::days(1))
    } else {
        ("week", Duration::weeks(1))
    }
}

fn parse(t: &str, what: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(t)
        .with_context(|| format!("{what} {t:?}: not an RFC 3339 time"))?
        .with_timezone(&Utc))
}

/// Top `n` of a tally, most frequent first, then by key.
fn top(tally: HashMap<String, u64>, n: usize) -> Vec<Count> {
    let mut v: Vec<Count> = tally
        .into_iter()
        .map(|(key, count)| Count { key, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v.truncate(n);
    v
}

/// Builds the report of `opts`' period from a (read-only) store connection.
pub fn build(conn: &Connection, opts: &Options) -> Result<Report> {
    let since_t = parse(&opts.since, "--since")?;
    let until_t = parse(&opts.until, "--until")?;
    if since_t >= until_t {
        anyhow::bail!(
            "--since {} is not before --until {}: give an earlier --since",
            opts.since,
            opts.until
        );
    }
    // All of them: an accept after the period may bless a change in it.
    let accepts = all_accepts(conn)?;

    let (bucket, step) = bucket_size(since_t, until_t);
    let first = since_t.duration_trunc(step).unwrap_or(since_t);
    let n_buckets =
        ((until_t - first).num_seconds() as f64 / step.num_seconds() as f64).ceil() as usize;
    let mut buckets: Vec<Bucket> = (0..n_buckets.max(1))
        .map(|i| Bucket {
            start: crate::query::stamp(first + step * i as i32),
            changes: 0,
            unattributed: 0,
            alerts: 0,
        })
        .collect();

    let mut totals = Totals::default();
    let mut by_action = HashMap::new();
    let mut by_path = HashMap::new();
    let mut by_process = HashMap::new();
    let mut hosts: BTreeMap<String, u64> = BTreeMap::new();
    let mut unattributed = Vec::new();
    let mut alerts = Vec::new();
    let mut sensor = SensorHealth::default();

    let mut st = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM journal WHERE time >= ?1 AND time < ?2 ORDER BY seq"
    ))?;
    let mut rows = st.query(params![opts.since, opts.until])?;
    while let Some(r) = rows.next()? {
        let (mut c, lost, host) = change_row(r)?;
        totals.events += 1;
        if let Some(h) = host {
            *hosts.entry(h).or_default() += 1;
        }
        let scan = c.tier.as_deref() == Some("scan");
        if !scan {
            sensor.realtime_events += 1;
        }
        let bucket = parse(&c.time, "journal time")
            .ok()
            .map(|t| ((t - first).num_seconds() / step.num_seconds()) as usize)
            .and_then(|i| buckets.get_mut(i));
        if c.alert {
            totals.alerts += 1;
        }
        if c.kind == "file" {
            totals.file_changes += 1;
            if scan {
                totals.scan_findings += 1;
            } else {
                totals.realtime_changes += 1;
            }
            *by_action.entry(c.action.clone()).or_default() += 1;
            *by_path.entry(c.path.clone()).or_default() += 1;
            let proc = c.process.clone().unwrap_or_else(|| {
                if scan {
                    "(scan: no process)"
                } else {
                    "(unknown)"
                }
                .into()
            });
            *by_process.entry(proc).or_default() += 1;
            if let Some(b) = bucket {
                b.changes += 1;
                b.unattributed += u64::from(c.unattributed);
                b.alerts += u64::from(c.alert);
            }
            c.accepted = accepted(&accepts, &c);
            if c.unattributed {
                totals.unattributed += 1;
                unattributed.push(c.clone());
            }
        } else {
            totals.sensor_events += 1;
            if let Some(b) = bucket {
                b.alerts += u64::from(c.alert);
            }
            match c.action.as_str() {
                "gap" | "health" | "error" => {
                    if c.action == "gap" {
                        totals.gaps += 1;
                        totals.lost += lost.unwrap_or(0);
                    }
                    sensor.gaps.push(c.clone());
                }
                "start" | "stop" => sensor.lifecycle.push(c.clone()),
                _ => {}
            }
        }
        if c.alert {
            alerts.push(c);
        }
    }
    // Unattributed first; each group in journal order (stable sort).
    alerts.sort_by_key(|c| !c.unattributed);
    sensor.downtime = downtime(conn, opts, &sensor.lifecycle)?;

    let host = match hosts.len() {
        1 => hosts.into_keys().next().unwrap_or_default(),
        _ => opts.host.clone(),
    };
    let accepts = accepts
        .into_iter()
        .filter(|a| a.time >= opts.since && a.time < opts.until)
        .collect();
    Ok(Report {
        schema: SCHEMA,
        generated: crate::store::now(),
        host,
        store: opts.store.clone(),
        period: Period {
            since: opts.since.clone(),
            until: opts.until.clone(),
        },
        totals,
        unattributed,
        alerts,
        by_action: top(by_action, usize::MAX),
        by_path: top(by_path, opts.top),
        by_process: top(by_process, opts.top),
        timeline: Timeline { bucket, buckets },
        scans: scans_in(conn, opts)?,
        coverage: coverage(conn, opts)?,
        sensor,
        accepts,
    })
}

/// The accept that covers a change: by its CHANGE-ID, or an accept of its
/// path recorded after it.
fn accepted(accepts: &[AcceptRow], c: &Change) -> Option<AcceptRow> {
    accepts
        .iter()
        .find(|a| a.journal_seq == Some(c.seq))
        .or_else(|| {
            accepts.iter().find(|a| {
                a.journal_seq.is_none()
                    && a.time >= c.time
                    && (a.path == c.path || Some(&a.path) == c.target_path.as_ref())
            })
        })
        .cloned()
}

fn all_accepts(conn: &Connection) -> Result<Vec<AcceptRow>> {
    let mut st =
        conn.prepare("SELECT id, time, who, path, journal_seq, reason FROM accepts ORDER BY id")?;
    let v = st
        .query_map([], |r| {
            Ok(AcceptRow {
                id: r.get(0)?,
                time: r.get(1)?,
                who: r.get(2)?,
                path: r.get(3)?,
                journal_seq: r.get(4)?,
                reason: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

fn scans_in(conn: &Connection, opts: &Options) -> Result<Vec<ScanRow>> {
    let mut st = conn.prepare(
        "SELECT id, kind, started, finished, paths, metadata_only, files_seen, changes, errors, status, message
           FROM scans
          WHERE (started >= ?1 AND started < ?2) OR (finished >= ?1 AND finished < ?2)
          ORDER BY id",
    )?;
    let v = st
        .query_map(params![opts.since, opts.until], |r| {
            Ok(ScanRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                started: r.get(2)?,
                finished: r.get(3)?,
                paths: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                metadata_only: r.get(5)?,
                files_seen: r.get::<_, i64>(6)? as u64,
                changes: r.get::<_, i64>(7)? as u64,
                errors: r.get::<_, i64>(8)? as u64,
                status: r.get(9)?,
                message: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

fn coverage(conn: &Connection, opts: &Options) -> Result<Coverage> {
    let baseline_files =
        conn.query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))? as u64;
    // Recorded by a baseline is not verified: a later scan (or baseline
    // update) must have found the row as recorded, in the period.
    let verified_in_period = conn.query_row(
        "SELECT count(*) FROM files WHERE verified_at >= ?1 AND verified_at > updated_at",
        [&opts.since],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let changed_in_period = conn.query_row(
        "SELECT count(DISTINCT path) FROM journal WHERE kind = 'file' AND tier = 'scan'
            AND time >= ?1 AND time < ?2",
        params![opts.since, opts.until],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let mut st = conn.prepare(
        "SELECT path FROM files WHERE NOT (verified_at >= ?1 AND verified_at > updated_at)
          ORDER BY path LIMIT ?2",
    )?;
    let not_verified_sample = st
        .query_map(params![opts.since, opts.top as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let last_baseline = conn
        .query_row(
            "SELECT max(finished) FROM scans WHERE kind IN ('init', 'update') AND status = 'ok' AND finished < ?1",
            [&opts.until],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let comparison_scans_ok = conn.query_row(
        "SELECT count(*) FROM scans WHERE kind NOT IN ('init', 'update') AND status = 'ok'
            AND finished >= ?1 AND finished < ?2",
        params![opts.since, opts.until],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(Coverage {
        baseline_files,
        verified_in_period,
        not_verified: baseline_files - verified_in_period.min(baseline_files),
        not_verified_sample,
        changed_in_period,
        last_baseline,
        comparison_scans_ok,
    })
}

/// The windows without a running sensor, from `start`/`stop` events: a
/// stop followed by a start is a clean stop; a start with no stop since the
/// previous start means the sensor died, and its last journaled event before
/// that start is when it was last seen alive.
fn downtime(conn: &Connection, opts: &Options, lifecycle: &[Change]) -> Result<Vec<Downtime>> {
    // The lifecycle event before the period decides how it opens.
    let before: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT seq, time, action FROM journal WHERE kind = 'sensor' AND action IN ('start', 'stop')
               AND time < ?1 ORDER BY seq DESC LIMIT 1",
            [&opts.since],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let mut prev: Option<(i64, String, String)> = before;
    let mut out = Vec::new();
    for c in lifecycle {
        if c.action == "start" {
            match &prev {
                Some((_, t, a)) if a == "stop" => out.push(Downtime {
                    from: Some(t.clone()),
                    to: Some(c.time.clone()),
                    clean: true,
                }),
                Some(_) => {
                    // Rowid order: the sensor's last event before this start.
                    let last_seen: Option<String> = conn
                        .query_row(
                            "SELECT time FROM journal WHERE seq < ?1 AND tier IS NOT 'scan'
                              ORDER BY seq DESC LIMIT 1",
                            [c.seq],
                            |r| r.get(0),
                        )
                        .optional()?;
                    out.push(Downtime {
                        from: last_seen,
                        to: Some(c.time.clone()),
                        clean: false,
                    });
                }
                None => {}
            }
        }
        prev = Some((c.seq, c.time.clone(), c.action.clone()));
    }
    if let Some((_, t, a)) = prev {
        if a == "stop" {
            out.push(Downtime {
                from: Some(t),
                to: None,
                clean: true,
            });
        }
    }
    Ok(out)
}

/// The report as plain text (a terminal, an e-mail, a ticket).
pub fn render_text(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let t = &r.totals;
    let _ = writeln!(s, "Vigil file-integrity report (PCI DSS 11.5.2)");
    let _ = writeln!(s, "host:      {}", r.host);
    let _ = writeln!(s, "period:    {} to {}", r.period.since, r.period.until);
    let _ = writeln!(s, "generated: {} from {}", r.generated, r.store);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{} file changes ({} realtime, {} found by scans, {} UNATTRIBUTED), {} alerts, {} sensor events ({} gaps, {} records lost)",
        t.file_changes, t.realtime_changes, t.scan_findings, t.unattributed, t.alerts, t.sensor_events, t.gaps, t.lost
    );
    let change_line = |s: &mut String, c: &Change| {
        let who = match (&c.process, &c.user) {
            (Some(p), Some(u)) => format!("{p} [{}] as {u}", c.pid.unwrap_or(0)),
            (Some(p), None) => p.clone(),
            _ if c.tier.as_deref() == Some("scan") => format!("scan {}", c.scan_id.unwrap_or(0)),
            _ => String::new(),
        };
        let what = if c.kind == "sensor" {
            format!("sensor {}", c.message.as_deref().unwrap_or(""))
        } else {
            match &c.target_path {
                Some(t) => format!("{} -> {t}", c.path),
                None => c.path.clone(),
            }
        };
        let _ = writeln!(
            s,
            "  #{:<6} {}  {:<19} {:<8} {}  ({who})",
            c.seq,
            short_time(&c.time),
            c.action,
            c.severity,
            what.escape_debug()
        );
        if !c.fields_changed.is_empty() {
            let _ = writeln!(
                s,
                "          fields changed: {}",
                c.fields_changed.join(", ")
            );
        }
        if let Some(a) = &c.accepted {
            let _ = writeln!(
                s,
                "          accepted {} by {}: {}",
                short_time(&a.time),
                a.who,
                a.reason.escape_debug()
            );
        }
    };
    let section = |s: &mut String, title: &str| {
        let _ = writeln!(s, "\n== {title} ==");
    };
    section(
        &mut s,
        &format!("UNATTRIBUTED changes ({})", r.unattributed.len()),
    );
    if r.unattributed.is_empty() {
        let _ = writeln!(
            s,
            "  none: every change a scan found was also reported by the sensor"
        );
    }
    for c in &r.unattributed {
        change_line(&mut s, c);
    }
    section(&mut s, &format!("Alerts ({})", r.alerts.len()));
    for c in &r.alerts {
        change_line(&mut s, c);
    }
    let counts = |s: &mut String, title: &str, v: &[Count]| {
        section(s, title);
        for c in v {
            let _ = writeln!(s, "  {:>7}  {}", c.count, c.key.escape_debug());
        }
    };
    counts(&mut s, "Changes by action", &r.by_action);
    counts(&mut s, "Top paths", &r.by_path);
    counts(&mut s, "Top processes", &r.by_process);
    section(&mut s, &format!("Scans ({})", r.scans.len()));
    for sc in &r.scans {
        let _ = writeln!(
            s,
            "  {:<4} {:<8} {} to {}  {} files, {} changes, {} errors, {}{}  [{}]",
            sc.id,
            sc.kind,
            short_time(&sc.started),
            sc.finished.as_deref().map_or("-".into(), short_time),
            sc.files_seen,
            sc.changes,
            sc.errors,
            sc.status,
            if sc.metadata_only {
                " (metadata only)"
            } else {
                ""
            },
            sc.paths.join(", ")
        );
    }
    let c = &r.coverage;
    section(&mut s, "Coverage");
    let _ = writeln!(
        s,
        "  {} files in the baseline (last baseline {}); {} verified as recorded in the period, {} not verified; {} paths with changes found by scans; {} comparison scans completed",
        c.baseline_files,
        c.last_baseline.as_deref().map_or("never".into(), short_time),
        c.verified_in_period,
        c.not_verified,
        c.changed_in_period,
        c.comparison_scans_ok
    );
    if c.comparison_scans_ok == 0 {
        let _ = writeln!(
            s,
            "  NO comparison scan completed in the period: PCI DSS 11.5.2 asks for one at least weekly (`vigil scan`)"
        );
    }
    for p in &c.not_verified_sample {
        let _ = writeln!(s, "  not verified: {}", p.escape_debug());
    }
    section(&mut s, "Sensor gaps and downtime");
    let _ = writeln!(s, "  {} realtime events", r.sensor.realtime_events);
    if r.sensor.realtime_events == 0 {
        let _ = writeln!(
            s,
            "  the realtime sensor recorded nothing in the period: it was not running (or not journaling to this store)"
        );
    }
    for g in &r.sensor.gaps {
        change_line(&mut s, g);
    }
    for d in &r.sensor.downtime {
        let _ = writeln!(
            s,
            "  down from {} to {}{}",
            d.from.as_deref().map_or("?".into(), short_time),
            d.to.as_deref()
                .map_or("the end of the period".into(), short_time),
            if d.clean {
                ""
            } else {
                " (no stop event: crashed or killed)"
            }
        );
    }
    if r.sensor.gaps.is_empty() && r.sensor.downtime.is_empty() {
        let _ = writeln!(s, "  no gaps or downtime recorded");
    }
    if !r.accepts.is_empty() {
        section(&mut s, &format!("Accepted changes ({})", r.accepts.len()));
        for a in &r.accepts {
            let _ = writeln!(
                s,
                "  {} {} by {}: {}",
                short_time(&a.time),
                a.path.escape_debug(),
                a.who,
                a.reason.escape_debug()
            );
        }
    }
    s
}

/// This host's name (what a report names when its journal has no events).
pub fn local_host() -> String {
    crate::os::host_name()
}

/// `2026-11-26 08:54:11Z` from a stored time.
pub fn short_time(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_period_length() {
        let t = |s: &str| parse(s, "t").unwrap();
        let a = t("2026-11-19T12:00:00Z");
        assert_eq!(bucket_size(a, t("2026-11-20T12:00:00Z")).0, "hour");
        assert_eq!(bucket_size(a, t("2026-11-26T12:00:00Z")).0, "day");
        assert_eq!(bucket_size(a, t("2027-11-26T12:00:00Z")).0, "week");
    }

    /// A store holding `events` (action, time), journaled in this order.
    fn store_with(events: &[(&'static str, &str)]) -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("v.db")).unwrap();
        for (action, time) in events {
            let mut ev = crate::pipeline::emit::sensor_event(
                "h",
                action,
                crate::event::SensorInfo::default(),
            );
            ev.time = (*time).into();
            store.journal(&ev).unwrap();
        }
        (dir, store)
    }

    fn opts(since: &str, until: &str) -> Options {
        Options {
            since: since.into(),
            until: until.into(),
            top: 10,
            host: "fallback".into(),
            store: "v.db".into(),
        }
    }

    #[test]
    fn downtime_windows_from_start_and_stop() {
        let (_d, store) = store_with(&[
            ("start", "2026-11-20T00:00:00.000000000Z"),
            ("health", "2026-11-20T01:00:00.000000000Z"),
            // Died without a stop: down from its last event to the next start.
            ("start", "2026-11-20T05:00:00.000000000Z"),
            ("stop", "2026-11-21T00:00:00.000000000Z"),
            ("start", "2026-11-21T02:00:00.000000000Z"),
            ("stop", "2026-11-22T00:00:00.000000000Z"),
        ]);
        let r = build(
            store.conn(),
            &opts(
                "2026-11-19T00:00:00.000000000Z",
                "2026-11-26T00:00:00.000000000Z",
            ),
        )
        .unwrap();
        let d: Vec<(Option<&str>, Option<&str>, bool)> = r
            .sensor
            .downtime
            .iter()
            .map(|d| (d.from.as_deref(), d.to.as_deref(), d.clean))
            .collect();
        assert_eq!(
            d,
            [
                (
                    Some("2026-11-20T01:00:00.000000000Z"),
                    Some("2026-11-20T05:00:00.000000000Z"),
                    false
                ),
                (
                    Some("2026-11-21T00:00:00.000000000Z"),
                    Some("2026-11-21T02:00:00.000000000Z"),
                    true
                ),
                (Some("2026-11-22T00:00:00.000000000Z"), None, true),
            ]
        );
        assert_eq!(r.host, "h");
        assert_eq!(r.sensor.lifecycle.len(), 5);
        assert_eq!(r.sensor.gaps.len(), 1, "health is listed with gaps");
        assert_eq!(r.timeline.bucket, "day");
        assert_eq!(r.timeline.buckets.len(), 7);

        // A period that opens while the sensor is stopped starts with that stop.
        let r = build(
            store.conn(),
            &opts(
                "2026-11-21T01:00:00.000000000Z",
                "2026-11-21T12:00:00.000000000Z",
            ),
        )
        .unwrap();
        assert_eq!(r.sensor.downtime.len(), 1);
        assert_eq!(
            r.sensor.downtime[0].from.as_deref(),
            Some("2026-11-21T00:00:00.000000000Z")
        );
        assert_eq!(r.timeline.bucket, "hour");
        assert_eq!(r.timeline.buckets.len(), 11);
    }

    #[test]
    fn an_empty_period_and_a_reversed_one() {
        let (_d, store) = store_with(&[]);
        let r = build(
            store.conn(),
            &opts(
                "2026-11-19T00:00:00.000000000Z",
                "2026-11-26T00:00:00.000000000Z",
            ),
        )
        .unwrap();
        assert_eq!(r.host, "fallback");
        assert_eq!(r.totals.events, 0);
        assert!(render_text(&r).contains("NO comparison scan"));
        assert!(html::render(&r).contains("id=\"chart-timeline\""));
        let e = build(
            store.conn(),
            &opts(
                "2026-11-26T00:00:00.000000000Z",
                "2026-11-19T00:00:00.000000000Z",
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not before --until"), "{e}");
    }

    #[test]
    fn top_orders_by_count_then_key() {
        let tally: HashMap<String, u64> = [("b", 2), ("a", 2), ("c", 5), ("d", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let keys: Vec<_> = top(tally, 3).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["c", "a", "b"]);
    }
}
