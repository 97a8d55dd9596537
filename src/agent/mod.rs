//! Agent mode (issue 6): the pieces of the daemon that probes on a schedule and ships reports.

pub mod config;
pub mod spool;
