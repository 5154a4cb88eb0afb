//! The loaded policy: watched roots resolved to inodes for the kernel, and the
//! path-string matcher user space uses to confirm candidate events.
use crate::config::{Config, Entries, Watch};
use sensor_common::{root_flags, InodeKey, LPM_DATA};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One watched root after glob expansion.
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
    pub recursive: bool,
    pub entries: Entries,
    /// Index into [`Config::watches`] (for its ignore globs).
    pub watch: usize,
    /// The root's inode as the kernel's roots map knows it; None while the path
    /// does not exist (its creation is then watched through its parent).
    pub inode: Option<InodeKey>,
}

impl Root {
    /// Flags of this root's entry in the kernel's roots map.
    pub fn kernel_flags(&self) -> u32 {
        root_flags::ROOT
            | if self.recursive {
                root_flags::RECURSIVE
            } else {
                0
            }
    }
}

/// What the kernel maps are filled with.
#[derive(Debug, Default)]
pub struct KernelTables {
    /// (dev, ino) → (flags, root id) for roots and their ancestors.
    pub inodes: BTreeMap<(u32, u64), (u32, u32)>,
    /// Absolute-path prefixes: (bytes, prefix length in bits, flags, root id).
    pub prefixes: Vec<(Vec<u8>, u32, u32, u32)>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub config: Config,
    pub roots: Vec<Root>,
}

/// The kernel's `s_dev` encoding (MKDEV: major << 20 | minor) of a stat st_dev.
#[cfg(unix)]
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | minor
}

/// The key the kernel uses for a path's inode in the roots map.
#[cfg(unix)]
pub fn inode_key(path: &Path) -> std::io::Result<InodeKey> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(InodeKey {
        dev: kernel_dev(m.dev()),
        generation: 0,
        ino: m.ino(),
    })
}

/// Windows has no eBPF roots map: roots are matched by path only.
#[cfg(not(unix))]
pub fn inode_key(_: &Path) -> std::io::Result<InodeKey> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// How many components `path` lies below `root` (0: the root itself), or
/// None outside it. This runs for every kernel record: on Unix it compares
/// bytes instead of walking both paths' components.
fn depth_below(path: &Path, root: &Path) -> Option<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let (path, root) = (path.as_os_str().as_bytes(), root.as_os_str().as_bytes());
        let root = root.strip_suffix(b"/").unwrap_or(root);
        let rest = path.strip_prefix(root)?;
        if !rest.is_empty() && rest[0] != b'/' {
            return None; // "/etcx" is not below "/etc"
        }
        // A byte loop: `split` + `filter` cost twice as much on these short tails.
        let (mut depth, mut i) = (0, 0);
        while i < rest.len() {
            let start = i;
            while i < rest.len() && rest[i] != b'/' {
                i += 1;
            }
            if i > start && &rest[start..i] != b"." {
                depth += 1;
            }
            i += 1;
        }
        Some(depth)
    }
    #[cfg(not(unix))]
    {
        // Windows paths compare without case.
        let (p, r) = (
            path.to_string_lossy().to_lowercase(),
            root.to_string_lossy().to_lowercase(),
        );
        let rest = Path::new(&p).strip_prefix(Path::new(&r)).ok()?;
        Some(rest.components().count())
    }
}

/// Expands `*` components against the file system (`/home/*/.ssh`).
fn expand(path: &Path) -> Vec<PathBuf> {
    if !path.to_string_lossy().contains('*') {
        return vec![path.to_path_buf()];
    }
    // The first component is `/` here, the drive and then `\` on Windows.
    let mut out = vec![PathBuf::new()];
    for comp in path.components() {
        let comp = comp.as_os_str().to_string_lossy();
        if comp.contains('*') {
            let glob = match globset::Glob::new(&comp) {
                Ok(g) => g.compile_matcher(),
                Err(_) => return vec![path.to_path_buf()],
            };
            let mut next = Vec::new();
            for base in &out {
                if let Ok(rd) = std::fs::read_dir(base) {
                    for e in rd.flatten() {
                        if glob.is_match(e.file_name()) {
                            next.push(base.join(e.file_name()));
                        }
                    }
                }
            }
            out = next;
        } else {
            for base in &mut out {
                base.push(comp.as_ref());
            }
        }
    }
    out.sort();
    out
}

impl Policy {
    pub fn new(config: Config) -> Policy {
        let mut roots = Vec::new();
        for (i, w) in config.watches.iter().enumerate() {
            for path in expand(&w.path) {
                let inode = inode_key(&path).ok();
                roots.push(Root {
                    path,
                    recursive: w.recursive,
                    entries: w.entries,
                    watch: i,
                    inode,
                });
            }
        }
        Policy { config, roots }
    }

    /// Builds the kernel tables: each existing root by inode, the existing
    /// ancestors of every root (so that names created or moved in them reach user
    /// space), and path prefixes for absolute names.
    pub fn kernel_tables(&self) -> KernelTables {
        let mut t = KernelTables::default();
        for (id, root) in self.roots.iter().enumerate() {
            let id = id as u32;
            if let Some(k) = root.inode {
                let e = t.inodes.entry((k.dev, k.ino)).or_insert((0, id));
                // Two watch entries for one inode: the first keeps its id, flags merge.
                e.0 |= root.kernel_flags();
            }
            let mut anc = root.path.parent();
            while let Some(a) = anc {
                if let Ok(k) = inode_key(a) {
                    t.inodes.entry((k.dev, k.ino)).or_insert((0, id)).0 |= root_flags::ANCESTOR;
                    push_exact(&mut t.prefixes, a, root_flags::ANCESTOR, id);
                }
                anc = a.parent();
            }
            let flags = root.kernel_flags();
            push_exact(&mut t.prefixes, &root.path, flags, id);
            let mut under = root.path.as_os_str().as_encoded_bytes().to_vec();
            if under != b"/" {
                under.push(b'/');
            }
            let bits = (under.len() * 8) as u32;
            if under.len() <= LPM_DATA {
                t.prefixes.push((under, bits, flags, id));
            }
        }
        t
    }

    /// The root that covers `path`, by path string: the longest matching root,
    /// honouring `recursive` and `entries`. `is_dir` is the entry's type if known.
    pub fn root_for(&self, path: &Path, is_dir: Option<bool>) -> Option<usize> {
        let mut best: Option<(usize, usize, usize)> = None;
        for (i, r) in self.roots.iter().enumerate() {
            let Some(depth) = depth_below(path, &r.path) else {
                continue;
            };
            if depth > 1 && !r.recursive {
                continue;
            }
            let len = r.path.as_os_str().len();
            if best.is_none_or(|(_, _, l)| len > l) {
                best = Some((i, depth, len));
            }
        }
        let (i, depth, _) = best?;
        if self.entry_kind_ok_at(i, Some(depth), path, is_dir) {
            Some(i)
        } else {
            None
        }
    }

    /// Whether the root's `entries` option admits this entry.
    pub fn entry_kind_ok(&self, root: usize, path: &Path, is_dir: Option<bool>) -> bool {
        // A path may reach a root's inode without its string being below the
        // root's (a bind mount, a hard link): only the root itself is exempt.
        self.roots.get(root).is_some_and(|r| {
            let depth = depth_below(path, &r.path);
            self.entry_kind_ok_at(root, depth, path, is_dir)
        })
    }

    /// [`Self::entry_kind_ok`] for a path `depth` components below the root
    /// (None: not below it by string).
    fn entry_kind_ok_at(
        &self,
        root: usize,
        depth: Option<usize>,
        path: &Path,
        is_dir: Option<bool>,
    ) -> bool {
        let r = &self.roots[root];
        if depth == Some(0) {
            return true;
        }
        let include = self
            .config
            .watches
            .get(r.watch)
            .and_then(|w| w.include.as_ref());
        if let (Some(globs), Some(false)) = (include, is_dir) {
            if !path.file_name().is_some_and(|n| globs.is_match(n)) {
                return false;
            }
        }
        match (r.entries, is_dir) {
            (Entries::All, _) | (_, None) => true,
            (Entries::Files, Some(d)) => !d,
            (Entries::Dirs, Some(d)) => d,
        }
    }

    /// Whether `path` is an ancestor of some root (renaming or removing it moves
    /// or removes watched files).
    pub fn is_ancestor_of_root(&self, path: &Path) -> bool {
        self.roots
            .iter()
            .any(|r| r.path != path && r.path.starts_with(path))
    }

    /// Global and per-watch ignore globs.
    pub fn ignored(&self, root: Option<usize>, path: &Path) -> bool {
        let watch = root
            .and_then(|r| self.roots.get(r))
            .and_then(|r| self.config.watches.get(r.watch))
            .map(|w: &Watch| &w.ignore)
            .filter(|g| !g.is_empty());
        let global = Some(&self.config.ignore).filter(|g| !g.is_empty());
        if global.is_none() && watch.is_none() {
            // No glob to test: skip building the candidate (per event).
            return false;
        }
        let c = globset::Candidate::new(path);
        global.is_some_and(|g| g.is_match_candidate(&c))
            || watch.is_some_and(|g| g.is_match_candidate(&c))
    }
}

fn push_exact(out: &mut Vec<(Vec<u8>, u32, u32, u32)>, p: &Path, flags: u32, id: u32) {
    let mut bytes = p.as_os_str().as_encoded_bytes().to_vec();
    bytes.push(0);
    if bytes.len() <= LPM_DATA {
        let bits = (bytes.len() * 8) as u32;
        out.push((bytes, bits, flags, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::new(Config::parse(text, "t").unwrap())
    }

    #[test]
    fn global_and_per_watch_ignore_globs() {
        let p = policy(
            "ignore = [\"**/*.swp\"]\n[[watch]]\npath = \"/etc\"\nignore = [\"/etc/cache/**\"]\n[[watch]]\npath = \"/var/www\"\n",
        );
        let (etc, www) = (Some(0), Some(1));
        assert!(p.ignored(etc, Path::new("/etc/.hosts.swp")));
        assert!(p.ignored(www, Path::new("/var/www/a.swp")));
        assert!(p.ignored(None, Path::new("/x/a.swp")));
        assert!(p.ignored(etc, Path::new("/etc/cache/x")));
        assert!(
            !p.ignored(www, Path::new("/etc/cache/x")),
            "another watch's glob"
        );
        assert!(!p.ignored(etc, Path::new("/etc/hosts")));
        let none = policy("[[watch]]\npath = \"/etc\"\n");
        assert!(!none.ignored(Some(0), Path::new("/etc/a.swp")));
        assert!(!none.ignored(None, Path::new("/etc/a.swp")));
    }

    #[test]
    fn root_matching_honours_recursion_and_entries() {
        let p = policy(
            "[[watch]]\npath = \"/etc\"\nrecursive = false\n[[watch]]\npath = \"/usr/lib\"\nentries = \"files\"\n",
        );
        assert_eq!(p.root_for(Path::new("/etc/passwd"), Some(false)), Some(0));
        assert_eq!(
            p.root_for(Path::new("/etc/ssh/sshd_config"), Some(false)),
            None
        );
        assert_eq!(p.root_for(Path::new("/etc"), Some(true)), Some(0));
        assert_eq!(p.root_for(Path::new("/etcx/a"), None), None);
        assert_eq!(depth_below(Path::new("/etc/a/b"), Path::new("/")), Some(3));
        assert_eq!(
            depth_below(Path::new("/etc/a"), Path::new("/etc/")),
            Some(1)
        );
        assert_eq!(depth_below(Path::new("/etc"), Path::new("/etc")), Some(0));
        for (path, depth) in [
            ("/etc/", 0),
            ("/etc/./", 0),
            ("/etc//a/./b/", 2),
            ("/etc/a.", 1),
        ] {
            assert_eq!(
                depth_below(Path::new(path), Path::new("/etc")),
                Some(depth),
                "{path}"
            );
        }
        assert_eq!(
            p.root_for(Path::new("/usr/lib/x/y.so"), Some(false)),
            Some(1)
        );
        assert_eq!(p.root_for(Path::new("/usr/lib/x"), Some(true)), None);
    }

    #[test]
    fn longest_root_wins() {
        let p = policy(
            "[[watch]]\npath = \"/etc\"\n[[watch]]\npath = \"/etc/ssh\"\nrecursive = false\n",
        );
        assert_eq!(p.root_for(Path::new("/etc/ssh/a"), None), Some(1));
        // Too deep for the non-recursive /etc/ssh: not covered (nearest root decides).
        assert_eq!(p.root_for(Path::new("/etc/ssh/a/b"), None), Some(0));
    }

    #[test]
    fn ancestors_and_prefixes() {
        let p = policy("[[watch]]\npath = \"/etc\"\n");
        assert!(p.is_ancestor_of_root(Path::new("/")));
        assert!(!p.is_ancestor_of_root(Path::new("/etc")));
        let t = p.kernel_tables();
        assert!(t
            .prefixes
            .iter()
            .any(|(b, bits, _, _)| b == b"/etc/" && *bits == 40));
        assert!(t
            .prefixes
            .iter()
            .any(|(b, _, f, _)| b == b"/\0" && f & root_flags::ANCESTOR != 0));
    }

    #[test]
    fn include_admits_files_by_name_only() {
        let p = policy("[[watch]]\npath = \"/srv/bin\"\ninclude = [\"*.exe\", \"*.dll\"]\n");
        assert_eq!(
            p.root_for(Path::new("/srv/bin/a.exe"), Some(false)),
            Some(0)
        );
        assert_eq!(
            p.root_for(Path::new("/srv/bin/x/b.dll"), Some(false)),
            Some(0)
        );
        assert_eq!(
            p.root_for(Path::new("/srv/bin/notes.txt"), Some(false)),
            None
        );
        // Directories are walked whatever their name.
        assert_eq!(p.root_for(Path::new("/srv/bin/x"), Some(true)), Some(0));
    }

    #[cfg(unix)]
    #[test]
    fn kernel_dev_encoding() {
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(259, 300)), (259 << 20) | 300);
    }
}
