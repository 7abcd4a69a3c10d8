//! Percent-decoding (RFC 3986 2.1), in the two flavours Brook needs: strict
//! for paths (a bad escape or a result that is not UTF-8 is an error) and
//! lenient for credentials (whatever comes out is compared, and a damaged
//! token simply fails its check).
//!
//! Neither treats `+` as a space: that is a form-encoding rule for query
//! strings (`application/x-www-form-urlencoded`), and Brook reads tokens the
//! same way from a query string and from a cookie, where `+` is a `+`.

use std::borrow::Cow;

/// Why a strict decode failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits, at this byte offset.
    BadEscape(usize),
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Decodes `%XX` escapes; anything else is an error ([`DecodeError`]).
pub fn decode_strict(s: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let v = escape_at(bytes, i).ok_or(DecodeError::BadEscape(i))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::NotUtf8)
}

/// Decodes `%XX` escapes; a `%` without two hex digits stays as it is, and
/// bytes that do not form UTF-8 become U+FFFD.
pub fn decode_lossy(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match escape_at(bytes, i) {
            Some(v) if b == b'%' => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The byte of the escape `%XX` starting at `at`, if it is one.
fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    let hi = hex(*bytes.get(at + 1)?)?;
    let lo = hex(*bytes.get(at + 2)?)?;
    Some(hi << 4 | lo)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_lossy() {
        let cases: [(&str, Result<&str, DecodeError>, &str); 9] = [
            ("plain", Ok("plain"), "plain"),
            ("a%2Fb", Ok("a/b"), "a/b"),
            ("a%2fb", Ok("a/b"), "a/b"),
            ("a+b", Ok("a+b"), "a+b"),
            ("%C3%A9", Ok("é"), "é"),
            ("100%", Err(DecodeError::BadEscape(3)), "100%"),
            ("%zz%41", Err(DecodeError::BadEscape(0)), "%zzA"),
            ("%4", Err(DecodeError::BadEscape(0)), "%4"),
            ("%FF", Err(DecodeError::NotUtf8), "\u{FFFD}"),
        ];
        for (input, strict, lossy) in cases {
            assert_eq!(
                decode_strict(input).as_deref().map_err(|e| *e),
                strict,
                "{input:?}"
            );
            assert_eq!(decode_lossy(input), lossy, "{input:?}");
        }
    }
}
