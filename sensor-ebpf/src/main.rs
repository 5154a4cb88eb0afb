//! Vigil's kernel side: the syscall-tracepoint tier and the VFS tier (vfs_tier.rs).
//!
//! Every file syscall is judged at its exit tracepoint, so only successful calls
//! produce records; the enter tracepoint only stashes the arguments (exit
//! tracepoints carry nothing but the return value). Whether a target is watched is
//! decided here, on inodes and dentries, never in user space: see `decide_*`.
#![no_std]
#![no_main]

mod shim;
mod vfs_tier;

use aya_ebpf::{
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_get_current_task_btf, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str, bpf_task_pt_regs,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use core::ffi::c_void;
use sensor_common::*;
use shim::*;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);
/// Watched roots, their ancestors and excluded subtrees, by inode.
#[map]
static ROOTS: HashMap<InodeKey, RootValue> = HashMap::with_max_entries(65536, 0);
/// Absolute paths of roots and their ancestors, for absolute names in path syscalls.
#[map]
static PREFIXES: LpmTrie<[u8; LPM_DATA], PrefixValue> = LpmTrie::with_max_entries(16384, 0);
/// Per-inode decision cache.
#[map]
static DECISIONS: LruHashMap<InodeKey, Decision> = LruHashMap::with_max_entries(65536, 0);
#[map]
static CONFIG: Array<SensorConfig> = Array::with_max_entries(1, 0);
/// Syscall arguments stashed at enter, by pid_tgid. A plain (preallocated)
/// hash: an LRU insert costs several times more, and entries cannot pile up:
/// exit removes them, and so does `sched_process_exit` for a thread that dies
/// inside a syscall.
#[map]
static INFLIGHT: HashMap<u64, Args> = HashMap::with_max_entries(16384, 0);
/// Open files written to: one "modified" per (process, open file).
#[map]
static SESSIONS: LruHashMap<SessionKey, Session> = LruHashMap::with_max_entries(65536, 0);
/// Renames finished and in flight: whether a session's path can have changed.
#[map]
static RENAMES: Array<RenameClock> = Array::with_max_entries(1, 0);
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(lost::COUNT, 0);
#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);
/// Two resolved paths per event (target and rename/link destination).
#[map]
static PATHS: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(2, 0);

#[derive(Clone, Copy)]
struct Args {
    sys: u16,
    _pad: [u16; 3],
    args: [u64; 6],
}

/// Names read from user memory, laid out as LPM-trie keys so absolute names can
/// be looked up in `PREFIXES` without a copy.
struct Scratch {
    names: [Key<[u8; LPM_DATA]>; 2],
}

struct PathScratch {
    comps: [u8; PATH_CAP],
}

const AT_FDCWD: i64 = -100;
const AT_REMOVEDIR: u64 = 0x200;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const FMODE_WRITE: u32 = 0x2;
const FMODE_CREATED: u32 = 0x100000;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Set by the loader where `bpf_task_pt_regs` exists (5.15 on): an exit
/// program then reads its syscall's arguments from the task's saved user
/// registers, and the enter programs that only stashed them are not attached
/// (loader.rs, `ENTERS_WITH_WORK`). A constant to the verifier (read-only
/// data), so on older kernels the helpers below are dead code it never checks.
#[no_mangle]
static ARGS_FROM_REGS: u8 = 0;

#[inline(always)]
fn args_from_regs() -> bool {
    unsafe { core::ptr::read_volatile(&ARGS_FROM_REGS) != 0 }
}

/// Set by the loader where `bpf_get_current_task_btf` exists (5.11 on): the
/// current task is then a BTF-typed pointer, and the shim reads its fields with
/// plain loads (fault-safe, emitted inline by the JIT) instead of a
/// `bpf_probe_read_kernel` call each. Read-only data, as [`ARGS_FROM_REGS`];
/// `c/shim.c` reads it too.
#[no_mangle]
static TASK_BTF: u8 = 0;

#[inline(always)]
fn task_btf() -> bool {
    unsafe { core::ptr::read_volatile(&TASK_BTF) != 0 }
}

/// The write(2) family, and the calls that write to an fd without it.
#[inline(always)]
fn is_write(sys: u16) -> bool {
    matches!(
        sys,
        sys::WRITE
            | sys::PWRITE64
            | sys::WRITEV
            | sys::PWRITEV
            | sys::PWRITEV2
            | sys::SENDFILE
            | sys::COPY_FILE_RANGE
            | sys::SPLICE
    )
}

/// The current syscall's six arguments from the registers saved at its entry
/// (x86-64 `struct pt_regs`, the ptrace ABI: r10 r9 r8 ax cx dx si di orig_ax
/// from word 7), in one read; None unless `orig_ax` is the traced syscall.
#[inline(always)]
unsafe fn args_at_exit(ctx: &TracePointContext) -> Option<[u64; 6]> {
    let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u64;
    // Uninitialised (the helper may write to such stack): zeroing it first
    // would be a 72-step `memset` loop.
    let mut r = core::mem::MaybeUninit::<[u64; 9]>::uninit();
    if bpf_probe_read_kernel(
        r.as_mut_ptr() as *mut c_void,
        core::mem::size_of::<[u64; 9]>() as u32,
        regs.add(7) as *const c_void,
    ) < 0
    {
        return None;
    }
    let r = r.assume_init();
    // A sys_exit record: 8 bytes of common fields, then `int __syscall_nr`.
    let nr = *(ctx.as_ptr() as *const i32).add(2);
    if r[8] as i32 != nr {
        return None;
    }
    // The syscall ABI's argument order: di, si, dx, r10, r8, r9.
    Some([r[7], r[6], r[5], r[0], r[2], r[1]])
}

/// The current task: BTF-typed with [`TASK_BTF`], which the shim's task
/// accessors require then.
#[inline(always)]
fn current_task() -> Ptr {
    unsafe {
        if task_btf() {
            bpf_get_current_task_btf() as Ptr
        } else {
            bpf_get_current_task() as Ptr
        }
    }
}

#[inline(always)]
fn tgid() -> u32 {
    (unsafe { bpf_get_current_pid_tgid() } >> 32) as u32
}

#[inline(always)]
fn config() -> SensorConfig {
    match CONFIG.get(0) {
        Some(c) => *c,
        None => SensorConfig::default(),
    }
}

#[inline(always)]
fn is_self() -> bool {
    config().self_tgid == tgid()
}

#[inline(always)]
fn count_lost(index: u32) {
    if let Some(p) = LOST.get_ptr_mut(index) {
        unsafe { *p += 1 };
    }
}

/// Invalidates every cached decision: an inode may now sit somewhere else.
#[inline(always)]
fn bump_generation() {
    if let Some(c) = CONFIG.get_ptr_mut(0) {
        unsafe { shim_atomic_add(core::ptr::addr_of_mut!((*c).generation), 1) };
    }
}

/// A consistent enough reading of the rename clock: `started` is read
/// first, so a rename that starts in between shows as in flight.
#[inline(always)]
fn rename_clock() -> RenameClock {
    match RENAMES.get_ptr(0) {
        Some(c) => unsafe {
            let started = core::ptr::read_volatile(core::ptr::addr_of!((*c).started));
            let finished = core::ptr::read_volatile(core::ptr::addr_of!((*c).finished));
            RenameClock { started, finished }
        },
        None => RenameClock::default(),
    }
}

fn is_rename(sys: u16) -> bool {
    matches!(sys, sys::RENAME | sys::RENAMEAT | sys::RENAMEAT2)
}

/// Counts a rename syscall entering the kernel (`enter`) or returning, with
/// whatever result.
#[inline(always)]
fn tick_rename_clock(enter: bool) {
    if let Some(c) = RENAMES.get_ptr_mut(0) {
        unsafe {
            let counter = if enter {
                core::ptr::addr_of_mut!((*c).started)
            } else {
                core::ptr::addr_of_mut!((*c).finished)
            };
            shim_atomic_add(counter, 1);
        }
    }
}

/// Bytes pending in the ring buffer before a submit wakes the reader. Waking it
/// on every record costs the writing process an irq_work round trip (a self-IPI)
/// per event; below this mark the reader finds records on its periodic drain
/// instead (sensor.rs, every 10 ms), which bounds the added latency.
const WAKEUP_BYTES: u64 = 1 << 20;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
/// A ring record's header, which the pending bytes count too.
const RB_HEADER: u64 = 8;

/// Submit flags for a record of type `T` already reserved (so counted in the
/// pending bytes): wake the reader when this record carries the backlog across
/// a multiple of [`WAKEUP_BYTES`], not on every record above the mark. The
/// reader drains everything once woken; while it is on its way, each further
/// record would otherwise raise another IPI (measured: a fifth of the exit
/// programs' time under a steady churn). A crossing missed to a concurrent
/// producer on another CPU is caught at the next one or by the periodic drain.
#[inline(always)]
fn wakeup_flags<T>() -> u64 {
    wake_at_crossing::<T>(EVENTS.query(BPF_RB_AVAIL_DATA))
}

/// [`wakeup_flags`] for a record not reserved yet (`RingBuf::output`).
#[inline(always)]
fn wakeup_flags_unreserved<T>() -> u64 {
    wake_at_crossing::<T>(EVENTS.query(BPF_RB_AVAIL_DATA) + record_bytes::<T>())
}

#[inline(always)]
fn record_bytes<T>() -> u64 {
    core::mem::size_of::<T>() as u64 + RB_HEADER
}

#[inline(always)]
fn wake_at_crossing<T>(pending: u64) -> u64 {
    if pending >= WAKEUP_BYTES && pending % WAKEUP_BYTES < record_bytes::<T>() {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Syscall argument `n` of a `sys_enter_*` record, or the return value
/// (`n == 0`) of a `sys_exit_*` one. A direct load instead of a helper call;
/// `n` must exist for that syscall: the kernel refuses to attach a program
/// whose loads reach past the end of its tracepoint's record (EACCES).
#[inline(always)]
unsafe fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    *(ctx.as_ptr() as *const u64).add(2 + n)
}

#[inline(always)]
unsafe fn inode_id(inode: Ptr) -> InodeId {
    // Uninitialised: the shim writes every field.
    let mut id = core::mem::MaybeUninit::<InodeId>::uninit();
    shim_inode_id(inode, id.as_mut_ptr());
    id.assume_init()
}

/// An all-zero identity: the change names no inode (a path that is gone, say).
const NO_INODE: InodeId = InodeId {
    ino: 0,
    dev: 0,
    generation: 0,
    mode: 0,
    _pad: 0,
};

/// [`inode_id`], or [`NO_INODE`] for a null inode.
#[inline(always)]
unsafe fn inode_id_of(inode: Ptr) -> InodeId {
    if inode.is_null() {
        NO_INODE
    } else {
        inode_id(inode)
    }
}

#[inline(always)]
unsafe fn inode_key(inode: Ptr) -> InodeKey {
    key_of(&inode_id(inode))
}

#[inline(always)]
fn key_of(id: &InodeId) -> InodeKey {
    InodeKey {
        dev: id.dev,
        generation: id.generation,
        ino: id.ino,
    }
}

// ---------------------------------------------------------------------------
// Decisions: is this inode (or the entries of this directory) watched?
// ---------------------------------------------------------------------------

/// A position in the path tree: a dentry in a mount, and that mount's root
/// dentry, read once per mount rather than once per level.
struct Walk {
    dentry: Ptr,
    mnt: Ptr,
    mnt_root: Ptr,
}

impl Walk {
    #[inline(always)]
    unsafe fn new(dentry: Ptr, mnt: Ptr) -> Walk {
        Walk {
            dentry,
            mnt,
            mnt_root: shim_mnt_root(mnt),
        }
    }

    /// Crosses mount boundaries at the current position: while `dentry` is the
    /// root of `mnt`, continue from the mountpoint in the parent mount (two
    /// stacked mounts per level at most). Returns false at the namespace root.
    ///
    /// Loop bodies stay branch-light on purpose: every path through them must
    /// leave the verifier with equivalent states, or exploration doubles per level.
    #[inline(always)]
    unsafe fn cross_mounts(&mut self) -> bool {
        let mut i = 0;
        while i < 2 {
            if self.dentry != self.mnt_root {
                return true;
            }
            let parent = shim_mnt_parent(self.mnt);
            if parent == self.mnt || parent.is_null() {
                return false;
            }
            self.dentry = shim_mnt_mountpoint(self.mnt);
            self.mnt = parent;
            self.mnt_root = shim_mnt_root(parent);
            i += 1;
        }
        true
    }

    /// Moves one path level up (crossing mounts). Returns false at the top.
    #[inline(always)]
    unsafe fn step_up(&mut self) -> bool {
        if !self.cross_mounts() {
            return false;
        }
        let parent = shim_dentry_parent(self.dentry);
        if parent == self.dentry || parent.is_null() {
            return false;
        }
        self.dentry = parent;
        true
    }
}

/// What a watched-root entry found `depth` levels above the target (0 = the
/// target itself; 2 stands for any depth >= 2) means for the target.
#[inline(always)]
fn root_decision(rv: &RootValue, depth: u32) -> u32 {
    if rv.flags & root_flags::EXCLUDE != 0 {
        return 0;
    }
    let recursive = rv.flags & root_flags::RECURSIVE != 0;
    let all = decision::SELF | decision::CHILDREN | decision::DESCENDANTS;
    match (depth, recursive) {
        (0, false) => decision::SELF | decision::CHILDREN,
        (1, false) => decision::SELF,
        (_, false) => 0,
        (_, true) => all,
    }
}

#[inline(always)]
unsafe fn root_at(dentry: Ptr) -> Option<&'static RootValue> {
    let inode = shim_dentry_inode(dentry);
    if inode.is_null() {
        return None;
    }
    // Roots are keyed without i_generation: user space cannot read it portably.
    let mut key = inode_key(inode);
    key.generation = 0;
    ROOTS.get(&key)
}

/// Walks from `dentry` up to the namespace root, crossing mounts, and returns the
/// decision for the inode at `dentry`. The nearest root (or exclusion) wins.
#[inline(always)]
unsafe fn walk_decide(dentry: Ptr, mnt: Ptr) -> Decision {
    let packed = vigil_walk_decide(dentry as u64, mnt as u64);
    Decision {
        generation: 0,
        flags: (packed >> 32) as u32,
        root_id: packed as u32,
    }
}

/// The walk behind [`walk_decide`], as a BPF *global* function: the verifier checks
/// it once, on its own, instead of once per call site and caller state (which
/// is what made two-path syscalls such as rename exceed the 1M-instruction
/// budget). Arguments are plain scalars, as global functions require on 5.x.
/// Returns `flags << 32 | root_id`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn vigil_walk_decide(dentry: u64, mnt: u64) -> u64 {
    let d = unsafe { walk_decide_inner(dentry as Ptr, mnt as Ptr) };
    ((d.flags as u64) << 32) | d.root_id as u64
}

#[inline(always)]
unsafe fn walk_decide_inner(dentry: Ptr, mnt: Ptr) -> Decision {
    let mut out = Decision::default();
    if let Some(rv) = root_at(dentry) {
        if rv.flags & root_flags::ANCESTOR != 0 {
            out.flags |= decision::ANCESTOR;
        }
        if rv.flags & (root_flags::ROOT | root_flags::EXCLUDE) != 0 {
            out.flags |= root_decision(rv, 0);
            out.root_id = rv.root_id;
            return out;
        }
    }
    // Saturates at 2 so that loop states converge after two levels.
    let mut depth: u32 = 0;
    let mut pos = Walk::new(dentry, mnt);
    for _ in 0..MAX_DEPTH {
        if !pos.step_up() {
            break;
        }
        depth = if depth < 2 { depth + 1 } else { 2 };
        if let Some(rv) = root_at(pos.dentry) {
            if depth == 1 && rv.flags & root_flags::ANCESTOR != 0 {
                out.flags |= decision::PARENT_ANCESTOR;
            }
            if rv.flags & (root_flags::ROOT | root_flags::EXCLUDE) != 0 {
                out.flags |= root_decision(rv, depth);
                out.root_id = rv.root_id;
                return out;
            }
        }
    }
    out
}

/// The cached decision for the inode at `dentry`.
#[inline(always)]
unsafe fn decide(dentry: Ptr, mnt: Ptr) -> Decision {
    let inode = shim_dentry_inode(dentry);
    if inode.is_null() {
        return walk_decide(dentry, mnt);
    }
    decide_inode(&inode_key(inode), dentry, mnt)
}

/// [`decide`] for the inode at `dentry` whose key the caller has read.
#[inline(always)]
unsafe fn decide_inode(key: &InodeKey, dentry: Ptr, mnt: Ptr) -> Decision {
    let gen = config().generation;
    if let Some(d) = DECISIONS.get(key) {
        if d.generation == gen {
            return *d;
        }
    }
    let mut d = walk_decide(dentry, mnt);
    d.generation = gen;
    let _ = DECISIONS.insert(key, &d, 0);
    d
}

/// The decision for a file just created at `t`, derived from its directory's
/// (usually cached) decision instead of a walk.
#[inline(always)]
unsafe fn decide_created(t: &Target) -> Decision {
    let parent = decide(shim_dentry_parent(t.dentry), t.mnt);
    let mut d = Decision {
        generation: config().generation,
        flags: 0,
        root_id: parent.root_id,
    };
    if parent.flags & decision::CHILDREN != 0 {
        d.flags |= decision::SELF;
    }
    if parent.flags & decision::DESCENDANTS != 0 {
        d.flags |= decision::SELF | decision::CHILDREN | decision::DESCENDANTS;
    }
    if parent.flags & decision::ANCESTOR != 0 {
        d.flags |= decision::PARENT_ANCESTOR;
    }
    d
}

/// Caches `d`, the decision for the file just created at `t` (its inode
/// `inode`, whose identity is `id`), unless a write session (`session`)
/// covers the writes that would look it up: an LRU insert was a quarter of a
/// watched create.
///
/// Uncached, the number may still hold a deleted file's answer, which must
/// not be inherited. Filesystems that reuse numbers give the new file another
/// `i_generation` (part of the key; NFS file handles rely on it), so only
/// where it is 0 (no such filesystem, or a stacked one) is an answer looked
/// for, and replaced when found.
#[inline(always)]
unsafe fn cache_created(t: &Target, inode: Ptr, id: &InodeId, d: &Decision, session: bool) {
    // Decisions are keyed by the dentry's inode, which is not the file's on
    // stacked filesystems (overlayfs).
    let own = shim_dentry_inode(t.dentry);
    let key = if own == inode {
        key_of(id)
    } else if own.is_null() {
        return;
    } else {
        inode_key(own)
    };
    if !session || (key.generation == 0 && DECISIONS.get(&key).is_some()) {
        let _ = DECISIONS.insert(&key, d, 0);
    }
}

/// The verdict on an open that created (`created`) or truncated the file at
/// `t` (its inode `inode`, whose identity is `id`), opened with `fmode`; and
/// whether the open begins a write session. Both tiers' opens come here.
#[inline(always)]
unsafe fn judge_open(
    t: &Target,
    inode: Ptr,
    id: &InodeId,
    created: bool,
    fmode: u32,
) -> (Verdict, bool) {
    let d = if created {
        decide_created(t)
    } else {
        decide(t.dentry, t.mnt)
    };
    let mut v = Verdict::default();
    if d.flags & decision::SELF != 0 {
        v = watched(d.root_id);
    } else if created && d.flags & decision::PARENT_ANCESTOR != 0 {
        // Perhaps a root that did not exist yet: user space decides on the path.
        v = candidate(d.root_id);
    }
    let session = fmode & FMODE_WRITE != 0 && v.verdict == verdict::WATCHED;
    if created {
        cache_created(t, inode, id, &d, session);
    }
    (v, session)
}

#[derive(Clone, Copy)]
struct Target {
    dentry: Ptr,
    mnt: Ptr,
    /// Scratch slot holding the literal name, or `NO_NAME` when the anchor is the target.
    slot: usize,
    name_len: u32,
}

const NO_NAME: usize = usize::MAX;

#[derive(Clone, Copy, Default)]
struct Verdict {
    verdict: u8,
    root_id: u32,
}

impl Verdict {
    #[inline(always)]
    fn hit(self) -> bool {
        self.verdict != 0
    }
    #[inline(always)]
    fn or(self, other: Verdict) -> Verdict {
        if self.verdict == verdict::WATCHED || other.verdict == 0 {
            self
        } else if other.verdict == verdict::WATCHED || self.verdict == 0 {
            other
        } else {
            self
        }
    }
}

#[inline(always)]
fn watched(root_id: u32) -> Verdict {
    Verdict {
        verdict: verdict::WATCHED,
        root_id,
    }
}

#[inline(always)]
fn candidate(root_id: u32) -> Verdict {
    Verdict {
        verdict: verdict::CANDIDATE,
        root_id,
    }
}

/// Decides a name relative to a directory anchor, as passed to a path syscall.
///
/// The anchor directory is decided exactly on its inode; the name is not parsed
/// here (a byte loop over it costs the verifier more than the whole walk). User
/// space re-checks the few names that contain `/` against the policy. Names that
/// the kernel cannot place (absolute names, a leading `..`, a directory on the way
/// to a root) go to user space as candidates when they can lead into a watched
/// tree, and are dropped when they cannot.
#[inline(always)]
unsafe fn decide_named(t: &Target, scratch: *mut Scratch) -> Verdict {
    if t.slot == NO_NAME || t.name_len == 0 {
        // AT_EMPTY_PATH: the anchor is the target.
        let d = decide(t.dentry, t.mnt);
        return if d.flags & decision::SELF != 0 {
            watched(d.root_id)
        } else {
            Verdict::default()
        };
    }
    let key = &mut (*scratch).names[t.slot & 1];
    let (c0, c1) = (key.data[0], key.data[1]);
    if c0 == b'/' {
        key.prefix_len = (LPM_DATA * 8) as u32;
        return match PREFIXES.get(&*key) {
            Some(v) => candidate(v.root_id),
            None => Verdict::default(),
        };
    }
    let d = decide(t.dentry, t.mnt);
    if d.flags & (decision::CHILDREN | decision::DESCENDANTS) != 0 {
        return watched(d.root_id);
    }
    if d.flags & decision::ANCESTOR != 0 || (c0 == b'.' && c1 == b'.') {
        return candidate(d.root_id);
    }
    Verdict::default()
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

#[inline(always)]
unsafe fn fill_process(p: *mut ProcessInfo, task: Ptr) {
    const _: () = assert!(
        core::mem::offset_of!(ProcessInfo, egid) == core::mem::offset_of!(ProcessInfo, uid) + 12
    );
    let ids = shim_task_pid_tgid(task);
    (*p).pid = ids as u32;
    (*p).tgid = (ids >> 32) as u32;
    (*p).ppid = shim_task_ppid(task);
    // uid, gid, euid, egid are neighbours in ProcessInfo.
    shim_task_creds(task, core::ptr::addr_of_mut!((*p).uid));
    let audit = shim_task_audit_ids(task);
    (*p).loginuid = audit as u32;
    (*p).sessionid = (audit >> 32) as u32;
    (*p).mntns = shim_task_mntns(task);
    (*p).cgroup_id = bpf_get_current_cgroup_id();
    (*p).start_boottime = shim_task_start_boottime(task);
    bpf_get_current_comm((*p).comm.as_mut_ptr() as *mut c_void, COMM_LEN as u32);
}

/// Resolves the path of `dentry` into per-CPU scratch slot `slot` (leaf-first,
/// NUL-separated components). A BPF global function for the same reason as
/// [`vigil_walk_decide`]. Returns `flags << 16 | bytes used`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn vigil_resolve_path(slot: u32, dentry: u64, mnt: u64) -> u32 {
    let Some(buf) = PATHS.get_ptr_mut(slot & 1) else {
        return 0;
    };
    unsafe { resolve_path_inner(buf, dentry as Ptr, mnt as Ptr) }
}

#[inline(always)]
unsafe fn resolve_path_inner(buf: *mut PathScratch, dentry: Ptr, mnt: Ptr) -> u32 {
    let mut off: usize = 0;
    let mut flags = path_flags::HAS_ANCHOR | path_flags::TRUNCATED;
    let mut pos = Walk::new(dentry, mnt);
    for _ in 0..MAX_DEPTH {
        if !pos.cross_mounts() {
            flags = path_flags::HAS_ANCHOR;
            break;
        }
        let mut name: Ptr = core::ptr::null();
        let parent = shim_dentry_parent_name(pos.dentry, &mut name);
        if parent == pos.dentry || parent.is_null() {
            flags = path_flags::HAS_ANCHOR;
            break;
        }
        if off > PATH_MASK {
            break;
        }
        // The mask must reach the register the helper gets. After the check
        // above LLVM drops a plain `off & PATH_MASK` as redundant, and verifiers
        // before ~6.5 lose the check's bound when `off` is spilled and reloaded
        // (6.1 refused every program that resolves a path: "invalid access to
        // map value, off=1280 size=256"). A volatile read keeps the AND.
        let at = core::ptr::read_volatile(&off) & PATH_MASK;
        let dst = (*buf).comps.as_mut_ptr().add(at) as *mut c_void;
        let n = bpf_probe_read_kernel_str(dst, NAME_CAP as u32, name);
        if n <= 0 {
            break;
        }
        off += n as usize;
        pos.dentry = parent;
    }
    let used = if off > PATH_CAP { PATH_CAP } else { off };
    ((flags as u32) << 16) | used as u32
}

/// Writes the path of `dentry` into `rec` (through scratch slot `slot`).
#[inline(always)]
unsafe fn write_anchor(rec: *mut PathRecord, slot: u32, dentry: Ptr, mnt: Ptr) {
    let r = vigil_resolve_path(slot, dentry as u64, mnt as u64);
    (*rec).flags = (r >> 16) as u16;
    (*rec).comps_len = r as u16;
    (*rec).name_len = 0;
    // Nothing to copy for an anchor at the root (every absolute name's).
    if r & 0xffff == 0 {
        return;
    }
    if let Some(src) = PATHS.get_ptr(slot & 1) {
        // Only the used bytes (readers go by `comps_len`): a path is tens of
        // bytes, the buffer 1.25 KiB, and this copy runs 8 bytes a step.
        bpf_probe_read_kernel(
            (*rec).comps.as_mut_ptr() as *mut c_void,
            bounded(r & 0xffff, PATH_CAP as u32),
            src as *const c_void,
        );
    }
}

/// `n` capped at `cap`, as a helper's size argument. The volatile read keeps
/// LLVM from hoisting the cap away from the call: a bound computed early and
/// spilled is lost by verifiers before ~6.5 (see [`resolve_path_inner`]).
#[inline(always)]
fn bounded(n: u32, cap: u32) -> u32 {
    let n = unsafe { core::ptr::read_volatile(&n) };
    if n > cap {
        cap
    } else {
        n
    }
}

#[inline(always)]
unsafe fn write_target(rec: *mut PathRecord, slot: u32, t: &Target, scratch: *mut Scratch) {
    write_anchor(rec, slot, t.dentry, t.mnt);
    if t.slot != NO_NAME && t.name_len > 0 {
        let src = (*scratch).names[t.slot & 1].data.as_ptr() as *const c_void;
        bpf_probe_read_kernel(
            (*rec).name.as_mut_ptr() as *mut c_void,
            bounded(t.name_len, NAME_CAP as u32),
            src,
        );
        (*rec).flags |= path_flags::HAS_NAME;
        (*rec).name_len = t.name_len as u16;
    }
}

struct Change {
    sys: u16,
    op: u16,
    verdict: Verdict,
    ret: i64,
    flags: u64,
    mode: u32,
    owner: (u32, u32),
    /// The changed inode, read once by whoever has it; [`NO_INODE`] when not known.
    id: InodeId,
    /// The write session this change opens (its `struct file`), or 0.
    session: u64,
}

/// Emits a record; false when the ring buffer was full (counted as lost).
#[inline(always)]
unsafe fn emit(c: &Change, path: &Target, target: Option<&Target>, scratch: *mut Scratch) -> bool {
    emit_as(tier::TRACEPOINT, c, path, target, scratch)
}

#[inline(always)]
unsafe fn emit_as(
    tier: u8,
    c: &Change,
    path: &Target,
    target: Option<&Target>,
    scratch: *mut Scratch,
) -> bool {
    let Some(mut entry) = EVENTS.reserve::<FileRecord>(0) else {
        count_lost(lost::RINGBUF);
        return false;
    };
    fill(entry.as_mut_ptr(), tier, c, path, target, scratch);
    entry.submit(wakeup_flags::<FileRecord>());
    true
}

/// Writes a whole file record (into the ring buffer, or a staging slot).
#[inline(always)]
unsafe fn fill(
    r: *mut FileRecord,
    tier: u8,
    c: &Change,
    path: &Target,
    target: Option<&Target>,
    scratch: *mut Scratch,
) {
    (*r).kind = kind::FILE;
    (*r).tier = tier;
    (*r)._pad = [0; 2];
    (*r).op = c.op;
    (*r).sys = c.sys;
    (*r).verdict = c.verdict.verdict;
    (*r).root_id = c.verdict.root_id;
    (*r).ts_boot_ns = bpf_ktime_get_boot_ns();
    // Volatile: neighbouring constant zeros (most calls have no flags or
    // mode) would merge into a call to `memset`, a byte loop on BPF.
    use core::ptr::{addr_of_mut, write_volatile};
    write_volatile(addr_of_mut!((*r).ret), c.ret);
    write_volatile(addr_of_mut!((*r).flags), c.flags);
    write_volatile(addr_of_mut!((*r).mode), c.mode);
    (*r).arg_uid = c.owner.0;
    (*r).arg_gid = c.owner.1;
    write_volatile(addr_of_mut!((*r).dev), c.id.dev);
    write_volatile(addr_of_mut!((*r).ino), c.id.ino);
    write_volatile(addr_of_mut!((*r).i_mode), c.id.mode);
    (*r).session = c.session;
    fill_process(core::ptr::addr_of_mut!((*r).process), current_task());
    write_target(core::ptr::addr_of_mut!((*r).path), 0, path, scratch);
    match target {
        Some(t) => write_target(core::ptr::addr_of_mut!((*r).target), 1, t, scratch),
        None => {
            (*r).target.flags = 0;
            (*r).target.comps_len = 0;
            (*r).target.name_len = 0;
        }
    }
}

// ---------------------------------------------------------------------------
// Resolving syscall arguments
// ---------------------------------------------------------------------------

#[inline(always)]
unsafe fn file_target(file: Ptr) -> Target {
    let mut mnt = core::ptr::null();
    let dentry = shim_file_path(file, &mut mnt);
    Target {
        dentry,
        mnt,
        slot: NO_NAME,
        name_len: 0,
    }
}

/// Reads a user-space name into scratch slot `slot` and picks its anchor:
/// the task root for absolute names, the cwd for AT_FDCWD, else the dfd's file.
#[inline(always)]
unsafe fn named_target(dfd: i64, uname: u64, slot: usize, scratch: *mut Scratch) -> Option<Target> {
    let task = current_task();
    let key = &mut (*scratch).names[slot & 1];
    let mut len: u32 = 0;
    if uname != 0 {
        let n = bpf_probe_read_user_str(
            key.data.as_mut_ptr() as *mut c_void,
            LPM_DATA as u32,
            uname as *const c_void,
        );
        if n < 0 {
            return None;
        }
        len = if n > 0 { n as u32 - 1 } else { 0 };
    } else {
        key.data[0] = 0;
    }
    let (dentry, mnt) = if len > 0 && key.data[0] == b'/' {
        let mut mnt = core::ptr::null();
        (shim_task_root(task, &mut mnt), mnt)
    } else if dfd as i32 as i64 == AT_FDCWD {
        let mut mnt = core::ptr::null();
        (shim_task_pwd(task, &mut mnt), mnt)
    } else {
        let file = shim_task_fd_file(task, dfd as u32);
        if file.is_null() {
            return None;
        }
        let t = file_target(file);
        (t.dentry, t.mnt)
    };
    if dentry.is_null() || mnt.is_null() {
        return None;
    }
    Some(Target {
        dentry,
        mnt,
        slot,
        name_len: len,
    })
}

#[inline(always)]
fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(0)
}

// ---------------------------------------------------------------------------
// Enter: stash arguments
// ---------------------------------------------------------------------------

/// Stashes a syscall's arguments for its exit, where [`ARGS_FROM_REGS`] is
/// off. A rename's enter also ticks the rename clock, and is the one enter
/// attached where it is on.
#[inline(always)]
unsafe fn stash(ctx: &TracePointContext, sys: u16) {
    if is_rename(sys) {
        tick_rename_clock(true);
    }
    if args_from_regs() || is_self() {
        return;
    }
    // One copy of all six slots. Not `arg()`: direct loads past the end of a
    // shorter syscall's record make the kernel refuse to attach the program.
    // Not zeroed first: that is a `memset` byte loop on BPF.
    let mut args = core::mem::MaybeUninit::<[u64; 6]>::uninit();
    if bpf_probe_read_kernel(
        args.as_mut_ptr() as *mut c_void,
        core::mem::size_of::<[u64; 6]>() as u32,
        (ctx.as_ptr() as *const u64).add(2) as *const c_void,
    ) < 0
    {
        return;
    }
    let a = Args {
        sys,
        _pad: [0; 3],
        args: args.assume_init(),
    };
    if !wanted(sys, &a.args) {
        return;
    }
    if INFLIGHT.insert(&bpf_get_current_pid_tgid(), &a, 0).is_err() {
        count_lost(lost::ARGS);
    }
}

/// write(2) family (and sendfile, copy_file_range, splice, whose output fd is
/// argument `fd_arg`): filter at enter, so unwatched and already-reported files
/// cost an fd lookup and one or two map lookups and are never stashed.
#[inline(always)]
unsafe fn write_enter(ctx: &TracePointContext, sys: u16, fd_arg: usize) {
    if is_self() || config().vfs & vfs::WRITE != 0 {
        return;
    }
    let file = shim_task_fd_file(current_task(), arg(ctx, fd_arg) as u32);
    if file.is_null() {
        return;
    }
    if write_opens_session(file, &session_key(file)).is_some() {
        stash(ctx, sys);
    }
}

/// Whether a write to `file` opens a write session: none is open for it in
/// this process (the common case, one map lookup), it is a regular file, and
/// it is watched. Then its decision, target and inode.
#[inline(always)]
unsafe fn write_opens_session(file: Ptr, key: &SessionKey) -> Option<(Decision, Target, InodeId)> {
    if SESSIONS.get(key).is_some() {
        return None;
    }
    let inode = shim_file_inode(file);
    if inode.is_null() {
        return None;
    }
    // Every write to a regular file outside a session comes here, watched or
    // not: one read of the inode serves the type check and the cache key.
    let id = inode_id(inode);
    if id.mode & S_IFMT != S_IFREG {
        return None;
    }
    let t = file_target(file);
    let d = decide_inode(&key_of(&id), t.dentry, t.mnt);
    if d.flags & decision::SELF == 0 {
        return None;
    }
    Some((d, t, id))
}

#[inline(always)]
fn session_key(file: Ptr) -> SessionKey {
    SessionKey {
        tgid: tgid(),
        _pad: 0,
        file: file as u64,
    }
}

/// True when a VFS-tier hook of the running set reports this call, so its
/// tracepoint stays quiet (one event per operation). The loader does not even
/// attach the tracepoints of wholly covered syscalls; this catches the rest:
/// unlinkat (vfs_unlink without AT_REMOVEDIR, vfs_rmdir with it), mknod (a
/// regular file is vfs_create's) and the xattr calls, whose POSIX ACL names
/// belong to the ACL groups (6.2 moved ACLs out of vfs_setxattr into vfs_set_acl).
#[inline(always)]
unsafe fn covered_by_vfs(sys: u16, x: &[u64; 6]) -> bool {
    let mask = config().vfs;
    if mask == 0 {
        return false;
    }
    let group = match sys {
        s if is_write(s) => vfs::WRITE,
        sys::UNLINK => vfs::UNLINK,
        sys::UNLINKAT if x[2] & AT_REMOVEDIR == 0 => vfs::UNLINK,
        sys::UNLINKAT | sys::RMDIR => vfs::RMDIR,
        sys::RENAME | sys::RENAMEAT | sys::RENAMEAT2 => vfs::RENAME,
        sys::LINK | sys::LINKAT => vfs::LINK,
        sys::SYMLINK | sys::SYMLINKAT => vfs::SYMLINK,
        sys::MKDIR | sys::MKDIRAT => vfs::MKDIR,
        sys::OPEN | sys::OPENAT | sys::OPENAT2 | sys::CREAT => vfs::OPEN,
        sys::FALLOCATE => vfs::FALLOCATE,
        // A regular file made by mknod goes through vfs_create, not vfs_mknod.
        sys::MKNOD if x[1] as u32 & S_IFMT != S_IFREG && x[1] as u32 & S_IFMT != 0 => vfs::MKNOD,
        sys::MKNODAT if x[2] as u32 & S_IFMT != S_IFREG && x[2] as u32 & S_IFMT != 0 => vfs::MKNOD,
        // POSIX ACLs: the ACL groups (vfs_set_acl, vfs_remove_acl, 6.2+) or nobody.
        sys::SETXATTR | sys::LSETXATTR | sys::FSETXATTR => {
            if vfs_tier::is_acl_name(x[1] as Ptr, true) {
                vfs::SETACL
            } else {
                vfs::SETXATTR
            }
        }
        sys::REMOVEXATTR | sys::LREMOVEXATTR | sys::FREMOVEXATTR => {
            if vfs_tier::is_acl_name(x[1] as Ptr, true) {
                vfs::REMOVEACL
            } else {
                vfs::REMOVEXATTR
            }
        }
        sys::CHMOD
        | sys::FCHMOD
        | sys::FCHMODAT
        | sys::FCHMODAT2
        | sys::CHOWN
        | sys::FCHOWN
        | sys::LCHOWN
        | sys::FCHOWNAT
        | sys::TRUNCATE
        | sys::FTRUNCATE
        | sys::UTIMENSAT
        | sys::UTIMES
        | sys::UTIME
        | sys::FUTIMESAT => vfs::SETATTR,
        _ => 0,
    };
    mask & group != 0
}

/// Whether a call with these arguments can be a change this program reports:
/// not one a VFS-tier hook reports instead, and for the opens, one that may
/// create or truncate (the rest of the opens are the bulk of them).
#[inline(always)]
unsafe fn wanted(sys: u16, x: &[u64; 6]) -> bool {
    let open_flags = match sys {
        sys::OPEN => x[1],
        sys::OPENAT => x[2],
        sys::OPENAT2 => shim_open_how_flags(x[2] as Ptr),
        _ => O_CREAT,
    };
    open_flags & (O_CREAT | O_TRUNC) != 0 && !covered_by_vfs(sys, x)
}

/// Starts a write session, announced: its opening record is about to be
/// emitted with the session's key. The rename clock is read here, before that
/// record resolves the path, so a rename that moves the file after this point
/// shows at the close.
#[inline(always)]
unsafe fn begin_session(key: &SessionKey, root_id: u32) {
    let clock = rename_clock();
    let renaming = if clock.started == clock.finished {
        0
    } else {
        session::RENAMING
    };
    let _ = SESSIONS.insert(
        key,
        &Session {
            root_id,
            flags: session::ANNOUNCED | renaming,
            renames: clock.started,
        },
        0,
    );
}

/// The opening record was lost: user space holds nothing to complete a
/// [`CloseRecord`] with, so the close is a whole record.
#[inline(always)]
unsafe fn unannounce(key: &SessionKey) {
    if let Some(s) = SESSIONS.get_ptr_mut(key) {
        (*s).flags &= !session::ANNOUNCED;
    }
}

/// close(2), or dup2/dup3 over an fd: the end of a write session, when hashing
/// will happen. A file with other references ends it only when they are
/// elsewhere: `cmd > file` in a shell dups the fd to 1 and closes the original
/// while the file stays open for writing, and a shared mapping writes after
/// close; but a forked child holding the file (until it exits or execs) is not
/// this process writing, and keeping the session would leave it in the map.
#[inline(always)]
unsafe fn close_enter(fd: u64, via: u16) {
    if is_self() {
        return;
    }
    let task = current_task();
    let file = shim_task_fd_file(task, fd as u32);
    if file.is_null() {
        return;
    }
    let key = session_key(file);
    let Some(s) = SESSIONS.get(&key) else { return };
    if shim_file_refs(file) > 1
        && (s.flags & session::MAPPED != 0 || shim_task_other_fd_holds(task, fd as u32, file) != 0)
    {
        return;
    }
    let (root_id, flags, renames) = (s.root_id, s.flags, s.renames);
    let _ = SESSIONS.remove(&key);
    // The path the opening record resolved is still the file's: a marker
    // naming the session is enough (no path walk, no process block).
    if flags & (session::ANNOUNCED | session::RENAMING) == session::ANNOUNCED
        && rename_clock().started == renames
        && config().vfs & vfs::RENAME == 0
    {
        if let Some(mut entry) = EVENTS.reserve::<CloseRecord>(0) {
            let id = bpf_get_current_pid_tgid();
            entry.write(CloseRecord {
                kind: kind::CLOSE,
                sys: via,
                _pad: 0,
                ts_boot_ns: bpf_ktime_get_boot_ns(),
                pid: id as u32,
                tgid: (id >> 32) as u32,
                session: file as u64,
            });
            entry.submit(wakeup_flags::<CloseRecord>());
        } else {
            count_lost(lost::RINGBUF);
        }
        return;
    }
    let Some(sc) = scratch() else { return };
    let c = Change {
        sys: via,
        op: op::CLOSED_WRITE,
        verdict: watched(root_id),
        ret: 0,
        flags: 0,
        mode: 0,
        owner: (u32::MAX, u32::MAX),
        id: inode_id_of(shim_file_inode(file)),
        session: file as u64,
    };
    emit(&c, &file_target(file), None, sc);
}

// ---------------------------------------------------------------------------
// Exit: judge and emit
// ---------------------------------------------------------------------------

#[inline(always)]
unsafe fn exit(ctx: &TracePointContext, sys: u16) {
    if is_rename(sys) {
        tick_rename_clock(false);
    }
    let ret = arg(ctx, 0) as i64;
    let x = if args_from_regs() {
        if ret < 0 || is_self() {
            return;
        }
        let Some(x) = args_at_exit(ctx) else { return };
        if !wanted(sys, &x) {
            return;
        }
        x
    } else {
        let id = bpf_get_current_pid_tgid();
        let Some(p) = INFLIGHT.get_ptr(&id) else {
            return;
        };
        let a = *p;
        let _ = INFLIGHT.remove(&id);
        if a.sys != sys {
            return;
        }
        if ret < 0 {
            return;
        }
        a.args
    };
    let Some(sc) = scratch() else { return };
    let x = &x;
    let none = (u32::MAX, u32::MAX);
    match sys {
        sys::WRITE | sys::PWRITE64 | sys::WRITEV | sys::PWRITEV | sys::PWRITEV2 | sys::SENDFILE => {
            if ret > 0 {
                fd_change(sys, op::MODIFIED, x[0], ret, 0, 0, none, true, sc);
            }
        }
        sys::COPY_FILE_RANGE | sys::SPLICE => {
            if ret > 0 {
                fd_change(sys, op::MODIFIED, x[2], ret, 0, 0, none, true, sc);
            }
        }
        sys::OPEN => open_exit(sys, x[1], x[2], ret, sc),
        sys::CREAT => open_exit(sys, O_CREAT | O_TRUNC | 1, x[1], ret, sc),
        sys::OPENAT => open_exit(sys, x[2], x[3], ret, sc),
        sys::OPENAT2 => open_exit(sys, shim_open_how_flags(x[2] as Ptr), 0, ret, sc),
        sys::FCHMOD => fd_change(
            sys,
            op::PERMISSIONS,
            x[0],
            ret,
            0,
            x[1] as u32,
            none,
            false,
            sc,
        ),
        sys::FCHOWN => fd_change(
            sys,
            op::OWNER,
            x[0],
            ret,
            0,
            0,
            (x[1] as u32, x[2] as u32),
            false,
            sc,
        ),
        sys::FTRUNCATE => fd_change(sys, op::TRUNCATED, x[0], ret, x[1], 0, none, false, sc),
        sys::FALLOCATE => fd_change(sys, op::MODIFIED, x[0], ret, x[1], 0, none, false, sc),
        sys::FSETXATTR => fd_change(sys, op::XATTR_SET, x[0], ret, x[4], 0, none, false, sc),
        sys::FREMOVEXATTR => fd_change(sys, op::XATTR_REMOVED, x[0], ret, 0, 0, none, false, sc),
        sys::UTIMENSAT if x[1] == 0 => {
            fd_change(sys, op::TIMESTAMPS, x[0], ret, x[3], 0, none, false, sc)
        }

        sys::UNLINK => path_change(sys, op::DELETED, AT_FDCWD, x[0], 0, 0, none, sc),
        sys::UNLINKAT => {
            let o = if x[2] & AT_REMOVEDIR != 0 {
                op::RMDIR
            } else {
                op::DELETED
            };
            if o == op::RMDIR {
                bump_generation();
            }
            path_change(sys, o, x[0] as i64, x[1], x[2], 0, none, sc)
        }
        sys::RMDIR => {
            bump_generation();
            path_change(sys, op::RMDIR, AT_FDCWD, x[0], 0, 0, none, sc)
        }
        sys::MKDIR => {
            bump_generation();
            path_change(sys, op::MKDIR, AT_FDCWD, x[0], 0, x[1] as u32, none, sc)
        }
        sys::MKDIRAT => {
            bump_generation();
            path_change(sys, op::MKDIR, x[0] as i64, x[1], 0, x[2] as u32, none, sc)
        }
        sys::MKNOD => {
            bump_generation();
            path_change(sys, op::MKNOD, AT_FDCWD, x[0], x[2], x[1] as u32, none, sc)
        }
        sys::MKNODAT => {
            bump_generation();
            path_change(
                sys,
                op::MKNOD,
                x[0] as i64,
                x[1],
                x[3],
                x[2] as u32,
                none,
                sc,
            )
        }
        sys::CHMOD => path_change(
            sys,
            op::PERMISSIONS,
            AT_FDCWD,
            x[0],
            0,
            x[1] as u32,
            none,
            sc,
        ),
        sys::FCHMODAT => path_change(
            sys,
            op::PERMISSIONS,
            x[0] as i64,
            x[1],
            0,
            x[2] as u32,
            none,
            sc,
        ),
        sys::FCHMODAT2 => path_change(
            sys,
            op::PERMISSIONS,
            x[0] as i64,
            x[1],
            x[3],
            x[2] as u32,
            none,
            sc,
        ),
        sys::CHOWN | sys::LCHOWN => path_change(
            sys,
            op::OWNER,
            AT_FDCWD,
            x[0],
            0,
            0,
            (x[1] as u32, x[2] as u32),
            sc,
        ),
        sys::FCHOWNAT => path_change(
            sys,
            op::OWNER,
            x[0] as i64,
            x[1],
            x[4],
            0,
            (x[2] as u32, x[3] as u32),
            sc,
        ),
        sys::TRUNCATE => path_change(sys, op::TRUNCATED, AT_FDCWD, x[0], x[1], 0, none, sc),
        sys::UTIMENSAT => path_change(sys, op::TIMESTAMPS, x[0] as i64, x[1], x[3], 0, none, sc),
        sys::UTIMES | sys::UTIME => {
            path_change(sys, op::TIMESTAMPS, AT_FDCWD, x[0], 0, 0, none, sc)
        }
        sys::FUTIMESAT => path_change(sys, op::TIMESTAMPS, x[0] as i64, x[1], 0, 0, none, sc),
        sys::SETXATTR | sys::LSETXATTR => {
            path_change(sys, op::XATTR_SET, AT_FDCWD, x[0], x[4], 0, none, sc)
        }
        sys::REMOVEXATTR | sys::LREMOVEXATTR => {
            path_change(sys, op::XATTR_REMOVED, AT_FDCWD, x[0], 0, 0, none, sc)
        }

        sys::RENAME => two_path_change(sys, op::RENAMED, AT_FDCWD, x[0], AT_FDCWD, x[1], 0, sc),
        sys::RENAMEAT => two_path_change(
            sys,
            op::RENAMED,
            x[0] as i64,
            x[1],
            x[2] as i64,
            x[3],
            0,
            sc,
        ),
        sys::RENAMEAT2 => two_path_change(
            sys,
            op::RENAMED,
            x[0] as i64,
            x[1],
            x[2] as i64,
            x[3],
            x[4],
            sc,
        ),
        sys::LINK => two_path_change(sys, op::LINKED, AT_FDCWD, x[0], AT_FDCWD, x[1], 0, sc),
        sys::LINKAT => two_path_change(
            sys,
            op::LINKED,
            x[0] as i64,
            x[1],
            x[2] as i64,
            x[3],
            x[4],
            sc,
        ),
        sys::SYMLINK => symlink_exit(sys, x[0], AT_FDCWD, x[1], sc),
        sys::SYMLINKAT => symlink_exit(sys, x[0], x[1] as i64, x[2], sc),
        _ => {}
    }
}

/// A change to an open file (write family, fchmod, ftruncate, ...).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn fd_change(
    sys: u16,
    op: u16,
    fd: u64,
    ret: i64,
    flags: u64,
    mode: u32,
    owner: (u32, u32),
    session: bool,
    sc: *mut Scratch,
) {
    let file = shim_task_fd_file(current_task(), fd as u32);
    if file.is_null() {
        return;
    }
    let key = session_key(file);
    let (d, t, id) = if session {
        let Some(opened) = write_opens_session(file, &key) else {
            return;
        };
        begin_session(&key, opened.0.root_id);
        opened
    } else {
        let t = file_target(file);
        let d = decide(t.dentry, t.mnt);
        if d.flags & decision::SELF == 0 {
            return;
        }
        (d, t, inode_id_of(shim_file_inode(file)))
    };
    let c = Change {
        sys,
        op,
        verdict: watched(d.root_id),
        ret,
        flags,
        mode,
        owner,
        id,
        session: if session { file as u64 } else { 0 },
    };
    if !emit(&c, &t, None, sc) && session {
        unannounce(&key);
    }
}

/// open/openat/openat2/creat with O_CREAT or O_TRUNC: decided on the new fd.
#[inline(always)]
unsafe fn open_exit(sys: u16, flags: u64, mode: u64, fd: i64, sc: *mut Scratch) {
    let file = shim_task_fd_file(current_task(), fd as u32);
    if file.is_null() {
        return;
    }
    let fmode = shim_file_mode(file);
    let created = fmode & FMODE_CREATED != 0;
    if !created && flags & O_TRUNC == 0 {
        return;
    }
    let t = file_target(file);
    let inode = shim_file_inode(file);
    let id = inode_id_of(inode);
    let (v, session) = judge_open(&t, inode, &id, created, fmode);
    if !v.hit() {
        return;
    }
    let key = session_key(file);
    if session {
        begin_session(&key, v.root_id);
    }
    let op = if created { op::CREATED } else { op::TRUNCATED };
    let c = Change {
        sys,
        op,
        verdict: v,
        ret: fd,
        flags,
        mode: mode as u32,
        owner: (u32::MAX, u32::MAX),
        id,
        session: if session { file as u64 } else { 0 },
    };
    if !emit(&c, &t, None, sc) && session {
        unannounce(&key);
    }
}

/// A change named by (dfd, path): unlink, mkdir, chmod, truncate, utimes, xattrs...
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn path_change(
    sys: u16,
    op: u16,
    dfd: i64,
    uname: u64,
    flags: u64,
    mode: u32,
    owner: (u32, u32),
    sc: *mut Scratch,
) {
    let Some(t) = named_target(dfd, uname, 0, sc) else {
        return;
    };
    let v = decide_named(&t, sc);
    if !v.hit() {
        return;
    }
    let c = Change {
        sys,
        op,
        verdict: v,
        ret: 0,
        flags,
        mode,
        owner,
        id: NO_INODE,
        session: 0,
    };
    emit(&c, &t, None, sc);
}

/// Whether a rename or link's two names (scratch slots 0 and 1, `len0` and
/// `len1` bytes) are entries of one directory: the same anchor (both absolute,
/// or the same dfd) and byte-equal directory parts (up to the last `/`). Such a
/// call changes no inode's ancestry, so cached decisions stay valid; any other
/// rename or link invalidates them all (`bump_generation`).
///
/// A BPF global function, and every test is inside it: the verifier walks the
/// loops once, and the callers' (large) programs see an unknown return value
/// instead of branches that refine the name lengths and split their states.
#[no_mangle]
#[inline(never)]
pub extern "C" fn vigil_same_directory(olddfd: u64, newdfd: u64, len0: u32, len1: u32) -> u32 {
    // A name that filled its slot may have been cut: its directory part is unknown.
    let cut = LPM_DATA as u32 - 1;
    if len0 == 0 || len1 == 0 || len0 >= cut || len1 >= cut {
        return 0;
    }
    let Some(sc) = scratch() else { return 0 };
    let (a, b) = unsafe { (&(*sc).names[0].data, &(*sc).names[1].data) };
    let absolute = a[0] == b'/' && b[0] == b'/';
    if !absolute && olddfd as i32 != newdfd as i32 {
        return 0;
    }
    // One pass in lockstep to each name's NUL: the directory parts are equal
    // when no '/' follows the first differing byte in either name. Only three
    // flags vary between the paths the verifier explores, so each iteration
    // has at most eight states (a last-'/' search per name, then a compare,
    // makes the states multiply and exceeds the instruction budget).
    const M: usize = LPM_DATA - 1;
    let (mut diverged, mut end_a, mut end_b) = (false, false, false);
    let mut i = 0usize;
    while i < LPM_DATA {
        let ca = if end_a { 0 } else { a[i & M] };
        let cb = if end_b { 0 } else { b[i & M] };
        end_a |= ca == 0;
        end_b |= cb == 0;
        diverged |= ca != cb;
        if diverged && (ca == b'/' || cb == b'/') {
            return 0;
        }
        if end_a && end_b {
            return 1;
        }
        i += 1;
    }
    0
}

/// rename/link: reported when either side is watched (moves in and out count).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn two_path_change(
    sys: u16,
    op: u16,
    olddfd: i64,
    oldname: u64,
    newdfd: i64,
    newname: u64,
    flags: u64,
    sc: *mut Scratch,
) {
    let Some(old) = named_target(olddfd, oldname, 0, sc) else {
        bump_generation();
        return;
    };
    let Some(new) = named_target(newdfd, newname, 1, sc) else {
        bump_generation();
        return;
    };
    // Before deciding: the anchors' own cached decisions may be stale.
    if vigil_same_directory(olddfd as u64, newdfd as u64, old.name_len, new.name_len) == 0 {
        bump_generation();
    }
    let v = decide_named(&old, sc).or(decide_named(&new, sc));
    if !v.hit() {
        return;
    }
    let none = (u32::MAX, u32::MAX);
    let c = Change {
        sys,
        op,
        verdict: v,
        ret: 0,
        flags,
        mode: 0,
        owner: none,
        id: NO_INODE,
        session: 0,
    };
    emit(&c, &old, Some(&new), sc);
}

/// symlink(target, linkpath): decided on the link's path; the target string is
/// the link's contents and travels in `target.name`.
#[inline(always)]
unsafe fn symlink_exit(sys: u16, contents: u64, newdfd: i64, newname: u64, sc: *mut Scratch) {
    let Some(link) = named_target(newdfd, newname, 0, sc) else {
        return;
    };
    let v = decide_named(&link, sc);
    if !v.hit() {
        return;
    }
    // Slot 1 carries the contents; the anchor is irrelevant but must be valid.
    let key = &mut (*sc).names[1];
    let n = bpf_probe_read_user_str(
        key.data.as_mut_ptr() as *mut c_void,
        LPM_DATA as u32,
        contents as *const c_void,
    );
    let contents = Target {
        dentry: link.dentry,
        mnt: link.mnt,
        slot: 1,
        name_len: if n > 0 { n as u32 - 1 } else { 0 },
    };
    let none = (u32::MAX, u32::MAX);
    let c = Change {
        sys,
        op: op::SYMLINKED,
        verdict: v,
        ret: 0,
        flags: 0,
        mode: 0,
        owner: none,
        id: NO_INODE,
        session: 0,
    };
    emit(&c, &link, Some(&contents), sc);
}

// ---------------------------------------------------------------------------
// Tracepoints
// ---------------------------------------------------------------------------

/// Declares the enter/exit pair of a syscall whose enter only stashes arguments.
macro_rules! syscall {
    ($enter:ident, $exit:ident, $sys:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            unsafe { stash(&ctx, $sys) };
            0
        }
        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            unsafe { exit(&ctx, $sys) };
            0
        }
    };
    (write $enter:ident, $exit:ident, $sys:expr, $fd:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            unsafe { write_enter(&ctx, $sys, $fd) };
            0
        }
        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            unsafe { exit(&ctx, $sys) };
            0
        }
    };
}

syscall!(write sys_enter_write, sys_exit_write, sys::WRITE, 0);
syscall!(write sys_enter_pwrite64, sys_exit_pwrite64, sys::PWRITE64, 0);
syscall!(write sys_enter_writev, sys_exit_writev, sys::WRITEV, 0);
syscall!(write sys_enter_pwritev, sys_exit_pwritev, sys::PWRITEV, 0);
syscall!(write sys_enter_pwritev2, sys_exit_pwritev2, sys::PWRITEV2, 0);
// Writes without a write(2): sendfile(out_fd, ...), copy_file_range and
// splice(fd_in, off_in, fd_out, ...). Output fds that are not watched regular
// files (pipes, sockets) are dropped at enter.
syscall!(write sys_enter_sendfile64, sys_exit_sendfile64, sys::SENDFILE, 0);
syscall!(write sys_enter_copy_file_range, sys_exit_copy_file_range, sys::COPY_FILE_RANGE, 2);
syscall!(write sys_enter_splice, sys_exit_splice, sys::SPLICE, 2);
syscall!(sys_enter_open, sys_exit_open, sys::OPEN);
syscall!(sys_enter_openat, sys_exit_openat, sys::OPENAT);
syscall!(sys_enter_openat2, sys_exit_openat2, sys::OPENAT2);
syscall!(sys_enter_creat, sys_exit_creat, sys::CREAT);
syscall!(sys_enter_unlink, sys_exit_unlink, sys::UNLINK);
syscall!(sys_enter_unlinkat, sys_exit_unlinkat, sys::UNLINKAT);
syscall!(sys_enter_rmdir, sys_exit_rmdir, sys::RMDIR);
syscall!(sys_enter_rename, sys_exit_rename, sys::RENAME);
syscall!(sys_enter_renameat, sys_exit_renameat, sys::RENAMEAT);
syscall!(sys_enter_renameat2, sys_exit_renameat2, sys::RENAMEAT2);
syscall!(sys_enter_link, sys_exit_link, sys::LINK);
syscall!(sys_enter_linkat, sys_exit_linkat, sys::LINKAT);
syscall!(sys_enter_symlink, sys_exit_symlink, sys::SYMLINK);
syscall!(sys_enter_symlinkat, sys_exit_symlinkat, sys::SYMLINKAT);
syscall!(sys_enter_mkdir, sys_exit_mkdir, sys::MKDIR);
syscall!(sys_enter_mkdirat, sys_exit_mkdirat, sys::MKDIRAT);
syscall!(sys_enter_mknod, sys_exit_mknod, sys::MKNOD);
syscall!(sys_enter_mknodat, sys_exit_mknodat, sys::MKNODAT);
syscall!(sys_enter_chmod, sys_exit_chmod, sys::CHMOD);
syscall!(sys_enter_fchmod, sys_exit_fchmod, sys::FCHMOD);
syscall!(sys_enter_fchmodat, sys_exit_fchmodat, sys::FCHMODAT);
syscall!(sys_enter_fchmodat2, sys_exit_fchmodat2, sys::FCHMODAT2);
syscall!(sys_enter_chown, sys_exit_chown, sys::CHOWN);
syscall!(sys_enter_fchown, sys_exit_fchown, sys::FCHOWN);
syscall!(sys_enter_lchown, sys_exit_lchown, sys::LCHOWN);
syscall!(sys_enter_fchownat, sys_exit_fchownat, sys::FCHOWNAT);
syscall!(sys_enter_truncate, sys_exit_truncate, sys::TRUNCATE);
syscall!(sys_enter_ftruncate, sys_exit_ftruncate, sys::FTRUNCATE);
syscall!(sys_enter_fallocate, sys_exit_fallocate, sys::FALLOCATE);
syscall!(sys_enter_utimensat, sys_exit_utimensat, sys::UTIMENSAT);
syscall!(sys_enter_utimes, sys_exit_utimes, sys::UTIMES);
syscall!(sys_enter_utime, sys_exit_utime, sys::UTIME);
syscall!(sys_enter_futimesat, sys_exit_futimesat, sys::FUTIMESAT);
syscall!(sys_enter_setxattr, sys_exit_setxattr, sys::SETXATTR);
syscall!(sys_enter_lsetxattr, sys_exit_lsetxattr, sys::LSETXATTR);
syscall!(sys_enter_fsetxattr, sys_exit_fsetxattr, sys::FSETXATTR);
syscall!(
    sys_enter_removexattr,
    sys_exit_removexattr,
    sys::REMOVEXATTR
);
syscall!(
    sys_enter_lremovexattr,
    sys_exit_lremovexattr,
    sys::LREMOVEXATTR
);
syscall!(
    sys_enter_fremovexattr,
    sys_exit_fremovexattr,
    sys::FREMOVEXATTR
);

/// Does nothing. `vigil floor` attaches it to every syscall tracepoint the
/// sensor uses, so that `cargo xtask bench overhead` can tell what the
/// tracepoint machinery costs by itself from what Vigil's programs add.
#[tracepoint]
pub fn noop(_ctx: TracePointContext) -> u32 {
    0
}

/// The same no-op for `vigil floor --raw`, on the raw `sys_enter` and
/// `sys_exit` tracepoints: it runs for every syscall, but the kernel builds
/// no per-syscall trace record for it. What a dispatching design (one
/// program per direction, switching on the syscall number) would start from.
#[raw_tracepoint]
pub fn noop_raw(_ctx: RawTracePointContext) -> i32 {
    0
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    unsafe { close_enter(arg(&ctx, 0), sys::CLOSE) };
    0
}

/// dup2/dup3 close `newfd` first if it is open.
#[tracepoint]
pub fn sys_enter_dup2(ctx: TracePointContext) -> u32 {
    unsafe {
        if arg(&ctx, 0) != arg(&ctx, 1) {
            close_enter(arg(&ctx, 1), sys::DUP2)
        }
    };
    0
}

#[tracepoint]
pub fn sys_enter_dup3(ctx: TracePointContext) -> u32 {
    unsafe { close_enter(arg(&ctx, 1), sys::DUP3) };
    0
}

// ---------------------------------------------------------------------------
// Process table
// ---------------------------------------------------------------------------

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    unsafe { on_exec() };
    0
}

#[inline(always)]
unsafe fn on_exec() {
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        count_lost(lost::RINGBUF);
        return;
    };
    let r = entry.as_mut_ptr();
    let task = current_task();
    (*r).kind = kind::EXEC;
    (*r).ts_boot_ns = bpf_ktime_get_boot_ns();
    fill_process(core::ptr::addr_of_mut!((*r).process), task);
    let exe = shim_task_exe_file(task);
    if exe.is_null() {
        (*r).exe.flags = 0;
        (*r).exe.comps_len = 0;
        (*r).exe.name_len = 0;
    } else {
        let t = file_target(exe);
        write_anchor(core::ptr::addr_of_mut!((*r).exe), 0, t.dentry, t.mnt);
    }
    let start = shim_task_arg_start(task);
    let end = shim_task_arg_end(task);
    let mut len = end.saturating_sub(start) as u32;
    if len > ARGS_CAP as u32 {
        len = ARGS_CAP as u32;
    }
    if bpf_probe_read_user(
        (*r).args.as_mut_ptr() as *mut c_void,
        len,
        start as *const c_void,
    ) < 0
    {
        len = 0;
    }
    (*r).args_len = len;
    entry.submit(wakeup_flags::<ExecRecord>());
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    unsafe {
        let child: Ptr = ctx.arg(1);
        if shim_task_pid(child) == shim_task_tgid(child) {
            let parent: Ptr = ctx.arg(0);
            task_record(kind::FORK, child, shim_task_tgid(parent), 0);
        }
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    unsafe {
        let _ = INFLIGHT.remove(&bpf_get_current_pid_tgid());
        let task = current_task();
        if shim_task_pid(task) == shim_task_tgid(task) {
            task_record(kind::EXIT, task, 0, shim_task_exit_code(task));
        }
    }
    0
}

/// io_uring operations make no file syscall: when a group io_uring can reach is
/// on the tracepoint tier, say so when a process sets a ring up (user space
/// reports it once per process). Not attached when VFS hooks report every such
/// group (the loader's `DETECTORS`).
#[tracepoint]
pub fn sys_exit_io_uring_setup(ctx: TracePointContext) -> u32 {
    unsafe {
        let ret = arg(&ctx, 0) as i64;
        if ret >= 0 && vfs_tier::io_uring_blind() && !is_self() {
            task_record(kind::BLIND_SPOT, current_task(), 0, blind::IO_URING_SETUP);
        }
    }
    0
}

/// mmap(addr, len, prot, flags, fd, off) MAP_SHARED of a watched file open for
/// writing (PROT_WRITE now, or later through mprotect): the tracepoint tier
/// cannot see the stores, so it says so (user space turns the record into a
/// `blind_spot` event). Not attached when the VFS mmap and mprotect hooks are
/// both on (the loader's `DETECTORS`).
#[tracepoint]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    unsafe {
        vfs_tier::mmap_detector(arg(&ctx, 2), arg(&ctx, 3), arg(&ctx, 4));
    }
    0
}

#[inline(always)]
unsafe fn task_record(k: u32, task: Ptr, parent_tgid: u32, code: i32) {
    let Some(mut entry) = EVENTS.reserve::<TaskRecord>(0) else {
        count_lost(lost::RINGBUF);
        return;
    };
    let r = entry.as_mut_ptr();
    (*r).kind = k;
    (*r).code = code;
    (*r).ts_boot_ns = bpf_ktime_get_boot_ns();
    fill_process(core::ptr::addr_of_mut!((*r).process), task);
    (*r).parent_tgid = parent_tgid;
    (*r)._pad = 0;
    entry.submit(wakeup_flags::<TaskRecord>());
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
