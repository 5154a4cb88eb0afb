//! Reading the live registry (Windows only): the [`RegistryReader`] the
//! interpreter uses for "after", and a walk that seeds the baseline.
use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_MORE_DATA, ERROR_NO_MORE_ITEMS, ERROR_SUCCESS,
};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegEnumKeyExW, RegEnumValueW, RegGetValueW, RegOpenKeyExW, HKEY,
    HKEY_CLASSES_ROOT, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, HKEY_USERS, KEY_READ, RRF_NOEXPAND,
    RRF_RT_ANY,
};

use crate::baseline::{ReadError, RegistryBaseline, RegistryReader, RegistryValue};
use crate::paths;

/// Reads values with `RegGetValueW` (REG_EXPAND_SZ kept unexpanded: the
/// baseline compares what is stored, not what it expands to).
#[derive(Debug, Default, Clone, Copy)]
pub struct WinRegReader;

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// The predefined root and the subkey path of a key in short form.
fn split(key: &str) -> Option<(HKEY, String)> {
    let k = paths::registry_key(key)?;
    let (hive, rest) = k.split_once('\\').unwrap_or((k.as_str(), ""));
    let root = match hive {
        "HKLM" => HKEY_LOCAL_MACHINE,
        "HKU" => HKEY_USERS,
        "HKCU" => HKEY_CURRENT_USER,
        "HKCR" => HKEY_CLASSES_ROOT,
        _ => return None,
    };
    Some((root, rest.to_string()))
}

impl RegistryReader for WinRegReader {
    fn read(&self, key: &str, value: &str) -> Result<RegistryValue, ReadError> {
        let fail = |message: String| ReadError::Failed {
            key: key.to_string(),
            value: value.to_string(),
            message,
        };
        let (root, sub) = split(key).ok_or_else(|| fail("not a key under a known hive".into()))?;
        let (sub, name) = (wide(&sub), wide(value));
        let mut buf = vec![0u8; 256];
        loop {
            let mut ty = 0u32;
            let mut len = buf.len() as u32;
            // Safety: the strings are NUL-terminated; len is the buffer's size.
            let rc = unsafe {
                RegGetValueW(
                    root,
                    sub.as_ptr(),
                    name.as_ptr(),
                    RRF_RT_ANY | RRF_NOEXPAND,
                    &mut ty,
                    buf.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            match rc {
                ERROR_SUCCESS => {
                    buf.truncate(len as usize);
                    return Ok(RegistryValue::new(ty, &buf));
                }
                // The value grew between the size query and the read: retry.
                ERROR_MORE_DATA => buf.resize((len as usize).max(buf.len() * 2), 0),
                ERROR_FILE_NOT_FOUND => {
                    return Err(ReadError::NotFound {
                        key: key.to_string(),
                        value: value.to_string(),
                    })
                }
                e => return Err(fail(format!("RegGetValueW error {e}"))),
            }
        }
    }
}

/// An open key, closed on drop.
struct Key(HKEY);

impl Drop for Key {
    fn drop(&mut self) {
        // Safety: the handle came from RegOpenKeyExW and is closed once.
        unsafe { RegCloseKey(self.0) };
    }
}

fn open(key: &str) -> Option<Key> {
    let (root, sub) = split(key)?;
    let mut h: HKEY = std::ptr::null_mut();
    // Safety: sub is NUL-terminated; h receives the handle.
    let rc = unsafe { RegOpenKeyExW(root, wide(&sub).as_ptr(), 0, KEY_READ, &mut h) };
    (rc == ERROR_SUCCESS).then_some(Key(h))
}

/// The names of a key's values and subkeys (None if it cannot be opened).
pub fn list(key: &str) -> Option<(Vec<String>, Vec<String>)> {
    let k = open(key)?;
    let mut values = Vec::new();
    let mut subkeys = Vec::new();
    let mut name = vec![0u16; 16384];
    for i in 0.. {
        let mut len = name.len() as u32;
        // Safety: name holds len UTF-16 units; the other outputs are optional.
        let rc = unsafe {
            RegEnumValueW(
                k.0,
                i,
                name.as_mut_ptr(),
                &mut len,
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == ERROR_NO_MORE_ITEMS || rc != ERROR_SUCCESS {
            break;
        }
        values.push(String::from_utf16_lossy(&name[..len as usize]));
    }
    for i in 0.. {
        let mut len = name.len() as u32;
        // Safety: as above.
        let rc = unsafe {
            RegEnumKeyExW(
                k.0,
                i,
                name.as_mut_ptr(),
                &mut len,
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc != ERROR_SUCCESS {
            break;
        }
        subkeys.push(String::from_utf16_lossy(&name[..len as usize]));
    }
    Some((values, subkeys))
}

/// Reads every value under `key` (and its subkeys, to `depth` levels) into
/// the baseline; returns how many values were read. Keys that cannot be
/// opened (absent, or denied) are skipped: the ETW side reports their later
/// creation.
pub fn seed(baseline: &mut RegistryBaseline, key: &str, depth: usize) -> usize {
    let Some((values, subkeys)) = list(key) else {
        return 0;
    };
    let mut n = 0;
    for v in values {
        if let Ok(val) = WinRegReader.read(key, &v) {
            baseline.set(key, &v, val);
            n += 1;
        }
    }
    if depth > 0 {
        for s in subkeys {
            n += seed(baseline, &paths::join(key, &s), depth - 1);
        }
    }
    n
}

/// How deep [`seed_policy`] walks below a recursive watched key.
pub const SEED_DEPTH: usize = 16;

/// Seeds the baseline with every value under the policy's registry watches,
/// as ETW will name them: `HKCU\X` becomes `HKU\<sid>\X` for each loaded
/// user hive (and `HKCR\X` the machine's and each user's classes), so a
/// later `value_set` finds its `before`. Returns how many values were read.
pub fn seed_policy(baseline: &mut RegistryBaseline, policy: &crate::Policy) -> usize {
    let mut n = 0;
    for w in &policy.registry {
        let depth = if w.recursive { SEED_DEPTH } else { 0 };
        for pattern in paths::registry_pattern(&w.key) {
            for key in expand(&pattern) {
                n += seed(baseline, &key, depth);
            }
        }
    }
    n
}

/// The existing keys a pattern with `*` components names (`HKU\*\Software`).
fn expand(pattern: &str) -> Vec<String> {
    let mut keys = vec![String::new()];
    for comp in pattern.split('\\') {
        let mut next = Vec::new();
        for k in &keys {
            if !comp.contains('*') {
                next.push(paths::join(k, comp));
                continue;
            }
            let Some((_, subkeys)) = list(k) else {
                continue;
            };
            next.extend(
                subkeys
                    .iter()
                    .filter(|s| wildcard(comp, s))
                    .map(|s| paths::join(k, s)),
            );
        }
        keys = next;
    }
    keys
}

/// `*` matches any run of characters, case-insensitively (one component).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_lowercase(), name.to_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !n.starts_with(first) || n.len() < first.len() + last.len() || !n.ends_with(last) {
        return false;
    }
    let mut rest = &n[first.len()..n.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Which `ControlSet00N` `CurrentControlSet` links to
/// (`HKLM\SYSTEM\Select\Current`): the kernel names keys under the link by
/// number, and [`paths::set_current_control_set`] needs to know which one.
pub fn current_control_set() -> Result<u32, String> {
    use crate::baseline::RegistryData;
    let v = WinRegReader
        .read(r"HKLM\SYSTEM\Select", "Current")
        .map_err(|e| e.to_string())?;
    match v.data {
        RegistryData::Bytes(b) if b.len() == 4 => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => Err("it is not a DWORD".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::System::Registry::{
        RegDeleteTreeW, RegSetKeyValueW, REG_DWORD, REG_SZ,
    };

    const KEY: &str = r"HKCU\Software\VigilRegreadTest";

    fn set(value: &str, ty: u32, data: &[u8]) {
        let (_, sub) = split(KEY).unwrap();
        // Safety: NUL-terminated strings; data and its length match.
        let rc = unsafe {
            RegSetKeyValueW(
                HKEY_CURRENT_USER,
                wide(&sub).as_ptr(),
                wide(value).as_ptr(),
                ty,
                data.as_ptr().cast(),
                data.len() as u32,
            )
        };
        assert_eq!(rc, ERROR_SUCCESS, "RegSetKeyValueW {value}");
    }

    #[test]
    fn reads_what_was_written_and_reports_missing_values() {
        let v = RegistryValue::sz("FIMTEST");
        let crate::baseline::RegistryData::Bytes(bytes) = &v.data else {
            unreachable!()
        };
        set("FIMTEST", REG_SZ, bytes);
        set("Count", REG_DWORD, &7u32.to_le_bytes());
        let got = WinRegReader.read(KEY, "FIMTEST").unwrap();
        assert_eq!(got.display(), "FIMTEST");
        assert_eq!(got.type_name(), "REG_SZ");
        assert_eq!(WinRegReader.read(KEY, "Count").unwrap().display(), "7");
        assert!(matches!(
            WinRegReader.read(KEY, "Absent"),
            Err(ReadError::NotFound { .. })
        ));
        let mut b = RegistryBaseline::new();
        assert_eq!(seed(&mut b, KEY, 2), 2);
        assert_eq!(b.get(KEY, "fimtest"), Some(&got));
        // The policy's HKCU key is seeded as ETW names it: HKU\<sid>\...
        let policy = crate::Policy::parse(&format!("[[registry]]\nkey = '{KEY}'\n"), "t").unwrap();
        let mut b = RegistryBaseline::new();
        assert!(seed_policy(&mut b, &policy) >= 2, "{b:?}");
        let user_keys: Vec<_> = b.iter().map(|(k, _, _)| k.to_string()).collect();
        assert!(
            user_keys.iter().all(|k| k.starts_with(r"hku\s-1-5-") && k.ends_with(r"\software\vigilregreadtest")),
            "{user_keys:?}"
        );
        let (_, sub) = split(KEY).unwrap();
        // Safety: NUL-terminated subkey of HKCU created by this test.
        unsafe { RegDeleteTreeW(HKEY_CURRENT_USER, wide(&sub).as_ptr()) };
    }

    #[test]
    fn wildcards_match_one_component() {
        assert!(wildcard("*", "S-1-5-18"));
        assert!(wildcard("*_Classes", "S-1-5-21-1_Classes"));
        assert!(!wildcard("*_Classes", "S-1-5-21-1"));
        assert!(wildcard("a*b*c", "AxxBxxC"));
        assert!(!wildcard("a*b*c", "acb"));
    }
}
