//! vpce-probe: proves from inside an EC2 instance whether S3 and DynamoDB traffic reaches the
//! services through the VPC's gateway endpoint, and names what is broken when it does not.
//!
//! Data flows one way: configuration → checks → results → diagnosis → report → renderers.

pub mod agent;
pub mod checks;
pub mod cli;
pub mod config;
pub mod durations;
pub mod endpoints;
pub mod fsread;
pub mod net;
pub mod proxy_env;
pub mod ranges;
pub mod run;
pub mod settings;

pub use run::run_once;
// The pure parts (results, the rules, the diagnosis: crates/diagnosis) and the report contract,
// under the paths the rest of the code (and its users) always had.
pub use vpce_probe_diagnosis::{classify, diagnose, findings, proxy_rules, results, vpc_rules};
pub use vpce_probe_report::{catalogue, escape, render, report};
