//! Streams that start when a viewer asks for them. The serving layer knows
//! stream names only: it tells a [`Demand`] "stream X was asked for" and, when
//! the answer is yes, holds the request until the hub has the stream
//! ([`crate::serve::hub::Hub::subscribe_started`]) or `hls.startup_wait_ms`
//! passes. What starting means (calling an RTSP camera, say) is the
//! implementor's business.

/// Told about every request for a stream's playlists (multivariant, media,
/// MPD), whether or not the stream is running.
pub trait Demand: Send + Sync {
    /// A viewer asked for `stream`. True when this stream starts on demand:
    /// the caller may then wait for it to appear. Cheap and non-blocking (it
    /// is called on every playlist request); starting happens elsewhere.
    fn wanted(&self, stream: &str) -> bool;
}
