//! `cargo xtask wine-test`: sensor-windows' unit tests built for
//! x86_64-pc-windows-gnu (mingw) and run under Wine, including the test that
//! writes and reads the registry through the Win32 API (regread); then the
//! Windows `vigil.exe` itself under Wine ([`scenario`]): baseline and scan of
//! a directory and of an HKCU key, a modified file and a new registry value
//! checked in the scan's JSON, an Uninstall entry and a service added,
//! upgraded/reconfigured and removed between scans (software and service
//! events), and `vigil run` failing clearly without ETW.
//!
//! Part of `cargo xtask test` (after the host tests): the first run installs
//! Wine and mingw and builds for a second target, a few minutes. Wine is not
//! Windows: see docs/windows.md for what this does and does not prove.
//!
//! Steps: install wine64 and gcc-mingw-w64-x86-64 if missing, add the Rust
//! target, create a Wine prefix in target/wine-prefix, put the
//! bcryptprimitives.dll shim into it (Wine 8 lacks the DLL Rust's std needs
//! for random bytes), then `cargo test -p sensor-windows` with Wine as runner.
use crate::{cargo, installed, run, step, workspace_root};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const PACKAGES: &[&str] = &["wine64", "gcc-mingw-w64-x86-64"];
const TARGET: &str = "x86_64-pc-windows-gnu";

pub fn main(args: &[String]) -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        step(&format!(
            "installing Debian packages: {}",
            missing.join(" ")
        ));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    run(Command::new("rustup").args(["target", "add", TARGET]))?;
    let root = workspace_root();
    let prefix = root.join("target/wine-prefix");
    let system32 = prefix.join("drive_c/windows/system32");
    if !system32.exists() {
        step("creating the Wine prefix target/wine-prefix (once)");
        run(Command::new("wineboot")
            .arg("--init")
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all"))?;
    }
    let shim = system32.join("bcryptprimitives.dll");
    if !shim.exists() {
        step("building the bcryptprimitives.dll shim into the prefix (Wine 8 lacks it)");
        let src = root.join("sensor-windows/wine");
        run(Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-o"])
            .arg(&shim)
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32"))?;
    }
    step(&format!(
        "cargo test -p sensor-windows --target {TARGET} under Wine"
    ));
    std::env::set_var("WINEPREFIX", &prefix);
    std::env::set_var("WINEDEBUG", "-all");
    std::env::set_var("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine");
    let mut a = vec!["test", "-p", "sensor-windows", "--target", TARGET];
    if !args.is_empty() {
        a.push("--");
        a.extend(args.iter().map(String::as_str));
    }
    cargo(&a)?;
    step(&format!(
        "cargo test -p sensor-user --lib --target {TARGET} under Wine: the Windows file state, file scan and hashing, registry scan, ETW mapping"
    ));
    cargo(&[
        "test",
        "-p",
        "sensor-user",
        "--lib",
        "--target",
        TARGET,
        "--",
        "filestate",
        "scan::",
        "hash::",
        "registry",
        "etw_source",
        "os::",
        "inventory::win",
        "daemon::",
        "windows::scm",
    ])?;
    step(&format!(
        "cargo build -p sensor-user --bin vigil --target {TARGET}"
    ));
    cargo(&[
        "build",
        "-p",
        "sensor-user",
        "--bin",
        "vigil",
        "--target",
        TARGET,
    ])?;
    let exe = root.join(format!("target/{TARGET}/debug/vigil.exe"));
    scenario(&prefix, &exe)
}

/// Runs `vigil.exe ARGS` under Wine.
fn vigil(exe: &Path, args: &[&str]) -> Result<Output> {
    let out = Command::new("wine")
        .arg(exe)
        .args(args)
        .output()
        .with_context(|| format!("running wine {} {args:?}", exe.display()))?;
    eprintln!(
        "    vigil {} -> {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("vigil"))
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
            .trim_end()
    );
    Ok(out)
}

const APP_KEY: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\VigilTestApp";
const SVC_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\VigilTestSvc";

/// The test's Uninstall entry at `version` and its service with `Start`
/// = `start`.
fn app_and_service(version: &str, start: &str) -> Result<()> {
    for (v, t, d) in [
        ("DisplayName", "REG_SZ", "Vigil Test App"),
        ("DisplayVersion", "REG_SZ", version),
        ("Publisher", "REG_SZ", "Vigil Tests"),
        ("InstallDate", "REG_SZ", "20261126"),
    ] {
        reg(&["add", APP_KEY, "/v", v, "/t", t, "/d", d, "/f"])?;
    }
    for (v, t, d) in [
        ("Type", "REG_DWORD", "16"),
        ("Start", "REG_DWORD", start),
        ("ErrorControl", "REG_DWORD", "1"),
        ("ImagePath", "REG_EXPAND_SZ", r"C:\vigiltest\svc.exe"),
        ("ObjectName", "REG_SZ", "LocalSystem"),
        ("DisplayName", "REG_SZ", "Vigil test service"),
    ] {
        reg(&["add", SVC_KEY, "/v", v, "/t", t, "/d", d, "/f"])?;
    }
    Ok(())
}

/// The software or service finding of the test's entries with `action`.
fn inventory_finding<'a>(evs: &'a [Value], action: &str) -> Result<&'a Value> {
    evs.iter()
        .find(|e| {
            e["action"] == action
                && (e["package"]["name"] == "Vigil Test App"
                    || e["service"]["unit"] == "VigilTestSvc")
        })
        .with_context(|| format!("no {action} of the test's entries in {evs:#?}"))
}

fn check(what: &str, ev: &Value, checks: &[(bool, &str)]) -> Result<()> {
    for (ok, expected) in checks {
        if !ok {
            bail!("{what}: expected {expected}: {ev:#}");
        }
    }
    Ok(())
}

/// `vigil service` against Wine's service control manager: install (the
/// registry entry it makes), start (Wine's services.exe runs `vigil.exe
/// service run`, whose dispatcher connects; the body fails without ETW and
/// reports that to the SCM as exit code 1), stop of a stopped service and
/// `service run` from a console (clear errors), uninstall (the entry gone).
fn service(exe: &Path, cfg: &str) -> Result<()> {
    const KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\Vigil";
    let _ = vigil(exe, &["service", "uninstall"]);
    let ok = |out: &Output, what: &str| -> Result<String> {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!("vigil service {what} exited {}: {err}", out.status);
        }
        Ok(err)
    };
    let failed = |out: &Output, what: &str, says: &str| -> Result<()> {
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.contains(says) || err.contains("panicked") {
            bail!(
                "vigil service {what} should fail saying {says:?}; it exited {}: {err}",
                out.status
            );
        }
        Ok(())
    };
    ok(
        &vigil(exe, &["service", "install", "--", "--config", cfg])?,
        "install",
    )?;
    let entry = Command::new("wine").args(["reg", "query", KEY]).output()?;
    let entry = String::from_utf8_lossy(&entry.stdout);
    for want in [
        format!("service run --config {cfg}"),
        "Start    REG_DWORD    0x2".to_string(),
        "ObjectName    REG_SZ    LocalSystem".to_string(),
    ] {
        if !entry.contains(&want) {
            bail!("the service's registry entry lacks {want:?}:\n{entry}");
        }
    }
    failed(
        &vigil(exe, &["service", "install"])?,
        "install (again)",
        "already installed",
    )?;
    ok(&vigil(exe, &["service", "start"])?, "start")?;
    let t0 = std::time::Instant::now();
    let status = loop {
        let q = Command::new("wine")
            .args(["sc", "query", "Vigil"])
            .output()?;
        let q = String::from_utf8_lossy(&q.stdout).into_owned();
        if q.contains("STOPPED") || t0.elapsed() > std::time::Duration::from_secs(60) {
            break q;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let exit_code_1 = status
        .lines()
        .any(|l| l.contains("WIN32_EXIT_CODE") && l.contains(": 1 "));
    if !status.contains("STOPPED") || !exit_code_1 {
        bail!("the service should have stopped with exit code 1 (no ETW under Wine):\n{status}");
    }
    failed(
        &vigil(exe, &["service", "stop"])?,
        "stop",
        "cannot stop service Vigil",
    )?;
    failed(
        &vigil(exe, &["service", "run"])?,
        "run (from a console)",
        "from a console use `vigil run`",
    )?;
    ok(&vigil(exe, &["service", "uninstall"])?, "uninstall")?;
    if Command::new("wine")
        .args(["reg", "query", KEY])
        .output()?
        .status
        .success()
    {
        bail!("{KEY} is still there after `vigil service uninstall`");
    }
    Ok(())
}

/// `wine reg ARGS`, which must succeed.
fn reg(args: &[&str]) -> Result<()> {
    run(Command::new("wine").arg("reg").args(args))
}

fn events(out: &Output) -> Result<Vec<Value>> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

fn find<'a>(evs: &'a [Value], path_end: &str) -> Result<&'a Value> {
    evs.iter()
        .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(path_end)))
        .with_context(|| format!("no finding for ...{path_end} in {evs:#?}"))
}

/// The Windows `vigil.exe` on a directory of the prefix (`C:\vigiltest`)
/// and on `HKCU\Software\VigilTest`:
/// 1. `baseline init`, then `scan --exit-code`: nothing changed (exit 0);
/// 2. `a.txt` rewritten and `reg add ... /v FIMTEST /d FIMTEST`: the scan
///    exits 3 and reports `modified` with the old and new BLAKE3 and a
///    `value_set` with an empty before and "FIMTEST" after;
///    and, for an Uninstall entry and a Services key added meanwhile,
///    `package_installed` and `service_installed`;
/// 3. `baseline update`, then version 2.0 and Start 4: `package_upgraded`
///    and `service_start_type_changed`; both deleted: `package_removed`
///    and `service_removed`;
/// 4. `vigil run` fails with an error naming ETW (Wine has no ETW).
fn scenario(prefix: &Path, exe: &Path) -> Result<()> {
    step("vigil.exe under Wine: baseline, scan, registry, run without ETW");
    let drive = prefix.join("drive_c");
    let dir = drive.join("vigiltest");
    let state = drive.join("vigil-wine");
    for d in [&dir, &state] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
    }
    std::fs::create_dir_all(dir.join("sub"))?;
    std::fs::write(dir.join("a.txt"), "one\n")?;
    std::fs::write(dir.join("sub/b.txt"), "unchanged\n")?;
    std::fs::write(
        drive.join("vigiltest-policy.toml"),
        "[[watch]]\npath = 'C:\\vigiltest'\n\n[[registry]]\nkey = 'HKCU\\Software\\VigilTest'\n\n\
         [store]\npath = 'C:\\vigil-wine\\vigil.db'\n",
    )?;
    let key = r"HKCU\Software\VigilTest";
    let _ = Command::new("wine")
        .args(["reg", "delete", key, "/f"])
        .output();
    for k in [APP_KEY, SVC_KEY] {
        let _ = Command::new("wine")
            .args(["reg", "delete", k, "/f"])
            .output();
    }
    reg(&[
        "add", key, "/v", "Existing", "/t", "REG_SZ", "/d", "old", "/f",
    ])?;
    let cfg = r"C:\vigiltest-policy.toml";

    let init = vigil(exe, &["baseline", "init", "--config", cfg])?;
    if !init.status.success() {
        bail!(
            "vigil baseline init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let quiet = vigil(exe, &["scan", "--config", cfg, "--exit-code"])?;
    let evs = events(&quiet)?;
    if quiet.status.code() != Some(0) || !evs.is_empty() {
        bail!(
            "a scan right after the baseline found changes ({}): {evs:#?}",
            quiet.status
        );
    }

    std::fs::write(dir.join("a.txt"), "two\n")?;
    reg(&[
        "add", key, "/v", "FIMTEST", "/t", "REG_SZ", "/d", "FIMTEST", "/f",
    ])?;
    // Software and a service installed (as an installer and sc.exe would
    // leave them in the registry).
    app_and_service("1.0", "3")?;
    let found = vigil(exe, &["scan", "--config", cfg, "--exit-code"])?;
    if found.status.code() != Some(3) {
        bail!(
            "the scan after the changes exited {} (3 expected): {}",
            found.status,
            String::from_utf8_lossy(&found.stderr)
        );
    }
    let evs = events(&found)?;
    let f = find(&evs, r"\vigiltest\a.txt")?;
    let b3 = |s: &str| blake3::hash(s.as_bytes()).to_hex().to_string();
    let checks = [
        (f["action"] == "modified", "action modified"),
        (
            f["path"] == r"C:\vigiltest\a.txt",
            "path C:\\vigiltest\\a.txt",
        ),
        (
            f["before"]["hashes"]["blake3"] == b3("one\n").as_str(),
            "before: BLAKE3 of the old content",
        ),
        (
            f["after"]["hashes"]["blake3"] == b3("two\n").as_str(),
            "after: BLAKE3 of the new content",
        ),
        (f["source"]["tier"] == "scan", "tier scan"),
        (f["details"]["unattributed"] == true, "unattributed"),
        // Owner SID and DACL, read through GetSecurityInfo and recorded in
        // the baseline (Wine keeps them in the file's xattrs).
        (
            f["before"]["owner"]
                .as_str()
                .is_some_and(|o| o.starts_with("S-1-")),
            "before.owner: a SID",
        ),
        (
            f["after"]["acl"]
                .as_str()
                .is_some_and(|a| a.starts_with("D:")),
            "after.acl: a DACL in SDDL",
        ),
        (
            f["before"]["owner"] == f["after"]["owner"] && f["before"]["acl"] == f["after"]["acl"],
            "owner and acl unchanged by a rewrite",
        ),
    ];
    for (ok, what) in checks {
        if !ok {
            bail!("file finding: expected {what}: {f:#}");
        }
    }
    if evs
        .iter()
        .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("b.txt")))
    {
        bail!("the unchanged file was reported: {evs:#?}");
    }
    let r = find(&evs, r"\Software\VigilTest\FIMTEST")?;
    let reg_checks = [
        (r["action"] == "value_set", "action value_set"),
        (
            r["file"]["type"] == "registry_value",
            "file.type registry_value",
        ),
        (r["details"]["registry"]["before"].is_null(), "empty before"),
        (
            r["details"]["registry"]["after"]["data"] == "FIMTEST",
            "after \"FIMTEST\"",
        ),
        (
            r["details"]["registry"]["after"]["type"] == "REG_SZ",
            "after type REG_SZ",
        ),
    ];
    for (ok, what) in reg_checks {
        if !ok {
            bail!("registry finding: expected {what}: {r:#}");
        }
    }
    let sw = inventory_finding(&evs, "package_installed")?;
    let sw_checks = [
        (
            sw["package"]["manager"] == "windows-uninstall",
            "manager windows-uninstall",
        ),
        (sw["package"]["version"] == "1.0", "version 1.0"),
        (sw["package"]["publisher"] == "Vigil Tests", "publisher"),
        (
            sw["package"]["install_date"] == "2026-11-26",
            "install_date 2026-11-26",
        ),
        (sw["package"]["architecture"] == "x64", "architecture x64"),
        (
            sw["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(r"\Uninstall\VigilTestApp")),
            "path: its Uninstall key",
        ),
        (sw["details"]["unattributed"] == true, "unattributed"),
    ];
    check("software finding", sw, &sw_checks)?;
    let svc = inventory_finding(&evs, "service_installed")?;
    let svc_checks = [
        (
            svc["service"]["manager"] == "windows-scm",
            "manager windows-scm",
        ),
        (
            svc["service"]["file_state"] == "demand",
            "start type demand",
        ),
        (svc["service"]["type"] == "own_process", "type own_process"),
        (
            svc["service"]["unit_file"] == r"C:\vigiltest\svc.exe",
            "ImagePath",
        ),
        (svc["service"]["account"] == "LocalSystem", "account"),
    ];
    check("service finding", svc, &svc_checks)?;
    if evs.len() != 4 {
        bail!("expected exactly the four findings: {evs:#?}");
    }

    // Recorded, then upgraded and reconfigured: the next scan says how.
    let update = vigil(exe, &["baseline", "update", "--config", cfg])?;
    if !update.status.success() {
        bail!(
            "vigil baseline update failed: {}",
            String::from_utf8_lossy(&update.stderr)
        );
    }
    app_and_service("2.0", "4")?;
    let changed = vigil(exe, &["scan", "--config", cfg, "--exit-code"])?;
    let evs = events(&changed)?;
    let up = inventory_finding(&evs, "package_upgraded")?;
    check(
        "upgrade finding",
        up,
        &[
            (up["package"]["version"] == "2.0", "version 2.0"),
            (
                up["package"]["previous_version"] == "1.0",
                "previous_version 1.0",
            ),
        ],
    )?;
    let st = inventory_finding(&evs, "service_start_type_changed")?;
    check(
        "start type finding",
        st,
        &[
            (
                st["service"]["file_state"] == "disabled",
                "start type disabled",
            ),
            (
                st["service"]["previous_file_state"] == "demand",
                "previously demand",
            ),
            (
                st["severity"] == "medium",
                "severity medium (rule service-start-type-changed)",
            ),
        ],
    )?;
    if evs.len() != 2 || changed.status.code() != Some(3) {
        bail!(
            "expected exactly the two findings and exit 3 ({}): {evs:#?}",
            changed.status
        );
    }

    // Uninstalled and deleted.
    for k in [APP_KEY, SVC_KEY] {
        reg(&["delete", k, "/f"])?;
    }
    let gone = vigil(exe, &["scan", "--config", cfg, "--exit-code"])?;
    let evs = events(&gone)?;
    let rm = inventory_finding(&evs, "package_removed")?;
    check(
        "removal finding",
        rm,
        &[(
            rm["package"]["previous_version"] == "1.0",
            "previous_version 1.0 (the recorded one)",
        )],
    )?;
    let srm = inventory_finding(&evs, "service_removed")?;
    check(
        "service removal finding",
        srm,
        &[(
            srm["service"]["previous_file_state"] == "demand",
            "previously demand",
        )],
    )?;
    if evs.len() != 2 {
        bail!("expected exactly the two removals: {evs:#?}");
    }

    let run = vigil(exe, &["run", "--config", cfg])?;
    let err = String::from_utf8_lossy(&run.stderr);
    if run.status.success() || !err.contains("ETW") || !err.contains("elevated") {
        bail!(
            "vigil run under Wine (no ETW) should fail naming ETW and elevation; it exited {}: {err}",
            run.status
        );
    }
    service(exe, cfg)?;
    let _ = Command::new("wine")
        .args(["reg", "delete", key, "/f"])
        .output();
    step("Wine scenario: ok (file, registry, software and service findings checked, run refused without ETW, the service installed, started by Wine's SCM, failed without ETW as a status, uninstalled)");
    Ok(())
}
