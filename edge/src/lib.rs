//! Brook's edge: a Cloudflare Worker in front of the origins.
//!
//! Everything that decides something is plain Rust that builds and tests
//! natively; only `bindings` (compiled for `wasm32` alone) touches the `worker`
//! crate. A request runs through it like this:
//!
//! ```text
//! match route(path) {                                              // route.rs + brook_common::{LivePath,VodPath}: 404 first
//!     Route::Live(live) | Route::Vod(vod) => {                      // one serving path (route::Media)
//!         let edge = Edge::new(EDGE_CONFIG, ORIGIN_URL)?;            // config.rs   (500 if invalid)
//!         let ok = access::admit(&edge, &keys, &request)?;          // access/     401 / 403 / 451
//!         live: the stream's origins, with origins.directory        // delivery/directory.rs  404 none
//!         if the query has CMCD=: qoe::Cmcd::parse, recorded          // qoe/        Analytics Engine + this isolate
//!         if token has caps && live is a rendition's playlist/object:
//!             ladders.check(..) (the stream's/asset's multivariant) // access/caps.rs  403 / 503
//!         match live.kind {
//!             SteeringHls | SteeringDash => steering manifest       // steering.rs
//!             _ => {
//!                 let key = cache::Lookup{..}.key(host);            // delivery/cache.rs    no viewer data
//!                 Cache API hit, or join the in-flight request      // delivery/coalesce.rs
//!                 for region in origins::order(..) { fetch }        // delivery/origins.rs  failover + health
//!                 body shared while it arrives                      // delivery/shared.rs
//!                 if manifest: manifest::personalize(..)            // manifest/   token, filter, steering
//!             }
//!         }
//!     }
//!     Route::Chat(chat) => same token check and geo rule, then     // chat/        (docs/chat.md)
//!         the stream's room, a Durable Object                     // bindings/chat_room.rs
//!     Route::License(path) => same token check and geo rule, then  // access/license.rs (docs/drm.md)
//!         ClearKey keys from the origin (KEY_FETCH_TOKEN), cached <= 30 s
//!     Route::Metrics => metrics::Metrics::render()                  // metrics.rs  (METRICS_TOKEN)
//!     Route::Beacon(path) => same token check and geo rule, then   // qoe/beacon.rs (docs/qoe.md)
//!         the player's beacon recorded like CMCD
//!     Route::Qoe => qoe::Aggregator::report() as JSON              // qoe/aggregate.rs (METRICS_TOKEN or admin token)
//!     Route::Streams => the origin's /admin/streams                 // (the caller's admin token)
//!     Route::Directory => an origin's heartbeat, to the directory   // delivery/directory.rs (DIRECTORY_TOKEN)
//!     Route::NotFound => 404,
//! }
//! ```
//!
//! The viewer page is not served from here: `wrangler.toml` publishes `web/`
//! as static assets and sends only `/live/*`, `/vod/*`, `/chat/*` and
//! `/_brook/*` to the Worker first. Tokens are
//! described in docs/tokens.md, the rest in docs/edge.md.

#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]

pub mod access;
pub mod ads;
pub mod chat;
pub mod config;
pub mod delivery;
pub mod manifest;
pub mod metrics;
pub mod qoe;
pub mod query;
pub mod route;
pub mod steering;

#[cfg(target_arch = "wasm32")]
mod bindings;

pub use config::Edge;
pub use delivery::headers::{forward_headers, is_hop_by_hop};
pub use delivery::origins::Origin;
pub use route::{
    is_allowed_method, route, Kind, Live, Media, Route, Vod, VodKind, ALLOWED_METHODS,
};

/// Everything that can go wrong in the edge logic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An origin URL is not an absolute `http://` or `https://` URL without
    /// query or fragment.
    #[error("origin URL {value:?} is invalid: {reason}")]
    InvalidOriginUrl {
        /// The configured value, as found.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The edge config (`EDGE_CONFIG` / KV) is not valid.
    #[error("edge config: {0}")]
    InvalidConfig(String),
    /// The `TOKEN_KEYS` secret is not valid.
    #[error("TOKEN_KEYS: {0}")]
    InvalidKeys(String),
}
