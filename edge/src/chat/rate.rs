//! Token buckets on caller-supplied time (milliseconds), one per connection
//! and one per client address for each kind of frame.
//!
//! The buckets live in the Durable Object's memory, not in storage: an object
//! is only evicted after about ten seconds without events, by which time
//! every bucket has refilled anyway, so losing them costs nothing.

use std::collections::HashMap;

use super::limits::Rate;

/// One bucket. Starts full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    at: u64,
}

impl TokenBucket {
    pub fn full(rate: Rate, now: u64) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: u64) {
        // A clock that goes backwards refills nothing (and never panics).
        let elapsed = now.saturating_sub(self.at) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = self.at.max(now);
    }

    /// Tokens available at `now`.
    pub fn available(&mut self, rate: Rate, now: u64) -> f64 {
        self.refill(rate, now);
        self.tokens
    }

    /// Milliseconds until one token is available (0: now).
    pub fn wait_ms(&mut self, rate: Rate, now: u64) -> u64 {
        let missing = 1.0 - self.available(rate, now);
        if missing <= 0.0 {
            0
        } else {
            (missing / rate.per_second * 1000.0).ceil() as u64
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// Whether the bucket is back to full (and may be forgotten).
    pub fn is_full(&mut self, rate: Rate, now: u64) -> bool {
        self.available(rate, now) >= rate.burst
    }
}

/// Takes one token from each of `buckets` if every one has a token, else
/// none, and says how long until all of them would have one. So a frame
/// refused by the connection's bucket never drains the address's.
pub fn take_all(buckets: &mut [(&mut TokenBucket, Rate)], now: u64) -> Result<(), u64> {
    let wait = buckets
        .iter_mut()
        .map(|(b, rate)| b.wait_ms(*rate, now))
        .max()
        .unwrap_or(0);
    if wait > 0 {
        return Err(wait);
    }
    for (b, _) in buckets.iter_mut() {
        b.take();
    }
    Ok(())
}

/// Buckets by key (connection id or client address), created full on first
/// use. Full buckets are dropped by [`Buckets::sweep`], so the map holds only
/// keys that sent something recently.
#[derive(Debug, Default)]
pub struct Buckets {
    map: HashMap<String, TokenBucket>,
}

impl Buckets {
    pub fn get(&mut self, key: &str, rate: Rate, now: u64) -> &mut TokenBucket {
        if !self.map.contains_key(key) {
            self.map
                .insert(key.to_owned(), TokenBucket::full(rate, now));
        }
        // Inserted just above when missing.
        self.map
            .get_mut(key)
            .unwrap_or_else(|| unreachable!("bucket inserted above"))
    }

    pub fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// Forgets every bucket that is full again.
    pub fn sweep(&mut self, rate: Rate, now: u64) {
        self.map.retain(|_, b| !b.is_full(rate, now));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Rate = Rate::new(3.0, 2.0);

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::full(R, 1000);
        for _ in 0..3 {
            assert_eq!(take_all(&mut [(&mut b, R)], 1000), Ok(()));
        }
        // Empty: one token takes 500 ms at 2/s.
        assert_eq!(take_all(&mut [(&mut b, R)], 1000), Err(500));
        assert_eq!(take_all(&mut [(&mut b, R)], 1250), Err(250));
        assert_eq!(take_all(&mut [(&mut b, R)], 1500), Ok(()));
        // A long pause refills to the burst, not beyond.
        assert!(b.is_full(R, 100_000));
        assert_eq!(b.available(R, 100_000), 3.0);
    }

    #[test]
    fn sustained_rate_is_the_refill_rate() {
        // Simulated: a client sending every 10 ms for 10 s gets burst + rate x 10 s through.
        let mut b = TokenBucket::full(R, 0);
        let sent = (0..1000)
            .filter(|i| take_all(&mut [(&mut b, R)], i * 10).is_ok())
            .count();
        assert_eq!(sent, 3 + 20 - 1, "burst + 2/s over 9.99 s");
    }

    #[test]
    fn clock_going_backwards() {
        let mut b = TokenBucket::full(R, 5000);
        for _ in 0..3 {
            take_all(&mut [(&mut b, R)], 5000).unwrap();
        }
        assert!(take_all(&mut [(&mut b, R)], 1000).is_err());
        assert!(take_all(&mut [(&mut b, R)], 5000).is_err());
        assert!(take_all(&mut [(&mut b, R)], 5500).is_ok());
    }

    #[test]
    fn all_or_nothing() {
        let conn_rate = Rate::new(1.0, 1.0);
        let ip_rate = Rate::new(5.0, 1.0);
        let mut conn = TokenBucket::full(conn_rate, 0);
        let mut ip = TokenBucket::full(ip_rate, 0);
        assert!(take_all(&mut [(&mut conn, conn_rate), (&mut ip, ip_rate)], 0).is_ok());
        // The connection is empty: the address keeps its tokens.
        assert_eq!(
            take_all(&mut [(&mut conn, conn_rate), (&mut ip, ip_rate)], 0),
            Err(1000)
        );
        assert_eq!(ip.available(ip_rate, 0), 4.0);
    }

    #[test]
    fn sweep_forgets_full_buckets() {
        let mut m = Buckets::default();
        take_all(&mut [(m.get("a", R, 0), R)], 0).unwrap();
        m.get("b", R, 0);
        m.sweep(R, 0);
        assert_eq!(m.len(), 1, "b is full, a is not");
        m.sweep(R, 10_000);
        assert!(m.is_empty());
    }
}
