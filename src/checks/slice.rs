//! A check as one vertical slice: its measurement and the moment of the run it belongs to (its
//! module here, `Slice`), and its finding rules and reading (the diagnosis crate's file of the
//! same name, `SliceRules` and `Check`), both halves on one unit struct registered by one line
//! in `checks::slices!` (checks/mod.rs). The scheduler runs every registered slice at the
//! stages it asks for, keeps what it measured in `ProbeResults::measured` (which the report's
//! assembly turns into check records, where the slice places them: `Slice::records_at`), and
//! diagnosis runs its rules after the rules that span checks. Its evidence type and finding
//! codes are the report crate's (the contract).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use super::dns::Resolvers;
use crate::endpoints::NameSocket;
use crate::net::Budget;
use crate::net::limits::Limits;
use crate::proxy_rules::ProxyEnv;
use crate::report::{AddressClass, AddressOrigin, CheckKind, HostFacts, ProxyEnvEvidence, Service};
use crate::results::Measurements;
pub use vpce_probe_diagnosis::reading::SliceRules;

/// The run, as it starts: what a slice's once-per-run measurement starts from. It runs beside
/// everything else (IMDS, the names' pipelines, the signed calls), and nothing waits for it.
#[derive(Clone, Copy)]
pub struct RunStage<'a> {
    /// `--internet-canary`'s host and port (None: turned off).
    pub internet_canary: Option<(&'a str, u16)>,
    /// The connect wait of the checks whose healthy answer is silence (`--silence-timeout`).
    pub silence_timeout: Duration,
    pub resolvers: &'a Resolvers,
    pub budget: Budget,
    pub limits: &'a Limits,
}

/// One address a name's applications connect to, as DNS (or the hosts file) gave it: what a
/// slice's per-address measurement starts from. It runs beside the address's TCP, TLS and hop
/// checks.
#[derive(Clone, Copy)]
pub struct AddressStage<'a> {
    pub name: &'a str,
    pub service: Service,
    pub ip: IpAddr,
    /// The port the clients connect to (443 unless an endpoint URL names another).
    pub port: u16,
    pub class: AddressClass,
    pub origin: AddressOrigin,
    pub budget: Budget,
    pub limits: &'a Limits,
    /// The run's claims: what a slice measures once per run, whichever name comes to it first.
    pub claims: &'a RunClaims,
}

/// What the slices have claimed in this run, each by its kind and socket address: a slice that
/// measures an address once per run (the hop check) claims it when a name's stage reaches it,
/// and lets the names that reach it later pass.
#[derive(Default)]
pub struct RunClaims(Mutex<BTreeSet<(&'static str, SocketAddr)>>);

impl RunClaims {
    /// True the first time `kind` claims `addr` in this run, false after.
    pub fn claim(&self, kind: CheckKind, addr: SocketAddr) -> bool {
        match self.0.lock() {
            Ok(mut claimed) => claimed.insert((kind.as_str(), addr)),
            Err(poisoned) => poisoned.into_inner().insert((kind.as_str(), addr)),
        }
    }
}

/// One name the applications use, as soon as the run knows it: what a slice's measurement
/// that needs no address starts from. It runs beside the name's DNS lookups (the proxy's
/// CONNECT probe: the proxy resolves the name itself).
#[derive(Clone, Copy)]
pub struct NameStartStage<'a> {
    pub name: &'a str,
    pub service: Service,
    /// Where the clients connect for the name: its port, and whether they speak TLS there.
    pub socket: NameSocket,
    /// The process's proxy variables as the run read them.
    pub proxy_vars: &'a ProxyEnv,
    /// What each client does with the proxy variables for the run's URLs (decided before any
    /// name's pipeline starts).
    pub proxy_env: &'a ProxyEnvEvidence,
    pub resolvers: &'a Resolvers,
    pub budget: Budget,
    pub limits: &'a Limits,
}

/// One name the applications resolve, once DNS gave its addresses: what a slice's per-name
/// measurement starts from. It runs beside the name's per-address checks.
#[derive(Clone, Copy)]
pub struct NameStage<'a> {
    pub name: &'a str,
    pub service: Service,
    /// The port the clients connect to (443 unless an endpoint URL names another).
    pub port: u16,
    /// The addresses the name's checks connect to: the applications' own first, then the VPC
    /// resolver's when they differ.
    pub addresses: &'a [(IpAddr, AddressClass, AddressOrigin)],
    /// The name is a target's regional name (S3's path-style name, DynamoDB's regional one),
    /// not a bucket's own name nor the account-based DynamoDB name.
    pub regional: bool,
    pub host: &'a HostFacts,
    pub budget: Budget,
    pub limits: &'a Limits,
}

/// A slice's measurement under way: what it measured, kept when it finishes.
pub type Measuring<'a> = Pin<Box<dyn Future<Output = Measurements> + Send + 'a>>;

/// A per-run or per-name measurement under way, with the id and subject of the record the
/// deadline makes of it if it does not finish (it has no address to name it by for it).
pub struct NamedMeasuring<'a> {
    pub id: String,
    pub subject: String,
    pub measuring: Measuring<'a>,
}

/// Where a slice's records come in the report, among those of the run's spine (the records'
/// order is part of the report's contract). Within a place, the slices' registration order,
/// then each check's record order (`Check::record_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordsAt {
    /// After the TLS checks, with the names' own records: the per-name and per-address
    /// slices' place.
    AfterConnections,
    /// Last, after the control plane's and Reachability Analyzer's records (before those the
    /// deadline cut short): the once-per-run internet canary's place.
    Last,
}

/// What a slice declares about its measurement; everything has a default, so a slice says only
/// what it does. Its rules are its `SliceRules` (the diagnosis crate), on the same type.
pub trait Slice: SliceRules {
    /// Its check kind: the deadline's record of an unfinished measurement says it.
    fn kind(&self) -> CheckKind;
    /// Whether a deadline that cuts its measurement short lists it as unfinished (the hop
    /// check, evidence for the path verdict only, never was: its unfinished traces are left
    /// out).
    fn named_by_deadline(&self) -> bool {
        true
    }
    /// Where its records come in the report (a kind's place is that of its first slice).
    fn records_at(&self) -> RecordsAt {
        RecordsAt::AfterConnections
    }
    /// Its measurement once per run, as the run starts, or None when it is not to run.
    fn per_run<'a>(&'a self, _stage: RunStage<'a>) -> Option<NamedMeasuring<'a>> {
        None
    }
    /// Its measurement of one address, or None when the address is not its business.
    fn per_address<'a>(&'a self, _stage: AddressStage<'a>) -> Option<Measuring<'a>> {
        None
    }
    /// Its measurement of one name as soon as the name is known (beside its DNS lookups), or
    /// None when the name is not its business.
    fn per_name_start<'a>(&'a self, _stage: NameStartStage<'a>) -> Option<NamedMeasuring<'a>> {
        None
    }
    /// Its measurement of one name, once its addresses are known, or None when the name is
    /// not its business.
    fn per_name<'a>(&'a self, _stage: NameStage<'a>) -> Option<NamedMeasuring<'a>> {
        None
    }
}
