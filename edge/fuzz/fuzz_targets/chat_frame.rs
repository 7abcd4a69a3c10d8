//! Chat frames from any viewer (edge/src/chat/schema.rs): no panic, the same
//! answer twice, and what is accepted is what the room may act on and send
//! to everyone: texts and names cleaned (cleaning them again changes nothing)
//! and within the room's limits, nonces well-formed, times in range; the
//! accepted message written back as a frame parses to itself.
#![no_main]
use brook_edge::chat::schema::{parse_frame, ClientMessage, ParseLimits};
use brook_edge::chat::text::{clean_name, clean_text, is_nonce};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The message as a client would write it.
fn frame(m: &ClientMessage) -> Value {
    match m {
        ClientMessage::Join { name } => json!({"type": "join", "name": name}),
        ClientMessage::Chat { text, pdt, nonce } => {
            json!({"type": "chat", "text": text, "pdt": pdt, "nonce": nonce})
        }
        ClientMessage::React { emoji, pdt } => {
            json!({"type": "react", "emoji": emoji.as_str(), "pdt": pdt})
        }
        ClientMessage::Ping { nonce } => json!({"type": "ping", "nonce": nonce}),
        ClientMessage::Delete { id } => json!({"type": "delete", "id": id}),
        ClientMessage::Ban(b) => json!({
            "type": "ban", "user": b.user, "minutes": b.minutes, "ip": b.ip,
            "purge": b.purge, "reason": b.reason,
        }),
        ClientMessage::Unban { user } => json!({"type": "unban", "user": user}),
        ClientMessage::Notice { text } => json!({"type": "notice", "text": text}),
        ClientMessage::Stream { started } => {
            json!({"type": "stream", "state": if *started { "started" } else { "ended" }})
        }
    }
}

fn cleaned_text(s: &str, max: usize) {
    assert_eq!(clean_text(s, max).as_deref(), Ok(s), "{s:?}");
}

fn cleaned_name(s: &str, max: usize) {
    assert!(s.chars().count() <= max, "{s:?}");
    assert_eq!(clean_name(s, max).as_deref(), Some(s), "{s:?}");
}

fn time(t: Option<i64>) {
    assert!(
        t.is_none_or(|t| (1..9_000_000_000_000_000).contains(&t)),
        "{t:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    // Input: the room's text and name limits (a byte each, at least 1), then
    // the frame.
    let [text_max, name_max, rest @ ..] = data else {
        return;
    };
    let limits = ParseLimits {
        max_text_chars: usize::from(*text_max).max(1),
        max_name_chars: usize::from(*name_max).max(1),
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let parsed = parse_frame(text, limits);
    assert_eq!(parse_frame(text, limits), parsed);
    if let Some(sent) = parsed.sent {
        assert!((1..9_000_000_000_000_000).contains(&sent), "{sent}");
    }
    let Ok(message) = &parsed.message else {
        return;
    };
    match message {
        ClientMessage::Join { name } => {
            if let Some(name) = name {
                cleaned_name(name, limits.max_name_chars);
            }
        }
        ClientMessage::Chat { text, pdt, nonce } => {
            cleaned_text(text, limits.max_text_chars);
            time(*pdt);
            assert!(nonce.as_deref().is_none_or(is_nonce));
        }
        ClientMessage::React { pdt, .. } => time(*pdt),
        ClientMessage::Ping { nonce } => assert!(nonce.as_deref().is_none_or(is_nonce)),
        ClientMessage::Ban(b) => {
            if let Some(reason) = &b.reason {
                cleaned_name(reason, 200);
            }
        }
        ClientMessage::Notice { text } => cleaned_text(text, limits.max_text_chars),
        ClientMessage::Delete { .. }
        | ClientMessage::Unban { .. }
        | ClientMessage::Stream { .. } => {}
    }
    let again = frame(message).to_string();
    assert_eq!(
        parse_frame(&again, limits).message.as_ref(),
        Ok(message),
        "{again}"
    );
});
