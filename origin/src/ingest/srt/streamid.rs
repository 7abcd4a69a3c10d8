//! The SRT stream id (`SRTO_STREAMID`): which stream a caller wants to publish
//! and with which key. Pure parsing, no IO, total over any input.
//!
//! Accepted forms (see `docs/srt.md`):
//!
//! | form | example |
//! | --- | --- |
//! | SRT access control ([spec]) | `#!::r=live/cam1,m=publish,s=KEY` |
//! | prefixed | `publish:live/cam1:KEY`, `publish:live/cam1` |
//! | plain | `live/cam1:KEY`, `live/cam1`, `cam1:KEY`, `cam1` |
//!
//! A bare name `cam1` means `live/cam1`. In the access-control form a missing
//! `m` counts as `publish` (the spec's default is `request`, but OBS users
//! often set only `r=`, and the spec allows omitting `m` when the caller is
//! expected to send).
//!
//! [spec]: https://github.com/Haivision/srt/blob/master/docs/features/access-control.md

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// libsrt refuses longer stream ids (`CSrtConfig::MAX_SID_LENGTH`).
pub const MAX_STREAM_ID_LEN: usize = 512;
/// Longest stream name (the part after `live/`).
pub const MAX_NAME_LEN: usize = 64;
/// Longest stream key.
pub const MAX_KEY_LEN: usize = 256;

const LIVE_PREFIX: &str = "live/";
const AC_PREFIX: &str = "#!::";

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The caller sends a stream (`m=publish`).
    Publish,
    /// The caller wants to receive a stream (`m=request`, the spec's default).
    Request,
}

impl Mode {
    /// The access-control spelling (`m=` value).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Publish => "publish",
            Mode::Request => "request",
        }
    }
}

/// A parsed stream id. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// Normalized resource, always `live/<name>` with `<name>` matching
    /// `[A-Za-z0-9_-]{1,64}`.
    pub resource: String,
    pub mode: Mode,
    /// The stream key (`s=`, or everything after the resource's `:`): 1-256
    /// bytes of visible ASCII other than `,`. Compare it in constant time.
    pub key: Option<String>,
}

impl PublishRequest {
    /// Parses a stream id as libsrt hands it over (bytes up to the first NUL).
    pub fn parse(stream_id: &[u8]) -> Result<Self, StreamIdError> {
        if stream_id.is_empty() {
            return Err(StreamIdError::Empty);
        }
        if stream_id.len() > MAX_STREAM_ID_LEN {
            return Err(StreamIdError::TooLong {
                len: stream_id.len(),
            });
        }
        if let Some(offset) = stream_id.iter().position(|b| b.is_ascii_control()) {
            return Err(StreamIdError::ControlChar { offset });
        }
        let s = std::str::from_utf8(stream_id).map_err(|e| StreamIdError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        if let Some(content) = s.strip_prefix(AC_PREFIX) {
            parse_access_control(content)
        } else if s.starts_with("#!") {
            Err(StreamIdError::UnsupportedSyntax)
        } else {
            parse_colon_form(s)
        }
    }

    /// The stream name: `cam1` for `live/cam1`.
    pub fn name(&self) -> &str {
        self.resource
            .strip_prefix(LIVE_PREFIX)
            .unwrap_or(&self.resource)
    }

    /// Renders the canonical access-control form, key included; it parses
    /// back to `self`.
    pub fn to_stream_id(&self) -> String {
        let mut out = format!("{AC_PREFIX}r={},m={}", self.resource, self.mode.as_str());
        if let Some(key) = &self.key {
            out.push_str(",s=");
            out.push_str(key);
        }
        out
    }
}

impl FromStr for PublishRequest {
    type Err = StreamIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Debug for PublishRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishRequest")
            .field("resource", &self.resource)
            .field("mode", &self.mode)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why a stream id was refused. Messages never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamIdError {
    #[error("empty stream id")]
    Empty,
    #[error("stream id is {len} bytes, over the {MAX_STREAM_ID_LEN}-byte limit")]
    TooLong { len: usize },
    #[error("control character at byte {offset}")]
    ControlChar { offset: usize },
    #[error("not UTF-8 at byte {offset}")]
    NotUtf8 { offset: usize },
    #[error("unsupported `#!` syntax (only `#!::key=value,...`)")]
    UnsupportedSyntax,
    #[error("malformed key=value pair #{index}")]
    MalformedPair { index: usize },
    #[error("key `{key}` given twice")]
    DuplicateKey { key: &'static str },
    #[error("no resource given")]
    MissingResource,
    #[error("unsupported mode {0:?}")]
    BadMode(String),
    #[error("unsupported type {0:?} (only `stream`)")]
    UnsupportedType(String),
    #[error("`..` in resource")]
    DotDot,
    #[error("resource {0:?} is not under live/")]
    NotUnderLive(String),
    #[error("stream name {0:?} is not 1-{MAX_NAME_LEN} of A-Z a-z 0-9 _ -")]
    BadName(String),
    #[error("stream key is empty, over {MAX_KEY_LEN} bytes, or not visible ASCII without `,`")]
    BadKey,
}

fn parse_access_control(content: &str) -> Result<PublishRequest, StreamIdError> {
    let mut resource = None;
    let mut mode = None;
    let mut key = None;
    let mut kind = None;
    for (index, pair) in content.split(',').enumerate() {
        let (k, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or(StreamIdError::MalformedPair { index })?;
        let (slot, name) = match k {
            "r" => (&mut resource, "r"),
            "m" => (&mut mode, "m"),
            "s" => (&mut key, "s"),
            "t" => (&mut kind, "t"),
            // `u` (user), `h` (host) and custom keys carry nothing Brook uses.
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(StreamIdError::DuplicateKey { key: name });
        }
    }
    if let Some(t) = kind {
        if t != "stream" {
            return Err(StreamIdError::UnsupportedType(t.to_owned()));
        }
    }
    let mode = match mode {
        None | Some("publish") => Mode::Publish,
        Some("request") => Mode::Request,
        Some(other) => return Err(StreamIdError::BadMode(other.to_owned())),
    };
    let resource = resource
        .filter(|r| !r.is_empty())
        .ok_or(StreamIdError::MissingResource)?;
    Ok(PublishRequest {
        resource: normalize_resource(resource)?,
        mode,
        key: key.map(validate_key).transpose()?,
    })
}

fn parse_colon_form(s: &str) -> Result<PublishRequest, StreamIdError> {
    let (mode, rest) = if let Some(rest) = s.strip_prefix("publish:") {
        (Mode::Publish, rest)
    } else if let Some(rest) = s.strip_prefix("request:") {
        (Mode::Request, rest)
    } else {
        (Mode::Publish, s)
    };
    let (resource, key) = match rest.split_once(':') {
        Some((resource, key)) => (resource, Some(key)),
        None => (rest, None),
    };
    if resource.is_empty() {
        return Err(StreamIdError::MissingResource);
    }
    Ok(PublishRequest {
        resource: normalize_resource(resource)?,
        mode,
        key: key.map(validate_key).transpose()?,
    })
}

fn normalize_resource(resource: &str) -> Result<String, StreamIdError> {
    if resource.contains("..") {
        return Err(StreamIdError::DotDot);
    }
    let name = match resource.strip_prefix(LIVE_PREFIX) {
        Some(name) => name,
        None if !resource.contains('/') => resource,
        None => return Err(StreamIdError::NotUnderLive(resource.to_owned())),
    };
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(StreamIdError::BadName(name.to_owned()));
    }
    Ok(format!("{LIVE_PREFIX}{name}"))
}

fn validate_key(key: &str) -> Result<String, StreamIdError> {
    // `,` would end the value in the access-control form.
    let valid = (1..=MAX_KEY_LEN).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if valid {
        Ok(key.to_owned())
    } else {
        Err(StreamIdError::BadKey)
    }
}

/// A printable rendering of a raw stream id for logs, with anything that may
/// be a key replaced by `***`: the `s=` values of the access-control form, and
/// everything after the resource in the `:` forms. Total over any input.
pub fn redact(stream_id: &[u8]) -> String {
    let truncated = &stream_id[..stream_id.len().min(MAX_STREAM_ID_LEN)];
    let text = String::from_utf8_lossy(truncated);
    let masked = if let Some(content) = text.strip_prefix(AC_PREFIX) {
        let pairs: Vec<String> = content
            .split(',')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.trim() == "s" => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        format!("{AC_PREFIX}{}", pairs.join(","))
    } else {
        let (prefix, rest) = ["publish:", "request:"]
            .iter()
            .find_map(|p| text.strip_prefix(p).map(|rest| (*p, rest)))
            .unwrap_or(("", &text));
        match rest.split_once(':') {
            Some((resource, _)) => format!("{prefix}{resource}:***"),
            None => format!("{prefix}{rest}"),
        }
    };
    let mut out = masked.escape_debug().to_string();
    if stream_id.len() > MAX_STREAM_ID_LEN {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(resource: &str, mode: Mode, key: Option<&str>) -> Result<PublishRequest, StreamIdError> {
        Ok(PublishRequest {
            resource: resource.into(),
            mode,
            key: key.map(Into::into),
        })
    }

    fn cases() -> Vec<(&'static str, Result<PublishRequest, StreamIdError>)> {
        use Mode::*;
        use StreamIdError as E;
        vec![
            // access-control form
            (
                "#!::r=live/cam1,m=publish,s=KEY",
                ok("live/cam1", Publish, Some("KEY")),
            ),
            (
                "#!::s=KEY,m=publish,r=live/cam1",
                ok("live/cam1", Publish, Some("KEY")),
            ),
            ("#!::r=live/cam1", ok("live/cam1", Publish, None)),
            ("#!::r=cam1,m=publish", ok("live/cam1", Publish, None)),
            ("#!::r=live/cam1,m=request", ok("live/cam1", Request, None)),
            (
                "#!::u=alice,h=example.com,r=live/cam1,acme_x=1,t=stream",
                ok("live/cam1", Publish, None),
            ),
            (
                "#!::r=live/cam1,s=a=b:c",
                ok("live/cam1", Publish, Some("a=b:c")),
            ),
            (
                "#!::r=live/cam1,m=bidirectional",
                Err(E::BadMode("bidirectional".into())),
            ),
            ("#!::r=live/cam1,m=", Err(E::BadMode(String::new()))),
            (
                "#!::r=live/cam1,t=file",
                Err(E::UnsupportedType("file".into())),
            ),
            (
                "#!::r=live/cam1,r=live/cam2",
                Err(E::DuplicateKey { key: "r" }),
            ),
            ("#!::r=live/cam1,s=a,s=b", Err(E::DuplicateKey { key: "s" })),
            ("#!::m=publish", Err(E::MissingResource)),
            ("#!::r=", Err(E::MissingResource)),
            ("#!::", Err(E::MalformedPair { index: 0 })),
            ("#!::r=live/cam1,", Err(E::MalformedPair { index: 1 })),
            (
                "#!::r=live/cam1,novalue",
                Err(E::MalformedPair { index: 1 }),
            ),
            ("#!::=x,r=live/cam1", Err(E::MalformedPair { index: 0 })),
            ("#!::r=live/cam1,s=", Err(E::BadKey)),
            ("#!::r=live/cam1,s=with space", Err(E::BadKey)),
            ("#!:{r=live/cam1}", Err(E::UnsupportedSyntax)),
            ("#!x", Err(E::UnsupportedSyntax)),
            // prefixed form
            (
                "publish:live/cam1:KEY",
                ok("live/cam1", Publish, Some("KEY")),
            ),
            ("publish:live/cam1", ok("live/cam1", Publish, None)),
            ("publish:cam1:k1", ok("live/cam1", Publish, Some("k1"))),
            (
                "publish:live/cam1:a:b",
                ok("live/cam1", Publish, Some("a:b")),
            ),
            ("request:live/cam1", ok("live/cam1", Request, None)),
            ("publish:", Err(E::MissingResource)),
            ("publish::KEY", Err(E::MissingResource)),
            ("publish:live/cam1:", Err(E::BadKey)),
            ("publish:live/cam1:a,b", Err(E::BadKey)),
            // plain form
            ("live/cam1", ok("live/cam1", Publish, None)),
            ("live/cam1:KEY", ok("live/cam1", Publish, Some("KEY"))),
            ("cam1", ok("live/cam1", Publish, None)),
            ("cam1:KEY", ok("live/cam1", Publish, Some("KEY"))),
            ("Cam_1-b", ok("live/Cam_1-b", Publish, None)),
            (
                "live/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                ok(
                    "live/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    Publish,
                    None,
                ),
            ),
            (
                "live/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                Err(E::BadName(
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                )),
            ),
            // rejected everywhere
            ("", Err(E::Empty)),
            (":KEY", Err(E::MissingResource)),
            ("live/", Err(E::BadName(String::new()))),
            ("live/cam 1", Err(E::BadName("cam 1".into()))),
            ("live/cäm", Err(E::BadName("cäm".into()))),
            ("live/cam1/x", Err(E::BadName("cam1/x".into()))),
            ("live/../etc", Err(E::DotDot)),
            ("#!::r=live/..", Err(E::DotDot)),
            ("..", Err(E::DotDot)),
            ("vod/cam1", Err(E::NotUnderLive("vod/cam1".into()))),
            ("/live/cam1", Err(E::NotUnderLive("/live/cam1".into()))),
            ("live/cam1\n", Err(E::ControlChar { offset: 9 })),
            ("live/cam1\u{7f}", Err(E::ControlChar { offset: 9 })),
            ("live\0/cam1", Err(E::ControlChar { offset: 4 })),
            ("live/cam1:k\tey", Err(E::ControlChar { offset: 11 })),
        ]
    }

    #[test]
    fn parse_table() {
        for (input, expected) in cases() {
            assert_eq!(
                PublishRequest::parse(input.as_bytes()),
                expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn canonical_form_round_trips() {
        for (input, expected) in cases() {
            let Ok(req) = expected else { continue };
            let rendered = req.to_stream_id();
            assert_eq!(
                rendered.parse::<PublishRequest>(),
                Ok(req),
                "input {input:?} rendered {rendered:?}"
            );
        }
    }

    #[test]
    fn length_limit_is_libsrt_s() {
        let at_limit = format!("publish:live/cam1:{}", "k".repeat(256));
        assert!(at_limit.len() < MAX_STREAM_ID_LEN);
        assert!(PublishRequest::parse(at_limit.as_bytes()).is_ok());
        assert_eq!(
            PublishRequest::parse(format!("{at_limit}k").as_bytes()),
            Err(StreamIdError::BadKey)
        );
        let over = vec![b'a'; MAX_STREAM_ID_LEN + 1];
        assert_eq!(
            PublishRequest::parse(&over),
            Err(StreamIdError::TooLong { len: 513 })
        );
        assert_eq!(
            PublishRequest::parse(&[b'c', b'a', 0xff]),
            Err(StreamIdError::NotUtf8 { offset: 2 })
        );
    }

    #[test]
    fn debug_and_errors_hide_the_key() {
        let req: PublishRequest = "publish:live/cam1:sekrit".parse().unwrap();
        assert!(!format!("{req:?}").contains("sekrit"));
        for bad in [
            "#!::r=x/y,s=sekrit",
            "live/c am:sekrit",
            "#!::r=live/a,m=x,s=sekrit",
        ] {
            let err = PublishRequest::parse(bad.as_bytes()).unwrap_err();
            assert!(!err.to_string().contains("sekrit"), "{bad}: {err}");
        }
    }

    #[test]
    fn redact_table() {
        let cases = [
            (
                "#!::r=live/cam1,m=publish,s=KEY",
                "#!::r=live/cam1,m=publish,s=***",
            ),
            ("#!::s=KEY,r=live/cam1", "#!::s=***,r=live/cam1"),
            ("#!::r=live/cam1, s =KEY", "#!::r=live/cam1, s =***"),
            ("publish:live/cam1:KEY", "publish:live/cam1:***"),
            ("publish:live/cam1", "publish:live/cam1"),
            ("live/cam1:KEY:more", "live/cam1:***"),
            ("cam1", "cam1"),
            ("pub:live/cam1:KEY", "pub:***"),
            ("live/\ncam1", "live/\\ncam1"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input.as_bytes()), expected, "input {input:?}");
        }
        assert_eq!(redact(b"cam\xff1"), "cam\u{fffd}1");
        assert!(redact(&[b'a'; 600]).ends_with("..."));
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes and random splices of meaningful tokens: parsing and
    /// redaction never panic, and whatever parses satisfies the invariants.
    #[test]
    fn random_input_is_total() {
        const TOKENS: &[&[u8]] = &[
            b"#!::",
            b"#!",
            b"r=",
            b"m=",
            b"s=",
            b"t=",
            b"u=",
            b",",
            b":",
            b"=",
            b"live/",
            b"publish",
            b"request",
            b"stream",
            b"..",
            b"/",
            b"cam1",
            b"k1",
            b"\0",
            b"\n",
            b"\xff",
            b"\xc3\xa4",
            b" ",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut ok_count = 0;
        for _ in 0..200_000 {
            let mut input = Vec::new();
            if rng.below(4) == 0 {
                let len = rng.below(600);
                input.extend((0..len).map(|_| rng.next() as u8));
            } else {
                for _ in 0..rng.below(10) {
                    input.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
                }
            }
            let redacted = redact(&input);
            assert!(!redacted.chars().any(char::is_control), "{redacted:?}");
            let Ok(req) = PublishRequest::parse(&input) else {
                continue;
            };
            ok_count += 1;
            let name = req.name();
            assert!(req.resource.starts_with(LIVE_PREFIX));
            assert!((1..=MAX_NAME_LEN).contains(&name.len()));
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            if let Some(key) = &req.key {
                assert!(!key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()));
            }
            assert_eq!(
                req.to_stream_id().parse::<PublishRequest>().as_ref(),
                Ok(&req)
            );
        }
        assert!(ok_count > 1000, "generator too weak: {ok_count} parsed");
    }
}
