//! One file per check: its measurement. Each check returns typed evidence (report crate types)
//! whose `Check` impl, which turns it into a report record, is the check's pure half in the
//! diagnosis crate's file of the same name (`vpce_probe_diagnosis::reading`); checks never
//! print. A check that is a slice (slice.rs) also declares when it runs here and its finding
//! rules there, and is registered by one line in `slices!` below: the scheduler, the report's
//! assembly and diagnosis find it there.

pub mod app_resolve;
pub mod calls;
pub mod dns;
pub mod dynamodb;
#[cfg(feature = "control-plane")]
pub mod ec2;
pub mod host;
pub mod identity;
pub mod imds;
#[cfg(feature = "control-plane")]
pub mod reachability;
pub mod region;
pub mod s3;
pub mod slice;
pub mod tcp;
pub mod tls;

// Pure halves with no measurement of their own here: the control plane's reading (its reads are
// ec2.rs) and glibc's search walk.
pub use vpce_probe_diagnosis::reading::{Check, control_plane, libc_search};

/// Declares each slice's module and lists it in `SLICES` (its measurement, for the scheduler)
/// and in `SLICE_RULES` (its rules, for diagnosis): one line per slice, `name => VALUE`, VALUE
/// being the slice's unit struct, which implements the diagnosis crate's `SliceRules` there and
/// `Slice` in its module here. The slices after the `;` are the checks whose rules were steps
/// of diagnosis's stages before they were slices, and stay there (where they run decides the
/// findings' order): they are in `SLICES` only, so that no rule runs twice.
macro_rules! slices {
    (
        $($module:ident => $slice:ident,)*
        ;
        $($staged_module:ident => $staged_slice:ident,)*
    ) => {
        $(pub mod $module;)*
        $(pub mod $staged_module;)*
        /// Every registered slice, in registration order: the order their stages start and
        /// their records come in the report.
        pub const SLICES: &[&dyn slice::Slice] =
            &[$(&$module::$slice,)* $(&$staged_module::$staged_slice,)*];
        /// The finding rules of the slices before the `;`, in the same order: the order they
        /// run in diagnosis, after its stages' steps.
        pub const SLICE_RULES: &[&dyn slice::SliceRules] = &[$(&$module::$slice,)*];
    };
}

// The registry of slices: a new check is its module and one line here.
slices! {
    // module => its `impl Slice` (and, in the diagnosis crate, `impl SliceRules`). The order
    // is the order of their records in the report, in the place each declares
    // (`Slice::records_at`: after the TLS checks, or last).
    hops => HopsSlice,
    nacl => NaclSweepSlice,
    canary => CanarySlice,
    ;
    // Rules in diagnosis's stages (diagnose/mod.rs `HOST_STEPS`, `NAME_STEPS`).
    proxy => ProxySlice,
}
