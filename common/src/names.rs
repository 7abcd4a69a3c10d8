//! The names that may appear in a `/live/` or `/vod/` URL. Anything else is refused
//! before it reaches a lookup, a token check or a file name.

/// Stream names: 1-64 of `[A-Za-z0-9_-]` (`cam1` publishes as `live/cam1`).
pub fn valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Publish session ids: exactly 16 hex digits (either case).
pub fn valid_session_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// VOD asset ids: exactly 32 lowercase hex digits (one spelling, so an
/// asset has one cache key and one token ACL).
pub fn valid_asset_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Object names within a session or an asset (`720p-part12.3.m4s`, `video.m3u8`,
/// `manifest.mpd`): 1-128 of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn valid_object_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Rendition names (`1080p`, `720p`, `source`, `video`, `audio`): 1-64 of
/// `[A-Za-z0-9_]`. No `-`, so an object name `<rendition>-<rest>` splits
/// at its first `-`.
pub fn valid_rendition_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        for (name, ok) in [
            ("cam1", true),
            ("Cam_1-B", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("cam.1", false),
            ("cam/1", false),
            ("..", false),
            ("café", false),
            ("cam 1", false),
            ("cam%31", false),
        ] {
            assert_eq!(valid_stream_name(name), ok, "{name:?}");
        }
    }

    #[test]
    fn session_ids() {
        for (id, ok) in [
            ("0a1b2c3d4e5f6a7b", true),
            ("0A1B2C3D4E5F6A7B", true),
            ("0a1b2c3d4e5f6a7", false),
            ("0a1b2c3d4e5f6a7b0", false),
            ("0a1b2c3d4e5f6a7g", false),
            ("", false),
        ] {
            assert_eq!(valid_session_id(id), ok, "{id:?}");
        }
    }

    #[test]
    fn asset_ids() {
        for (id, ok) in [
            ("0123456789abcdef0123456789abcdef", true),
            ("0123456789ABCDEF0123456789abcdef", false),
            ("0123456789abcdef0123456789abcde", false),
            ("0123456789abcdef0123456789abcdef0", false),
            ("0123456789abcdef0123456789abcdeg", false),
            ("", false),
        ] {
            assert_eq!(valid_asset_id(id), ok, "{id:?}");
        }
    }

    #[test]
    fn object_names() {
        let long = "a".repeat(128);
        let too_long = "a".repeat(129);
        for (name, ok) in [
            ("video-part12.3.m4s", true),
            ("720p-init2.mp4", true),
            ("manifest.mpd", true),
            ("index.m3u8", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            (".hidden", false),
            ("..", false),
            ("a/b", false),
            ("a b", false),
            ("a%2fb", false),
            ("a~b", false),
        ] {
            assert_eq!(valid_object_name(name), ok, "{name:?}");
        }
    }

    #[test]
    fn rendition_names() {
        for (name, ok) in [
            ("1080p", true),
            ("source", true),
            ("audio_en", true),
            ("A1", true),
            ("", false),
            ("720p-x", false),
            ("a.b", false),
        ] {
            assert_eq!(valid_rendition_name(name), ok, "{name:?}");
        }
    }
}
