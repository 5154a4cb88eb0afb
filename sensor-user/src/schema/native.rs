//! The native schema's file events written directly as bytes.
//!
//! File events are nearly all of a busy feed, and serde's generic path spends
//! a call and an escaping scan on every key (about 50 strings an event, most
//! of the rendering time: docs/benchmarks.md). Here the keys and punctuation
//! are literals and a value is escaped only when it needs it. The output is
//! byte for byte what serde_json makes of the derived `Serialize` (the tests
//! compare the two), and every struct is destructured without `..`, so a new
//! field does not compile until it is written here too.
use crate::event::{
    process_json, Body, Event, FileChange, FileInfo, FileState, PackageRef, Related, Source,
};
use std::collections::BTreeMap;

/// Appends `ev` as one line of native JSON if it is a file event; returns
/// false (nothing written) for other kinds, which serde renders.
pub fn write_file_event(out: &mut Vec<u8>, ev: &Event) -> bool {
    let Event {
        schema,
        seq,
        time,
        host,
        kind,
        action,
        severity,
        alert,
        rules,
        mitre,
        pci,
        tags,
        body,
    } = ev;
    let Body::File(f) = body else {
        return false;
    };
    out.extend_from_slice(b"{\"schema\":");
    lit(out, schema);
    out.extend_from_slice(b",\"seq\":");
    num(out, *seq);
    out.extend_from_slice(b",\"time\":");
    lit(out, time);
    out.extend_from_slice(b",\"host\":");
    str(out, host);
    out.extend_from_slice(b",\"kind\":");
    lit(out, kind);
    out.extend_from_slice(b",\"action\":");
    lit(out, action);
    out.extend_from_slice(b",\"severity\":");
    lit(out, severity.as_str());
    if *alert {
        out.extend_from_slice(b",\"alert\":true");
    }
    for (key, list) in [
        (&b",\"rules\":"[..], rules),
        (b",\"mitre\":", mitre),
        (b",\"pci\":", pci),
        (b",\"tags\":", tags),
    ] {
        if !list.is_empty() {
            out.extend_from_slice(key);
            strs(out, list);
        }
    }
    file_change(out, f);
    out.push(b'}');
    true
}

fn file_change(out: &mut Vec<u8>, f: &FileChange) {
    let FileChange {
        path,
        target_path,
        file,
        before,
        after,
        fields_changed,
        diff,
        watch,
        package,
        process,
        source,
        details,
        related,
    } = f;
    out.extend_from_slice(b",\"path\":");
    str(out, path);
    if let Some(t) = target_path {
        out.extend_from_slice(b",\"target_path\":");
        str(out, t);
    }
    out.extend_from_slice(b",\"file\":");
    file_info(out, file);
    out.extend_from_slice(b",\"before\":");
    opt_state(out, before.as_deref());
    out.extend_from_slice(b",\"after\":");
    opt_state(out, after.as_deref());
    if !fields_changed.is_empty() {
        out.extend_from_slice(b",\"fields_changed\":");
        strs(out, fields_changed);
    }
    if let Some(d) = diff {
        out.extend_from_slice(b",\"diff\":");
        str(out, d);
    }
    out.extend_from_slice(b",\"watch\":");
    opt_str(out, watch.as_deref());
    if let Some(p) = package {
        out.extend_from_slice(b",\"package\":");
        package_ref(out, p);
    }
    out.extend_from_slice(b",\"process\":");
    process_json::with_json(process, |json| out.extend_from_slice(json.get().as_bytes()));
    out.extend_from_slice(b",\"source\":");
    source_(out, source);
    if !details.is_empty() {
        out.extend_from_slice(b",\"details\":");
        details_(out, details);
    }
    if !related.is_empty() {
        out.extend_from_slice(b",\"related\":[");
        for (i, r) in related.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            related_(out, r);
        }
        out.push(b']');
    }
}

fn file_info(out: &mut Vec<u8>, i: &FileInfo) {
    let FileInfo {
        file_type,
        inode,
        dev,
        path_truncated,
    } = i;
    out.extend_from_slice(b"{\"type\":");
    lit(out, file_type);
    if let Some(n) = inode {
        out.extend_from_slice(b",\"inode\":");
        num(out, *n);
    }
    if let Some(d) = dev {
        out.extend_from_slice(b",\"dev\":");
        lit(out, d);
    }
    if *path_truncated {
        out.extend_from_slice(b",\"path_truncated\":true");
    }
    out.push(b'}');
}

fn opt_state(out: &mut Vec<u8>, s: Option<&FileState>) {
    let Some(s) = s else {
        out.extend_from_slice(b"null");
        return;
    };
    let FileState {
        file_type,
        size,
        mode,
        uid,
        gid,
        mtime,
        ctime,
        inode,
        nlink,
        link_target,
        xattrs,
        owner,
        acl,
        hashes,
        hash_note,
    } = s;
    out.extend_from_slice(b"{\"type\":");
    lit(out, file_type);
    out.extend_from_slice(b",\"size\":");
    num(out, *size);
    out.extend_from_slice(b",\"mode\":");
    lit(out, mode);
    out.extend_from_slice(b",\"uid\":");
    num(out, *uid);
    out.extend_from_slice(b",\"gid\":");
    num(out, *gid);
    out.extend_from_slice(b",\"mtime\":");
    lit(out, mtime);
    out.extend_from_slice(b",\"ctime\":");
    lit(out, ctime);
    out.extend_from_slice(b",\"inode\":");
    num(out, *inode);
    out.extend_from_slice(b",\"nlink\":");
    num(out, *nlink);
    if let Some(t) = link_target {
        out.extend_from_slice(b",\"link_target\":");
        str(out, t);
    }
    if !xattrs.is_empty() {
        out.extend_from_slice(b",\"xattrs\":");
        str_map(out, xattrs);
    }
    if let Some(o) = owner {
        out.extend_from_slice(b",\"owner\":");
        str(out, o);
    }
    if let Some(a) = acl {
        out.extend_from_slice(b",\"acl\":");
        str(out, a);
    }
    if !hashes.is_empty() {
        out.extend_from_slice(b",\"hashes\":");
        str_map(out, hashes);
    }
    if let Some(n) = hash_note {
        out.extend_from_slice(b",\"hash_note\":");
        str(out, n);
    }
    out.push(b'}');
}

fn package_ref(out: &mut Vec<u8>, p: &PackageRef) {
    let PackageRef {
        manager,
        name,
        version,
        architecture,
        managed,
        manager_pid,
        manager_exe,
    } = p;
    out.extend_from_slice(b"{\"manager\":");
    str(out, manager);
    out.extend_from_slice(b",\"name\":");
    opt_str(out, name.as_deref());
    if let Some(v) = version {
        out.extend_from_slice(b",\"version\":");
        str(out, v);
    }
    if let Some(a) = architecture {
        out.extend_from_slice(b",\"architecture\":");
        str(out, a);
    }
    out.extend_from_slice(if *managed {
        b",\"managed\":true"
    } else {
        b",\"managed\":false"
    });
    if let Some(pid) = manager_pid {
        out.extend_from_slice(b",\"manager_pid\":");
        num(out, *pid);
    }
    if let Some(e) = manager_exe {
        out.extend_from_slice(b",\"manager_exe\":");
        str(out, e);
    }
    out.push(b'}');
}

fn source_(out: &mut Vec<u8>, s: &Source) {
    let Source {
        tier,
        syscall,
        decided_by,
    } = s;
    out.extend_from_slice(b"{\"tier\":");
    lit(out, tier);
    out.extend_from_slice(b",\"syscall\":");
    lit(out, syscall);
    out.extend_from_slice(b",\"decided_by\":");
    lit(out, decided_by);
    out.push(b'}');
}

fn related_(out: &mut Vec<u8>, r: &Related) {
    let Related {
        action,
        path,
        target_path,
        time,
        syscall,
        details,
    } = r;
    out.extend_from_slice(b"{\"action\":");
    lit(out, action);
    out.extend_from_slice(b",\"path\":");
    str(out, path);
    if let Some(t) = target_path {
        out.extend_from_slice(b",\"target_path\":");
        str(out, t);
    }
    out.extend_from_slice(b",\"time\":");
    lit(out, time);
    out.extend_from_slice(b",\"syscall\":");
    lit(out, syscall);
    if !details.is_empty() {
        out.extend_from_slice(b",\"details\":");
        details_(out, details);
    }
    out.push(b'}');
}

/// A JSON string: copied as is when nothing in it needs escaping (paths,
/// times, hashes almost always), else escaped by serde_json.
fn str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde(out, s);
    }
}

/// A string this program made that cannot need escaping (times it
/// formatted, octal modes, `major:minor`, its own names for kinds, types,
/// tiers and syscalls): no scan.
fn lit(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!needs_escape(s.as_bytes()), "{s:?}");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether `b` holds a byte JSON escapes: a control character, `"` or `\`.
/// Eight bytes at a time (the classic "has a zero byte" / "has a byte less
/// than n" word tricks): a byte-wise test was most of the rendering time.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let bad = |w: u64| {
        w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0
            || has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
    };
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8 bytes"));
    if b.len() < 8 {
        // Padded with spaces, which need no escape.
        let mut w = [b' '; 8];
        w[..b.len()].copy_from_slice(b);
        return bad(u64::from_ne_bytes(w));
    }
    // Whole words, then the last eight bytes (overlapping the words before).
    b.chunks_exact(8).any(|c| bad(word(c))) || bad(word(&b[b.len() - 8..]))
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn strs(out: &mut Vec<u8>, list: &[String]) {
    out.push(b'[');
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        str(out, s);
    }
    out.push(b']');
}

fn str_map(out: &mut Vec<u8>, m: &BTreeMap<String, String>) {
    object(out, m.iter().map(|(k, v)| (&**k, v)), |out, v| str(out, v));
}

/// A `details` object: its strings and flags written here (a few per
/// event), anything nested or numeric left to serde_json.
fn details_(out: &mut Vec<u8>, m: &crate::event::Details) {
    use serde_json::Value;
    object(out, m.iter(), |out, v| match v {
        Value::String(s) => str(out, s),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        v => serde(out, v),
    });
}

/// A JSON object of string keys, each value written by `value`.
fn object<'a, V: 'a>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (&'a str, &'a V)>,
    value: impl Fn(&mut Vec<u8>, &'a V),
) {
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        str(out, k);
        out.push(b':');
        value(out, v);
    }
    out.push(b'}');
}

fn num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("strings and JSON maps serialize");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use std::sync::Arc;

    fn state(n: u64, odd: bool) -> FileState {
        FileState {
            file_type: "file",
            size: n * 1000,
            mode: "0644".into(),
            uid: 0,
            gid: u32::MAX,
            mtime: "2026-11-27T05:00:00.123456789Z".into(),
            ctime: "2026-11-27T05:00:01.000000001Z".into(),
            inode: u64::MAX - n,
            nlink: 1,
            link_target: odd.then(|| "../t\u{7f}\u{1}\"q\\".into()),
            xattrs: if odd {
                BTreeMap::from([("security.capability".into(), "0100000200".into())])
            } else {
                BTreeMap::new()
            },
            owner: odd.then(|| "S-1-5-32-544".into()),
            acl: odd.then(|| "D:PAI(A;;FA;;;SY)".into()),
            hashes: BTreeMap::from([
                ("blake3".into(), "af13".repeat(16)),
                ("sha256".into(), "00ff".repeat(16)),
            ]),
            hash_note: (!odd).then(|| "skipped: too large".into()),
        }
    }

    /// Events with every optional part present or absent, and strings that
    /// need escaping (quotes, backslashes, control and non-ASCII characters).
    fn events() -> Vec<Event> {
        let mut out = Vec::new();
        for i in 0..16u32 {
            let odd = i % 2 == 1;
            let weird = "/etc/\"a b\"\\\n\t\u{0}é\u{2028}😀";
            let process = Arc::new(Process {
                pid: 100 + i,
                exe: Some("/usr/bin/sed".into()),
                cmdline: Some(format!("sed -i s/a/b/ {weird}")),
                comm: "sed".into(),
                start_time: "2026-11-27T04:00:00Z".into(),
                ..Default::default()
            });
            let mut details = crate::event::Details::new();
            if i % 3 == 0 {
                details.insert("mode", "0755".into());
                details.insert("truncated", true.into());
                details.insert("noreplace", false.into());
                details.insert("uid", u32::MAX.into());
                details.insert(weird.to_string(), weird.into());
                details.insert("flags", serde_json::json!([1, 2.5, null, {"x": "y"}]));
            }
            let related = (0..(i % 3))
                .map(|k| Related {
                    action: "created",
                    path: if odd {
                        weird.into()
                    } else {
                        format!("/tmp/f{k}").into()
                    },
                    target_path: odd.then(|| "/tmp/t".into()),
                    time: "2026-11-27T05:00:00.5Z".into(),
                    syscall: "openat",
                    details: details.clone(),
                })
                .collect();
            let body = FileChange {
                path: if i % 4 == 0 {
                    weird.into()
                } else {
                    "/etc/hosts".into()
                },
                target_path: (i % 5 == 0).then(|| "/etc/hosts.new".into()),
                file: FileInfo {
                    file_type: "file",
                    inode: odd.then_some(u64::from(i) << 40),
                    dev: (i % 3 != 1).then(|| "254:0".into()),
                    path_truncated: i == 7,
                },
                before: (i % 3 != 0).then(|| Box::new(state(u64::from(i), odd))),
                after: (i % 4 != 1).then(|| Box::new(state(u64::from(i) + 1, !odd))),
                fields_changed: if odd {
                    vec!["size".into(), "hashes".into()]
                } else {
                    vec![]
                },
                diff: (i % 6 == 1).then(|| "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+\"y\"\n".into()),
                watch: (i != 3).then_some("/etc"),
                package: (i % 4 == 2).then(|| {
                    Box::new(PackageRef {
                        manager: "dpkg",
                        name: odd.then(|| "base-files".into()),
                        version: Some("13.8".into()),
                        architecture: (i > 8).then(|| "amd64".into()),
                        managed: i > 4,
                        manager_pid: (i > 4).then_some(77),
                        manager_exe: (i > 4).then(|| "/usr/bin/dpkg".into()),
                    })
                }),
                process,
                source: Source {
                    tier: "tracepoint",
                    syscall: "rename",
                    decided_by: "inode",
                },
                details,
                related,
            };
            let mut ev = Event::new(
                "file",
                "modified",
                "2026-11-27T05:00:00.000000001Z",
                "vm\"1",
                Body::File(Box::new(body)),
            );
            ev.seq = u64::from(i) * 1_000_003;
            ev.severity = [Severity::Info, Severity::High, Severity::Critical][i as usize % 3];
            ev.alert = odd;
            if i % 4 == 3 {
                ev.rules = vec!["ssh-authorized-keys".into(), weird.into()];
                ev.mitre = vec!["T1098.004".into()];
                ev.pci = vec!["11.5.2".into(), "10.2.1".into()];
                ev.tags = vec!["persistence".into()];
            }
            out.push(ev);
        }
        out
    }

    #[test]
    fn file_events_are_byte_for_byte_serdes() {
        for ev in events() {
            let mut ours = Vec::new();
            assert!(write_file_event(&mut ours, &ev));
            let theirs = serde_json::to_vec(&ev).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    #[test]
    fn escapes_are_found_at_every_offset() {
        for len in 0..24 {
            let clean: Vec<u8> = (0..len).map(|i| b"a/\x7f\xc3\xa9 ~Z09"[i % 10]).collect();
            assert!(!needs_escape(&clean), "{clean:?}");
            for at in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', b'\n'] {
                    let mut b = clean.clone();
                    b[at] = bad;
                    assert!(needs_escape(&b), "{bad:#x} at {at} of {len}");
                }
            }
        }
        // Bytes around the thresholds that need no escape.
        assert!(!needs_escape(b" !#[]\x7f\x80\xff abcdefgh"));
    }

    #[test]
    fn other_kinds_are_left_to_serde() {
        let ev = Event::new(
            "sensor",
            "start",
            "2026-11-27T05:00:00Z",
            "h",
            Body::Sensor(Box::default()),
        );
        let mut out = Vec::new();
        assert!(!write_file_event(&mut out, &ev));
        assert!(out.is_empty());
    }
}
