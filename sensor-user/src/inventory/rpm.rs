//! The rpm database: the installed packages as `rpm -qa` lists them, and
//! rpm's version ordering (rpmvercmp).
//!
//! The database itself (`rpmdb.sqlite` by default since rpm 4.16; Berkeley
//! DB or ndb `Packages` on older systems) is read through the `rpm`
//! program, which knows every backend.
use super::{Inventory, Key, Pkg};
use anyhow::{bail, Context, Result};
use std::cmp::Ordering;
use std::path::Path;

/// rpm's database directory on rpm-based distributions.
pub const DEFAULT_DBPATH: &str = "/var/lib/rpm";

/// The database files proper: sqlite (rpm ≥ 4.16), ndb, Berkeley DB.
pub const DB_FILES: &[&str] = &["rpmdb.sqlite", "Packages.db", "Packages"];

/// What `rpm -qa` prints per package: name, `[epoch:]version-release`,
/// architecture.
const QUERY_FORMAT: &str = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n";

/// The installed packages of the database in `dbpath`.
pub fn read_inventory(dbpath: &Path) -> Result<Inventory> {
    let out = std::process::Command::new("rpm")
        .arg("--dbpath")
        .arg(dbpath)
        .args(["-qa", "--qf", QUERY_FORMAT])
        .stdin(std::process::Stdio::null())
        .output()
        .context("running rpm -qa (is the rpm program installed?)")?;
    if !out.status.success() {
        bail!(
            "rpm -qa --dbpath {} failed ({}): {}",
            dbpath.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `rpm -qa` output in [`QUERY_FORMAT`]. Several versions of one
/// name and architecture (install-only packages such as kernels) keep the
/// highest.
pub fn parse(text: &str) -> Result<Inventory> {
    let mut inv = Inventory::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        let (Some(name), Some(evr), Some(arch), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            bail!("rpm -qa output, line {}: expected name, version and architecture separated by tabs: {line:?}", n + 1);
        };
        let key = Key {
            name: name.to_string(),
            arch: arch.to_string(),
        };
        let pkg = Pkg {
            version: evr.to_string(),
            status: "installed".into(),
        };
        match inv.get(&key) {
            Some(p) if compare_evr(&p.version, evr) != Ordering::Less => {}
            _ => {
                inv.insert(key, pkg);
            }
        }
    }
    Ok(inv)
}

/// Compares two `[epoch:]version[-release]` strings the way rpm does.
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> (u64, String, String) {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, s),
        };
        match rest.rsplit_once('-') {
            Some((v, r)) => (epoch, v.to_string(), r.to_string()),
            None => (epoch, rest.to_string(), String::new()),
        }
    };
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(&va, &vb))
        .then_with(|| rpmvercmp(&ra, &rb))
}

/// rpm's `rpmvercmp`: alternating numeric and alphabetic segments,
/// separators ignored, `~` sorts before anything (pre-releases), `^` after
/// the end but before anything else (post-release snapshots).
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while a.first().is_some_and(|c| sep(*c)) {
            a = &a[1..];
        }
        while b.first().is_some_and(|c| sep(*c)) {
            b = &b[1..];
        }
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'^'), None) => return Ordering::Greater,
            (Some(b'^'), _) => return Ordering::Less,
            (None, Some(b'^')) => return Ordering::Less,
            (_, Some(b'^')) => return Ordering::Greater,
            (None, _) | (_, None) => break,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let seg = |s: &[u8]| -> usize {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (la, lb) = (seg(a), seg(b));
        let (sa, sb) = (&a[..la], &b[..lb]);
        if sb.is_empty() {
            // A numeric segment is newer than an alphabetic one.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let trim = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
            let (ta, tb) = (&sa[trim(sa)..], &sb[trim(sb)..]);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[la..];
        b = &b[lb..];
    }
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_version_ordering() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0b", Less),
            ("1a", "1.1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("001", "1", Equal),
            ("1.0-1", "1_0_1", Equal),
            ("fc4", "fc.4", Equal),
        ] {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(compare_evr("1:1.0-1", "2.0-1"), Greater, "the epoch first");
        assert_eq!(compare_evr("1.0-2", "1.0-10"), Less, "then the release");
        assert_eq!(compare_evr("0:1.0-1", "1.0-1"), Equal);
    }

    #[test]
    fn rpm_qa_output_is_parsed_and_errors_name_the_line() {
        let inv = parse(
            "bash\t5.1.8-9.el9\tx86_64\nkernel\t5.14.0-1.el9\tx86_64\nkernel\t5.14.0-3.el9\tx86_64\ngpg-pubkey\t8483c65d-5ccc5b19\t(none)\nvim\t2:8.2-1\tx86_64\n",
        )
        .unwrap();
        assert_eq!(inv.len(), 4);
        let k = |n: &str| Key {
            name: n.into(),
            arch: "x86_64".into(),
        };
        assert_eq!(
            inv[&k("kernel")].version,
            "5.14.0-3.el9",
            "the highest kept"
        );
        assert_eq!(inv[&k("vim")].version, "2:8.2-1");
        let e = parse("ok\t1-1\tnoarch\nbroken line\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
