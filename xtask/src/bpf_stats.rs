//! The run time of loaded BPF programs, as the kernel counts it while
//! `kernel.bpf_stats_enabled` is set: a measure of vigil's kernel side that
//! does not move with this VM's speed as much as wall time does.
use anyhow::{Context, Result};
use std::collections::HashMap;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `bpf(2)` commands and the `struct bpf_prog_info` offsets read here
/// (include/uapi/linux/bpf.h).
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const INFO_NAME: usize = 64;
const INFO_RUN_TIME_NS: usize = 192;
const INFO_RUN_CNT: usize = 200;

/// One program's counters.
#[derive(Clone)]
pub struct Prog {
    pub name: String,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// Every loaded program's counters, by id.
pub fn snapshot() -> Result<HashMap<u32, Prog>> {
    let mut progs = HashMap::new();
    let mut id = 0u32;
    loop {
        // union bpf_attr { start_id, next_id, open_flags }
        let mut attr = [0u32; 32];
        attr[0] = id;
        if bpf(BPF_PROG_GET_NEXT_ID, attr.as_mut_ptr().cast()) < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(progs);
            }
            return Err(e).context("bpf(BPF_PROG_GET_NEXT_ID)");
        }
        id = attr[1];
        // A program unloaded in between is simply left out.
        if let Some(p) = prog(id)? {
            progs.insert(id, p);
        }
    }
}

fn prog(id: u32) -> Result<Option<Prog>> {
    let mut attr = [0u32; 32];
    attr[0] = id;
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, attr.as_mut_ptr().cast());
    if fd < 0 {
        return Ok(None);
    }
    let mut info = [0u64; 32];
    // { bpf_fd: u32, info_len: u32, info: u64 }
    let mut attr = [0u64; 16];
    attr[0] = fd as u64 | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    let r = bpf(BPF_OBJ_GET_INFO_BY_FD, attr.as_mut_ptr().cast());
    // SAFETY: fd came from the kernel above and is closed once.
    unsafe { libc::close(fd as i32) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context("bpf(BPF_OBJ_GET_INFO_BY_FD)");
    }
    // SAFETY: reading the u64 array as bytes.
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(info.as_ptr().cast(), std::mem::size_of_val(&info)) };
    let name = &bytes[INFO_NAME..INFO_NAME + 16];
    let name = String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or_default());
    Ok(Some(Prog {
        name: name.into_owned(),
        run_time_ns: info[INFO_RUN_TIME_NS / 8],
        run_cnt: info[INFO_RUN_CNT / 8],
    }))
}

fn bpf(cmd: libc::c_long, attr: *mut libc::c_void) -> libc::c_long {
    // SAFETY: `attr` points at a zeroed buffer of at least 128 bytes laid out
    // as the command expects; the size passed says so.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, 128usize) }
}

/// Run time and calls of the programs in `after` that were not loaded at
/// `loaded_before`, since `since`: (ns, per program name).
pub fn spent(
    loaded_before: &HashMap<u32, Prog>,
    since: &HashMap<u32, Prog>,
    after: &HashMap<u32, Prog>,
) -> (u64, Vec<(String, u64, u64)>) {
    let mut by_name: HashMap<String, (u64, u64)> = HashMap::new();
    for (id, p) in after {
        if loaded_before.contains_key(id) {
            continue;
        }
        let (ns0, n0) = since.get(id).map_or((0, 0), |q| (q.run_time_ns, q.run_cnt));
        let e = by_name.entry(p.name.clone()).or_default();
        e.0 += p.run_time_ns.saturating_sub(ns0);
        e.1 += p.run_cnt.saturating_sub(n0);
    }
    let mut rows: Vec<(String, u64, u64)> = by_name
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(name, (ns, n))| (name, ns, n))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    (rows.iter().map(|r| r.1).sum(), rows)
}

/// `kernel.bpf_stats_enabled` set for as long as this lives (it costs each
/// program run two clock reads, so it is off while wall time is measured).
pub struct Enabled(String);

impl Enabled {
    pub fn new() -> Result<Enabled> {
        let was = std::fs::read_to_string(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?;
        std::fs::write(SYSCTL, "1").with_context(|| format!("writing {SYSCTL}"))?;
        Ok(Enabled(was.trim().to_string()))
    }
}

impl Drop for Enabled {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, &self.0);
    }
}
