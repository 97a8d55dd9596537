//! vpce-probe: proves from inside an EC2 instance whether S3 and DynamoDB traffic reaches the
//! services through the VPC's gateway endpoint, and names what is broken when it does not.
//!
//! Data flows one way: configuration → checks → results → diagnosis → report → renderers.

pub mod agent;
pub mod checks;
pub mod classify;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod durations;
pub mod endpoints;
pub mod findings;
pub mod fsread;
pub mod net;
pub mod proxy_rules;
pub mod ranges;
pub mod results;
pub mod run;
pub mod settings;
pub mod vpc_rules;

pub use run::run_once;
// The report contract, under the paths the rest of the code (and its users) always had.
pub use vpce_probe_report::{catalogue, escape, render, report};
