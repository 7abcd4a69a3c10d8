//! Server-side ad insertion's pure parts (issue 14): reading ad decision
//! servers' VAST answers ([`vast`]). Sans-IO like the rest of the edge's
//! logic; the Worker's bindings fetch.

pub mod vast;
