//! Loopback fake servers for the integration tests.
//!
//! Every fake runs on its own background thread with its own current-thread
//! tokio runtime, binds synchronously before its `start_*` function returns,
//! and stops (closing every connection it holds) when its handle is dropped.
//! Fakes only ever talk to loopback addresses.
//!
//! Use from a test file with `mod support;`.

// The test harness: a set-up that fails should stop the test at once, so unwrap/expect are
// the right tool here (the crate denies them in production code).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code, unused_imports)]

mod ca;
mod collector;
mod dns;
mod front;
mod http;
mod imds;
mod moto;
mod proxy;
mod runtime;
mod tcp_sink;
mod timefmt;
mod tls;

pub use ca::{Leaf, TestCa};
pub use collector::{Collector, CollectorMode, Received, start_collector};
pub use dns::{DnsMode, DnsRecords, DnsServer, start_dns};
pub use front::{
    CANNED_OBJECT_KEY, CannedResponse, FrontOptions, FrontRule, FrontServer, healthy_target_rules,
    start_front,
};
pub use imds::{
    FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, FAKE_SESSION_TOKEN, ImdsFacts, ImdsMode,
    ImdsServer, start_imds,
};
#[cfg(feature = "control-plane")]
pub use moto::MotoVpc;
pub use moto::{MOTO_ACCOUNT_ID, MOTO_DEFAULT_PATH, MotoServer, moto};
pub use proxy::{ProxyMode, ProxyServer, start_connect_proxy};
pub use runtime::{READ_TIMEOUT, wait_until};
pub use tcp_sink::{TcpSink, start_tcp_sink};
pub use timefmt::rfc3339;
pub use tls::{TlsServer, start_tls};
