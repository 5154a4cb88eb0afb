//! The VFS tier: fentry/fexit and kprobe/kretprobe programs on the kernel's VFS
//! functions. They see every caller, not only file syscalls: io_uring workers,
//! nfsd, splice/sendfile/copy_file_range, overlayfs. They produce the same
//! [`FileRecord`]s as the tracepoints, with `tier` set and a VFS pseudo-syscall
//! in `sys` (`sys::RW_VERIFY_AREA`, `VFS_UNLINK`, `VFS_RENAME`, `NOTIFY_CHANGE`).
//!
//! - Writes: `rw_verify_area(WRITE, file, ...)` is where every write path (write,
//!   pwrite, writev, io_uring, aio, splice) admits a write. One record per
//!   (process, open file), through the same session map as the tracepoints, so
//!   the close marker and exit handling are shared. It fires when the write is
//!   admitted, before the data lands (fexit: only when admitted).
//! - unlink, rename, notify_change (chmod, chown, truncate, utimes): the record is
//!   built at entry (a rename moves the dentries, so paths must be read before),
//!   parked in `PENDING` per thread and sent at exit only when the call
//!   succeeded.
//!
//! Argument layouts changed in 5.12 (idmapped mounts): `vfs_unlink` and
//! `notify_change` gained a leading namespace argument and `vfs_rename` takes a
//! `struct renamedata *`. Each has a `_v1` (before) and `_v2` program; the loader
//! picks one. Fields of kernel structs are read through the CO-RE shim.
//!
//! These functions get a dentry but no mount. The mount used for the path is the
//! task's cwd mount or root mount when it is on the same superblock, else none
//! (the path is then relative to the file system's root, see docs/architecture.md).
use super::*;
use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
    EbpfContext,
};

/// File records judged at a VFS function's entry, sent from its exit.
#[map]
static PENDING: LruHashMap<u64, FileRecord> = LruHashMap::with_max_entries(1024, 0);
/// Where a pending record is built (too big for the stack).
#[map]
static STAGING: PerCpuArray<FileRecord> = PerCpuArray::with_max_entries(1, 0);

const KERNEL_WRITE: u64 = 1;
const ATTR_MODE: u32 = 1 << 0;
const ATTR_UID: u32 = 1 << 1;
const ATTR_GID: u32 = 1 << 2;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME: u32 = 1 << 4;
const ATTR_MTIME: u32 = 1 << 5;
const ATTR_OPEN: u32 = 1 << 15;

/// A BTF (fentry/fexit) argument as a plain scalar. A direct context load gives
/// the verifier a typed kernel pointer, which BPF global functions (the path
/// walk) refuse as an argument; a probe read yields a scalar.
#[inline(always)]
unsafe fn btf_arg<C: EbpfContext>(ctx: &C, n: usize) -> u64 {
    let mut v: u64 = 0;
    let src = (ctx.as_ptr() as *const u64).add(n);
    bpf_probe_read_kernel(&mut v as *mut u64 as *mut c_void, 8, src as *const c_void);
    v
}

#[inline(always)]
fn kp_arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg::<u64>(n).unwrap_or(0)
}

/// The mount of a dentry, as far as the current task can tell: its cwd's or
/// root's mount when on the same superblock.
#[inline(always)]
unsafe fn guess_mnt(dentry: Ptr) -> Ptr {
    let task = current_task();
    let sb = shim_dentry_sb(dentry);
    let pwd = shim_task_pwd_mnt(task);
    if !pwd.is_null() && shim_mnt_sb(pwd) == sb {
        return pwd;
    }
    let root = shim_task_root_mnt(task);
    if !root.is_null() && shim_mnt_sb(root) == sb {
        return root;
    }
    core::ptr::null()
}

#[inline(always)]
fn dentry_target(dentry: Ptr, mnt: Ptr) -> Target {
    Target {
        dentry,
        mnt,
        slot: NO_NAME,
        name_len: 0,
    }
}

/// Watched itself, or perhaps (a root that does not exist yet, a directory on the
/// way to a root): user space decides on the path.
#[inline(always)]
fn dentry_verdict(d: Decision) -> Verdict {
    if d.flags & decision::SELF != 0 {
        watched(d.root_id)
    } else if d.flags & (decision::PARENT_ANCESTOR | decision::ANCESTOR) != 0 {
        candidate(d.root_id)
    } else {
        Verdict::default()
    }
}

/// Builds the record and parks it until the function returns.
#[inline(always)]
unsafe fn stage(tier: u8, c: &Change, path: &Target, target: Option<&Target>) {
    let Some(sc) = scratch() else { return };
    let Some(r) = STAGING.get_ptr_mut(0) else {
        return;
    };
    fill(r, tier, c, path, target, sc);
    let _ = PENDING.insert(&bpf_get_current_pid_tgid(), &*r, 0);
}

/// Sends the parked record when the function succeeded. `moved`: the call can
/// move an inode under or out of a root (cached decisions are stale). A parked
/// open keeps its `struct file *` in `ret` until here: the write session opens
/// only when the open succeeded (a failed open's file is freed and reused).
#[inline(always)]
unsafe fn finish(ret: i64, moved: bool) {
    let id = bpf_get_current_pid_tgid();
    let Some(r) = PENDING.get_ptr_mut(&id) else {
        return;
    };
    if ret == 0 {
        if moved {
            bump_generation();
        }
        if (*r).sys == sys::VFS_OPEN && (*r).ret != 0 {
            let key = session_key((*r).ret as Ptr);
            let s = Session {
                root_id: (*r).root_id,
                flags: 0,
                renames: 0,
            };
            let _ = SESSIONS.insert(&key, &s, 0);
            (*r).ret = 0;
        }
        (*r).ts_boot_ns = bpf_ktime_get_boot_ns();
        if EVENTS
            .output::<FileRecord>(&*r, wakeup_flags_unreserved::<FileRecord>())
            .is_err()
        {
            count_lost(lost::RINGBUF);
        }
    }
    let _ = PENDING.remove(&id);
}

/// A change with no mode or owner argument, to `inode` (may be null).
#[inline(always)]
fn change(sys: u16, op: u16, verdict: Verdict, flags: u64, inode: Ptr) -> Change {
    change_to(sys, op, verdict, flags, unsafe { inode_id_of(inode) })
}

/// [`change`] to an inode whose identity the caller has read.
#[inline(always)]
fn change_to(sys: u16, op: u16, verdict: Verdict, flags: u64, id: InodeId) -> Change {
    Change {
        sys,
        op,
        verdict,
        ret: 0,
        flags,
        mode: 0,
        owner: (u32::MAX, u32::MAX),
        id,
        session: 0,
    }
}

/// The verdict for a name about to be created at the negative `dentry`: its
/// directory's (cached) decision, as for a name given to a path syscall.
#[inline(always)]
unsafe fn new_entry_verdict(dentry: Ptr, mnt: Ptr) -> Verdict {
    let d = decide(shim_dentry_parent(dentry), mnt);
    if d.flags & (decision::CHILDREN | decision::DESCENDANTS) != 0 {
        watched(d.root_id)
    } else if d.flags & decision::ANCESTOR != 0 {
        candidate(d.root_id)
    } else {
        Verdict::default()
    }
}

/// `system.posix_acl_access` / `_default`: since 6.2 setting or removing them
/// goes through vfs_set_acl/vfs_remove_acl, not the xattr functions, so ACLs
/// are the ACL groups' where the kernel has those, else the xattr syscall
/// tracepoints' (one source, one event).
#[inline(always)]
pub(crate) unsafe fn is_acl_name(name: Ptr, user: bool) -> bool {
    let mut w = [0u64; 2];
    let dst = w.as_mut_ptr() as *mut c_void;
    let r = if user {
        bpf_probe_read_user(dst, 16, name)
    } else {
        bpf_probe_read_kernel(dst, 16, name)
    };
    r == 0 && w[0] == u64::from_le_bytes(*b"system.p") && w[1] == u64::from_le_bytes(*b"osix_acl")
}

const PROT_WRITE: u64 = 2;
const MAP_TYPE: u64 = 0x0f;
const MAP_SHARED: u64 = 1;
const MAP_SHARED_VALIDATE: u64 = 3;
const PF_EXITING: u32 = 4;

/// A shared writable mapping of a watched regular file, seen by `sys_`
/// (security_mmap_file, security_file_mprotect, or the mmap syscall on the
/// tracepoint tier). On a VFS tier the mapping opens a write session, so
/// `__fput` (the release of the mapping's file) or the process exit gives the
/// close marker and the hash. The tracepoint tier's detector also reports a
/// read-only shared mapping of a file open for writing: mprotect can make it
/// writable later, and that tier cannot see the mprotect's target (an address).
#[inline(always)]
pub(crate) unsafe fn on_mmap(tier: u8, sys_: u16, file: Ptr, prot: u64, flags: u64) {
    let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
    let detector = tier == tier::TRACEPOINT;
    if (prot & PROT_WRITE == 0 && !detector) || !shared || file.is_null() || is_self() {
        return;
    }
    // Without FMODE_WRITE the kernel refuses a writable mapping (EACCES) and
    // never lets mprotect add PROT_WRITE (no VM_MAYWRITE).
    if shim_file_mode(file) & FMODE_WRITE == 0 {
        return;
    }
    let inode = shim_file_inode(file);
    if inode.is_null() || shim_inode_mode(inode) & S_IFMT != S_IFREG {
        return;
    }
    let key = session_key(file);
    let session = !detector;
    if let Some(s) = SESSIONS.get_ptr_mut(&key) {
        // The mapping can write after close(2): only the last reference
        // ends this session now.
        (*s).flags |= session::MAPPED;
        if session {
            // Written through already: that session's marker hashes it.
            return;
        }
    }
    let t = file_target(file);
    let d = decide(t.dentry, t.mnt);
    if d.flags & decision::SELF == 0 {
        return;
    }
    if session {
        let s = Session {
            root_id: d.root_id,
            flags: session::MAPPED,
            renames: 0,
        };
        let _ = SESSIONS.insert(&key, &s, 0);
    }
    let Some(sc) = scratch() else { return };
    let mut c = change(sys_, op::MAPPED_WRITABLE, watched(d.root_id), flags, inode);
    c.mode = prot as u32;
    emit_as(tier, &c, &t, None, sc);
}

const VM_WRITE: u64 = 0x2;
const VM_SHARED: u64 = 0x8;

/// `security_file_mprotect(vma, reqprot, prot)`: mprotect adding PROT_WRITE to
/// a shared mapping of a file is a writable mapping made after the fact (the
/// vma's flags do not have VM_WRITE yet: mprotect_fixup runs after the check).
#[inline(always)]
unsafe fn on_mprotect(tier: u8, vma: Ptr, reqprot: u64) {
    if vma.is_null() || reqprot & PROT_WRITE == 0 {
        return;
    }
    let vm_flags = shim_vma_flags(vma);
    if vm_flags & VM_SHARED == 0 || vm_flags & VM_WRITE != 0 {
        return;
    }
    on_mmap(
        tier,
        sys::SECURITY_FILE_MPROTECT,
        shim_vma_file(vma),
        reqprot,
        MAP_SHARED,
    );
}

/// The tracepoint tier's mmap detector (`sys_enter_mmap`): a shared mapping of
/// a watched file open for writing, unless a VFS hook of the running set
/// reports it (the mmap group a writable mapping, the mprotect group a
/// read-only one made writable later).
#[inline(always)]
pub(crate) unsafe fn mmap_detector(prot: u64, flags: u64, fd: u64) {
    let mask = config().vfs;
    let covered = if prot & PROT_WRITE != 0 {
        vfs::MMAP
    } else {
        vfs::MPROTECT
    };
    if mask & covered != 0 || (fd as i64) < 0 {
        return;
    }
    if !matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE) {
        return;
    }
    let file = shim_task_fd_file(current_task(), fd as u32);
    on_mmap(tier::TRACEPOINT, sys::MMAP, file, prot, flags);
}

/// Whether an io_uring set up now can reach a group no VFS hook of the running
/// set reports (`sys_exit_io_uring_setup` then reports a blind spot).
#[inline(always)]
pub(crate) fn io_uring_blind() -> bool {
    config().vfs & vfs::IO_URING != vfs::IO_URING
}

/// `vfs_mknod(..., dentry, mode, dev)`: FIFOs, sockets (bind of a unix
/// socket) and device nodes. mknod of a regular file calls vfs_create
/// instead, which the mknod tracepoints report.
#[inline(always)]
unsafe fn on_mknod(tier: u8, dentry: Ptr, mode: u64, dev: u64) {
    if dentry.is_null() || is_self() {
        return;
    }
    let mnt = guess_mnt(dentry);
    let v = new_entry_verdict(dentry, mnt);
    if !v.hit() {
        return;
    }
    let mut c = change(
        sys::VFS_MKNOD,
        op::MKNOD,
        v,
        dev & 0xffff_ffff,
        core::ptr::null(),
    );
    c.mode = mode as u32 & 0xffff;
    stage(tier, &c, &dentry_target(dentry, mnt), None);
}
// ---------------------------------------------------------------------------
// Handlers, shared by both tiers
// ---------------------------------------------------------------------------

/// `rw_verify_area(read_write, file, ppos, count)`: a write was admitted.
#[inline(always)]
unsafe fn on_write(tier: u8, rw: u64, file: Ptr, count: u64) {
    if rw & 0xffff_ffff != KERNEL_WRITE || file.is_null() || is_self() {
        return;
    }
    let key = session_key(file);
    let Some((d, t, id)) = write_opens_session(file, &key) else {
        return;
    };
    let _ = SESSIONS.insert(
        &key,
        &Session {
            root_id: d.root_id,
            flags: 0,
            renames: 0,
        },
        0,
    );
    let Some(sc) = scratch() else { return };
    let c = Change {
        sys: sys::RW_VERIFY_AREA,
        op: op::MODIFIED,
        verdict: watched(d.root_id),
        ret: count as i64,
        flags: 0,
        mode: 0,
        owner: (u32::MAX, u32::MAX),
        id,
        session: 0,
    };
    emit_as(tier, &c, &t, None, sc);
}

#[inline(always)]
unsafe fn on_unlink(tier: u8, dentry: Ptr) {
    if dentry.is_null() || is_self() {
        return;
    }
    let t = dentry_target(dentry, guess_mnt(dentry));
    let v = dentry_verdict(decide(dentry, t.mnt));
    if !v.hit() {
        return;
    }
    let c = Change {
        sys: sys::VFS_UNLINK,
        op: op::DELETED,
        verdict: v,
        ret: 0,
        flags: 0,
        mode: 0,
        owner: (u32::MAX, u32::MAX),
        id: inode_id_of(shim_dentry_inode(dentry)),
        session: 0,
    };
    stage(tier, &c, &t, None);
}

#[inline(always)]
unsafe fn on_rename(tier: u8, old: Ptr, new: Ptr, flags: u64) {
    if old.is_null() || new.is_null() || is_self() {
        return;
    }
    // Both names are on one mount (rename does not cross mounts).
    let mnt = guess_mnt(old);
    let from = dentry_target(old, mnt);
    let to = dentry_target(new, mnt);
    let v = dentry_verdict(decide(old, mnt)).or(dentry_verdict(decide(new, mnt)));
    if !v.hit() {
        return;
    }
    let c = Change {
        sys: sys::VFS_RENAME,
        op: op::RENAMED,
        verdict: v,
        ret: 0,
        flags,
        mode: 0,
        owner: (u32::MAX, u32::MAX),
        id: inode_id_of(shim_dentry_inode(old)),
        session: 0,
    };
    stage(tier, &c, &from, Some(&to));
}

/// `notify_change(..., dentry, attr, ...)`: chmod, chown, truncate, utimes.
/// Truncating opens (ATTR_OPEN) are the open tracepoints' to report.
#[inline(always)]
unsafe fn on_setattr(tier: u8, dentry: Ptr, attr: Ptr) {
    if dentry.is_null() || attr.is_null() || is_self() {
        return;
    }
    let valid = shim_iattr_valid(attr);
    if valid & ATTR_OPEN != 0 {
        return;
    }
    let none = (u32::MAX, u32::MAX);
    let (op, mode, owner, flags) = if valid & ATTR_MODE != 0 {
        (op::PERMISSIONS, shim_iattr_mode(attr), none, 0)
    } else if valid & (ATTR_UID | ATTR_GID) != 0 {
        let uid = if valid & ATTR_UID != 0 {
            shim_iattr_uid(attr)
        } else {
            u32::MAX
        };
        let gid = if valid & ATTR_GID != 0 {
            shim_iattr_gid(attr)
        } else {
            u32::MAX
        };
        (op::OWNER, 0, (uid, gid), 0)
    } else if valid & ATTR_SIZE != 0 {
        (op::TRUNCATED, 0, none, shim_iattr_size(attr) as u64)
    } else if valid & (ATTR_ATIME | ATTR_MTIME) != 0 {
        (op::TIMESTAMPS, 0, none, 0)
    } else {
        // ctime only, or a write dropping set-uid bits.
        return;
    };
    let t = dentry_target(dentry, guess_mnt(dentry));
    let d = decide(dentry, t.mnt);
    if d.flags & decision::SELF == 0 {
        return;
    }
    let c = Change {
        sys: sys::NOTIFY_CHANGE,
        op,
        verdict: watched(d.root_id),
        ret: 0,
        flags,
        mode,
        owner,
        id: inode_id_of(shim_dentry_inode(dentry)),
        session: 0,
    };
    stage(tier, &c, &t, None);
}

/// `vfs_link(old, ..., new, ...)`: reported when either name is watched.
#[inline(always)]
unsafe fn on_link(tier: u8, old: Ptr, new: Ptr) {
    if old.is_null() || new.is_null() || is_self() {
        return;
    }
    let mnt = guess_mnt(old);
    let v = dentry_verdict(decide(old, mnt)).or(new_entry_verdict(new, mnt));
    if !v.hit() {
        return;
    }
    let c = change(sys::VFS_LINK, op::LINKED, v, 0, shim_dentry_inode(old));
    stage(
        tier,
        &c,
        &dentry_target(old, mnt),
        Some(&dentry_target(new, mnt)),
    );
}

/// `vfs_symlink(..., dentry, oldname)`: the contents travel in `target.name`.
#[inline(always)]
unsafe fn on_symlink(tier: u8, dentry: Ptr, contents: Ptr) {
    if dentry.is_null() || is_self() {
        return;
    }
    let mnt = guess_mnt(dentry);
    let v = new_entry_verdict(dentry, mnt);
    if !v.hit() {
        return;
    }
    let Some(sc) = scratch() else { return };
    let key = &mut (*sc).names[1];
    let n = bpf_probe_read_kernel_str(
        key.data.as_mut_ptr() as *mut c_void,
        LPM_DATA as u32,
        contents,
    );
    let contents = Target {
        dentry,
        mnt,
        slot: 1,
        name_len: if n > 0 { n as u32 - 1 } else { 0 },
    };
    let c = change(sys::VFS_SYMLINK, op::SYMLINKED, v, 0, core::ptr::null());
    stage(tier, &c, &dentry_target(dentry, mnt), Some(&contents));
}

#[inline(always)]
unsafe fn on_mkdir(tier: u8, dentry: Ptr, mode: u64) {
    if dentry.is_null() || is_self() {
        return;
    }
    let mnt = guess_mnt(dentry);
    let v = new_entry_verdict(dentry, mnt);
    if !v.hit() {
        return;
    }
    let mut c = change(sys::VFS_MKDIR, op::MKDIR, v, 0, core::ptr::null());
    c.mode = mode as u32 & 0o7777;
    stage(tier, &c, &dentry_target(dentry, mnt), None);
}

#[inline(always)]
unsafe fn on_rmdir(tier: u8, dentry: Ptr) {
    if dentry.is_null() || is_self() {
        return;
    }
    let t = dentry_target(dentry, guess_mnt(dentry));
    let v = dentry_verdict(decide(dentry, t.mnt));
    if !v.hit() {
        return;
    }
    let c = change(sys::VFS_RMDIR, op::RMDIR, v, 0, shim_dentry_inode(dentry));
    stage(tier, &c, &t, None);
}

/// vfs_setxattr / vfs_removexattr on a watched inode (POSIX ACLs excepted:
/// the ACL groups' or the tracepoints').
#[inline(always)]
unsafe fn on_xattr(tier: u8, sys_: u16, op_: u16, dentry: Ptr, name: Ptr, flags: u64) {
    if is_acl_name(name, false) {
        return;
    }
    xattr_change(tier, sys_, op_, dentry, flags);
}

/// An attribute change of a watched inode, reported at the function's exit.
#[inline(always)]
unsafe fn xattr_change(tier: u8, sys_: u16, op_: u16, dentry: Ptr, flags: u64) {
    if dentry.is_null() || is_self() {
        return;
    }
    let t = dentry_target(dentry, guess_mnt(dentry));
    let d = decide(dentry, t.mnt);
    if d.flags & decision::SELF == 0 {
        return;
    }
    let c = change(
        sys_,
        op_,
        watched(d.root_id),
        flags,
        shim_dentry_inode(dentry),
    );
    stage(tier, &c, &t, None);
}

/// `vfs_fallocate(file, mode, offset, len)`: one record per call, as fallocate(2).
#[inline(always)]
unsafe fn on_fallocate(tier: u8, file: Ptr, mode: u64) {
    if file.is_null() || is_self() {
        return;
    }
    let inode = shim_file_inode(file);
    if inode.is_null() || shim_inode_mode(inode) & S_IFMT != S_IFREG {
        return;
    }
    let t = file_target(file);
    let d = decide(t.dentry, t.mnt);
    if d.flags & decision::SELF == 0 {
        return;
    }
    let c = change(
        sys::VFS_FALLOCATE,
        op::MODIFIED,
        watched(d.root_id),
        mode & 0xffff_ffff,
        inode,
    );
    stage(tier, &c, &t, None);
}

/// `vfs_open(path, file)` of an open that created the file or will truncate
/// it: every opener (open syscalls, io_uring, nfsd). At entry `f_flags` still
/// holds O_TRUNC (do_dentry_open clears it) and `f_mode` FMODE_CREATED; the
/// truncation itself follows vfs_open (handle_truncate: notify_change with
/// ATTR_OPEN, which the setattr group leaves alone).
#[inline(always)]
unsafe fn on_open(tier: u8, path: Ptr, file: Ptr) {
    if path.is_null() || file.is_null() {
        return;
    }
    let fmode = shim_file_mode(file);
    let flags = shim_file_flags(file) as u64;
    let created = fmode & FMODE_CREATED != 0;
    if !created && flags & O_TRUNC == 0 {
        return;
    }
    if is_self() {
        return;
    }
    let t = Target {
        dentry: shim_path_dentry(path),
        mnt: shim_path_mnt(path),
        slot: NO_NAME,
        name_len: 0,
    };
    let inode = shim_dentry_inode(t.dentry);
    if inode.is_null() {
        return;
    }
    let id = inode_id(inode);
    if !created && id.mode & S_IFMT != S_IFREG {
        // O_TRUNC means nothing on anything but a regular file.
        return;
    }
    let (v, session) = judge_open(&t, inode, &id, created, fmode);
    if !v.hit() {
        return;
    }
    let op_ = if created { op::CREATED } else { op::TRUNCATED };
    let mut c = change_to(sys::VFS_OPEN, op_, v, flags, id);
    c.mode = id.mode & 0o7777;
    if session {
        // Parked until the exit: see `finish`.
        c.ret = file as i64;
    }
    stage(tier, &c, &t, None);
}

/// `__fput(file)`: the last reference went away without a close syscall seeing
/// it (munmap of the last shared mapping, close_range, exec closing O_CLOEXEC
/// fds): the session's close marker. Exiting processes are left to user space,
/// which emits their markers from the exit record.
#[inline(always)]
unsafe fn on_fput(tier: u8, file: Ptr) {
    if file.is_null() {
        return;
    }
    let key = session_key(file);
    let Some(s) = SESSIONS.get(&key) else {
        return;
    };
    let root_id = s.root_id;
    let _ = SESSIONS.remove(&key);
    if shim_task_flags(current_task()) & PF_EXITING != 0 {
        return;
    }
    let Some(sc) = scratch() else { return };
    let c = change(
        sys::FPUT,
        op::CLOSED_WRITE,
        watched(root_id),
        0,
        shim_file_inode(file),
    );
    emit_as(tier, &c, &file_target(file), None, sc);
}

// ---------------------------------------------------------------------------
// fentry/fexit. `_v1`: kernels before 5.12; `_v2`: 5.12 and later.
// ---------------------------------------------------------------------------

/// `int rw_verify_area(int, struct file *, const loff_t *, size_t)`: unchanged since 2.6.
#[fexit(function = "rw_verify_area")]
pub fn rw_verify_area_fexit(ctx: FExitContext) -> i32 {
    unsafe {
        if btf_arg(&ctx, 4) as i32 == 0 {
            on_write(
                tier::FENTRY,
                btf_arg(&ctx, 0),
                btf_arg(&ctx, 1) as Ptr,
                btf_arg(&ctx, 3),
            );
        }
    }
    0
}

/// `vfs_unlink(dir, dentry, delegated)`.
#[fentry(function = "vfs_unlink")]
pub fn vfs_unlink_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe { on_unlink(tier::FENTRY, btf_arg(&ctx, 1) as Ptr) };
    0
}
#[fexit(function = "vfs_unlink")]
pub fn vfs_unlink_fexit_v1(ctx: FExitContext) -> i32 {
    unsafe { finish(btf_arg(&ctx, 3) as i32 as i64, false) };
    0
}
/// `vfs_unlink(userns | idmap, dir, dentry, delegated)`.
#[fentry(function = "vfs_unlink")]
pub fn vfs_unlink_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe { on_unlink(tier::FENTRY, btf_arg(&ctx, 2) as Ptr) };
    0
}
#[fexit(function = "vfs_unlink")]
pub fn vfs_unlink_fexit_v2(ctx: FExitContext) -> i32 {
    unsafe { finish(btf_arg(&ctx, 4) as i32 as i64, false) };
    0
}

/// `vfs_rename(old_dir, old_dentry, new_dir, new_dentry, delegated, flags)`.
#[fentry(function = "vfs_rename")]
pub fn vfs_rename_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_rename(
            tier::FENTRY,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 3) as Ptr,
            btf_arg(&ctx, 5) & 0xffff_ffff,
        )
    };
    0
}
#[fexit(function = "vfs_rename")]
pub fn vfs_rename_fexit_v1(ctx: FExitContext) -> i32 {
    unsafe { finish(btf_arg(&ctx, 6) as i32 as i64, true) };
    0
}
/// `vfs_rename(struct renamedata *)`.
#[fentry(function = "vfs_rename")]
pub fn vfs_rename_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        let rd = btf_arg(&ctx, 0) as Ptr;
        on_rename(
            tier::FENTRY,
            shim_rd_old_dentry(rd),
            shim_rd_new_dentry(rd),
            shim_rd_flags(rd) as u64,
        )
    };
    0
}
#[fexit(function = "vfs_rename")]
pub fn vfs_rename_fexit_v2(ctx: FExitContext) -> i32 {
    unsafe { finish(btf_arg(&ctx, 1) as i32 as i64, true) };
    0
}

/// `notify_change(dentry, attr, delegated)`.
#[fentry(function = "notify_change")]
pub fn notify_change_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_setattr(
            tier::FENTRY,
            btf_arg(&ctx, 0) as Ptr,
            btf_arg(&ctx, 1) as Ptr,
        )
    };
    0
}
#[fexit(function = "notify_change")]
pub fn notify_change_fexit_v1(ctx: FExitContext) -> i32 {
    unsafe { finish(btf_arg(&ctx, 3) as i32 as i64, false) };
    0
}
/// `notify_change(userns | idmap, dentry, attr, delegated)`.
#[fentry(function = "notify_change")]
pub fn notify_change_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        on_setattr(
            tier::FENTRY,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 2) as Ptr,
        )
    };
    0
}
#[fexit(function = "notify_change")]
pub fn notify_change_fexit_v2(ctx: FExitContext) -> i32 {
    unsafe { finish(btf_arg(&ctx, 4) as i32 as i64, false) };
    0
}

// ---------------------------------------------------------------------------
// kprobe/kretprobe: the same, for kernels that refuse trampolines.
// ---------------------------------------------------------------------------

/// At entry: kprobes see no return value; the admission check rarely fails.
#[kprobe]
pub fn rw_verify_area_kprobe(ctx: ProbeContext) -> u32 {
    unsafe {
        on_write(
            tier::KPROBE,
            kp_arg(&ctx, 0),
            kp_arg(&ctx, 1) as Ptr,
            kp_arg(&ctx, 3),
        )
    };
    0
}

#[kprobe]
pub fn vfs_unlink_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe { on_unlink(tier::KPROBE, kp_arg(&ctx, 1) as Ptr) };
    0
}
#[kprobe]
pub fn vfs_unlink_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe { on_unlink(tier::KPROBE, kp_arg(&ctx, 2) as Ptr) };
    0
}
#[kretprobe]
pub fn vfs_unlink_kretprobe(ctx: RetProbeContext) -> u32 {
    unsafe { finish(ctx.ret::<i64>() as i32 as i64, false) };
    0
}

#[kprobe]
pub fn vfs_rename_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe {
        on_rename(
            tier::KPROBE,
            kp_arg(&ctx, 1) as Ptr,
            kp_arg(&ctx, 3) as Ptr,
            kp_arg(&ctx, 5) & 0xffff_ffff,
        )
    };
    0
}
#[kprobe]
pub fn vfs_rename_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe {
        let rd = kp_arg(&ctx, 0) as Ptr;
        on_rename(
            tier::KPROBE,
            shim_rd_old_dentry(rd),
            shim_rd_new_dentry(rd),
            shim_rd_flags(rd) as u64,
        )
    };
    0
}
#[kretprobe]
pub fn vfs_rename_kretprobe(ctx: RetProbeContext) -> u32 {
    unsafe { finish(ctx.ret::<i64>() as i32 as i64, true) };
    0
}

#[kprobe]
pub fn notify_change_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe { on_setattr(tier::KPROBE, kp_arg(&ctx, 0) as Ptr, kp_arg(&ctx, 1) as Ptr) };
    0
}
#[kprobe]
pub fn notify_change_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe { on_setattr(tier::KPROBE, kp_arg(&ctx, 1) as Ptr, kp_arg(&ctx, 2) as Ptr) };
    0
}
#[kretprobe]
pub fn notify_change_kretprobe(ctx: RetProbeContext) -> u32 {
    unsafe { finish(ctx.ret::<i64>() as i32 as i64, false) };
    0
}

// ---------------------------------------------------------------------------
// The second batch of hooks: link, symlink, mkdir, rmdir, open, xattrs,
// fallocate, mmap, __fput. `_v1`: 5.10's argument layout; `_v2`: with the
// leading user_namespace/mnt_idmap argument of 5.12+ (vfs_link's comes second).
// The loader picks by the parameter count in the kernel's BTF.
// ---------------------------------------------------------------------------

/// An fexit program that sends the parked record; `$ret` is the index of the
/// return value (it follows the arguments).
macro_rules! fexit_finish {
    ($name:ident, $func:tt, $ret:expr, $moved:expr) => {
        #[fexit(function = $func)]
        pub fn $name(ctx: FExitContext) -> i32 {
            unsafe { finish(btf_arg(&ctx, $ret) as i32 as i64, $moved) };
            0
        }
    };
}

/// The kretprobe of a staged hook (kretprobes read no argument: one layout).
macro_rules! kretprobe_finish {
    ($name:ident, $moved:expr) => {
        #[kretprobe]
        pub fn $name(ctx: RetProbeContext) -> u32 {
            unsafe { finish(ctx.ret::<i64>() as i32 as i64, $moved) };
            0
        }
    };
}

/// `vfs_link(old_dentry, dir, new_dentry, delegated)`.
#[fentry(function = "vfs_link")]
pub fn vfs_link_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_link(
            tier::FENTRY,
            btf_arg(&ctx, 0) as Ptr,
            btf_arg(&ctx, 2) as Ptr,
        )
    };
    0
}
fexit_finish!(vfs_link_fexit_v1, "vfs_link", 4, true);
/// `vfs_link(old_dentry, userns | idmap, dir, new_dentry, delegated)`.
#[fentry(function = "vfs_link")]
pub fn vfs_link_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        on_link(
            tier::FENTRY,
            btf_arg(&ctx, 0) as Ptr,
            btf_arg(&ctx, 3) as Ptr,
        )
    };
    0
}
fexit_finish!(vfs_link_fexit_v2, "vfs_link", 5, true);
#[kprobe]
pub fn vfs_link_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe { on_link(tier::KPROBE, kp_arg(&ctx, 0) as Ptr, kp_arg(&ctx, 2) as Ptr) };
    0
}
#[kprobe]
pub fn vfs_link_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe { on_link(tier::KPROBE, kp_arg(&ctx, 0) as Ptr, kp_arg(&ctx, 3) as Ptr) };
    0
}
kretprobe_finish!(vfs_link_kretprobe, true);

/// `vfs_symlink(dir, dentry, oldname)`.
#[fentry(function = "vfs_symlink")]
pub fn vfs_symlink_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_symlink(
            tier::FENTRY,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 2) as Ptr,
        )
    };
    0
}
fexit_finish!(vfs_symlink_fexit_v1, "vfs_symlink", 3, true);
/// `vfs_symlink(userns | idmap, dir, dentry, oldname)`.
#[fentry(function = "vfs_symlink")]
pub fn vfs_symlink_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        on_symlink(
            tier::FENTRY,
            btf_arg(&ctx, 2) as Ptr,
            btf_arg(&ctx, 3) as Ptr,
        )
    };
    0
}
fexit_finish!(vfs_symlink_fexit_v2, "vfs_symlink", 4, true);
#[kprobe]
pub fn vfs_symlink_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe { on_symlink(tier::KPROBE, kp_arg(&ctx, 1) as Ptr, kp_arg(&ctx, 2) as Ptr) };
    0
}
#[kprobe]
pub fn vfs_symlink_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe { on_symlink(tier::KPROBE, kp_arg(&ctx, 2) as Ptr, kp_arg(&ctx, 3) as Ptr) };
    0
}
kretprobe_finish!(vfs_symlink_kretprobe, true);

/// `vfs_mkdir(dir, dentry, mode)`.
#[fentry(function = "vfs_mkdir")]
pub fn vfs_mkdir_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe { on_mkdir(tier::FENTRY, btf_arg(&ctx, 1) as Ptr, btf_arg(&ctx, 2)) };
    0
}
fexit_finish!(vfs_mkdir_fexit_v1, "vfs_mkdir", 3, true);
/// `vfs_mkdir(userns | idmap, dir, dentry, mode)`.
#[fentry(function = "vfs_mkdir")]
pub fn vfs_mkdir_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe { on_mkdir(tier::FENTRY, btf_arg(&ctx, 2) as Ptr, btf_arg(&ctx, 3)) };
    0
}
fexit_finish!(vfs_mkdir_fexit_v2, "vfs_mkdir", 4, true);
#[kprobe]
pub fn vfs_mkdir_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe { on_mkdir(tier::KPROBE, kp_arg(&ctx, 1) as Ptr, kp_arg(&ctx, 2)) };
    0
}
#[kprobe]
pub fn vfs_mkdir_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe { on_mkdir(tier::KPROBE, kp_arg(&ctx, 2) as Ptr, kp_arg(&ctx, 3)) };
    0
}
kretprobe_finish!(vfs_mkdir_kretprobe, true);

/// `vfs_rmdir(dir, dentry)`.
#[fentry(function = "vfs_rmdir")]
pub fn vfs_rmdir_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe { on_rmdir(tier::FENTRY, btf_arg(&ctx, 1) as Ptr) };
    0
}
fexit_finish!(vfs_rmdir_fexit_v1, "vfs_rmdir", 2, true);
/// `vfs_rmdir(userns | idmap, dir, dentry)`.
#[fentry(function = "vfs_rmdir")]
pub fn vfs_rmdir_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe { on_rmdir(tier::FENTRY, btf_arg(&ctx, 2) as Ptr) };
    0
}
fexit_finish!(vfs_rmdir_fexit_v2, "vfs_rmdir", 3, true);
#[kprobe]
pub fn vfs_rmdir_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe { on_rmdir(tier::KPROBE, kp_arg(&ctx, 1) as Ptr) };
    0
}
#[kprobe]
pub fn vfs_rmdir_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe { on_rmdir(tier::KPROBE, kp_arg(&ctx, 2) as Ptr) };
    0
}
kretprobe_finish!(vfs_rmdir_kretprobe, true);

/// `vfs_open(const struct path *, struct file *)`: unchanged from 4.x to 6.12.
#[fentry(function = "vfs_open")]
pub fn vfs_open_fentry(ctx: FEntryContext) -> i32 {
    unsafe {
        on_open(
            tier::FENTRY,
            btf_arg(&ctx, 0) as Ptr,
            btf_arg(&ctx, 1) as Ptr,
        )
    };
    0
}
fexit_finish!(vfs_open_fexit, "vfs_open", 2, false);
#[kprobe]
pub fn vfs_open_kprobe(ctx: ProbeContext) -> u32 {
    unsafe { on_open(tier::KPROBE, kp_arg(&ctx, 0) as Ptr, kp_arg(&ctx, 1) as Ptr) };
    0
}
kretprobe_finish!(vfs_open_kretprobe, false);

/// `vfs_setxattr(dentry, name, value, size, flags)`.
#[fentry(function = "vfs_setxattr")]
pub fn vfs_setxattr_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_xattr(
            tier::FENTRY,
            sys::VFS_SETXATTR,
            op::XATTR_SET,
            btf_arg(&ctx, 0) as Ptr,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 4) & 0xffff_ffff,
        )
    };
    0
}
fexit_finish!(vfs_setxattr_fexit_v1, "vfs_setxattr", 5, false);
/// `vfs_setxattr(userns | idmap, dentry, name, value, size, flags)`.
#[fentry(function = "vfs_setxattr")]
pub fn vfs_setxattr_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        on_xattr(
            tier::FENTRY,
            sys::VFS_SETXATTR,
            op::XATTR_SET,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 2) as Ptr,
            btf_arg(&ctx, 5) & 0xffff_ffff,
        )
    };
    0
}
fexit_finish!(vfs_setxattr_fexit_v2, "vfs_setxattr", 6, false);
#[kprobe]
pub fn vfs_setxattr_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe {
        on_xattr(
            tier::KPROBE,
            sys::VFS_SETXATTR,
            op::XATTR_SET,
            kp_arg(&ctx, 0) as Ptr,
            kp_arg(&ctx, 1) as Ptr,
            kp_arg(&ctx, 4) & 0xffff_ffff,
        )
    };
    0
}
#[kprobe]
pub fn vfs_setxattr_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe {
        on_xattr(
            tier::KPROBE,
            sys::VFS_SETXATTR,
            op::XATTR_SET,
            kp_arg(&ctx, 1) as Ptr,
            kp_arg(&ctx, 2) as Ptr,
            kp_arg(&ctx, 5) & 0xffff_ffff,
        )
    };
    0
}
kretprobe_finish!(vfs_setxattr_kretprobe, false);

/// `vfs_removexattr(dentry, name)`.
#[fentry(function = "vfs_removexattr")]
pub fn vfs_removexattr_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_xattr(
            tier::FENTRY,
            sys::VFS_REMOVEXATTR,
            op::XATTR_REMOVED,
            btf_arg(&ctx, 0) as Ptr,
            btf_arg(&ctx, 1) as Ptr,
            0,
        )
    };
    0
}
fexit_finish!(vfs_removexattr_fexit_v1, "vfs_removexattr", 2, false);
/// `vfs_removexattr(userns | idmap, dentry, name)`.
#[fentry(function = "vfs_removexattr")]
pub fn vfs_removexattr_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        on_xattr(
            tier::FENTRY,
            sys::VFS_REMOVEXATTR,
            op::XATTR_REMOVED,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 2) as Ptr,
            0,
        )
    };
    0
}
fexit_finish!(vfs_removexattr_fexit_v2, "vfs_removexattr", 3, false);
#[kprobe]
pub fn vfs_removexattr_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe {
        on_xattr(
            tier::KPROBE,
            sys::VFS_REMOVEXATTR,
            op::XATTR_REMOVED,
            kp_arg(&ctx, 0) as Ptr,
            kp_arg(&ctx, 1) as Ptr,
            0,
        )
    };
    0
}
#[kprobe]
pub fn vfs_removexattr_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe {
        on_xattr(
            tier::KPROBE,
            sys::VFS_REMOVEXATTR,
            op::XATTR_REMOVED,
            kp_arg(&ctx, 1) as Ptr,
            kp_arg(&ctx, 2) as Ptr,
            0,
        )
    };
    0
}
kretprobe_finish!(vfs_removexattr_kretprobe, false);

/// `vfs_fallocate(file, mode, offset, len)`: unchanged since 3.x.
#[fentry(function = "vfs_fallocate")]
pub fn vfs_fallocate_fentry(ctx: FEntryContext) -> i32 {
    unsafe { on_fallocate(tier::FENTRY, btf_arg(&ctx, 0) as Ptr, btf_arg(&ctx, 1)) };
    0
}
fexit_finish!(vfs_fallocate_fexit, "vfs_fallocate", 4, false);
#[kprobe]
pub fn vfs_fallocate_kprobe(ctx: ProbeContext) -> u32 {
    unsafe { on_fallocate(tier::KPROBE, kp_arg(&ctx, 0) as Ptr, kp_arg(&ctx, 1)) };
    0
}
kretprobe_finish!(vfs_fallocate_kretprobe, false);

/// `security_mmap_file(file, prot, flags)`: every mmap of a file passes it
/// (mmap, shmat, remap_file_pages). fexit: only when the mapping was allowed.
#[fexit(function = "security_mmap_file")]
pub fn security_mmap_file_fexit(ctx: FExitContext) -> i32 {
    unsafe {
        if btf_arg(&ctx, 3) as i32 == 0 {
            on_mmap(
                tier::FENTRY,
                sys::SECURITY_MMAP_FILE,
                btf_arg(&ctx, 0) as Ptr,
                btf_arg(&ctx, 1),
                btf_arg(&ctx, 2),
            );
        }
    }
    0
}
#[kprobe]
pub fn security_mmap_file_kprobe(ctx: ProbeContext) -> u32 {
    unsafe {
        on_mmap(
            tier::KPROBE,
            sys::SECURITY_MMAP_FILE,
            kp_arg(&ctx, 0) as Ptr,
            kp_arg(&ctx, 1),
            kp_arg(&ctx, 2),
        )
    };
    0
}

/// `__fput(file)`: the last reference of an open file is gone.
#[fentry(function = "__fput")]
pub fn fput_fentry(ctx: FEntryContext) -> i32 {
    unsafe { on_fput(tier::FENTRY, btf_arg(&ctx, 0) as Ptr) };
    0
}
#[kprobe]
pub fn fput_kprobe(ctx: ProbeContext) -> u32 {
    unsafe { on_fput(tier::KPROBE, kp_arg(&ctx, 0) as Ptr) };
    0
}

/// `vfs_mknod(dir, dentry, mode, dev)`.
#[fentry(function = "vfs_mknod")]
pub fn vfs_mknod_fentry_v1(ctx: FEntryContext) -> i32 {
    unsafe {
        on_mknod(
            tier::FENTRY,
            btf_arg(&ctx, 1) as Ptr,
            btf_arg(&ctx, 2),
            btf_arg(&ctx, 3),
        )
    };
    0
}
fexit_finish!(vfs_mknod_fexit_v1, "vfs_mknod", 4, true);
/// `vfs_mknod(userns | idmap, dir, dentry, mode, dev)`.
#[fentry(function = "vfs_mknod")]
pub fn vfs_mknod_fentry_v2(ctx: FEntryContext) -> i32 {
    unsafe {
        on_mknod(
            tier::FENTRY,
            btf_arg(&ctx, 2) as Ptr,
            btf_arg(&ctx, 3),
            btf_arg(&ctx, 4),
        )
    };
    0
}
fexit_finish!(vfs_mknod_fexit_v2, "vfs_mknod", 5, true);
#[kprobe]
pub fn vfs_mknod_kprobe_v1(ctx: ProbeContext) -> u32 {
    unsafe {
        on_mknod(
            tier::KPROBE,
            kp_arg(&ctx, 1) as Ptr,
            kp_arg(&ctx, 2),
            kp_arg(&ctx, 3),
        )
    };
    0
}
#[kprobe]
pub fn vfs_mknod_kprobe_v2(ctx: ProbeContext) -> u32 {
    unsafe {
        on_mknod(
            tier::KPROBE,
            kp_arg(&ctx, 2) as Ptr,
            kp_arg(&ctx, 3),
            kp_arg(&ctx, 4),
        )
    };
    0
}
kretprobe_finish!(vfs_mknod_kretprobe, true);

/// `security_file_mprotect(vma, reqprot, prot)`: unchanged since 2.6. fexit:
/// only when the change was allowed.
#[fexit(function = "security_file_mprotect")]
pub fn security_file_mprotect_fexit(ctx: FExitContext) -> i32 {
    unsafe {
        if btf_arg(&ctx, 3) as i32 == 0 {
            on_mprotect(tier::FENTRY, btf_arg(&ctx, 0) as Ptr, btf_arg(&ctx, 1));
        }
    }
    0
}
#[kprobe]
pub fn security_file_mprotect_kprobe(ctx: ProbeContext) -> u32 {
    unsafe { on_mprotect(tier::KPROBE, kp_arg(&ctx, 0) as Ptr, kp_arg(&ctx, 1)) };
    0
}

/// `vfs_set_acl(idmap, dentry, acl_name, kacl)` (6.2+): a POSIX ACL set by any
/// caller; `kacl` NULL removes it (setxattr with an empty value).
#[fentry(function = "vfs_set_acl")]
pub fn vfs_set_acl_fentry(ctx: FEntryContext) -> i32 {
    unsafe {
        xattr_change(
            tier::FENTRY,
            sys::VFS_SET_ACL,
            op::XATTR_SET,
            btf_arg(&ctx, 1) as Ptr,
            0,
        )
    };
    0
}
fexit_finish!(vfs_set_acl_fexit, "vfs_set_acl", 4, false);
#[kprobe]
pub fn vfs_set_acl_kprobe(ctx: ProbeContext) -> u32 {
    unsafe {
        xattr_change(
            tier::KPROBE,
            sys::VFS_SET_ACL,
            op::XATTR_SET,
            kp_arg(&ctx, 1) as Ptr,
            0,
        )
    };
    0
}
kretprobe_finish!(vfs_set_acl_kretprobe, false);

/// `vfs_remove_acl(idmap, dentry, acl_name)` (6.2+).
#[fentry(function = "vfs_remove_acl")]
pub fn vfs_remove_acl_fentry(ctx: FEntryContext) -> i32 {
    unsafe {
        xattr_change(
            tier::FENTRY,
            sys::VFS_REMOVE_ACL,
            op::XATTR_REMOVED,
            btf_arg(&ctx, 1) as Ptr,
            0,
        )
    };
    0
}
fexit_finish!(vfs_remove_acl_fexit, "vfs_remove_acl", 3, false);
#[kprobe]
pub fn vfs_remove_acl_kprobe(ctx: ProbeContext) -> u32 {
    unsafe {
        xattr_change(
            tier::KPROBE,
            sys::VFS_REMOVE_ACL,
            op::XATTR_REMOVED,
            kp_arg(&ctx, 1) as Ptr,
            0,
        )
    };
    0
}
kretprobe_finish!(vfs_remove_acl_kretprobe, false);
