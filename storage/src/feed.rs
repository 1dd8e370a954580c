//! The change feed of the embedded store: client, watermark and key changes in commit order,
//! so a reader learns of writes it did not make.
//!
//! Invariants: versions are taken inside the meta committer's jobs (one thread, so in commit
//! order) and published only after their commit is visible; a reader gets only published
//! versions, so what it reads next is at least as new as the version it was given; a reader the
//! bounded log cannot serve is told to reload everything.

use crate::api::{Change, Changes};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// How many changes the feed keeps; a reader further behind is told to reload everything.
pub(crate) const FEED_LEN: usize = 4096;

/// Client, watermark and key changes in commit order. Versions are taken inside the meta
/// committer's jobs (one thread, so in commit order) and published after their commit.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    /// The last version handed out (taken inside a job, before its commit).
    taken: AtomicU64,
    /// Every version up to this one is committed and visible.
    published: AtomicU64,
    log: Mutex<FeedLog>,
}

#[derive(Debug, Default)]
struct FeedLog {
    entries: VecDeque<(u64, Change)>,
    /// The newest version pushed out of `entries`.
    dropped_through: u64,
}

impl Feed {
    /// Takes the next version, first thing in a meta job (committer thread), so that every job
    /// has one whatever it does.
    pub(crate) fn next(&self) -> u64 {
        self.taken.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records the changes the running job made under its version `v`.
    pub(crate) fn take(&self, v: u64, changes: Vec<Change>) -> u64 {
        if changes.is_empty() {
            return v;
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        for c in changes {
            if log.entries.len() == FEED_LEN {
                if let Some((old, _)) = log.entries.pop_front() {
                    log.dropped_through = old;
                }
            }
            log.entries.push_back((v, c));
        }
        v
    }

    pub(crate) fn publish(&self, v: u64) {
        self.published.fetch_max(v, Ordering::Release);
    }

    pub(crate) fn since(&self, after: u64) -> Changes {
        let version = self.published.load(Ordering::Acquire);
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if after > version || after < log.dropped_through {
            return Changes { version, changes: Vec::new(), resync: true };
        }
        let changes = log.entries.iter().filter(|(v, _)| *v > after && *v <= version).map(|(_, c)| c.clone()).collect();
        Changes { version, changes, resync: false }
    }
}
