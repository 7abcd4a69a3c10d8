//! Server-side ad insertion's pure parts (issue 14): reading ad decision
//! servers' VAST answers ([`vast`]), one viewer's ads for a break
//! ([`decision`]: the VAST request, the creatives, the asset list, when
//! beacons fire) and the HLS interstitials that announce breaks to players
//! ([`interstitial`]). Sans-IO like the rest of the edge's logic; the
//! Worker's bindings fetch (`bindings/ads.rs`). docs/ads.md.

pub mod decision;
pub mod interstitial;
pub mod vast;

pub use decision::{AdMode, AdsConfig};
