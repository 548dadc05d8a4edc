//! Token buckets keyed by who asks (an owner key, a peer): registrations are rate limited so
//! that one owner or one peer cannot flood the registrar's log.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Most keys tracked; past it, keys whose bucket has refilled are forgotten first.
const MAX_KEYS: usize = 8192;

/// Token buckets: `burst` requests at once, then `per_sec` a second, per key.
#[derive(Debug)]
pub struct TokenBuckets<K> {
    burst: f64,
    per_sec: f64,
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Clone> TokenBuckets<K> {
    /// Buckets of `burst` tokens refilled at `per_sec`.
    pub fn new(burst: u32, per_sec: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key`; false when its bucket is empty.
    pub fn allow(&mut self, key: &K) -> bool {
        self.allow_at(key, Instant::now())
    }

    /// [`TokenBuckets::allow`] at time `now`.
    pub fn allow_at(&mut self, key: &K, now: Instant) -> bool {
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst
            });
            if self.buckets.len() >= MAX_KEYS {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(key.clone()).or_insert((self.burst, now));
        let refilled = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBuckets::new(3, 2.0);
        let t0 = Instant::now();
        assert!((0..3).all(|_| b.allow_at(&"a", t0)));
        assert!(!b.allow_at(&"a", t0), "the burst is spent");
        assert!(b.allow_at(&"b", t0), "other keys have their own bucket");
        assert!(
            b.allow_at(&"a", t0 + Duration::from_millis(500)),
            "refilled at 2/s"
        );
        assert!(!b.allow_at(&"a", t0 + Duration::from_millis(600)));
    }
}
