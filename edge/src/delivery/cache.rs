//! What the edge caches, for how long, and under which key.
//!
//! | kind | edge TTL (default) | why |
//! |---|---|---|
//! | init, part, segment | 1 year | the URL carries the publish session: the bytes never change |
//! | media playlist with `_HLS_msn` | 6 s | a blocking response describes a fixed state (the origin says `max-age=6`) |
//! | media playlist reload, multivariant | 0 (shared in flight only) | changes with every part |
//! | VOD init, segment, poster, thumbnails, sprites | 1 year | immutable (the origin says so) |
//! | VOD multivariant, media and I-frame playlists, MPD | 60 s | static once the asset is ready (origin: `max-age=60`) |
//! | steering manifest, VOD `status`, other | never | made per viewer / polled for changes / unknown |
//!
//! The origin can only shorten this: a response that is not `200`, or says
//! `no-store`, `no-cache` or `private`, is never stored, and a shorter
//! `max-age` wins.
//!
//! **The cache key never holds per-viewer data.** It is the path plus the
//! LL-HLS delivery directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) in a
//! fixed order; the token and every other query parameter are dropped before
//! the key is made, and the origin is asked for exactly that key's URL.
//! Playlists are stored as the origin wrote them and personalized after.
//!
//! **Range requests are never shared or stored** (`delivery::upstream`):
//! the origin answers them (206) and the edge passes that on. Only `200`s
//! are stored, so a partial body can never be kept as the object; and a
//! range request never joins a full-object flight, nor a full request a
//! range one. Serving ranges out of a stored whole object would save origin
//! requests (I-frame playlists are all byte ranges) but needs the edge to
//! parse and answer `Range` itself; passing them through is correct by
//! construction.

use serde::Deserialize;

use crate::query;
use crate::route::{Kind, VodKind};

/// Query parameters that change what the origin answers (RFC 8216bis
/// 6.2.5): the only ones forwarded and part of the cache key, in this order.
pub const DIRECTIVES: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];

/// `cache` in the edge config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CachePolicy {
    /// Edge TTL of init sections, parts and segments, in s. Default: 31536000.
    pub object_ttl_s: u32,
    /// Edge TTL of blocking media playlist responses (`_HLS_msn` set), in s.
    /// Default: 6.
    pub blocking_playlist_ttl_s: u32,
    /// Edge TTL of multivariant playlists and plain media playlist reloads,
    /// in s. Default: 0 (identical requests in flight still share one origin
    /// request).
    pub playlist_ttl_s: u32,
    /// Edge TTL of VOD playlists (multivariant, media, I-frame) and MPDs,
    /// in s. Default: 60.
    pub vod_manifest_ttl_s: u32,
    /// Bodies larger than this (by `Content-Length`) are streamed through
    /// instead of being shared or stored, in bytes. Default: 16777216.
    pub max_shared_bytes: u64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            object_ttl_s: 31_536_000,
            blocking_playlist_ttl_s: 6,
            playlist_ttl_s: 0,
            vod_manifest_ttl_s: 60,
            max_shared_bytes: 16 << 20,
        }
    }
}

/// The parts of a request the cache decisions depend on.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub kind: Kind,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl Lookup<'_> {
    /// A blocking playlist reload (`_HLS_msn` present).
    pub fn is_blocking(&self) -> bool {
        self.query
            .is_some_and(|q| query::params(q).any(|(k, _)| k == "_HLS_msn"))
    }

    /// Whether the origin may hold this request before answering: live
    /// playlists (blocking reload, or a stream still starting) and
    /// preload-hinted parts. VOD answers at once.
    pub fn is_holdable(&self) -> bool {
        matches!(
            self.kind,
            Kind::Multivariant | Kind::MediaPlaylist | Kind::Mpd | Kind::Part
        )
    }

    /// The query the origin gets: the directives, nothing else, in the
    /// [`DIRECTIVES`] order (`None` when there are none).
    pub fn upstream_query(&self) -> Option<String> {
        let q = self.query?;
        let mut out = String::new();
        for name in DIRECTIVES {
            if let Some(value) = query::param(q, name) {
                if !out.is_empty() {
                    out.push('&');
                }
                out.push_str(name);
                out.push('=');
                out.push_str(&query::encode_component(&value));
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The cache key: `base` (scheme and host) + path + upstream query.
    pub fn key(&self, base: &str) -> String {
        let mut key = format!("{}{}", base.trim_end_matches('/'), self.path);
        if let Some(q) = self.upstream_query() {
            key.push('?');
            key.push_str(&q);
        }
        key
    }

    /// Whether identical requests in flight share one origin request. Kinds
    /// made at the edge, and unknown ones (which may stream for long), do not.
    pub fn is_shared(&self) -> bool {
        self.kind.is_manifest() || self.kind.is_object()
    }

    /// The edge TTL by kind, before the origin's say.
    pub fn ttl(&self, policy: &CachePolicy) -> u32 {
        match self.kind {
            Kind::Init | Kind::Part | Kind::Segment => policy.object_ttl_s,
            Kind::MediaPlaylist if self.is_blocking() => policy.blocking_playlist_ttl_s,
            Kind::Multivariant | Kind::MediaPlaylist | Kind::Mpd => policy.playlist_ttl_s,
            Kind::SteeringHls | Kind::SteeringDash | Kind::Other => 0,
            Kind::Vod(k) => match k {
                VodKind::Init | VodKind::Segment | VodKind::Image => policy.object_ttl_s,
                VodKind::Multivariant
                | VodKind::MediaPlaylist
                | VodKind::IFramePlaylist
                | VodKind::Mpd => policy.vod_manifest_ttl_s,
                VodKind::Status | VodKind::Other => 0,
            },
        }
    }

    /// How long to keep an origin response in the Cache API, if at all.
    pub fn store_for(
        &self,
        policy: &CachePolicy,
        status: u16,
        cache_control: Option<&str>,
    ) -> Option<u32> {
        if status != 200 {
            return None;
        }
        let cc = CacheControl::parse(cache_control.unwrap_or(""));
        if cc.no_store || cc.no_cache || cc.private {
            return None;
        }
        let ttl = match cc.max_age {
            Some(origin) => self.ttl(policy).min(origin),
            None => self.ttl(policy),
        };
        (ttl > 0).then_some(ttl)
    }
}

/// The `Cache-Control` directives the edge acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    /// `s-maxage` if present, else `max-age`.
    pub max_age: Option<u32>,
}

impl CacheControl {
    pub fn parse(value: &str) -> Self {
        let mut out = Self::default();
        let mut s_maxage = None;
        for directive in value.split(',') {
            let (name, arg) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n, Some(a)));
            let seconds = || arg.and_then(|a| a.trim().trim_matches('"').parse::<u32>().ok());
            match name.trim().to_ascii_lowercase().as_str() {
                "no-store" => out.no_store = true,
                "no-cache" => out.no_cache = true,
                "private" => out.private = true,
                "max-age" => out.max_age = seconds(),
                "s-maxage" => s_maxage = seconds(),
                _ => {}
            }
        }
        if s_maxage.is_some() {
            out.max_age = s_maxage;
        }
        out
    }
}

/// `Cache-Control` for a personalized manifest: it carries the viewer's
/// token, so no shared cache (a CDN in front of this one) may keep it.
/// `origin` is the origin's header for the unpersonalized manifest.
pub fn personalized_cache_control(origin: Option<&str>) -> String {
    match CacheControl::parse(origin.unwrap_or("")).max_age {
        Some(age) if age > 0 => format!("private, max-age={age}"),
        _ => "private, no-cache".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(kind: Kind, query: Option<&'static str>) -> Lookup<'static> {
        Lookup {
            kind,
            path: "/live/cam1/S/media.m3u8",
            query,
        }
    }

    #[test]
    fn keys_never_hold_viewer_data() {
        let tok = "__token__=exp%3D1~acl%3D%2Flive%2Fcam1%2F%2A~hmac%3D00";
        let cases = [
            (None, "https://e.example/live/cam1/S/media.m3u8"),
            (Some(""), "https://e.example/live/cam1/S/media.m3u8"),
            (Some(tok), "https://e.example/live/cam1/S/media.m3u8"),
            (
                Some("_HLS_part=3&__token__=abc&_HLS_msn=12&utm=x"),
                "https://e.example/live/cam1/S/media.m3u8?_HLS_msn=12&_HLS_part=3",
            ),
            (
                Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES"),
                "https://e.example/live/cam1/S/media.m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES",
            ),
            (
                Some("_HLS_msn=1%202"),
                "https://e.example/live/cam1/S/media.m3u8?_HLS_msn=1%202",
            ),
        ];
        for (q, want) in cases {
            let l = lookup(Kind::MediaPlaylist, q);
            assert_eq!(l.key("https://e.example/"), want, "{q:?}");
        }
        let with_token = lookup(Kind::MediaPlaylist, Some(tok));
        assert_eq!(with_token.upstream_query(), None);
    }

    #[test]
    fn ttl_by_kind_and_origin() {
        let p = CachePolicy::default();
        let imm = Some("public, max-age=31536000, immutable");
        let cases = [
            (Kind::Segment, None, 200, imm, Some(31_536_000)),
            (Kind::Part, None, 200, imm, Some(31_536_000)),
            (Kind::Init, None, 200, Some("max-age=60"), Some(60)),
            (Kind::Init, None, 200, None, Some(31_536_000)),
            (Kind::Segment, None, 404, imm, None),
            (Kind::Segment, None, 200, Some("no-store"), None),
            (Kind::Segment, None, 200, Some("no-cache"), None),
            (Kind::Segment, None, 200, Some("private, max-age=9"), None),
            (
                Kind::MediaPlaylist,
                Some("_HLS_msn=5&_HLS_part=1"),
                200,
                Some("public, max-age=6"),
                Some(6),
            ),
            (
                Kind::MediaPlaylist,
                Some("_HLS_msn=5"),
                200,
                Some("public, max-age=60, s-maxage=2"),
                Some(2),
            ),
            (
                Kind::MediaPlaylist,
                None,
                200,
                Some("public, max-age=6"),
                None,
            ),
            (Kind::MediaPlaylist, None, 200, Some("no-cache"), None),
            (Kind::Multivariant, None, 200, Some("max-age=60"), None),
            (Kind::Other, None, 200, imm, None),
            (Kind::SteeringHls, None, 200, imm, None),
        ];
        for (kind, q, status, cc, want) in cases {
            assert_eq!(
                lookup(kind, q).store_for(&p, status, cc),
                want,
                "{kind:?} {q:?} {status} {cc:?}"
            );
        }
        let micro = CachePolicy {
            playlist_ttl_s: 1,
            ..CachePolicy::default()
        };
        assert_eq!(
            lookup(Kind::Multivariant, None).store_for(&micro, 200, Some("public")),
            Some(1)
        );
    }

    #[test]
    fn vod_ttls() {
        let p = CachePolicy::default();
        let imm = Some("public, max-age=31536000, immutable");
        let short = Some("public, max-age=60");
        let vod = |k| Lookup {
            kind: Kind::Vod(k),
            path: "/vod/0123456789abcdef0123456789abcdef/x",
            query: None,
        };
        use VodKind::*;
        let cases = [
            (Init, 200, imm, Some(31_536_000)),
            (Segment, 200, imm, Some(31_536_000)),
            (Image, 200, imm, Some(31_536_000)),
            (Segment, 206, imm, None),
            (Segment, 404, imm, None),
            (Multivariant, 200, short, Some(60)),
            (MediaPlaylist, 200, short, Some(60)),
            (IFramePlaylist, 200, short, Some(60)),
            (Mpd, 200, short, Some(60)),
            (Mpd, 200, Some("public, max-age=10"), Some(10)),
            (Multivariant, 404, short, None),
            (Status, 200, Some("no-store"), None),
            (Status, 200, imm, None),
            (Other, 200, imm, None),
        ];
        for (kind, status, cc, want) in cases {
            assert_eq!(
                vod(kind).store_for(&p, status, cc),
                want,
                "{kind:?} {status} {cc:?}"
            );
            assert!(!vod(kind).is_holdable(), "{kind:?}");
        }
        assert!(vod(Segment).is_shared() && vod(Image).is_shared() && vod(Mpd).is_shared());
        assert!(!vod(Status).is_shared() && !vod(Other).is_shared());
    }

    #[test]
    fn holdable_and_shared() {
        assert!(lookup(Kind::MediaPlaylist, None).is_holdable());
        assert!(lookup(Kind::Part, None).is_holdable());
        assert!(!lookup(Kind::Segment, None).is_holdable());
        assert!(lookup(Kind::Segment, None).is_shared());
        assert!(!lookup(Kind::Other, None).is_shared());
        assert!(!lookup(Kind::SteeringHls, None).is_shared());
        assert!(lookup(Kind::MediaPlaylist, Some("_HLS_msn=1")).is_blocking());
        assert!(!lookup(Kind::MediaPlaylist, Some("_HLS_part=1")).is_blocking());
    }

    #[test]
    fn cache_control() {
        let cc = CacheControl::parse("Public, MAX-AGE=\"6\", no-cache");
        assert_eq!(
            cc,
            CacheControl {
                no_cache: true,
                max_age: Some(6),
                ..Default::default()
            }
        );
        assert_eq!(CacheControl::parse("max-age=x").max_age, None);
        assert_eq!(
            personalized_cache_control(Some("public, max-age=6")),
            "private, max-age=6"
        );
        assert_eq!(
            personalized_cache_control(Some("no-cache")),
            "private, no-cache"
        );
        assert_eq!(personalized_cache_control(None), "private, no-cache");
    }
}
