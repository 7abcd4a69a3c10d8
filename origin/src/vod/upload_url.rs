//! Direct creator upload URLs, as Mux and Cloudflare Stream offer them: the
//! application's backend, holding the API token, asks the origin for one; the
//! browser then creates **one** tus upload with it (`vod::tus`), without ever
//! holding the API token.
//!
//! A direct upload is a capability, not a database row: a signed token
//! carrying its id, its expiry, the largest file it admits, the longest video
//! it admits (seconds; enforced later by the probe, only carried here) and an
//! optional passthrough string the application gets back on completion.
//!
//! ```text
//! backend:  POST /api/…/direct-uploads   (API token)  ─► signer.issue(&spec, now)
//!                                                      ◄─ {id, url: "/uploads/?direct=<token>", expires}
//! browser:  POST /uploads/?direct=<token>  Tus-Resumable, Upload-Length, Upload-Metadata
//!           tus::TusStore::handle: signer.verify(token, now), then the store
//!           marks the id used (a marker file created with `create_new`, so a
//!           second creation fails, across restarts too)
//! ```
//!
//! Token: `base64url(payload) "." base64url(HMAC-SHA256(key, DOMAIN ‖ payload))`,
//! no padding, where `payload` = version `1` (1 byte) ‖ id (16 bytes) ‖ expiry
//! (unix s, u64 BE) ‖ max size (bytes, u64 BE) ‖ max duration (s, u32 BE, 0 =
//! none) ‖ passthrough (UTF-8, the rest, at most [`MAX_PASSTHROUGH`] bytes).
//! Every character is URL-safe, so it goes in a query string as it is.
//!
//! Refusals ([`TokenError::status`]): a malformed token and a bad signature are
//! both `403` with the same text (no hint of which check failed); an expired
//! one `410 Gone`; one already used `409 Conflict` (not 410, so a client can
//! tell "too late" from "used": the latter usually means a retried creation
//! POST whose first answer was lost, and the browser must ask its backend for
//! a new URL either way).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::constant_time_eq;

/// The query parameter of the creation POST that carries the token
/// (`POST /uploads/?direct=<token>`).
pub const QUERY_PARAM: &str = "direct";
/// The longest passthrough string, in bytes (Mux's limit).
pub const MAX_PASSTHROUGH: usize = 255;
/// The shortest signing key, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Longer tokens are refused before any decoding.
const MAX_TOKEN_LEN: usize = 1024;
const VERSION: u8 = 1;
/// MAC domain separation: a direct upload token is not valid as any other
/// HMAC-signed thing made with the same key, nor the other way round.
const DOMAIN: &[u8] = b"brook/direct-upload/v1\0";
const HEADER_LEN: usize = 1 + 16 + 8 + 8 + 4;
const MAC_LEN: usize = 32;

/// What a direct upload allows: what the token says, once verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectGrant {
    /// The direct upload's id: 16 random bytes, base64url (22 characters).
    pub id: String,
    /// The token is refused from this unix time on, in s.
    pub expires_unix_s: u64,
    /// The largest file the upload may be, in bytes.
    pub max_size: u64,
    /// The longest video it may hold, in s (`None`: no limit). Checked by the
    /// probe after the upload, not here.
    pub max_duration_s: Option<u32>,
    /// Opaque text the application asked to get back with the asset.
    pub passthrough: Option<String>,
}

/// What the backend asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUploadSpec {
    /// How long the URL may be used to start an upload, in s.
    pub ttl_s: u64,
    /// The largest file, in bytes (> 0).
    pub max_size: u64,
    /// The longest video, in s (`None` or `Some(0)`: no limit).
    pub max_duration_s: Option<u32>,
    /// At most [`MAX_PASSTHROUGH`] bytes.
    pub passthrough: Option<String>,
}

/// A new direct upload: its grant and the token carrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUpload {
    pub grant: DirectGrant,
    pub token: String,
}

impl DirectUpload {
    /// The creation URL under `endpoint` (the tus collection as the browser
    /// sees it, e.g. `https://origin.example/uploads/`).
    pub fn url(&self, endpoint: &str) -> String {
        format!("{endpoint}?{QUERY_PARAM}={}", self.token)
    }
}

/// Why a direct upload cannot be issued (the backend's request is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("the signing key is shorter than {MIN_KEY_LEN} bytes")]
    KeyTooShort,
    #[error("max_size must be at least 1 byte")]
    ZeroSize,
    #[error("the passthrough is longer than {MAX_PASSTHROUGH} bytes")]
    PassthroughTooLong,
    #[error("the ttl overflows the clock")]
    TtlTooLong,
    #[error("no randomness for an id")]
    NoRandomness,
    #[error("the id is not 16 bytes in base64url")]
    BadId,
}

/// Why a token does not allow creating an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token at all (bad encoding, lengths, version, text).
    #[error("invalid direct upload token")]
    Malformed,
    /// Well formed, but the MAC does not match: tampered, or another key.
    #[error("invalid direct upload token")]
    BadSignature,
    /// Its expiry has passed.
    #[error("the direct upload URL has expired")]
    Expired,
    /// An upload was already created with it (found by the tus store).
    #[error("the direct upload URL was already used")]
    AlreadyUsed,
}

impl TokenError {
    /// The HTTP answer: 403 (malformed and tampered alike), 410 (expired),
    /// 409 (already used).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed | Self::BadSignature => StatusCode::FORBIDDEN,
            Self::Expired => StatusCode::GONE,
            Self::AlreadyUsed => StatusCode::CONFLICT,
        }
    }
}

/// Issues and verifies direct upload tokens with one HMAC-SHA256 key.
#[derive(Clone)]
pub struct UploadUrlSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for UploadUrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadUrlSigner(..)")
    }
}

impl UploadUrlSigner {
    /// A signer with `key` (at least [`MIN_KEY_LEN`] random bytes; keep it
    /// in the origin's secrets, never in the browser).
    pub fn new(key: &[u8]) -> Result<Self, IssueError> {
        if key.len() < MIN_KEY_LEN {
            return Err(IssueError::KeyTooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| IssueError::KeyTooShort)?;
        Ok(Self { mac })
    }

    /// A new direct upload with a random id, valid for `spec.ttl_s` from
    /// `now_unix_s`.
    pub fn issue(
        &self,
        spec: &DirectUploadSpec,
        now_unix_s: u64,
    ) -> Result<DirectUpload, IssueError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| IssueError::NoRandomness)?;
        let grant = DirectGrant {
            id: URL_SAFE_NO_PAD.encode(id),
            expires_unix_s: now_unix_s
                .checked_add(spec.ttl_s)
                .ok_or(IssueError::TtlTooLong)?,
            max_size: spec.max_size,
            max_duration_s: spec.max_duration_s.filter(|d| *d > 0),
            passthrough: spec.passthrough.clone(),
        };
        let token = self.sign(&grant)?;
        Ok(DirectUpload { grant, token })
    }

    /// The token carrying `grant`.
    pub fn sign(&self, grant: &DirectGrant) -> Result<String, IssueError> {
        if grant.max_size == 0 {
            return Err(IssueError::ZeroSize);
        }
        let passthrough = grant.passthrough.as_deref().unwrap_or("");
        if passthrough.len() > MAX_PASSTHROUGH {
            return Err(IssueError::PassthroughTooLong);
        }
        let id = URL_SAFE_NO_PAD
            .decode(&grant.id)
            .ok()
            .filter(|id| id.len() == 16)
            .ok_or(IssueError::BadId)?;
        let mut payload = Vec::with_capacity(HEADER_LEN + passthrough.len());
        payload.push(VERSION);
        payload.extend_from_slice(&id);
        payload.extend_from_slice(&grant.expires_unix_s.to_be_bytes());
        payload.extend_from_slice(&grant.max_size.to_be_bytes());
        payload.extend_from_slice(&grant.max_duration_s.unwrap_or(0).to_be_bytes());
        payload.extend_from_slice(passthrough.as_bytes());
        let mac = self.mac_of(&payload);
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(mac)
        ))
    }

    /// The grant `token` carries, if it is genuine and not expired at
    /// `now_unix_s`. Whether it was already used is the tus store's check.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<DirectGrant, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, mac) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed)?;
        if mac.len() != MAC_LEN || payload.len() < HEADER_LEN {
            return Err(TokenError::Malformed);
        }
        // The MAC first: nothing from an unsigned payload is looked at.
        if !constant_time_eq(&self.mac_of(&payload), &mac) {
            return Err(TokenError::BadSignature);
        }
        let grant = decode_payload(&payload).ok_or(TokenError::Malformed)?;
        if now_unix_s >= grant.expires_unix_s {
            return Err(TokenError::Expired);
        }
        Ok(grant)
    }

    fn mac_of(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

fn decode_payload(p: &[u8]) -> Option<DirectGrant> {
    let (&version, rest) = p.split_first()?;
    if version != VERSION {
        return None;
    }
    let (id, rest) = rest.split_at_checked(16)?;
    let (expires, rest) = rest.split_at_checked(8)?;
    let (max_size, rest) = rest.split_at_checked(8)?;
    let (max_duration, passthrough) = rest.split_at_checked(4)?;
    let max_size = u64::from_be_bytes(max_size.try_into().ok()?);
    let max_duration = u32::from_be_bytes(max_duration.try_into().ok()?);
    if max_size == 0 || passthrough.len() > MAX_PASSTHROUGH {
        return None;
    }
    let passthrough = std::str::from_utf8(passthrough).ok()?;
    Some(DirectGrant {
        id: URL_SAFE_NO_PAD.encode(id),
        expires_unix_s: u64::from_be_bytes(expires.try_into().ok()?),
        max_size,
        max_duration_s: (max_duration > 0).then_some(max_duration),
        passthrough: (!passthrough.is_empty()).then(|| passthrough.to_owned()),
    })
}

/// The token in a creation request's query string (`direct=<token>`), if any.
pub fn token_from_query(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == QUERY_PARAM)
        .map(|(_, v)| v)
}

/// Whether `id` has the form of a direct upload id (so it can name a file).
pub fn valid_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn spec() -> DirectUploadSpec {
        DirectUploadSpec {
            ttl_s: 3600,
            max_size: 5 << 30,
            max_duration_s: Some(600),
            passthrough: Some("user=42;title=Ünïcode".into()),
        }
    }

    #[test]
    fn issued_tokens_verify_to_their_grant() {
        let s = UploadUrlSigner::new(KEY).unwrap();
        let up = s.issue(&spec(), NOW).unwrap();
        assert!(valid_id(&up.grant.id), "{}", up.grant.id);
        assert_eq!(up.grant.expires_unix_s, NOW + 3600);
        assert!(up
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(s.verify(&up.token, NOW).unwrap(), up.grant);
        assert_eq!(s.verify(&up.token, NOW + 3599).unwrap(), up.grant);
        assert_eq!(
            up.url("/uploads/"),
            format!("/uploads/?direct={}", up.token)
        );
        // No duration limit, no passthrough.
        let bare = DirectUploadSpec {
            max_duration_s: Some(0),
            passthrough: None,
            ..spec()
        };
        let up = s.issue(&bare, NOW).unwrap();
        let g = s.verify(&up.token, NOW).unwrap();
        assert_eq!((g.max_duration_s, g.passthrough), (None, None));
        // Two issues, two ids.
        assert_ne!(s.issue(&spec(), NOW).unwrap().grant.id, g.id);
    }

    #[test]
    fn expired_tokens_are_gone() {
        let s = UploadUrlSigner::new(KEY).unwrap();
        let up = s.issue(&spec(), NOW).unwrap();
        assert_eq!(s.verify(&up.token, NOW + 3600), Err(TokenError::Expired));
        assert_eq!(TokenError::Expired.status(), StatusCode::GONE);
        assert_eq!(TokenError::AlreadyUsed.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn tampered_and_malformed_tokens_are_forbidden() {
        let s = UploadUrlSigner::new(KEY).unwrap();
        let up = s.issue(&spec(), NOW).unwrap();
        let (payload, mac) = up.token.split_once('.').unwrap();
        // A larger max size, signed with nothing.
        let mut raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        raw[1 + 16 + 8] ^= 0x40;
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(s.verify(&forged, NOW), Err(TokenError::BadSignature));
        // A later expiry.
        let mut raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        raw[1 + 16] = 0xff;
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(s.verify(&forged, NOW), Err(TokenError::BadSignature));
        // Another key.
        let other = UploadUrlSigner::new(b"another key, also 32 bytes long!").unwrap();
        assert_eq!(other.verify(&up.token, NOW), Err(TokenError::BadSignature));
        let long = "a".repeat(2000);
        for bad in [
            "",
            ".",
            "abc",
            "abc.def",
            "!!!.???",
            payload,
            &format!("{payload}."),
            &format!(".{mac}"),
            &format!("{payload}.{mac}.x"),
            &format!("{payload}.{}", &mac[..mac.len() - 2]),
            &format!("{}.{mac}", &payload[..10]),
            long.as_str(),
        ] {
            let e = s.verify(bad, NOW).unwrap_err();
            assert!(
                matches!(e, TokenError::Malformed | TokenError::BadSignature),
                "{bad}: {e:?}"
            );
            assert_eq!(e.status(), StatusCode::FORBIDDEN);
        }
        // Signed but not a version-1 payload: malformed, never a panic.
        let mut raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        raw[0] = 2;
        let mac = s.mac_of(&raw);
        let odd = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&raw),
            URL_SAFE_NO_PAD.encode(mac)
        );
        assert_eq!(s.verify(&odd, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn bad_specs_and_keys_are_refused() {
        assert_eq!(
            UploadUrlSigner::new(b"short").unwrap_err(),
            IssueError::KeyTooShort
        );
        let s = UploadUrlSigner::new(KEY).unwrap();
        let zero = DirectUploadSpec {
            max_size: 0,
            ..spec()
        };
        assert_eq!(s.issue(&zero, NOW), Err(IssueError::ZeroSize));
        let long = DirectUploadSpec {
            passthrough: Some("x".repeat(MAX_PASSTHROUGH + 1)),
            ..spec()
        };
        assert_eq!(s.issue(&long, NOW), Err(IssueError::PassthroughTooLong));
        let forever = DirectUploadSpec {
            ttl_s: u64::MAX,
            ..spec()
        };
        assert_eq!(s.issue(&forever, NOW), Err(IssueError::TtlTooLong));
    }

    #[test]
    fn the_token_is_found_in_the_query() {
        for (q, t) in [
            ("direct=abc.def", Some("abc.def")),
            ("x=1&direct=abc&y", Some("abc")),
            ("directx=abc", None),
            ("", None),
            ("direct", None),
        ] {
            assert_eq!(token_from_query(q), t, "{q}");
        }
    }
}
