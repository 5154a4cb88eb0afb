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
            // Writes to FILE, forks a child that holds the open file for 2 s,
            // closes it, and waits for the child: the close ends this
            // process's session although the file stays open in the child.
            "write-fork-close" => {
                let fd = fd_of(a(1), libc::O_WRONLY);
                check(
                    libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 16),
                    "write",
                );
                let child = libc::fork();
                check(child.into(), "fork");
                if child == 0 {
                    libc::sleep(2);
                    libc::_exit(0);
                }
                check(libc::syscall(libc::SYS_close, fd), "close");
                libc::waitpid(child, std::ptr::null_mut(), 0).into()
            }
            // Writes to FILE, dups the fd as a shell redirection does, closes
            // the original, writes through the copy and closes it: one
            // session, ended by the last close.
            "write-dup-close" => {
                let fd = fd_of(a(1), libc::O_WRONLY);
                check(
                    libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 16),
                    "write",
                );
                check(libc::syscall(libc::SYS_dup2, fd, 9), "dup2");
                check(libc::syscall(libc::SYS_close, fd), "close");
                check(libc::syscall(libc::SYS_write, 9, buf.as_ptr(), 16), "write");
                libc::syscall(libc::SYS_close, 9)
            }
            // Writes to FILE, renames FROM to TO (FILE itself, or a
            // directory above it) while the file is open, then closes it: the
            // close names the file where it is now.
            "write-rename-close" => {
                let fd = fd_of(a(1), libc::O_WRONLY);
                check(
                    libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 16),
                    "write",
                );
                check(
                    libc::syscall(libc::SYS_rename, c(a(2)).as_ptr(), c(a(3)).as_ptr()),
                    "rename",
                );
                libc::syscall(libc::SYS_close, fd)
            }
            // Opens FILE twice, writes through both and closes both: two
            // sessions of one file, each with its own close.
            "write-twice-close" => {
                let (fd1, fd2) = (fd_of(a(1), libc::O_WRONLY), fd_of(a(1), libc::O_WRONLY));
                for fd in [fd1, fd2] {
                    check(
                        libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 16),
                        "write",
                    );
                }
                check(libc::syscall(libc::SYS_close, fd1), "close");
                libc::syscall(libc::SYS_close, fd2)
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
            // One IORING_OP_WRITE (no write syscall): the VFS tier must see it,
            // the tracepoint tier cannot. `io_uring-write-async` forces the
            // io-wq worker (IOSQE_ASYNC).
            "io_uring-write" => uring::write(fd_of(a(1), libc::O_WRONLY), &buf[..16], 0),
            "io_uring-write-async" => {
                uring::write(fd_of(a(1), libc::O_WRONLY), &buf[..16], uring::IOSQE_ASYNC)
            }
            // One io_uring operation each, no file syscall. Exit code 3 when the
            // kernel lacks the opcode (IORING_REGISTER_PROBE), so the caller can
            // report a skip rather than a pass.
            "io_uring-openat-creat" => uring::op(uring::Req {
                opcode: uring::IORING_OP_OPENAT,
                fd: libc::AT_FDCWD,
                addr: c(a(1)).as_ptr() as u64,
                len: 0o644,
                op_flags: (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as u32,
                ..Default::default()
            }),
            "io_uring-unlinkat" | "io_uring-unlinkat-dir" => uring::op(uring::Req {
                opcode: uring::IORING_OP_UNLINKAT,
                fd: libc::AT_FDCWD,
                addr: c(a(1)).as_ptr() as u64,
                op_flags: if op.ends_with("-dir") {
                    libc::AT_REMOVEDIR as u32
                } else {
                    0
                },
                ..Default::default()
            }),
            "io_uring-renameat" => uring::op(uring::Req {
                opcode: uring::IORING_OP_RENAMEAT,
                fd: libc::AT_FDCWD,
                addr: c(a(1)).as_ptr() as u64,
                len: libc::AT_FDCWD as u32,
                addr2: c(a(2)).as_ptr() as u64,
                ..Default::default()
            }),
            "io_uring-mkdirat" => uring::op(uring::Req {
                opcode: uring::IORING_OP_MKDIRAT,
                fd: libc::AT_FDCWD,
                addr: c(a(1)).as_ptr() as u64,
                len: 0o755,
                ..Default::default()
            }),
            // io_uring-symlinkat TARGET LINKPATH
            "io_uring-symlinkat" => uring::op(uring::Req {
                opcode: uring::IORING_OP_SYMLINKAT,
                fd: libc::AT_FDCWD,
                addr: c(a(1)).as_ptr() as u64,
                addr2: c(a(2)).as_ptr() as u64,
                ..Default::default()
            }),
            "io_uring-linkat" => uring::op(uring::Req {
                opcode: uring::IORING_OP_LINKAT,
                fd: libc::AT_FDCWD,
                addr: c(a(1)).as_ptr() as u64,
                len: libc::AT_FDCWD as u32,
                addr2: c(a(2)).as_ptr() as u64,
                ..Default::default()
            }),
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
            // A regular file made by mknod (the kernel calls vfs_create, not vfs_mknod).
            "mknod-reg" => {
                libc::syscall(libc::SYS_mknod, c(a(1)).as_ptr(), libc::S_IFREG | 0o600, 0)
            }
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
            // Writes without a write(2): SRC's first bytes into DST.
            "sendfile" => libc::syscall(
                libc::SYS_sendfile,
                fd_of(a(2), libc::O_WRONLY),
                fd_of(a(1), libc::O_RDONLY),
                std::ptr::null::<i64>(),
                3,
            ),
            "copy_file_range" => libc::syscall(
                libc::SYS_copy_file_range,
                fd_of(a(1), libc::O_RDONLY),
                std::ptr::null::<i64>(),
                fd_of(a(2), libc::O_WRONLY),
                std::ptr::null::<i64>(),
                3,
                0,
            ),
            // Bytes from a pipe into FILE (the write(2) goes to the pipe).
            "splice" => {
                let mut p = [0i32; 2];
                check(libc::syscall(libc::SYS_pipe2, p.as_mut_ptr(), 0), "pipe2");
                check(
                    libc::syscall(libc::SYS_write, p[1], buf.as_ptr(), 3),
                    "write to the pipe",
                );
                libc::syscall(
                    libc::SYS_splice,
                    p[0],
                    std::ptr::null::<i64>(),
                    fd_of(a(1), libc::O_WRONLY),
                    std::ptr::null::<i64>(),
                    3,
                    0,
                )
            }
            // Stores "MMAP" through a shared writable mapping of FILE (at least 4
            // bytes long). The fd is closed first, so the mapping holds the last
            // reference and its munmap releases the file (__fput).
            "mmap-write" => {
                let fd = fd_of(a(1), libc::O_RDWR);
                let p = libc::syscall(
                    libc::SYS_mmap,
                    0usize,
                    4096usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0i64,
                );
                if p == -1 || (p as u64) > u64::MAX - 4096 {
                    check(-1, "mmap");
                }
                check(libc::syscall(libc::SYS_close, fd), "close");
                std::ptr::copy_nonoverlapping(b"MMAP".as_ptr(), p as *mut u8, 4);
                libc::syscall(libc::SYS_munmap, p, 4096usize)
            }
            // Stores "MMAP" through a shared mapping of FILE made writable
            // after the fact: mmap read-only, close the fd, mprotect RW, store,
            // munmap (the release of the file).
            "mprotect-write" => {
                let fd = fd_of(a(1), libc::O_RDWR);
                let p = libc::syscall(
                    libc::SYS_mmap,
                    0usize,
                    4096usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    fd,
                    0i64,
                );
                if p == -1 || (p as u64) > u64::MAX - 4096 {
                    check(-1, "mmap");
                }
                check(libc::syscall(libc::SYS_close, fd), "close");
                check(
                    libc::syscall(
                        libc::SYS_mprotect,
                        p,
                        4096usize,
                        libc::PROT_READ | libc::PROT_WRITE,
                    ),
                    "mprotect",
                );
                std::ptr::copy_nonoverlapping(b"MMAP".as_ptr(), p as *mut u8, 4);
                libc::syscall(libc::SYS_munmap, p, 4096usize)
            }
            // What setfacl -m u:1:rw FILE does: setxattr(2) of
            // system.posix_acl_access with the kernel's ACL encoding (version
            // 2; entries tag, perm, id; sorted by tag): user::rw- user:1:rw-
            // group::r-- mask::rw- other::r--.
            "setxattr-acl" => {
                let mut acl: Vec<u8> = 2u32.to_le_bytes().to_vec();
                for (tag, perm, id) in [
                    (0x01u16, 6u16, u32::MAX),
                    (0x02, 6, 1),
                    (0x04, 4, u32::MAX),
                    (0x10, 6, u32::MAX),
                    (0x20, 4, u32::MAX),
                ] {
                    acl.extend(tag.to_le_bytes());
                    acl.extend(perm.to_le_bytes());
                    acl.extend(id.to_le_bytes());
                }
                libc::syscall(
                    libc::SYS_setxattr,
                    c(a(1)).as_ptr(),
                    c("system.posix_acl_access").as_ptr(),
                    acl.as_ptr(),
                    acl.len(),
                    0,
                )
            }
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

/// The few io_uring pieces one write needs, through raw syscalls (no liburing:
/// the binary is linked statically for the VM tests). UAPI layouts from
/// include/uapi/linux/io_uring.h, stable since 5.1.
mod uring {
    use std::sync::atomic::{AtomicU32, Ordering};

    const IORING_OP_WRITE: u8 = 23;
    pub const IORING_OP_OPENAT: u8 = 18;
    pub const IORING_OP_RENAMEAT: u8 = 35;
    pub const IORING_OP_UNLINKAT: u8 = 36;
    pub const IORING_OP_MKDIRAT: u8 = 37;
    pub const IORING_OP_SYMLINKAT: u8 = 38;
    pub const IORING_OP_LINKAT: u8 = 39;
    const IORING_REGISTER_PROBE: u32 = 8;
    const IO_URING_OP_SUPPORTED: u16 = 1;
    pub const IOSQE_ASYNC: u8 = 1 << 4;
    const IORING_ENTER_GETEVENTS: u32 = 1;
    const OFF_SQ_RING: i64 = 0;
    const OFF_CQ_RING: i64 = 0x800_0000;
    const OFF_SQES: i64 = 0x1000_0000;

    #[repr(C)]
    #[derive(Default)]
    struct SqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        flags: u32,
        dropped: u32,
        array: u32,
        resv1: u32,
        resv2: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct CqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        overflow: u32,
        cqes: u32,
        flags: u32,
        resv1: u32,
        resv2: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: SqOffsets,
        cq_off: CqOffsets,
    }

    #[repr(C)]
    struct Sqe {
        opcode: u8,
        flags: u8,
        ioprio: u16,
        fd: i32,
        off: u64,
        addr: u64,
        len: u32,
        rw_flags: u32,
        user_data: u64,
        pad: [u64; 3],
    }

    #[repr(C)]
    struct Cqe {
        user_data: u64,
        res: i32,
        flags: u32,
    }

    unsafe fn map(fd: i32, len: usize, off: i64) -> *mut u8 {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            off,
        );
        if p == libc::MAP_FAILED {
            eprintln!(
                "vigil-testop io_uring mmap: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
        p as *mut u8
    }

    /// One submission: the SQE fields the file operations use (liburing's
    /// `io_uring_prep_*` layout: `addr2` is the second path, `len` a mode or
    /// the second directory fd, `op_flags` the open/unlink/rename flags).
    #[derive(Default)]
    pub struct Req {
        pub opcode: u8,
        pub flags: u8,
        pub fd: i32,
        pub addr: u64,
        pub addr2: u64,
        pub len: u32,
        pub op_flags: u32,
    }

    /// Writes `data` at offset 0 of `fd` with one IORING_OP_WRITE; returns the
    /// completion's result (bytes written or -errno), or -1 with errno set.
    pub fn write(fd: i32, data: &[u8], sqe_flags: u8) -> i64 {
        submit(Req {
            opcode: IORING_OP_WRITE,
            flags: sqe_flags,
            fd,
            addr: data.as_ptr() as u64,
            len: data.len() as u32,
            ..Default::default()
        })
    }

    /// Submits `req` if the kernel has its opcode; else exits 3 with the reason
    /// (the kernel's io_uring probe) on stderr.
    pub fn op(req: Req) -> i64 {
        unsafe {
            let mut p = Params::default();
            let ring = libc::syscall(libc::SYS_io_uring_setup, 1u32, &mut p as *mut Params);
            if ring < 0 {
                return ring;
            }
            // struct io_uring_probe: last_op, ops_len, resv, resv2[3], then
            // 256 × { op, resv, flags, resv2 } (8 bytes each).
            let mut probe = vec![0u8; 16 + 256 * 8];
            let r = libc::syscall(
                libc::SYS_io_uring_register,
                ring as i32,
                IORING_REGISTER_PROBE,
                probe.as_mut_ptr(),
                256u32,
            );
            libc::close(ring as i32);
            if r < 0 {
                return r;
            }
            let last = probe[0];
            let at = 16 + req.opcode as usize * 8;
            let flags = u16::from_le_bytes([probe[at + 2], probe[at + 3]]);
            if req.opcode > last || flags & IO_URING_OP_SUPPORTED == 0 {
                eprintln!(
                    "unsupported: this kernel's io_uring lacks opcode {} (probe: last op {last})",
                    req.opcode
                );
                std::process::exit(3);
            }
        }
        submit(req)
    }

    fn submit(req: Req) -> i64 {
        unsafe {
            let mut p = Params::default();
            let ring = libc::syscall(libc::SYS_io_uring_setup, 1u32, &mut p as *mut Params);
            if ring < 0 {
                return ring;
            }
            let ring = ring as i32;
            let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
            let cq_len =
                p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<Cqe>();
            let sq = map(ring, sq_len, OFF_SQ_RING);
            let cq = map(ring, cq_len, OFF_CQ_RING);
            let sqes = map(
                ring,
                p.sq_entries as usize * std::mem::size_of::<Sqe>(),
                OFF_SQES,
            ) as *mut Sqe;
            sqes.write(Sqe {
                opcode: req.opcode,
                flags: req.flags,
                ioprio: 0,
                fd: req.fd,
                off: req.addr2,
                addr: req.addr,
                len: req.len,
                rw_flags: req.op_flags,
                user_data: 7,
                pad: [0; 3],
            });
            let tail = &*(sq.add(p.sq_off.tail as usize) as *const AtomicU32);
            let mask = *(sq.add(p.sq_off.ring_mask as usize) as *const u32);
            let t = tail.load(Ordering::Acquire);
            *(sq.add(p.sq_off.array as usize) as *mut u32).add((t & mask) as usize) = 0;
            tail.store(t + 1, Ordering::Release);
            let n = libc::syscall(
                libc::SYS_io_uring_enter,
                ring,
                1u32,
                1u32,
                IORING_ENTER_GETEVENTS,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            );
            if n < 0 {
                return n;
            }
            let head = &*(cq.add(p.cq_off.head as usize) as *const AtomicU32);
            let cmask = *(cq.add(p.cq_off.ring_mask as usize) as *const u32);
            let h = head.load(Ordering::Acquire);
            let cqe = &*(cq.add(p.cq_off.cqes as usize) as *const Cqe).add((h & cmask) as usize);
            let res = cqe.res;
            head.store(h + 1, Ordering::Release);
            if res < 0 {
                *libc::__errno_location() = -res;
                return -1;
            }
            res as i64
        }
    }
}
