//! Live chat and reactions: one room per stream, run by a Durable Object
//! (`bindings::chat_room`, wasm32 only) over the plain-Rust rules here, which build and
//! test natively on simulated time.
//!
//! ```text
//! GET /chat/<stream>  (Upgrade: websocket)                bindings/fetch.rs
//!   token checked as for /live/<stream>/chat, geo rule              access/ (401/403/451)
//!   identity = Identity::new(grant, token, ip)                      identity.rs
//!   → the room's Durable Object (id from the stream name)   bindings/chat_room.rs
//!       accept (hibernatable), attachment = Conn
//!       room.open(conn)        → welcome, history (last N)          room.rs
//!       each frame: room.frame(conn, frame)
//!         size / binary / JSON / schema checks                      schema.rs, text.rs
//!         token buckets per connection and address                  rate.rs
//!         chat → stored (SQLite) → broadcast                        store.rs
//!         react → counted per (emoji, PDT slot) for a window        reactions.rs
//!       alarm: room.wake() → one `reactions` message, viewer count
//! GET  /chat/<stream>/history?from=&to=   VOD replay by PDT range
//! POST /chat/<stream>/moderate            delete, ban, unban, notice, stream
//!
//! GET /live/<stream>/<session>/*.m3u8 served → Notices::observe      notices.rs
//!   → the room (after the response): room.announce(event)          started / ended, once
//! ```
//!
//! The schema, limits and moderation API are in docs/chat.md.

pub mod handoff;
pub mod identity;
pub mod limits;
pub mod notices;
pub mod rate;
pub mod reactions;
pub mod room;
pub mod schema;
pub mod store;
pub mod text;

#[cfg(test)]
mod tests;

pub use identity::Identity;
pub use limits::{Limits, Rate};
pub use notices::{Notices, StreamEvent};
pub use room::{Conn, Frame, HistoryQuery, Output, Room};
pub use schema::{ClientMessage, ErrorCode, ServerMessage, VERSION};
pub use store::{MemStore, Store};
