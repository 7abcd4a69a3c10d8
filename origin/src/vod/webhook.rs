//! Webhooks: `asset.ready` and `asset.errored`, POSTed as JSON to the
//! configured URL and signed the way Stripe and Mux sign theirs:
//!
//! ```text
//! Brook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! The receiver recomputes the MAC over the timestamp, a `.` and the raw
//! body, compares in constant time and refuses old timestamps (replays).
//! Delivery is a job (`db::JobKind::Webhook`): retried with exponential
//! backoff until the receiver answers 2xx or the attempts run out.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "brook-signature";

/// The signature header's value for `body` sent at `unix_s`.
pub fn sign(secret: &[u8], unix_s: u64, body: &[u8]) -> String {
    format!("t={unix_s},v1={}", hex(&mac(secret, unix_s, body)))
}

fn mac(secret: &[u8], unix_s: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(unix_s.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a signature header as a receiver would (used by the tests and
/// documented in docs/vod.md): the MAC matches and the timestamp is within
/// `tolerance` of `now_s`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_s: u64, tolerance: u64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if t.abs_diff(now_s) > tolerance {
        return false;
    }
    let want = hex(&mac(secret, t, body));
    sigs.iter()
        .any(|s| brook_common::secret::constant_time_eq(s.as_bytes(), want.as_bytes()))
}

/// The event body.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// `asset.ready` or `asset.errored`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Unix milliseconds.
    pub created_ms: u64,
    /// The asset as the API shows it.
    pub data: serde_json::Value,
}

/// Backoff before attempt `n` (1-based) of a failed delivery: 2 s, 4 s, 8 s,
/// ... capped at 10 minutes.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.min(10)).min(600))
}

/// Sends one signed POST; `Err` says why it did not count as delivered.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &str,
    now_s: u64,
) -> Result<(), String> {
    let sig = sign(secret, now_s, body.as_bytes());
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, sig)
        .body(body.to_owned())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "POST {url}: the receiver answered {}",
            resp.status()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        let body = br#"{"type":"asset.ready"}"#;
        let h = sign(b"whsec", 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify(b"whsec", &h, body, 1_700_000_100, 300));
        assert!(!verify(b"whsec", &h, b"{}", 1_700_000_100, 300));
        assert!(!verify(b"other", &h, body, 1_700_000_100, 300));
        assert!(!verify(b"whsec", &h, body, 1_700_001_000, 300));
        assert!(!verify(b"whsec", "v1=00", body, 1_700_000_000, 300));
        assert!(!verify(b"whsec", "", body, 0, 300));
        // A known vector (openssl dgst -sha256 -hmac whsec over "1.{}").
        assert_eq!(
            sign(b"whsec", 1, b"{}"),
            "t=1,v1=6ab13b5991724d5a0c7f02d7989ba3425b580e39d5b9a0a6258a7f5d0419173a"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(600));
    }
}
