//! Tamper evidence: the per-host key, the hash chain over the event feed, and
//! `vigil verify` ([`verify`]).
//!
//! Every event `vigil run` emits carries `seq`, `key_id` and `chain`:
//!
//! ```text
//! chain(n) = BLAKE3-keyed(host key, chain(n-1) || canonical(n))     (32 bytes, hex in the event)
//! chain(0) = GENESIS (32 zero bytes)
//! ```
//!
//! `canonical(n)` is the event's native JSON line exactly as written, without
//! its `chain` member: `chain` is always the last member, so the canonical
//! bytes are the line with its trailing `,"chain":"<64 hex>"` removed (the
//! line then ends with `}`). Verifiers never re-serialize: they strip the
//! suffix from the bytes they read. See docs/security.md.
pub mod verify;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the host key lives unless the policy (`[integrity] key`) or the
/// command line (`--key`) says otherwise: next to the default store.
#[cfg(not(windows))]
pub const DEFAULT_KEY_PATH: &str = "/var/lib/vigil/host.key";
/// Where the host key lives by default on Windows: next to the default store.
#[cfg(windows)]
pub const DEFAULT_KEY_PATH: &str = r"C:\ProgramData\Vigil\host.key";

/// What the first event of a run (its `start`) chains from.
pub const GENESIS: [u8; 32] = [0; 32];

/// BLAKE3 `derive_key` context of the key id.
pub const KEY_ID_CONTEXT: &str = "vigil host key id";

/// The member a sealed native line ends with, before the 64 hex digits.
const CHAIN_PREFIX: &[u8] = b",\"chain\":\"";
/// Length of the sealed suffix: `,"chain":"` + 64 hex + `"` (the final `}` stays).
const CHAIN_SUFFIX_LEN: usize = CHAIN_PREFIX.len() + 64 + 1;

/// Where the host key is: `--key`, else `[integrity] key`, else `host.key`
/// next to the store (`--db`, else `[store] path`, else the default store),
/// which is [`DEFAULT_KEY_PATH`] with the default store.
pub fn key_path(cli: Option<PathBuf>, cfg: &crate::config::Config, db: Option<&Path>) -> PathBuf {
    cli.or_else(|| cfg.integrity.key.clone())
        .unwrap_or_else(|| {
            let store = db
                .map(Path::to_path_buf)
                .or_else(|| cfg.store.path.clone())
                .unwrap_or_else(|| PathBuf::from(crate::store::DEFAULT_PATH));
            store.with_file_name("host.key")
        })
}

/// The per-host secret: 32 random bytes, stored as 64 lower-case hex digits
/// and a newline, mode 0600, owned by the user running Vigil (root).
#[derive(Clone)]
pub struct HostKey {
    key: [u8; 32],
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("HostKey")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

/// The key id: the first 16 hex digits of BLAKE3 `derive_key("vigil host key
/// id", key)`. It names the key in every event without revealing it.
pub fn key_id(key: &[u8; 32]) -> String {
    hex(&blake3::derive_key(KEY_ID_CONTEXT, key))[..16].to_string()
}

impl HostKey {
    /// A key from its bytes (tests; `path` is only used in messages).
    pub fn from_bytes(key: [u8; 32], path: &Path) -> HostKey {
        HostKey {
            id: key_id(&key),
            key,
            path: path.to_path_buf(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key used for the chain.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Reads an existing key file and refuses one that others could read or
    /// write, that is not a regular file, or that another user owns.
    #[cfg(unix)]
    pub fn load(path: &Path) -> Result<HostKey> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => anyhow::anyhow!(
                    "host key {}: is a symbolic link; the key must be a regular file (point --key or [integrity] key at the file itself)",
                    path.display()
                ),
                _ => anyhow::anyhow!("cannot read host key {}: {e}", path.display()),
            })?;
        // The checks are made on the open file, not on the path.
        let m = f
            .metadata()
            .with_context(|| format!("host key {}", path.display()))?;
        if !m.is_file() {
            bail!("host key {}: not a regular file", path.display());
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o077 != 0 {
            bail!(
                "host key {} is accessible to group or others (mode {mode:04o}): anyone who can read it can forge the event chain; run `chmod 600 {}` (if someone else may have read it, move it away and run `vigil key init` for a new one)",
                path.display(),
                path.display()
            );
        }
        let euid = unsafe { libc::geteuid() };
        if m.uid() != euid {
            bail!(
                "host key {} is owned by uid {}, not by uid {euid} running vigil: whoever owns it can replace it; run `chown {euid}:{} {}` if the file is genuine",
                path.display(),
                m.uid(),
                unsafe { libc::getegid() },
                path.display()
            );
        }
        let mut text = String::new();
        f.take(200)
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("cannot read host key {}: {e}", path.display()))?;
        let key = parse_hex32(text.trim_end_matches('\n')).ok_or_else(|| {
            anyhow::anyhow!(
                "host key {}: not a Vigil host key (expected 64 hex digits and a newline); move it away and run `vigil key init` for a new one",
                path.display()
            )
        })?;
        Ok(HostKey::from_bytes(key, path))
    }

    /// Creates a new random key at `path`, atomically: written to a private
    /// temporary file (O_EXCL, mode 0600), synced, then hard-linked to its
    /// name, which fails if a key appeared there meanwhile. The directory is
    /// created (mode 0700) when missing.
    #[cfg(unix)]
    pub fn create(path: &Path) -> Result<HostKey> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {} for the host key", dir.display()))?;
        }
        let key = random_key()?;
        let name = path
            .file_name()
            .with_context(|| format!("host key path {} has no file name", path.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let written = f
            .write_all(format!("{}\n", hex(&key)).as_bytes())
            .and_then(|_| f.sync_all());
        drop(f);
        let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("host key {} already exists", path.display())
            }
            Err(e) => bail!("cannot write host key {}: {e}", path.display()),
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(HostKey::from_bytes(key, path))
    }

    /// The key at `path`, created on first use. True when it was created.
    #[cfg(unix)]
    pub fn load_or_create(path: &Path) -> Result<(HostKey, bool)> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((HostKey::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match HostKey::create(path) {
                Ok(k) => Ok((k, true)),
                // Another vigil created it first: use that one.
                Err(_) if path.exists() => Ok((HostKey::load(path)?, false)),
                Err(e) => Err(e),
            },
            Err(e) => bail!("cannot read host key {}: {e}", path.display()),
        }
    }

    /// Windows: reads an existing key file; refuses one that is not a
    /// regular file (a reparse point, a directory). Its ACL is not checked:
    /// the key is as private as its directory (C:\ProgramData\Vigil must be
    /// restricted to Administrators and SYSTEM; docs/windows.md).
    #[cfg(not(unix))]
    pub fn load(path: &Path) -> Result<HostKey> {
        let m = std::fs::symlink_metadata(path)
            .map_err(|e| anyhow::anyhow!("cannot read host key {}: {e}", path.display()))?;
        if !m.is_file() {
            bail!(
                "host key {}: not a regular file (a link or a directory); point --key or [integrity] key at the file itself",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read host key {}: {e}", path.display()))?;
        let key = parse_hex32(text.trim_end_matches(['\r', '\n'])).ok_or_else(|| {
            anyhow::anyhow!(
                "host key {}: not a Vigil host key (expected 64 hex digits and a newline); move it away and run `vigil key init` for a new one",
                path.display()
            )
        })?;
        Ok(HostKey::from_bytes(key, path))
    }

    /// Windows: a new random key at `path`, written to a temporary file and
    /// renamed to its name only if no key is there (the rename fails then).
    #[cfg(not(unix))]
    pub fn create(path: &Path) -> Result<HostKey> {
        use std::io::Write;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the host key", dir.display()))?;
        let key = random_key()?;
        let name = path
            .file_name()
            .with_context(|| format!("host key path {} has no file name", path.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(format!("{}\n", hex(&key)).as_bytes())?;
                f.sync_all()
            });
        // A hard link, as on Unix: fails when the name exists.
        let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(HostKey::from_bytes(key, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("host key {} already exists", path.display())
            }
            Err(e) => bail!("cannot write host key {}: {e}", path.display()),
        }
    }

    /// The key at `path`, created on first use. True when it was created.
    #[cfg(not(unix))]
    pub fn load_or_create(path: &Path) -> Result<(HostKey, bool)> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((HostKey::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match HostKey::create(path) {
                Ok(k) => Ok((k, true)),
                Err(_) if path.exists() => Ok((HostKey::load(path)?, false)),
                Err(e) => Err(e),
            },
            Err(e) => bail!("cannot read host key {}: {e}", path.display()),
        }
    }
}

/// 32 bytes from the system's CSPRNG (BCryptGenRandom).
#[cfg(windows)]
fn random_key() -> Result<[u8; 32]> {
    use windows_sys::Win32::Security::Cryptography::{
        BCryptGenRandom, BCRYPT_USE_SYSTEM_PREFERRED_RNG,
    };
    let mut key = [0u8; 32];
    // SAFETY: fills exactly the buffer's length.
    let status = unsafe {
        BCryptGenRandom(
            std::ptr::null_mut(),
            key.as_mut_ptr(),
            key.len() as u32,
            BCRYPT_USE_SYSTEM_PREFERRED_RNG,
        )
    };
    if status != 0 {
        bail!("BCryptGenRandom failed: NTSTATUS {status:#x}");
    }
    Ok(key)
}

/// 32 bytes from the kernel's CSPRNG (getrandom(2), blocking until it is seeded).
#[cfg(unix)]
fn random_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: writes at most the remaining length into the buffer.
        let n =
            unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), key.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("getrandom: {e}");
        }
        filled += n as usize;
    }
    Ok(key)
}

/// One link: BLAKE3 keyed with the host key over `prev || canonical`.
pub fn link(key: &[u8; 32], prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(prev);
    h.update(canonical);
    *h.finalize().as_bytes()
}

/// The emitting side of the chain: one per run, fed in `seq` order.
pub struct Chain {
    key: HostKey,
    prev: [u8; 32],
}

impl Chain {
    /// A chain starting from [`GENESIS`].
    pub fn new(key: HostKey) -> Chain {
        Chain { key, prev: GENESIS }
    }

    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// Links the next event's canonical bytes (its native line without
    /// `chain`, ending with `}`) and returns the sealed line and the chain
    /// value in hex.
    pub fn seal(&mut self, canonical: &[u8]) -> (Vec<u8>, String) {
        self.seal_owned(canonical.to_vec())
    }

    /// As [`Chain::seal`], turning the canonical bytes into the line in
    /// place (the emitter's path: no copy of the line).
    pub fn seal_owned(&mut self, mut canonical: Vec<u8>) -> (Vec<u8>, String) {
        let c = link(self.key.bytes(), &self.prev, &canonical);
        self.prev = c;
        let hex = hex(&c);
        debug_assert_eq!(canonical.last(), Some(&b'}'));
        canonical.pop();
        canonical.extend_from_slice(CHAIN_PREFIX);
        canonical.extend_from_slice(hex.as_bytes());
        canonical.extend_from_slice(b"\"}");
        (canonical, hex)
    }
}

/// `{...}` → `{...,"chain":"<hex>"}`.
pub fn append_chain(canonical: &[u8], chain_hex: &str) -> Vec<u8> {
    debug_assert_eq!(canonical.last(), Some(&b'}'));
    let body = &canonical[..canonical.len().saturating_sub(1)];
    let mut line = Vec::with_capacity(canonical.len() + CHAIN_SUFFIX_LEN);
    line.extend_from_slice(body);
    line.extend_from_slice(CHAIN_PREFIX);
    line.extend_from_slice(chain_hex.as_bytes());
    line.extend_from_slice(b"\"}");
    line
}

/// A sealed line split into its canonical bytes and its chain value; None when
/// the line does not end with a `"chain"` member of 64 hex digits.
pub fn split_chain(line: &[u8]) -> Option<(Vec<u8>, [u8; 32])> {
    if line.len() < CHAIN_SUFFIX_LEN + 2 || !line.ends_with(b"\"}") {
        return None;
    }
    let start = line.len() - 1 - CHAIN_SUFFIX_LEN;
    let suffix = &line[start..line.len() - 1];
    if !suffix.starts_with(CHAIN_PREFIX) {
        return None;
    }
    let digits = std::str::from_utf8(&suffix[CHAIN_PREFIX.len()..CHAIN_PREFIX.len() + 64]).ok()?;
    let chain = parse_hex32(digits)?;
    let mut canonical = line[..start].to_vec();
    canonical.push(b'}');
    Some((canonical, chain))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// 64 lower-case (or upper-case) hex digits → 32 bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_defaults_next_to_the_store() {
        let cfg = crate::config::Config::parse("", "p").unwrap();
        assert_eq!(key_path(None, &cfg, None), Path::new(DEFAULT_KEY_PATH));
        assert_eq!(
            key_path(None, &cfg, Some(Path::new("/tmp/x/v.db"))),
            Path::new("/tmp/x/host.key")
        );
        let cfg = crate::config::Config::parse("[integrity]\nkey = \"/k\"\n", "p").unwrap();
        assert_eq!(key_path(None, &cfg, None), Path::new("/k"));
        assert_eq!(key_path(Some("/cli".into()), &cfg, None), Path::new("/cli"));
    }

    #[test]
    fn key_id_is_derived_and_16_hex() {
        let id = key_id(&[7; 32]);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            id,
            hex(&blake3::derive_key("vigil host key id", &[7; 32]))[..16]
        );
        assert_ne!(id, key_id(&[8; 32]));
    }

    #[test]
    fn seal_then_split_round_trips() {
        let mut c = Chain::new(HostKey::from_bytes([1; 32], Path::new("k")));
        let canonical = br#"{"schema":"vigil/0.2","seq":1,"key_id":"x"}"#;
        let (line, chain) = c.seal(canonical);
        assert!(line.ends_with(format!(",\"chain\":\"{chain}\"}}").as_bytes()));
        let (back, value) = split_chain(&line).unwrap();
        assert_eq!(back, canonical);
        assert_eq!(hex(&value), chain);
        assert_eq!(value, link(&[1; 32], &GENESIS, canonical));
        // The next link chains from this one.
        let (_, second) = c.seal(b"{}");
        assert_eq!(second, hex(&link(&[1; 32], &value, b"{}")));
        assert!(split_chain(b"{\"a\":1}").is_none());
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn key_is_created_0600_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/host.key");
        let (k, created) = HostKey::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "64 hex digits and a newline");
        let (again, created) = HostKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.id(), k.id());
        assert_eq!(again.bytes(), k.bytes());
        let e = HostKey::create(&path).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["host.key"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        HostKey::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = HostKey::load(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        assert!(e.contains("mode 0644"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        HostKey::load(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_or_garbage_is_not_a_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        HostKey::create(&real).unwrap();
        let link = dir.path().join("host.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = HostKey::load(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "not a key\n").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = HostKey::load(&junk).unwrap_err().to_string();
        assert!(e.contains("expected 64 hex digits"), "{e}");
    }
}
