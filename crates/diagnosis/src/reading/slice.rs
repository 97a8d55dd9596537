//! A slice's pure half: its finding rules, run by diagnosis after its own (the probe's
//! checks/slice.rs is the other half, the measurement and its moment, on the same type). Apart
//! from mod.rs's `Check` so that the reading of a result needs nothing of the rules.

use crate::findings::{HostRule, NameRule, TargetRule};

/// A slice's finding rules (the probe's `Slice` adds its measurement and moment on top);
/// everything has a default, so a slice says only what it judges. Diagnosis runs them after
/// its own rules, in the order the slices are given to `diagnose`.
pub trait SliceRules: Sync {
    /// Its rules about the host, run after diagnosis's own host rules.
    fn host_rules(&self) -> &'static [HostRule] {
        &[]
    }
    /// Its rules about each name of a target, run after diagnosis's own name rules.
    fn name_rules(&self) -> &'static [NameRule] {
        &[]
    }
    /// Its rules about a target, run after diagnosis's own target rules.
    fn target_rules(&self) -> &'static [TargetRule] {
        &[]
    }
}
