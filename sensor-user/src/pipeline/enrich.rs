//! The worker pool that reads `after` states: lstat, security xattrs, link
//! targets, and content hashes. Blocking file I/O stays off the pipeline thread.
use crate::event::FileState;
use crate::filestate::{read_state, same_content};
use crate::hash::{hash_file, HashPolicy};
use crossbeam_channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::Arc;

/// One state to read.
pub struct Job {
    pub id: u64,
    pub path: PathBuf,
    /// The last known state: its digests are reused when the stat is identical.
    pub hint: Option<FileState>,
    pub sha256: bool,
    /// Return the content of regular files up to this size (for diffs).
    pub keep_content: u64,
}

pub struct Done {
    pub id: u64,
    /// None when the path no longer exists.
    pub after: Option<FileState>,
    pub content: Option<Vec<u8>>,
}

/// Starts `workers` threads; they stop when the job sender is dropped.
pub fn spawn_pool(
    workers: usize,
    policy: HashPolicy,
    done: Sender<Done>,
) -> std::io::Result<(Sender<Job>, Vec<std::thread::JoinHandle<()>>)> {
    // Bounded: when hashing falls behind, the pipeline thread waits here and
    // the backpressure reaches the ring buffer, where loss is counted.
    let (tx, rx) = crossbeam_channel::bounded::<Job>(4096);
    let policy = Arc::new(policy);
    let mut handles = Vec::new();
    for i in 0..workers.max(1) {
        let (rx, done, policy): (Receiver<Job>, _, _) = (rx.clone(), done.clone(), policy.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("vigil-hash-{i}"))
                .spawn(move || {
                    for job in rx {
                        if done.send(run(job, &policy)).is_err() {
                            return;
                        }
                    }
                })?,
        );
    }
    Ok((tx, handles))
}

fn run(job: Job, policy: &HashPolicy) -> Done {
    let Ok(mut st) = read_state(&job.path) else {
        return Done {
            id: job.id,
            after: None,
            content: None,
        };
    };
    let mut content = None;
    if st.file_type == "file" {
        let reusable = job
            .hint
            .as_ref()
            .filter(|h| same_content(h, &st) && !h.hashes.is_empty())
            .filter(|h| !job.sha256 || h.hashes.contains_key("sha256"));
        match reusable {
            Some(h) if job.keep_content == 0 => st.hashes = h.hashes.clone(),
            _ => {
                let h = hash_file(&job.path, st.size, job.sha256, job.keep_content, policy);
                st.hashes = h.hashes;
                st.hash_note = h.note;
                content = h.content;
            }
        }
    }
    Done {
        id: job.id,
        after: Some(st),
        content,
    }
}
