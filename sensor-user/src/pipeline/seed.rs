//! What the pipeline knows when it starts: the state and content of the files
//! whose changes are diffed, and the state of append-only files, read in the
//! background, so that the first change to /etc/hosts already has a `before`
//! and a diff, and the first write to an audit log is checked for rewrites.
use crate::event::FileState;
use crate::filestate::read_state;
use crate::hash::{hash_file, HashPolicy};
use globset::GlobSet;
use std::path::PathBuf;

/// Entries visited at most, so that a huge tree cannot delay or bloat start-up.
const MAX_VISITED: usize = 200_000;

#[derive(Default)]
pub struct Seed {
    pub states: Vec<(String, FileState)>,
    pub contents: Vec<(String, Vec<u8>)>,
}

pub struct Scope {
    /// Watched roots and whether they are recursive.
    pub roots: Vec<(PathBuf, bool)>,
    pub diff: GlobSet,
    pub secret: GlobSet,
    pub sha256: GlobSet,
    pub max_bytes: u64,
    pub hash: HashPolicy,
    pub append_only: GlobSet,
}

/// Reads every diffable or append-only regular file under the roots (not
/// following symlinks).
pub fn read(scope: &Scope) -> Seed {
    let mut seed = Seed::default();
    if scope.diff.is_empty() && scope.append_only.is_empty() {
        return seed;
    }
    // (path, may descend into it, the root's recursion)
    let mut stack: Vec<(PathBuf, bool, bool)> = scope
        .roots
        .iter()
        .map(|(p, r)| (p.clone(), true, *r))
        .collect();
    let mut visited = 0;
    while let Some((path, descend, recursive)) = stack.pop() {
        visited += 1;
        if visited > MAX_VISITED {
            tracing::warn!("diff seed stopped after {MAX_VISITED} entries");
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            // A non-recursive root covers its direct entries only.
            if let (true, Ok(rd)) = (descend, std::fs::read_dir(&path)) {
                stack.extend(rd.flatten().map(|e| (e.path(), recursive, recursive)));
            }
            continue;
        }
        let Some(name) = path.to_str() else { continue };
        let diffable = meta.len() <= scope.max_bytes
            && scope.diff.is_match(name)
            && !scope.secret.is_match(name);
        if !meta.is_file() || !(diffable || scope.append_only.is_match(name)) {
            continue;
        }
        let Ok(mut st) = read_state(&path) else {
            continue;
        };
        let h = hash_file(
            &path,
            st.size,
            scope.sha256.is_match(name),
            if diffable { scope.max_bytes } else { 0 },
            &scope.hash,
        );
        st.hashes = h.hashes;
        st.hash_note = h.note;
        if let Some(c) = h.content {
            seed.contents.push((name.to_string(), c));
        }
        seed.states.push((name.to_string(), st));
    }
    seed
}
