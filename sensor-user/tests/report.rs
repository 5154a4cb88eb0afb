//! `vigil query` and `vigil report` (the built binary) on a real store:
//! `vigil baseline init` of a temporary tree, realtime and sensor events
//! journaled through the store API as `vigil run` journals them, changes
//! made behind the sensor's back, `vigil scan`; then the query filters,
//! read-only `--sql`, the JSON report (counts, unattributed first, scans,
//! coverage, gaps, downtime) and the HTML report rendered by headless
//! Chromium, whose DOM must hold the alert rows, the charts, and a hostile
//! file name as text only.
// Linux: root, tmpfs, unix modes and rsyslogd; Windows is tested under Wine (xtask wine-test).
#![cfg(target_os = "linux")]
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use vigil::event::{Event, Process, SensorInfo, Source};
use vigil::rules::RuleSet;
use vigil::scan::{finding_event, Finding, Subject};
use vigil::store::Store;

/// A file name an attacker chose: it must stay text in the HTML report.
const HOSTILE: &str = "<img src=x onerror=alert(1)>.txt";

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tree: PathBuf,
    policy: PathBuf,
    db: PathBuf,
}

impl Env {
    fn vigil(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .arg("--config")
            .arg(&self.policy)
            .arg("--db")
            .arg(&self.db)
            .output()
            .expect("running vigil")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.vigil(args);
        assert!(
            out.status.success(),
            "vigil {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn err(&self, args: &[&str]) -> String {
        let out = self.vigil(args);
        assert!(!out.status.success(), "vigil {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `vigil query --json ARGS`: the events.
    fn query(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["query", "--json"];
        a.extend_from_slice(args);
        self.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn p(&self, rel: &str) -> String {
        self.tree.join(rel).display().to_string()
    }
}

fn paths(evs: &[Value]) -> Vec<&str> {
    evs.iter()
        .map(|e| e["path"].as_str().unwrap_or("(sensor)"))
        .collect()
}

/// A realtime event as the sensor emits it: `vim` run by root, logged in as alice.
fn realtime(path: &str, action: &'static str, time: Option<String>) -> Event {
    let process = Arc::new(Process {
        pid: 4242,
        tid: 4242,
        ppid: 1,
        exe: Some("/usr/bin/vim.basic".into()),
        cmdline: Some(format!("vim {path}")),
        comm: "vim".into(),
        user: Some("root".into()),
        login_uid: Some(1000),
        login_user: Some("alice".into()),
        start_time: "2026-11-26T00:00:00.000000000Z".into(),
        ..Default::default()
    });
    let subject = Subject {
        path: path.into(),
        watch: None,
        before: None,
        after: None,
    };
    let finding = Finding {
        action,
        fields_changed: vec!["hashes".into()],
    };
    let mut ev = finding_event("testhost", subject, finding, process, Default::default());
    ev.file_mut().unwrap().source = Source {
        tier: "tracepoint",
        syscall: "write",
        decided_by: "inode",
    };
    if let Some(t) = time {
        ev.time = t.into();
    }
    ev
}

fn sensor(action: &'static str, lost: Option<u64>) -> Event {
    vigil::pipeline::emit::sensor_event(
        "testhost",
        action,
        SensorInfo {
            lost,
            lost_reason: lost.map(|_| "ring buffer full"),
            message: lost.map(|_| "the kernel dropped events".into()),
            ..Default::default()
        },
    )
}

/// Journals events as `vigil run` does: rules first.
fn journal(db: &Path, events: Vec<Event>) {
    let rules = RuleSet::load(&[]).unwrap();
    let store = Store::open(db).unwrap();
    store.begin().unwrap();
    for mut ev in events {
        rules.evaluate(&mut ev);
        let line = serde_json::to_string(&ev).unwrap();
        store.journal_rendered(&ev, &line).unwrap();
    }
    store.commit().unwrap();
}

/// The tree, a baseline, a sensor run that saw one change (and lost some
/// events), changes made while it was stopped, and a scan.
fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let tree = root.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    for (name, content) in [
        ("seen.conf", "seen=1\n"),
        ("suid.sh", "#!/bin/sh\n"),
        ("gone.conf", "gone=1\n"),
        ("quiet.txt", "unchanged\n"),
    ] {
        std::fs::write(tree.join(name), content).unwrap();
    }
    let policy = root.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[watch]]\npath = \"{}\"\n[sensor]\nhost = \"testhost\"\n",
            tree.display()
        ),
    )
    .unwrap();
    let env = Env {
        db: root.join("vigil.db"),
        _dir: dir,
        root,
        tree,
        policy,
    };
    env.ok(&["baseline", "init"]);

    // Thirty days ago, outside a weekly report.
    let old = vigil::query::stamp(chrono::Utc::now() - chrono::Duration::days(30));
    let mut events = vec![realtime(&env.p("old.txt"), "modified", Some(old))];
    // The sensor runs, sees one change, loses some events, stops and starts again.
    std::fs::write(env.tree.join("seen.conf"), "seen=2\n").unwrap();
    events.push(sensor("start", None));
    events.push(realtime(&env.p("seen.conf"), "modified", None));
    events.push(sensor("gap", Some(7)));
    events.push(sensor("stop", None));
    journal(&env.db, events);
    // While it is stopped: a setuid chmod, a deletion, a created file with a hostile name.
    std::fs::set_permissions(
        env.tree.join("suid.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::remove_file(env.tree.join("gone.conf")).unwrap();
    std::fs::write(env.tree.join(HOSTILE), "x\n").unwrap();
    journal(&env.db, vec![sensor("start", None)]);
    env.ok(&["scan"]);
    env
}

#[test]
fn query_filters_sql_and_reports() {
    let env = setup();

    // -- query: filters -------------------------------------------------
    let all = env.query(&[]);
    assert_eq!(all.len(), 10, "{:#?}", paths(&all));
    // In journal order (the event's own `seq` is per sensor run; these were
    // journaled in time order).
    let times: Vec<&str> = all.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:#?}"
    );

    let seen = env.query(&["--path", "**/seen.conf"]);
    assert_eq!(seen.len(), 2, "realtime event and scan finding");
    assert_eq!(seen[0]["source"]["tier"], "tracepoint");
    assert_eq!(seen[1]["source"]["tier"], "scan");
    assert_eq!(
        seen[1]["details"]["unattributed"], false,
        "the sensor saw it"
    );
    assert!(env
        .query(&["--path", &format!("{}/*", env.root.display())])
        .is_empty());

    let deleted = env.query(&["--action", "deleted"]);
    assert_eq!(paths(&deleted), [env.p("gone.conf")]);
    let two = env.query(&["--action", "deleted,permissions_changed"]);
    // Deletions are found after the walk.
    assert_eq!(paths(&two), [env.p("suid.sh"), env.p("gone.conf")]);

    for p in ["vim", "/usr/bin/*", "vim.basic"] {
        let by_proc = env.query(&["--process", p]);
        assert_eq!(
            paths(&by_proc),
            [env.p("old.txt"), env.p("seen.conf")],
            "--process {p}"
        );
    }
    assert_eq!(env.query(&["--user", "alice"]).len(), 2);
    assert_eq!(env.query(&["--user", "1000"]).len(), 2);
    assert!(env.query(&["--user", "bob"]).is_empty());

    let week = env.query(&["--since", "7d"]);
    assert_eq!(week.len(), 9, "all but the old event");
    let old = env.query(&["--until", "10d"]);
    assert_eq!(paths(&old), [env.p("old.txt")]);

    let high = env.query(&["--severity", "high"]);
    for e in &high {
        let s = e["severity"].as_str().unwrap();
        assert!(s == "high" || s == "critical", "{e}");
    }
    assert!(
        paths(&high).contains(&env.p("gone.conf").as_str()),
        "unattributed are high"
    );
    let alerts = env.query(&["--alert"]);
    assert!(alerts.iter().all(|e| e["alert"] == true));
    assert!(
        paths(&alerts).contains(&env.p("suid.sh").as_str()),
        "setuid rule"
    );
    assert!(
        alerts.iter().any(|e| e["action"] == "gap"),
        "sensor-gap rule"
    );

    let last = env.query(&["--limit", "2"]);
    assert_eq!(last, all[all.len() - 2..], "--limit keeps the newest");

    // JSON output is the stored event, verbatim.
    let stored = env.ok(&["query", "--json", "--action", "deleted"]);
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    vigil::store::register_functions(&conn).unwrap();
    let raw: String = conn
        .query_row(
            "SELECT vigil_event(seq, event) FROM journal WHERE action = 'deleted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, format!("{raw}\n"));

    let table = env.ok(&["query", "--table", "--action", "deleted"]);
    assert!(
        table.contains("seq") && table.contains("gone.conf"),
        "{table}"
    );
    assert!(table.contains("(scan: unattributed)"), "{table}");
    assert!(!table.contains(" 0 "), "no uid for a scan finding: {table}");
    assert!(table.contains("1 events"), "{table}");

    // -- query: bad input -----------------------------------------------
    let e = env.err(&["query", "--since", "last tuesday"]);
    assert!(
        e.contains("--since \"last tuesday\"") && e.contains("7d"),
        "{e}"
    );
    let e = env.err(&["query", "--path", "/etc/{a"]);
    assert!(e.contains("--path") && e.contains("glob"), "{e}");
    let e = env.err(&["query", "--severity", "urgent"]);
    assert!(e.contains("--severity"), "{e}");
    let missing = env.root.join("nope/vigil.db");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["query", "--db"])
        .arg(&missing)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("vigil baseline init"),
        "{e}"
    );
    assert!(!missing.exists(), "a query creates nothing");
    // Not a store: garbage, an empty file, some other program's database.
    let garbage = env.root.join("garbage.db");
    std::fs::write(&garbage, "not sqlite at all, just text").unwrap();
    let empty = env.root.join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let foreign = env.root.join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    for (db, want) in [
        (&garbage, "is not a Vigil database"),
        (&empty, "run `vigil baseline init`"),
        (&foreign, "not a Vigil store"),
    ] {
        for cmd in ["query", "report"] {
            let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args([cmd, "--db"])
                .arg(db)
                .output()
                .unwrap();
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{cmd} {}", db.display());
            assert!(
                e.contains(&db.display().to_string()) && e.contains(want),
                "{cmd} {}: {e}",
                db.display()
            );
            assert!(!e.contains("panicked"), "{e}");
        }
    }
    let unknown = env.vigil(&["query", "--action", "exploded"]);
    assert!(unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("actions present"));

    // -- query --sql ----------------------------------------------------
    let rows = env.query(&[
        "--sql",
        "SELECT action, count(*) AS n FROM journal WHERE kind = 'file' GROUP BY action ORDER BY action",
    ]);
    let counts: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().into(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("created".into(), 1),
            ("deleted".into(), 1),
            ("modified".into(), 3),
            ("permissions_changed".into(), 1)
        ]
    );
    let t = env.ok(&[
        "query",
        "--table",
        "--sql",
        "SELECT kind, status FROM scans ORDER BY id",
    ]);
    assert!(t.contains("init") && t.contains("ok"), "{t}");
    let before: i64 = conn
        .query_row("SELECT count(*) FROM scans", [], |r| r.get(0))
        .unwrap();
    let vacuum = env.root.join("copy.db");
    for write in [
        "DELETE FROM scans",
        "INSERT INTO scans (kind, started, paths, status) VALUES ('x', 'x', '[]', 'ok')",
        "UPDATE files SET size = 0",
        "DROP TABLE files",
        "CREATE TABLE t (x)",
        "PRAGMA user_version = 9",
        &format!("VACUUM INTO '{}'", vacuum.display()),
    ] {
        let e = env.err(&["query", "--sql", write]);
        assert!(e.contains("read-only"), "{write}: {e}");
    }
    assert!(!vacuum.exists(), "VACUUM INTO wrote {}", vacuum.display());
    let e = env.err(&["query", "--sql", "SELECT 1; DELETE FROM scans"]);
    assert!(e.contains("one statement"), "{e}");
    let e = env.err(&["query", "--sql", "SELECT * FROM nosuchtable"]);
    assert!(e.contains("no such table"), "{e}");
    let after: i64 = conn
        .query_row("SELECT count(*) FROM scans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);

    // -- report --format json ---------------------------------------------
    let json = env.ok(&["report", "--since", "7d", "--format", "json"]);
    let r: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["schema"], "vigil-report/1");
    assert_eq!(r["host"], "testhost");
    let t = &r["totals"];
    assert_eq!(t["file_changes"], 5, "{t}");
    assert_eq!(t["realtime_changes"], 1, "{t}");
    assert_eq!(t["scan_findings"], 4, "{t}");
    assert_eq!(t["unattributed"], 3, "{t}");
    assert_eq!(t["gaps"], 1, "{t}");
    assert_eq!(t["lost"], 7, "{t}");
    let by_action: Vec<(&str, u64)> = r["by_action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        by_action,
        [
            ("modified", 2),
            ("created", 1),
            ("deleted", 1),
            ("permissions_changed", 1)
        ]
    );
    assert_eq!(r["by_path"][0]["key"], env.p("seen.conf"));
    assert_eq!(r["by_path"][0]["count"], 2);
    assert_eq!(r["by_process"][0]["key"], "(scan: no process)");
    assert_eq!(r["by_process"][0]["count"], 4);
    assert_eq!(r["by_process"][1]["key"], "/usr/bin/vim.basic");
    // Unattributed findings: their own list, and first among the alerts.
    let un: Vec<&str> = r["unattributed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(un.len(), 3);
    for p in [env.p("suid.sh"), env.p("gone.conf"), env.p(HOSTILE)] {
        assert!(un.contains(&p.as_str()), "{p} in {un:?}");
    }
    let alerts = r["alerts"].as_array().unwrap();
    assert!(alerts.len() >= 2, "{alerts:#?}");
    assert_eq!(alerts[0]["unattributed"], true, "{alerts:#?}");
    let first_plain = alerts.iter().position(|a| a["unattributed"] == false);
    if let Some(i) = first_plain {
        assert!(alerts[i..].iter().all(|a| a["unattributed"] == false));
    }
    assert!(alerts.iter().any(|a| a["action"] == "gap"));
    let scans: Vec<&str> = r["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(scans, ["init", "scan"]);
    let cov = &r["coverage"];
    assert_eq!(cov["baseline_files"], 5, "root dir and four files: {cov}");
    assert_eq!(cov["comparison_scans_ok"], 1);
    // The scan found the root and quiet.txt as recorded; the rest changed
    // (the init only recorded them: that is not a verification).
    assert_eq!(cov["verified_in_period"], 2, "{cov}");
    assert_eq!(cov["not_verified"], 3, "{cov}");
    assert_eq!(cov["changed_in_period"], 4, "{cov}");
    assert_eq!(r["sensor"]["gaps"][0]["action"], "gap");
    let downtime = r["sensor"]["downtime"].as_array().unwrap();
    assert_eq!(downtime.len(), 1, "{downtime:#?}");
    assert_eq!(downtime[0]["clean"], true);
    assert!(downtime[0]["to"].is_string());
    assert_eq!(r["timeline"]["bucket"], "day");
    let in_buckets: u64 = r["timeline"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["changes"].as_u64().unwrap())
        .sum();
    assert_eq!(in_buckets, 5);

    // A longer period includes the old change.
    let r60: Value =
        serde_json::from_str(&env.ok(&["report", "--since", "60d", "--format", "json"])).unwrap();
    assert_eq!(r60["totals"]["file_changes"], 6);

    // -- report --format text -------------------------------------------
    let text = env.ok(&["report"]);
    let un_at = text.find("UNATTRIBUTED changes (3)").expect(&text);
    let alerts_at = text.find("== Alerts").expect(&text);
    assert!(un_at < alerts_at, "unattributed first:\n{text}");
    assert!(text.contains("testhost"), "{text}");

    let e = env.err(&["report", "--since", "soon"]);
    assert!(e.contains("--since \"soon\""), "{e}");
    let e = env.err(&["report", "--since", "1d", "--until", "2d"]);
    assert!(e.contains("not before --until"), "{e}");

    // -- report --format html, rendered by Chromium ---------------------
    let html_path = env.root.join("report.html");
    env.ok(&[
        "report",
        "--format",
        "html",
        "--output",
        html_path.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("<link"), "nothing fetched");
    assert!(!html.contains("<img"), "the hostile name is escaped");
    let dom = chromium_dom(&env.root, &html_path);
    assert!(dom.contains("</html>"), "{dom}");
    // The hostile file name is text in the DOM, never an element.
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{dom}"
    );
    let alerts_section = section(&dom, "alerts");
    assert_eq!(
        alerts_section.matches("data-seq=").count(),
        alerts.len(),
        "one row per alert: {alerts_section}"
    );
    let un_section = section(&dom, "unattributed");
    assert_eq!(un_section.matches("data-seq=").count(), 3, "{un_section}");
    let first_seq = format!("data-seq=\"{}\"", r["unattributed"][0]["seq"]);
    assert!(un_section.contains(&first_seq), "{un_section}");
    assert!(
        alerts_section.contains(&format!("data-seq=\"{}\"", alerts[0]["seq"])),
        "{alerts_section}"
    );
    let charts = section(&dom, "charts");
    assert_eq!(charts.matches("class=\"chart\"").count(), 2, "{charts}");
    assert_eq!(charts.matches("<svg").count(), 2, "{charts}");
    assert!(charts.contains("id=\"chart-timeline\""));
    assert!(charts.contains("id=\"chart-processes\""));
    assert!(charts.contains("/usr/bin/vim.basic"), "{charts}");
    assert!(charts.matches("class=\"bar").count() >= 4, "{charts}");
    assert!(charts.contains("class=\"bar unattributed\""), "{charts}");
    for id in ["summary", "scans", "coverage", "sensor", "by-action"] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "#{id}");
    }
}

/// The DOM of `file` after headless Chromium loaded and rendered it.
fn chromium_dom(tmp: &Path, file: &Path) -> String {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: the HTML report test renders the report in headless Chromium; \
         install Debian's chromium package (`apt-get install chromium`; `cargo xtask test` does)"
    );
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--no-pings",
            "--dns-prefetch-disable",
            // Anything Chromium would fetch goes to a dead loopback port: the
            // test makes no network request (the report has nothing to fetch).
            "--proxy-server=127.0.0.1:9",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.join("chromium").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("running chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The `<section id="ID">` of a dumped DOM.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section #{id} in {dom}"));
    let end = dom[start..].find("</section>").unwrap();
    &dom[start..start + end]
}
