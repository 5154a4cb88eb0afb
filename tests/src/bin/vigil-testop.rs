//! Performs exactly one file syscall (by number, not through a libc wrapper that
//! might pick another syscall) so that integration tests know which syscall,
//! pid and executable an event must show. Exits 0 on success, 1 with the errno
//! message on failure.
//!
//! Usage: vigil-testop OP ARGS...   (see `run` for the ops)
//! The xattr ops name `user.vigil`, or `$VIGIL_TESTOP_XATTR`.
use std::ffi::CString;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in path")
}

fn open(path: &str, flags: i32) -> i64 {
    let p = c(path);
    unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags | libc::O_CLOEXEC,
            0o644,
        )
    }
}

fn check(ret: i64, what: &str) {
    if ret < 0 {
        eprintln!("vigil-testop {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
}

fn fd_of(path: &str, flags: i32) -> i32 {
    let fd = open(path, flags);
    check(fd, "open");
    fd as i32
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let op = a(0);
    // tmpfs takes user.* attributes only from Linux 6.6: the VM tests, on tmpfs,
    // name a trusted.* one instead.
    let xattr = c(&std::env::var("VIGIL_TESTOP_XATTR").unwrap_or_else(|_| "user.vigil".into()));
    let buf = [b'x'; 4096];
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut _,
        iov_len: 16,
    };
    let ret: i64 = unsafe {
        match op {
            "write" => libc::syscall(
                libc::SYS_write,
                fd_of(a(1), libc::O_WRONLY | libc::O_APPEND),
                buf.as_ptr(),
                16,
            ),
            "pwrite64" => libc::syscall(
                libc::SYS_pwrite64,
                fd_of(a(1), libc::O_WRONLY),
                buf.as_ptr(),
                16,
                0,
            ),
            "writev" => libc::syscall(libc::SYS_writev, fd_of(a(1), libc::O_WRONLY), &iov, 1),
            "pwritev" => libc::syscall(
                libc::SYS_pwritev,
                fd_of(a(1), libc::O_WRONLY),
                &iov,
                1,
                0,
                0,
            ),
            "pwritev2" => libc::syscall(
                libc::SYS_pwritev2,
                fd_of(a(1), libc::O_WRONLY),
                &iov,
                1,
                0,
                0,
                0,
            ),
            // Writes COUNT blocks of 4 KiB to an existing file, one write(2) each.
            "write-many" => {
                let fd = fd_of(a(1), libc::O_WRONLY);
                let n: u64 = a(2).parse().expect("count");
                for _ in 0..n {
                    check(
                        libc::syscall(libc::SYS_write, fd, buf.as_ptr(), buf.len()),
                        "write",
                    );
                }
                libc::syscall(libc::SYS_close, fd)
            }
            // Creates FILE, writes to it, closes it and unlinks it: one process,
            // so the deletion surely comes before the pipeline reads the file.
            "create-write-unlink" => {
                let fd = fd_of(a(1), libc::O_CREAT | libc::O_WRONLY);
                check(
                    libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 16),
                    "write",
                );
                check(libc::syscall(libc::SYS_close, fd), "close");
                libc::syscall(libc::SYS_unlink, c(a(1)).as_ptr())
            }
            "creat" => libc::syscall(libc::SYS_creat, c(a(1)).as_ptr(), 0o644),
            "open-creat" => libc::syscall(
                libc::SYS_open,
                c(a(1)).as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o644,
            ),
            "openat-creat" => open(a(1), libc::O_CREAT | libc::O_WRONLY),
            "openat-trunc" => open(a(1), libc::O_TRUNC | libc::O_WRONLY),
            "openat2-creat" => {
                // struct open_how { u64 flags, mode, resolve; }
                let how: [u64; 3] = [(libc::O_CREAT | libc::O_WRONLY) as u64, 0o644, 0];
                libc::syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD,
                    c(a(1)).as_ptr(),
                    &how,
                    std::mem::size_of_val(&how),
                )
            }
            "unlink" => libc::syscall(libc::SYS_unlink, c(a(1)).as_ptr()),
            "unlinkat" => libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, c(a(1)).as_ptr(), 0),
            "unlinkat-dir" => libc::syscall(
                libc::SYS_unlinkat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                libc::AT_REMOVEDIR,
            ),
            "rmdir" => libc::syscall(libc::SYS_rmdir, c(a(1)).as_ptr()),
            "rename" => libc::syscall(libc::SYS_rename, c(a(1)).as_ptr(), c(a(2)).as_ptr()),
            "renameat" => libc::syscall(
                libc::SYS_renameat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                libc::AT_FDCWD,
                c(a(2)).as_ptr(),
            ),
            "renameat2-noreplace" | "renameat2-exchange" => {
                let flags = if op.ends_with("exchange") {
                    libc::RENAME_EXCHANGE
                } else {
                    libc::RENAME_NOREPLACE
                };
                let (o, n) = (c(a(1)), c(a(2)));
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    o.as_ptr(),
                    libc::AT_FDCWD,
                    n.as_ptr(),
                    flags,
                )
            }
            // rename with the directory as dfd and a bare name (the exact, in-kernel path).
            "renameat-dirfd" => {
                let dfd = fd_of(a(1), libc::O_RDONLY | libc::O_DIRECTORY);
                libc::syscall(
                    libc::SYS_renameat,
                    dfd,
                    c(a(2)).as_ptr(),
                    dfd,
                    c(a(3)).as_ptr(),
                )
            }
            "link" => libc::syscall(libc::SYS_link, c(a(1)).as_ptr(), c(a(2)).as_ptr()),
            "linkat" => libc::syscall(
                libc::SYS_linkat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                libc::AT_FDCWD,
                c(a(2)).as_ptr(),
                0,
            ),
            "symlink" => libc::syscall(libc::SYS_symlink, c(a(1)).as_ptr(), c(a(2)).as_ptr()),
            "symlinkat" => libc::syscall(
                libc::SYS_symlinkat,
                c(a(1)).as_ptr(),
                libc::AT_FDCWD,
                c(a(2)).as_ptr(),
            ),
            "mkdir" => libc::syscall(libc::SYS_mkdir, c(a(1)).as_ptr(), 0o755),
            "mkdirat" => libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, c(a(1)).as_ptr(), 0o755),
            "mknod" => libc::syscall(libc::SYS_mknod, c(a(1)).as_ptr(), libc::S_IFIFO | 0o600, 0),
            "mknodat" => libc::syscall(
                libc::SYS_mknodat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                libc::S_IFIFO | 0o600,
                0,
            ),
            "chmod" => libc::syscall(libc::SYS_chmod, c(a(1)).as_ptr(), 0o600),
            "fchmod" => libc::syscall(libc::SYS_fchmod, fd_of(a(1), libc::O_RDONLY), 0o640),
            "fchmodat" => {
                libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, c(a(1)).as_ptr(), 0o604)
            }
            "fchmodat2" => libc::syscall(452, libc::AT_FDCWD, c(a(1)).as_ptr(), 0o606, 0),
            "chown" => libc::syscall(libc::SYS_chown, c(a(1)).as_ptr(), 1, 1),
            "fchown" => libc::syscall(libc::SYS_fchown, fd_of(a(1), libc::O_RDONLY), 2, 2),
            "lchown" => libc::syscall(libc::SYS_lchown, c(a(1)).as_ptr(), 3, 3),
            "fchownat" => libc::syscall(
                libc::SYS_fchownat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                4,
                4,
                0,
            ),
            "truncate" => libc::syscall(libc::SYS_truncate, c(a(1)).as_ptr(), 3),
            "ftruncate" => libc::syscall(libc::SYS_ftruncate, fd_of(a(1), libc::O_WRONLY), 5),
            "fallocate" => {
                libc::syscall(libc::SYS_fallocate, fd_of(a(1), libc::O_WRONLY), 0, 0, 8192)
            }
            "utimensat" => libc::syscall(
                libc::SYS_utimensat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                std::ptr::null::<u8>(),
                0,
            ),
            "futimens" => libc::syscall(
                libc::SYS_utimensat,
                fd_of(a(1), libc::O_RDONLY),
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            ),
            "utimes" => {
                // Back-dated: what timestomping looks like.
                let tv = [libc::timeval {
                    tv_sec: 1_000_000_000,
                    tv_usec: 0,
                }; 2];
                libc::syscall(libc::SYS_utimes, c(a(1)).as_ptr(), tv.as_ptr())
            }
            "utime" => libc::syscall(libc::SYS_utime, c(a(1)).as_ptr(), std::ptr::null::<u8>()),
            "futimesat" => libc::syscall(
                libc::SYS_futimesat,
                libc::AT_FDCWD,
                c(a(1)).as_ptr(),
                std::ptr::null::<u8>(),
            ),
            "setxattr" => libc::syscall(
                libc::SYS_setxattr,
                c(a(1)).as_ptr(),
                xattr.as_ptr(),
                buf.as_ptr(),
                4,
                0,
            ),
            "lsetxattr" => libc::syscall(
                libc::SYS_lsetxattr,
                c(a(1)).as_ptr(),
                xattr.as_ptr(),
                buf.as_ptr(),
                4,
                0,
            ),
            "fsetxattr" => libc::syscall(
                libc::SYS_fsetxattr,
                fd_of(a(1), libc::O_RDONLY),
                xattr.as_ptr(),
                buf.as_ptr(),
                4,
                0,
            ),
            "removexattr" => libc::syscall(libc::SYS_removexattr, c(a(1)).as_ptr(), xattr.as_ptr()),
            "lremovexattr" => {
                libc::syscall(libc::SYS_lremovexattr, c(a(1)).as_ptr(), xattr.as_ptr())
            }
            "fremovexattr" => libc::syscall(
                libc::SYS_fremovexattr,
                fd_of(a(1), libc::O_RDONLY),
                xattr.as_ptr(),
            ),
            other => {
                eprintln!("vigil-testop: unknown op {other:?}");
                std::process::exit(2);
            }
        }
    };
    check(ret, op);
}
