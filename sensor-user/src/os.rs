//! The few operating-system calls that differ between Unix and Windows, in
//! one place, so that the rest of the crate stays platform-neutral.
use std::fs::{DirBuilder, File, OpenOptions};
use std::path::Path;

/// Files only the owner may read (mode 0600). On Windows the file inherits
/// its directory's ACL: Vigil's state directory must be restricted to
/// Administrators and SYSTEM (docs/windows.md).
pub fn private_file(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600)
    }
    #[cfg(not(unix))]
    o
}

/// Directories only the owner may enter (mode 0700); see [`private_file`].
pub fn private_dir(b: &mut DirBuilder) -> &mut DirBuilder {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700)
    }
    #[cfg(not(unix))]
    b
}

/// Makes a directory's entries (a file created or renamed in it) durable.
/// Windows cannot open a directory as a `File`, and NTFS journals its
/// metadata: nothing to do there.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    return File::open(dir)?.sync_all();
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Fills `buf` from `offset` without moving the file's cursor (Unix) or
/// from wherever (Windows' positioned read moves it; callers seek anyway).
pub fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match f.seek_read(&mut buf[done..], offset + done as u64) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Takes an exclusive advisory lock on `f` without waiting; `WouldBlock`
/// when another process (or another open file) holds it. Released when `f`
/// is closed.
pub fn try_lock_exclusive(f: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor the caller owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Storage::FileSystem::{
            LockFileEx, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
        };
        // SAFETY: a zeroed OVERLAPPED (offset 0) and a handle the caller owns.
        let ok = unsafe {
            let mut ov = std::mem::zeroed();
            LockFileEx(
                f.as_raw_handle(),
                LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
                0,
                u32::MAX,
                u32::MAX,
                &mut ov,
            )
        };
        if ok == 0 {
            let e = std::io::Error::last_os_error();
            // ERROR_LOCK_VIOLATION: someone else holds it.
            return Err(if e.raw_os_error() == Some(33) {
                std::io::ErrorKind::WouldBlock.into()
            } else {
                e
            });
        }
        Ok(())
    }
}

/// This host's name.
pub fn host_name() -> String {
    #[cfg(unix)]
    return nix_host_name();
    #[cfg(not(unix))]
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

#[cfg(unix)]
fn nix_host_name() -> String {
    #[cfg(target_os = "linux")]
    return nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    #[cfg(not(target_os = "linux"))]
    String::new()
}

/// The name of a user id (Unix); Windows users are SIDs, not ids: None.
pub fn user_name(uid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    return nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = uid;
        None
    }
}

/// The name of a group id (Unix); None on Windows.
pub fn group_name(gid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    return nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = gid;
        None
    }
}

/// The real user id of this process (0 on Windows, which has none).
pub fn current_uid() -> u32 {
    #[cfg(target_os = "linux")]
    return nix::unistd::getuid().as_raw();
    #[cfg(not(target_os = "linux"))]
    0
}

/// Lowers the calling thread to idle CPU and I/O priority (scans).
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        // ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13)
        libc::syscall(libc::SYS_ioprio_set, 1, tid, 3 << 13);
    }
    #[cfg(windows)]
    // SAFETY: the pseudo-handle of the calling thread. Background mode lowers
    // CPU, I/O and memory priority together.
    unsafe {
        use windows_sys::Win32::System::Threading::{
            GetCurrentThread, SetThreadPriority, THREAD_MODE_BACKGROUND_BEGIN,
        };
        SetThreadPriority(GetCurrentThread(), THREAD_MODE_BACKGROUND_BEGIN);
    }
}
