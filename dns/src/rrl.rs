//! Response rate limiting for authoritative answers (a simple form of BIND's and Knot's RRL):
//! a token bucket per client network (/24 for IPv4, /56 for IPv6). Over the limit, every second
//! response "slips" out as an empty truncated answer, so that a real client retries over TCP
//! (which cannot be spoofed), and the others are dropped: a spoofed-source flood gets no
//! amplification. Allowed client networks are not limited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept at most; past that the table is cleared (a flood of distinct networks then
/// only resets everyone's budget, it cannot grow memory).
const MAX_BUCKETS: usize = 65_536;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send an empty truncated answer instead.
    Slip,
    /// Send nothing.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

/// The limiter. `rate` 0 turns it off.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u32,
    buckets: Mutex<HashMap<u128, Bucket>>,
}

fn network(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) & 0xFFFF_FF00),
        IpAddr::V6(v6) => (u128::from(v6) & !((1u128 << 72) - 1)) | 1,
    }
}

impl RateLimiter {
    /// Allows `rate` responses per second per client network (bursts up to `rate`).
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Decides about one response to `client` at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        if self.rate == 0 {
            return Verdict::Send;
        }
        let rate = f64::from(self.rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.clear();
        }
        let b = buckets.entry(network(client)).or_insert(Bucket {
            tokens: rate,
            last: now,
            limited: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Send;
        }
        b.limited = b.limited.wrapping_add(1);
        if b.limited.is_multiple_of(2) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_per_network_and_refills() {
        let rl = RateLimiter::new(10);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(rl.check(a, t0), Verdict::Send);
        }
        assert_ne!(
            rl.check(same_net, t0),
            Verdict::Send,
            "same /24 shares the bucket"
        );
        assert_eq!(rl.check(other, t0), Verdict::Send);
        let verdicts: Vec<_> = (0..4).map(|_| rl.check(a, t0)).collect();
        assert!(verdicts.contains(&Verdict::Slip) && verdicts.contains(&Verdict::Drop));
        assert_eq!(rl.check(a, t0 + Duration::from_secs(1)), Verdict::Send);
    }

    #[test]
    fn zero_rate_is_off() {
        let rl = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(rl.check("192.0.2.1".parse().unwrap(), t0), Verdict::Send);
        }
    }
}
