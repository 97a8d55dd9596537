//! A slice's pure half: its finding rules (the probe's checks/slice.rs is the other half, the
//! measurement and its moment, on the same type). A registered slice's rules run after
//! diagnosis's stages; an older check's (whose measurement run/ still schedules) are steps of
//! those stages, in diagnose/mod.rs. Apart from mod.rs's `Check` so that the reading of a result
//! needs nothing of the rules.

use crate::findings::{HostRule, NameRule, TargetRule};
#[cfg(test)]
use crate::{findings::Expectations, findings::Findings, report::Finding, results::ProbeResults};

/// A slice's finding rules (the probe's `Slice` adds its measurement and moment on top);
/// everything has a default, so a slice says only what it judges. Diagnosis runs a registered
/// slice's after its stages' steps, in the order the slices are given to `diagnose`.
pub trait SliceRules: Sync {
    /// Its rules about the host.
    fn host_rules(&self) -> &'static [HostRule] {
        &[]
    }
    /// Its rules about each name of a target.
    fn name_rules(&self) -> &'static [NameRule] {
        &[]
    }
    /// Its rules about a target.
    fn target_rules(&self) -> &'static [TargetRule] {
        &[]
    }
}

/// The findings one slice's rules make of `r`, in the order diagnosis runs them: its host
/// rules, then per target its name rules (per name) and its target rules. For the slices' own
/// tests: the rules judged without the rest of the diagnosis.
#[cfg(test)]
pub(crate) fn findings_of(
    slice: &dyn SliceRules,
    r: &ProbeResults,
    exp: &Expectations,
) -> Vec<Finding> {
    let mut f = Findings::default();
    for rule in slice.host_rules() {
        rule(r, exp, &mut f);
    }
    for t in &r.targets {
        for name in &t.endpoint_names {
            for rule in slice.name_rules() {
                rule(r, exp, t, name, &mut f);
            }
        }
        for rule in slice.target_rules() {
            rule(r, exp, t, &mut f);
        }
    }
    f.list
}

/// Bucket `b` reached through `name` only (for the slices' own tests).
#[cfg(test)]
pub(crate) use crate::fixtures::s3_target;
