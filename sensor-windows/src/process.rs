//! The process table, kept from Kernel-Process start and stop events.
//!
//! A change is attributed to the process that made it; its image, command
//! line, user and parent come from here. An exited process stays for
//! [`EXIT_GRACE`] of event time, because the events of its last changes (a
//! cleanup at exit, a lazy-writer close) can arrive after its stop event.
use std::collections::HashMap;
use std::sync::Arc;

/// How long (FILETIME units, 100 ns) an exited process is kept: 10 s.
pub const EXIT_GRACE: u64 = 10 * 10_000_000;

/// What is known about a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub parent_pid: u32,
    /// The image path in DOS form where the volume is known.
    pub image: Option<String>,
    pub command_line: Option<String>,
    /// The user's SID (`S-1-5-...`).
    pub user_sid: Option<String>,
    pub session_id: Option<u32>,
    /// FILETIME.
    pub create_time: Option<u64>,
    /// The parent's image, when the parent was known at start.
    pub parent_image: Option<String>,
    /// FILETIME of the stop event, once it came.
    pub exit_time: Option<u64>,
    pub exit_code: Option<u32>,
}

/// pid → the process (shared with the changes that name it).
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: HashMap<u32, Arc<ProcessInfo>>,
}

impl ProcessTable {
    /// An empty table.
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    /// A process started (a pid reused after the grace period replaces the old one).
    pub fn start(&mut self, mut info: ProcessInfo) {
        if info.parent_image.is_none() {
            info.parent_image = self
                .procs
                .get(&info.parent_pid)
                .and_then(|p| p.image.clone());
        }
        self.procs.insert(info.pid, Arc::new(info));
    }

    /// A process stopped at `time`; it is forgotten [`EXIT_GRACE`] later.
    pub fn stop(&mut self, pid: u32, time: u64, exit_code: u32, image: &str) {
        let entry = self.procs.entry(pid).or_insert_with(|| {
            Arc::new(ProcessInfo {
                pid,
                image: (!image.is_empty()).then(|| image.to_string()),
                ..ProcessInfo::default()
            })
        });
        let p = Arc::make_mut(entry);
        p.exit_time = Some(time);
        p.exit_code = Some(exit_code);
        self.expire(time);
    }

    /// Drops processes that exited more than [`EXIT_GRACE`] before `now`.
    pub fn expire(&mut self, now: u64) {
        self.procs.retain(|_, p| {
            p.exit_time
                .is_none_or(|t| now.saturating_sub(t) <= EXIT_GRACE)
        });
    }

    /// The process with this pid, if known.
    pub fn get(&self, pid: u32) -> Option<Arc<ProcessInfo>> {
        self.procs.get(&pid).cloned()
    }

    /// How many processes are known (running or in their grace period).
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// No process is known.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}
