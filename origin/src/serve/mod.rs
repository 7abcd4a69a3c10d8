//! Delivery: what each stream serves (`hub`) and HTTP over Pingora (`http`).
//! Media-agnostic: named byte objects, rendered manifests, and where each
//! manifest stands, filled in by the pipeline.

pub mod http;
pub mod hub;
