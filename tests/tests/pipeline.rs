//! The pipeline on real kernel events: coalescing, hashes, before/after, diffs.
//! One sensor serves every test here; each test works in its own directory.
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use vigil_tests::Sensor;

const TESTOP: &str = env!("CARGO_BIN_EXE_vigil-testop");

struct Shared {
    sensor: Sensor,
    watched: PathBuf,
    base: PathBuf,
}

// SAFETY of sharing: Sensor is only read (its output file) after start.
fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let base = vigil_tests::kept_dir("vigil-pipeline-");
        let watched = base.join("w");
        std::fs::create_dir(&watched).unwrap();
        // Exists before the sensor starts: read by the pipeline's start-up seed.
        std::fs::create_dir(watched.join("seeded")).unwrap();
        std::fs::write(watched.join("seeded/motd"), "welcome\n").unwrap();
        let policy = base.join("policy.toml");
        let rules = base.join("local-rules.toml");
        std::fs::write(
            &rules,
            format!(
                r#"
[[rule]]
id = "test-authorized-keys"
description = "SSH authorized_keys changed under the test tree"
severity = "critical"
alert = true
mitre = ["T1098.004"]
pci = ["11.5.2"]
[rule.match]
path = ["{w}/**/authorized_keys"]
"#,
                w = watched.display()
            ),
        )
        .unwrap();
        std::fs::write(
            &policy,
            format!(
                r#"
rules = [{rules:?}]

[[watch]]
path = {w:?}

[[output]]
type = "file"
path = "{b}/ocsf.ndjson"
format = "ocsf"

[[output]]
type = "file"
path = "{b}/ecs.ndjson"
format = "ecs"

[hash]
max_size_mib = 1
sha256 = ["{w}/**/*.bin"]

[diff]
paths = ["{w}/**"]
"#,
                w = watched.display(),
                b = base.display(),
            ),
        )
        .unwrap();
        // The sensor must outlive the test threads: start it from a thread that
        // never ends (PDEATHSIG is tied to the starting thread).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sensor = Sensor::start(
                &["--config", policy.to_str().unwrap()],
                Some(base.join("events.ndjson")),
            );
            let base = base.clone();
            tx.send(Shared {
                sensor,
                watched,
                base,
            })
            .unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("sensor started")
    })
}

/// A fresh directory under the watched root.
fn workdir(name: &str) -> PathBuf {
    let d = shared().watched.join(name);
    std::fs::create_dir(&d).unwrap();
    d
}

fn run(cwd: &Path, program: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{program} {args:?} failed");
    pid
}

fn wait(pred: impl Fn(&Value) -> bool) -> Value {
    shared().sensor.wait_for(pred)
}

fn blake3_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

#[test]
fn sed_in_place_is_one_modified_event_on_the_target_with_the_temp_file_related() {
    let dir = workdir("sed");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n10.0.0.1 db\n").unwrap();
    let pid = run(&dir, "sed", &["-i", "s/db/payments/", "hosts"]);
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["action"], "modified", "{e:#}");
    assert_eq!(e["path"], hosts.display().to_string());
    assert!(
        e["process"]["exe"].as_str().unwrap().ends_with("/sed"),
        "{e:#}"
    );
    let related: Vec<&str> = e["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(related.first(), Some(&"created"), "{related:?}");
    assert_eq!(related.last(), Some(&"renamed"), "{related:?}");
    assert!(related.contains(&"closed_after_write"), "{related:?}");
    let temp = e["related"][0]["path"].as_str().unwrap().to_string();
    assert_ne!(temp, hosts.display().to_string());
    assert_eq!(
        e["related"].as_array().unwrap().last().unwrap()["target_path"],
        e["path"]
    );
    assert_eq!(e["after"]["hashes"]["blake3"], blake3_of(&hosts));
    // Nothing about the temporary file is reported on its own.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let own: Vec<Value> = shared()
        .sensor
        .events_of(pid)
        .into_iter()
        .filter(|e| e["path"] == temp.as_str())
        .collect();
    assert!(own.is_empty(), "temp file reported separately: {own:#?}");
}

#[test]
fn an_append_carries_before_after_fields_changed_and_a_diff() {
    let dir = workdir("append");
    let conf = dir.join("app.conf");
    let pid = run(
        &dir,
        "sh",
        &["-c", "printf 'port=80\\nmode=prod\\n' > app.conf"],
    );
    let created = wait(|e| e["process"]["pid"] == pid && e["path"] == conf.display().to_string());
    assert_eq!(created["action"], "created", "{created:#}");
    assert_eq!(created["after"]["size"], 18);
    let pid = run(&dir, "sh", &["-c", "echo debug=1 >> app.conf"]);
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["action"], "modified", "{e:#}");
    assert_eq!(e["before"]["size"], 18);
    assert_eq!(e["after"]["size"], 26);
    let changed: Vec<&str> = e["fields_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in ["size", "mtime", "hashes"] {
        assert!(changed.contains(&f), "{f} not in {changed:?}");
    }
    assert_ne!(
        e["before"]["hashes"]["blake3"],
        e["after"]["hashes"]["blake3"]
    );
    assert_eq!(e["after"]["hashes"]["blake3"], blake3_of(&conf));
    let diff = e["diff"].as_str().expect("diff of a small text file");
    assert!(diff.contains("+debug=1"), "{diff}");
    assert!(diff.contains(" mode=prod"), "{diff}");
}

#[test]
fn secret_files_are_never_diffed() {
    let dir = workdir("secret");
    let key = dir.join("server.pem");
    // Content comes from files outside the watched tree, so that command lines
    // do not carry it.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("one"), "KEY-ONE\n").unwrap();
    std::fs::write(src.path().join("two"), "KEY-TWO\n").unwrap();
    let cat_into = |from: &str, redirect: &str| {
        let cmd = format!(
            "exec cat {}/{from} {redirect} server.pem",
            src.path().display()
        );
        run(&dir, "sh", &["-c", &cmd])
    };
    let pid = cat_into("one", ">");
    wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    let pid = cat_into("two", ">>");
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["path"], key.display().to_string());
    assert!(e.get("diff").is_none(), "a secret was diffed: {e:#}");
    assert!(
        !e.to_string().contains("KEY-"),
        "secret content leaked: {e:#}"
    );
    // It is still hashed: the change is never hidden.
    assert_eq!(e["after"]["hashes"]["blake3"], blake3_of(&key));
}

#[test]
fn sha256_where_asked_and_large_files_are_reported_unhashed() {
    let dir = workdir("hashes");
    let pid = run(
        &dir,
        "sh",
        &["-c", "exec head -c 100000 /dev/urandom > blob.bin"],
    );
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    let bytes = std::fs::read(dir.join("blob.bin")).unwrap();
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(e["after"]["hashes"]["sha256"], sha, "{e:#}");
    assert_eq!(
        e["after"]["hashes"]["blake3"],
        blake3::hash(&bytes).to_hex().to_string()
    );

    let pid = run(
        &dir,
        "sh",
        &["-c", "exec head -c 2000000 /dev/zero > big.dat"],
    );
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["action"], "created");
    assert!(e["after"].get("hashes").is_none(), "{e:#}");
    let note = e["after"]["hash_note"].as_str().unwrap();
    assert!(note.starts_with("skipped: too large"), "{note}");
}

#[test]
fn a_file_deleted_before_it_could_be_hashed_says_so() {
    let dir = workdir("gone");
    let pid = run(&dir, TESTOP, &["create-write-unlink", "f"]);
    let created = wait(|e| e["process"]["pid"] == pid && e["action"] == "created");
    assert!(created["after"].is_null(), "{created:#}");
    assert_eq!(
        created["details"]["hash_note"],
        "deleted or renamed before it could be hashed"
    );
    let deleted = wait(|e| e["process"]["pid"] == pid && e["action"] == "deleted");
    assert!(deleted["seq"].as_u64() > created["seq"].as_u64());
}

#[test]
fn chmod_setuid_shows_the_mode_change() {
    let dir = workdir("chmod");
    let tool = dir.join("tool");
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    // A first change makes the state known. (`after` is read when the
    // pipeline settles the event, so wait for it before the next change.)
    let pid = run(&dir, "chmod", &["0755", "tool"]);
    wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    let pid = run(&dir, "chmod", &["4755", "tool"]);
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["action"], "permissions_changed");
    assert_eq!(e["path"], tool.display().to_string());
    assert_eq!(e["before"]["mode"], "0755");
    assert_eq!(e["after"]["mode"], "4755");
    assert!(e["fields_changed"]
        .as_array()
        .unwrap()
        .contains(&Value::from("mode")));
    // Content did not change: the digest is the same on both sides.
    assert_eq!(
        e["before"]["hashes"]["blake3"],
        e["after"]["hashes"]["blake3"]
    );
}

/// The lines of one of the shared sensor's other outputs.
fn output_lines(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(shared().base.join(name)).unwrap_or_default();
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn local_rules_mark_alerts_and_the_same_event_reaches_ocsf_and_ecs_outputs() {
    let dir = workdir("rules");
    std::fs::create_dir(dir.join(".ssh")).unwrap();
    let pid = run(
        &dir,
        "sh",
        &[
            "-c",
            "echo ssh-ed25519 AAAA attacker >> .ssh/authorized_keys",
        ],
    );
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["severity"], "critical", "{e:#}");
    assert_eq!(e["alert"], true);
    assert!(e["rules"]
        .as_array()
        .unwrap()
        .contains(&Value::from("test-authorized-keys")));
    assert_eq!(e["mitre"], serde_json::json!(["T1098.004"]));
    let seq = e["seq"].as_u64().unwrap();
    let path = e["path"].as_str().unwrap();

    let ocsf = output_lines("ocsf.ndjson");
    let o = ocsf
        .iter()
        .find(|o| o["metadata"]["sequence"] == seq)
        .unwrap_or_else(|| panic!("seq {seq} not in the OCSF output"));
    assert_eq!(o["class_uid"], 1001);
    assert_eq!(o["activity_id"], 1, "created: {o:#}");
    assert_eq!(o["type_uid"], 100101);
    assert_eq!(o["actor"]["process"]["pid"], pid);
    assert_eq!(
        o["file"]["path"]
            .as_str()
            .or(o["file_result"]["path"].as_str()),
        Some(path)
    );
    assert_eq!(o["attacks"][0]["technique"]["uid"], "T1098");

    let ecs = output_lines("ecs.ndjson");
    let c = ecs
        .iter()
        .find(|c| c["event"]["sequence"] == seq)
        .unwrap_or_else(|| panic!("seq {seq} not in the ECS output"));
    assert_eq!(c["event"]["kind"], "alert");
    assert_eq!(c["event"]["action"], e["action"]);
    assert_eq!(c["file"]["path"], path);
    assert_eq!(c["process"]["pid"], pid);
}

#[test]
fn every_event_the_live_sensor_wrote_matches_the_native_json_schema() {
    // Make sure there is something beyond the start event to check.
    let dir = workdir("schema");
    let pid = run(
        &dir,
        "sh",
        &["-c", "echo a > f && mv f g && chmod 600 g && rm g"],
    );
    wait(|e| e["process"]["ppid"] == pid && e["action"] == "deleted");
    let schema_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/schema/vigil-event.schema.json"
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let v = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let events = shared().sensor.events();
    assert!(events.len() > 5);
    for e in &events {
        let errors: Vec<String> = v
            .iter_errors(e)
            .map(|x| format!("{}: {x}", x.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\nin {e:#}");
    }
}

#[test]
fn a_file_that_existed_before_start_has_a_before_and_a_diff_on_its_first_change() {
    let dir = shared().watched.join("seeded");
    let pid = run(&dir, "sh", &["-c", "echo 'maintenance at 22:00' >> motd"]);
    let e = wait(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert_eq!(e["before"]["size"], 8, "{e:#}");
    assert_eq!(e["after"]["size"], 29);
    let diff = e["diff"].as_str().expect("a diff on the first change");
    assert!(
        diff.contains(" welcome") && diff.contains("+maintenance at 22:00"),
        "{diff}"
    );
}
