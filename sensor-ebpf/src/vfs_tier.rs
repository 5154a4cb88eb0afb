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

/// Sends the parked record when the function succeeded.
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
        (*r).ts_boot_ns = bpf_ktime_get_boot_ns();
        if EVENTS.output::<FileRecord>(&*r, wakeup_flags()).is_err() {
            count_lost(lost::RINGBUF);
        }
    }
    let _ = PENDING.remove(&id);
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
    let key = SessionKey {
        tgid: tgid(),
        _pad: 0,
        file: file as u64,
    };
    if SESSIONS.get(&key).is_some() {
        return;
    }
    let inode = shim_file_inode(file);
    if inode.is_null() || shim_inode_mode(inode) & S_IFMT != S_IFREG {
        return;
    }
    let t = file_target(file);
    let d = decide(t.dentry, t.mnt, false);
    if d.flags & decision::SELF == 0 {
        return;
    }
    let _ = SESSIONS.insert(
        &key,
        &Session {
            root_id: d.root_id,
            _pad: 0,
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
        inode,
    };
    emit_as(tier, &c, &t, None, sc);
}

#[inline(always)]
unsafe fn on_unlink(tier: u8, dentry: Ptr) {
    if dentry.is_null() || is_self() {
        return;
    }
    let t = dentry_target(dentry, guess_mnt(dentry));
    let v = dentry_verdict(decide(dentry, t.mnt, false));
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
        inode: shim_dentry_inode(dentry),
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
    let v = dentry_verdict(decide(old, mnt, false)).or(dentry_verdict(decide(new, mnt, false)));
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
        inode: shim_dentry_inode(old),
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
    let d = decide(dentry, t.mnt, false);
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
        inode: shim_dentry_inode(dentry),
    };
    stage(tier, &c, &t, None);
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
