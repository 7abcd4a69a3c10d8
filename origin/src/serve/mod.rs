//! Delivery: what each stream serves (`hub`) and HTTP over Pingora (`http`).
//! Media-agnostic: named byte objects, rendered manifests, and where each
//! manifest stands, filled in by the pipeline; streams started on a viewer's
//! request are asked for by name through `demand`.

pub mod demand;
pub mod http;
pub mod hub;
