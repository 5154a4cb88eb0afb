//! `vigil baseline` and `vigil scan` (the built binary) on a temporary tree:
//! init, then modify, chmod, delete, create, replace via rename and
//! timestomp; the scan reports each with the right action and
//! `fields_changed`, in events that match the native JSON Schema and are
//! journaled; accepting (by path and by change id) silences a finding;
//! `--metadata-only` still finds the chmod; bad stores are clear errors.
// Linux: root, tmpfs, unix modes and rsyslogd; Windows is tested under Wine (xtask wine-test).
#![cfg(target_os = "linux")]
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tree: PathBuf,
    policy: PathBuf,
    db: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let tree = root.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        for (name, content) in [
            ("a.txt", "alpha\n"),
            ("b.sh", "#!/bin/sh\necho beta\n"),
            ("c.conf", "gamma=1\n"),
            ("e.conf", "echo=1\n"),
            ("f.bin", "foxtrot-original\n"),
            ("sub/g", "golf\n"),
            ("skip.swp", "ignored\n"),
        ] {
            std::fs::write(tree.join(name), content).unwrap();
        }
        let policy = root.join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "[[watch]]\npath = \"{}\"\nignore = [\"**/*.swp\"]\n[hash]\nsha256 = [\"**/*.conf\"]\n",
                tree.display()
            ),
        )
        .unwrap();
        Env {
            db: root.join("store/vigil.db"),
            _dir: dir,
            root,
            tree,
            policy,
        }
    }

    fn vigil(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.args(args)
            .arg("--config")
            .arg(&self.policy)
            .arg("--db")
            .arg(&self.db);
        c.output().expect("running vigil")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.vigil(args);
        assert!(
            out.status.success(),
            "vigil {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a scan into a fresh output file; events by path.
    fn scan(&self, name: &str, extra: &[&str]) -> BTreeMap<String, Value> {
        let out = self.root.join(format!("{name}.ndjson"));
        let mut args = vec!["scan", "--output", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(&args);
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let validator = validator();
        let mut by_path = BTreeMap::new();
        for line in text.lines() {
            let ev: Value = serde_json::from_str(line).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&ev)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{line}\n{errors:#?}");
            let path = ev["path"].as_str().unwrap().to_string();
            assert!(
                by_path.insert(path.clone(), ev).is_none(),
                "two events for {path}"
            );
        }
        by_path
    }

    fn p(&self, rel: &str) -> String {
        self.tree.join(rel).display().to_string()
    }
}

fn validator() -> jsonschema::Validator {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema/vigil-event.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn fields(ev: &Value) -> Vec<&str> {
    ev["fields_changed"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// The changes an intruder makes while the sensor is stopped.
fn tamper(env: &Env) {
    let t = &env.tree;
    // Content.
    std::fs::write(t.join("a.txt"), "alpha, changed\n").unwrap();
    // Permissions.
    std::fs::set_permissions(t.join("b.sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    // Deletion and creation.
    std::fs::remove_file(t.join("c.conf")).unwrap();
    std::fs::write(t.join("d.new"), "new file\n").unwrap();
    // Replace via rename (what editors and package managers do).
    std::fs::write(t.join(".e.conf.tmp"), "echo=2\n").unwrap();
    std::fs::rename(t.join(".e.conf.tmp"), t.join("e.conf")).unwrap();
    // Timestomp: same size, new bytes, mtime put back.
    let f = t.join("f.bin");
    let old = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::fs::write(&f, "foxtrot-tampered\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(old))
        .unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), old);
    // An ignored file changes: never reported.
    std::fs::write(t.join("skip.swp"), "still ignored\n").unwrap();
}

#[test]
fn scan_reports_each_change_and_accept_silences_it() {
    let env = Env::new();
    env.ok(&["baseline", "init"]);
    // Nothing changed: nothing to report.
    assert_eq!(env.scan("clean", &[]).len(), 0);
    // A second init refuses to overwrite the baseline.
    let again = env.vigil(&["baseline", "init"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("baseline update"));

    tamper(&env);
    let evs = env.scan("first", &[]);
    let got: BTreeMap<&str, &str> = evs
        .iter()
        .map(|(p, e)| (p.as_str(), e["action"].as_str().unwrap()))
        .collect();
    let want: BTreeMap<String, &str> = [
        ("a.txt", "modified"),
        ("b.sh", "permissions_changed"),
        ("c.conf", "deleted"),
        ("d.new", "created"),
        ("e.conf", "modified"),
        ("f.bin", "modified"),
    ]
    .into_iter()
    .map(|(p, a)| (env.p(p), a))
    .collect();
    let got_owned: BTreeMap<String, &str> = got.iter().map(|(p, a)| (p.to_string(), *a)).collect();
    assert_eq!(
        got_owned, want,
        "directories and ignored files are not reported"
    );

    let a = &evs[&env.p("a.txt")];
    assert!(
        fields(a).contains(&"hashes") && fields(a).contains(&"size"),
        "{a}"
    );
    let b = &evs[&env.p("b.sh")];
    assert_eq!(b["after"]["mode"], "4755");
    assert!(
        fields(b).contains(&"mode") && !fields(b).contains(&"hashes"),
        "{b}"
    );
    let c = &evs[&env.p("c.conf")];
    assert!(
        c["after"].is_null() && c["before"]["hashes"]["sha256"].is_string(),
        "{c}"
    );
    let d = &evs[&env.p("d.new")];
    assert!(
        d["before"].is_null() && d["after"]["hashes"]["blake3"].is_string(),
        "{d}"
    );
    let e = &evs[&env.p("e.conf")];
    assert!(
        fields(e).contains(&"inode") && fields(e).contains(&"hashes"),
        "{e}"
    );
    assert_eq!(e["details"]["replaced"], true);
    let f = &evs[&env.p("f.bin")];
    assert!(
        fields(f).contains(&"hashes") && fields(f).contains(&"ctime"),
        "the timestomp is found by hash and ctime: {f}"
    );
    assert!(!fields(f).contains(&"mtime"), "mtime was put back: {f}");
    for ev in evs.values() {
        assert_eq!(ev["source"]["tier"], "scan");
        assert_eq!(
            ev["details"]["unattributed"], true,
            "no realtime sensor ran"
        );
        assert_eq!(ev["severity"], "high", "unattributed is high: {ev}");
        assert!(ev["details"]["scan_id"].as_i64().unwrap() > 0);
    }

    // Everything emitted is in the journal, and the scans are recorded.
    let db = rusqlite::Connection::open(&env.db).unwrap();
    let journaled: Vec<(i64, String, String)> = db
        .prepare("SELECT seq, path, action FROM journal WHERE tier = 'scan' ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(journaled.len(), 6, "{journaled:?}");
    let scans: Vec<(String, String, i64)> = db
        .prepare("SELECT kind, status, changes FROM scans ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        scans,
        [
            ("init".into(), "ok".into(), 0),
            ("scan".into(), "ok".into(), 0),
            ("scan".into(), "ok".into(), 6)
        ]
    );

    // --metadata-only: no hashing, the chmod is still found.
    let meta = env.scan("meta", &["--metadata-only"]);
    assert_eq!(meta[&env.p("b.sh")]["action"], "permissions_changed");
    // The chmod moved ctime, so the content is not vouched for: no digest.
    assert!(
        meta[&env.p("b.sh")]["after"].get("hashes").is_none(),
        "not hashed"
    );
    assert_eq!(meta[&env.p("a.txt")]["action"], "modified");
    assert!(
        meta.contains_key(&env.p("f.bin")),
        "the timestomp moved ctime"
    );
    assert!(!meta.contains_key(&env.p("sub/g")), "unchanged");

    // Accept a.txt by path and b.sh by change id: neither is reported again.
    env.ok(&[
        "baseline",
        "accept",
        &env.p("a.txt"),
        "--reason",
        "CHG-1 approved",
    ]);
    let b_seq = journaled
        .iter()
        .find(|(_, p, _)| *p == env.p("b.sh"))
        .unwrap()
        .0;
    env.ok(&[
        "baseline",
        "accept",
        &b_seq.to_string(),
        "--reason",
        "CHG-2",
    ]);
    let after = env.scan("after-accept", &[]);
    assert!(!after.contains_key(&env.p("a.txt")), "{after:?}");
    assert!(!after.contains_key(&env.p("b.sh")), "{after:?}");
    assert_eq!(after.len(), 4, "the others are still reported");

    // Who, when and why are recorded; show prints them.
    let show = env.ok(&["baseline", "show", &env.p("a.txt"), "--json"]);
    let row: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(row["state"]["size"], 15);
    assert_eq!(row["accepts"][0]["reason"], "CHG-1 approved");
    assert!(!row["accepts"][0]["who"].as_str().unwrap().is_empty());
    let table = env.ok(&["baseline", "show", &env.p("b.sh")]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("mode         4755"), "{table}");
    assert!(
        table.contains(&format!("(change {b_seq}): CHG-2")),
        "{table}"
    );

    // Accepting a deletion removes the row; update re-baselines the rest.
    env.ok(&[
        "baseline",
        "accept",
        &env.p("c.conf"),
        "--reason",
        "retired",
    ]);
    assert!(!env.scan("after-delete", &[]).contains_key(&env.p("c.conf")));
    env.ok(&["baseline", "update"]);
    assert_eq!(env.scan("after-update", &[]).len(), 0);
}

#[test]
fn paths_limit_the_scan() {
    let env = Env::new();
    env.ok(&["baseline", "init"]);
    tamper(&env);
    std::fs::write(env.tree.join("sub/g"), "golf, changed\n").unwrap();
    let sub = env.tree.join("sub").display().to_string();
    let evs = env.scan("sub", &["--paths", &sub]);
    assert_eq!(evs.keys().collect::<Vec<_>>(), [&env.p("sub/g")]);
}

#[test]
fn bad_stores_are_clear_errors() {
    let env = Env::new();
    // Scanning without a baseline says what to do.
    let out = env.vigil(&["scan"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vigil baseline init"), "{err}");

    // A file that is not a database: named, with the way out, no panic.
    let junk = env.root.join("junk.db");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["baseline", "show", "/x", "--db"])
        .arg(&junk)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: is not a Vigil database", junk.display())),
        "{err}"
    );
    assert!(err.contains("move it away or pass --db"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A store another process holds locked.
    env.ok(&["baseline", "init"]);
    let holder = rusqlite::Connection::open(&env.db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = env.vigil(&["scan"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is locked by another process"), "{err}");
    assert!(err.contains(&env.db.display().to_string()), "{err}");
    holder.execute_batch("COMMIT").unwrap();
}
