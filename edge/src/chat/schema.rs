//! The chat wire format, version 1: one JSON object per WebSocket text frame,
//! `{"v": 1, "type": "...", ...}`. docs/chat.md is the reference; the unit
//! tests below hold every example it shows.
//!
//! Clients may leave `v` out (read as 1); a higher version is refused
//! (`unsupported_version`), and fields this version does not know are
//! ignored, so a newer client's extra fields do not break an older room.

use serde::{Deserialize, Serialize};

use super::text::{clean_name, clean_text, is_nonce, TextError};

/// The schema version this room speaks.
pub const VERSION: u32 = 1;

/// Reactions a viewer may send. Anything else is `bad_emoji`.
pub const EMOJI: [&str; 6] = ["❤️", "👍", "😂", "😮", "👏", "🔥"];

/// An index into [`EMOJI`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Emoji(u8);

impl Emoji {
    /// `s` if it is an allowed reaction; a heart without the emoji variation
    /// selector counts as the heart.
    pub fn parse(s: &str) -> Option<Self> {
        let s = if s == "❤" { "❤️" } else { s };
        EMOJI.iter().position(|e| *e == s).map(|i| Self(i as u8))
    }

    pub fn as_str(self) -> &'static str {
        EMOJI.get(usize::from(self.0)).copied().unwrap_or("❤️")
    }
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Pick a display name (ignored when the token names the viewer).
    Join { name: Option<String> },
    /// A chat line, written while the sender's player showed `pdt`.
    Chat {
        text: String,
        pdt: Option<i64>,
        nonce: Option<String>,
    },
    /// A reaction at `pdt`.
    React { emoji: Emoji, pdt: Option<i64> },
    /// Liveness and clock check; answered with `pong`.
    Ping { nonce: Option<String> },
    /// Moderator: remove a message from history and from every client.
    Delete { id: i64 },
    /// Moderator: ban a user (for `minutes`, or until unbanned).
    Ban(Ban),
    /// Moderator: lift a ban.
    Unban { user: String },
    /// Moderator: an announcement to everyone.
    Notice { text: String },
    /// Moderator (or the broadcaster's backend): the stream started or ended.
    Stream { started: bool },
}

/// A ban request (from a moderator socket or the moderation API).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ban {
    pub user: String,
    /// `None`: until lifted.
    pub minutes: Option<u64>,
    /// Also ban the address the user is connected from (off by default: an
    /// address is often shared).
    pub ip: bool,
    /// Also delete the user's stored messages.
    pub purge: bool,
    pub reason: Option<String>,
}

/// Why a frame was refused; sent back as `{"type":"error","code":...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON.
    InvalidJson,
    /// JSON, but a field is missing or has the wrong type.
    BadRequest,
    /// A `type` this version does not know.
    UnknownType,
    /// `v` is newer than the room's.
    UnsupportedVersion,
    /// A frame over `max_frame_bytes`.
    TooLarge,
    /// A binary frame: the protocol is text only.
    Binary,
    /// Chat text over `max_text_chars`.
    TooLong,
    /// Chat text with nothing left after cleaning.
    Empty,
    /// A reaction outside the allowed set.
    BadEmoji,
    /// Dropped by a rate limit (`retry_ms` says when to try again).
    RateLimited,
    /// Moderation from a socket that is not a moderator's.
    NotAllowed,
    /// Delete of a message that is not (or no longer) stored.
    NotFound,
    /// The user or address is banned.
    Banned,
    /// Storage failed; try again.
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Binary => "binary",
            ErrorCode::TooLong => "too_long",
            ErrorCode::Empty => "empty",
            ErrorCode::BadEmoji => "bad_emoji",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Banned => "banned",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// A refused frame: the code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Every field any client message may carry; which ones matter depends on
/// `type`. Unknown fields are ignored.
#[derive(Deserialize)]
struct RawClient {
    v: Option<u32>,
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    text: Option<String>,
    pdt: Option<f64>,
    nonce: Option<String>,
    emoji: Option<String>,
    id: Option<i64>,
    user: Option<String>,
    minutes: Option<u64>,
    #[serde(default)]
    ip: bool,
    #[serde(default)]
    purge: bool,
    reason: Option<String>,
    state: Option<String>,
    sent: Option<f64>,
}

/// Checks applied while parsing that depend on the room's settings.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_text_chars: usize,
    pub max_name_chars: usize,
}

/// One text frame, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub message: Result<ClientMessage, Refusal>,
    /// `sent`: when the client sent the frame, on the room's clock (ms since
    /// 1970; the client learns the clock from `welcome.ts` or `pong.ts`).
    /// Rate limits charge the frame at this time rather than when the room
    /// gets to it (see [`crate::chat::room`]).
    pub sent: Option<u64>,
}

/// Parses one text frame. Never panics, whatever the input.
pub fn parse_frame(frame: &str, limits: ParseLimits) -> Parsed {
    let raw = match raw_client(frame) {
        Ok(raw) => raw,
        Err(refusal) => {
            return Parsed {
                message: Err(refusal),
                sent: None,
            }
        }
    };
    let sent = match raw.sent.map(millis) {
        None => None,
        Some(Some(t)) => Some(t as u64),
        Some(None) => {
            return Parsed {
                message: Err(Refusal::new(
                    ErrorCode::BadRequest,
                    "`sent` is milliseconds since 1970 on the room's clock",
                )),
                sent: None,
            }
        }
    };
    Parsed {
        message: message(raw, limits),
        sent,
    }
}

/// A time in milliseconds since 1970, rounded to a whole millisecond; `None`
/// unless that is at least 1 and below 9e15 (year 287,000; below 2^53, so
/// every whole millisecond is exact). Checked after rounding, so what is
/// accepted is accepted again when it is sent back.
fn millis(t: f64) -> Option<i64> {
    let t = t.round();
    (t.is_finite() && (1.0..9.0e15).contains(&t)).then_some(t as i64)
}

/// Parses one text frame's message (`parse_frame` without `sent`).
pub fn parse_client(frame: &str, limits: ParseLimits) -> Result<ClientMessage, Refusal> {
    parse_frame(frame, limits).message
}

fn raw_client(frame: &str) -> Result<RawClient, Refusal> {
    if !frame.trim_start().starts_with('{') {
        // serde would also read a struct from a JSON array; only objects are frames.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(frame) {
            Ok(_) => Refusal::new(ErrorCode::BadRequest, "frames are JSON objects"),
            Err(_) => Refusal::new(ErrorCode::InvalidJson, "frames are JSON objects"),
        });
    }
    serde_json::from_str(frame).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Refusal::new(ErrorCode::BadRequest, e.to_string()),
        _ => Refusal::new(ErrorCode::InvalidJson, "frames are JSON objects"),
    })
}

fn message(raw: RawClient, limits: ParseLimits) -> Result<ClientMessage, Refusal> {
    if raw.v.unwrap_or(VERSION) > VERSION {
        return Err(Refusal::new(
            ErrorCode::UnsupportedVersion,
            format!("this room speaks version {VERSION}"),
        ));
    }
    let missing =
        |field: &str| Refusal::new(ErrorCode::BadRequest, format!("`{field}` is required"));
    let pdt = match raw.pdt.map(millis) {
        None => None,
        Some(Some(p)) => Some(p),
        Some(None) => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "`pdt` is milliseconds since 1970",
            ))
        }
    };
    let nonce = match raw.nonce {
        Some(n) if !is_nonce(&n) => {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "`nonce` is 1-64 of A-Z a-z 0-9 _ -",
            ))
        }
        n => n,
    };
    Ok(match raw.kind.as_str() {
        "join" => ClientMessage::Join {
            name: raw
                .name
                .as_deref()
                .and_then(|n| clean_name(n, limits.max_name_chars)),
        },
        "chat" => {
            let text = raw.text.ok_or_else(|| missing("text"))?;
            let text = clean_text(&text, limits.max_text_chars).map_err(|e| match e {
                TextError::Empty => Refusal::new(ErrorCode::Empty, "nothing to send"),
                TextError::TooLong => Refusal::new(
                    ErrorCode::TooLong,
                    format!("at most {} characters", limits.max_text_chars),
                ),
            })?;
            ClientMessage::Chat { text, pdt, nonce }
        }
        "react" => {
            let emoji = raw.emoji.ok_or_else(|| missing("emoji"))?;
            let emoji = Emoji::parse(&emoji).ok_or_else(|| {
                Refusal::new(ErrorCode::BadEmoji, format!("one of {}", EMOJI.join(" ")))
            })?;
            ClientMessage::React { emoji, pdt }
        }
        "ping" => ClientMessage::Ping { nonce },
        "delete" => ClientMessage::Delete {
            id: raw.id.ok_or_else(|| missing("id"))?,
        },
        "ban" => ClientMessage::Ban(Ban {
            user: raw.user.ok_or_else(|| missing("user"))?,
            minutes: raw.minutes,
            ip: raw.ip,
            purge: raw.purge,
            reason: raw.reason.as_deref().and_then(|r| clean_name(r, 200)),
        }),
        "unban" => ClientMessage::Unban {
            user: raw.user.ok_or_else(|| missing("user"))?,
        },
        "notice" => {
            let text = raw.text.ok_or_else(|| missing("text"))?;
            ClientMessage::Notice {
                text: clean_text(&text, limits.max_text_chars).map_err(|_| {
                    Refusal::new(ErrorCode::BadRequest, "`text` is empty or too long")
                })?,
            }
        }
        "stream" => ClientMessage::Stream {
            started: match raw.state.as_deref() {
                Some("started") => true,
                Some("ended") => false,
                _ => {
                    return Err(Refusal::new(
                        ErrorCode::BadRequest,
                        "`state` is started or ended",
                    ))
                }
            },
        },
        _ => {
            return Err(Refusal::new(
                ErrorCode::UnknownType,
                "type is join, chat, react or ping",
            ))
        }
    })
}

/// A chat message as stored and as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Room-wide, increasing in the order the room accepted messages.
    pub id: i64,
    /// The sender's stable, opaque id (what a moderator bans).
    pub user: String,
    /// Display name: plain text, never markup.
    pub name: String,
    pub text: String,
    /// The program date time (ms since 1970) the sender's player showed when
    /// the message was written; `null` when it was not playing.
    pub pdt: Option<i64>,
    /// When the room accepted it (ms since 1970, the room's clock).
    pub ts: i64,
    /// Sent by a moderator.
    #[serde(rename = "mod", skip_serializing_if = "std::ops::Not::not")]
    pub moderator: bool,
    /// The sender's `nonce`, so it can match its own message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Reactions of one emoji near one program date time, counted over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionCount {
    pub emoji: &'static str,
    /// Start of the PDT slot (ms since 1970); `null` for reactions sent while
    /// not playing.
    pub pdt: Option<i64>,
    pub n: u64,
}

/// Room events broadcast to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SystemEvent {
    /// How many sockets are in the room.
    Viewers { viewers: usize },
    /// A publish session started: announced by the edge when it first
    /// serves the session's live playlist (`session` set), or by a moderator.
    StreamStarted {
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// A publish session ended: its playlist got `EXT-X-ENDLIST` (or a
    /// moderator said so).
    StreamEnded {
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// A moderator's announcement.
    Notice { text: String },
    /// A user was banned (clients may hide what they still show of theirs).
    Banned { user: String },
}

/// Whether a stream started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StreamState {
    #[serde(rename = "stream_started")]
    Started,
    #[serde(rename = "stream_ended")]
    Ended,
}

impl StreamState {
    /// `started` / `ended`, as in the `stream` request and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Started => "started",
            StreamState::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "started" => Some(StreamState::Started),
            "ended" => Some(StreamState::Ended),
            _ => None,
        }
    }

    /// The `system` event that announces it.
    pub fn event(self, session: Option<String>) -> SystemEvent {
        match self {
            StreamState::Started => SystemEvent::StreamStarted { session },
            StreamState::Ended => SystemEvent::StreamEnded { session },
        }
    }
}

/// A stream start or end as kept in history (`history.events`), in the
/// shape of its `system` event plus the room's id and clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamRecord {
    /// Increasing in the order the room announced them.
    pub id: i64,
    pub event: StreamState,
    /// The publish session; `None` when a moderator sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// When the room announced it (ms since 1970, the room's clock); stream
    /// events sit on the timeline here.
    pub ts: i64,
}

/// The limits a client should know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicLimits {
    pub max_text_chars: usize,
    pub max_name_chars: usize,
    pub max_frame_bytes: usize,
    pub emoji: [&'static str; 6],
}

/// What the room sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First frame on every socket.
    Welcome {
        user: String,
        name: String,
        #[serde(rename = "mod")]
        moderator: bool,
        viewers: usize,
        /// The room's clock (ms since 1970).
        ts: i64,
        limits: PublicLimits,
    },
    /// The last messages, oldest first: second frame on every socket, and
    /// the answer of the history endpoint.
    History {
        messages: Vec<ChatMessage>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        reactions: Vec<ReactionCount>,
        /// Stream starts and ends, oldest first (as many as messages at most).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        events: Vec<StreamRecord>,
        /// The history endpoint: more messages in the range than returned.
        #[serde(skip_serializing_if = "Option::is_none")]
        more: Option<bool>,
    },
    /// The answer to `join`.
    Joined {
        user: String,
        name: String,
    },
    Chat(ChatMessage),
    /// Reactions counted over the last window.
    Reactions {
        counts: Vec<ReactionCount>,
        ts: i64,
    },
    /// Messages removed by a moderator.
    Delete {
        ids: Vec<i64>,
    },
    System(SystemEvent),
    Pong {
        ts: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_ms: Option<u64>,
    },
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u32,
    #[serde(flatten)]
    msg: &'a ServerMessage,
}

impl ServerMessage {
    /// The frame's text: `{"v":1,"type":...}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Envelope {
            v: VERSION,
            msg: self,
        })
        // Only strings, numbers, bools and lists of them: cannot fail.
        .unwrap_or_else(|_| {
            String::from(r#"{"v":1,"type":"error","code":"unavailable","message":"encoding"}"#)
        })
    }

    pub fn error(refusal: Refusal) -> Self {
        ServerMessage::Error {
            code: refusal.code,
            message: refusal.message,
            retry_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: ParseLimits = ParseLimits {
        max_text_chars: 20,
        max_name_chars: 8,
    };

    fn code(frame: &str) -> ErrorCode {
        parse_client(frame, L).unwrap_err().code
    }

    #[test]
    fn sent_times() {
        let p = parse_frame(r#"{"type":"chat","text":"hi","sent":1790000000123.4}"#, L);
        assert_eq!(p.sent, Some(1_790_000_000_123));
        assert!(p.message.is_ok());
        // Known even when the message itself is refused (it is still charged).
        let long = parse_frame(
            r#"{"type":"chat","text":"xxxxxxxxxxxxxxxxxxxxxxxxx","sent":5}"#,
            L,
        );
        assert_eq!(long.sent, Some(5));
        assert_eq!(long.message.unwrap_err().code, ErrorCode::TooLong);
        for bad in [
            r#"{"type":"chat","text":"hi","sent":-1}"#,
            r#"{"type":"chat","text":"hi","sent":1e300}"#,
            r#"{"type":"chat","text":"hi","sent":"now"}"#,
        ] {
            let p = parse_frame(bad, L);
            assert_eq!(p.sent, None, "{bad}");
            assert_eq!(p.message.unwrap_err().code, ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(parse_frame(r#"{"type":"ping"}"#, L).sent, None);
        assert_eq!(parse_frame("nope", L).sent, None);
    }

    /// Found by the `chat_frame` fuzz target: 0.3 was accepted as 0, which
    /// is refused when sent back. Times are checked after rounding.
    #[test]
    fn times_below_one_millisecond_are_refused() {
        for bad in [
            r#"{"type":"react","emoji":"🔥","pdt":0.3}"#,
            r#"{"type":"chat","text":"hi","pdt":0}"#,
            r#"{"type":"chat","text":"hi","sent":0.3}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::BadRequest, "{bad}");
        }
        let p = parse_frame(r#"{"type":"chat","text":"hi","pdt":0.5,"sent":0.5}"#, L);
        assert_eq!(p.sent, Some(1));
        assert!(matches!(
            p.message,
            Ok(ClientMessage::Chat { pdt: Some(1), .. })
        ));
        let last = parse_frame(r#"{"type":"ping","sent":8999999999999999}"#, L);
        assert_eq!(last.sent, Some(8_999_999_999_999_999));
        assert_eq!(
            code(r#"{"type":"ping","sent":9e15}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn client_messages() {
        let cases: &[(&str, ClientMessage)] = &[
            (
                r#"{"v":1,"type":"join","name":"Alice"}"#,
                ClientMessage::Join {
                    name: Some("Alice".into()),
                },
            ),
            (r#"{"type":"join"}"#, ClientMessage::Join { name: None }),
            (
                r#"{"type":"join","name":"  \u0000 "}"#,
                ClientMessage::Join { name: None },
            ),
            (
                r#"{"v":1,"type":"chat","text":"hi <b>there</b>","pdt":1790000000123,"nonce":"n-1"}"#,
                ClientMessage::Chat {
                    text: "hi <b>there</b>".into(),
                    pdt: Some(1_790_000_000_123),
                    nonce: Some("n-1".into()),
                },
            ),
            (
                r#"{"type":"chat","text":"x","pdt":1790000000123.6,"future":[1,2]}"#,
                ClientMessage::Chat {
                    text: "x".into(),
                    pdt: Some(1_790_000_000_124),
                    nonce: None,
                },
            ),
            (
                r#"{"type":"react","emoji":"🔥","pdt":1790000000000}"#,
                ClientMessage::React {
                    emoji: Emoji::parse("🔥").unwrap(),
                    pdt: Some(1_790_000_000_000),
                },
            ),
            (
                r#"{"type":"react","emoji":"❤"}"#,
                ClientMessage::React {
                    emoji: Emoji::parse("❤️").unwrap(),
                    pdt: None,
                },
            ),
            (r#"{"type":"ping"}"#, ClientMessage::Ping { nonce: None }),
            (
                r#"{"type":"delete","id":42}"#,
                ClientMessage::Delete { id: 42 },
            ),
            (
                r#"{"type":"ban","user":"u1","minutes":10,"purge":true}"#,
                ClientMessage::Ban(Ban {
                    user: "u1".into(),
                    minutes: Some(10),
                    purge: true,
                    ..Ban::default()
                }),
            ),
            (
                r#"{"type":"unban","user":"u1"}"#,
                ClientMessage::Unban { user: "u1".into() },
            ),
            (
                r#"{"type":"notice","text":"Q&A at 8"}"#,
                ClientMessage::Notice {
                    text: "Q&A at 8".into(),
                },
            ),
            (
                r#"{"type":"stream","state":"ended"}"#,
                ClientMessage::Stream { started: false },
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(parse_client(frame, L).as_ref(), Ok(want), "{frame}");
        }
    }

    #[test]
    fn refusals() {
        let cases = [
            ("", ErrorCode::InvalidJson),
            ("{", ErrorCode::InvalidJson),
            ("not json", ErrorCode::InvalidJson),
            ("[1,2]", ErrorCode::BadRequest),
            (r#"[1,"chat"]"#, ErrorCode::BadRequest),
            ("[1,", ErrorCode::InvalidJson),
            ("42", ErrorCode::BadRequest),
            (r#"{"text":"no type"}"#, ErrorCode::BadRequest),
            (r#"{"type":7}"#, ErrorCode::BadRequest),
            (r#"{"type":"shout","text":"x"}"#, ErrorCode::UnknownType),
            (
                r#"{"v":2,"type":"chat","text":"x"}"#,
                ErrorCode::UnsupportedVersion,
            ),
            (r#"{"type":"chat"}"#, ErrorCode::BadRequest),
            (r#"{"type":"chat","text":5}"#, ErrorCode::BadRequest),
            (r#"{"type":"chat","text":"   "}"#, ErrorCode::Empty),
            (
                r#"{"type":"chat","text":"123456789012345678901"}"#,
                ErrorCode::TooLong,
            ),
            (
                r#"{"type":"chat","text":"x","pdt":-5}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"type":"chat","text":"x","pdt":"soon"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"type":"chat","text":"x","pdt":1e300}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"type":"chat","text":"x","nonce":"a b"}"#,
                ErrorCode::BadRequest,
            ),
            (r#"{"type":"react","emoji":"💩"}"#, ErrorCode::BadEmoji),
            (r#"{"type":"react"}"#, ErrorCode::BadRequest),
            (r#"{"type":"delete","id":"1"}"#, ErrorCode::BadRequest),
            (r#"{"type":"ban"}"#, ErrorCode::BadRequest),
            (
                r#"{"type":"stream","state":"paused"}"#,
                ErrorCode::BadRequest,
            ),
            (r#"{"type":"notice","text":""}"#, ErrorCode::BadRequest),
        ];
        for (frame, want) in cases {
            assert_eq!(code(frame), want, "{frame}");
        }
    }

    #[test]
    fn server_messages() {
        let chat = ChatMessage {
            id: 7,
            user: "u1".into(),
            name: "<Al>".into(),
            text: "\"hi\"".into(),
            pdt: Some(1_790_000_000_000),
            ts: 1_790_000_002_000,
            moderator: false,
            nonce: None,
        };
        let cases = [
            (
                ServerMessage::Chat(chat.clone()),
                r#"{"v":1,"type":"chat","id":7,"user":"u1","name":"<Al>","text":"\"hi\"","pdt":1790000000000,"ts":1790000002000}"#,
            ),
            (
                ServerMessage::Chat(ChatMessage {
                    moderator: true,
                    pdt: None,
                    nonce: Some("n1".into()),
                    ..chat.clone()
                }),
                r#"{"v":1,"type":"chat","id":7,"user":"u1","name":"<Al>","text":"\"hi\"","pdt":null,"ts":1790000002000,"mod":true,"nonce":"n1"}"#,
            ),
            (
                ServerMessage::Reactions {
                    counts: vec![ReactionCount {
                        emoji: "❤️",
                        pdt: Some(1_790_000_000_000),
                        n: 12,
                    }],
                    ts: 5,
                },
                r#"{"v":1,"type":"reactions","counts":[{"emoji":"❤️","pdt":1790000000000,"n":12}],"ts":5}"#,
            ),
            (
                ServerMessage::Delete { ids: vec![7] },
                r#"{"v":1,"type":"delete","ids":[7]}"#,
            ),
            (
                ServerMessage::System(SystemEvent::Viewers { viewers: 3 }),
                r#"{"v":1,"type":"system","event":"viewers","viewers":3}"#,
            ),
            (
                ServerMessage::System(SystemEvent::StreamEnded { session: None }),
                r#"{"v":1,"type":"system","event":"stream_ended"}"#,
            ),
            (
                ServerMessage::System(SystemEvent::StreamStarted {
                    session: Some("69a0c8e1f3b2a417".into()),
                }),
                r#"{"v":1,"type":"system","event":"stream_started","session":"69a0c8e1f3b2a417"}"#,
            ),
            (
                ServerMessage::Error {
                    code: ErrorCode::RateLimited,
                    message: "slow down".into(),
                    retry_ms: Some(800),
                },
                r#"{"v":1,"type":"error","code":"rate_limited","message":"slow down","retry_ms":800}"#,
            ),
            (
                ServerMessage::History {
                    messages: vec![chat.clone()],
                    reactions: vec![],
                    events: vec![],
                    more: None,
                },
                r#"{"v":1,"type":"history","messages":[{"id":7,"user":"u1","name":"<Al>","text":"\"hi\"","pdt":1790000000000,"ts":1790000002000}]}"#,
            ),
            (
                ServerMessage::History {
                    messages: vec![],
                    reactions: vec![],
                    events: vec![
                        StreamRecord {
                            id: 1,
                            event: StreamState::Started,
                            session: Some("69a0c8e1f3b2a417".into()),
                            ts: 1790000000000,
                        },
                        StreamRecord {
                            id: 2,
                            event: StreamState::Ended,
                            session: None,
                            ts: 1790000009000,
                        },
                    ],
                    more: Some(false),
                },
                r#"{"v":1,"type":"history","messages":[],"events":[{"id":1,"event":"stream_started","session":"69a0c8e1f3b2a417","ts":1790000000000},{"id":2,"event":"stream_ended","ts":1790000009000}],"more":false}"#,
            ),
            (
                ServerMessage::Pong { ts: 9, nonce: None },
                r#"{"v":1,"type":"pong","ts":9}"#,
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(msg.to_json(), want);
        }
    }

    #[test]
    fn error_codes_render_as_documented() {
        let all = [
            ErrorCode::InvalidJson,
            ErrorCode::BadRequest,
            ErrorCode::UnknownType,
            ErrorCode::UnsupportedVersion,
            ErrorCode::TooLarge,
            ErrorCode::Binary,
            ErrorCode::TooLong,
            ErrorCode::Empty,
            ErrorCode::BadEmoji,
            ErrorCode::RateLimited,
            ErrorCode::NotAllowed,
            ErrorCode::NotFound,
            ErrorCode::Banned,
            ErrorCode::Unavailable,
        ];
        for c in all {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
    }

    #[test]
    fn emoji() {
        for e in EMOJI {
            assert_eq!(Emoji::parse(e).unwrap().as_str(), e);
        }
        assert_eq!(Emoji::parse("x"), None);
        assert_eq!(Emoji::parse(""), None);
    }
}
