//! The Windows policy: watched files and registry keys, in TOML.
//!
//! The file part keeps sensor-user's `[[watch]]` syntax (`path`, `recursive`,
//! `ignore`) and adds `include` (file-name globs, so "System32 executables and
//! drivers" need not mean every log under System32). Registry keys get their
//! own `[[registry]]` tables (`key`, `recursive`, `values`). Matching is
//! case-insensitive, as Windows names are; `*` stays inside one path component
//! and `**` crosses them. Errors name the origin, line and column.
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::paths;

/// The `pci-windows` default policy: PCI DSS 11.5.2 critical files and
/// registry keys of a Windows host.
pub const PCI_WINDOWS_POLICY: &str = include_str!("../policy/pci-windows.toml");

/// A policy error, located in its text.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    #[serde(default)]
    watch: Vec<RawWatch>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    path: Spanned<String>,
    #[serde(default = "yes")]
    recursive: bool,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    key: Spanned<String>,
    #[serde(default = "yes")]
    recursive: bool,
    #[serde(default)]
    values: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// One watched file root.
#[derive(Debug, Clone)]
pub struct FileWatch {
    /// As written in the policy.
    pub path: String,
    pub recursive: bool,
    include: Option<GlobSet>,
    ignore: GlobSet,
}

/// One watched registry key.
#[derive(Debug, Clone)]
pub struct RegistryWatch {
    /// As written in the policy.
    pub key: String,
    pub recursive: bool,
    /// Value-name globs; None watches every value.
    values: Option<GlobSet>,
}

/// A validated policy with its matchers.
#[derive(Debug, Clone)]
pub struct Policy {
    pub files: Vec<FileWatch>,
    pub registry: Vec<RegistryWatch>,
    ignore: GlobSet,
    /// Root globs of all file watches; glob i belongs to `file_owner[i]`.
    file_roots: GlobSet,
    file_owner: Vec<usize>,
    key_roots: GlobSet,
    key_owner: Vec<usize>,
}

/// The form both policy globs and observed names are matched in.
fn fold(s: &str) -> String {
    s.replace('\\', "/").to_lowercase()
}

fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(&fold(pattern))
        .case_insensitive(true)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
}

impl Policy {
    /// Parses and validates policy text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = line_col(text, span.map_or(0, |s| s.start));
            PolicyError {
                origin: origin.to_string(),
                line,
                column,
                message,
            }
        };
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().to_string()))?;
        let set = |what: &str, list: &[Spanned<String>]| {
            let mut b = GlobSetBuilder::new();
            for g in list {
                b.add(glob(g.get_ref()).map_err(|e| {
                    err(
                        Some(g.span()),
                        format!("invalid {what} glob {:?}: {e}", g.get_ref()),
                    )
                })?);
            }
            b.build().map_err(|e| err(None, e.to_string()))
        };

        let mut files = Vec::new();
        let mut roots = GlobSetBuilder::new();
        let mut file_owner = Vec::new();
        for w in &raw.watch {
            let p = w.path.get_ref().trim_end_matches('\\');
            if !is_absolute(p) {
                return Err(err(
                    Some(w.path.span()),
                    format!(
                        r"watch path {p:?} must be absolute (C:\..., \\server\share\..., \Device\...)"
                    ),
                ));
            }
            let mut patterns = vec![p.to_string()];
            patterns.push(if w.recursive {
                format!("{p}\\**")
            } else {
                format!("{p}\\*")
            });
            for pat in patterns {
                roots.add(glob(&pat).map_err(|e| {
                    err(
                        Some(w.path.span()),
                        format!("invalid watch path {p:?}: {e}"),
                    )
                })?);
                file_owner.push(files.len());
            }
            files.push(FileWatch {
                path: p.to_string(),
                recursive: w.recursive,
                include: if w.include.is_empty() {
                    None
                } else {
                    Some(set("include", &w.include)?)
                },
                ignore: set("ignore", &w.ignore)?,
            });
        }

        let mut registry = Vec::new();
        let mut keys = GlobSetBuilder::new();
        let mut key_owner = Vec::new();
        for r in &raw.registry {
            let k = r.key.get_ref();
            if paths::registry_key(k).is_none() {
                return Err(err(
                    Some(r.key.span()),
                    format!(
                        r"registry key {k:?} must start with a hive (HKLM\, HKU\, HKCU\, HKCR\ or \REGISTRY\...)"
                    ),
                ));
            }
            for pat in paths::registry_pattern(k) {
                let mut pats = vec![pat.clone()];
                if r.recursive {
                    pats.push(format!("{pat}\\**"));
                }
                for p in pats {
                    keys.add(glob(&p).map_err(|e| {
                        err(
                            Some(r.key.span()),
                            format!("invalid registry key {k:?}: {e}"),
                        )
                    })?);
                    key_owner.push(registry.len());
                }
            }
            registry.push(RegistryWatch {
                key: k.to_string(),
                recursive: r.recursive,
                values: if r.values.is_empty() {
                    None
                } else {
                    Some(set("values", &r.values)?)
                },
            });
        }
        Ok(Policy {
            files,
            registry,
            ignore: set("ignore", &raw.ignore)?,
            file_roots: roots.build().map_err(|e| err(None, e.to_string()))?,
            file_owner,
            key_roots: keys.build().map_err(|e| err(None, e.to_string()))?,
            key_owner,
        })
    }

    /// The embedded `pci-windows` policy.
    pub fn pci_windows() -> Policy {
        Policy::parse(PCI_WINDOWS_POLICY, "<pci-windows policy>")
            .expect("the embedded pci-windows policy is valid")
    }

    /// The most specific watch (its policy path) that covers a file path in
    /// DOS form, if any covers it and nothing ignores it.
    pub fn file_watch(&self, path: &str) -> Option<&str> {
        let folded = fold(path);
        if self.ignore.is_match(&folded) {
            return None;
        }
        let name = folded.rsplit('/').next().unwrap_or_default();
        self.file_roots
            .matches(&folded)
            .into_iter()
            .map(|i| &self.files[self.file_owner[i]])
            .filter(|w| {
                !w.ignore.is_match(&folded)
                    && w.include.as_ref().is_none_or(|inc| inc.is_match(name))
            })
            // The most specific watch names the change.
            .max_by_key(|w| w.path.len())
            .map(|w| w.path.as_str())
    }

    /// The watch (its policy key) that covers a registry key in short form
    /// (`HKLM\...`), and, given a value name, that value.
    pub fn registry_watch(&self, key: &str, value: Option<&str>) -> Option<&str> {
        let folded = fold(key);
        self.key_roots
            .matches(&folded)
            .into_iter()
            .map(|i| &self.registry[self.key_owner[i]])
            .filter(|w| match (value, &w.values) {
                (Some(v), Some(globs)) => globs.is_match(fold(v)),
                _ => true,
            })
            .max_by_key(|w| w.key.len())
            .map(|w| w.key.as_str())
    }
}

fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
        || p.starts_with(r"\\")
        || p.starts_with(r"\Device\")
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_windows_policy_parses_and_covers_the_usual_places() {
        let p = Policy::pci_windows();
        assert!(p
            .file_watch(r"C:\Windows\System32\drivers\etc\hosts")
            .is_some());
        assert!(p
            .file_watch(r"c:\windows\system32\DRIVERS\tcpip.sys")
            .is_some());
        assert!(p.file_watch(r"C:\Windows\System32\cmd.exe").is_some());
        assert!(p.file_watch(r"C:\Windows\SysWOW64\kernel32.dll").is_some());
        assert!(
            p.file_watch(r"C:\Windows\System32\LogFiles\x.log")
                .is_none(),
            "logs under System32 are not executables"
        );
        assert!(p
            .file_watch(r"C:\ProgramData\Microsoft\Windows\Start Menu\Programs\StartUp\evil.lnk")
            .is_some());
        assert!(p
            .file_watch(r"C:\Users\alice\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\x.bat")
            .is_some());
        assert!(p.file_watch(r"C:\Windows\System32\Tasks\Updater").is_some());
        assert!(p.file_watch(r"C:\Users\alice\Documents\a.txt").is_none());
        assert!(p
            .registry_watch(
                r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run",
                Some("x")
            )
            .is_some());
        assert!(p
            .registry_watch(
                r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\RunOnce",
                Some("x")
            )
            .is_some());
        assert!(p
            .registry_watch(
                r"HKLM\SYSTEM\CurrentControlSet\Services\evil\Parameters",
                Some("ServiceDll")
            )
            .is_some());
        assert!(p
            .registry_watch(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Image File Execution Options\sethc.exe", Some("Debugger"))
            .is_some());
        assert!(p
            .registry_watch(
                r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows",
                Some("AppInit_DLLs")
            )
            .is_some());
        assert!(
            p.registry_watch(
                r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Windows",
                Some("Spooler")
            )
            .is_none(),
            "only the named values of that key"
        );
        assert!(p
            .registry_watch(r"HKLM\SOFTWARE\Vigil", Some("FIMTEST"))
            .is_some());
        assert!(p
            .registry_watch(r"HKLM\SOFTWARE\Microsoft\Notepad", None)
            .is_none());
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Policy::parse("[[watch]]\npath = 'Windows'\n", "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 8), "{e}");
        assert!(e.message.contains("must be absolute"), "{e}");
        let e = Policy::parse("[[registry]]\nkey = 'SOFTWARE\\x'\n", "p.toml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 7), "{e}");
        let e =
            Policy::parse("[[registry]]\nkey = 'HKLM\\x'\nvalue = ['a']\n", "p.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:3:1: unknown field `value`"),
            "{e}"
        );
        let e = Policy::parse("ignore = ['a[']\n", "p.toml").unwrap_err();
        assert!(e.message.contains("invalid ignore glob"), "{e}");
    }

    #[test]
    fn recursion_include_and_ignore() {
        let p = Policy::parse(
            r#"
ignore = ['**\*.tmp']
[[watch]]
path = 'C:\Data'
recursive = false
[[watch]]
path = 'D:\Tree'
include = ['*.conf']
ignore = ['D:\Tree\cache\**']
[[registry]]
key = 'HKCU\Software\App'
recursive = false
values = ['Run*']
"#,
            "p",
        )
        .unwrap();
        assert_eq!(p.file_watch(r"C:\Data\a.txt"), Some(r"C:\Data"));
        assert_eq!(p.file_watch(r"C:\Data"), Some(r"C:\Data"));
        assert_eq!(p.file_watch(r"C:\Data\sub\a.txt"), None);
        assert_eq!(p.file_watch(r"C:\Data\a.tmp"), None);
        assert_eq!(p.file_watch(r"d:\tree\x\y\A.CONF"), Some(r"D:\Tree"));
        assert_eq!(p.file_watch(r"D:\Tree\x\a.txt"), None);
        assert_eq!(p.file_watch(r"D:\Tree\cache\a.conf"), None);
        assert!(p
            .registry_watch(r"HKU\S-1-5-18\Software\App", Some("RunMe"))
            .is_some());
        assert!(p
            .registry_watch(r"HKU\S-1-5-18\Software\App", Some("Other"))
            .is_none());
        assert!(p
            .registry_watch(r"HKU\S-1-5-18\Software\App\Sub", Some("RunMe"))
            .is_none());
    }
}
