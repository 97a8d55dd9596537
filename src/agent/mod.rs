//! Agent mode (issue 6): the daemon that probes on a schedule, exposes metrics and ships reports.

pub mod config;
pub mod daemon;
pub mod metrics;
pub mod shipper;
pub mod sinks;
pub mod spool;
