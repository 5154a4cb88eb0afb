//! The ABI between Vigil's eBPF programs and user space.
//!
//! Everything here is `#[repr(C)]`, fixed-size and `Copy`: records cross the ring
//! buffer as raw bytes and map keys/values are shared with the kernel verifier's
//! view of memory. Nothing else belongs in this crate.
#![no_std]

/// Bytes reserved for the leaf-first component list of one resolved path.
/// Components are written at `offset & PATH_MASK`, each at most `NAME_CAP` long,
/// so the buffer needs `PATH_MASK + NAME_CAP` bytes to keep every write in bounds.
pub const PATH_MASK: usize = 1023;
/// Longest file-name component (NAME_MAX + NUL).
pub const NAME_CAP: usize = 256;
/// Size of the component buffer (see [`PATH_MASK`]).
pub const PATH_CAP: usize = PATH_MASK + 1 + NAME_CAP;
/// Dentry levels (including mount crossings) walked per path or decision.
pub const MAX_DEPTH: u32 = 48;
/// Bytes of argv captured at exec.
pub const ARGS_CAP: usize = 1024;
/// `comm` length (TASK_COMM_LEN).
pub const COMM_LEN: usize = 16;

/// Record kinds; the first `u32` of every ring-buffer record.
pub mod kind {
    pub const FILE: u32 = 1;
    pub const EXEC: u32 = 2;
    pub const FORK: u32 = 3;
    pub const EXIT: u32 = 4;
    /// A [`TaskRecord`] whose `code` is a [`blind`] reason: the process did
    /// something whose file effects the running hook set cannot see.
    pub const BLIND_SPOT: u32 = 5;
    /// A write session's end whose path has not changed since its opening
    /// record ([`CloseRecord`]): user space takes the rest from that record.
    pub const CLOSE: u32 = 6;
}

/// Reasons of a [`kind::BLIND_SPOT`] record.
pub mod blind {
    /// io_uring_setup succeeded while the write group is on the tracepoint tier.
    pub const IO_URING_SETUP: i32 = 1;
}

/// Syscalls (and pseudo-syscalls) a file record can come from. Stable numbers,
/// independent of the architecture's syscall table.
pub mod sys {
    pub const WRITE: u16 = 1;
    pub const PWRITE64: u16 = 2;
    pub const WRITEV: u16 = 3;
    pub const PWRITEV: u16 = 4;
    pub const PWRITEV2: u16 = 5;
    pub const OPEN: u16 = 6;
    pub const OPENAT: u16 = 7;
    pub const OPENAT2: u16 = 8;
    pub const CREAT: u16 = 9;
    pub const CLOSE: u16 = 10;
    pub const UNLINK: u16 = 11;
    pub const UNLINKAT: u16 = 12;
    pub const RMDIR: u16 = 13;
    pub const RENAME: u16 = 14;
    pub const RENAMEAT: u16 = 15;
    pub const RENAMEAT2: u16 = 16;
    pub const LINK: u16 = 17;
    pub const LINKAT: u16 = 18;
    pub const SYMLINK: u16 = 19;
    pub const SYMLINKAT: u16 = 20;
    pub const MKDIR: u16 = 21;
    pub const MKDIRAT: u16 = 22;
    pub const CHMOD: u16 = 23;
    pub const FCHMOD: u16 = 24;
    pub const FCHMODAT: u16 = 25;
    pub const FCHMODAT2: u16 = 26;
    pub const CHOWN: u16 = 27;
    pub const FCHOWN: u16 = 28;
    pub const LCHOWN: u16 = 29;
    pub const FCHOWNAT: u16 = 30;
    pub const TRUNCATE: u16 = 31;
    pub const FTRUNCATE: u16 = 32;
    pub const FALLOCATE: u16 = 33;
    pub const UTIMENSAT: u16 = 34;
    pub const UTIMES: u16 = 35;
    pub const FUTIMESAT: u16 = 36;
    pub const SETXATTR: u16 = 37;
    pub const LSETXATTR: u16 = 38;
    pub const FSETXATTR: u16 = 39;
    pub const REMOVEXATTR: u16 = 40;
    pub const LREMOVEXATTR: u16 = 41;
    pub const FREMOVEXATTR: u16 = 42;
    pub const MKNOD: u16 = 43;
    pub const MKNODAT: u16 = 44;
    pub const UTIME: u16 = 45;
    pub const DUP2: u16 = 46;
    pub const DUP3: u16 = 47;
    /// Not a syscall: the process exited with the file still open (user space).
    pub const EXIT: u16 = 48;
    /// Not syscalls: the VFS function a VFS-tier hook (fentry, kprobe) saw. They
    /// also see callers that make no file syscall (io_uring, nfsd, splice).
    /// `rw_verify_area(WRITE, ...)`: every file write path admits its writes here.
    pub const RW_VERIFY_AREA: u16 = 49;
    pub const VFS_UNLINK: u16 = 50;
    pub const VFS_RENAME: u16 = 51;
    /// `notify_change`: chmod, chown, truncate and utimes of every caller.
    pub const NOTIFY_CHANGE: u16 = 52;
    pub const VFS_LINK: u16 = 53;
    pub const VFS_SYMLINK: u16 = 54;
    pub const VFS_MKDIR: u16 = 55;
    pub const VFS_RMDIR: u16 = 56;
    /// `vfs_open`: an open that created or truncated the file (any caller).
    pub const VFS_OPEN: u16 = 57;
    pub const VFS_SETXATTR: u16 = 58;
    pub const VFS_REMOVEXATTR: u16 = 59;
    pub const VFS_FALLOCATE: u16 = 60;
    /// `security_mmap_file`: a shared writable mapping of a file.
    pub const SECURITY_MMAP_FILE: u16 = 61;
    /// `__fput`: the last reference to an open file went away (munmap of its
    /// last mapping, close_range, exec of an O_CLOEXEC fd, exit).
    pub const FPUT: u16 = 62;
    /// Syscalls that write to a file without a write(2)-family call.
    pub const SENDFILE: u16 = 63;
    pub const COPY_FILE_RANGE: u16 = 64;
    pub const SPLICE: u16 = 65;
    /// mmap(2) with PROT_WRITE and MAP_SHARED (the tracepoint tier's detector).
    pub const MMAP: u16 = 66;
    /// `vfs_mknod`: FIFOs, sockets and device nodes (any caller: mknod(2),
    /// bind(2) of a unix socket, nfsd).
    pub const VFS_MKNOD: u16 = 67;
    /// `security_file_mprotect`: mprotect adding PROT_WRITE to a shared
    /// mapping of a file.
    pub const SECURITY_FILE_MPROTECT: u16 = 68;
    /// `vfs_set_acl`, `vfs_remove_acl` (6.2+): POSIX ACLs set or removed by
    /// any caller (setxattr(2) of `system.posix_acl_*`, nfsd, io_uring).
    pub const VFS_SET_ACL: u16 = 69;
    pub const VFS_REMOVE_ACL: u16 = 70;
}

/// Which hook tier produced a file record ([`FileRecord::tier`]).
pub mod tier {
    pub const TRACEPOINT: u8 = 0;
    pub const FENTRY: u8 = 1;
    pub const KPROBE: u8 = 2;
}

/// Groups of file operations a VFS-tier hook covers ([`SensorConfig::vfs`]). The
/// syscall tracepoints skip what a VFS hook of the running set already reports.
pub mod vfs {
    /// write family (rw_verify_area).
    pub const WRITE: u32 = 1;
    /// unlink, unlinkat without AT_REMOVEDIR (vfs_unlink).
    pub const UNLINK: u32 = 2;
    /// rename family (vfs_rename).
    pub const RENAME: u32 = 4;
    /// chmod, chown, truncate and utimes families (notify_change).
    pub const SETATTR: u32 = 8;
    /// link, linkat (vfs_link).
    pub const LINK: u32 = 16;
    /// symlink, symlinkat (vfs_symlink).
    pub const SYMLINK: u32 = 32;
    /// mkdir, mkdirat (vfs_mkdir).
    pub const MKDIR: u32 = 64;
    /// rmdir, unlinkat with AT_REMOVEDIR (vfs_rmdir).
    pub const RMDIR: u32 = 128;
    /// opens that create or truncate: open, openat, openat2, creat (vfs_open).
    pub const OPEN: u32 = 256;
    /// setxattr family except POSIX ACLs (vfs_setxattr).
    pub const SETXATTR: u32 = 512;
    /// removexattr family except POSIX ACLs (vfs_removexattr).
    pub const REMOVEXATTR: u32 = 1024;
    /// fallocate (vfs_fallocate).
    pub const FALLOCATE: u32 = 2048;
    /// shared writable mmap (security_mmap_file).
    pub const MMAP: u32 = 4096;
    /// implicit last closes (__fput): the close marker without a close syscall.
    pub const CLOSE: u32 = 8192;
    /// mknod, mknodat of FIFOs, sockets and devices (vfs_mknod; a regular file
    /// made by mknod goes through vfs_create and stays with the tracepoints).
    pub const MKNOD: u32 = 16384;
    /// mprotect adding PROT_WRITE to a shared file mapping (security_file_mprotect).
    pub const MPROTECT: u32 = 32768;
    /// POSIX ACLs set (vfs_set_acl, 6.2+); the xattr syscalls then skip ACL names too.
    pub const SETACL: u32 = 65536;
    /// POSIX ACLs removed (vfs_remove_acl, 6.2+).
    pub const REMOVEACL: u32 = 131072;
    /// The groups io_uring (or another in-kernel caller) can reach without a
    /// syscall the tracepoints see: while any of them is on the tracepoint
    /// tier, `io_uring_setup` is reported as a blind spot.
    pub const IO_URING: u32 = WRITE
        | UNLINK
        | RENAME
        | SETATTR
        | LINK
        | SYMLINK
        | MKDIR
        | RMDIR
        | OPEN
        | SETXATTR
        | FALLOCATE;
}

/// What happened to the file, as the kernel saw it.
pub mod op {
    pub const MODIFIED: u16 = 1;
    pub const CREATED: u16 = 2;
    pub const TRUNCATED: u16 = 3;
    pub const CLOSED_WRITE: u16 = 4;
    pub const DELETED: u16 = 5;
    pub const RENAMED: u16 = 6;
    pub const LINKED: u16 = 7;
    pub const SYMLINKED: u16 = 8;
    pub const MKDIR: u16 = 9;
    pub const MKNOD: u16 = 10;
    pub const PERMISSIONS: u16 = 11;
    pub const OWNER: u16 = 12;
    pub const TIMESTAMPS: u16 = 13;
    pub const XATTR_SET: u16 = 14;
    pub const XATTR_REMOVED: u16 = 15;
    pub const RMDIR: u16 = 16;
    /// A file mapped shared and writable: stores through the mapping make no
    /// syscall; the file is hashed when the mapping's file is released.
    pub const MAPPED_WRITABLE: u16 = 17;
}

/// How sure the kernel is that a record concerns a watched path.
pub mod verdict {
    /// Decided on inodes: the target or an ancestor is a watched root.
    pub const WATCHED: u8 = 1;
    /// The kernel could not resolve every component (a multi-component or
    /// absolute name, `..`, a parent of a root); user space decides on the path.
    pub const CANDIDATE: u8 = 2;
}

/// Flags of a watched-root map entry ([`RootValue::flags`]).
pub mod root_flags {
    /// Descendants at any depth are watched, not only direct children.
    pub const RECURSIVE: u32 = 1;
    /// This inode is a watched root (as opposed to only an ancestor of one).
    pub const ROOT: u32 = 2;
    /// This directory lies on the way to a root (or to a root that does not exist
    /// yet): names created or removed in it are sent to user space to decide.
    pub const ANCESTOR: u32 = 4;
    /// Stop here: nothing below this inode is watched (an excluded subtree).
    pub const EXCLUDE: u32 = 8;
}

/// Cached per-inode decision flags ([`Decision::flags`]).
pub mod decision {
    /// The inode itself is watched.
    pub const SELF: u32 = 1;
    /// Entries directly inside this directory are watched.
    pub const CHILDREN: u32 = 2;
    /// Entries at any depth below this directory are watched.
    pub const DESCENDANTS: u32 = 4;
    /// The directory is an ancestor of a watched root.
    pub const ANCESTOR: u32 = 8;
    /// The inode's parent directory is an ancestor of a watched root (a file
    /// created there may be a root that did not exist yet).
    pub const PARENT_ANCESTOR: u32 = 16;
}

/// Flags of a [`PathRecord`].
pub mod path_flags {
    /// `comps` holds the anchor's components (leaf first).
    pub const HAS_ANCHOR: u16 = 1;
    /// The walk hit [`MAX_DEPTH`] or the buffer end: the path is incomplete.
    pub const TRUNCATED: u16 = 2;
    /// `name` is relative to the anchor (a directory); absent, the anchor is the target.
    pub const HAS_NAME: u16 = 4;
}

/// Key of the watched-roots map and the decision cache.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct InodeKey {
    /// `sb->s_dev` in the kernel's encoding (major << 20 | minor).
    pub dev: u32,
    /// `i_generation`, where the filesystem sets one (tells reused inode numbers apart).
    pub generation: u32,
    pub ino: u64,
}

/// Value of the watched-roots map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RootValue {
    pub flags: u32,
    /// Index of the watch entry in the loaded policy.
    pub root_id: u32,
}

/// Value of the decision cache (an LRU map keyed by [`InodeKey`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Decision {
    /// Must equal [`SensorConfig::generation`] to be trusted.
    pub generation: u64,
    pub flags: u32,
    pub root_id: u32,
}

/// Key of the absolute-path prefix trie: a NUL-padded absolute path.
pub const LPM_DATA: usize = 256;

/// Value of the path-prefix trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrefixValue {
    pub root_id: u32,
    pub flags: u32,
}

/// Index 0 of the single-entry config array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SensorConfig {
    /// The sensor's own tgid: its syscalls are never reported.
    pub self_tgid: u32,
    /// [`vfs`] groups reported by VFS-tier hooks: their syscall tracepoints stay quiet.
    pub vfs: u32,
    /// Bumped (by the kernel on renames, links, mkdir, mknod and rmdir; by user space
    /// on policy changes) to invalidate every cached [`Decision`]. 64-bit because
    /// BPF has no 32-bit atomic add before v3 of the instruction set.
    pub generation: u64,
}

/// Key of the open-write session map: one "modified" event per (process, open file).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SessionKey {
    pub tgid: u32,
    pub _pad: u32,
    /// Kernel address of the `struct file`.
    pub file: u64,
}

/// Value of the open-write session map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Session {
    pub root_id: u32,
    /// [`session`] flags.
    pub flags: u32,
    /// [`RenameClock::started`] when the session began, read before its
    /// opening record resolved the path.
    pub renames: u64,
}

/// [`Session::flags`].
pub mod session {
    /// The process mapped the file shared: the mapping can write after
    /// close(2), so only the last reference ends the session.
    pub const MAPPED: u32 = 1;
    /// The session's opening record reached the ring buffer (and carries
    /// the session's key in [`FileRecord::session`](super::FileRecord)).
    pub const ANNOUNCED: u32 = 2;
    /// A rename was in flight when the session began: the path its opening
    /// record resolved may already be stale, so its close is a whole record.
    pub const RENAMING: u32 = 4;
}

/// Renames seen by the tracepoint tier, kept by the kernel alone (a map of
/// its own: user space never writes it). A path resolved at a session's
/// start is still the file's path at its close when no rename was in flight
/// at the start (`started == finished`) and none started since; then the
/// close is a [`CloseRecord`].
///
/// Every rename syscall is counted at its enter and at its exit, so no
/// per-call state is kept. A rename in flight while the programs were being
/// attached can leave the two apart for good; that only ever makes closes
/// whole records.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RenameClock {
    /// Renames that entered the kernel.
    pub started: u64,
    /// Renames that returned (whatever their result).
    pub finished: u64,
}

/// The end of a write session ([`kind::CLOSE`]) whose opening record user
/// space holds ([`FileRecord::session`]) and whose path did not change since.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CloseRecord {
    /// [`kind::CLOSE`].
    pub kind: u32,
    /// close, dup2 or dup3.
    pub sys: u16,
    pub _pad: u16,
    pub ts_boot_ns: u64,
    /// The closing thread.
    pub pid: u32,
    pub tgid: u32,
    /// The session's key: kernel address of the `struct file`.
    pub session: u64,
}

/// Index of the loss counters (a per-CPU array).
pub mod lost {
    /// Ring-buffer reservation failed: an event was dropped.
    pub const RINGBUF: u32 = 0;
    /// The per-thread syscall-argument map was full.
    pub const ARGS: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// Process identity captured with every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Audit login uid (`u32::MAX` when unset); survives su/sudo.
    pub loginuid: u32,
    pub sessionid: u32,
    pub mntns: u32,
    pub cgroup_id: u64,
    /// Process (thread-group leader) start, ns since boot.
    pub start_boottime: u64,
    pub comm: [u8; COMM_LEN],
}

/// One resolved path: an anchor (a dentry walked up to the global root, leaf
/// first) plus an optional literal name relative to it, as passed to the syscall.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PathRecord {
    pub flags: u16,
    /// Bytes used in `comps`.
    pub comps_len: u16,
    /// Bytes used in `name`, without the NUL.
    pub name_len: u16,
    pub _pad: u16,
    pub comps: [u8; PATH_CAP],
    pub name: [u8; NAME_CAP],
}

/// A change to a file, judged at syscall exit (so only successful calls count).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileRecord {
    /// [`kind::FILE`].
    pub kind: u32,
    pub op: u16,
    pub sys: u16,
    pub verdict: u8,
    /// [`tier`] of the hook that saw it.
    pub tier: u8,
    pub _pad: [u8; 2],
    pub root_id: u32,
    /// `bpf_ktime_get_boot_ns()` at the syscall's exit.
    pub ts_boot_ns: u64,
    /// The syscall's return value.
    pub ret: i64,
    /// Syscall flags: open flags, rename flags, `AT_*` flags, fallocate mode.
    pub flags: u64,
    /// Mode argument (chmod, open, mkdir, mknod); the mapping's `prot` for
    /// `MAPPED_WRITABLE`.
    pub mode: u32,
    /// Owner arguments (chown family); `u32::MAX` means unchanged.
    pub arg_uid: u32,
    pub arg_gid: u32,
    /// Inode of the target when the kernel resolved it (fd-based calls, opens).
    pub dev: u32,
    pub ino: u64,
    pub i_mode: u32,
    pub _pad2: u32,
    /// The write session this record opened (its `struct file`), else 0.
    pub session: u64,
    pub process: ProcessInfo,
    /// The target (rename: the source; link: the existing file).
    pub path: PathRecord,
    /// rename/link/symlink: the new name. symlink: `target.name` is the link's contents.
    pub target: PathRecord,
}

/// A successful execve: the process table's main input.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecRecord {
    /// [`kind::EXEC`].
    pub kind: u32,
    pub args_len: u32,
    pub ts_boot_ns: u64,
    pub process: ProcessInfo,
    /// The new executable (`mm->exe_file`).
    pub exe: PathRecord,
    /// argv, NUL-separated, truncated at [`ARGS_CAP`].
    pub args: [u8; ARGS_CAP],
}

/// A new process (fork/clone without CLONE_THREAD) or a process exit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TaskRecord {
    /// [`kind::FORK`] or [`kind::EXIT`].
    pub kind: u32,
    /// Exit code (exit) or 0.
    pub code: i32,
    pub ts_boot_ns: u64,
    /// The child (fork) or the exiting process.
    pub process: ProcessInfo,
    /// fork: the parent's tgid.
    pub parent_tgid: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers with explicit padding fields.
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::RootValue {}
    unsafe impl aya::Pod for super::Decision {}
    unsafe impl aya::Pod for super::PrefixValue {}
    unsafe impl aya::Pod for super::SensorConfig {}
    unsafe impl aya::Pod for super::SessionKey {}
    unsafe impl aya::Pod for super::Session {}
    unsafe impl aya::Pod for super::RenameClock {}
}
