//! The Workers runtime bindings (wasm32 only): the `#[event(fetch)]`
//! handler ([`fetch`], with its origin side in [`upstream`]), the chat
//! room Durable Object ([`chat_room`]) and the stream directory's
//! ([`directory`]), over runtime helpers both use
//! ([`io`]). They translate between `worker` types and the plain-Rust
//! modules of this crate, which decide everything.

mod ads;
mod chat_room;
mod directory;
mod fetch;
mod io;
mod license;
mod qoe;
mod upstream;
mod whep;

pub(crate) use chat_room::random_hex;
