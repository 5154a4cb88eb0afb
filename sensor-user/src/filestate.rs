//! A file's state as the pipeline reports it in `before` and `after`.
use crate::event::FileState;
use std::collections::BTreeMap;
#[cfg(unix)]
use std::ffi::CString;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The security extended attributes kept in a file's state.
pub const SECURITY_XATTRS: [&str; 3] = ["security.capability", "security.selinux", "security.ima"];

/// Reads metadata, link target and security xattrs of `path` without following
/// a final symlink. Hashes are filled in by the caller.
#[cfg(unix)]
pub fn read_state(path: &Path) -> std::io::Result<FileState> {
    let m = std::fs::symlink_metadata(path)?;
    let ft = m.file_type();
    let link_target = ft
        .is_symlink()
        .then(|| std::fs::read_link(path).ok())
        .flatten()
        .map(|t| t.display().to_string());
    Ok(FileState {
        file_type: type_name(m.mode()),
        size: m.size(),
        mode: format!("{:04o}", m.mode() & 0o7777),
        uid: m.uid(),
        gid: m.gid(),
        mtime: rfc3339(m.mtime(), m.mtime_nsec()),
        ctime: rfc3339(m.ctime(), m.ctime_nsec()),
        inode: m.ino(),
        nlink: m.nlink(),
        link_target,
        xattrs: security_xattrs(path),
        owner: None,
        acl: None,
        hashes: BTreeMap::new(),
        hash_note: None,
    })
}

/// Whether two states describe the same bytes, so a digest can be reused:
/// same inode, size, mtime and ctime. ctime is the guard against timestomping
/// (a process can reset mtime after writing, but not ctime).
pub fn same_content(a: &FileState, b: &FileState) -> bool {
    a.inode == b.inode && a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime
}

/// Names of the fields that differ, in a stable order. `hashes` compares the
/// digests both sides have.
pub fn fields_changed(before: &FileState, after: &FileState) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_string());
        }
    };
    check("type", before.file_type != after.file_type);
    check("size", before.size != after.size);
    check("mode", before.mode != after.mode);
    check("uid", before.uid != after.uid);
    check("gid", before.gid != after.gid);
    check("mtime", before.mtime != after.mtime);
    check("ctime", before.ctime != after.ctime);
    check("inode", before.inode != after.inode);
    check("nlink", before.nlink != after.nlink);
    check("link_target", before.link_target != after.link_target);
    check("xattrs", before.xattrs != after.xattrs);
    // Windows owner and DACL: compared only when both sides were read (a
    // baseline from before they were recorded has neither).
    let both_differ = |a: &Option<String>, b: &Option<String>| a.is_some() && b.is_some() && a != b;
    check("owner", both_differ(&before.owner, &after.owner));
    check("acl", both_differ(&before.acl, &after.acl));
    let hash_differs = before
        .hashes
        .iter()
        .any(|(k, v)| after.hashes.get(k).is_some_and(|w| w != v));
    check("hashes", hash_differs);
    out
}

#[cfg(unix)]
fn security_xattrs(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return out;
    };
    // One llistxattr tells which exist (usually none): no lgetxattr for the rest.
    let mut names = [0u8; 1024];
    // SAFETY: valid NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    // A list too long for the buffer (ERANGE) means: look them all up.
    let too_long = n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE);
    let present = |name: &str| {
        too_long
            || n > 0
                && names[..n as usize]
                    .split(|b| *b == 0)
                    .any(|x| x == name.as_bytes())
    };
    let mut buf = [0u8; 4096];
    for name in SECURITY_XATTRS.into_iter().filter(|n| present(n)) {
        let cname = CString::new(name).expect("static name");
        // SAFETY: valid NUL-terminated strings and a buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                cpath.as_ptr(),
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            let v = &buf[..n as usize];
            // SELinux labels are text; the others are binary structures.
            let shown = match std::str::from_utf8(v.strip_suffix(b"\0").unwrap_or(v)) {
                Ok(s) if name == "security.selinux" => s.to_string(),
                _ => v.iter().map(|b| format!("{b:02x}")).collect(),
            };
            out.insert(name.to_string(), shown);
        }
    }
    out
}

/// The event schema's name for the file type in a `st_mode`.
#[cfg(unix)]
pub fn type_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "char",
        libc::S_IFBLK => "block",
        _ => "unknown",
    }
}

/// Windows: the same fields from the file's handle, opened for attributes
/// only (no share conflict with writers) and without following a final
/// reparse point:
/// - `mode`: the `FILE_ATTRIBUTE_*` bits in hex (`0x00000020` = archive),
///   so `fields_changed` names `mode` when read-only, hidden, system... change;
/// - `uid`/`gid`: 0 (Windows owners are SIDs: `owner`);
/// - `owner`, `acl`: the owner's SID and the DACL as SDDL ([`security`]),
///   None when they cannot be read (no READ_CONTROL);
/// - `mtime`: LastWriteTime; `ctime`: ChangeTime (metadata or content
///   changed; cannot be set through the Win32 API, the timestomping guard);
/// - `inode`: the NTFS file index (volume-unique); `nlink`: hard links;
/// - `type`: `dir`, `symlink` (any reparse point) or `file`;
/// - `xattrs`: none.
#[cfg(windows)]
pub fn read_state(path: &Path) -> std::io::Result<FileState> {
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::{FromRawHandle, OwnedHandle};
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FileBasicInfo, GetFileInformationByHandle, GetFileInformationByHandleEx,
        BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT,
        FILE_BASIC_INFO, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
        FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
    };
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
    // SAFETY: a NUL-terminated path; the handle is owned (closed) below.
    let h = unsafe {
        CreateFileW(
            wide.as_ptr(),
            FILE_READ_ATTRIBUTES,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
            std::ptr::null_mut(),
        )
    };
    if h == windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a valid handle we own from here on.
    let owned = unsafe { OwnedHandle::from_raw_handle(h) };
    // SAFETY: out-structures of the sizes passed, on a valid handle.
    let (info, basic) = unsafe {
        let mut info: BY_HANDLE_FILE_INFORMATION = std::mem::zeroed();
        if GetFileInformationByHandle(h, &mut info) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut basic: FILE_BASIC_INFO = std::mem::zeroed();
        if GetFileInformationByHandleEx(
            h,
            FileBasicInfo,
            (&mut basic as *mut FILE_BASIC_INFO).cast(),
            std::mem::size_of::<FILE_BASIC_INFO>() as u32,
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        (info, basic)
    };
    drop(owned);
    let (owner, acl) = security(&wide);
    let attrs = info.dwFileAttributes;
    let file_type = if attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        "symlink"
    } else if attrs & FILE_ATTRIBUTE_DIRECTORY != 0 {
        "dir"
    } else {
        "file"
    };
    let link_target = (file_type == "symlink")
        .then(|| std::fs::read_link(path).ok())
        .flatten()
        .map(|t| t.display().to_string());
    Ok(FileState {
        file_type,
        size: (u64::from(info.nFileSizeHigh) << 32) | u64::from(info.nFileSizeLow),
        mode: format!("0x{attrs:08x}"),
        uid: 0,
        gid: 0,
        mtime: filetime_rfc3339(basic.LastWriteTime),
        ctime: filetime_rfc3339(basic.ChangeTime),
        inode: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        nlink: u64::from(info.nNumberOfLinks),
        link_target,
        xattrs: BTreeMap::new(),
        owner,
        acl,
        hashes: BTreeMap::new(),
        hash_note: None,
    })
}

/// Windows: the owner's SID and the DACL (SDDL) of the file at `wide` (a
/// NUL-terminated path), not following a final reparse point; None when
/// the file cannot be opened for READ_CONTROL or the descriptor not read
/// or converted.
#[cfg(windows)]
pub fn security(wide: &[u16]) -> (Option<String>, Option<String>) {
    use std::os::windows::io::{FromRawHandle, OwnedHandle};
    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
        GetSecurityInfo, SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE,
        FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING, READ_CONTROL,
    };
    // SAFETY: a NUL-terminated path; the handle is owned (closed) below;
    // the descriptor and strings the API allocates are freed with LocalFree.
    unsafe {
        let h = CreateFileW(
            wide.as_ptr(),
            READ_CONTROL,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
            std::ptr::null_mut(),
        );
        if h == INVALID_HANDLE_VALUE {
            return (None, None);
        }
        let _owned = OwnedHandle::from_raw_handle(h);
        let mut owner: PSID = std::ptr::null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        let rc = GetSecurityInfo(
            h,
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        );
        if rc != ERROR_SUCCESS || sd.is_null() {
            return (None, None);
        }
        let take = |p: *mut u16| -> Option<String> {
            if p.is_null() {
                return None;
            }
            let mut n = 0;
            while *p.add(n) != 0 {
                n += 1;
            }
            let s = String::from_utf16_lossy(std::slice::from_raw_parts(p, n));
            LocalFree(p.cast());
            Some(s)
        };
        let mut sid_str = std::ptr::null_mut();
        let sid = (!owner.is_null() && ConvertSidToStringSidW(owner, &mut sid_str) != 0)
            .then(|| take(sid_str))
            .flatten();
        let mut sddl = std::ptr::null_mut();
        let dacl = (ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut sddl,
            std::ptr::null_mut(),
        ) != 0)
            .then(|| take(sddl))
            .flatten();
        LocalFree(sd);
        (sid, dacl)
    }
}

/// A FILETIME-style count of 100 ns since 1601-01-01 as RFC 3339 UTC.
pub fn filetime_rfc3339(t: i64) -> String {
    const EPOCH_DIFF_S: i64 = 11_644_473_600;
    let secs = t.div_euclid(10_000_000) - EPOCH_DIFF_S;
    let nsec = t.rem_euclid(10_000_000) * 100;
    rfc3339(secs, nsec)
}

fn rfc3339(secs: i64, nsec: i64) -> String {
    chrono::DateTime::from_timestamp(secs, nsec as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_are_utc_since_1601() {
        assert_eq!(
            filetime_rfc3339(116_444_736_000_000_000),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            filetime_rfc3339(133_485_408_001_234_567),
            "2024-01-01T00:00:00.123456700Z"
        );
    }

    #[cfg(windows)]
    #[test]
    fn windows_state_has_attributes_file_index_and_times() {
        use std::os::windows::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        std::fs::write(&p, b"abc").unwrap();
        let a = read_state(&p).unwrap();
        assert_eq!((a.file_type, a.size, a.nlink), ("file", 3, 1));
        let attrs = std::fs::metadata(&p).unwrap().file_attributes();
        assert_eq!(a.mode, format!("0x{attrs:08x}"));
        assert_ne!(a.inode, 0, "the file index identifies the file");
        assert!(a.mtime.ends_with('Z') && a.ctime.ends_with('Z'), "{a:?}");
        let mut perms = std::fs::metadata(&p).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&p, perms).unwrap();
        let b = read_state(&p).unwrap();
        assert!(
            fields_changed(&a, &b).contains(&"mode".to_string()),
            "{a:?} {b:?}"
        );
        assert_eq!(read_state(dir.path()).unwrap().file_type, "dir");
        // Owner SID and DACL: what Wine (or Windows) answers.
        let owner = a.owner.as_deref().expect("owner SID read");
        assert!(owner.starts_with("S-1-"), "{owner}");
        let acl = a.acl.as_deref().expect("DACL read");
        assert!(acl.starts_with("D:"), "{acl}");
        // A DACL set through the API (as icacls would): seen as `acl`.
        // Windows keeps it as set; Wine 8 answered here with a DACL rebuilt
        // from the Unix mode (`D:(A;;FA;;;SY)(A;;FA;;;<owner>)(A;;0x1301ff;;;WD)`),
        // so only the change and the Everyone entry are asserted.
        set_dacl(&p, "D:P(A;;FA;;;WD)");
        let c = read_state(&p).unwrap();
        let acl = c.acl.as_deref().expect("DACL read");
        assert!(acl.contains(";;;WD)"), "{acl}");
        assert!(
            fields_changed(&a, &c).contains(&"acl".to_string()),
            "{a:?} {c:?}"
        );
        assert_eq!(
            read_state(&dir.path().join("missing")).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        let mut perms = std::fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&p, perms).unwrap();
    }

    /// Sets `path`'s DACL from SDDL (protected: nothing inherited).
    #[cfg(windows)]
    fn set_dacl(path: &Path, sddl: &str) {
        use std::os::windows::ffi::OsStrExt;
        use windows_sys::Win32::Foundation::LocalFree;
        use windows_sys::Win32::Security::Authorization::{
            ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
            SDDL_REVISION_1, SE_FILE_OBJECT,
        };
        use windows_sys::Win32::Security::{
            GetSecurityDescriptorDacl, DACL_SECURITY_INFORMATION,
            PROTECTED_DACL_SECURITY_INFORMATION,
        };
        let w: Vec<u16> = sddl.encode_utf16().chain([0]).collect();
        let p: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
        // SAFETY: NUL-terminated strings; the descriptor is freed below.
        unsafe {
            let mut sd = std::ptr::null_mut();
            assert_ne!(
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    w.as_ptr(),
                    SDDL_REVISION_1,
                    &mut sd,
                    std::ptr::null_mut()
                ),
                0
            );
            let (mut present, mut defaulted, mut dacl) = (0, 0, std::ptr::null_mut());
            assert_ne!(
                GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted),
                0
            );
            let rc = SetNamedSecurityInfoW(
                p.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            );
            LocalFree(sd);
            assert_eq!(rc, 0, "SetNamedSecurityInfoW");
        }
    }

    #[cfg(unix)]
    #[test]
    fn state_and_changed_fields_follow_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let a = read_state(&p).unwrap();
        assert_eq!((a.file_type, a.size, a.nlink), ("file", 3, 1));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let b = read_state(&p).unwrap();
        assert_eq!(b.mode, "4755");
        let changed = fields_changed(&a, &b);
        assert!(changed.contains(&"mode".to_string()), "{changed:?}");
        assert!(!changed.contains(&"size".to_string()));
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let l = read_state(&dir.path().join("l")).unwrap();
        assert_eq!(
            (l.file_type, l.link_target.as_deref()),
            ("symlink", Some("f"))
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn file_capabilities_are_part_of_the_state() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = dir.path().join("ping");
        std::fs::write(&p, b"x").unwrap();
        assert!(read_state(&p).unwrap().xattrs.is_empty());
        // VFS_CAP_REVISION_2, permitted = CAP_NET_BIND_SERVICE (as setcap would write).
        let cap: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        let name = CString::new("security.capability").unwrap();
        // SAFETY: valid strings and buffer.
        let r = unsafe {
            libc::lsetxattr(c.as_ptr(), name.as_ptr(), cap.as_ptr().cast(), cap.len(), 0)
        };
        assert_eq!(
            r,
            0,
            "setting a capability needs root: {}",
            std::io::Error::last_os_error()
        );
        let st = read_state(&p).unwrap();
        assert_eq!(
            st.xattrs["security.capability"],
            "0000000200040000000000000000000000000000"
        );
    }

    #[test]
    fn owner_and_acl_count_only_when_both_sides_have_them() {
        let a = FileState {
            owner: Some("S-1-5-32-544".into()),
            acl: Some("D:PAI(A;;FA;;;SY)".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.owner = Some("S-1-5-21-1-2-3-1001".into());
        b.acl = Some("D:PAI(A;;FA;;;SY)(A;;FA;;;WD)".into());
        assert_eq!(fields_changed(&a, &b), ["owner", "acl"]);
        // A baseline from before owners were recorded: nothing to compare.
        let old = FileState::default();
        assert!(fields_changed(&old, &b).is_empty());
        assert!(fields_changed(&b, &old).is_empty());
    }

    #[test]
    fn digests_are_reused_only_for_identical_stat() {
        let a = FileState {
            inode: 1,
            size: 2,
            mtime: "m".into(),
            ctime: "c".into(),
            ..Default::default()
        };
        let mut b = a.clone();
        assert!(same_content(&a, &b));
        b.ctime = "c2".into();
        assert!(
            !same_content(&a, &b),
            "a reset mtime must not hide new content"
        );
    }
}
