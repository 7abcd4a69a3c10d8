//! The Workers runtime bindings, one file each (wasm32 only): the
//! `#[event(fetch)]` handler ([`fetch`]) and the chat room Durable Object
//! ([`chat_room`]). They translate between `worker` types and the plain-Rust
//! modules of this crate, which decide everything.

mod chat_room;
mod fetch;
mod io;

pub(crate) use chat_room::random_hex;
