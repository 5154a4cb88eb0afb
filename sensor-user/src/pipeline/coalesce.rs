//! Folding raw changes into events a person can read.
//!
//! The kernel reports each step: an open that creates or truncates, the first
//! write, attribute changes, the last close, a rename. Here one process's write
//! session on one path becomes one event, emitted when the session closes, and a
//! temporary file written and renamed over a path (`sed -i`, editors, package
//! managers) becomes one `modified` event on the final path. Every raw change is
//! kept, oldest first, in the event's `related` list: nothing is dropped.
use crate::event::{Event, Related};
// foldhash (randomly seeded): SipHash of the path keys was most of each map operation.
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the source knows about a raw change beyond the event itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// The process (tgid) that made the change.
    pub pid: u32,
    /// The change starts a write session the kernel will close with a
    /// `closed_after_write` (a write, or a creating/truncating open for writing).
    pub opens_session: bool,
}

/// A raw change on its way through the pipeline.
#[derive(Debug, Clone)]
pub struct Change {
    pub ev: Event,
    pub meta: Meta,
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a freshly written file is held after its close, waiting for the
    /// rename that would make it a temporary file. Zero disables coalescing.
    pub rename_window: Duration,
    /// The longest a session stays open before its event is emitted anyway
    /// (a long-running writer, e.g. a log).
    pub max_hold: Duration,
}

type Key = (u32, Arc<str>);

/// The most sessions held at once; past it the oldest are emitted early.
pub const MAX_HELD: usize = 8192;

struct Held {
    ev: Event,
    since: Instant,
    /// For closed sessions: emit when no rename came by then.
    deadline: Option<Instant>,
}

pub struct Coalescer {
    timing: Timing,
    held: HashMap<Key, Held>,
}

impl Coalescer {
    pub fn new(timing: Timing) -> Coalescer {
        Coalescer {
            timing,
            held: HashMap::new(),
        }
    }

    /// Takes one raw change; appends the events that are complete, in
    /// order, to `out` (kept by the caller: most changes complete nothing,
    /// and a vector per change was an allocation).
    pub fn push(&mut self, c: Change, now: Instant, out: &mut Vec<Event>) {
        let Change { ev, meta } = c;
        if self.timing.rename_window.is_zero() || ev.file().is_none() {
            out.push(ev);
            return;
        }
        let path = ev.file().map(|f| f.path.clone()).unwrap_or_default();
        let key = (meta.pid, path);
        if matches!(ev.action, "renamed" | "exchanged" | "deleted") {
            // Another process moves or removes a file someone's session holds:
            // that session's event comes first, and is read before it goes.
            let f = ev.file().expect("file event");
            let names = [Some(&*f.path), f.target_path.as_deref()];
            let others: Vec<Key> = self
                .held
                .keys()
                .filter(|k| **k != key && names.contains(&Some(&*k.1)))
                .cloned()
                .collect();
            if !others.is_empty() {
                out.extend(self.take(others));
            }
        }
        match ev.action {
            "renamed" => {
                let Some(mut held) = self.held.remove(&key) else {
                    out.push(ev);
                    return;
                };
                let target = ev.file().and_then(|f| f.target_path.clone());
                fold(&mut held.ev, ev);
                let Some(target) = target else {
                    out.push(held.ev);
                    return;
                };
                let f = held.ev.file_mut().expect("held events are file events");
                f.path = target.clone();
                if held.deadline.is_some() {
                    // A finished temporary file now stands in for the target.
                    f.details.insert("replaced", true.into());
                    held.ev.action = "modified";
                    out.push(held.ev);
                } else {
                    // Renamed while still open: the session continues under the new name.
                    self.held.insert((meta.pid, target), held);
                }
            }
            "closed_after_write" => match self.held.get_mut(&key) {
                // A new file stays held, in place, for a rename over its target.
                Some(held) if held.ev.action == "created" => {
                    fold(&mut held.ev, ev);
                    held.deadline = Some(now + self.timing.rename_window);
                }
                Some(_) => {
                    let mut held = self.held.remove(&key).expect("found above");
                    fold(&mut held.ev, ev);
                    out.push(held.ev);
                }
                None => out.push(ev),
            },
            "deleted" => {
                // The deletion is its own event; what was held is complete.
                if let Some(held) = self.held.remove(&key) {
                    out.push(held.ev);
                }
                out.push(ev);
            }
            _ => match self.held.get_mut(&key) {
                Some(held) => {
                    if held.ev.action == "truncated" && ev.action == "modified" {
                        held.ev.action = "modified";
                        let f = held.ev.file_mut().expect("file event");
                        f.details.insert("truncated", true.into());
                    }
                    fold(&mut held.ev, ev);
                }
                None if meta.opens_session => {
                    self.held.insert(
                        key,
                        Held {
                            ev,
                            since: now,
                            deadline: None,
                        },
                    );
                }
                None => out.push(ev),
            },
        }
        if self.held.len() > MAX_HELD {
            // Writers that open sessions faster than they close them (or
            // whose closes the kernel dropped): the oldest quarter is emitted
            // now rather than held without bound. Nothing is lost; their later
            // steps become events of their own.
            let mut by_age: Vec<(Instant, Key)> = self
                .held
                .iter()
                .map(|(k, h)| (h.since, k.clone()))
                .collect();
            by_age.sort_unstable_by_key(|(t, _)| *t);
            let oldest = by_age.into_iter().take(MAX_HELD / 4).map(|(_, k)| k);
            out.extend(self.take(oldest.collect()));
        }
    }

    /// Events whose wait is over: closed files no rename claimed, and sessions
    /// held longer than `max_hold`. Ordered by when they started.
    pub fn expire(&mut self, now: Instant) -> Vec<Event> {
        let max_hold = self.timing.max_hold;
        let due: Vec<Key> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline.map_or(now >= h.since + max_hold, |d| now >= d))
            .map(|(k, _)| k.clone())
            .collect();
        self.take(due)
    }

    /// Everything still held (at shutdown, or when a process exits).
    pub fn flush(&mut self) -> Vec<Event> {
        let all: Vec<Key> = self.held.keys().cloned().collect();
        self.take(all)
    }

    /// The earliest time `expire` has something to return.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held
            .values()
            .map(|h| h.deadline.unwrap_or(h.since + self.timing.max_hold))
            .min()
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    fn take(&mut self, keys: Vec<Key>) -> Vec<Event> {
        let mut held: Vec<Held> = keys
            .into_iter()
            .filter_map(|k| self.held.remove(&k))
            .collect();
        held.sort_by_key(|h| h.since);
        held.into_iter().map(|h| h.ev).collect()
    }
}

/// Appends `raw` to `into.related`, listing the head change first.
fn fold(into: &mut Event, raw: Event) {
    let head = (into.file().is_some_and(|f| f.related.is_empty())).then(|| {
        let f = into.file().expect("file event");
        Related {
            action: into.action,
            path: f.path.clone(),
            target_path: f.target_path.clone(),
            time: into.time,
            syscall: f.source.syscall,
            details: f.details.clone(),
        }
    });
    let Event {
        action, time, body, ..
    } = raw;
    let crate::event::Body::File(raw) = body else {
        unreachable!("only file events are folded")
    };
    let f = into.file_mut().expect("file event");
    f.related.extend(head);
    f.related.push(Related {
        action,
        path: raw.path,
        target_path: raw.target_path,
        time,
        syscall: raw.source.syscall,
        details: raw.details,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    impl Coalescer {
        fn push_one(&mut self, c: Change, now: Instant) -> Vec<Event> {
            let mut out = Vec::new();
            self.push(c, now, &mut out);
            out
        }
    }

    fn change(
        pid: u32,
        action: &'static str,
        path: &str,
        target: Option<&str>,
        opens: bool,
    ) -> Change {
        let ev = Event {
            schema: SCHEMA,
            seq: 0,
            time: format!("t-{action}").into(),
            host: "h",
            kind: "file",
            action,
            severity: Severity::Info,
            alert: false,
            rules: vec![],
            mitre: vec![],
            pci: vec![],
            tags: vec![],
            body: Body::File(Box::new(FileChange {
                path: path.into(),
                target_path: target.map(Into::into),
                file: FileInfo::default(),
                before: None,
                after: None,
                fields_changed: vec![],
                diff: None,
                watch: None,
                package: None,
                process: Process {
                    pid,
                    ..Default::default()
                }
                .into(),
                source: Source {
                    tier: "tracepoint",
                    syscall: "x",
                    decided_by: "inode",
                },
                details: Default::default(),
                related: vec![],
            })),
        };
        Change {
            ev,
            meta: Meta {
                pid,
                opens_session: opens,
            },
        }
    }

    fn timing() -> Timing {
        Timing {
            rename_window: Duration::from_millis(30),
            max_hold: Duration::from_secs(2),
        }
    }

    fn summary(evs: &[Event]) -> Vec<(String, String, Vec<String>)> {
        evs.iter()
            .map(|e| {
                let f = e.file().unwrap();
                let rel = f.related.iter().map(|r| r.action.to_string()).collect();
                (e.action.to_string(), f.path.to_string(), rel)
            })
            .collect()
    }

    #[test]
    fn write_session_is_one_event_at_close() {
        let mut c = Coalescer::new(timing());
        let t = Instant::now();
        assert!(c
            .push_one(change(1, "modified", "/etc/hosts", None, true), t)
            .is_empty());
        assert!(c
            .push_one(
                change(1, "timestamps_changed", "/etc/hosts", None, false),
                t
            )
            .is_empty());
        let out = c.push_one(
            change(1, "closed_after_write", "/etc/hosts", None, false),
            t,
        );
        assert_eq!(
            summary(&out),
            [(
                "modified".into(),
                "/etc/hosts".into(),
                vec![
                    "modified".into(),
                    "timestamps_changed".into(),
                    "closed_after_write".into()
                ]
            )]
        );
        assert!(c.is_empty());
    }

    #[test]
    fn sed_style_temp_then_rename_is_one_modified_on_the_target() {
        let mut c = Coalescer::new(timing());
        let t = Instant::now();
        let tmp = "/etc/sedAbC123";
        assert!(c
            .push_one(change(7, "created", tmp, None, true), t)
            .is_empty());
        assert!(c
            .push_one(change(7, "modified", tmp, None, true), t)
            .is_empty());
        assert!(c
            .push_one(change(7, "permissions_changed", tmp, None, false), t)
            .is_empty());
        assert!(c
            .push_one(change(7, "closed_after_write", tmp, None, false), t)
            .is_empty());
        // Another process's change passes through meanwhile.
        let other = c.push_one(change(8, "deleted", "/etc/other", None, false), t);
        assert_eq!(other.len(), 1);
        let out = c.push_one(change(7, "renamed", tmp, Some("/etc/hosts"), false), t);
        let s = summary(&out);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].0.as_str(), s[0].1.as_str()),
            ("modified", "/etc/hosts")
        );
        assert_eq!(
            s[0].2,
            [
                "created",
                "modified",
                "permissions_changed",
                "closed_after_write",
                "renamed"
            ]
        );
        let f = out[0].file().unwrap();
        assert_eq!(f.related[4].target_path.as_deref(), Some("/etc/hosts"));
        assert_eq!(f.details["replaced"], true);
    }

    #[test]
    fn a_created_file_nobody_renames_is_emitted_after_the_window() {
        let mut c = Coalescer::new(timing());
        let t = Instant::now();
        c.push_one(change(1, "created", "/etc/new", None, true), t);
        assert!(c
            .push_one(change(1, "closed_after_write", "/etc/new", None, false), t)
            .is_empty());
        assert!(c.expire(t + Duration::from_millis(10)).is_empty());
        assert_eq!(c.next_deadline(), Some(t + Duration::from_millis(30)));
        let out = c.expire(t + Duration::from_millis(31));
        assert_eq!(summary(&out)[0].0, "created");
    }

    #[test]
    fn truncate_then_write_is_modified_and_long_sessions_are_not_held_forever() {
        let mut c = Coalescer::new(timing());
        let t = Instant::now();
        c.push_one(change(1, "truncated", "/etc/a", None, true), t);
        c.push_one(change(1, "modified", "/etc/a", None, true), t);
        c.push_one(change(2, "modified", "/var/log/x", None, true), t);
        let out = c.push_one(change(1, "closed_after_write", "/etc/a", None, false), t);
        assert_eq!(out[0].action, "modified");
        assert_eq!(out[0].file().unwrap().details["truncated"], true);
        let out = c.expire(t + Duration::from_secs(3));
        assert_eq!(summary(&out)[0].1, "/var/log/x");
        // Its close, later, is reported on its own.
        let out = c.push_one(
            change(2, "closed_after_write", "/var/log/x", None, false),
            t,
        );
        assert_eq!(summary(&out)[0].0, "closed_after_write");
    }

    #[test]
    fn another_process_renaming_a_held_file_releases_it_first() {
        let mut c = Coalescer::new(timing());
        let t = Instant::now();
        c.push_one(change(1, "created", "/etc/new", None, true), t);
        c.push_one(change(1, "closed_after_write", "/etc/new", None, false), t);
        let out = c.push_one(
            change(2, "renamed", "/etc/new", Some("/etc/final"), false),
            t,
        );
        let s = summary(&out);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].0.as_str(), s[0].1.as_str()), ("created", "/etc/new"));
        assert_eq!(s[1].0, "renamed");
        assert!(c.is_empty());
    }

    #[test]
    fn past_max_held_the_oldest_sessions_are_emitted_and_none_is_lost() {
        let mut c = Coalescer::new(timing());
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..MAX_HELD + 1 {
            let t = t0 + Duration::from_micros(i as u64);
            out.extend(c.push_one(change(1, "modified", &format!("/w/{i}"), None, true), t));
        }
        // The oldest quarter, oldest first.
        let paths: Vec<String> = summary(&out).into_iter().map(|s| s.1).collect();
        let want: Vec<String> = (0..MAX_HELD / 4).map(|i| format!("/w/{i}")).collect();
        assert_eq!(paths, want);
        assert_eq!(c.len(), MAX_HELD + 1 - MAX_HELD / 4);
        // A session emitted early still gets its close, as an event of its own.
        let late = c.push_one(
            change(1, "closed_after_write", "/w/0", None, false),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(summary(&late)[0].0, "closed_after_write");
        out.extend(c.flush());
        assert_eq!(out.len(), MAX_HELD + 1, "every session is emitted once");
    }

    #[test]
    fn zero_window_passes_raw_changes_through() {
        let mut c = Coalescer::new(Timing {
            rename_window: Duration::ZERO,
            max_hold: Duration::ZERO,
        });
        let out = c.push_one(change(1, "modified", "/etc/a", None, true), Instant::now());
        assert_eq!(out.len(), 1);
    }
}
