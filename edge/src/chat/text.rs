//! Cleaning what viewers type. The room never produces markup and clients
//! must render every string as text; this only removes what could disturb
//! plain-text rendering: control characters (line breaks become spaces) and
//! the bidirectional overrides and isolates that can make a line read
//! differently from what it holds.

/// Why a chat text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooLong,
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Control characters become spaces, bidi controls disappear, runs of
/// whitespace become one space, and the ends are trimmed.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if is_bidi_control(c) || c == '\u{FEFF}' {
            continue;
        }
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    out
}

/// A chat text: cleaned, then refused if empty or over `max_chars`
/// characters (never cut: the sender should know what was sent).
pub fn clean_text(s: &str, max_chars: usize) -> Result<String, TextError> {
    let out = clean(s);
    if out.is_empty() {
        return Err(TextError::Empty);
    }
    if out.chars().count() > max_chars {
        return Err(TextError::TooLong);
    }
    Ok(out)
}

/// A display name: cleaned and cut to `max_chars`; `None` if nothing is left.
pub fn clean_name(s: &str, max_chars: usize) -> Option<String> {
    let out: String = clean(s).chars().take(max_chars).collect();
    let out = out.trim_end().to_owned();
    (!out.is_empty()).then_some(out)
}

/// Client-chosen correlation ids: 1-64 of `A-Z a-z 0-9 _ -`.
pub fn is_nonce(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let cases: &[(&str, Result<&str, TextError>)] = &[
            ("hello", Ok("hello")),
            ("  hello   world \n", Ok("hello world")),
            ("a\r\nb\tc", Ok("a b c")),
            ("<b>x</b>", Ok("<b>x</b>")),
            ("\u{202E}evil\u{202C}", Ok("evil")),
            ("x\u{2066}y\u{2069}", Ok("xy")),
            ("\u{0}\u{7}\u{1b}[31m", Ok("[31m")),
            ("👨‍👩‍👧 fam", Ok("👨‍👩‍👧 fam")),
            ("", Err(TextError::Empty)),
            (" \n\t ", Err(TextError::Empty)),
            ("\u{202E}", Err(TextError::Empty)),
            ("éééééééééééé", Ok("éééééééééééé")),
            ("ééééééééééééé", Err(TextError::TooLong)),
        ];
        for (input, want) in cases {
            assert_eq!(
                clean_text(input, 12).as_deref().map_err(|e| *e),
                want.as_ref().map(|s| *s).map_err(|e| *e),
                "{input:?}"
            );
        }
        assert_eq!(clean_text("a b", 3), Ok("a b".into()));
    }

    #[test]
    fn names() {
        assert_eq!(clean_name("Alice", 8).as_deref(), Some("Alice"));
        assert_eq!(
            clean_name("  Bob \u{202E} Smith  ", 32).as_deref(),
            Some("Bob Smith")
        );
        assert_eq!(clean_name("abcd efgh", 5).as_deref(), Some("abcd"));
        assert_eq!(clean_name("日本語の名前です", 3).as_deref(), Some("日本語"));
        assert_eq!(clean_name(" \u{0} ", 5), None);
    }

    #[test]
    fn nonces() {
        assert!(is_nonce("a"));
        assert!(is_nonce("n-1_X"));
        assert!(!is_nonce(""));
        assert!(!is_nonce("a b"));
        assert!(!is_nonce(&"x".repeat(65)));
    }
}
