//! What the fetch handler decides about a `/chat/` request before the
//! stream's room sees it: which methods each endpoint takes, which path the
//! token is checked against, and the internal URL the room is called at
//! (only what the room needs: the token goes no further than the edge).
//!
//! ```text
//! first_step(kind, method, upgrade)   preflight | 405 | 426 | admit
//! admit against access_path(stream)   401 / 403 / 451
//! moderation: a token with the stream's moderator claim, else 401 / 403
//! room_url(..)                         https://room/connect?<identity> | /history?from&to&limit | /moderate
//! ```

use super::identity::{self, Identity};
use super::notices::StreamEvent;
use crate::access::token::Grant;
use crate::query;
use crate::route::ChatKind;

/// Largest moderation request body, in bytes.
pub const MAX_MODERATION_BODY: usize = 16 * 1024;

/// What to do with a `/chat/` request before any token is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A CORS preflight (not for the socket, which browsers never preflight).
    Preflight,
    /// 405 with this `Allow` header.
    MethodNotAllowed(&'static str),
    /// 426: the socket endpoint without `Upgrade: websocket`.
    UpgradeRequired,
    /// Check the token and geo rule, then call the room.
    Admit,
}

/// The `Allow` header of an endpoint.
pub fn allowed_methods(kind: ChatKind) -> &'static str {
    match kind {
        ChatKind::Moderate => "GET, POST",
        ChatKind::Socket | ChatKind::History => "GET",
    }
}

/// The first decision about a request: `method` as sent (case-sensitive),
/// `upgrade` the `Upgrade` header.
pub fn first_step(kind: ChatKind, method: &str, upgrade: Option<&str>) -> Step {
    let socket = kind == ChatKind::Socket;
    if method == "OPTIONS" && !socket {
        return Step::Preflight;
    }
    let allowed = match kind {
        ChatKind::Socket | ChatKind::History => method == "GET",
        ChatKind::Moderate => method == "GET" || method == "POST",
    };
    if !allowed {
        return Step::MethodNotAllowed(allowed_methods(kind));
    }
    if socket && !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Step::UpgradeRequired;
    }
    Step::Admit
}

/// The path the request's token must open: the stream's chat, for every
/// endpoint (moderation needs more: [`moderation_refused`]).
pub fn access_path(stream: &str) -> String {
    identity::access_path(stream)
}

/// Why a request the token check admitted may still not moderate: no
/// verified token at all (even where viewers need none), or one without the
/// stream's moderator claim ([`identity::moderates`]). `None` for the other
/// endpoints.
pub fn moderation_refused(kind: ChatKind, grant: Option<&Grant>, stream: &str) -> Option<Refused> {
    if kind != ChatKind::Moderate {
        return None;
    }
    match grant {
        None => Some(Refused::NoToken),
        Some(g) if !identity::is_moderator(g, stream) => Some(Refused::NotModerator),
        Some(_) => None,
    }
}

/// Why moderation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// 401: no verified token.
    NoToken,
    /// 403: a token without the moderator claim.
    NotModerator,
}

/// The room's URL for the socket of `identity`.
pub fn connect_url(identity: &Identity) -> String {
    format!("https://room/connect?{}", identity.to_query())
}

/// The room's URL for a history request: only the range parameters of
/// the viewer's `query`.
pub fn history_url(query: Option<&str>) -> String {
    let mut q = String::new();
    for (k, v) in query::params(query.unwrap_or("")) {
        if matches!(&*k, "from" | "to" | "limit") {
            query::append_param(&mut q, &k, &query::encode_component(&v));
        }
    }
    format!("https://room/history{q}")
}

/// The room's moderation URL.
pub const MODERATE_URL: &str = "https://room/moderate";

/// The room's URL for a publish session the edge saw start or end.
pub fn announce_url(event: &StreamEvent) -> String {
    format!("https://room/announce?{}", event.to_query())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_steps() {
        use ChatKind::*;
        let cases = [
            (Socket, "GET", Some("websocket"), Step::Admit),
            (Socket, "GET", Some("WebSocket"), Step::Admit),
            (Socket, "GET", None, Step::UpgradeRequired),
            (Socket, "GET", Some("h2c"), Step::UpgradeRequired),
            (Socket, "OPTIONS", None, Step::MethodNotAllowed("GET")),
            (
                Socket,
                "POST",
                Some("websocket"),
                Step::MethodNotAllowed("GET"),
            ),
            (History, "GET", None, Step::Admit),
            (History, "OPTIONS", None, Step::Preflight),
            (History, "POST", None, Step::MethodNotAllowed("GET")),
            (Moderate, "POST", None, Step::Admit),
            (Moderate, "GET", None, Step::Admit),
            (Moderate, "OPTIONS", None, Step::Preflight),
            (
                Moderate,
                "DELETE",
                None,
                Step::MethodNotAllowed("GET, POST"),
            ),
            (Moderate, "post", None, Step::MethodNotAllowed("GET, POST")),
        ];
        for (kind, method, upgrade, want) in cases {
            assert_eq!(
                first_step(kind, method, upgrade),
                want,
                "{kind:?} {method} {upgrade:?}"
            );
        }
    }

    #[test]
    fn paths_and_room_urls() {
        assert_eq!(access_path("cam1"), "/live/cam1/chat");
        let viewer = Grant {
            acl: vec!["*".into()],
            ..Grant::default()
        };
        let moderator = Grant {
            data: Some("mod:cam1".into()),
            ..viewer.clone()
        };
        let m = ChatKind::Moderate;
        assert_eq!(moderation_refused(m, None, "cam1"), Some(Refused::NoToken));
        assert_eq!(
            moderation_refused(m, Some(&viewer), "cam1"),
            Some(Refused::NotModerator)
        );
        assert_eq!(moderation_refused(m, Some(&moderator), "cam1"), None);
        assert_eq!(
            moderation_refused(m, Some(&moderator), "cam2"),
            Some(Refused::NotModerator)
        );
        assert_eq!(moderation_refused(ChatKind::History, None, "cam1"), None);
        assert_eq!(
            history_url(Some("__token__=secret&from=1&to=2&limit=3&x=y")),
            "https://room/history?from=1&to=2&limit=3"
        );
        assert_eq!(history_url(None), "https://room/history");
        let id = Identity {
            user: "u1".into(),
            ..Identity::default()
        };
        assert_eq!(connect_url(&id), "https://room/connect?user=u1");
    }
}
