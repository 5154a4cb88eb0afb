//! Loads the embedded eBPF object, fills its maps from the policy and attaches
//! every hook the kernel allows, reporting (not failing on) the ones it refuses.
//!
//! Tiers, per hook: the VFS hooks ([`VFS_HOOKS`]) try fentry/fexit, then
//! kprobe/kretprobe; a hook neither allows leaves its operations to the syscall
//! tracepoints. Dedup rule: a syscall whose operation a VFS hook reports is not
//! attached as a tracepoint (unlinkat, which is also rmdir, is attached and told
//! through `SensorConfig::vfs` to skip what vfs_unlink reports).
use crate::config::Tier;
use crate::policy::Policy;
use anyhow::{bail, Context, Result};
use aya::maps::{lpm_trie::Key, Array, HashMap, LpmTrie, MapData, PerCpuArray};
use aya::programs::{FEntry, FExit, KProbe, Program};
use aya::{Btf, Ebpf, EbpfLoader};
use sensor_common::{lost, vfs, InodeKey, PrefixValue, RootValue, SensorConfig, LPM_DATA};
use std::collections::BTreeMap;
use std::path::Path;

/// The eBPF object built by build.rs from sensor-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

const TRACEFS: &str = "/sys/kernel/tracing";

pub struct Loaded {
    pub ebpf: Ebpf,
    pub attached: Vec<String>,
    /// `hook: reason` for each hook that could not be loaded or attached.
    pub failed: Vec<String>,
    /// Operation group ([`VfsHook::group`]: `write`, `unlink`, `rename`,
    /// `setattr`, `link`, ...) -> the tier that reports it (`fentry`, `kprobe`,
    /// `tracepoint`).
    pub tiers: BTreeMap<String, String>,
}

/// A VFS function hooked for one group of operations.
pub struct VfsHook {
    /// The operation group, as in `Loaded::tiers`.
    pub group: &'static str,
    /// The kernel function.
    pub function: &'static str,
    /// Its bit in `SensorConfig::vfs`.
    pub mask: u32,
    /// Argument layouts, by the function's parameter count in the kernel's BTF:
    /// (count, suffix of the fentry/kprobe programs). Idmapped mounts (5.12) added
    /// a leading argument to vfs_unlink and notify_change and turned vfs_rename's
    /// six arguments into a `struct renamedata` (which Debian's 5.10 backports:
    /// the kernel version does not tell). Another count: the hook is refused.
    pub layouts: &'static [(usize, &'static str)],
    /// fentry tier: (program, is fexit).
    pub fentry: &'static [(&'static str, bool)],
    /// kprobe tier: (program, is kretprobe; kretprobes are not versioned).
    pub kprobe: &'static [(&'static str, bool)],
    /// Parameter counts whose kernels have the function but do not call it on
    /// the syscall path (inlined into its caller), with why: the hook is
    /// refused there and its group stays on the tracepoints.
    pub refused: &'static [(usize, &'static str)],
    /// Syscalls whose tracepoints are left unattached while this hook is on.
    pub syscalls: &'static [&'static str],
    /// What the tracepoint tier misses when this hook is not on.
    pub blind: &'static str,
}

pub const VFS_HOOKS: &[VfsHook] = &[
    VfsHook {
        group: "write",
        function: "rw_verify_area",
        mask: vfs::WRITE,
        layouts: &[(4, "")],
        fentry: &[("rw_verify_area_fexit", true)],
        kprobe: &[("rw_verify_area_kprobe", false)],
        refused: &[],
        syscalls: &["write", "pwrite64", "writev", "pwritev", "pwritev2"],
        blind: "writes that make no write-family syscall: io_uring (IORING_OP_WRITE*), aio, nfsd and other in-kernel writers (sendfile, copy_file_range and splice are hooked as syscalls)",
    },
    VfsHook {
        group: "unlink",
        function: "vfs_unlink",
        mask: vfs::UNLINK,
        layouts: &[(3, "_v1"), (4, "_v2")],
        fentry: &[("vfs_unlink_fentry", false), ("vfs_unlink_fexit", true)],
        kprobe: &[("vfs_unlink_kprobe", false), ("vfs_unlink_kretprobe", true)],
        refused: &[],
        syscalls: &["unlink"],
        blind: "unlinks that make no unlink syscall: io_uring (IORING_OP_UNLINKAT), nfsd, overlayfs copy-up",
    },
    VfsHook {
        group: "rename",
        function: "vfs_rename",
        mask: vfs::RENAME,
        layouts: &[(6, "_v1"), (1, "_v2")],
        fentry: &[("vfs_rename_fentry", false), ("vfs_rename_fexit", true)],
        kprobe: &[("vfs_rename_kprobe", false), ("vfs_rename_kretprobe", true)],
        refused: &[],
        syscalls: &["rename", "renameat", "renameat2"],
        blind: "renames that make no rename syscall: io_uring (IORING_OP_RENAMEAT), nfsd",
    },
    VfsHook {
        group: "setattr",
        function: "notify_change",
        mask: vfs::SETATTR,
        layouts: &[(3, "_v1"), (4, "_v2")],
        fentry: &[("notify_change_fentry", false), ("notify_change_fexit", true)],
        kprobe: &[
            ("notify_change_kprobe", false),
            ("notify_change_kretprobe", true),
        ],
        refused: &[],
        syscalls: &[
            "chmod",
            "fchmod",
            "fchmodat",
            "fchmodat2",
            "chown",
            "fchown",
            "lchown",
            "fchownat",
            "truncate",
            "ftruncate",
            "utimensat",
            "utimes",
            "utime",
            "futimesat",
        ],
        blind: "attribute changes that make no syscall: nfsd setattr, io_uring ftruncate (6.9+)",
    },
    VfsHook {
        group: "link",
        function: "vfs_link",
        mask: vfs::LINK,
        // 5.12 put the namespace second: (old_dentry, userns, dir, new_dentry, delegated).
        layouts: &[(4, "_v1"), (5, "_v2")],
        fentry: &[("vfs_link_fentry", false), ("vfs_link_fexit", true)],
        kprobe: &[("vfs_link_kprobe", false), ("vfs_link_kretprobe", true)],
        refused: &[],
        syscalls: &["link", "linkat"],
        blind: "hard links that make no link syscall: io_uring (IORING_OP_LINKAT), nfsd",
    },
    VfsHook {
        group: "symlink",
        function: "vfs_symlink",
        mask: vfs::SYMLINK,
        layouts: &[(3, "_v1"), (4, "_v2")],
        fentry: &[("vfs_symlink_fentry", false), ("vfs_symlink_fexit", true)],
        kprobe: &[
            ("vfs_symlink_kprobe", false),
            ("vfs_symlink_kretprobe", true),
        ],
        refused: &[],
        syscalls: &["symlink", "symlinkat"],
        blind: "symlinks that make no symlink syscall: io_uring (IORING_OP_SYMLINKAT), nfsd",
    },
    VfsHook {
        group: "mkdir",
        function: "vfs_mkdir",
        mask: vfs::MKDIR,
        layouts: &[(3, "_v1"), (4, "_v2")],
        fentry: &[("vfs_mkdir_fentry", false), ("vfs_mkdir_fexit", true)],
        kprobe: &[("vfs_mkdir_kprobe", false), ("vfs_mkdir_kretprobe", true)],
        refused: &[],
        syscalls: &["mkdir", "mkdirat"],
        blind: "directories made without a mkdir syscall: io_uring (IORING_OP_MKDIRAT), nfsd",
    },
    VfsHook {
        group: "rmdir",
        function: "vfs_rmdir",
        mask: vfs::RMDIR,
        layouts: &[(2, "_v1"), (3, "_v2")],
        fentry: &[("vfs_rmdir_fentry", false), ("vfs_rmdir_fexit", true)],
        kprobe: &[("vfs_rmdir_kprobe", false), ("vfs_rmdir_kretprobe", true)],
        // unlinkat stays attached: it is also unlink (the kernel skips what this reports).
        // vm-test: on Debian's 5.10 neither fentry nor kprobe on vfs_rmdir saw
        // rmdir(2) or unlinkat(AT_REMOVEDIR) (do_rmdir calls an inlined copy).
        refused: &[(2, "5.10's vfs_rmdir is not called by rmdir(2) (inlined into do_rmdir; vm-test saw no call): rmdir stays on the tracepoints")],
        syscalls: &["rmdir"],
        blind: "directories removed without a syscall: io_uring (IORING_OP_UNLINKAT with AT_REMOVEDIR), nfsd",
    },
    VfsHook {
        group: "open",
        function: "vfs_open",
        mask: vfs::OPEN,
        layouts: &[(2, "")],
        fentry: &[("vfs_open_fentry", false), ("vfs_open_fexit", true)],
        kprobe: &[("vfs_open_kprobe", false), ("vfs_open_kretprobe", true)],
        refused: &[],
        syscalls: &["open", "openat", "openat2", "creat"],
        blind: "files created or truncated by an open that makes no open syscall: io_uring (IORING_OP_OPENAT), nfsd",
    },
    VfsHook {
        group: "setxattr",
        function: "vfs_setxattr",
        mask: vfs::SETXATTR,
        layouts: &[(5, "_v1"), (6, "_v2")],
        fentry: &[("vfs_setxattr_fentry", false), ("vfs_setxattr_fexit", true)],
        kprobe: &[
            ("vfs_setxattr_kprobe", false),
            ("vfs_setxattr_kretprobe", true),
        ],
        // The xattr tracepoints stay attached for POSIX ACLs (vfs_set_acl since 6.2).
        refused: &[],
        syscalls: &[],
        blind: "extended attributes set without a syscall: io_uring (IORING_OP_SETXATTR), nfsd, overlayfs",
    },
    VfsHook {
        group: "removexattr",
        function: "vfs_removexattr",
        mask: vfs::REMOVEXATTR,
        layouts: &[(2, "_v1"), (3, "_v2")],
        fentry: &[
            ("vfs_removexattr_fentry", false),
            ("vfs_removexattr_fexit", true),
        ],
        kprobe: &[
            ("vfs_removexattr_kprobe", false),
            ("vfs_removexattr_kretprobe", true),
        ],
        refused: &[],
        syscalls: &[],
        blind: "extended attributes removed without a syscall: nfsd, overlayfs",
    },
    VfsHook {
        group: "setacl",
        function: "vfs_set_acl",
        mask: vfs::SETACL,
        // 6.2+ (idmap, dentry, acl_name, kacl); before, ACLs are xattrs and
        // stay with the xattr syscall tracepoints.
        layouts: &[(4, "")],
        fentry: &[("vfs_set_acl_fentry", false), ("vfs_set_acl_fexit", true)],
        kprobe: &[("vfs_set_acl_kprobe", false), ("vfs_set_acl_kretprobe", true)],
        refused: &[],
        syscalls: &[],
        blind: "POSIX ACLs set without a syscall: nfsd SETACL, io_uring (IORING_OP_SETXATTR of system.posix_acl_*)",
    },
    VfsHook {
        group: "removeacl",
        function: "vfs_remove_acl",
        mask: vfs::REMOVEACL,
        layouts: &[(3, "")],
        fentry: &[
            ("vfs_remove_acl_fentry", false),
            ("vfs_remove_acl_fexit", true),
        ],
        kprobe: &[
            ("vfs_remove_acl_kprobe", false),
            ("vfs_remove_acl_kretprobe", true),
        ],
        refused: &[],
        syscalls: &[],
        blind: "POSIX ACLs removed without a syscall: nfsd, overlayfs",
    },
    VfsHook {
        group: "fallocate",
        function: "vfs_fallocate",
        mask: vfs::FALLOCATE,
        layouts: &[(4, "")],
        fentry: &[
            ("vfs_fallocate_fentry", false),
            ("vfs_fallocate_fexit", true),
        ],
        kprobe: &[
            ("vfs_fallocate_kprobe", false),
            ("vfs_fallocate_kretprobe", true),
        ],
        refused: &[],
        syscalls: &["fallocate"],
        blind: "space (de)allocation without a fallocate syscall: io_uring (IORING_OP_FALLOCATE), nfsd, loop devices",
    },
    VfsHook {
        group: "mmap",
        function: "security_mmap_file",
        mask: vfs::MMAP,
        layouts: &[(3, "")],
        fentry: &[("security_mmap_file_fexit", true)],
        kprobe: &[("security_mmap_file_kprobe", false)],
        // sys_enter_mmap, the tracepoint tier's blind-spot detector: see DETECTORS.
        refused: &[],
        syscalls: &[],
        blind: "shared writable mappings of watched files: reported as blind_spot (mmap), and the file is hashed only at the process's close or exit",
    },
    VfsHook {
        group: "mprotect",
        function: "security_file_mprotect",
        mask: vfs::MPROTECT,
        layouts: &[(3, "")],
        fentry: &[("security_file_mprotect_fexit", true)],
        kprobe: &[("security_file_mprotect_kprobe", false)],
        refused: &[],
        syscalls: &[],
        blind: "mprotect adding PROT_WRITE to a shared mapping of a watched file: the mmap tracepoint reports every shared mapping of a watched file open for writing as blind_spot (mmap) instead",
    },
    VfsHook {
        group: "mknod",
        function: "vfs_mknod",
        mask: vfs::MKNOD,
        layouts: &[(4, "_v1"), (5, "_v2")],
        fentry: &[("vfs_mknod_fentry", false), ("vfs_mknod_fexit", true)],
        kprobe: &[("vfs_mknod_kprobe", false), ("vfs_mknod_kretprobe", true)],
        refused: &[],
        // mknod of a regular file calls vfs_create: the tracepoints stay
        // attached and skip, in the kernel, the other types.
        syscalls: &[],
        blind: "FIFOs, sockets and device nodes made without a mknod syscall: bind(2) of a unix socket, nfsd",
    },
    VfsHook {
        group: "close",
        function: "__fput",
        mask: vfs::CLOSE,
        layouts: &[(1, "")],
        fentry: &[("fput_fentry", false)],
        kprobe: &[("fput_kprobe", false)],
        // close, dup2 and dup3 still give the marker of an explicit last close.
        refused: &[],
        syscalls: &[],
        blind: "last closes without close/dup2/dup3 (close_range, exec of O_CLOEXEC fds, munmap): the close marker and the hash wait for the process's exit",
    },
];

/// The tracepoint tier's blind-spot detectors: each is left unattached while
/// VFS hooks report every group in its mask (nothing left to flag).
pub const DETECTORS: &[(&str, u32)] = &[
    // io_uring reaches writes, opens, unlinks, renames... without a syscall.
    ("sys_exit_io_uring_setup", vfs::IO_URING),
    // A writable shared mapping (mmap group) or one made writable (mprotect group).
    ("sys_enter_mmap", vfs::MMAP | vfs::MPROTECT),
];

/// The detectors of [`DETECTORS`] left out when the VFS groups in `mask` are on.
pub fn idle_detectors(mask: u32) -> impl Iterator<Item = String> {
    DETECTORS
        .iter()
        .filter(move |(_, need)| mask & need == *need)
        .map(|(name, _)| name.to_string())
}

/// Blind spots whatever the tier: no hook sees the stores through a shared
/// writable mapping themselves (the mmap group reports the mapping and hashes
/// the file when it is released).
pub const ALWAYS_BLIND: &[&str] = &[
    "the individual stores through a shared writable mmap (the mapping is reported; the file is hashed at its release, and the verification scan is the backstop)",
];

/// The parameter counts of every VFS hook's function in the running kernel's BTF.
pub fn param_counts() -> std::collections::HashMap<String, usize> {
    let names: Vec<&str> = VFS_HOOKS.iter().map(|h| h.function).collect();
    super::btf::kernel_param_counts(&names).unwrap_or_else(|e| {
        tracing::warn!("cannot read the VFS functions' signatures from BTF: {e}");
        Default::default()
    })
}

/// The program suffix for `hook` on this kernel, or why it has no layout we know.
pub fn layout(
    hook: &VfsHook,
    params: &std::collections::HashMap<String, usize>,
) -> std::result::Result<&'static str, String> {
    let Some(n) = params.get(hook.function) else {
        return Err(format!(
            "{} is not in the kernel's BTF (inlined, or renamed)",
            hook.function
        ));
    };
    if let Some((_, why)) = hook.refused.iter().find(|(count, _)| count == n) {
        return Err(format!("{}: {why}", hook.function));
    }
    hook.layouts
        .iter()
        .find(|(count, _)| count == n)
        .map(|(_, suffix)| *suffix)
        .ok_or_else(|| {
            format!(
                "{} has {n} parameters: a signature Vigil does not know",
                hook.function
            )
        })
}

/// The programs of `hook` for `tier` (fentry or kprobe): (name, return probe).
/// Return probes of the kprobe tier read no argument and have one layout.
pub fn programs(hook: &VfsHook, tier: Tier, suffix: &str) -> Vec<(String, bool)> {
    let list = if tier == Tier::Fentry {
        hook.fentry
    } else {
        hook.kprobe
    };
    list.iter()
        .map(|(name, ret)| {
            if tier == Tier::Kprobe && *ret {
                (name.to_string(), *ret)
            } else {
                (format!("{name}{suffix}"), *ret)
            }
        })
        .collect()
}

/// Loads and attaches `hook` on `tier`; on failure unloads what it loaded and
/// says which program failed and why.
pub fn try_vfs_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    hook: &VfsHook,
    tier: Tier,
    params: &std::collections::HashMap<String, usize>,
) -> std::result::Result<(), String> {
    let progs = programs(hook, tier, layout(hook, params)?);
    for (name, ret) in &progs {
        if let Err(why) = attach_one(ebpf, btf, hook.function, name, tier, *ret) {
            // All or nothing: an fentry without its fexit would park records forever.
            for (n, _) in &progs {
                unload(ebpf, n);
            }
            return Err(format!("{name}: {why}"));
        }
    }
    Ok(())
}

fn attach_one(
    ebpf: &mut Ebpf,
    btf: &Btf,
    function: &str,
    name: &str,
    tier: Tier,
    ret: bool,
) -> std::result::Result<(), String> {
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} is missing from the eBPF object"))?;
    match (tier, ret) {
        (Tier::Fentry, false) => {
            let p: &mut FEntry = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load(function, btf).map_err(describe)?;
            p.attach().map(drop).map_err(describe)
        }
        (Tier::Fentry, true) => {
            let p: &mut FExit = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load(function, btf).map_err(describe)?;
            p.attach().map(drop).map_err(describe)
        }
        _ => {
            let p: &mut KProbe = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load().map_err(describe)?;
            p.attach(function, 0).map(drop).map_err(describe)
        }
    }
}

/// Detaches and unloads a program if it was loaded (errors mean it was not).
fn unload(ebpf: &mut Ebpf, name: &str) {
    let Some(prog) = ebpf.program_mut(name) else {
        return;
    };
    let _ = match prog {
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::KProbe(p) => p.unload(),
        _ => Ok(()),
    };
}

/// The outcome of probing one VFS hook: the tier it got, or why each refused.
pub struct HookChoice {
    pub hook: &'static VfsHook,
    /// `fentry`, `kprobe` or `tracepoint`.
    pub tier: &'static str,
    /// (tier, reason) for each tier tried and refused.
    pub refused: Vec<(&'static str, String)>,
}

/// Attaches each VFS hook on the first tier `wanted` allows (auto: fentry, then
/// kprobe), leaving the hook to the tracepoints when none does.
pub fn attach_vfs(ebpf: &mut Ebpf, btf: &Btf, wanted: Tier) -> Vec<HookChoice> {
    let order: &[Tier] = match wanted {
        Tier::Auto => &[Tier::Fentry, Tier::Kprobe],
        Tier::Fentry => &[Tier::Fentry],
        Tier::Kprobe => &[Tier::Kprobe],
        Tier::Tracepoint => &[],
    };
    let params = if order.is_empty() {
        Default::default()
    } else {
        param_counts()
    };
    VFS_HOOKS
        .iter()
        .map(|hook| {
            let mut refused = Vec::new();
            let mut tier = "tracepoint";
            for t in order {
                let name = tier_name(*t);
                match try_vfs_hook(ebpf, btf, hook, *t, &params) {
                    Ok(()) => {
                        tier = name;
                        break;
                    }
                    Err(why) => refused.push((name, why)),
                }
            }
            HookChoice {
                hook,
                tier,
                refused,
            }
        })
        .collect()
}

pub fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Auto => "auto",
        Tier::Fentry => "fentry",
        Tier::Kprobe => "kprobe",
        Tier::Tracepoint => "tracepoint",
    }
}

/// Checks what the sensor needs before touching the kernel, with errors that say
/// what to do.
pub fn preflight() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("vigil run must run as root (it loads eBPF programs: CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN); try: sudo vigil run");
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): Vigil needs CONFIG_DEBUG_INFO_BTF=y to relocate its programs (CO-RE); use a distribution kernel from 5.10 on");
    }
    mount_tracefs()?;
    Ok(())
}

/// Syscall tracepoints are attached by id, read from tracefs; mount it if the
/// system has not.
fn mount_tracefs() -> Result<()> {
    let populated = std::fs::read_dir(TRACEFS)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if populated || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    nix::mount::mount(Some("tracefs"), TRACEFS, Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>)
        .with_context(|| format!("tracefs is not mounted and mounting it on {TRACEFS} failed; mount it: mount -t tracefs tracefs {TRACEFS}"))
}

/// Whether the exit programs read their syscall's arguments from the task's
/// saved registers (eBPF `ARGS_FROM_REGS`) instead of a stash made at enter:
/// `bpf_task_pt_regs` arrived in 5.15, and the register layout read is x86-64's.
pub fn args_from_regs() -> bool {
    cfg!(target_arch = "x86_64") && kernel_at_least(5, 15)
}

/// Whether the programs read the current task's fields with plain loads
/// through `bpf_get_current_task_btf` (5.11 on; eBPF `TASK_BTF`) instead of
/// one `bpf_probe_read_kernel` call per field.
pub fn task_btf() -> bool {
    kernel_at_least(5, 11)
}

fn kernel_at_least(major: u8, minor: u8) -> bool {
    aya::util::KernelVersion::current()
        .is_ok_and(|v| v >= aya::util::KernelVersion::new(major, minor, 0))
}

/// The enter programs that do more than stash arguments (a rename's ticks
/// the rename clock, eBPF `tick_rename_clock`) or that have no exit
/// (close, dup2, dup3, mmap). With [`args_from_regs`], the other enters are
/// not attached: the write family's exits then filter as their enters do.
const ENTERS_WITH_WORK: &[&str] = &[
    "sys_enter_rename",
    "sys_enter_renameat",
    "sys_enter_renameat2",
    "sys_enter_close",
    "sys_enter_dup2",
    "sys_enter_dup3",
    "sys_enter_mmap",
];

/// The enter tracepoints this kernel does not need (see [`ENTERS_WITH_WORK`]).
pub fn unneeded_enters(ebpf: &Ebpf) -> Vec<String> {
    if !args_from_regs() {
        return Vec::new();
    }
    ebpf.programs()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("sys_enter_") && !ENTERS_WITH_WORK.contains(n))
        .map(str::to_string)
        .collect()
}

/// The eBPF object, its maps created (the event ring of `ring_bytes`), with
/// the read-only data it is verified against.
fn open_object(ring_bytes: u32) -> Result<Ebpf> {
    EbpfLoader::new()
        .map_max_entries("EVENTS", ring_bytes)
        .override_global("ARGS_FROM_REGS", &u8::from(args_from_regs()), true)
        .override_global("TASK_BTF", &u8::from(task_btf()), true)
        .load(OBJECT)
        .context("loading the eBPF object (maps) failed")
}

/// Loads, configures and attaches. `ring_mib` sizes the event ring buffer;
/// `tier` chooses the VFS hooks' tier.
pub fn load(policy: &Policy, ring_mib: u32, tier: Tier) -> Result<Loaded> {
    let mut ebpf = open_object(ring_mib * 1024 * 1024)?;
    configure(&mut ebpf, policy)?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF from /sys/kernel/btf/vmlinux")?;
    let (mut attached, mut failed) = (Vec::new(), Vec::new());
    let mut tiers = BTreeMap::new();
    let mut skip: Vec<String> = Vec::new();
    let mut mask = 0;
    // VFS hooks first: the tracepoints they make redundant are then left out.
    for choice in attach_vfs(&mut ebpf, &btf, tier) {
        let hook = choice.hook;
        tiers.insert(hook.group.to_string(), choice.tier.to_string());
        if choice.tier != "tracepoint" {
            mask |= hook.mask;
            attached.push(format!("{}:{}", choice.tier, hook.function));
            for s in hook.syscalls {
                skip.push(format!("sys_enter_{s}"));
                skip.push(format!("sys_exit_{s}"));
            }
        } else {
            for (t, why) in &choice.refused {
                tracing::info!(
                    hook = hook.function,
                    "{t} refused, using the syscall tracepoints: {why}"
                );
                // Under auto the fallback is the plan, not a failure; a forced
                // tier the kernel refuses is worth a line in the start event.
                if matches!(tier, Tier::Fentry | Tier::Kprobe) {
                    failed.push(format!("{t}:{}: {why}", hook.function));
                }
            }
        }
    }
    skip.extend(idle_detectors(mask));
    skip.extend(unneeded_enters(&ebpf));
    set_vfs_mask(&mut ebpf, mask)?;
    let names: Vec<String> = ebpf
        .programs()
        .filter(|(_, p)| matches!(p, Program::TracePoint(_) | Program::BtfTracePoint(_)))
        .map(|(n, _)| n.to_string())
        .filter(|n| n != NOOP && !skip.contains(n))
        .collect();
    for name in names {
        let prog = ebpf.program_mut(&name).expect("listed program");
        let result = match prog {
            Program::TracePoint(tp) => {
                let category = if name.starts_with("sys_") {
                    "syscalls"
                } else {
                    "sched"
                };
                tp.load()
                    .map_err(describe)
                    .and_then(|_| tp.attach(category, &name).map(drop).map_err(describe))
            }
            Program::BtfTracePoint(tp) => tp
                .load(&name, &btf)
                .map_err(describe)
                .and_then(|_| tp.attach().map(drop).map_err(describe)),
            _ => Err("unexpected program type".to_string()),
        };
        match result {
            Ok(()) => attached.push(name),
            Err(why) => {
                tracing::warn!(hook = %name, "hook not attached: {why}");
                failed.push(format!("{name}: {why}"));
            }
        }
    }
    if attached.is_empty() {
        bail!("no hook could be attached: {}", failed.join("; "));
    }
    Ok(Loaded {
        ebpf,
        attached,
        failed,
        tiers,
    })
}

/// The programs [`attach_floor`] uses.
pub const NOOP: &str = "noop";
pub const NOOP_RAW: &str = "noop_raw";

/// Attaches a program that does nothing to each syscall tracepoint the sensor
/// uses (`vigil floor`): the cost of the tracepoint tier's machinery alone,
/// the floor under `cargo xtask bench overhead`'s vigil row; with `raw`, to
/// the raw `sys_enter`/`sys_exit` tracepoints instead. Returns the object
/// (detached when dropped) and the number of tracepoints.
pub fn attach_floor(raw: bool) -> Result<(Ebpf, usize)> {
    let mut ebpf = open_object(4096 * 16)?;
    if raw {
        let Some(Program::RawTracePoint(noop)) = ebpf.program_mut(NOOP_RAW) else {
            bail!("the eBPF object has no {NOOP_RAW} raw tracepoint program");
        };
        noop.load().context("loading the no-op program")?;
        for tp in ["sys_enter", "sys_exit"] {
            noop.attach(tp)
                .with_context(|| format!("attaching the no-op program to raw {tp}"))?;
        }
        return Ok((ebpf, 2));
    }
    mount_tracefs()?;
    let unneeded = unneeded_enters(&ebpf);
    let names: Vec<String> = ebpf
        .programs()
        .filter(|(n, p)| n.starts_with("sys_") && matches!(p, Program::TracePoint(_)))
        .map(|(n, _)| n.to_string())
        .filter(|n| !unneeded.contains(n))
        .collect();
    let Some(Program::TracePoint(noop)) = ebpf.program_mut(NOOP) else {
        bail!("the eBPF object has no {NOOP} tracepoint program");
    };
    noop.load().context("loading the no-op program")?;
    let mut attached = 0;
    for name in names {
        match noop.attach("syscalls", &name) {
            Ok(_) => attached += 1,
            // Tracepoints this kernel lacks (fchmodat2 before 6.6).
            Err(e) => tracing::info!(hook = %name, "not attached: {}", describe(e)),
        }
    }
    Ok((ebpf, attached))
}

/// Loads the eBPF object with minimal maps, for probing (`vigil doctor`).
pub fn load_object() -> Result<(Ebpf, Btf)> {
    let ebpf = open_object(4096 * 16)?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF from /sys/kernel/btf/vmlinux")?;
    Ok((ebpf, btf))
}

fn set_vfs_mask(ebpf: &mut Ebpf, mask: u32) -> Result<()> {
    let mut config: Array<&mut MapData, SensorConfig> =
        Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
    let mut c = config.get(&0, 0)?;
    c.vfs = mask;
    config.set(0, c, 0)?;
    Ok(())
}

/// A short reason, without the verifier log (logged at debug level).
fn describe(e: aya::programs::ProgramError) -> String {
    let full = format!("{e:?}");
    tracing::debug!("{full}");
    match e {
        aya::programs::ProgramError::LoadError { io_error, .. } => {
            format!("the kernel refused to load it: {io_error}")
        }
        other => {
            // The outer message often names only the file that failed; the cause is below.
            let mut msg = other.to_string();
            let mut cause = std::error::Error::source(&other);
            while let Some(c) = cause {
                msg.push_str(&format!(": {c}"));
                cause = c.source();
            }
            msg
        }
    }
}

fn configure(ebpf: &mut Ebpf, policy: &Policy) -> Result<()> {
    let mut config: Array<&mut MapData, SensorConfig> =
        Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
    config.set(
        0,
        SensorConfig {
            self_tgid: std::process::id(),
            vfs: 0,
            generation: 1,
        },
        0,
    )?;

    let tables = policy.kernel_tables();
    let mut roots: HashMap<&mut MapData, InodeKey, RootValue> =
        HashMap::try_from(ebpf.map_mut("ROOTS").context("ROOTS map")?)?;
    for ((dev, ino), (flags, root_id)) in &tables.inodes {
        roots
            .insert(
                InodeKey {
                    dev: *dev,
                    generation: 0,
                    ino: *ino,
                },
                RootValue {
                    flags: *flags,
                    root_id: *root_id,
                },
                0,
            )
            .context("filling the watched-roots map")?;
    }
    let mut prefixes: LpmTrie<&mut MapData, [u8; LPM_DATA], PrefixValue> =
        LpmTrie::try_from(ebpf.map_mut("PREFIXES").context("PREFIXES map")?)?;
    for (bytes, bits, flags, root_id) in &tables.prefixes {
        let mut data = [0u8; LPM_DATA];
        data[..bytes.len()].copy_from_slice(bytes);
        prefixes
            .insert(
                &Key::new(*bits, data),
                PrefixValue {
                    root_id: *root_id,
                    flags: *flags,
                },
                0,
            )
            .context("filling the path-prefix map")?;
    }
    Ok(())
}

/// Moves a root to another inode: `old` is removed from the kernel's roots map,
/// `new` inserted, and the decision cache invalidated. A root that was deleted
/// (new = None) must not keep matching an inode number the file system reuses.
pub fn replace_root(
    ebpf: &mut Ebpf,
    old: Option<InodeKey>,
    new: Option<(InodeKey, RootValue)>,
) -> Result<()> {
    let mut roots: HashMap<&mut MapData, InodeKey, RootValue> =
        HashMap::try_from(ebpf.map_mut("ROOTS").context("ROOTS map")?)?;
    if let Some(k) = old {
        let _ = roots.remove(&k);
    }
    if let Some((k, v)) = new {
        roots.insert(k, v, 0)?;
    }
    let mut config: Array<&mut MapData, SensorConfig> =
        Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
    let mut c = config.get(&0, 0)?;
    c.generation += 1;
    config.set(0, c, 0)?;
    Ok(())
}

/// Sums the per-CPU loss counters: (ring buffer full, argument map full).
pub fn lost_counts(ebpf: &Ebpf) -> Result<(u64, u64)> {
    let map: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(ebpf.map("LOST").context("LOST map")?)?;
    let sum = |i: u32| -> Result<u64> { Ok(map.get(&i, 0)?.iter().sum()) };
    Ok((sum(lost::RINGBUF)?, sum(lost::ARGS)?))
}

/// Whether the map operations the running sensor makes work with the
/// current (effective) capabilities: a lookup (the loss counters), an update
/// (CONFIG, rewritten with its own value, as a root's move does) and a key
/// walk (SESSIONS, as an exited process's cleanup does).
pub fn map_access(ebpf: &mut Ebpf) -> bool {
    let ok = lost_counts(ebpf).is_ok()
        && (|| -> Result<()> {
            let mut config: Array<&mut MapData, SensorConfig> =
                Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
            let c = config.get(&0, 0)?;
            config.set(0, c, 0)?;
            Ok(())
        })()
        .is_ok();
    ok && (|| -> Result<()> {
        let sessions: HashMap<&mut MapData, sensor_common::SessionKey, sensor_common::Session> =
            HashMap::try_from(ebpf.map_mut("SESSIONS").context("SESSIONS map")?)?;
        // An empty map answers ENOENT, which aya ends the walk on; EPERM is an error.
        if let Some(k) = sessions.keys().next() {
            k?;
        }
        Ok(())
    })()
    .is_ok()
}

/// Forgets the write sessions of an exited process (its files are closed).
pub fn forget_sessions(ebpf: &mut Ebpf, tgid: u32) -> Result<()> {
    let mut sessions: HashMap<&mut MapData, sensor_common::SessionKey, sensor_common::Session> =
        HashMap::try_from(ebpf.map_mut("SESSIONS").context("SESSIONS map")?)?;
    let keys: Vec<_> = sessions
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| k.tgid == tgid)
        .collect();
    for k in keys {
        let _ = sessions.remove(&k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_follow_the_layout() {
        let unlink = &VFS_HOOKS[1];
        let params: std::collections::HashMap<String, usize> =
            [("vfs_unlink".to_string(), 4), ("vfs_rename".to_string(), 1)].into();
        assert_eq!(layout(unlink, &params), Ok("_v2"));
        assert_eq!(layout(&VFS_HOOKS[2], &params), Ok("_v2"));
        assert!(layout(&VFS_HOOKS[3], &params).is_err());
        let rmdir = VFS_HOOKS.iter().find(|h| h.group == "rmdir").unwrap();
        let old: std::collections::HashMap<String, usize> = [("vfs_rmdir".to_string(), 2)].into();
        assert!(layout(rmdir, &old).unwrap_err().contains("inlined"));
        let new: std::collections::HashMap<String, usize> = [("vfs_rmdir".to_string(), 3)].into();
        assert_eq!(layout(rmdir, &new), Ok("_v2"));
        let fentry = programs(unlink, Tier::Fentry, "_v1");
        assert_eq!(fentry[0].0, "vfs_unlink_fentry_v1");
        assert_eq!(fentry[1].0, "vfs_unlink_fexit_v1");
        let kprobe = programs(unlink, Tier::Kprobe, "_v2");
        assert_eq!(kprobe[0].0, "vfs_unlink_kprobe_v2");
        assert_eq!(kprobe[1].0, "vfs_unlink_kretprobe");
        assert_eq!(
            programs(&VFS_HOOKS[0], Tier::Fentry, "")[0].0,
            "rw_verify_area_fexit"
        );
    }

    /// A blind-spot detector stays attached while any group it flags is on the
    /// tracepoints (5.10 under auto: rmdir), and each names a real program.
    #[test]
    fn detectors_idle_only_when_every_group_they_flag_is_on_a_vfs_tier() {
        let all = VFS_HOOKS.iter().fold(0, |m, h| m | h.mask);
        assert_eq!(idle_detectors(all).count(), DETECTORS.len());
        assert_eq!(idle_detectors(0).count(), 0);
        let no_rmdir: Vec<String> = idle_detectors(all & !vfs::RMDIR).collect();
        assert_eq!(no_rmdir, ["sys_enter_mmap"]);
        let no_mprotect: Vec<String> = idle_detectors(all & !vfs::MPROTECT).collect();
        assert_eq!(no_mprotect, ["sys_exit_io_uring_setup"]);
        let strings: std::collections::HashSet<&[u8]> = OBJECT.split(|b| *b == 0).collect();
        for (name, _) in DETECTORS {
            assert!(strings.contains(name.as_bytes()), "no program {name}");
        }
    }

    /// A typo in `ENTERS_WITH_WORK` would leave that enter unattached on 5.15+
    /// and its syscall unreported.
    #[test]
    fn every_enter_with_work_is_in_the_object() {
        let strings: std::collections::HashSet<&[u8]> = OBJECT.split(|b| *b == 0).collect();
        for name in ENTERS_WITH_WORK {
            assert!(strings.contains(name.as_bytes()), "no program {name}");
        }
    }

    /// Every program a hook can ask for, in every layout and tier, is in the
    /// embedded object (a typo would only show on a kernel that picks it).
    #[test]
    fn every_hook_program_is_in_the_object() {
        // The ELF string tables: every NUL-terminated string of the object.
        let strings: std::collections::HashSet<&[u8]> = OBJECT.split(|b| *b == 0).collect();
        let has = |name: &str| strings.contains(name.as_bytes());
        let mut masks = 0;
        for hook in VFS_HOOKS {
            assert_eq!(masks & hook.mask, 0, "{}: mask reused", hook.group);
            masks |= hook.mask;
            for (_, suffix) in hook.layouts {
                for tier in [Tier::Fentry, Tier::Kprobe] {
                    for (name, _) in programs(hook, tier, suffix) {
                        assert!(has(&name), "{}: no program {name}", hook.group);
                    }
                }
            }
        }
        let groups: std::collections::HashSet<_> = VFS_HOOKS.iter().map(|h| h.group).collect();
        assert_eq!(groups.len(), VFS_HOOKS.len());
    }
}
