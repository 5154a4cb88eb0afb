//! The `path` and `not_path` globs of every rule as one index, matched once
//! per event path.
//!
//! Matching the whole glob set costs ~2 500 instructions a path, and most
//! events are on paths no rule names (their globs are absolute: `/etc/ssh/**`,
//! `/var/log/**`). Every glob with a literal prefix can only match paths that
//! start with it, so one anchored Aho-Corasick walk over those prefixes tells
//! whether the whole set needs matching; when none is a prefix of the path,
//! only the few globs without one (`**/*.timer`) are matched, and only when
//! the path contains a literal each of them requires (`.timer`).

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, StartKind};
use globset::{Candidate, Glob, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone)]
pub(super) struct PathIndex {
    /// Every glob, in the order given.
    all: GlobSet,
    /// The literal prefixes of the globs that have one. None: always match
    /// `all` (Windows, where globset compares `\` and `/` alike).
    prefixes: Option<AhoCorasick>,
    /// The globs without a literal prefix...
    unprefixed: GlobSet,
    /// ...a piece of text each of them requires (None: one requires none)...
    unprefixed_required: Option<AhoCorasick>,
    /// ...and their indexes in `all`.
    unprefixed_ids: Vec<usize>,
}

impl PathIndex {
    pub(super) fn empty() -> PathIndex {
        PathIndex {
            all: GlobSet::empty(),
            prefixes: None,
            unprefixed: GlobSet::empty(),
            unprefixed_required: None,
            unprefixed_ids: Vec::new(),
        }
    }

    pub(super) fn build(globs: &[Glob]) -> Result<PathIndex, globset::Error> {
        let mut all = GlobSetBuilder::new();
        let mut unprefixed = GlobSetBuilder::new();
        let mut unprefixed_ids = Vec::new();
        let mut prefixes = Vec::new();
        let mut required = Some(Vec::new());
        for (i, g) in globs.iter().enumerate() {
            all.add(g.clone());
            match literal_prefix(g.glob()) {
                "" => {
                    unprefixed.add(g.clone());
                    unprefixed_ids.push(i);
                    match (required_literal(g.glob()), &mut required) {
                        (Some(r), Some(list)) => list.push(r),
                        _ => required = None,
                    }
                }
                p => prefixes.push(p),
            }
        }
        // A DFA: the fewest instructions a byte, and these sets are small. If
        // one cannot be built (a rule file far beyond any real one), there is
        // no prefilter: every path is matched against the globs, as without
        // the index.
        let automaton = |patterns: Vec<&str>, start| {
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::DFA))
                .start_kind(start)
                .build(patterns)
                .ok()
        };
        // Windows: globset compares `\` and `/` alike; no prefilter.
        let prefilter = !cfg!(windows);
        Ok(PathIndex {
            all: all.build()?,
            prefixes: prefilter
                .then(|| automaton(prefixes, StartKind::Anchored))
                .flatten(),
            unprefixed: unprefixed.build()?,
            unprefixed_required: required
                .filter(|_| prefilter)
                .and_then(|r| automaton(r, StartKind::Unanchored)),
            unprefixed_ids,
        })
    }

    /// Sets `hits` to the indexes of the globs that match `path`, as
    /// [`GlobSet::matches_candidate_into`] on all of them would.
    pub(super) fn matches_into(&self, path: &str, hits: &mut Vec<usize>) {
        let prefixed = self
            .prefixes
            .as_ref()
            .is_none_or(|ac| ac.is_match(Input::new(path).anchored(Anchored::Yes)));
        if prefixed {
            self.all.matches_candidate_into(&Candidate::new(path), hits);
        } else if self.unprefixed.is_empty()
            || self
                .unprefixed_required
                .as_ref()
                .is_some_and(|ac| !ac.is_match(path))
        {
            hits.clear();
        } else {
            self.unprefixed
                .matches_candidate_into(&Candidate::new(path), hits);
            for h in hits.iter_mut() {
                *h = self.unprefixed_ids[*h];
            }
        }
    }
}

/// The part of a glob before its first special character: every path the
/// glob matches starts with it. `\` counts as special (an escape).
fn literal_prefix(glob: &str) -> &str {
    let end = glob.find(['*', '?', '[', '{', '\\']).unwrap_or(glob.len());
    &glob[..end]
}

/// The longest run of plain characters that every path `glob` matches must
/// contain, or None when it has none or uses classes, alternatives or
/// escapes (kept out to stay obviously right). A `/` next to a `*` is left
/// out of the run: `**/a` matches `a`.
fn required_literal(glob: &str) -> Option<&str> {
    if glob.contains(['[', '{', '\\']) {
        return None;
    }
    glob.split(['*', '?'])
        .map(|run| {
            let run = run.strip_prefix('/').unwrap_or(run);
            run.strip_suffix('/').unwrap_or(run)
        })
        .max_by_key(|run| run.len())
        .filter(|run| !run.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(g: &str) -> Glob {
        globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .unwrap()
    }

    #[test]
    fn prefixes_stop_at_the_first_special_character() {
        assert_eq!(literal_prefix("/etc/ssh/**"), "/etc/ssh/");
        assert_eq!(literal_prefix("/home/*/.ssh"), "/home/");
        assert_eq!(literal_prefix("/etc/rc[0-6S].d/**"), "/etc/rc");
        assert_eq!(literal_prefix("/etc/hosts"), "/etc/hosts");
        assert_eq!(literal_prefix("**/*.timer"), "");
        assert_eq!(literal_prefix("{/a,/b}/x"), "");
        assert_eq!(literal_prefix("/a\\*b"), "/a");
    }

    #[test]
    fn required_literals_are_plain_runs_without_slashes_next_to_stars() {
        assert_eq!(required_literal("**/*.timer"), Some(".timer"));
        assert_eq!(required_literal("**/__pycache__/**"), Some("__pycache__"));
        assert_eq!(required_literal("**/a/b?cd/*"), Some("a/b"));
        assert_eq!(required_literal("**/a[xy]bcd/*"), None);
        assert_eq!(required_literal("**"), None);
        assert_eq!(required_literal("**/{a,b}"), None);
    }

    /// The index gives exactly the whole set's matches, on paths inside and
    /// outside every prefix.
    #[test]
    fn the_index_matches_as_the_whole_set_does() {
        let patterns = [
            "/etc/ssh/**",
            "**/*.timer",
            "/home/*/.ssh/authorized_keys",
            "/etc/hosts",
            "/etc/rc[0-6S].d/**",
            "**/__pycache__/**",
            "/var/log/**/*.gz",
            "**/x[ab]y/**",
        ];
        let globs: Vec<Glob> = patterns.iter().map(|g| glob(g)).collect();
        let index = PathIndex::build(&globs).unwrap();
        let mut whole = GlobSetBuilder::new();
        for g in &globs {
            whole.add(g.clone());
        }
        let whole = whole.build().unwrap();
        for path in [
            "/etc/ssh/sshd_config",
            "/etc/ssh",
            "/etc/hosts",
            "/etc/hostsx",
            "/etc/rc3.d/S01x",
            "/home/ann/.ssh/authorized_keys",
            "/var/tmp/w/churn-1",
            "/var/tmp/w/a.timer",
            "/usr/lib/python3/__pycache__/x.pyc",
            "/var/log/a/b.gz",
            "/etc/systemd/system/x.timer",
            "/",
            "",
            "__pycache__/a",
            "/tmp/xay/1",
            "/tmp/xcy/1",
        ] {
            let (mut got, mut want) = (Vec::new(), Vec::new());
            index.matches_into(path, &mut got);
            whole.matches_candidate_into(&Candidate::new(path), &mut want);
            got.sort();
            assert_eq!(got, want, "{path}");
        }
    }
}
