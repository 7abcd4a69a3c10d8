//! Attribute lists (RFC 8216bis §4.2): `NAME=VALUE,NAME="quoted"`.
//!
//! Values keep their written form (quoted or not, the exact digits), so a tag this
//! crate does not model still renders back exactly as it came.

use std::fmt::{self, Write};

use super::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// A quoted-string, without its quotes.
    Quoted(String),
    /// Anything unquoted: integers, floats, hex, enumerated strings, resolutions.
    Bare(String),
}

impl AttrValue {
    pub fn as_str(&self) -> &str {
        match self {
            AttrValue::Quoted(s) | AttrValue::Bare(s) => s,
        }
    }
}

/// An ordered attribute list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttributeList(pub Vec<(String, AttrValue)>);

impl AttributeList {
    /// Appends `NAME="value"` (the caller keeps `"`, CR and LF out of `value`).
    pub fn push_quoted(&mut self, name: &str, value: &str) {
        self.0
            .push((name.to_string(), AttrValue::Quoted(value.to_string())));
    }

    /// Appends `NAME=value`.
    pub fn push_bare(&mut self, name: &str, value: &str) {
        self.0
            .push((name.to_string(), AttrValue::Bare(value.to_string())));
    }

    pub fn parse(text: &str, line: usize) -> Result<Self, ParseError> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or(ParseError::new(line, "attribute without '='"))?;
            let name = &rest[..eq];
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(ParseError::new(line, "bad attribute name"));
            }
            rest = &rest[eq + 1..];
            let value = if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or(ParseError::new(line, "unterminated quoted string"))?;
                let inner = &quoted[..end];
                // A quoted-string holds no CR or LF (§4.2); no control
                // character nor a Unicode line separator either, which some
                // parsers would take for a line end.
                if inner.contains(|c: char| {
                    (c.is_control() && c != '\t') || c == '\u{2028}' || c == '\u{2029}'
                }) {
                    return Err(ParseError::new(
                        line,
                        "line break or control character in a quoted string",
                    ));
                }
                let v = AttrValue::Quoted(inner.to_string());
                rest = &quoted[end + 1..];
                v
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                let bare = &rest[..end];
                // Enumerated strings and numbers hold no quotes or whitespace (§4.2).
                if bare.contains(|c: char| c == '"' || c.is_whitespace()) {
                    return Err(ParseError::new(line, "quote or space in an unquoted value"));
                }
                let v = AttrValue::Bare(bare.to_string());
                rest = &rest[end..];
                v
            };
            // §4.2: an attribute list holds each name at most once.
            if out.iter().any(|(n, _): &(String, AttrValue)| n == name) {
                return Err(ParseError::new(line, "attribute repeated"));
            }
            out.push((name.to_string(), value));
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None if rest.is_empty() => {}
                None => return Err(ParseError::new(line, "expected ',' between attributes")),
            }
        }
        Ok(AttributeList(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Removes and returns an attribute.
    pub fn take(&mut self, name: &str) -> Option<AttrValue> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    pub fn take_str(&mut self, name: &str) -> Option<String> {
        self.take(name).map(|v| match v {
            AttrValue::Quoted(s) | AttrValue::Bare(s) => s,
        })
    }

    pub fn take_f64(&mut self, name: &str, line: usize) -> Result<Option<f64>, ParseError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => parse_f64(v.as_str())
                .map(Some)
                .ok_or(ParseError::new(line, "bad decimal number")),
        }
    }

    pub fn take_u64(&mut self, name: &str, line: usize) -> Result<Option<u64>, ParseError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .parse()
                .map(Some)
                .map_err(|_| ParseError::new(line, "bad decimal integer")),
        }
    }

    pub fn take_yes(&mut self, name: &str) -> bool {
        self.take(name).is_some_and(|v| v.as_str() == "YES")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

impl fmt::Display for AttributeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            match value {
                AttrValue::Quoted(s) => write!(f, "{name}=\"{s}\"")?,
                AttrValue::Bare(s) => write!(f, "{name}={s}")?,
            }
        }
        Ok(())
    }
}

/// Builds an attribute list in rendering order.
#[derive(Default)]
pub(crate) struct AttrWriter {
    out: String,
}

impl AttrWriter {
    fn sep(&mut self) {
        if !self.out.is_empty() {
            self.out.push(',');
        }
    }
    pub(crate) fn quoted(&mut self, name: &str, v: &str) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{name}=\"{v}\"");
        self
    }
    pub(crate) fn bare(&mut self, name: &str, v: impl fmt::Display) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{name}={v}");
        self
    }
    pub(crate) fn yes(&mut self, name: &str, on: bool) -> &mut Self {
        if on {
            self.bare(name, "YES");
        }
        self
    }
    pub(crate) fn extra(&mut self, attrs: &AttributeList) -> &mut Self {
        if !attrs.is_empty() {
            self.sep();
            let _ = write!(self.out, "{attrs}");
        }
        self
    }
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_form() {
        let text =
            "BANDWIDTH=1280000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,X-Y=0x1F";
        let a = AttributeList::parse(text, 1).unwrap();
        assert_eq!(a.get("CODECS"), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(a.get("RESOLUTION"), Some("1280x720"));
        assert_eq!(a.to_string(), text);
    }

    #[test]
    fn quoted_strings_hold_no_line_break() {
        for bad in [
            "URI=\"a\rb\"",
            "URI=\"a\nb\"",
            "URI=\"a\u{2028}b\"",
            "URI=\"a\u{0}\"",
        ] {
            assert!(AttributeList::parse(bad, 1).is_err(), "{bad:?}");
        }
        assert!(AttributeList::parse("URI=\"a\tb\"", 1).is_ok());
    }

    #[test]
    fn malformed() {
        for bad in [
            "URI",
            "uri=\"x\"",
            "URI=\"x",
            "A=\"x\"B=1",
            "=1",
            "URI=&a\"",
            "A=b c",
            "A=1,A=2",
        ] {
            assert!(AttributeList::parse(bad, 3).is_err(), "{bad}");
        }
        assert!(AttributeList::parse("", 1).unwrap().is_empty());
    }
}
