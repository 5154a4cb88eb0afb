//! Windows path and registry-key spelling: what ETW says vs what people write.
//!
//! Kernel-File names files by NT device path (`\Device\HarddiskVolume3\Windows\...`);
//! people and policies use drive letters (`C:\Windows\...`). Kernel-Registry
//! names keys by object path (`\REGISTRY\MACHINE\SOFTWARE\...`); people use
//! `HKLM\SOFTWARE\...`. Both are translated here, once, so matching and output
//! use the familiar spelling.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// NT device name → drive letter, e.g. `\Device\HarddiskVolume3` → `C:`.
///
/// Injectable so the interpreter is testable without Windows; on Windows the
/// `etw` module fills it from `QueryDosDeviceW` for each drive letter.
#[derive(Debug, Clone, Default)]
pub struct VolumeMap {
    /// Lower-cased device name (no trailing backslash) → drive (`C:`).
    devices: BTreeMap<String, String>,
}

impl VolumeMap {
    /// An empty map (device paths stay as they are).
    pub fn new() -> VolumeMap {
        VolumeMap::default()
    }

    /// Maps `device` (e.g. `\Device\HarddiskVolume3`) to `drive` (e.g. `C:`).
    pub fn insert(&mut self, device: &str, drive: &str) {
        let device = device.trim_end_matches('\\').to_ascii_lowercase();
        let drive = drive.trim_end_matches('\\').to_ascii_uppercase();
        self.devices.insert(device, drive);
    }

    /// Builder form of [`VolumeMap::insert`].
    pub fn with(mut self, device: &str, drive: &str) -> VolumeMap {
        self.insert(device, drive);
        self
    }

    /// Every (device, drive) pair, device names lower-cased.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.devices.iter().map(|(d, l)| (d.as_str(), l.as_str()))
    }

    /// The DOS spelling of an NT path: `\Device\HarddiskVolume3\x` → `C:\x`.
    /// `\??\C:\x` and `\\?\C:\x` lose their prefix. Paths on unknown devices
    /// are returned unchanged (still matchable by a policy that names them).
    pub fn to_dos(&self, nt_path: &str) -> String {
        for prefix in [r"\??\", r"\\?\"] {
            if let Some(rest) = nt_path.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
        if !starts_with_ci(nt_path, r"\Device\") {
            return nt_path.to_string();
        }
        // The device is the first two components: \Device\<name>.
        let end = nt_path[1..]
            .find('\\')
            .and_then(|i| nt_path[i + 2..].find('\\').map(|j| i + 2 + j))
            .unwrap_or(nt_path.len());
        let (device, rest) = nt_path.split_at(end);
        match self.devices.get(&device.to_ascii_lowercase()) {
            Some(drive) if rest.is_empty() => format!("{drive}\\"),
            Some(drive) => format!("{drive}{rest}"),
            None => nt_path.to_string(),
        }
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Joins a directory-like path and a relative name with one backslash.
pub fn join(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('\\');
    let rel = rel.trim_start_matches('\\');
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => base.to_string(),
        _ => format!("{base}\\{rel}"),
    }
}

/// The registry roots: object-manager prefix → the short hive name used in
/// policies and output.
const HIVES: &[(&str, &str)] = &[
    (r"\REGISTRY\MACHINE", "HKLM"),
    (r"\REGISTRY\USER", "HKU"),
    (r"\REGISTRY\A", "HKAPP"),
    (r"\REGISTRY\WC", "HKWC"),
];

/// Long hive names people write → the short form.
const HIVE_ALIASES: &[(&str, &str)] = &[
    ("HKEY_LOCAL_MACHINE", "HKLM"),
    ("HKEY_USERS", "HKU"),
    ("HKEY_CURRENT_USER", "HKCU"),
    ("HKEY_CLASSES_ROOT", "HKCR"),
];

/// The number N of the control set `HKLM\SYSTEM\CurrentControlSet` links to
/// (`ControlSet00N`, from `HKLM\SYSTEM\Select\Current`); 1 until
/// [`set_current_control_set`] says otherwise, which is what Windows uses
/// unless a last-known-good boot switched sets.
static CURRENT_CONTROL_SET: AtomicU32 = AtomicU32::new(1);

/// Records which `ControlSet00N` is the current one (read at start).
pub fn set_current_control_set(n: u32) {
    CURRENT_CONTROL_SET.store(n, Ordering::Relaxed);
}

/// The kernel names keys by their real location: a change under
/// `CurrentControlSet` arrives as `HKLM\SYSTEM\ControlSet001\...`. Policies,
/// scans and the baseline use the link's name, so the current set is spelled
/// that way everywhere; other sets (a last-known-good copy) keep their name.
pub fn current_control_set(key: String) -> String {
    const SYSTEM: &str = r"HKLM\SYSTEM\";
    const SET: &str = "ControlSet";
    let Some(rest) = key.get(SYSTEM.len()..) else {
        return key;
    };
    if !starts_with_ci(&key, SYSTEM) || !starts_with_ci(rest, SET) {
        return key;
    }
    let digits = &rest[SET.len()..];
    let n_len = digits.bytes().take_while(u8::is_ascii_digit).count();
    let after = &digits[n_len..];
    let current = CURRENT_CONTROL_SET.load(Ordering::Relaxed);
    if n_len == 0 || !(after.is_empty() || after.starts_with('\\')) {
        return key;
    }
    if digits[..n_len].parse::<u32>().ok() != Some(current) {
        return key;
    }
    format!("{SYSTEM}CurrentControlSet{after}")
}

/// The short spelling of a registry key: `\REGISTRY\MACHINE\SOFTWARE\x` →
/// `HKLM\SOFTWARE\x`, `HKEY_LOCAL_MACHINE\x` → `HKLM\x`, and the current
/// `ControlSet00N` as `CurrentControlSet` ([`current_control_set`]). Anything
/// else is returned trimmed of trailing backslashes (None for a relative
/// name, which only means something next to its base key).
pub fn registry_key(path: &str) -> Option<String> {
    short_key(path).map(current_control_set)
}

fn short_key(path: &str) -> Option<String> {
    let path = path.trim_end_matches('\\');
    for (long, short) in HIVES {
        if starts_with_ci(path, long) {
            let rest = &path[long.len()..];
            if rest.is_empty() || rest.starts_with('\\') {
                return Some(format!("{short}{rest}"));
            }
        }
    }
    for (long, short) in HIVE_ALIASES.iter().chain(
        [
            ("HKLM", "HKLM"),
            ("HKU", "HKU"),
            ("HKCU", "HKCU"),
            ("HKCR", "HKCR"),
        ]
        .iter(),
    ) {
        if starts_with_ci(path, long) {
            let rest = &path[long.len()..];
            if rest.is_empty() || rest.starts_with('\\') {
                return Some(format!("{short}{rest}"));
            }
        }
    }
    None
}

/// An absolute registry object name as ETW gives it (`\REGISTRY\...`) in
/// short form; None for anything else (a name relative to some key object).
pub fn registry_object(name: &str) -> Option<String> {
    if starts_with_ci(name, r"\REGISTRY\") {
        registry_key(name)
    } else {
        None
    }
}

/// A policy's key pattern in the form ETW keys are compared with: HKCU
/// becomes every user's hive (`HKU\*`) and HKCR the machine's classes (the
/// per-user classes live under `HKU\<sid>_Classes`, also covered).
pub fn registry_pattern(key: &str) -> Vec<String> {
    let Some(k) = registry_key(key) else {
        return vec![key.trim_end_matches('\\').to_string()];
    };
    if let Some(rest) = k.strip_prefix("HKCU") {
        vec![format!("HKU\\*{rest}")]
    } else if let Some(rest) = k.strip_prefix("HKCR") {
        vec![
            format!("HKLM\\SOFTWARE\\Classes{rest}"),
            format!("HKU\\*_Classes{rest}"),
        ]
    } else {
        vec![k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_become_drive_letters() {
        let v = VolumeMap::new().with(r"\Device\HarddiskVolume3", "c:");
        assert_eq!(
            v.to_dos(r"\Device\HarddiskVolume3\Windows\System32\drivers\etc\hosts"),
            r"C:\Windows\System32\drivers\etc\hosts"
        );
        assert_eq!(
            v.to_dos(r"\device\harddiskvolume3\x"),
            r"C:\x",
            "device names are case-insensitive"
        );
        assert_eq!(v.to_dos(r"\Device\HarddiskVolume3"), r"C:\");
        assert_eq!(
            v.to_dos(r"\Device\HarddiskVolume30\x"),
            r"\Device\HarddiskVolume30\x",
            "a longer device number is another device"
        );
        assert_eq!(v.to_dos(r"\??\D:\y"), r"D:\y");
        assert_eq!(v.to_dos(r"C:\z"), r"C:\z");
        assert_eq!(
            v.to_dos(r"\Device\Mup\srv\share\f"),
            r"\Device\Mup\srv\share\f"
        );
    }

    #[test]
    fn registry_keys_use_short_hive_names() {
        assert_eq!(
            registry_key(r"\REGISTRY\MACHINE\SOFTWARE\Vigil").as_deref(),
            Some(r"HKLM\SOFTWARE\Vigil")
        );
        assert_eq!(
            registry_key(r"\Registry\User\S-1-5-21-1\Software\").as_deref(),
            Some(r"HKU\S-1-5-21-1\Software")
        );
        assert_eq!(
            registry_key(r"HKEY_LOCAL_MACHINE\SYSTEM").as_deref(),
            Some(r"HKLM\SYSTEM")
        );
        assert_eq!(registry_key(r"\REGISTRY\MACHINEX\a"), None);
    }

    #[test]
    fn the_current_control_set_is_named_as_the_link() {
        // The static is process-wide: only this test sets it, to the default.
        set_current_control_set(1);
        assert_eq!(
            registry_key(r"\REGISTRY\MACHINE\SYSTEM\ControlSet001\Services\evil").as_deref(),
            Some(r"HKLM\SYSTEM\CurrentControlSet\Services\evil")
        );
        assert_eq!(
            registry_key(r"\REGISTRY\MACHINE\system\controlset001").as_deref(),
            Some(r"HKLM\SYSTEM\CurrentControlSet")
        );
        // Another set (a last-known-good copy) keeps its name.
        assert_eq!(
            registry_key(r"\REGISTRY\MACHINE\SYSTEM\ControlSet002\Services").as_deref(),
            Some(r"HKLM\SYSTEM\ControlSet002\Services")
        );
        assert_eq!(
            registry_key(r"HKLM\SYSTEM\ControlSet0010\x").as_deref(),
            Some(r"HKLM\SYSTEM\ControlSet0010\x")
        );
        assert_eq!(
            registry_key(r"HKLM\SYSTEM\ControlSetX").as_deref(),
            Some(r"HKLM\SYSTEM\ControlSetX")
        );
        assert_eq!(
            current_control_set(join(r"HKLM\SYSTEM", r"ControlSet001\Control\Lsa")),
            r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa"
        );
    }

    #[test]
    fn relative_names_and_object_names() {
        assert_eq!(registry_key("Software\\Run"), None);
        assert_eq!(
            registry_object(r"HKU\x"),
            None,
            "ETW names are object names"
        );
        assert_eq!(
            registry_object(r"\REGISTRY\USER\x").as_deref(),
            Some(r"HKU\x")
        );
        assert_eq!(
            registry_pattern(r"HKCU\Software\x"),
            vec![r"HKU\*\Software\x"]
        );
        assert_eq!(join(r"HKLM\SOFTWARE\", r"\Vigil"), r"HKLM\SOFTWARE\Vigil");
    }
}
