//! Brook's edge: a Cloudflare Worker in front of the origin.
//!
//! Everything that decides something is plain Rust that builds and tests
//! natively; only [`glue`] (compiled for `wasm32` alone) touches the `worker`
//! crate. A request runs through it like this:
//!
//! ```text
//! match route(path) {
//!     Route::Live if is_allowed_method(method) => {
//!         let url = origin.url_for(path, query);          // same path + query
//!         let headers = forward_headers(client_headers);  // minus hop-by-hop
//!         fetch(url, headers) -> stream the body back with forward_headers(origin_headers)
//!                             or 502 when the origin is unreachable
//!     }
//!     Route::Live => 405,
//!     Route::NotFound => 404,
//! }
//! ```
//!
//! The viewer page is not served from here: `wrangler.toml` publishes `web/`
//! as static assets and sends only `/live/*` to the Worker first.

#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]

pub mod headers;
pub mod origin;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use headers::{forward_headers, is_hop_by_hop};
pub use origin::Origin;
pub use route::{is_allowed_method, route, Route, ALLOWED_METHODS};

/// Everything that can go wrong in the edge logic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `ORIGIN_URL` is not an absolute `http://` or `https://` URL without
    /// query or fragment.
    #[error("ORIGIN_URL {value:?} is invalid: {reason}")]
    InvalidOriginUrl {
        /// The configured value, as found.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}
