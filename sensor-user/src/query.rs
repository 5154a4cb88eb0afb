//! `vigil query`: read the store's journal with filters, or with raw SQL.
//!
//! Everything here opens the store read-only ([`open_read_only`]): a query
//! can never change the baseline or the journal, and it does not take the
//! write lock the sensor and scans need. Filters that SQLite can apply on
//! indexed columns (time, action, severity, alert) go into the `WHERE`
//! clause; the rest (path glob, process, user) need the event's JSON and are
//! applied here.
use crate::event::Severity;
use crate::store::{APPLICATION_ID, MIGRATIONS};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use globset::{Glob, GlobMatcher};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// `vigil query`'s options (the store is named by `--db`/`--config`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Only events whose path or target path matches this glob (`*` stays
    /// within a directory, `**` crosses them: `/etc/**`, `**/*.conf`).
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only these actions (repeatable or comma-separated): modified, created,
    /// deleted, renamed, permissions_changed, gap, ...
    #[arg(long, value_delimiter = ',', value_name = "ACTION")]
    pub action: Vec<String>,
    /// Events at or after this time: RFC 3339, a date, or a span back from
    /// now (7d, 24h, 30m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The process's exe, comm or command line contains this text (or, with
    /// `*?[{`, matches it as a glob: `/usr/bin/*`).
    #[arg(long, value_name = "TEXT|GLOB")]
    pub process: Option<String>,
    /// The user or login user (name or numeric uid).
    #[arg(long, value_name = "NAME|UID")]
    pub user: Option<String>,
    /// At least this severity: info, low, medium, high, critical.
    #[arg(long, value_name = "LEVEL")]
    pub severity: Option<String>,
    /// Only events a rule marked as alerts.
    #[arg(long)]
    pub alert: bool,
    /// Only the newest N matching events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Run one read-only SQL statement on the store instead (tables: files,
    /// journal, scans, accepts; a journal event's JSON is
    /// `vigil_event(seq, event)`; see docs/baseline.md).
    #[arg(long, value_name = "SELECT ...", conflicts_with_all = ["path", "action", "since", "until", "process", "user", "severity", "alert", "limit"])]
    pub sql: Option<String>,
    /// NDJSON: the stored events verbatim (with --sql: one object per row).
    /// The default when stdout is not a terminal.
    #[arg(long, conflicts_with = "table")]
    pub json: bool,
    /// A table (the default on a terminal).
    #[arg(long)]
    pub table: bool,
}

impl Args {
    /// The filter these options describe, times relative to `now`.
    pub fn filter(&self, now: DateTime<Utc>) -> Result<Filter> {
        Ok(Filter {
            path: self.path.as_deref().map(Filter::path_glob).transpose()?,
            actions: self
                .action
                .iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            since: self
                .since
                .as_deref()
                .map(|s| parse_time(s, now, "--since"))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|s| parse_time(s, now, "--until"))
                .transpose()?,
            process: self
                .process
                .as_deref()
                .map(|p| TextMatch::new(p, "--process"))
                .transpose()?,
            user: self.user.clone(),
            min_severity: self.severity.as_deref().map(parse_severity).transpose()?,
            alert: self.alert,
            limit: self.limit,
        })
    }
}

/// `vigil query` on the store at `db`, printing to `out`. A reader that
/// goes away (`| head`) ends the output quietly.
pub fn run(db: &Path, args: &Args, out: &mut dyn Write) -> Result<()> {
    quiet_broken_pipe(run_to(db, args, out))
}

/// `Ok` when `r` failed only because stdout's reader went away.
pub fn quiet_broken_pipe(r: Result<()>) -> Result<()> {
    match r {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn run_to(db: &Path, args: &Args, out: &mut dyn Write) -> Result<()> {
    let json = args.json || (!args.table && !std::io::stdout().is_terminal());
    if let Some(q) = &args.sql {
        let r = sql(&open_read_only(db)?, q)?;
        if json {
            for o in r.objects() {
                writeln!(out, "{}", Value::Object(o))?;
            }
        } else {
            let header: Vec<&str> = r.columns.iter().map(String::as_str).collect();
            let rows = r.rows.iter().map(|row| row.iter().map(cell));
            writeln!(out, "{}", render_table(&header, rows))?;
        }
    } else {
        // Options are checked before the store is opened: a typo is reported as such.
        let f = args.filter(Utc::now())?;
        let conn = open_read_only(db)?;
        let mut rows = Vec::new();
        let found = if json {
            for_each(&conn, &f, |r| Ok(writeln!(out, "{}", r.json)?))?
        } else {
            // A table needs every row for its column widths.
            rows = query(&conn, &f)?;
            rows.len()
        };
        if found == 0 {
            let known = known_actions(&conn)?;
            for a in f.actions.iter().filter(|a| !known.contains(a)) {
                eprintln!(
                    "vigil: no event in {} has action {a:?} (actions present: {})",
                    db.display(),
                    known.join(", ")
                );
            }
        }
        if !json {
            let table = render_table(&TABLE_HEADER, rows.iter().map(table_cells));
            writeln!(out, "{table}\n{} events", rows.len())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Opens the store at `path` read-only (`SQLITE_OPEN_READ_ONLY` and
/// `PRAGMA query_only`), after checking that it is a Vigil store.
///
/// Errors name the file and say what to do: a missing file means no baseline
/// was taken there yet.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let shown = path.display();
    if !path.exists() {
        bail!("{shown}: no Vigil store here: run `vigil baseline init` first, or pass --db (or [store] path in --config) to name the store");
    }
    if path.is_dir() {
        bail!("{shown}: is a directory, not a database file: pass --db FILE");
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| explain(path, e))?;
    // Belt and braces: even a statement that would write to a temporary
    // table is refused.
    conn.execute_batch("PRAGMA query_only = ON")
        .map_err(|e| explain(path, e))?;
    crate::store::register_functions(&conn).map_err(|e| explain(path, e))?;
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| explain(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| explain(path, e))?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| explain(path, e))?;
    if app != APPLICATION_ID {
        if app == 0 && version == 0 && tables == 0 {
            bail!("{shown}: is empty, not a Vigil store yet: run `vigil baseline init` first, or pass --db");
        }
        bail!("{shown}: is an SQLite database but not a Vigil store (its application_id is not Vigil's): pass --db with the store's path");
    }
    if version as usize > MIGRATIONS.len() {
        bail!(
            "{shown}: was written by a newer Vigil (schema version {version}; this one knows up to {}): upgrade Vigil",
            MIGRATIONS.len()
        );
    }
    Ok(conn)
}

/// An SQLite error on a read-only store, in words that say what to do.
fn explain(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    let shown = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            anyhow::anyhow!("{shown}: is locked by another process ({e}): try again when the scan or baseline has finished")
        }
        Some(ErrorCode::NotADatabase) => {
            anyhow::anyhow!("{shown}: is not a Vigil database ({e}): pass --db with the store's path")
        }
        Some(ErrorCode::DatabaseCorrupt) => anyhow::anyhow!(
            "{shown}: is corrupt ({e}): restore it from a backup, or move it away and run `vigil baseline init`"
        ),
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
            anyhow::anyhow!("{shown}: cannot be opened ({e}): run as root or pass --db")
        }
        _ => anyhow::anyhow!("{shown}: {e}"),
    }
}

/// Parses a time bound: RFC 3339 (`2026-11-20T00:00:00Z`), a date
/// (`2026-11-20`, midnight UTC), or a span back from `now` (`7d`, `24h`,
/// `30m`, `2w`, `1h 30m`). Returned as the store writes times (RFC 3339 UTC
/// with nanoseconds), so that text comparison orders them. `what` names the
/// option in errors.
pub fn parse_time(s: &str, now: DateTime<Utc>, what: &str) -> Result<String> {
    let s = s.trim();
    let t = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    } else {
        let span = humantime::parse_duration(s).map_err(|e| {
            anyhow::anyhow!(
                "{what} {s:?}: not a time ({e}): give RFC 3339 (2026-11-20T08:00:00Z), a date (2026-11-20), or a span back from now (7d, 24h, 30m)"
            )
        })?;
        let span = chrono::Duration::from_std(span)
            .ok()
            .filter(|d| *d < chrono::Duration::days(365 * 1000))
            .with_context(|| format!("{what} {s:?}: too far back"))?;
        now - span
    };
    Ok(stamp(t))
}

/// A time as the store writes it.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a severity name (`info`, `low`, `medium`, `high`, `critical`).
pub fn parse_severity(s: &str) -> Result<Severity> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "info" => Severity::Info,
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => bail!("--severity {s:?}: not a severity: use info, low, medium, high or critical"),
    })
}

/// The severities at or above `min`, as stored.
fn at_least(min: Severity) -> Vec<&'static str> {
    [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .filter(|s| *s >= min)
    .map(Severity::as_str)
    .collect()
}

/// A substring, or a glob when the text has glob characters (`*?[{`).
#[derive(Debug, Clone)]
pub enum TextMatch {
    Substring(String),
    Glob(GlobMatcher),
}

impl TextMatch {
    /// `what` names the option in errors.
    pub fn new(s: &str, what: &str) -> Result<TextMatch> {
        if s.contains(['*', '?', '[', '{']) {
            let g = Glob::new(s)
                .with_context(|| format!("{what} {s:?}: not a valid glob"))?
                .compile_matcher();
            Ok(TextMatch::Glob(g))
        } else {
            Ok(TextMatch::Substring(s.to_string()))
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match self {
            TextMatch::Substring(s) => text.contains(s.as_str()),
            TextMatch::Glob(g) => g.is_match(text),
        }
    }
}

/// Which journal events to return. Every set condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A glob on the event's path or target path (`/etc/**`, `**/*.conf`).
    pub path: Option<GlobMatcher>,
    /// Any of these actions.
    pub actions: Vec<String>,
    /// `time >= since` (RFC 3339 as stored; see [`parse_time`]).
    pub since: Option<String>,
    /// `time < until`.
    pub until: Option<String>,
    /// The process's exe, comm or command line contains it (or matches it, as a glob).
    pub process: Option<TextMatch>,
    /// The user name, login user name, uid or login uid.
    pub user: Option<String>,
    /// At least this severity.
    pub min_severity: Option<Severity>,
    /// Only events a rule marked as alerts.
    pub alert: bool,
    /// The newest `limit` matches (still returned oldest first).
    pub limit: Option<usize>,
}

impl Filter {
    /// Builds the path condition from a glob. `*` stays within one path
    /// component; `**` crosses them (`/etc/**` is everything under /etc).
    pub fn path_glob(glob: &str) -> Result<GlobMatcher> {
        let g = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .with_context(|| {
                format!("--path {glob:?}: not a valid glob (for example /etc/** or **/*.conf)")
            })?;
        Ok(g.compile_matcher())
    }

    /// Whether the event (as stored) passes the conditions SQL did not check.
    fn matches_event(&self, ev: &Value) -> bool {
        if let Some(g) = &self.path {
            let hit = ["path", "target_path"]
                .iter()
                .filter_map(|k| ev.get(k).and_then(Value::as_str))
                .any(|p| g.is_match(p));
            if !hit {
                return false;
            }
        }
        let proc = ev.get("process");
        let field = |k: &str| proc.and_then(|p| p.get(k));
        if let Some(m) = &self.process {
            let hit = ["exe", "comm", "cmdline"]
                .iter()
                .filter_map(|k| field(k).and_then(Value::as_str))
                .any(|t| !t.is_empty() && m.is_match(t));
            if !hit {
                return false;
            }
        }
        if let Some(u) = &self.user {
            let hit = ["user", "login_user", "uid", "login_uid"]
                .iter()
                .filter_map(|k| field(k))
                .any(|v| match v {
                    Value::String(s) => s == u,
                    Value::Number(n) => n.to_string() == *u,
                    _ => false,
                });
            if !hit {
                return false;
            }
        }
        true
    }
}

/// One journal row a filter query returned.
#[derive(Debug, Clone)]
pub struct Row {
    pub seq: i64,
    /// The stored event, verbatim (native `vigil` JSON).
    pub json: String,
    /// The same, parsed.
    pub event: Value,
}

/// Runs a filter query on the journal: matching events, oldest first.
pub fn query(conn: &Connection, f: &Filter) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for_each(conn, f, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// As [`query`], handing each event to `visit` as it is read: memory stays
/// flat however long the journal (with `--limit N`, N events are held).
/// Returns the number of events visited.
pub fn for_each(
    conn: &Connection,
    f: &Filter,
    mut visit: impl FnMut(Row) -> Result<()>,
) -> Result<usize> {
    let mut sql = String::from("SELECT seq, vigil_event(seq, event) FROM journal WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut bind = |sql: &mut String, cond: &str, v: String| {
        args.push(v.into());
        sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = &f.since {
        bind(&mut sql, " AND time >= ?", t.clone());
    }
    if let Some(t) = &f.until {
        bind(&mut sql, " AND time < ?", t.clone());
    }
    if !f.actions.is_empty() {
        sql.push_str(" AND (0");
        for a in &f.actions {
            bind(&mut sql, " OR action = ?", a.clone());
        }
        sql.push(')');
    }
    if let Some(min) = f.min_severity {
        sql.push_str(" AND (0");
        for s in at_least(min) {
            bind(&mut sql, " OR severity = ?", s.to_string());
        }
        sql.push(')');
    }
    if f.alert {
        sql.push_str(" AND alert = 1");
    }
    // With --limit, newest first (the latest N are kept), reversed at the end.
    sql.push_str(if f.limit.is_some() {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    });
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut newest = Vec::new();
    let mut visited = 0;
    while let Some(r) = rows.next()? {
        if f.limit.is_some_and(|n| newest.len() >= n) {
            break;
        }
        let seq: i64 = r.get(0)?;
        let json: String = r.get(1)?;
        let event: Value = serde_json::from_str(&json)
            .with_context(|| format!("journal entry {seq}: the stored event is not JSON"))?;
        if f.matches_event(&event) {
            let row = Row { seq, json, event };
            if f.limit.is_some() {
                newest.push(row);
            } else {
                visit(row)?;
                visited += 1;
            }
        }
    }
    for row in newest.into_iter().rev() {
        visit(row)?;
        visited += 1;
    }
    Ok(visited)
}

/// The distinct actions in the journal (to explain an empty result).
pub fn known_actions(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare("SELECT DISTINCT action FROM journal ORDER BY action")?;
    let v = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// The result of `--sql`: column names and rows of JSON values.
#[derive(Debug, Clone, Default)]
pub struct SqlResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl SqlResult {
    /// Each row as an object keyed by column name (for NDJSON).
    pub fn objects(&self) -> impl Iterator<Item = Map<String, Value>> + '_ {
        self.rows.iter().map(|r| {
            self.columns
                .iter()
                .cloned()
                .zip(r.iter().cloned())
                .collect::<Map<_, _>>()
        })
    }
}

/// Runs one read-only SQL statement. Writes fail (the connection is
/// read-only) with an error that says so.
pub fn sql(conn: &Connection, sql: &str) -> Result<SqlResult> {
    let fail = |e: rusqlite::Error| -> anyhow::Error {
        let read_only = matches!(e.sqlite_error_code(), Some(ErrorCode::ReadOnly))
            || e.to_string().contains("query_only");
        if read_only {
            anyhow::anyhow!("--sql: the store is opened read-only ({e}): only queries (SELECT, WITH, PRAGMA reads) are allowed; change the baseline with `vigil baseline`")
        } else if matches!(e, rusqlite::Error::MultipleStatement) {
            anyhow::anyhow!("--sql: give one statement only ({e})")
        } else {
            anyhow::anyhow!("--sql: {e}")
        }
    };
    let mut st = conn.prepare(sql).map_err(fail)?;
    // The connection cannot write the store, but a statement such as
    // `VACUUM INTO 'file'` would still create a file: refuse before running.
    if !st.readonly() {
        bail!("--sql: the store is opened read-only and this statement would write: only queries (SELECT, WITH, PRAGMA reads) are allowed; change the baseline with `vigil baseline`");
    }
    let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let n = columns.len();
    let mut rows = st.query([]).map_err(fail)?;
    let mut out = SqlResult {
        columns,
        rows: Vec::new(),
    };
    while let Some(r) = rows.next().map_err(fail)? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i).map_err(fail)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => i.into(),
                ValueRef::Real(f) => {
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                // Hex, as `sqlite3` shows blobs with hex().
                ValueRef::Blob(b) => b
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<String>()
                    .into(),
            });
        }
        out.rows.push(row);
    }
    Ok(out)
}

/// The columns of the filter table.
pub const TABLE_HEADER: [&str; 8] = [
    "seq", "time", "action", "severity", "alert", "path", "process", "user",
];

/// A filter row as table cells: what an operator scans for.
pub fn table_cells(r: &Row) -> [String; 8] {
    let ev = &r.event;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let kind = s(ev.get("kind"));
    let mut path = s(ev.get("path"));
    if let Some(t) = ev.get("target_path").and_then(Value::as_str) {
        path = format!("{path} -> {t}");
    }
    if kind == "sensor" {
        path = format!("(sensor) {}", s(ev.get("message")));
    }
    // A scan finding's process record is empty: no process, no user.
    let scan = ev.pointer("/source/tier").and_then(Value::as_str) == Some("scan");
    let proc = ev.get("process").filter(|_| !scan);
    let pf = |k: &str| proc.and_then(|p| p.get(k));
    let process = match (pf("exe").and_then(Value::as_str), pf("pid")) {
        _ if scan => {
            let un = ev.pointer("/details/unattributed").and_then(Value::as_bool) == Some(true);
            if un { "(scan: unattributed)" } else { "(scan)" }.to_string()
        }
        (Some(exe), Some(pid)) => format!("{exe} [{pid}]"),
        (None, Some(pid)) => format!("{} [{pid}]", s(pf("comm"))),
        _ => String::new(),
    };
    let user = match (
        pf("login_user").and_then(Value::as_str),
        pf("user").and_then(Value::as_str),
    ) {
        (Some(l), Some(u)) if l != u => format!("{u} (login {l})"),
        (_, Some(u)) => u.to_string(),
        (Some(l), None) => l.to_string(),
        (None, None) => pf("uid").map(|v| v.to_string()).unwrap_or_default(),
    };
    // A file name can hold a newline or an escape sequence: keep one line, inert.
    let path = path.escape_debug().to_string();
    let process = process.escape_debug().to_string();
    let time = s(ev.get("time"));
    // Seconds are enough on a terminal; --json has the full time.
    let time = DateTime::parse_from_rfc3339(&time)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or(time);
    [
        r.seq.to_string(),
        time,
        s(ev.get("action")),
        s(ev.get("severity")),
        if ev.get("alert").and_then(Value::as_bool) == Some(true) {
            "yes".into()
        } else {
            String::new()
        },
        path,
        process,
        user,
    ]
}

/// A table for a terminal (comfy-table).
pub fn render_table<I, R>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = String>,
{
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    for r in rows {
        t.add_row(r.into_iter().collect::<Vec<_>>());
    }
    t.to_string()
}

/// A `--sql` value as a table cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_dates_and_spans() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time("7d", now, "--since").unwrap(),
            "2026-11-19T12:00:00.000000000Z"
        );
        assert_eq!(
            parse_time("30m", now, "--since").unwrap(),
            "2026-11-26T11:30:00.000000000Z"
        );
        assert_eq!(
            parse_time("2026-11-20T08:00:00+01:00", now, "--since").unwrap(),
            "2026-11-20T07:00:00.000000000Z"
        );
        assert_eq!(
            parse_time("2026-11-20", now, "--until").unwrap(),
            "2026-11-20T00:00:00.000000000Z"
        );
        let e = parse_time("last tuesday", now, "--since").unwrap_err();
        assert!(e.to_string().contains("--since \"last tuesday\""), "{e}");
        assert!(e.to_string().contains("7d"), "{e}");
    }

    #[test]
    fn severities_parse_and_order() {
        assert_eq!(parse_severity("HIGH").unwrap(), Severity::High);
        assert_eq!(at_least(Severity::High), ["high", "critical"]);
        assert!(parse_severity("urgent")
            .unwrap_err()
            .to_string()
            .contains("info, low"));
    }

    #[test]
    fn process_matches_substring_or_glob() {
        let m = TextMatch::new("vim", "--process").unwrap();
        assert!(m.is_match("/usr/bin/vim.basic"));
        let g = TextMatch::new("/usr/bin/*", "--process").unwrap();
        assert!(g.is_match("/usr/bin/vim.basic"));
        assert!(!g.is_match("/tmp/x"));
        assert!(TextMatch::new("[", "--process").is_err());
        assert!(Filter::path_glob("/etc/{a").is_err());
    }

    #[test]
    fn table_cells_stay_on_one_line() {
        let event = serde_json::json!({
            "time": "2026-11-26T08:54:11.126817500Z", "kind": "file", "action": "created",
            "severity": "high", "alert": true, "path": "/tmp/a\nb\u{1b}[31m",
            "source": {"tier": "scan"}, "details": {"unattributed": true},
            "process": {"uid": 0, "pid": 0, "comm": ""},
        });
        let row = Row {
            seq: 7,
            json: event.to_string(),
            event,
        };
        let c = table_cells(&row);
        assert_eq!(c[1], "2026-11-26 08:54:11");
        assert_eq!(c[4], "yes");
        assert_eq!(c[5], "/tmp/a\\nb\\u{1b}[31m");
        assert_eq!(c[6], "(scan: unattributed)");
        assert_eq!(c[7], "", "a scan finding has no user");
    }

    #[test]
    fn event_filters_check_path_process_and_user() {
        let ev: Value = serde_json::json!({
            "path": "/etc/ssh/sshd_config",
            "process": {"exe": "/usr/bin/vim", "comm": "vim", "user": "root",
                        "login_user": "alice", "uid": 0, "login_uid": 1000},
        });
        let mut f = Filter {
            path: Some(Filter::path_glob("/etc/**").unwrap()),
            ..Default::default()
        };
        assert!(f.matches_event(&ev));
        f.path = Some(Filter::path_glob("/etc/*").unwrap());
        assert!(!f.matches_event(&ev), "* does not cross /");
        f.path = Some(Filter::path_glob("/etc/ssh").unwrap());
        assert!(!f.matches_event(&ev));
        f.path = None;
        f.user = Some("alice".into());
        assert!(f.matches_event(&ev));
        f.user = Some("1000".into());
        assert!(f.matches_event(&ev));
        f.user = Some("bob".into());
        assert!(!f.matches_event(&ev));
        f.user = None;
        f.process = Some(TextMatch::new("vi", "--process").unwrap());
        assert!(f.matches_event(&ev));
        f.process = Some(TextMatch::new("nano", "--process").unwrap());
        assert!(!f.matches_event(&ev));
    }
}
