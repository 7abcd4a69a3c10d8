//! Every number a chat room enforces, with its default. The Durable Object
//! reads overrides from the `CHAT_CONFIG` Worker var (JSON, or a TOML table in
//! wrangler.toml); unknown keys are refused so a typo cannot silently leave a
//! limit at its default.

use serde::{Deserialize, Serialize};

/// A token bucket's shape: up to `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Bucket size: how many may be sent back to back.
    pub burst: f64,
    /// Refill rate, tokens per second.
    pub per_second: f64,
}

impl Rate {
    pub const fn new(burst: f64, per_second: f64) -> Self {
        Self { burst, per_second }
    }
}

/// What a room allows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest chat text, in characters (Unicode scalar values), after
    /// control characters are removed. Longer texts are refused
    /// (`too_long`), not cut. Default 500.
    pub max_text_chars: usize,
    /// Longest display name, in characters; longer names are cut. Default 32.
    pub max_name_chars: usize,
    /// Largest text frame a client may send, in bytes; larger frames get a
    /// `too_large` error and the socket stays open. Default 4096.
    pub max_frame_bytes: usize,
    /// Frames from this size on close the socket with 1009 (message too
    /// big). Default 65536.
    pub close_frame_bytes: usize,
    /// Messages replayed to a socket when it joins. Default 50.
    pub history_on_join: usize,
    /// Messages kept in the room's storage; the oldest are pruned beyond
    /// this. Default 100000.
    pub history_kept: usize,
    /// Aggregated reaction rows kept in storage (for VOD replay). Default 100000.
    pub reactions_kept: usize,
    /// Most messages one history request returns. Default 500.
    pub history_page: usize,
    /// Chat messages per connection. Default burst 5, 1 per second.
    pub chat_per_conn: Rate,
    /// Chat messages per client address (all its connections). Default burst
    /// 20, 5 per second.
    pub chat_per_ip: Rate,
    /// Reactions per connection. Default burst 10, 5 per second.
    pub reactions_per_conn: Rate,
    /// Reactions per client address. Default burst 50, 25 per second.
    pub reactions_per_ip: Rate,
    /// Every other frame (join, ping, moderation, and frames that fail to
    /// parse) per connection. Default burst 20, 5 per second.
    pub control_per_conn: Rate,
    /// How far ahead of the room's clock a frame's `sent` time may be and
    /// still be charged at it (clock drift since the client read the room's
    /// clock); later ones are charged at the room's clock plus this. Default
    /// 1000 ms.
    pub sent_lead_ms: u64,
    /// Frames in a row dropped for a rate limit or refused as invalid before
    /// the socket is closed with 1008 (policy violation). Default 100.
    pub max_strikes: u32,
    /// Reactions are counted for this long, then sent as one message. Default 500 ms.
    pub reaction_window_ms: u64,
    /// Reaction counts are kept apart per this much program date time, so
    /// they stay in step with the video. Default 1000 ms.
    pub reaction_pdt_ms: u64,
    /// Most (emoji, PDT) counts in one reaction message; reactions beyond
    /// are dropped. Default 64.
    pub reaction_buckets: usize,
    /// Viewer counts are sent at most this often. Default 2000 ms.
    pub presence_interval_ms: u64,
    /// Sockets per room; later upgrades get 503. Default 20000.
    pub max_connections: usize,
    /// Program date times further than this behind the room's clock are
    /// refused (`bad_request`). Default 30 days.
    pub max_pdt_age_ms: u64,
    /// ... and further ahead than this. Default 10 minutes.
    pub max_pdt_lead_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_chars: 500,
            max_name_chars: 32,
            max_frame_bytes: 4096,
            close_frame_bytes: 65536,
            history_on_join: 50,
            history_kept: 100_000,
            reactions_kept: 100_000,
            history_page: 500,
            chat_per_conn: Rate::new(5.0, 1.0),
            chat_per_ip: Rate::new(20.0, 5.0),
            reactions_per_conn: Rate::new(10.0, 5.0),
            reactions_per_ip: Rate::new(50.0, 25.0),
            control_per_conn: Rate::new(20.0, 5.0),
            sent_lead_ms: 1000,
            max_strikes: 100,
            reaction_window_ms: 500,
            reaction_pdt_ms: 1000,
            reaction_buckets: 64,
            presence_interval_ms: 2000,
            max_connections: 20_000,
            max_pdt_age_ms: 30 * 24 * 3600 * 1000,
            max_pdt_lead_ms: 10 * 60 * 1000,
        }
    }
}

impl Limits {
    /// Parses the `CHAT_CONFIG` document (JSON); empty means all defaults.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let limits: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        limits.check()?;
        Ok(limits)
    }

    fn check(&self) -> Result<(), String> {
        let rates = [
            ("chat_per_conn", self.chat_per_conn),
            ("chat_per_ip", self.chat_per_ip),
            ("reactions_per_conn", self.reactions_per_conn),
            ("reactions_per_ip", self.reactions_per_ip),
            ("control_per_conn", self.control_per_conn),
        ];
        for (name, r) in rates {
            if !(r.burst.is_finite() && r.burst >= 1.0 && r.per_second.is_finite())
                || r.per_second <= 0.0
            {
                return Err(format!("{name}: burst >= 1 and per_second > 0 required"));
            }
        }
        if self.max_frame_bytes == 0 || self.close_frame_bytes < self.max_frame_bytes {
            return Err("close_frame_bytes must be >= max_frame_bytes > 0".into());
        }
        if self.reaction_window_ms == 0 || self.reaction_pdt_ms == 0 {
            return Err("reaction_window_ms and reaction_pdt_ms must be > 0".into());
        }
        if self.max_text_chars == 0 || self.max_name_chars == 0 {
            return Err("max_text_chars and max_name_chars must be > 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(Limits::parse("").unwrap(), Limits::default());
        assert_eq!(Limits::parse("{}").unwrap(), Limits::default());
        let l = Limits::parse(
            r#"{"history_on_join": 10, "chat_per_ip": {"burst": 100, "per_second": 50}}"#,
        )
        .unwrap();
        assert_eq!(l.history_on_join, 10);
        assert_eq!(l.chat_per_ip, Rate::new(100.0, 50.0));
        assert_eq!(l.max_text_chars, 500);
        for bad in [
            r#"{"histroy_on_join": 10}"#,
            r#"{"chat_per_ip": {"burst": 0, "per_second": 1}}"#,
            r#"{"chat_per_ip": {"burst": 5, "per_second": 0}}"#,
            r#"{"chat_per_ip": {"burst": 5}}"#,
            r#"{"max_frame_bytes": 100000}"#,
            r#"{"reaction_window_ms": 0}"#,
            "[",
        ] {
            assert!(Limits::parse(bad).is_err(), "{bad}");
        }
    }
}
