//! Common Media Client Data (CTA-5004) in query mode: the one `CMCD=` query
//! parameter a player adds to every request, already percent-decoded, e.g.
//! `br=3200,bl=21300,d=4004,mtp=25400,ot=v,sid="6e2fb550",su`.
//!
//! The grammar (CTA-5004 §3, a subset of RFC 8941 structured fields):
//! comma-separated `key=value` pairs; a key alone is the boolean `true`;
//! Integers and Decimals as digits, Strings quoted with `\"` and `\\`
//! escapes, Tokens bare. Keys are lowercase (custom keys carry a `-`,
//! e.g. `com.example-x`, and are skipped). Everything here comes from the
//! viewer: lengths, counts and ranges are bounded, and nothing panics.

use std::fmt;

/// Longest `CMCD=` value accepted, in bytes (a full CTA-5004 set with a
/// 64-character `sid` and `cid` and a `nor` is well under 1 KiB).
pub const MAX_LEN: usize = 2048;
/// Most pairs in one value (CTA-5004 v1 defines 18 keys).
pub const MAX_PAIRS: usize = 40;
/// Longest `sid` / `cid` (CTA-5004: "maximum length is 64 characters").
pub const MAX_ID_LEN: usize = 64;
/// Longest `nor` / `nrr` kept.
const MAX_STRING_LEN: usize = 512;

/// What the object requested is (`ot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `m`: a manifest or playlist.
    Manifest,
    /// `a`: audio only.
    Audio,
    /// `v`: video only.
    Video,
    /// `av`: muxed audio and video.
    Muxed,
    /// `i`: an init segment.
    Init,
    /// `c`: captions or subtitles.
    Captions,
    /// `tt`: timed text.
    TimedText,
    /// `k`: a key or license.
    Key,
    /// `o`: other.
    Other,
}

impl ObjectType {
    fn parse(token: &str) -> Option<Self> {
        Some(match token {
            "m" => Self::Manifest,
            "a" => Self::Audio,
            "v" => Self::Video,
            "av" => Self::Muxed,
            "i" => Self::Init,
            "c" => Self::Captions,
            "tt" => Self::TimedText,
            "k" => Self::Key,
            "o" => Self::Other,
            _ => return None,
        })
    }

    /// The CTA-5004 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "m",
            Self::Audio => "a",
            Self::Video => "v",
            Self::Muxed => "av",
            Self::Init => "i",
            Self::Captions => "c",
            Self::TimedText => "tt",
            Self::Key => "k",
            Self::Other => "o",
        }
    }

    /// Whether the object is media the viewer watches (its `br` and `d`
    /// count towards bitrate and rendition mix).
    pub fn is_media(self) -> bool {
        matches!(self, Self::Audio | Self::Video | Self::Muxed)
    }
}

/// What is being played (`st`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// `v`: video on demand.
    Vod,
    /// `l`: live.
    Live,
    /// `ll`: low-latency live (CTA-5004-A; hls.js sends it for LL-HLS).
    LowLatency,
}

impl StreamType {
    fn parse(token: &str) -> Option<Self> {
        Some(match token {
            "v" => Self::Vod,
            "l" => Self::Live,
            "ll" => Self::LowLatency,
            _ => return None,
        })
    }

    /// The CTA-5004 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vod => "v",
            Self::Live => "l",
            Self::LowLatency => "ll",
        }
    }
}

/// One request's CMCD. Numbers in the units CTA-5004 gives them: kbps for
/// `br`, `mtp`, `tb`; milliseconds for `bl`, `d`, `dl`, `rtp` (which is
/// kbps: requested maximum throughput).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cmcd {
    /// `br`: encoded bitrate of the object, kbps.
    pub br: Option<u32>,
    /// `bl`: buffer length, ms.
    pub bl: Option<u32>,
    /// `bs`: the buffer starved since the previous request.
    pub bs: bool,
    /// `cid`: content id.
    pub cid: Option<String>,
    /// `d`: object duration, ms.
    pub d: Option<u32>,
    /// `dl`: deadline, ms.
    pub dl: Option<u32>,
    /// `mtp`: measured throughput, kbps.
    pub mtp: Option<u32>,
    /// `nor`: next object request (relative URL).
    pub nor: Option<String>,
    /// `nrr`: next range request.
    pub nrr: Option<String>,
    /// `ot`: object type.
    pub ot: Option<ObjectType>,
    /// `pr`: playback rate (1 is real time).
    pub pr: Option<f64>,
    /// `rtp`: requested maximum throughput, kbps.
    pub rtp: Option<u32>,
    /// `sf`: streaming format token (`h` HLS, `d` DASH, `s` Smooth, `o`).
    pub sf: Option<char>,
    /// `sid`: session id.
    pub sid: Option<String>,
    /// `st`: stream type.
    pub st: Option<StreamType>,
    /// `su`: startup (the object is needed urgently, at start or after a
    /// rebuffer).
    pub su: bool,
    /// `tb`: top bitrate the player may choose, kbps.
    pub tb: Option<u32>,
    /// `v`: CMCD version (absent means 1).
    pub v: Option<u32>,
    /// Keys this parser does not know (custom ones included), skipped.
    pub unknown_keys: u32,
}

/// Why a `CMCD=` value was refused: what and where (byte offset into the
/// decoded value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmcdError {
    #[error("CMCD value is {0} bytes, more than {MAX_LEN}")]
    TooLong(usize),
    #[error("CMCD value has more than {MAX_PAIRS} pairs")]
    TooManyPairs,
    #[error("CMCD: bad key at byte {at}")]
    BadKey { at: usize },
    #[error("CMCD: key {key:?} appears twice (byte {at})")]
    Duplicate { key: String, at: usize },
    #[error("CMCD: bad value for {key:?} at byte {at}: {why}")]
    BadValue {
        key: String,
        at: usize,
        why: &'static str,
    },
}

/// A value as written, before the key says what it must be.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    True,
    Number { text: String, integer: bool },
    Str(String),
    Token(String),
}

impl Cmcd {
    /// Parses a decoded `CMCD=` value. An empty value is an empty `Cmcd`.
    pub fn parse(s: &str) -> Result<Self, CmcdError> {
        if s.len() > MAX_LEN {
            return Err(CmcdError::TooLong(s.len()));
        }
        let mut out = Cmcd::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut p = Parser { s, at: 0 };
        while p.at < s.len() {
            if seen.len() + out.unknown_keys as usize >= MAX_PAIRS {
                return Err(CmcdError::TooManyPairs);
            }
            let key_at = p.at;
            let key = p.key()?;
            let value = if p.eat(b'=') {
                p.value(key)?
            } else {
                Value::True
            };
            if !p.eat(b',') && p.at < s.len() {
                return Err(CmcdError::BadValue {
                    key: key.to_owned(),
                    at: p.at,
                    why: "expected ','",
                });
            }
            if seen.contains(&key) {
                return Err(CmcdError::Duplicate {
                    key: key.to_owned(),
                    at: key_at,
                });
            }
            if out.set(key, value, key_at)? {
                seen.push(key);
            } else {
                out.unknown_keys += 1;
            }
        }
        Ok(out)
    }

    /// Stores a known key's value; `Ok(false)` for a key it does not know.
    fn set(&mut self, key: &str, value: Value, at: usize) -> Result<bool, CmcdError> {
        let bad = |why| CmcdError::BadValue {
            key: key.to_owned(),
            at,
            why,
        };
        let int = |v: &Value| -> Result<u32, CmcdError> {
            match v {
                Value::Number {
                    text,
                    integer: true,
                } => text.parse::<u32>().map_err(|_| bad("integer out of range")),
                _ => Err(bad("not a non-negative integer")),
            }
        };
        let flag = |v: &Value| -> Result<bool, CmcdError> {
            match v {
                Value::True => Ok(true),
                // Structured fields spell false `?0`; a player never
                // needs to send it, but it is not an error.
                Value::Token(t) if t == "?0" => Ok(false),
                Value::Token(t) if t == "?1" => Ok(true),
                _ => Err(bad("not a boolean")),
            }
        };
        let string = |v: Value, max: usize| -> Result<String, CmcdError> {
            match v {
                Value::Str(s) if s.chars().count() <= max => Ok(s),
                Value::Str(_) => Err(bad("string too long")),
                _ => Err(bad("not a string")),
            }
        };
        let token_char = |v: &Value, allowed: &str| -> Result<char, CmcdError> {
            match v {
                Value::Token(t) if t.len() == 1 && allowed.contains(t.as_str()) => {
                    Ok(t.chars().next().unwrap_or('o'))
                }
                _ => Err(bad("unknown token")),
            }
        };
        match key {
            "br" => self.br = Some(int(&value)?),
            "bl" => self.bl = Some(int(&value)?),
            "bs" => self.bs = flag(&value)?,
            "cid" => self.cid = Some(string(value, MAX_ID_LEN)?),
            "d" => self.d = Some(int(&value)?),
            "dl" => self.dl = Some(int(&value)?),
            "mtp" => self.mtp = Some(int(&value)?),
            "nor" => self.nor = Some(string(value, MAX_STRING_LEN)?),
            "nrr" => self.nrr = Some(string(value, MAX_STRING_LEN)?),
            "ot" => {
                self.ot = Some(match &value {
                    Value::Token(t) => ObjectType::parse(t).ok_or_else(|| bad("unknown token"))?,
                    _ => return Err(bad("not a token")),
                })
            }
            "pr" => {
                self.pr = Some(match &value {
                    Value::Number { text, .. } => text
                        .parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r >= 0.0 && *r <= 100.0)
                        .ok_or_else(|| bad("rate out of range"))?,
                    _ => return Err(bad("not a number")),
                })
            }
            "rtp" => self.rtp = Some(int(&value)?),
            "sf" => self.sf = Some(token_char(&value, "hdso")?),
            "sid" => self.sid = Some(string(value, MAX_ID_LEN)?),
            "st" => {
                self.st = Some(match &value {
                    Value::Token(t) => StreamType::parse(t).ok_or_else(|| bad("unknown token"))?,
                    _ => return Err(bad("not a token")),
                })
            }
            "su" => self.su = flag(&value)?,
            "tb" => self.tb = Some(int(&value)?),
            "v" => self.v = Some(int(&value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl fmt::Display for Cmcd {
    /// The CTA-5004 query-mode form (keys in alphabetical order, as the
    /// spec recommends), before percent-encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let num = |k: &str, v: Option<u32>| v.map(|v| format!("{k}={v}"));
        let flag = |k: &str, on: bool| on.then(|| k.to_owned());
        let string =
            |k: &str, v: &Option<String>| v.as_deref().map(|s| format!("{k}={}", quote(s)));
        let token = |k: &str, v: Option<char>| v.map(|c| format!("{k}={c}"));
        let parts: Vec<String> = [
            num("bl", self.bl),
            num("br", self.br),
            flag("bs", self.bs),
            string("cid", &self.cid),
            num("d", self.d),
            num("dl", self.dl),
            num("mtp", self.mtp),
            string("nor", &self.nor),
            string("nrr", &self.nrr),
            self.ot.map(|o| format!("ot={}", o.as_str())),
            self.pr.map(|r| format!("pr={r}")),
            num("rtp", self.rtp),
            token("sf", self.sf),
            string("sid", &self.sid),
            self.st.map(|t| format!("st={}", t.as_str())),
            flag("su", self.su),
            num("tb", self.tb),
            num("v", self.v),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(","))
    }
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `[a-z*][a-z0-9_.*-]*` (RFC 8941 keys).
    fn key(&mut self) -> Result<&'a str, CmcdError> {
        let start = self.at;
        match self.peek() {
            Some(b) if b.is_ascii_lowercase() || b == b'*' => self.at += 1,
            _ => return Err(CmcdError::BadKey { at: start }),
        }
        while let Some(b) = self.peek() {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b) {
                self.at += 1;
            } else {
                break;
            }
        }
        if self.at - start > 64 {
            return Err(CmcdError::BadKey { at: start });
        }
        Ok(self.s.get(start..self.at).unwrap_or(""))
    }

    fn value(&mut self, key: &str) -> Result<Value, CmcdError> {
        let start = self.at;
        let bad = |why, at| CmcdError::BadValue {
            key: key.to_owned(),
            at,
            why,
        };
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                let mut out = String::new();
                loop {
                    let rest = self.s.get(self.at..).unwrap_or("");
                    let Some(c) = rest.chars().next() else {
                        return Err(bad("unterminated string", start));
                    };
                    self.at += c.len_utf8();
                    match c {
                        '"' => return Ok(Value::Str(out)),
                        '\\' => match self.peek() {
                            Some(e @ (b'"' | b'\\')) => {
                                self.at += 1;
                                out.push(char::from(e));
                            }
                            _ => return Err(bad("bad escape", self.at)),
                        },
                        // RFC 8941 strings are printable ASCII.
                        c if (' '..='~').contains(&c) => out.push(c),
                        _ => return Err(bad("non-printable character in string", self.at)),
                    }
                }
            }
            Some(b) if b.is_ascii_digit() || b == b'-' => {
                let negative = self.eat(b'-');
                let digits_at = self.at;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.at += 1;
                }
                let int_digits = self.at - digits_at;
                let mut integer = true;
                if self.eat(b'.') {
                    integer = false;
                    let frac_at = self.at;
                    while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                        self.at += 1;
                    }
                    if self.at == frac_at || self.at - frac_at > 3 || int_digits > 12 {
                        return Err(bad("bad decimal", start));
                    }
                }
                if int_digits == 0 || int_digits > 15 {
                    return Err(bad("bad number", start));
                }
                if negative {
                    return Err(bad("negative number", start));
                }
                Ok(Value::Number {
                    text: self.s.get(digits_at..self.at).unwrap_or("").to_owned(),
                    integer,
                })
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'*' || b == b'?' => {
                self.at += 1;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
                {
                    self.at += 1;
                }
                Ok(Value::Token(
                    self.s.get(start..self.at).unwrap_or("").to_owned(),
                ))
            }
            _ => Err(bad("empty or unknown value", start)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's examples and what hls.js and dash.js send, parsed and
    /// rendered back (round trip where the input is in canonical order).
    #[test]
    fn parses_players_values() {
        let hlsjs = r#"br=3200,bl=21300,d=4004,mtp=25400,ot=v,sf=h,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=l,su,tb=6000"#;
        let c = Cmcd::parse(hlsjs).unwrap();
        assert_eq!(c.br, Some(3200));
        assert_eq!(c.bl, Some(21300));
        assert_eq!(c.d, Some(4004));
        assert_eq!(c.mtp, Some(25400));
        assert_eq!(c.ot, Some(ObjectType::Video));
        assert_eq!(c.sf, Some('h'));
        assert_eq!(c.st, Some(StreamType::Live));
        assert!(c.su && !c.bs);
        assert_eq!(c.tb, Some(6000));
        assert_eq!(
            c.sid.as_deref(),
            Some("6e2fb550-c457-11e9-bb97-0800200c9a66")
        );

        let canonical = r#"bl=500,br=800,bs,cid="live\"cam1\\",d=1000,dl=300,mtp=900,nor="seg2.m4s",ot=av,pr=1.08,rtp=1200,sf=d,sid="s1",st=v,su,tb=2000,v=1"#;
        let c = Cmcd::parse(canonical).unwrap();
        assert_eq!(c.cid.as_deref(), Some("live\"cam1\\"));
        assert_eq!(c.pr, Some(1.08));
        assert_eq!(c.to_string(), canonical);
        assert_eq!(Cmcd::parse(&c.to_string()).unwrap(), c);

        // What hls.js 1.7 sent for an LL-HLS part (seen in tests/e2e/qoe).
        let part = r#"bl=0,br=510,cid="cam1",d=200,dl=0,mtp=500,nor="240p-part1.1.m4s?__token__=exp%3D1796515188~acl%3D%2Flive%2F%2A~kid%3Dk2026a~hmac%3Dad35",ot=v,pr=1.5,rtp=2500,sf=h,sid="56aca978-36c2-4d2c-a2c5-691d4c18edf6",st=ll,su"#;
        let c = Cmcd::parse(part).unwrap();
        assert_eq!(
            (c.st, c.d, c.br, c.pr),
            (
                Some(StreamType::LowLatency),
                Some(200),
                Some(510),
                Some(1.5)
            )
        );
        assert_eq!(Cmcd::parse(&c.to_string()).unwrap(), c);

        assert_eq!(Cmcd::parse("").unwrap(), Cmcd::default());
        let custom = Cmcd::parse("com.example-x=12,br=1").unwrap();
        assert_eq!((custom.unknown_keys, custom.br), (1, Some(1)));
        assert!(Cmcd::parse("bs=?0").map(|c| !c.bs).unwrap());
    }

    #[test]
    fn refuses_bad_values_with_where() {
        let cases: &[(&str, &str)] = &[
            ("br=-1", "negative"),
            ("br=4294967296", "out of range"),
            ("br=1.5", "non-negative integer"),
            ("br=", "empty"),
            ("BR=1", "bad key"),
            ("=1", "bad key"),
            ("br=1,,bl=2", "bad key"),
            ("br=1;bl=2", "expected ','"),
            ("sid=abc", "not a string"),
            ("sid=\"abc", "unterminated"),
            ("sid=\"a\\nb\"", "escape"),
            ("sid=\"\u{e9}\"", "non-printable"),
            ("ot=x", "unknown token"),
            ("st=q", "unknown token"),
            ("bs=1", "not a boolean"),
            ("pr=1000.5", "rate out of range"),
            ("br=1,br=2", "twice"),
            ("d=1234567890123456", "bad number"),
        ];
        for (input, want) in cases {
            let e = Cmcd::parse(input).expect_err(input).to_string();
            assert!(e.contains(want), "{input}: {e}");
        }
        let long_sid = format!("sid=\"{}\"", "a".repeat(65));
        assert!(Cmcd::parse(&long_sid).is_err());
        assert!(matches!(
            Cmcd::parse(&"x".repeat(MAX_LEN + 1)),
            Err(CmcdError::TooLong(_))
        ));
        let many: Vec<String> = (0..=MAX_PAIRS).map(|i| format!("k{i}")).collect();
        assert_eq!(Cmcd::parse(&many.join(",")), Err(CmcdError::TooManyPairs));
    }

    #[test]
    fn never_panics_on_prefixes() {
        let s = r#"bl=500,br=800,bs,cid="x\"y",pr=1.08,sid="s1",su,ot=av"#;
        for end in 0..=s.len() {
            if let Some(prefix) = s.get(..end) {
                let _ = Cmcd::parse(prefix);
            }
        }
    }
}
