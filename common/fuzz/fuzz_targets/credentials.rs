//! Credentials as every Brook component reads them (the origin's admin API and
//! WHIP, the edge's tokens): no panic; a Bearer token is the trimmed,
//! non-empty rest of the header; a value written percent-encoded into a query
//! or a cookie is read back exactly, `+` included; and the precedence query,
//! then Authorization, then cookie holds.
#![no_main]
use brook_common::credentials::{bearer, cookie_value, find_token, query_value};
use libfuzzer_sys::fuzz_target;

/// Escapes everything but RFC 3986's unreserved characters and `+`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Input: name \n the rest; the rest is tried as each kind of credential.
    let (name, rest) = text.split_once('\n').unwrap_or(("__token__", text));
    if let Some(token) = bearer(rest) {
        assert!(!token.is_empty() && token.trim() == token, "{token:?}");
        assert!(rest.trim().to_ascii_lowercase().starts_with("bearer"));
        assert!(rest.trim_end().ends_with(token));
    }
    let q = query_value(rest, name);
    let c = cookie_value(rest, name);
    let found = find_token(name, Some(rest), Some(rest), Some(rest));
    match (&q, bearer(rest), &c) {
        (Some(q), _, _) => assert_eq!(found.as_ref(), Some(q)),
        (None, Some(b), _) => assert_eq!(found.as_deref(), Some(b)),
        (None, None, c) => assert_eq!(&found, c),
    }
    // A value written the way a client writes it is read back exactly (the
    // first of two; a cookie name is not escaped, so it must be one).
    let query = format!("{}={}&{0}=second&a=1", encode(name), encode(rest));
    assert_eq!(query_value(&query, name).as_deref(), Some(rest));
    if !name.is_empty() && !name.contains(['=', ';']) && name.trim() == name {
        let cookie = format!("{name}={}; {name}=second; a=1", encode(rest));
        assert_eq!(cookie_value(&cookie, name).as_deref(), Some(rest));
    }
});
