//! The vocabulary of finding rules, below both the checks' readings and diagnosis: the findings
//! a diagnosis collects, the expectations it judges against (with the plain values it reads of
//! the probe's configuration), and the signatures of a rule. A check's own rules (a slice's,
//! reading/slice.rs) and diagnosis's rules that span checks (path verdicts, root causes) speak
//! it, so a slice can hold its rules without importing diagnosis. Pure: no I/O.

use crate::catalogue::FindingCode;
use crate::proxy_rules;
use crate::report::{Finding, Severity};
use crate::results::{ProbeResults, TargetSpec};

/// The path the traffic is expected to take (the probe's `--expect-path`, read by clap there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectPath {
    /// Traffic must go through the VPC's gateway endpoint.
    Gateway,
    /// Traffic must go through an interface endpoint (private addresses).
    Interface,
    /// Any working path is fine.
    Any,
}

/// Which findings make the exit code 1 (the probe's `--fail-on`, read by clap there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Exit 1 only for findings of severity error.
    Error,
    /// Exit 1 for warnings too.
    Warning,
}

impl ExpectPath {
    pub const ALL: [ExpectPath; 3] = [ExpectPath::Gateway, ExpectPath::Interface, ExpectPath::Any];

    /// Its name on the command line and in the agent's file.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectPath::Gateway => "gateway",
            ExpectPath::Interface => "interface",
            ExpectPath::Any => "any",
        }
    }
}

impl FailOn {
    pub const ALL: [FailOn; 2] = [FailOn::Error, FailOn::Warning];

    /// Its name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::Error => "error",
            FailOn::Warning => "warning",
        }
    }
}

impl std::fmt::Display for ExpectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for FailOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the run was asked to expect: the path, the certificate issuers, the failure threshold,
/// and the proxy environment the proxy rules judge.
pub struct Expectations {
    pub expect_path: ExpectPath,
    pub expect_issuers: Vec<String>,
    pub fail_on: FailOn,
    pub proxy_env: proxy_rules::ProxyEnv,
}

#[cfg(test)]
impl Expectations {
    /// What a default run expects: the gateway path, Amazon's certificates, exit 1 on errors,
    /// no proxy variables (for the rules' own tests).
    pub(crate) fn default_run() -> Self {
        Expectations {
            expect_path: ExpectPath::Gateway,
            expect_issuers: vec!["Amazon".into()],
            fail_on: FailOn::Error,
            proxy_env: proxy_rules::ProxyEnv::default(),
        }
    }
}

/// The findings of one diagnosis, in the order the rules made them.
#[derive(Default)]
pub struct Findings {
    pub(crate) list: Vec<Finding>,
    /// The NO_PROXY value the proxy findings recommend: it lists every target's names, so it
    /// is made once per diagnosis, when a finding first needs it (per name it cost 50 targets
    /// a quadratic walk: a fifth of a second of a debug build's run).
    pub(crate) no_proxy_fix: std::cell::OnceCell<String>,
}

impl Findings {
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        code: FindingCode,
        severity: Severity,
        target: &str,
        title: String,
        detail: String,
        remediation: String,
        check_ids: Vec<String>,
    ) {
        // One finding per code and target: the detail of the first one names every address.
        if self
            .list
            .iter()
            .any(|f| f.code == code && f.target == target)
        {
            return;
        }
        self.list.push(Finding {
            code,
            severity,
            target: target.to_string(),
            title,
            detail,
            remediation,
            checklist_item: code.checklist_item().to_string(),
            check_ids,
        });
    }
}

/// A finding rule about the host as a whole.
pub type HostRule = fn(&ProbeResults, &Expectations, &mut Findings);
/// A finding rule about one host name of a target.
pub type NameRule = fn(&ProbeResults, &Expectations, &TargetSpec, &str, &mut Findings);
/// A finding rule about a target.
pub type TargetRule = fn(&ProbeResults, &Expectations, &TargetSpec, &mut Findings);
