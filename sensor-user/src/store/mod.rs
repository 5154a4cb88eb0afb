//! The store: baseline, change journal, scans and accepts in one SQLite file.
//!
//! SQLite (compiled in) in WAL mode, so that `vigil query` and an auditor's
//! `sqlite3` shell can read while the sensor writes. The schema is versioned
//! with `PRAGMA user_version` and the ordered [`MIGRATIONS`]; the file is
//! marked as Vigil's with `PRAGMA application_id`. Every table is documented
//! for auditors in docs/baseline.md.
//!
//! Errors name the file and say what to do (locked, not a Vigil database,
//! corrupt, newer schema); nothing here panics on a bad file.
mod blocks;

pub use blocks::{register_functions, BLOCK_EVENTS};

use crate::event::{Event, FileState};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store lives unless `[store] path` or `--db` says otherwise.
#[cfg(not(windows))]
pub const DEFAULT_PATH: &str = "/var/lib/vigil/vigil.db";
/// Where the store lives unless `[store] path` or `--db` says otherwise
/// (pci-windows excludes this directory from the watch on Vigil's install).
#[cfg(windows)]
pub const DEFAULT_PATH: &str = r"C:\ProgramData\Vigil\vigil.db";

/// `PRAGMA application_id`: "Vigl".
pub const APPLICATION_ID: i32 = 0x5669_676c;

/// Schema migrations, oldest first; `user_version` is how many have run.
/// Append only: a released migration is never edited.
pub const MIGRATIONS: &[&str] = &[
    // 1: baseline, journal, scans, accepts.
    r#"
CREATE TABLE files (
    path        TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mode        TEXT NOT NULL,
    uid         INTEGER NOT NULL,
    gid         INTEGER NOT NULL,
    mtime       TEXT NOT NULL,
    ctime       TEXT NOT NULL,
    inode       INTEGER NOT NULL,
    nlink       INTEGER NOT NULL,
    link_target TEXT,
    xattrs      TEXT NOT NULL DEFAULT '{}',
    blake3      TEXT,
    sha256      TEXT,
    hash_note   TEXT,
    watch       TEXT,
    verified_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE scans (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    started       TEXT NOT NULL,
    finished      TEXT,
    paths         TEXT NOT NULL,
    metadata_only INTEGER NOT NULL DEFAULT 0,
    files_seen    INTEGER NOT NULL DEFAULT 0,
    changes       INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    message       TEXT
);

CREATE TABLE journal (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded    TEXT NOT NULL,
    time        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    action      TEXT NOT NULL,
    tier        TEXT,
    path        TEXT,
    target_path TEXT,
    severity    TEXT NOT NULL,
    alert       INTEGER NOT NULL DEFAULT 0,
    scan_id     INTEGER REFERENCES scans(id),
    event       TEXT NOT NULL
);
CREATE INDEX journal_path ON journal(path, time);
CREATE INDEX journal_target_path ON journal(target_path, time) WHERE target_path IS NOT NULL;
CREATE INDEX journal_time ON journal(time);
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;

CREATE TABLE accepts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        TEXT NOT NULL,
    who         TEXT NOT NULL,
    uid         INTEGER NOT NULL,
    login_uid   INTEGER,
    path        TEXT NOT NULL,
    journal_seq INTEGER REFERENCES journal(seq),
    reason      TEXT NOT NULL,
    before      TEXT,
    after       TEXT
);
CREATE TRIGGER accepts_no_update BEFORE UPDATE ON accepts
BEGIN SELECT RAISE(ABORT, 'accepts are append-only'); END;
CREATE TRIGGER accepts_no_delete BEFORE DELETE ON accepts
BEGIN SELECT RAISE(ABORT, 'accepts are append-only'); END;
"#,
    // 2: a MAC per baseline row (see `row_mac`): keyed BLAKE3 under a subkey
    // of the host key. NULL in rows written before this migration.
    r#"
ALTER TABLE files ADD COLUMN mac TEXT;
"#,
    // 3: the registry baseline (Windows): one row per watched value, its
    // state as JSON ({"type","data"|"blake3","size"}; see registry.rs).
    r#"
CREATE TABLE registry (
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    state       TEXT NOT NULL,
    watch       TEXT,
    verified_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (key, value)
) WITHOUT ROWID;
"#,
    // 4: the software inventory as last reported (docs/inventory.md): what
    // the next start compares the package database with.
    r#"
CREATE TABLE packages (
    manager     TEXT NOT NULL,
    name        TEXT NOT NULL,
    arch        TEXT NOT NULL,
    version     TEXT NOT NULL,
    status      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (manager, name, arch)
) WITHOUT ROWID;
CREATE TABLE inventories (
    manager     TEXT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // 5: systemd unit states as last reported, per bus (docs/inventory.md):
    // what the next start compares the units with. Recorded per bus in
    // `inventories` as manager `systemd:BUS`.
    r#"
CREATE TABLE units (
    bus          TEXT NOT NULL,
    unit         TEXT NOT NULL,
    active_state TEXT NOT NULL,
    sub_state    TEXT NOT NULL,
    file_state   TEXT,
    unit_file    TEXT,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (bus, unit)
) WITHOUT ROWID;
"#,
    // 6: Windows: the owner's SID and the DACL (SDDL) of each file
    // (filestate.rs); NULL on Linux and in rows recorded before.
    r#"
ALTER TABLE files ADD COLUMN owner TEXT;
ALTER TABLE files ADD COLUMN acl TEXT;
"#,
    // 7: the events of the live journal in compressed blocks (blocks.rs);
    // their journal rows keep an empty `event`.
    r#"
CREATE TABLE journal_blocks (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    events    BLOB NOT NULL
);
CREATE TRIGGER journal_blocks_no_update BEFORE UPDATE ON journal_blocks
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_blocks_no_delete BEFORE DELETE ON journal_blocks
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"#,
];

/// The context of the baseline row MAC's subkey (`blake3::derive_key`).
pub const ROW_MAC_CONTEXT: &str = "vigil baseline row mac";

/// A baseline row whose MAC does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tampered {
    pub path: String,
    /// `mismatch`: the row was changed (or forged) after it was sealed;
    /// `missing`: it carries no MAC (removed, or written by a Vigil before
    /// row MACs or without the host key).
    pub reason: &'static str,
}

/// The MAC of a baseline row: keyed BLAKE3 (under the row subkey) of every
/// field but `verified_at`, which scans update when they find the file as
/// recorded, without changing what was recorded. Each field is length-prefixed
/// (`u64` little-endian; `u64::MAX` for NULL) so that no two rows share an
/// encoding.
pub fn row_mac(subkey: &[u8; 32], row: &FileRow) -> String {
    let mut h = blake3::Hasher::new_keyed(subkey);
    let mut field = |v: Option<&str>| match v {
        Some(v) => {
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        None => {
            h.update(&u64::MAX.to_le_bytes());
        }
    };
    let s = &row.state;
    let xattrs = serde_json::to_string(&s.xattrs).unwrap_or_else(|_| "{}".into());
    field(Some(&row.path));
    field(Some(s.file_type));
    field(Some(&s.size.to_string()));
    field(Some(&s.mode));
    field(Some(&s.uid.to_string()));
    field(Some(&s.gid.to_string()));
    field(Some(&s.mtime));
    field(Some(&s.ctime));
    field(Some(&s.inode.to_string()));
    field(Some(&s.nlink.to_string()));
    field(s.link_target.as_deref());
    field(Some(&xattrs));
    field(s.hashes.get("blake3").map(String::as_str));
    field(s.hashes.get("sha256").map(String::as_str));
    field(s.hash_note.as_deref());
    field(row.watch.as_deref());
    field(Some(&row.updated_at));
    // Windows owner and DACL: only when recorded, so the MACs of rows
    // without them (Linux, older rows) stay what they were.
    if s.owner.is_some() || s.acl.is_some() {
        field(s.owner.as_deref());
        field(s.acl.as_deref());
    }
    h.finalize().to_hex().to_string()
}

/// A store error: names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One baseline row: a path's recorded state.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub path: String,
    pub state: FileState,
    /// The watched root that covers the path.
    pub watch: Option<String>,
    /// When a scan last found the file as recorded.
    pub verified_at: String,
    /// When this state was recorded (init, update, accept).
    pub updated_at: String,
}

/// A row of `scans`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScanRow {
    pub id: i64,
    pub kind: String,
    pub started: String,
    pub finished: Option<String>,
    pub paths: Vec<String>,
    pub metadata_only: bool,
    pub files_seen: u64,
    pub changes: u64,
    pub errors: u64,
    pub status: String,
    pub message: Option<String>,
}

/// A registry value's baseline row.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRow {
    /// `HKLM\...` or `HKU\<SID>\...`, as the registry spells it.
    pub key: String,
    /// The value name; empty for the key's default value.
    pub value: String,
    /// `{"type":"REG_SZ","data":"...","size":N}` (see `registry::state`).
    pub state: serde_json::Value,
    pub watch: Option<String>,
    pub verified_at: String,
    pub updated_at: String,
}

/// Who accepted a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Who {
    /// `SUDO_USER`, else the login user, else the user (name, or uid as text).
    pub name: String,
    pub uid: u32,
    pub login_uid: Option<u32>,
}

impl Who {
    /// The person behind this process: `sudo` and `su` keep the login uid.
    pub fn current() -> Who {
        let uid = crate::os::current_uid();
        let login_uid = std::fs::read_to_string("/proc/self/loginuid")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&u| u != u32::MAX);
        let user_name = crate::os::user_name;
        let name = std::env::var("SUDO_USER")
            .ok()
            .filter(|s| !s.is_empty() && uid == 0)
            .or_else(|| login_uid.and_then(user_name))
            .or_else(|| user_name(uid))
            // Windows: the account name (Windows users have SIDs, not uids).
            .or_else(|| {
                std::env::var("USERNAME")
                    .ok()
                    .filter(|_| cfg!(windows))
                    .map(|u| match std::env::var("USERDOMAIN") {
                        Ok(d) if !d.is_empty() => format!("{d}\\{u}"),
                        _ => u,
                    })
            })
            .unwrap_or_else(|| format!("uid {uid}"));
        Who {
            name,
            uid,
            login_uid,
        }
    }
}

/// What the feed last reported about a path ([`Store::last_reported`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub seq: i64,
    pub time: String,
    /// The state the change left; None: the path was gone.
    pub state: Option<FileState>,
}

/// A row of `accepts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Accept {
    pub id: i64,
    pub time: String,
    pub who: String,
    pub path: String,
    pub journal_seq: Option<i64>,
    pub reason: String,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The row MAC subkey: rows are sealed on write and checked on read.
    row_key: Option<[u8; 32]>,
    /// Rows read since the last [`Store::take_tampered`] that failed the check.
    tampered: std::cell::RefCell<Vec<Tampered>>,
    /// Events journaled by [`Store::journal_rendered`] whose block is not
    /// written yet (at the latest by [`Store::commit`]).
    pending: std::cell::RefCell<blocks::PendingBlock>,
}

/// The thread of [`Store::checkpoint_in_background`]; dropping it runs a
/// last checkpoint and joins the thread.
pub struct Checkpointer {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Now, RFC 3339 UTC with nanoseconds (the format of every time in the store).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Store {
    /// Opens (creating it and its directory if needed) and migrates the store.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_timeout(path, Duration::from_secs(5))
    }

    /// As [`Store::open`], waiting at most `busy` for another process's lock.
    pub fn open_with_timeout(path: &Path, busy: Duration) -> Result<Store> {
        let fail = |message: String| StoreError {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    fail(format!(
                        "cannot create the directory {}: {e}; run as root or pass --db",
                        dir.display()
                    ))
                })?;
            }
        }
        if path.is_dir() {
            return Err(fail(
                "is a directory, not a database file: pass --db FILE".into(),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| explain(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            row_key: None,
            tampered: Default::default(),
            pending: std::cell::RefCell::new(blocks::PendingBlock::new()),
        };
        store
            .conn
            .busy_timeout(busy)
            .map_err(|e| explain(path, e))?;
        store.setup()?;
        Ok(store)
    }

    /// Seals baseline rows with a MAC under `host_key` (a subkey derived
    /// with [`ROW_MAC_CONTEXT`]) when they are written, and checks the MAC
    /// of every row read: failures are collected for [`Store::take_tampered`].
    pub fn with_row_mac(mut self, host_key: &[u8; 32]) -> Store {
        self.row_key = Some(blake3::derive_key(ROW_MAC_CONTEXT, host_key));
        self
    }

    /// Whether rows are sealed and checked.
    pub fn checks_row_macs(&self) -> bool {
        self.row_key.is_some()
    }

    /// The rows read since the last call whose MAC did not verify.
    pub fn take_tampered(&self) -> Vec<Tampered> {
        std::mem::take(&mut *self.tampered.borrow_mut())
    }

    /// Checks a row read from the table; a failure is remembered.
    fn check_row(&self, row: &FileRow, mac: Option<&str>) -> Option<Tampered> {
        let key = self.row_key.as_ref()?;
        let reason = match mac {
            None => "missing",
            Some(m) if m == row_mac(key, row) => return None,
            Some(_) => "mismatch",
        };
        let t = Tampered {
            path: row.path.clone(),
            reason,
        };
        let mut list = self.tampered.borrow_mut();
        if !list.contains(&t) {
            list.push(t.clone());
        }
        Some(t)
    }

    /// Checks every baseline row (`vigil baseline verify`): the number of
    /// rows, and those that fail. Without a row key, nothing is checked.
    pub fn verify_rows(&self) -> Result<(u64, Vec<Tampered>)> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {FILE_COLUMNS} FROM files ORDER BY path"))
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([], file_row).map_err(|e| self.err(e))?;
        let (mut n, mut bad) = (0, Vec::new());
        for r in rows {
            let (row, mac) = r.map_err(|e| self.err(e))?;
            n += 1;
            if let Some(t) = self.check_row(&row, mac.as_deref()) {
                bad.push(t);
            }
        }
        self.tampered.borrow_mut().clear();
        Ok((n, bad))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        explain(&self.path, e)
    }

    fn setup(&self) -> Result<()> {
        let c = &self.conn;
        register_functions(c).map_err(|e| self.err(e))?;
        // Reading the header first turns "not a database" into a clear error
        // before anything is written.
        let app: i32 = c
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if app != APPLICATION_ID && (app != 0 || tables > 0) {
            return Err(StoreError {
                path: self.path.clone(),
                message: "is an SQLite database but not a Vigil store (its application_id is not Vigil's): move it away or pass --db".into(),
            });
        }
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("{}: journal mode is {mode}, not WAL", self.path.display());
        }
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))?;
        self.migrate()
    }

    /// Runs the migrations not yet applied, each in the same transaction as
    /// its `user_version` bump. Idempotent. Takes the write lock even when
    /// there is nothing to do, so a store locked by another process is found
    /// at open rather than half-way through a scan.
    fn migrate(&self) -> Result<()> {
        let c = &self.conn;
        c.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let r = (|| -> Result<()> {
            let version: i64 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if version as usize > MIGRATIONS.len() {
                return Err(StoreError {
                    path: self.path.clone(),
                    message: format!(
                        "was written by a newer Vigil (schema version {version}; this one knows up to {}): upgrade Vigil or pass --db",
                        MIGRATIONS.len()
                    ),
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                c.execute_batch(sql).map_err(|e| self.err(e))?;
                c.execute_batch(&format!(
                    "PRAGMA user_version = {}; PRAGMA application_id = {APPLICATION_ID};",
                    i + 1
                ))
                .map_err(|e| self.err(e))?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => c.execute_batch("COMMIT").map_err(|e| self.err(e)),
            Err(e) => {
                let _ = c.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The underlying connection, for read-only queries (reports, tests).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Moves WAL checkpoints off this connection to a thread of their own.
    ///
    /// A checkpoint writes the WAL back into the database and fsyncs both;
    /// on a busy disk that took up to 100 ms, and SQLite runs it in whichever
    /// commit crosses the WAL's size mark: for the journal, the pipeline's
    /// thread, which then holds every event behind it. Commits themselves do
    /// not fsync (`synchronous = NORMAL` in WAL mode). The thread checkpoints
    /// every `every` without blocking writers (PASSIVE) and once more when the
    /// returned handle is dropped; a failure is logged once and retried (the
    /// WAL keeps every row meanwhile, it only grows).
    pub fn checkpoint_in_background(&self, every: Duration) -> Result<Checkpointer> {
        self.conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(|e| self.err(e))?;
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| self.err(e))?;
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let path = self.path.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-checkpoint".into())
            .spawn(move || {
                let mut warned = false;
                loop {
                    // Anything but a timeout: the handle was dropped.
                    let last = !matches!(
                        stopped.recv_timeout(every),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout)
                    );
                    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = r {
                        if !warned {
                            tracing::warn!("{}: WAL checkpoint failed (retrying; the WAL grows meanwhile): {e}", path.display());
                            warned = true;
                        }
                    }
                    if last {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError {
                path: self.path.clone(),
                message: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn begin(&self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))
    }

    /// Commits, after writing the journal block in progress.
    pub fn commit(&self) -> Result<()> {
        self.write_pending_block()?;
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    fn write_pending_block(&self) -> Result<()> {
        self.pending
            .borrow_mut()
            .write(&self.conn)
            .map_err(|message| StoreError {
                path: self.path.clone(),
                message,
            })
    }

    // -- registry -----------------------------------------------------------

    /// Inserts or replaces a registry value's baseline row.
    pub fn put_registry(&self, row: &RegistryRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO registry (key, value, state, watch, verified_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    row.key,
                    row.value,
                    row.state.to_string(),
                    row.watch,
                    row.verified_at,
                    row.updated_at
                ])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn delete_registry(&self, key: &str, value: &str) -> Result<bool> {
        self.conn
            .prepare_cached("DELETE FROM registry WHERE key = ?1 AND value = ?2")
            .and_then(|mut st| st.execute([key, value]))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Every registry baseline row, by key and value. A row whose state is
    /// not JSON is an error naming it (the store was edited by hand).
    pub fn registry_rows(&self) -> Result<Vec<RegistryRow>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT key, value, state, watch, verified_at, updated_at FROM registry ORDER BY key, value",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(key, value, state, watch, verified_at, updated_at)| {
                let state = serde_json::from_str(&state).map_err(|e| StoreError {
                    path: self.path.clone(),
                    message: format!(
                        "registry row {key}\\{value}: state is not JSON ({e}): run `vigil baseline update` to re-record it"
                    ),
                })?;
                Ok(RegistryRow {
                    key,
                    value,
                    state,
                    watch,
                    verified_at,
                    updated_at,
                })
            })
            .collect()
    }

    pub fn registry_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM registry", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    // -- files --------------------------------------------------------------

    /// Inserts or replaces a path's baseline row.
    pub fn put_file(&self, row: &FileRow) -> Result<()> {
        let s = &row.state;
        let xattrs = serde_json::to_string(&s.xattrs).unwrap_or_else(|_| "{}".into());
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO files (path, type, size, mode, uid, gid, mtime, ctime, inode, nlink,
                    link_target, xattrs, blake3, sha256, hash_note, watch, verified_at, updated_at, mac,
                    owner, acl)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                    ?20, ?21)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    row.path,
                    s.file_type,
                    s.size as i64,
                    s.mode,
                    s.uid,
                    s.gid,
                    s.mtime,
                    s.ctime,
                    s.inode as i64,
                    s.nlink as i64,
                    s.link_target,
                    xattrs,
                    s.hashes.get("blake3"),
                    s.hashes.get("sha256"),
                    s.hash_note,
                    row.watch,
                    row.verified_at,
                    row.updated_at,
                    self.row_key.as_ref().map(|k| row_mac(k, row)),
                    s.owner,
                    s.acl,
                ])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The baseline row of `path`.
    /// The baseline row of `path`. With a row key, a row whose MAC fails is
    /// still returned (the scan compares with it) and remembered for
    /// [`Store::take_tampered`].
    pub fn get_file(&self, path: &str) -> Result<Option<FileRow>> {
        let r = self
            .conn
            .prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE path = ?1"))
            .and_then(|mut st| st.query_row([path], file_row).optional())
            .map_err(|e| self.err(e))?;
        Ok(r.map(|(row, mac)| {
            self.check_row(&row, mac.as_deref());
            row
        }))
    }

    pub fn delete_file(&self, path: &str) -> Result<bool> {
        self.conn
            .prepare_cached("DELETE FROM files WHERE path = ?1")
            .and_then(|mut st| st.execute([path]))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Marks a row as verified now (a scan found it as recorded).
    pub fn mark_verified(&self, path: &str, at: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE files SET verified_at = ?2 WHERE path = ?1")
            .and_then(|mut st| st.execute(params![path, at]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn file_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM files", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Baseline paths equal to `root` or under it, in order.
    pub fn paths_under(&self, root: &Path, mut each: impl FnMut(String)) -> Result<()> {
        let (root, prefix, end) = subtree(root);
        let mut st = self
            .conn
            .prepare("SELECT path FROM files WHERE path = ?1 OR (path >= ?2 AND path < ?3) ORDER BY path")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![root, prefix, end], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        for r in rows {
            each(r.map_err(|e| self.err(e))?);
        }
        Ok(())
    }

    // -- scans --------------------------------------------------------------

    /// Records the start of a scan (`init`, `update`, `scan`...); returns its id.
    pub fn scan_started(&self, kind: &str, paths: &[String], metadata_only: bool) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO scans (kind, started, paths, metadata_only, status) VALUES (?1, ?2, ?3, ?4, 'running')",
                params![
                    kind,
                    now(),
                    serde_json::to_string(paths).unwrap_or_default(),
                    metadata_only
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a scan ended: `ok` or `failed` (with a message).
    pub fn scan_finished(
        &self,
        id: i64,
        status: &str,
        files_seen: u64,
        changes: u64,
        errors: u64,
        message: Option<&str>,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE scans SET finished = ?2, status = ?3, files_seen = ?4, changes = ?5, errors = ?6, message = ?7 WHERE id = ?1",
                params![id, now(), status, files_seen as i64, changes as i64, errors as i64, message],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn scan(&self, id: i64) -> Result<Option<ScanRow>> {
        self.conn
            .query_row(
                "SELECT id, kind, started, finished, paths, metadata_only, files_seen, changes, errors, status, message FROM scans WHERE id = ?1",
                [id],
                |r| {
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
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// When the last successful baseline (`init` or `update`) finished.
    pub fn last_baseline(&self) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT max(finished) FROM scans WHERE kind IN ('init', 'update') AND status = 'ok'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Marks scans left `running` by a process that died (kill -9, power
    /// loss) as `interrupted`; returns how many. Called by the daemon at
    /// start-up, when no other Vigil can be scanning this store.
    pub fn interrupt_stale_scans(&self) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE scans SET status = 'interrupted', finished = ?1,
                   message = 'the process stopped before the scan finished'
                 WHERE status = 'running'",
                [now()],
            )
            .map_err(|e| self.err(e))
    }

    /// When the last scan of one of `kinds` started, whatever its outcome.
    pub fn last_scan_started(&self, kinds: &[&str]) -> Result<Option<String>> {
        let list = serde_json::to_string(kinds).unwrap_or_default();
        self.conn
            .query_row(
                "SELECT max(started) FROM scans WHERE kind IN (SELECT value FROM json_each(?1))",
                [list],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    // -- software inventory -----------------------------------------------

    /// The inventory of `manager` as last reported, or None if none was
    /// ever recorded.
    pub fn inventory(&self, manager: &str) -> Result<Option<crate::inventory::Inventory>> {
        let recorded: Option<String> = self
            .conn
            .query_row(
                "SELECT recorded_at FROM inventories WHERE manager = ?1",
                [manager],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if recorded.is_none() {
            return Ok(None);
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT name, arch, version, status FROM packages WHERE manager = ?1")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([manager], |r| {
                Ok((
                    crate::inventory::Key {
                        name: r.get(0)?,
                        arch: r.get(1)?,
                    },
                    crate::inventory::Pkg {
                        version: r.get(2)?,
                        status: r.get(3)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = crate::inventory::Inventory::new();
        for row in rows {
            let (k, p) = row.map_err(|e| self.err(e))?;
            out.insert(k, p);
        }
        Ok(Some(out))
    }

    /// Records a whole inventory (the first one), replacing any other.
    pub fn record_inventory(&self, manager: &str, inv: &crate::inventory::Inventory) -> Result<()> {
        let at = now();
        self.conn
            .execute("DELETE FROM packages WHERE manager = ?1", [manager])
            .map_err(|e| self.err(e))?;
        for (k, p) in inv {
            self.put_package(manager, k, Some(p), &at)?;
        }
        self.conn
            .execute(
                "INSERT INTO inventories (manager, recorded_at, updated_at) VALUES (?1, ?2, ?2)
                 ON CONFLICT(manager) DO UPDATE SET recorded_at = ?2, updated_at = ?2",
                params![manager, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Applies reported changes to the stored inventory.
    pub fn update_inventory(
        &self,
        manager: &str,
        changes: &[crate::inventory::Change],
    ) -> Result<()> {
        let at = now();
        for c in changes {
            self.put_package(manager, &c.key, c.after.as_ref(), &at)?;
        }
        self.conn
            .execute(
                "UPDATE inventories SET updated_at = ?2 WHERE manager = ?1",
                params![manager, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn put_package(
        &self,
        manager: &str,
        k: &crate::inventory::Key,
        p: Option<&crate::inventory::Pkg>,
        at: &str,
    ) -> Result<()> {
        let r = match p {
            Some(p) => self
                .conn
                .prepare_cached(
                    "INSERT INTO packages (manager, name, arch, version, status, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(manager, name, arch) DO UPDATE
                     SET version = ?4, status = ?5, updated_at = ?6",
                )
                .and_then(|mut st| {
                    st.execute(params![manager, k.name, k.arch, p.version, p.status, at])
                }),
            None => self
                .conn
                .prepare_cached(
                    "DELETE FROM packages WHERE manager = ?1 AND name = ?2 AND arch = ?3",
                )
                .and_then(|mut st| st.execute(params![manager, k.name, k.arch])),
        };
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    // -- systemd units --------------------------------------------------------

    /// The unit states of the systemd manager on `bus` as last reported, or
    /// None if none were ever recorded.
    pub fn units(
        &self,
        bus: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, crate::inventory::systemd::UnitState>>>
    {
        let recorded: Option<String> = self
            .conn
            .query_row(
                "SELECT recorded_at FROM inventories WHERE manager = ?1",
                [format!("systemd:{bus}")],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if recorded.is_none() {
            return Ok(None);
        }
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT unit, active_state, sub_state, file_state, unit_file FROM units WHERE bus = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([bus], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    crate::inventory::systemd::UnitState {
                        active: r.get(1)?,
                        sub: r.get(2)?,
                        file_state: r.get(3)?,
                        unit_file: r.get(4)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::BTreeMap::new();
        for row in rows {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.insert(k, v);
        }
        Ok(Some(out))
    }

    /// Records every unit's state on `bus`, replacing what was stored.
    pub fn record_units(
        &self,
        bus: &str,
        units: &std::collections::BTreeMap<String, crate::inventory::systemd::UnitState>,
    ) -> Result<()> {
        let at = now();
        self.conn
            .execute("DELETE FROM units WHERE bus = ?1", [bus])
            .map_err(|e| self.err(e))?;
        for (unit, s) in units {
            self.put_unit(bus, unit, s)?;
        }
        self.conn
            .execute(
                "INSERT INTO inventories (manager, recorded_at, updated_at) VALUES (?1, ?2, ?2)
                 ON CONFLICT(manager) DO UPDATE SET recorded_at = ?2, updated_at = ?2",
                params![format!("systemd:{bus}"), at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores one unit's reported state.
    pub fn put_unit(
        &self,
        bus: &str,
        unit: &str,
        s: &crate::inventory::systemd::UnitState,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO units (bus, unit, active_state, sub_state, file_state, unit_file, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(bus, unit) DO UPDATE
                 SET active_state = ?3, sub_state = ?4, file_state = ?5, unit_file = ?6, updated_at = ?7",
            )
            .and_then(|mut st| {
                st.execute(params![bus, unit, s.active, s.sub, s.file_state, s.unit_file, now()])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Forgets a unit (a Windows service removed).
    pub fn delete_unit(&self, bus: &str, unit: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM units WHERE bus = ?1 AND unit = ?2")
            .and_then(|mut st| st.execute(params![bus, unit]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    // -- journal ------------------------------------------------------------

    /// Appends an emitted event; returns its journal sequence number.
    pub fn journal(&self, ev: &Event) -> Result<i64> {
        self.insert_journal_row(ev, &serde_json::to_string(ev).unwrap_or_default())
    }

    /// As [`Store::journal`], with the event already rendered as native JSON
    /// (the emitter's line, with its `key_id` and `chain`): no second
    /// serialization. In a transaction, the JSON goes into a compressed
    /// block (blocks.rs), written when it is full or at [`Store::commit`]:
    /// the rows and their block are committed together.
    pub fn journal_rendered(&self, ev: &Event, json: &str) -> Result<i64> {
        if self.conn.is_autocommit() || json.contains('\n') {
            // A row and a block in two commits could be torn apart; and a
            // block holds one line per event.
            return self.insert_journal_row(ev, json);
        }
        let seq = self.insert_journal_row(ev, "")?;
        if !self.pending.borrow().continues(seq) {
            // A row journaled between (by `Store::journal`): a new block.
            self.write_pending_block()?;
        }
        self.pending.borrow_mut().push(seq, json);
        if self.pending.borrow().is_full() {
            self.write_pending_block()?;
        }
        Ok(seq)
    }

    /// Inserts a journal row; `json` empty: the event is in a block.
    fn insert_journal_row(&self, ev: &Event, json: &str) -> Result<i64> {
        let f = ev.file();
        let scan_id = f
            .and_then(|f| f.details.get("scan_id"))
            .and_then(|v| v.as_i64());
        self.conn
            .prepare_cached(
                "INSERT INTO journal (recorded, time, kind, action, tier, path, target_path, severity, alert, scan_id, event)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    now(),
                    ev.time.as_str(),
                    ev.kind,
                    ev.action,
                    f.map(|f| f.source.tier)
                        .or(ev.package().map(|p| p.source.tier))
                        .or(ev.service().map(|s| s.source.tier)),
                    f.map(|f| &*f.path),
                    f.and_then(|f| f.target_path.as_deref()),
                    ev.severity.as_str(),
                    ev.alert,
                    scan_id,
                    json
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The first realtime (non-scan) journal event on `path` (as path or
    /// target) at or after `since`: the sensor saw the change.
    pub fn realtime_event_since(&self, path: &str, since: &str) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT min(seq) FROM journal WHERE kind = 'file' AND tier IS NOT 'scan' AND time >= ?2
                   AND (path = ?1 OR target_path = ?1)",
            )
            .and_then(|mut st| st.query_row(params![path, since], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    /// The newest journal entry: its time, kind and action. The daemon reads
    /// it before it starts: the sensor was last known alive then, and a
    /// missing `stop` says how it ended.
    pub fn last_journal(&self) -> Result<Option<(String, String, String)>> {
        self.conn
            .query_row(
                "SELECT time, kind, action FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// What the feed last said about `path`: the newest file event on it (as
    /// path or target), and the state it left the path in (None: the path
    /// no longer existed). `Ok(None)`: no event, or none that tells the
    /// state (an exchange, or a change whose state could not be read).
    pub fn last_reported(&self, path: &str) -> Result<Option<Reported>> {
        let row: Option<(i64, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT seq, time, vigil_event(seq, event) FROM journal WHERE kind = 'file' AND (path = ?1 OR target_path = ?1)
                 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row([path], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some((seq, time, event)) = row else {
            return Ok(None);
        };
        let ev: serde_json::Value = serde_json::from_str(&event).unwrap_or_default();
        let action = ev["action"].as_str().unwrap_or_default();
        let is_target = ev["target_path"].as_str() == Some(path);
        let state = match action {
            "exchanged" => return Ok(None),
            "deleted" => None,
            "renamed" if !is_target => None,
            _ => match state_from_json(&ev["after"]) {
                Some(s) => Some(s),
                None => return Ok(None),
            },
        };
        Ok(Some(Reported { seq, time, state }))
    }

    /// A journal entry: its action and the event as JSON.
    pub fn journal_entry(&self, seq: i64) -> Result<Option<(String, serde_json::Value)>> {
        self.conn
            .query_row(
                "SELECT action, vigil_event(seq, event) FROM journal WHERE seq = ?1",
                [seq],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
            .map(|o| o.map(|(a, e)| (a, serde_json::from_str(&e).unwrap_or_default())))
    }

    // -- accepts ------------------------------------------------------------

    /// Records an accept.
    pub fn record_accept(
        &self,
        who: &Who,
        path: &str,
        journal_seq: Option<i64>,
        reason: &str,
        before: Option<&FileState>,
        after: Option<&FileState>,
    ) -> Result<i64> {
        let js = |s: Option<&FileState>| s.and_then(|s| serde_json::to_string(s).ok());
        self.conn
            .execute(
                "INSERT INTO accepts (time, who, uid, login_uid, path, journal_seq, reason, before, after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    now(),
                    who.name,
                    who.uid,
                    who.login_uid,
                    path,
                    journal_seq,
                    reason,
                    js(before),
                    js(after)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Accepts of `path`, newest first.
    pub fn accepts_of(&self, path: &str) -> Result<Vec<Accept>> {
        let mut st = self
            .conn
            .prepare("SELECT id, time, who, path, journal_seq, reason FROM accepts WHERE path = ?1 ORDER BY id DESC")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([path], |r| {
                Ok(Accept {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    who: r.get(2)?,
                    path: r.get(3)?,
                    journal_seq: r.get(4)?,
                    reason: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

/// The paths a walk has seen, in a temporary table (on disk when large, so a
/// scan of a million files does not hold them all in memory).
impl Store {
    pub fn seen_reset(&self) -> Result<()> {
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY) WITHOUT ROWID; DELETE FROM temp.seen;",
            )
            .map_err(|e| self.err(e))
    }

    pub fn seen_add(&self, path: &str) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO temp.seen (path) VALUES (?1)")
            .and_then(|mut st| st.execute([path]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Paths at or under `root` that the journal has file events on (as path
    /// or target), that are neither in the baseline nor seen by the walk:
    /// files created after the baseline that may since have gone.
    pub fn reported_unseen_under(&self, root: &Path) -> Result<Vec<String>> {
        let (root, prefix, end) = subtree(root);
        let mut st = self
            .conn
            .prepare(
                "SELECT p FROM (
                   SELECT path AS p FROM journal WHERE kind = 'file' AND (path = ?1 OR (path >= ?2 AND path < ?3))
                   UNION
                   SELECT target_path FROM journal WHERE kind = 'file' AND (target_path = ?1 OR (target_path >= ?2 AND target_path < ?3)))
                 WHERE p NOT IN (SELECT path FROM temp.seen) AND p NOT IN (SELECT path FROM files)
                 ORDER BY p",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![root, prefix, end], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Whether the baseline holds `root` or anything under it.
    pub fn has_rows_under(&self, root: &Path) -> Result<bool> {
        let (root, prefix, end) = subtree(root);
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM files WHERE path = ?1 OR (path >= ?2 AND path < ?3))",
                params![root, prefix, end],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Baseline rows at or under `root` that the walk did not see.
    pub fn unseen_under(&self, root: &Path) -> Result<Vec<FileRow>> {
        let (root, prefix, end) = subtree(root);
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE (path = ?1 OR (path >= ?2 AND path < ?3))
                   AND path NOT IN (SELECT path FROM temp.seen) ORDER BY path"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![root, prefix, end], file_row)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (row, mac) = r.map_err(|e| self.err(e))?;
            self.check_row(&row, mac.as_deref());
            out.push(row);
        }
        Ok(out)
    }
}

/// `root` and the bounds of the paths under it, for
/// `path = ?1 OR (path >= ?2 AND path < ?3)`: an index range instead of a
/// LIKE, which would also need escaping ('0' sorts right after '/', ']'
/// right after Windows' '\').
fn subtree(root: &Path) -> (String, String, String) {
    const SEP: char = std::path::MAIN_SEPARATOR;
    const AFTER_SEP: char = if SEP == '/' { '0' } else { ']' };
    let root = root.to_string_lossy().into_owned();
    let prefix = format!("{}{SEP}", root.trim_end_matches(SEP));
    let end = format!("{}{AFTER_SEP}", &prefix[..prefix.len() - 1]);
    (root, prefix, end)
}

const FILE_COLUMNS: &str = "path, type, size, mode, uid, gid, mtime, ctime, inode, nlink, link_target, xattrs, blake3, sha256, hash_note, watch, verified_at, updated_at, mac, owner, acl";

/// A row of `files` and its MAC.
fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(FileRow, Option<String>)> {
    let mut hashes = BTreeMap::new();
    if let Some(h) = r.get::<_, Option<String>>(12)? {
        hashes.insert("blake3".to_string(), h);
    }
    if let Some(h) = r.get::<_, Option<String>>(13)? {
        hashes.insert("sha256".to_string(), h);
    }
    let xattrs: String = r.get(11)?;
    Ok((
        FileRow {
            path: r.get(0)?,
            state: FileState {
                file_type: file_type(&r.get::<_, String>(1)?),
                size: r.get::<_, i64>(2)? as u64,
                mode: r.get(3)?,
                uid: r.get(4)?,
                gid: r.get(5)?,
                mtime: r.get(6)?,
                ctime: r.get(7)?,
                inode: r.get::<_, i64>(8)? as u64,
                nlink: r.get::<_, i64>(9)? as u64,
                link_target: r.get(10)?,
                xattrs: serde_json::from_str(&xattrs).unwrap_or_default(),
                owner: r.get(19)?,
                acl: r.get(20)?,
                hashes,
                hash_note: r.get(14)?,
            },
            watch: r.get(15)?,
            verified_at: r.get(16)?,
            updated_at: r.get(17)?,
        },
        r.get(18)?,
    ))
}

/// The static name of a file type as stored.
pub fn file_type(s: &str) -> &'static str {
    const TYPES: [&str; 8] = [
        "file", "dir", "symlink", "fifo", "socket", "char", "block", "unknown",
    ];
    TYPES
        .iter()
        .find(|t| **t == s)
        .copied()
        .unwrap_or("unknown")
}

/// A [`FileState`] from its JSON form (an event's `before`/`after`).
pub fn state_from_json(v: &serde_json::Value) -> Option<FileState> {
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let n = |k: &str| o.get(k).and_then(|v| v.as_u64());
    let map = |k: &str| -> BTreeMap<String, String> {
        o.get(k)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    Some(FileState {
        file_type: file_type(&s("type")?),
        size: n("size")?,
        mode: s("mode")?,
        uid: n("uid")? as u32,
        gid: n("gid")? as u32,
        mtime: s("mtime")?,
        ctime: s("ctime")?,
        inode: n("inode")?,
        nlink: n("nlink")?,
        link_target: s("link_target"),
        xattrs: map("xattrs"),
        owner: s("owner"),
        acl: s("acl"),
        hashes: map("hashes"),
        hash_note: s("hash_note"),
    })
}

/// Turns an SQLite error into one that names the file and says what to do.
fn explain(path: &Path, e: rusqlite::Error) -> StoreError {
    let code = e.sqlite_error_code();
    let message = match code {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => format!(
            "is locked by another process ({e}): wait for the other vigil (a scan, baseline or the daemon) to finish, or stop it"
        ),
        Some(ErrorCode::NotADatabase) => format!(
            "is not a Vigil database ({e}): move it away or pass --db"
        ),
        Some(ErrorCode::DatabaseCorrupt) => format!(
            "is corrupt ({e}): restore it from a backup, or move it away and run `vigil baseline init`"
        ),
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) | Some(ErrorCode::ReadOnly) => format!(
            "cannot be opened for writing ({e}): run as root or pass --db"
        ),
        Some(ErrorCode::DiskFull) => format!("cannot be written: the disk is full ({e})"),
        _ => format!("database error: {e}"),
    };
    StoreError {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests;
