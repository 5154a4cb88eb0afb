//! `after` states: metadata is read on the pipeline thread (a few syscalls);
//! content hashes, the expensive part, on a worker pool.
use crate::event::FileState;
use crate::filestate::{read_state, same_content};
use crate::hash::{hash_file_with_prefix, HashPolicy};
use crossbeam_channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::Arc;

/// One regular file to hash.
pub struct Job {
    pub id: u64,
    pub path: PathBuf,
    /// Its metadata, read when the job was made.
    pub state: FileState,
    pub sha256: bool,
    /// Return the content up to this size (for diffs).
    pub keep_content: u64,
    /// Also the digest of this many leading bytes (append-only files).
    pub prefix: Option<u64>,
}

/// Reads the metadata of `path` and reuses the digests of `hint` when the
/// content cannot have changed. Returns the state and whether it still needs
/// hashing, or None when the path is gone.
pub fn stat(
    path: &std::path::Path,
    hint: Option<&FileState>,
    sha256: bool,
    keep_content: u64,
) -> Option<(FileState, bool)> {
    let mut st = read_state(path).ok()?;
    if st.file_type != "file" {
        return Some((st, false));
    }
    let reusable = hint
        .filter(|h| same_content(h, &st) && !h.hashes.is_empty())
        .filter(|h| !sha256 || h.hashes.contains_key("sha256"));
    match reusable {
        Some(h) if keep_content == 0 => {
            st.hashes = h.hashes.clone();
            Some((st, false))
        }
        _ => Some((st, true)),
    }
}

pub struct Done {
    pub id: u64,
    /// None when the path no longer exists.
    pub after: Option<FileState>,
    pub content: Option<Vec<u8>>,
    pub prefix_blake3: Option<String>,
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
    let mut st = job.state;
    let h = hash_file_with_prefix(
        &job.path,
        st.size,
        job.sha256,
        job.keep_content,
        policy,
        job.prefix,
    );
    st.hashes = h.hashes;
    st.hash_note = h.note;
    Done {
        id: job.id,
        after: Some(st),
        content: h.content,
        prefix_blake3: h.prefix_blake3,
    }
}
