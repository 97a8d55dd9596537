//! The report contract of vpce-probe: the report's types, the finding catalogue, the JSON
//! Schema they generate, and the text and JSON renderers. Plain data with serde only (no
//! tokio, no AWS SDK), so the probe, the agent and the collector share it and anything that
//! reads reports can depend on it alone.

pub mod catalogue;
pub mod denial;
pub mod escape;
pub mod proxy;
pub mod render;
pub mod report;
