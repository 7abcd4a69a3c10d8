//! Viewer tokens in the Akamai EdgeAuth 2.0 ("Auth Token 2.0") layout, so
//! existing token generators work unchanged:
//!
//! ```text
//! [ip=<addr>~][st=<unix>~]exp=<unix>~acl=<pattern>[!<pattern>...][~id=<session>][~data=<claims>][~kid=<key id>]~hmac=<hex>
//! ```
//!
//! `hmac` is HMAC-SHA256, keyed with the hex-decoded secret, over everything
//! before `~hmac=`. `kid` is Brook's one addition (covered by the MAC): it
//! names the key, so several keys can be valid at once and rotate without
//! downtime. A token without `kid` (as EdgeAuth libraries make them) is
//! checked against every configured key. Only ACL tokens exist here (EdgeAuth
//! URL tokens and salts are not supported): one token opens a whole stream,
//! `acl=/live/cam1/*`. See docs/tokens.md.

use std::fmt::Write;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::query::decode_percent;
use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// Query parameter and cookie name that carry a token (EdgeAuth's default).
pub const TOKEN_NAME: &str = "__token__";

/// Longest token accepted; anything longer is malformed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Shortest secret accepted, in bytes (hex-decoded).
pub const MIN_KEY_BYTES: usize = 16;

/// One signing key: an id and the secret bytes.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Key {
    /// A key from its id and hex-encoded secret (EdgeAuth keys are hex).
    pub fn from_hex(id: &str, hex: &str) -> Result<Self, Error> {
        if !is_key_id(id) {
            return Err(Error::InvalidKeys(format!(
                "key id {id:?}: use 1-64 of A-Z a-z 0-9 . _ -"
            )));
        }
        let secret = decode_hex(hex.trim())
            .ok_or_else(|| Error::InvalidKeys(format!("key {id:?}: secret is not hex")))?;
        if secret.len() < MIN_KEY_BYTES {
            return Err(Error::InvalidKeys(format!(
                "key {id:?}: secret shorter than {MIN_KEY_BYTES} bytes"
            )));
        }
        Ok(Self {
            id: id.to_owned(),
            secret,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// A MAC of `message` under this key, for values the edge writes and
    /// later reads back (an ad break's asset list URI): the first 16 bytes
    /// of HMAC-SHA256, hex. Domain-separated from tokens by the caller's
    /// `message` prefix.
    pub fn tag(&self, message: &str) -> String {
        let mut mac = self.mac();
        mac.update(message.as_bytes());
        let mut out = String::with_capacity(32);
        for b in &mac.finalize().into_bytes()[..16] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// The keys tokens may be signed with, all valid at once.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses the `TOKEN_KEYS` secret: `id:hexsecret` entries separated by
    /// commas or whitespace, e.g. `2026a:8f1e...,2026b:0c47...`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let mut keys: Vec<Key> = Vec::new();
        for entry in value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let (id, hex) = entry
                .split_once(':')
                .ok_or_else(|| Error::InvalidKeys("entries are `id:hexsecret`".into()))?;
            let key = Key::from_hex(id, hex)?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(Error::InvalidKeys(format!("key id {id:?} appears twice")));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    pub fn new(keys: Vec<Key>) -> Self {
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The key new values are signed with (the first).
    pub fn current(&self) -> Option<&Key> {
        self.keys.first()
    }

    /// Whether `tag` is [`Key::tag`] of `message` under one of the keys
    /// (compared in constant time).
    pub fn check_tag(&self, message: &str, tag: &str) -> bool {
        self.keys.iter().fold(false, |ok, k| {
            ok | brook_common::secret::constant_time_eq(k.tag(message).as_bytes(), tag.as_bytes())
        })
    }
}

/// What a token grants, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// `exp`: the token is valid before this Unix time (seconds).
    pub expires: u64,
    /// `st`: the token is valid from this Unix time on.
    pub start: Option<u64>,
    /// `acl`: path patterns; `*` matches any run of characters, `/` included.
    pub acl: Vec<String>,
    /// `ip`: the only client address the token is valid for.
    pub ip: Option<String>,
    /// `id`: an opaque viewer session id (logged, carried in child URIs).
    pub session_id: Option<String>,
    /// `data`: opaque payload; Brook reads entitlement claims from it
    /// (see [`Entitlements`]).
    pub data: Option<String>,
    /// `kid`: the key the token is signed with.
    pub key_id: Option<String>,
}

impl Grant {
    /// The entitlements in `data`.
    pub fn entitlements(&self) -> Entitlements {
        self.data
            .as_deref()
            .map(Entitlements::parse)
            .unwrap_or_default()
    }
}

/// Claims Brook reads from a token's `data` field: `name:value` pairs
/// separated by `,` (percent-encoded or not), unknown names ignored.
///
/// ```text
/// data=maxh:720,maxbw:3000000
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entitlements {
    /// `maxh`: highest video resolution height (pixels) the viewer may get.
    pub max_height: Option<u32>,
    /// `maxbw`: highest variant `BANDWIDTH` (bits/s) the viewer may get.
    pub max_bandwidth: Option<u64>,
}

impl Entitlements {
    pub fn parse(data: &str) -> Self {
        let data = decode_percent(data);
        let mut out = Self::default();
        for claim in data.split(',') {
            let Some((name, value)) = claim.split_once(':') else {
                continue;
            };
            match name.trim() {
                "maxh" => out.max_height = value.trim().parse().ok(),
                "maxbw" => out.max_bandwidth = value.trim().parse().ok(),
                _ => {}
            }
        }
        out
    }

    /// The `data` rendering of these claims (`None` when there are none).
    pub fn to_data(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(h) = self.max_height {
            parts.push(format!("maxh:{h}"));
        }
        if let Some(bw) = self.max_bandwidth {
            parts.push(format!("maxbw:{bw}"));
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// Signs `grant` with `key`: the token string, fields in EdgeAuth order. If
/// `grant.key_id` is set it must be `key`'s id (it is written as `kid`).
///
/// A `~` inside a field (the field separator), or a `!` inside an ACL entry
/// (the entry separator), is written `%7E` / `%21`: a value can never add a
/// field or an entry of its own (say, an `id` carrying `~data=...`).
pub fn sign(grant: &Grant, key: &Key) -> String {
    fn clean(v: &str) -> std::borrow::Cow<'_, str> {
        if v.contains('~') {
            v.replace('~', "%7E").into()
        } else {
            v.into()
        }
    }
    let mut t = String::with_capacity(160);
    if let Some(ip) = &grant.ip {
        let _ = write!(t, "ip={}~", clean(ip));
    }
    if let Some(st) = grant.start {
        let _ = write!(t, "st={st}~");
    }
    let acl: Vec<String> = grant
        .acl
        .iter()
        .map(|a| clean(a).replace('!', "%21"))
        .collect();
    let _ = write!(t, "exp={}~acl={}", grant.expires, acl.join("!"));
    if let Some(id) = &grant.session_id {
        let _ = write!(t, "~id={}", clean(id));
    }
    if let Some(data) = &grant.data {
        let _ = write!(t, "~data={}", clean(data));
    }
    if let Some(kid) = &grant.key_id {
        let _ = write!(t, "~kid={}", clean(kid));
    }
    let mut mac = key.mac();
    mac.update(t.as_bytes());
    t.push_str("~hmac=");
    for b in mac.finalize().into_bytes() {
        let _ = write!(t, "{b:02x}");
    }
    t
}

/// Why a token was refused. Never shown to the viewer (who gets a bare
/// 403); it goes to logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not in the token layout: unknown or repeated field, bad number or hex,
    /// missing `exp`/`acl`/`hmac`, too long.
    Malformed,
    /// `kid` names no configured key (or no keys are configured).
    UnknownKey,
    /// The MAC does not match (tampered, or signed with a key not configured).
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `st` is still in the future.
    NotYetValid,
    /// No `acl` pattern matches the requested path.
    PathNotAllowed,
    /// `ip` is not the client's address.
    IpMismatch,
}

impl Reject {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::UnknownKey => "unknown_key",
            Reject::BadSignature => "bad_signature",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::PathNotAllowed => "path_not_allowed",
            Reject::IpMismatch => "ip_mismatch",
        }
    }

    pub const ALL: [Reject; 7] = [
        Reject::Malformed,
        Reject::UnknownKey,
        Reject::BadSignature,
        Reject::Expired,
        Reject::NotYetValid,
        Reject::PathNotAllowed,
        Reject::IpMismatch,
    ];
}

/// The request a token is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Unix time, seconds.
    pub now: u64,
    /// The URL path as requested (percent-encoded, dot segments resolved).
    pub path: &'a str,
    /// The client's address (`CF-Connecting-IP`), if known.
    pub client_ip: Option<&'a str>,
}

/// Checks `token` for `req`. Once the token parses, every check runs (the MAC
/// compare in constant time) before the first failure in a fixed order is
/// reported, so the time taken does not tell which one failed.
pub fn verify(token: &str, keys: &KeySet, req: &Request<'_>) -> Result<Grant, Reject> {
    let (signed, mac_hex, grant) = parse(token).ok_or(Reject::Malformed)?;
    let given = decode_hex(mac_hex)
        .filter(|m| m.len() == 32)
        .ok_or(Reject::Malformed)?;

    let (key_known, mac_ok) = match &grant.key_id {
        Some(kid) => match keys.get(kid) {
            Some(key) => (true, mac_matches(key, signed, &given)),
            None => (false, false),
        },
        // No key id: any configured key may have signed it. Every key is
        // tried, without stopping at the first match.
        None => (
            !keys.is_empty(),
            keys.keys
                .iter()
                .fold(false, |ok, key| ok | mac_matches(key, signed, &given)),
        ),
    };
    let started = grant.start.is_none_or(|st| req.now >= st);
    let not_expired = req.now < grant.expires;
    let path_ok = grant
        .acl
        .iter()
        .fold(false, |ok, pattern| ok | acl_matches(pattern, req.path));
    let ip_ok = match &grant.ip {
        None => true,
        Some(ip) => req.client_ip.is_some_and(|client| same_ip(ip, client)),
    };

    let checks = [
        (key_known, Reject::UnknownKey),
        (mac_ok, Reject::BadSignature),
        (not_expired, Reject::Expired),
        (started, Reject::NotYetValid),
        (path_ok, Reject::PathNotAllowed),
        (ip_ok, Reject::IpMismatch),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, reject)) => Err(*reject),
        None => Ok(grant),
    }
}

fn mac_matches(key: &Key, signed: &str, given: &[u8]) -> bool {
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(given).is_ok()
}

/// Splits a token into the signed text, the MAC's hex and the fields.
fn parse(token: &str) -> Option<(&str, &str, Grant)> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let at = token.rfind("~hmac=")?;
    let (signed, mac) = (&token[..at], &token[at + "~hmac=".len()..]);
    let mut grant = Grant::default();
    let (mut exp, mut acl) = (None, None);
    let mut seen: Vec<&str> = Vec::with_capacity(8);
    for field in signed.split('~') {
        let (name, value) = field.split_once('=')?;
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        match name {
            "ip" => grant.ip = Some(nonempty(value)?.to_owned()),
            "st" => grant.start = Some(number(value)?),
            "exp" => exp = Some(number(value)?),
            "acl" => {
                acl = Some(
                    nonempty(value)?
                        .split('!')
                        .map(|p| decode_percent(p).into_owned())
                        .collect(),
                )
            }
            "id" => grant.session_id = Some(value.to_owned()),
            "data" => grant.data = Some(value.to_owned()),
            "kid" if is_key_id(value) => grant.key_id = Some(value.to_owned()),
            _ => return None,
        }
    }
    grant.expires = exp?;
    grant.acl = acl?;
    Some((signed, mac, grant))
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn same_ip(token_ip: &str, client: &str) -> bool {
    let token_ip = decode_percent(token_ip);
    match (token_ip.parse::<IpAddr>(), client.trim().parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => canonical(a) == canonical(b),
        _ => false,
    }
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// EdgeAuth ACL matching: `*` matches any run of characters (including `/`
/// and the empty run); everything else matches itself.
pub fn acl_matches(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            backtrack = Some((pi, si));
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((bp, bs)) = backtrack {
            pi = bp;
            si = bs + 1;
            backtrack = Some((bp, bs + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi << 4 | lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "00112233445566778899aabbccddeeff";
    const HEX_B: &str = "ffeeddccbbaa99887766554433221100";

    fn keys() -> KeySet {
        KeySet::parse(&format!("a:{HEX_A}, b:{HEX_B}")).unwrap()
    }

    fn grant(kid: Option<&str>) -> Grant {
        Grant {
            expires: 2000,
            start: Some(1000),
            acl: vec!["/live/cam1/*".into()],
            ip: Some("203.0.113.7".into()),
            session_id: Some("viewer-42".into()),
            data: Some("maxh:720".into()),
            key_id: kid.map(Into::into),
        }
    }

    fn req<'a>(now: u64, path: &'a str, ip: Option<&'a str>) -> Request<'a> {
        Request {
            now,
            path,
            client_ip: ip,
        }
    }

    const OK_PATH: &str = "/live/cam1/abc/part3.1.m4s";
    const IP: Option<&str> = Some("203.0.113.7");

    #[test]
    fn a_value_cannot_add_fields_or_acl_entries() {
        let k = keys();
        let key = k.get("a").unwrap();
        let mut g = Grant {
            session_id: Some("x~data=ad:ffff.0".into()),
            data: None,
            ip: None,
            start: None,
            acl: vec!["/vod/a/*".into()],
            ..grant(Some("a"))
        };
        let t = sign(&g, key);
        let got = verify(&t, &k, &req(1500, "/vod/a/x", None)).unwrap();
        assert_eq!(got.data, None, "{t}");
        assert_eq!(got.session_id.as_deref(), Some("x%7Edata=ad:ffff.0"));
        // An ACL entry with a `!` stays one entry: it does not open /live/*.
        g.acl = vec!["/vod/a/*!/live/*".into()];
        let t = sign(&g, key);
        assert_eq!(
            verify(&t, &k, &req(1500, OK_PATH, None)),
            Err(Reject::PathNotAllowed)
        );
    }

    #[test]
    fn tags_check_under_any_key() {
        let k = keys();
        let tag = k.get("b").unwrap().tag("ads|cam1|b1");
        assert_eq!(tag.len(), 32);
        assert!(k.check_tag("ads|cam1|b1", &tag));
        assert!(!k.check_tag("ads|cam1|b2", &tag));
        assert!(!k.check_tag("ads|cam1|b1", &tag[..31]));
        assert!(!KeySet::default().check_tag("ads|cam1|b1", &tag));
        assert_eq!(k.current().unwrap().id(), "a");
    }

    #[test]
    fn matches_edgeauth_reference_output() {
        // EdgeAuth-Token-Node's `generateACLToken` layout (ip, st, exp, acl,
        // id, data, hmac), its MAC computed independently with node's crypto:
        // createHmac('sha256', Buffer.from(HEX_A, 'hex')).update(<fields>).
        let key = Key::from_hex("a", HEX_A).unwrap();
        let t = sign(&grant(None), &key);
        assert_eq!(
            t,
            "ip=203.0.113.7~st=1000~exp=2000~acl=/live/cam1/*~id=viewer-42~data=maxh:720\
             ~hmac=e3f5a6698a3b84698bebceb617e1bd61226a1b54b0477ed109db0144c1a2383e"
        );
        assert!(verify(&t, &keys(), &req(1500, OK_PATH, IP)).is_ok());
    }

    #[test]
    fn valid_tokens_verify() {
        let ks = keys();
        for kid in [None, Some("a"), Some("b")] {
            let key = ks.get(kid.unwrap_or("a")).unwrap();
            let t = sign(&grant(kid), key);
            let g = verify(&t, &ks, &req(1500, OK_PATH, IP)).unwrap();
            assert_eq!(g, grant(kid));
            assert_eq!(g.entitlements().max_height, Some(720));
        }
    }

    #[test]
    fn each_check_fails_alone() {
        let ks = keys();
        let key_a = ks.get("a").unwrap();
        let t = sign(&grant(Some("a")), key_a);
        let cases: Vec<(String, Request<'_>, Reject)> = vec![
            (t.clone(), req(2000, OK_PATH, IP), Reject::Expired),
            (t.clone(), req(999, OK_PATH, IP), Reject::NotYetValid),
            (
                t.clone(),
                req(1500, "/live/cam2/abc/seg1.m4s", IP),
                Reject::PathNotAllowed,
            ),
            (
                t.clone(),
                req(1500, OK_PATH, Some("203.0.113.8")),
                Reject::IpMismatch,
            ),
            (t.clone(), req(1500, OK_PATH, None), Reject::IpMismatch),
            (
                t.replace("exp=2000", "exp=2999"),
                req(1500, OK_PATH, IP),
                Reject::BadSignature,
            ),
            (
                t.replace("acl=/live/cam1/*", "acl=/live/*"),
                req(1500, OK_PATH, IP),
                Reject::BadSignature,
            ),
            (
                sign(&grant(Some("zz")), key_a),
                req(1500, OK_PATH, IP),
                Reject::UnknownKey,
            ),
            (
                // Signed with b's secret but claiming to be key a.
                sign(&grant(Some("a")), ks.get("b").unwrap()),
                req(1500, OK_PATH, IP),
                Reject::BadSignature,
            ),
        ];
        for (token, r, want) in cases {
            assert_eq!(verify(&token, &ks, &r), Err(want), "{token} {r:?}");
        }
    }

    #[test]
    fn rotated_out_keys_stop_working() {
        let old = KeySet::parse(&format!("old:{HEX_A}")).unwrap();
        let both = KeySet::parse(&format!("old:{HEX_A},new:{HEX_B}")).unwrap();
        let new = KeySet::parse(&format!("new:{HEX_B}")).unwrap();
        let by_old = sign(&grant(Some("old")), old.get("old").unwrap());
        let by_new = sign(&grant(Some("new")), both.get("new").unwrap());
        let r = req(1500, OK_PATH, IP);
        assert!(verify(&by_old, &both, &r).is_ok());
        assert!(verify(&by_new, &both, &r).is_ok());
        assert_eq!(verify(&by_old, &new, &r), Err(Reject::UnknownKey));
        assert!(verify(&by_new, &new, &r).is_ok());
        // Without a kid, a token from a removed key no longer verifies.
        let anon = sign(&grant(None), old.get("old").unwrap());
        assert!(verify(&anon, &both, &r).is_ok());
        assert_eq!(verify(&anon, &new, &r), Err(Reject::BadSignature));
        assert_eq!(
            verify(&anon, &KeySet::default(), &r),
            Err(Reject::UnknownKey)
        );
    }

    #[test]
    fn malformed_tokens() {
        let ks = keys();
        let good = sign(&grant(Some("a")), ks.get("a").unwrap());
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let bad = [
            "",
            "garbage",
            "exp=2000~acl=/x",
            "exp=2000~hmac=00",
            "acl=/x~hmac=00",
            "exp=abc~acl=/x~hmac=00",
            "exp=-1~acl=/x~hmac=00",
            "exp=2000~exp=2000~acl=/x~hmac=00",
            "exp=2000~acl=/x~foo=1~hmac=00",
            "exp=2000~acl=~hmac=00",
            "exp=2000~acl=/x~kid=a b~hmac=00",
            "exp=2000~acl=/x~hmac=zz",
            "exp=2000~acl=/x~hmac=0011",
            long.as_str(),
        ];
        for t in bad {
            assert_eq!(
                verify(t, &ks, &req(1500, OK_PATH, IP)),
                Err(Reject::Malformed),
                "{t}"
            );
        }
        let truncated = &good[..good.len() - 2];
        assert_eq!(
            verify(truncated, &ks, &req(1500, OK_PATH, IP)),
            Err(Reject::Malformed)
        );
        let upper = good.to_uppercase().replace("HMAC=", "hmac=");
        assert!(verify(&upper, &ks, &req(1500, OK_PATH, IP)).is_err());
    }

    #[test]
    fn acl_patterns() {
        let cases = [
            ("/live/cam1/*", "/live/cam1/index.m3u8", true),
            ("/live/cam1/*", "/live/cam1/S/seg1.m4s", true),
            ("/live/cam1/*", "/live/cam1", false),
            ("/live/cam1/*", "/live/cam10/x", false),
            ("/live/cam1*", "/live/cam10/x", true),
            ("/live/*/index.m3u8", "/live/cam1/index.m3u8", true),
            ("/live/*/index.m3u8", "/live/cam1/S/media.m3u8", false),
            ("*", "/anything", true),
            ("/a*b*c", "/aXbYbZc", true),
            ("/a*b*c", "/aXbYbZ", false),
            ("/exact", "/exact", true),
            ("/exact", "/exact/", false),
            ("", "", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(acl_matches(p, s), want, "{p} vs {s}");
        }
        // Several patterns with `!`, and escape-early (percent-encoded) ACLs.
        let ks = keys();
        let mut g = grant(None);
        g.ip = None;
        g.acl = vec!["/live/cam9/*".into(), "%2flive%2fcam1%2f%2a".into()];
        let t = sign(&g, ks.get("a").unwrap());
        assert!(t.contains("acl=/live/cam9/*!%2flive%2fcam1%2f%2a~"));
        assert!(verify(&t, &ks, &req(1500, OK_PATH, None)).is_ok());
    }

    #[test]
    fn ip_forms() {
        assert!(same_ip("203.0.113.7", "203.0.113.7"));
        assert!(same_ip("2001:db8::1", "2001:DB8:0:0::1"));
        assert!(same_ip("203.0.113.7", "::ffff:203.0.113.7"));
        assert!(same_ip("2001%3adb8%3a%3a1", "2001:db8::1"));
        assert!(!same_ip("203.0.113.7", "203.0.113.70"));
        assert!(!same_ip("not-an-ip", "not-an-ip"));
    }

    #[test]
    fn key_sets() {
        assert!(KeySet::parse("").unwrap().is_empty());
        let ks = KeySet::parse(&format!(" a:{HEX_A}\n\nb:{HEX_B} ")).unwrap();
        assert_eq!(ks.ids().collect::<Vec<_>>(), ["a", "b"]);
        for bad in [
            format!("a{HEX_A}"),
            format!("a:{HEX_A},a:{HEX_B}"),
            "a:0011".to_string(),
            "a:xyz".to_string(),
            format!("a b:{HEX_A}"),
            format!(":{HEX_A}"),
        ] {
            assert!(KeySet::parse(&bad).is_err(), "{bad}");
        }
        let dbg = format!("{:?}", KeySet::parse(&format!("a:{HEX_A}")).unwrap());
        assert!(!dbg.contains(HEX_A) && dbg.contains("redacted"));
    }

    #[test]
    fn entitlements() {
        let cases = [
            ("maxh:720", Some(720), None),
            ("maxh:480,maxbw:1500000", Some(480), Some(1_500_000)),
            ("maxh%3a360%2cx:1", Some(360), None),
            ("other:1,maxh:x", None, None),
            ("", None, None),
        ];
        for (data, h, bw) in cases {
            let e = Entitlements::parse(data);
            assert_eq!((e.max_height, e.max_bandwidth), (h, bw), "{data}");
        }
        let e = Entitlements {
            max_height: Some(720),
            max_bandwidth: Some(5),
        };
        assert_eq!(e.to_data().as_deref(), Some("maxh:720,maxbw:5"));
        assert_eq!(Entitlements::parse(&e.to_data().unwrap()), e);
        assert_eq!(Entitlements::default().to_data(), None);
    }
}
