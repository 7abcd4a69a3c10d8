//! W3C ClearKey licenses (Encrypted Media Extensions §9.1.3 and §9.1.4):
//! `POST /live/<stream>/license` with `{"kids":["<b64url>",...],"type":"temporary"}`
//! answered `{"keys":[{"kty":"oct","kid":"<b64url>","k":"<b64url>"}],"type":"temporary"}`,
//! after the same token and geo checks as the stream's video (`access::admit`
//! on the path `/live/<stream>/license`). The keys come from the origin
//! (`GET /keys/<stream>/<kid hex>` with the `KEY_FETCH_TOKEN` secret) and are
//! kept per isolate for at most [`KEY_TTL_MS`].
//!
//! ```text
//! body > 8 KiB                                   -> 413
//! not JSON, no kids, a KID not 16 bytes b64url   -> 400
//! more than 16 KIDs                              -> 400
//! type other than "temporary"                    -> 400 (no persistent licenses)
//! none of the KIDs is a key of this stream       -> 404 (revoked keys included)
//! else                                           -> 200 with the keys found
//! ```
//!
//! ClearKey licenses carry no lifetime: what bounds one is the token. The
//! edge answers only while the token is valid (its `exp`), so a player that
//! needs a key after that (a rotation, a reload, a new session) is refused; a
//! key already handed out stays in that player's CDM for that page's life.

use std::collections::HashMap;

/// Largest license request body, bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Most KIDs in one request.
pub const MAX_KIDS: usize = 16;
/// How long an isolate keeps a key from the origin: a revoked key stops
/// being served within this.
pub const KEY_TTL_MS: u64 = 30_000;
/// Most keys an isolate keeps.
pub const MAX_CACHED_KEYS: usize = 4096;

/// A KID or key.
pub type Kid = [u8; 16];

/// Why a request gets no license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    #[error("request body over {MAX_BODY} bytes")]
    TooLarge,
    #[error("malformed license request: {0}")]
    Malformed(&'static str),
    #[error("more than {MAX_KIDS} KIDs")]
    TooManyKids,
    #[error("no key for any requested KID")]
    UnknownKids,
}

impl LicenseError {
    pub fn status(self) -> u16 {
        match self {
            LicenseError::TooLarge => 413,
            LicenseError::Malformed(_) | LicenseError::TooManyKids => 400,
            LicenseError::UnknownKids => 404,
        }
    }

    /// Label for `brook_edge_license_denied_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            LicenseError::TooLarge => "too_large",
            LicenseError::Malformed(_) => "malformed",
            LicenseError::TooManyKids => "too_many_kids",
            LicenseError::UnknownKids => "unknown_kid",
        }
    }
}

#[derive(serde::Deserialize)]
struct Wire {
    kids: Vec<String>,
    #[serde(rename = "type", default)]
    session_type: Option<String>,
}

/// The KIDs a license request asks for, in order, without repeats.
pub fn parse_request(body: &[u8]) -> Result<Vec<Kid>, LicenseError> {
    if body.len() > MAX_BODY {
        return Err(LicenseError::TooLarge);
    }
    let wire: Wire = serde_json::from_slice(body)
        .map_err(|_| LicenseError::Malformed("not a license request"))?;
    match wire.session_type.as_deref() {
        None | Some("temporary") => {}
        Some(_) => return Err(LicenseError::Malformed("only temporary sessions")),
    }
    if wire.kids.is_empty() {
        return Err(LicenseError::Malformed("no kids"));
    }
    if wire.kids.len() > MAX_KIDS {
        return Err(LicenseError::TooManyKids);
    }
    let mut kids: Vec<Kid> = Vec::with_capacity(wire.kids.len());
    for k in &wire.kids {
        let kid = b64url_decode(k)
            .and_then(|b| Kid::try_from(b.as_slice()).ok())
            .ok_or(LicenseError::Malformed(
                "a kid is not 16 bytes of base64url",
            ))?;
        if !kids.contains(&kid) {
            kids.push(kid);
        }
    }
    Ok(kids)
}

/// The license: a JSON Web Key Set of `keys` (KID, key).
pub fn render_license(keys: &[(Kid, Kid)]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, k)| {
            serde_json::json!({ "kty": "oct", "kid": b64url_encode(kid), "k": b64url_encode(k) })
        })
        .collect();
    serde_json::json!({ "keys": keys, "type": "temporary" }).to_string()
}

/// The origin's key path for `stream`/`kid` (`GET`, bearer `KEY_FETCH_TOKEN`);
/// `stream` is a stream's name or `asset/<id>`.
pub fn origin_key_path(stream: &str, kid: &Kid) -> String {
    format!("/keys/{stream}/{}", hex(kid))
}

/// The key in the origin's answer `{"kid":"<hex>","key":"<hex>"}`, when it is
/// the one asked for.
pub fn parse_origin_key(body: &[u8], kid: &Kid) -> Option<Kid> {
    #[derive(serde::Deserialize)]
    struct Answer {
        kid: String,
        key: String,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    if unhex(&a.kid)?.as_slice() != kid {
        return None;
    }
    Kid::try_from(unhex(&a.key)?.as_slice()).ok()
}

/// Keys fetched from the origin, per isolate, for at most [`KEY_TTL_MS`].
#[derive(Default)]
pub struct KeyCache {
    keys: HashMap<(String, Kid), (Kid, u64)>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// The key of `stream`/`kid` when fetched less than [`KEY_TTL_MS`] ago.
    pub fn get(&self, stream: &str, kid: &Kid, now_ms: u64) -> Option<Kid> {
        let (key, at) = self.keys.get(&(stream.to_owned(), *kid))?;
        (now_ms.saturating_sub(*at) < KEY_TTL_MS).then_some(*key)
    }

    pub fn put(&mut self, stream: &str, kid: Kid, key: Kid, now_ms: u64) {
        if self.keys.len() >= MAX_CACHED_KEYS {
            self.keys
                .retain(|_, (_, at)| now_ms.saturating_sub(*at) < KEY_TTL_MS);
            if self.keys.len() >= MAX_CACHED_KEYS {
                self.keys.clear();
            }
        }
        self.keys.insert((stream.to_owned(), kid), (key, now_ms));
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5), as JWK writes it.
pub fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Base64url, padding optional; `None` on any other character or a
/// length no encoding has.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64URL.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero (a canonical encoding).
    (acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: Kid = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];

    #[test]
    fn base64url_round_trips() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (&[0xfb, 0xff][..], "-_8"),
            (&KID[..], "ABEiM0RVZneImaq7zN3u_w"),
        ] {
            assert_eq!(b64url_encode(bytes), text);
            assert_eq!(b64url_decode(text).as_deref(), Some(bytes));
        }
        assert_eq!(b64url_decode("Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(b64url_decode("Zh"), None, "non-zero leftover bits");
        assert_eq!(b64url_decode("Z"), None);
        assert_eq!(b64url_decode("Zm9+"), None, "standard alphabet refused");
    }

    #[test]
    fn requests_table() {
        let kid = b64url_encode(&KID);
        let ok = format!(r#"{{"kids":["{kid}"],"type":"temporary"}}"#);
        assert_eq!(parse_request(ok.as_bytes()), Ok(vec![KID]));
        let twice = format!(r#"{{"kids":["{kid}","{kid}"]}}"#);
        assert_eq!(parse_request(twice.as_bytes()), Ok(vec![KID]));
        let many = format!(
            r#"{{"kids":[{}]}}"#,
            vec![format!("\"{kid}\""); 17].join(",")
        );
        for (body, want) in [
            ("", LicenseError::Malformed("not a license request")),
            ("{", LicenseError::Malformed("not a license request")),
            ("[]", LicenseError::Malformed("not a license request")),
            (r#"{"kids":[]}"#, LicenseError::Malformed("no kids")),
            (
                r#"{"kids":"x"}"#,
                LicenseError::Malformed("not a license request"),
            ),
            (
                r#"{"kids":["AAAA"]}"#,
                LicenseError::Malformed("a kid is not 16 bytes of base64url"),
            ),
            (
                r#"{"kids":["ABEiM0RVZneImaq7zN3u/w"]}"#,
                LicenseError::Malformed("a kid is not 16 bytes of base64url"),
            ),
            (
                &format!(r#"{{"kids":["{kid}"],"type":"persistent-license"}}"#),
                LicenseError::Malformed("only temporary sessions"),
            ),
            (&many, LicenseError::TooManyKids),
        ] {
            assert_eq!(parse_request(body.as_bytes()), Err(want), "{body}");
        }
        let huge = vec![b' '; MAX_BODY + 1];
        assert_eq!(parse_request(&huge), Err(LicenseError::TooLarge));
        assert_eq!(LicenseError::TooLarge.status(), 413);
        assert_eq!(LicenseError::TooManyKids.status(), 400);
        assert_eq!(LicenseError::UnknownKids.status(), 404);
    }

    #[test]
    fn license_is_a_jwk_set() {
        let text = render_license(&[(KID, [7u8; 16])]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "temporary");
        assert_eq!(v["keys"][0]["kty"], "oct");
        assert_eq!(v["keys"][0]["kid"], "ABEiM0RVZneImaq7zN3u_w");
        assert_eq!(v["keys"][0]["k"], b64url_encode(&[7u8; 16]));
    }

    #[test]
    fn origin_answers_and_cache() {
        assert_eq!(
            origin_key_path("cam1", &KID),
            "/keys/cam1/00112233445566778899aabbccddeeff"
        );
        let body = format!(r#"{{"kid":"{}","key":"{}"}}"#, hex(&KID), hex(&[9u8; 16]));
        assert_eq!(parse_origin_key(body.as_bytes(), &KID), Some([9u8; 16]));
        assert_eq!(
            parse_origin_key(body.as_bytes(), &[1u8; 16]),
            None,
            "another KID"
        );
        assert_eq!(parse_origin_key(b"{}", &KID), None);

        let mut c = KeyCache::default();
        c.put("cam1", KID, [9u8; 16], 1000);
        assert_eq!(c.get("cam1", &KID, 1000 + KEY_TTL_MS - 1), Some([9u8; 16]));
        assert_eq!(c.get("cam1", &KID, 1000 + KEY_TTL_MS), None, "expired");
        assert_eq!(c.get("cam2", &KID, 1000), None, "per stream");
        assert!(!format!("{c:?}").contains("09"));
    }
}
