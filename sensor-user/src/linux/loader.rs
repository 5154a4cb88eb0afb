//! Loads the embedded eBPF object, fills its maps from the policy and attaches
//! every hook the kernel allows, reporting (not failing on) the ones it refuses.
use crate::policy::Policy;
use anyhow::{bail, Context, Result};
use aya::maps::{lpm_trie::Key, Array, HashMap, LpmTrie, MapData, PerCpuArray};
use aya::programs::Program;
use aya::{Btf, Ebpf, EbpfLoader};
use sensor_common::{lost, InodeKey, PrefixValue, RootValue, SensorConfig, LPM_DATA};
use std::path::Path;

/// The eBPF object built by build.rs from sensor-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

const TRACEFS: &str = "/sys/kernel/tracing";

pub struct Loaded {
    pub ebpf: Ebpf,
    pub attached: Vec<String>,
    /// `hook: reason` for each hook that could not be loaded or attached.
    pub failed: Vec<String>,
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

/// Loads, configures and attaches. `ring_mib` sizes the event ring buffer.
pub fn load(policy: &Policy, ring_mib: u32) -> Result<Loaded> {
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("EVENTS", ring_mib * 1024 * 1024)
        .load(OBJECT)
        .context("loading the eBPF object (maps) failed")?;
    configure(&mut ebpf, policy)?;
    let btf = Btf::from_sys_fs().context("reading kernel BTF from /sys/kernel/btf/vmlinux")?;
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    let (mut attached, mut failed) = (Vec::new(), Vec::new());
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
    })
}

/// A short reason, without the verifier log (logged at debug level).
fn describe(e: aya::programs::ProgramError) -> String {
    let full = format!("{e:?}");
    tracing::debug!("{full}");
    match e {
        aya::programs::ProgramError::LoadError { io_error, .. } => {
            format!("the kernel refused to load it: {io_error}")
        }
        other => other.to_string(),
    }
}

fn configure(ebpf: &mut Ebpf, policy: &Policy) -> Result<()> {
    let mut config: Array<&mut MapData, SensorConfig> =
        Array::try_from(ebpf.map_mut("CONFIG").context("CONFIG map")?)?;
    config.set(
        0,
        SensorConfig {
            self_tgid: std::process::id(),
            _pad: 0,
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
