//! Dropping privileges once the eBPF programs are attached.
//!
//! Loading and attaching needs `CAP_BPF`, `CAP_PERFMON` (or `CAP_SYS_ADMIN`
//! before 5.8, and for mounting tracefs) and, before 5.11, `CAP_SYS_RESOURCE`
//! for `RLIMIT_MEMLOCK`. Once the programs are attached and the maps and the
//! ring buffer are open, the sensor only reads files and `/proc`, and updates
//! maps through the file descriptors it holds. What it keeps:
//!
//! - `CAP_DAC_READ_SEARCH`: read and hash any watched file, walk any
//!   directory (scans, `after` states), whatever its mode;
//! - `CAP_SYS_PTRACE`: `readlink /proc/PID/exe` of a process the table has not
//!   seen exec (the kernel checks ptrace access: without it, a root process
//!   with more capabilities than the sensor is refused);
//! - `CAP_BPF` only where the kernel refuses map operations on a held fd
//!   without it (before 6.5, with `kernel.unprivileged_bpf_disabled` set):
//!   measured at the drop by reading a map with it lowered, not assumed.
//!
//! Everything else leaves the effective, permitted, inheritable, ambient and
//! (with `CAP_SETPCAP`) bounding sets, and `PR_SET_NO_NEW_PRIVS` is set.
//! Capabilities are per thread: this runs before the sensor starts any
//! thread, and threads started later inherit the reduced sets.
use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// What the sensor keeps after attaching (those the process has).
pub const KEEP: [Capability; 2] = [Capability::CAP_DAC_READ_SEARCH, Capability::CAP_SYS_PTRACE];

/// What [`drop_after_attach`] did.
#[derive(Debug, Clone, Default)]
pub struct Dropped {
    /// Capabilities still held (permitted and effective), sorted.
    pub kept: Vec<String>,
    /// Capabilities given up, sorted.
    pub dropped: Vec<String>,
    /// Whether the bounding set was reduced too (needs `CAP_SETPCAP`).
    pub bounding: bool,
}

/// Drops every capability but [`KEEP`] (and `CAP_BPF` or `CAP_SYS_ADMIN`
/// when `map_access` fails without them), then sets `PR_SET_NO_NEW_PRIVS`.
/// `map_access` performs a map operation on a held fd and says whether it
/// worked. Call from the only thread of the process.
pub fn drop_after_attach(mut map_access: impl FnMut() -> bool) -> Result<Dropped> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_NO_NEW_PRIVS)");
    }
    let permitted = caps::read(None, CapSet::Permitted).context("reading capabilities")?;
    let mut keep: CapsHashSet = KEEP
        .iter()
        .filter(|c| permitted.contains(c))
        .copied()
        .collect();
    // Map updates (roots that appear, sessions of exited processes) and the
    // loss counters go through the bpf() syscall on fds the sensor holds.
    // Try them without the BPF capabilities, then with CAP_BPF, then with
    // CAP_SYS_ADMIN (kernels before 5.8 know no CAP_BPF).
    set_effective(&keep)?;
    if !map_access() {
        let mut enough = false;
        for extra in [Capability::CAP_BPF, Capability::CAP_SYS_ADMIN] {
            if !permitted.contains(&extra) {
                continue;
            }
            let mut with = keep.clone();
            with.insert(extra);
            set_effective(&with)?;
            if map_access() {
                tracing::info!("this kernel refuses map operations without {extra}: it is kept");
                keep = with;
                enough = true;
                break;
            }
        }
        if !enough {
            anyhow::bail!(
                "the eBPF maps cannot be read with the capabilities the sensor holds: \
                 run vigil as root with CAP_BPF (or CAP_SYS_ADMIN)"
            );
        }
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP in effect.
    let mut bounding = false;
    if permitted.contains(&Capability::CAP_SETPCAP) {
        let mut with = keep.clone();
        with.insert(Capability::CAP_SETPCAP);
        set_effective(&with)?;
        for cap in caps::read(None, CapSet::Bounding).context("reading the bounding set")? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .with_context(|| format!("dropping {cap} from the bounding set"))?;
            }
        }
        bounding = true;
    }
    // Ambient capabilities exist since 4.3; an older kernel has none to clear.
    let _ = caps::clear(None, CapSet::Ambient);
    caps::clear(None, CapSet::Inheritable).context("clearing inheritable capabilities")?;
    set_effective(&keep)?;
    caps::set(None, CapSet::Permitted, &keep).context("reducing permitted capabilities")?;
    let name = |c: &Capability| c.to_string();
    let mut kept: Vec<String> = keep.iter().map(name).collect();
    let mut dropped: Vec<String> = permitted.difference(&keep).map(name).collect();
    kept.sort();
    dropped.sort();
    Ok(Dropped {
        kept,
        dropped,
        bounding,
    })
}

fn set_effective(set: &CapsHashSet) -> Result<()> {
    caps::set(None, CapSet::Effective, set).context("setting effective capabilities")
}
