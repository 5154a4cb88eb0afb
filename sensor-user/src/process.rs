//! The process table: who is behind each event.
//!
//! Fed by the kernel's exec/fork/exit records and seeded by a /proc walk at
//! start-up. Exited processes stay for a grace period so that events they
//! emitted just before exiting (still in the ring buffer) are attributed.
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an exited process stays in the table.
pub const EXIT_GRACE: Duration = Duration::from_secs(120);
/// Parent levels reported in `ancestry`.
pub const ANCESTRY_DEPTH: usize = 4;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub comm: String,
    pub uid: u32,
    pub loginuid: Option<u32>,
    pub container_id: Option<String>,
    #[serde(skip)]
    pub exited: Option<Instant>,
}

#[derive(Default)]
pub struct ProcessTable {
    procs: HashMap<u32, ProcInfo>,
}

impl ProcessTable {
    /// Seeds the table from /proc.
    pub fn from_proc() -> ProcessTable {
        let mut t = ProcessTable::default();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                    if let Some(p) = read_proc(pid) {
                        t.procs.insert(pid, p);
                    }
                }
            }
        }
        t
    }

    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    /// The entry for `pid`, read from /proc when the table has none.
    pub fn lookup(&mut self, pid: u32) -> Option<&ProcInfo> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.procs.entry(pid) {
            e.insert(read_proc(pid)?);
        }
        self.procs.get(&pid)
    }

    pub fn exec(&mut self, p: ProcInfo) {
        self.procs.insert(p.pid, p);
    }

    /// A child starts as a copy of its parent (same exe and command line).
    pub fn fork(&mut self, parent: u32, child: u32, comm: String) {
        let mut p = self.procs.get(&parent).cloned().unwrap_or_default();
        p.pid = child;
        p.ppid = parent;
        p.comm = comm;
        p.exited = None;
        self.procs.insert(child, p);
    }

    pub fn exit(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exited = Some(Instant::now());
        }
    }

    /// Drops processes that exited more than [`EXIT_GRACE`] ago.
    pub fn expire(&mut self) {
        let now = Instant::now();
        self.procs
            .retain(|_, p| p.exited.is_none_or(|t| now.duration_since(t) < EXIT_GRACE));
    }

    /// Parents of `pid`, nearest first.
    pub fn ancestry(&self, pid: u32) -> Vec<&ProcInfo> {
        let mut out = Vec::new();
        let mut cur = self.procs.get(&pid).map(|p| p.ppid);
        while let Some(pp) = cur {
            if pp == 0 || out.len() >= ANCESTRY_DEPTH {
                break;
            }
            match self.procs.get(&pp) {
                Some(p) => {
                    out.push(p);
                    cur = if p.ppid == pp { None } else { Some(p.ppid) };
                }
                None => break,
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

/// argv as stored in memory (NUL-separated) → a command line.
pub fn join_args(raw: &[u8]) -> String {
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_proc(pid: u32) -> Option<ProcInfo> {
    let base = format!("/proc/{pid}");
    let status = std::fs::read_to_string(format!("{base}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let ppid = field("PPid:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let uid = field("Uid:")
        .and_then(|v| v.split_whitespace().next().and_then(|u| u.parse().ok()))
        .unwrap_or(0);
    let comm = field("Name:").unwrap_or_default();
    let exe = std::fs::read_link(format!("{base}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let cmdline = std::fs::read(format!("{base}/cmdline"))
        .ok()
        .map(|b| join_args(&b))
        .filter(|s| !s.is_empty());
    let loginuid = std::fs::read_to_string(format!("{base}/loginuid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|u| *u != u32::MAX);
    Some(ProcInfo {
        pid,
        ppid,
        exe,
        cmdline,
        comm,
        uid,
        loginuid,
        container_id: container_id(pid),
        exited: None,
    })
}

/// The container id shown in a process's cgroup path (docker, containerd,
/// CRI-O, podman), if any.
pub fn container_id(pid: u32) -> Option<String> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_id_from_cgroup(&cg)
}

pub fn container_id_from_cgroup(cgroup: &str) -> Option<String> {
    for line in cgroup.lines() {
        let path = line.rsplit(':').next().unwrap_or("");
        for seg in path.split('/') {
            let seg = seg.strip_suffix(".scope").unwrap_or(seg);
            let id = seg.rsplit(['-', ':']).next().unwrap_or(seg);
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id.to_string());
            }
        }
    }
    None
}

/// uid/gid → name, cached (NSS lookups can be slow).
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Names {
    pub fn user(&mut self, uid: u32) -> Option<String> {
        if uid == u32::MAX {
            return None;
        }
        self.users
            .entry(uid)
            .or_insert_with(|| crate::os::user_name(uid))
            .clone()
    }

    pub fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| crate::os::group_name(gid))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        let id = "a".repeat(64);
        assert_eq!(
            container_id_from_cgroup(&format!("0::/system.slice/docker-{id}.scope\n")),
            Some(id.clone())
        );
        assert_eq!(
            container_id_from_cgroup(&format!(
                "0::/kubepods/burstable/pod1/cri-containerd-{id}.scope"
            )),
            Some(id.clone())
        );
        assert_eq!(
            container_id_from_cgroup(&format!("12:pids:/docker/{id}")),
            Some(id)
        );
        assert_eq!(
            container_id_from_cgroup("0::/user.slice/user-0.slice/session-1.scope"),
            None
        );
    }

    #[test]
    fn ancestry_and_grace() {
        let mut t = ProcessTable::default();
        t.exec(ProcInfo {
            pid: 1,
            ppid: 0,
            comm: "init".into(),
            ..Default::default()
        });
        t.fork(1, 10, "sh".into());
        t.fork(10, 11, "sed".into());
        let a: Vec<u32> = t.ancestry(11).iter().map(|p| p.pid).collect();
        assert_eq!(a, vec![10, 1]);
        t.exit(11);
        t.expire();
        assert!(
            t.get(11).is_some(),
            "exited processes stay for the grace period"
        );
    }

    #[test]
    fn args_join() {
        assert_eq!(
            join_args(b"sed\0-i\0s/a/b/\0/etc/hosts\0"),
            "sed -i s/a/b/ /etc/hosts"
        );
    }
}
