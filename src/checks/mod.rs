//! One file per check. Each check returns typed evidence (report.rs types) and implements
//! `Check`, which turns that evidence into a report record; checks never print. A check that
//! is a slice (slice.rs) also declares when it runs and its finding rules, and is registered
//! by one line in `slices!` below: the scheduler, the report's assembly and diagnosis find
//! it there.

pub mod app_resolve;
pub mod calls;
pub mod canary;
pub mod control_plane;
pub mod dns;
pub mod dynamodb;
#[cfg(feature = "control-plane")]
pub mod ec2;
pub mod hops;
pub mod host;
pub mod identity;
pub mod imds;
pub mod libc_search;
pub mod proxy;
#[cfg(feature = "control-plane")]
pub mod reachability;
pub mod region;
pub mod s3;
pub mod slice;
pub mod tcp;
pub mod tls;

use crate::report::{CheckKind, CheckRecord, CheckStatus, Evidence};

/// Declares each slice's module and lists it in `SLICES`: one line per slice, `name => VALUE`,
/// VALUE being the slice's `impl Slice` (a unit struct) in its module.
macro_rules! slices {
    ($($module:ident => $slice:ident,)*) => {
        $(pub mod $module;)*
        /// Every registered slice, in registration order: the order their stages start and
        /// their rules run.
        pub const SLICES: &[&dyn slice::Slice] = &[$(&$module::$slice,)*];
    };
}

// The registry of slices: a new check is its module and one line here.
slices! {
    // module => its `impl Slice`
    nacl => NaclSweepSlice,
}

/// The common face of every check's result.
pub trait Check {
    const KIND: CheckKind;
    /// Stable id within a report, unique per check instance.
    fn id(&self) -> String;
    /// What the check was about: a name, an address, a URL.
    fn subject(&self) -> String;
    fn status(&self) -> CheckStatus;
    /// One line for the text report.
    fn summary(&self) -> String;
    fn duration_ms(&self) -> u64;
    fn evidence(&self) -> Evidence;

    fn record(&self) -> CheckRecord {
        CheckRecord {
            id: self.id(),
            check: Self::KIND,
            subject: self.subject(),
            status: self.status(),
            summary: self.summary(),
            duration_ms: self.duration_ms(),
            evidence: self.evidence(),
        }
    }
}
