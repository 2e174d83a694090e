//! [`PolicyCache`]: the policies parsed last, by path and text, so that a fleet spawned under
//! one policy file parses and compiles it once instead of once per agent.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use crate::{Policy, PolicyError};

/// The `capacity` policies parsed last. A [`Policy`] is immutable and shared (an `Arc`), so a
/// hit is the very policy a parse of the same path and text made: the same rules, digest and
/// messages. Only policies that loaded are kept; a text that does not load is parsed (and its
/// error made) every time.
#[derive(Debug)]
pub struct PolicyCache {
    recent: Mutex<VecDeque<Policy>>,
    capacity: usize,
}

impl PolicyCache {
    /// An empty cache that keeps at most `capacity` policies (0: keeps none).
    pub const fn new(capacity: usize) -> PolicyCache {
        PolicyCache {
            recent: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    /// [`Policy::parse`] of `path` and `text`, or the policy parsed from exactly this path and
    /// text before. The parse itself runs outside the cache's lock.
    pub fn parse(&self, path: &str, text: &str) -> Result<Policy, PolicyError> {
        let same = |p: &Policy| p.path() == path && p.text() == text;
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(hit) = recent.iter().position(same).and_then(|i| recent.remove(i)) {
                recent.push_front(hit.clone());
                return Ok(hit);
            }
        }
        let policy = Policy::parse(path, text)?;
        if self.capacity > 0 {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if !recent.iter().any(same) {
                recent.push_front(policy.clone());
                recent.truncate(self.capacity);
            }
        }
        Ok(policy)
    }

    /// How many policies it holds.
    pub fn len(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(rule: &str) -> String {
        format!(
            "```yaml\nkernel:\n  version: \"1.0\"\n  mode: strict\nsignals: [SIGSTOP, SIGKILL]\npolicies:\n  - name: {rule}\n    action: file_read\n    effect: allow\n```\n"
        )
    }

    #[test]
    fn the_same_path_and_text_are_parsed_once() {
        let cache = PolicyCache::new(4);
        let a = cache.parse("a.md", &text("r")).unwrap();
        let b = cache.parse("a.md", &text("r")).unwrap();
        assert!(a.is(&b));
        assert_eq!(
            a.digest(),
            Policy::parse("a.md", &text("r")).unwrap().digest()
        );
        // Another path (its messages name it) or another text is another policy.
        let c = cache.parse("c.md", &text("r")).unwrap();
        let d = cache.parse("a.md", &text("s")).unwrap();
        assert!(!a.is(&c) && !a.is(&d));
        assert_eq!(c.path(), "c.md");
        assert_eq!(d.text(), text("s"));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn it_keeps_the_last_used_up_to_its_capacity() {
        let cache = PolicyCache::new(2);
        let a = cache.parse("p.md", &text("a")).unwrap();
        let b = cache.parse("p.md", &text("b")).unwrap();
        // `a` used again: `b` is now the older, and `c` pushes it out.
        assert!(a.is(&cache.parse("p.md", &text("a")).unwrap()));
        cache.parse("p.md", &text("c")).unwrap();
        assert_eq!(cache.len(), 2);
        assert!(a.is(&cache.parse("p.md", &text("a")).unwrap()));
        let b_again = cache.parse("p.md", &text("b")).unwrap();
        assert!(!b.is(&b_again), "b was dropped and parsed anew");
        assert_eq!(b.digest(), b_again.digest());
    }

    #[test]
    fn a_text_that_does_not_load_is_refused_every_time_and_not_kept() {
        let cache = PolicyCache::new(4);
        let bad = "```yaml\nkernel:\n  version: \"1.0\"\n  mode: strikt\n```\n";
        for _ in 0..2 {
            let e = cache.parse("bad.md", bad).unwrap_err().to_string();
            assert!(e.contains("bad.md"), "{e}");
        }
        assert!(cache.is_empty());
        let none = PolicyCache::new(0);
        none.parse("a.md", &text("r")).unwrap();
        assert!(none.is_empty());
    }
}
