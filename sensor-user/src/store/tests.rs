use super::*;
use crate::event::Event;

fn state(size: u64) -> FileState {
    let mut hashes = BTreeMap::new();
    hashes.insert("blake3".into(), "ab".repeat(32));
    FileState {
        file_type: "file",
        size,
        mode: "0644".into(),
        uid: 0,
        gid: 0,
        mtime: "2026-01-01T00:00:00.000000000Z".into(),
        ctime: "2026-01-01T00:00:00.000000000Z".into(),
        inode: 42,
        nlink: 1,
        link_target: None,
        xattrs: [("security.selinux".to_string(), "system_u".to_string())].into(),
        owner: None,
        acl: None,
        hashes,
        hash_note: None,
    }
}

fn event(path: &str, tier: &'static str) -> Event {
    let mut ev = Event::test_file("modified", path, tier);
    ev.seq = 1;
    ev.time = now().into();
    ev.file_mut().unwrap().source.decided_by = "path";
    ev
}

#[test]
fn migrations_are_idempotent_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub/dir/v.db");
    let s = Store::open(&p).unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    s.put_file(&FileRow {
        path: "/etc/passwd".into(),
        state: state(3),
        watch: Some("/etc".into()),
        verified_at: now(),
        updated_at: now(),
    })
    .unwrap();
    drop(s);
    // Reopening runs nothing again and keeps the rows.
    let s = Store::open(&p).unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert_eq!(s.file_count().unwrap(), 1);
    let mode: String = s
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = s
        .conn()
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
}

#[test]
fn file_rows_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("v.db")).unwrap();
    let mut st = state(7);
    st.hashes.insert("sha256".into(), "cd".repeat(32));
    st.link_target = Some("x".into());
    let row = FileRow {
        path: "/etc/a".into(),
        state: st,
        watch: Some("/etc".into()),
        verified_at: "v".into(),
        updated_at: "u".into(),
    };
    s.put_file(&row).unwrap();
    assert_eq!(s.get_file("/etc/a").unwrap(), Some(row.clone()));
    assert_eq!(s.get_file("/etc/b").unwrap(), None);
    // The JSON form (an event's after) converts back to the same state.
    let v = serde_json::to_value(&row.state).unwrap();
    assert_eq!(state_from_json(&v), Some(row.state.clone()));
    let mut under = vec![];
    s.put_file(&FileRow {
        path: "/etcx".into(),
        ..row.clone()
    })
    .unwrap();
    s.paths_under(Path::new("/etc"), |p| under.push(p)).unwrap();
    assert_eq!(under, ["/etc/a"]);
    assert!(s.delete_file("/etc/a").unwrap());
    assert_eq!(s.get_file("/etc/a").unwrap(), None);
}

#[test]
fn journal_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("v.db")).unwrap();
    let seq = s.journal(&event("/etc/a", "scan")).unwrap();
    assert_eq!(seq, 1);
    let upd = s
        .conn()
        .execute("UPDATE journal SET action = 'x' WHERE seq = 1", []);
    let e = upd.expect_err("UPDATE of the journal must fail");
    assert!(e.to_string().contains("append-only"), "{e}");
    let del = s.conn().execute("DELETE FROM journal", []);
    assert!(del.is_err(), "DELETE of the journal must fail");
    let n: i64 = s
        .conn()
        .query_row(
            "SELECT count(*) FROM journal WHERE action = 'modified'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    // Accepts are an audit trail too.
    let who = Who {
        name: "alice".into(),
        uid: 0,
        login_uid: Some(1000),
    };
    s.record_accept(&who, "/etc/a", Some(seq), "CHG-1", None, None)
        .unwrap();
    assert!(s
        .conn()
        .execute("UPDATE accepts SET reason = 'x'", [])
        .is_err());
    assert!(s.conn().execute("DELETE FROM accepts", []).is_err());
}

#[test]
fn realtime_events_attribute_scan_findings() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("v.db")).unwrap();
    let since = now();
    s.journal(&event("/etc/a", "scan")).unwrap();
    assert_eq!(s.realtime_event_since("/etc/a", &since).unwrap(), None);
    let seq = s.journal(&event("/etc/a", "tracepoint")).unwrap();
    assert_eq!(s.realtime_event_since("/etc/a", &since).unwrap(), Some(seq));
    assert_eq!(s.realtime_event_since("/etc/b", &since).unwrap(), None);
    assert_eq!(s.realtime_event_since("/etc/a", &now()).unwrap(), None);
}

#[test]
fn scans_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("v.db")).unwrap();
    let id = s.scan_started("init", &["/etc".into()], false).unwrap();
    assert_eq!(s.scan(id).unwrap().unwrap().status, "running");
    assert_eq!(s.last_baseline().unwrap(), None);
    s.scan_finished(id, "ok", 10, 0, 0, None).unwrap();
    let row = s.scan(id).unwrap().unwrap();
    assert_eq!((row.files_seen, row.status.as_str()), (10, "ok"));
    assert_eq!(row.paths, ["/etc"]);
    assert!(s.last_baseline().unwrap().is_some());
}

#[test]
fn garbage_file_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.db");
    std::fs::write(&p, vec![0x5au8; 8192]).unwrap();
    let e = Store::open(&p).err().expect("a garbage file must not open");
    let msg = e.to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(msg.contains("is not a Vigil database"), "{msg}");
    assert!(msg.contains("move it away or pass --db"), "{msg}");
    // Nothing was written over it.
    assert_eq!(std::fs::read(&p).unwrap(), vec![0x5au8; 8192]);
}

#[test]
fn other_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.db");
    Connection::open(&p)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let msg = Store::open(&p).err().unwrap().to_string();
    assert!(msg.contains("not a Vigil store"), "{msg}");
}

#[test]
fn corrupt_page_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.db");
    drop(Store::open(&p).unwrap());
    // Keep the SQLite header, trash the schema page.
    let mut bytes = std::fs::read(&p).unwrap();
    let _ = std::fs::remove_file(dir.path().join("v.db-wal"));
    for b in bytes.iter_mut().skip(100) {
        *b = 0xff;
    }
    std::fs::write(&p, &bytes).unwrap();
    let msg = Store::open(&p).err().expect("corrupt").to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(
        msg.contains("is corrupt") || msg.contains("is not a Vigil database"),
        "{msg}"
    );
}

#[test]
fn locked_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.db");
    drop(Store::open(&p).unwrap());
    let holder = Connection::open(&p).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let e = Store::open_with_timeout(&p, Duration::from_millis(100))
        .err()
        .expect("a locked store must not open");
    let msg = e.to_string();
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(msg.contains("is locked by another process"), "{msg}");
    holder.execute_batch("COMMIT").unwrap();
    Store::open_with_timeout(&p, Duration::from_millis(100)).unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.db");
    drop(Store::open(&p).unwrap());
    Connection::open(&p)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let msg = Store::open(&p).err().unwrap().to_string();
    assert!(msg.contains("newer Vigil"), "{msg}");
}

fn row(path: &str) -> FileRow {
    FileRow {
        path: path.into(),
        state: state(10),
        watch: Some("/etc".into()),
        verified_at: now(),
        updated_at: now(),
    }
}

#[test]
fn row_macs_catch_edited_forged_and_unsealed_rows_but_not_verification() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.db");
    let key = [7u8; 32];
    let s = Store::open(&p).unwrap().with_row_mac(&key);
    for name in ["/etc/a", "/etc/b", "/etc/c"] {
        s.put_file(&row(name)).unwrap();
    }
    assert_eq!(s.verify_rows().unwrap(), (3, vec![]));
    // A scan that finds a file as recorded only moves verified_at.
    s.mark_verified("/etc/a", "2030-01-01T00:00:00Z").unwrap();
    assert!(s.get_file("/etc/a").unwrap().is_some());
    assert!(s.take_tampered().is_empty());

    // Edited behind Vigil's back: a hash, a mode; a row forged without MAC.
    let c = s.conn();
    c.execute(
        "UPDATE files SET blake3 = ?1 WHERE path = '/etc/a'",
        ["cd".repeat(32)],
    )
    .unwrap();
    c.execute("UPDATE files SET mode = '4755' WHERE path = '/etc/b'", [])
        .unwrap();
    c.execute(
        "INSERT INTO files (path, type, size, mode, uid, gid, mtime, ctime, inode, nlink, link_target, xattrs, blake3, sha256, hash_note, watch, verified_at, updated_at, mac)
         SELECT '/etc/forged', type, size, mode, uid, gid, mtime, ctime, inode, nlink,
            link_target, xattrs, blake3, sha256, hash_note, watch, verified_at, updated_at, NULL
         FROM files WHERE path = '/etc/c'",
        [],
    )
    .unwrap();
    // A valid row moved to another path: its MAC covers the path.
    c.execute(
        "INSERT INTO files (path, type, size, mode, uid, gid, mtime, ctime, inode, nlink, link_target, xattrs, blake3, sha256, hash_note, watch, verified_at, updated_at, mac)
         SELECT '/etc/moved', type, size, mode, uid, gid, mtime, ctime, inode, nlink,
            link_target, xattrs, blake3, sha256, hash_note, watch, verified_at, updated_at, mac
         FROM files WHERE path = '/etc/c'",
        [],
    )
    .unwrap();
    let (n, bad) = s.verify_rows().unwrap();
    assert_eq!(n, 5);
    let got: Vec<(&str, &str)> = bad.iter().map(|t| (t.path.as_str(), t.reason)).collect();
    assert_eq!(
        got,
        [
            ("/etc/a", "mismatch"),
            ("/etc/b", "mismatch"),
            ("/etc/forged", "missing"),
            ("/etc/moved", "mismatch")
        ]
    );
    // Reads report them too (once each), and still return the row.
    assert!(s.get_file("/etc/a").unwrap().is_some());
    s.get_file("/etc/a").unwrap();
    s.get_file("/etc/c").unwrap();
    assert_eq!(
        s.take_tampered(),
        [Tampered {
            path: "/etc/a".into(),
            reason: "mismatch"
        }]
    );
    // Re-recording re-seals.
    s.put_file(&row("/etc/a")).unwrap();
    s.get_file("/etc/a").unwrap();
    assert!(s.take_tampered().is_empty());

    // Another key: every row fails. No key: nothing is checked.
    drop(s);
    let other = Store::open(&p).unwrap().with_row_mac(&[8u8; 32]);
    assert_eq!(other.verify_rows().unwrap().1.len(), 5);
    let none = Store::open(&p).unwrap();
    assert!(none.verify_rows().unwrap().1.is_empty());
}

/// Windows owner and DACL: stored, read back, covered by the MAC; a row
/// without them keeps the MAC it had before they existed.
#[test]
fn owner_and_acl_are_stored_and_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.db");
    let key = [7u8; 32];
    let s = Store::open(&p).unwrap().with_row_mac(&key);
    let mut r = row("C:\\w\\a.exe");
    let plain = row_mac(&key, &r);
    r.state.owner = Some("S-1-5-32-544".into());
    r.state.acl = Some("D:PAI(A;;FA;;;SY)(A;;FA;;;BA)".into());
    assert_ne!(row_mac(&key, &r), plain, "the MAC covers owner and acl");
    s.put_file(&r).unwrap();
    s.put_file(&row("/etc/plain")).unwrap();
    let back = s.get_file("C:\\w\\a.exe").unwrap().unwrap();
    assert_eq!(back.state, r.state);
    assert_eq!(s.get_file("/etc/plain").unwrap().unwrap().state.owner, None);
    assert_eq!(s.verify_rows().unwrap(), (2, vec![]));
    // The same fields as before the migration: the same MAC.
    let stored: String = s
        .conn()
        .query_row("SELECT mac FROM files WHERE path = '/etc/plain'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut old = row("/etc/plain");
    let back = s.get_file("/etc/plain").unwrap().unwrap();
    old.updated_at = back.updated_at.clone();
    assert_eq!(
        old,
        FileRow {
            verified_at: old.verified_at.clone(),
            ..back
        }
    );
    let sub = blake3::derive_key(ROW_MAC_CONTEXT, &key);
    assert_eq!(stored, row_mac(&sub, &old));
    // What the MAC was before migration 6: the same fields, nothing after.
    let mut h = blake3::Hasher::new_keyed(&sub);
    let s_ = &old.state;
    let xattrs = serde_json::to_string(&s_.xattrs).unwrap();
    let size = s_.size.to_string();
    let (uid, gid) = (s_.uid.to_string(), s_.gid.to_string());
    let (inode, nlink) = (s_.inode.to_string(), s_.nlink.to_string());
    let fields: [Option<&str>; 17] = [
        Some(&old.path),
        Some(s_.file_type),
        Some(&size),
        Some(&s_.mode),
        Some(&uid),
        Some(&gid),
        Some(&s_.mtime),
        Some(&s_.ctime),
        Some(&inode),
        Some(&nlink),
        s_.link_target.as_deref(),
        Some(&xattrs),
        s_.hashes.get("blake3").map(String::as_str),
        s_.hashes.get("sha256").map(String::as_str),
        s_.hash_note.as_deref(),
        old.watch.as_deref(),
        Some(&old.updated_at),
    ];
    for f in fields {
        match f {
            Some(v) => {
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
            None => {
                h.update(&u64::MAX.to_le_bytes());
            }
        }
    }
    assert_eq!(stored, h.finalize().to_hex().to_string());
    s.conn()
        .execute(
            "UPDATE files SET acl = 'D:(A;;FA;;;WD)' WHERE owner IS NOT NULL",
            [],
        )
        .unwrap();
    let (_, bad) = s.verify_rows().unwrap();
    assert_eq!(bad.len(), 1, "an edited DACL fails the MAC: {bad:?}");
}

#[test]
fn blocked_journal_events_read_back_verbatim_across_blocks_and_inline_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("v.db")).unwrap();
    let json = |i: usize| format!(r#"{{"seq":{i},"path":"/etc/f{i}","note":"ü"}}"#);
    s.begin().unwrap();
    let mut seqs = Vec::new();
    for i in 0..BLOCK_EVENTS + 10 {
        seqs.push(
            s.journal_rendered(&event(&format!("/etc/f{i}"), "tracepoint"), &json(i))
                .unwrap(),
        );
        if i == 70 {
            // A row written inline in the same transaction splits the block.
            s.journal(&event("/etc/inline", "scan")).unwrap();
        }
    }
    s.commit().unwrap();
    // One full block, the rest of the run up to the inline row, the tail.
    let blocks: Vec<(i64, i64)> = s
        .conn()
        .prepare("SELECT first_seq, last_seq FROM journal_blocks ORDER BY first_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(blocks, [(1, 64), (65, 71), (73, 75)]);
    for (i, seq) in seqs.iter().enumerate() {
        let (action, ev) = s.journal_entry(*seq).unwrap().unwrap();
        assert_eq!(action, "modified");
        assert_eq!(
            ev,
            serde_json::from_str::<serde_json::Value>(&json(i)).unwrap()
        );
        let verbatim: String = s
            .conn()
            .query_row(
                "SELECT vigil_event(seq, event) FROM journal WHERE seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(verbatim, json(i));
    }
    let (_, inline) = s.journal_entry(72).unwrap().unwrap();
    assert_eq!(inline["path"], "/etc/inline");
    // In SQL, in any order, through the function.
    let paths: Vec<String> = s
        .conn()
        .prepare(
            "SELECT json_extract(vigil_event(seq, event), '$.path') FROM journal ORDER BY seq DESC",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(paths.len(), BLOCK_EVENTS + 11);
    assert_eq!(paths[0], format!("/etc/f{}", BLOCK_EVENTS + 9));
    assert_eq!(paths[3], "/etc/inline");
    // Outside a transaction, the event is stored in its row.
    let seq = s
        .journal_rendered(&event("/etc/late", "tracepoint"), &json(99))
        .unwrap();
    let inline: String = s
        .conn()
        .query_row("SELECT event FROM journal WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(inline, json(99));
    // Blocks are append-only too.
    assert!(s.conn().execute("DELETE FROM journal_blocks", []).is_err());
    assert!(s
        .conn()
        .execute("UPDATE journal_blocks SET events = x'00'", [])
        .is_err());
}

#[test]
fn a_journal_event_whose_block_is_missing_or_garbled_is_an_error_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("v.db")).unwrap();
    s.begin().unwrap();
    let seq = s
        .journal_rendered(&event("/etc/a", "tracepoint"), "{}")
        .unwrap();
    // The block is written only at commit: force the row out without it.
    s.pending.borrow_mut().clear();
    s.commit().unwrap();
    let e = s.journal_entry(seq).unwrap_err().to_string();
    assert!(
        e.contains(&format!("journal entry {seq}")) && e.contains("no journal block"),
        "{e}"
    );
    s.begin().unwrap();
    let seq = s
        .journal_rendered(&event("/etc/b", "tracepoint"), "{}")
        .unwrap();
    s.pending.borrow_mut().clear();
    s.conn()
        .execute(
            "INSERT INTO journal_blocks (first_seq, last_seq, events) VALUES (?1, ?1, x'28b52ffd00')",
            [seq],
        )
        .unwrap();
    s.commit().unwrap();
    let e = s.journal_entry(seq).unwrap_err().to_string();
    assert!(
        e.contains(&format!("journal entry {seq}")) && e.contains("does not decompress"),
        "{e}"
    );
}
