//! Getting bytes from the origins to the viewer: bodies read with their
//! size checked while reading ([`body`]), what is cached and under
//! which key ([`cache`]), identical requests in flight sharing one origin
//! fetch ([`coalesce`]) and its body while it arrives ([`shared`]), which origin is asked and when to fail over
//! ([`origins`]; for live streams, the origins registered in the stream directory,
//! [`directory`]), which headers cross the proxy ([`headers`]), and what each kind of
//! answer carries back ([`upstream`]).

pub mod body;
pub mod cache;
pub mod coalesce;
pub mod directory;
pub mod headers;
pub mod origins;
pub mod shared;
pub mod upstream;
pub mod whep;
