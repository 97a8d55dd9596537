//! Results → findings, path verdicts and root causes. No I/O: a pure function with
//! table-driven tests.
//!
//! `diagnose` runs the host-level findings, then each target's (per name, then per target),
//! then the path expectations; `path` gives each target's path verdict. Each stage runs its
//! steps in order (`HOST_STEPS`, `NAME_STEPS`, `TARGET_STEPS`): the older checks' own rules
//! (their slices, reading/) and, between them, the rules here, which span checks (`dns`: what
//! the applications' answer connects to; `tls`; `proxy`; `auth`: the signed calls' answers;
//! `control_plane`; `hops`); then the registered slices' rules, such as the NACL sweep's.

mod auth;
mod control_plane;
mod dns;
mod hops;
mod path;
mod proxy;
mod tls;

use crate::catalogue::{FindingCode, checklist_rank};
use crate::findings::{ExpectPath, FailOn};
use crate::reading::SliceRules;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

pub use crate::findings::Expectations;
pub(crate) use crate::findings::{Findings, HostRule, NameRule, TargetRule};

pub struct Diagnosis {
    pub findings: Vec<Finding>,
    pub targets: Vec<TargetReport>,
    pub verdict: Verdict,
}

/// The diagnosis of a run's results: each stage's steps (the older checks' slices and the rules
/// that span checks), then the given slices' rules (the probe passes its registered slices,
/// `checks::SLICE_RULES`), in their order.
pub fn diagnose(r: &ProbeResults, exp: &Expectations, slices: &[&dyn SliceRules]) -> Diagnosis {
    let mut f = Findings::default();
    host_findings(r, exp, slices, &mut f);
    let targets = target_reports(r, exp, slices, &mut f);
    path_expectation_findings(exp, &targets, &mut f);

    let mut findings = f.list;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(checklist_rank(&a.checklist_item).cmp(&checklist_rank(&b.checklist_item)))
            .then(a.target.cmp(&b.target))
    });
    let verdict = verdict(&findings, exp.fail_on, r.deadline_hit, &r.setup_errors);
    Diagnosis {
        findings,
        targets,
        verdict,
    }
}

/// One step of a stage of the diagnosis: an older check's own rules for that stage (its
/// slice, the `SliceRules` of its reading/ file), or one rule that spans checks (diagnose's).
enum Step<Rule: 'static> {
    Check(&'static dyn SliceRules),
    Spanning(Rule),
}

impl<Rule> Step<Rule> {
    /// The rules this step runs, given which of a slice's rule sets the stage takes.
    fn rules(&self, of_slice: fn(&dyn SliceRules) -> &'static [Rule]) -> &[Rule] {
        match self {
            Step::Check(slice) => of_slice(*slice),
            Step::Spanning(rule) => std::slice::from_ref(rule),
        }
    }
}

// The stages of the checks that came before the registered slices, each in the order its rules
// always ran: a check's own rules are its slice's (reading/<check>.rs), the rules that span
// checks are diagnose's, placed between them. Order matters: the first finding of a code and
// target is kept, and host findings come before any target's. The registered slices' rules
// (the probe's `SLICE_RULES`, such as the NACL sweep's) run after each stage's steps.
const HOST_STEPS: &[Step<HostRule>] = &[
    Step::Check(&crate::reading::imds::ImdsSlice),
    Step::Check(&crate::reading::region::RegionSlice),
    Step::Check(&crate::reading::dns::DnsSlice),
    Step::Check(&crate::reading::proxy::ProxySlice),
    Step::Spanning(proxy::imds_via_proxy_finding),
    Step::Check(&crate::reading::identity::CredentialsSlice),
    Step::Check(&crate::reading::calls::CallsSlice),
    Step::Check(&crate::reading::control_plane::ControlPlaneSlice),
    Step::Spanning(|r, _, f| deadline_finding(r, f)),
];
const NAME_STEPS: &[Step<NameRule>] = &[
    Step::Check(&crate::reading::dns::DnsSlice),
    Step::Spanning(dns::application_answer_findings),
    Step::Check(&crate::reading::tcp::TcpSlice),
    Step::Spanning(tls::tls_findings),
    Step::Check(&crate::reading::proxy::ProxySlice),
    Step::Spanning(proxy::no_proxy_ineffective_finding),
];
const TARGET_STEPS: &[Step<TargetRule>] = &[
    Step::Spanning(|_, _, t, f| endpoint_rules_finding(t, f)),
    Step::Spanning(|r, _, t, f| auth::call_findings(r, t, f)),
    Step::Spanning(control_plane::control_plane_findings),
    Step::Check(&crate::reading::reachability::ReachabilitySlice),
    Step::Spanning(hops::hop_findings),
];

/// The findings about the host as a whole, before any target's.
fn host_findings(
    r: &ProbeResults,
    exp: &Expectations,
    slices: &[&dyn SliceRules],
    f: &mut Findings,
) {
    let own = HOST_STEPS.iter().flat_map(|s| s.rules(|s| s.host_rules()));
    let sliced = slices.iter().flat_map(|s| s.host_rules());
    for rule in own.chain(sliced) {
        rule(r, exp, f);
    }
}

/// A run the deadline ended says so, as a note: the checks it cut short are skipped records
/// that diagnosis never reads, and the verdict says the run is incomplete.
fn deadline_finding(r: &ProbeResults, f: &mut Findings) {
    if !r.deadline_hit {
        return;
    }
    f.add(
        FindingCode::DEADLINE_EXCEEDED,
        Severity::Note,
        "host",
        "the deadline ended the run before every check finished".into(),
        "The checks it cut short are listed as skipped (\"not finished before the deadline\"); nothing is concluded from them, so a cause they would have measured is not named.".into(),
        FindingCode::DEADLINE_EXCEEDED.general_fix().into(),
        Vec::new(),
    );
}

/// Per target: its findings, then its names and path verdict.
fn target_reports(
    r: &ProbeResults,
    exp: &Expectations,
    slices: &[&dyn SliceRules],
    f: &mut Findings,
) -> Vec<TargetReport> {
    let canary = crate::reading::canary::canary_outcome(r);
    let mut targets = Vec::new();
    for t in &r.targets {
        diagnose_target(r, exp, slices, t, f);
        targets.push(TargetReport {
            id: t.id.clone(),
            service: t.service,
            name: t.name.clone(),
            endpoint_names: t.endpoint_names.clone(),
            endpoint_override: t.endpoint_override.clone(),
            names: dns::endpoint_names(r, t),
            path: path::path_verdict(r, exp, t, canary),
        });
    }
    targets
}

/// Path expectations.
fn path_expectation_findings(exp: &Expectations, targets: &[TargetReport], f: &mut Findings) {
    for t in targets {
        let wrong = match exp.expect_path {
            ExpectPath::Any => false,
            ExpectPath::Gateway => matches!(
                t.path.kind,
                PathKind::InterfaceEndpoint | PathKind::Proxy | PathKind::Internet
            ),
            ExpectPath::Interface => matches!(
                t.path.kind,
                PathKind::GatewayEndpoint | PathKind::Proxy | PathKind::Internet
            ),
        };
        if wrong {
            let expected = match exp.expect_path {
                ExpectPath::Gateway => "the gateway endpoint",
                _ => "an interface endpoint",
            };
            f.add(
                FindingCode::PATH_NOT_GATEWAY_ENDPOINT,
                Severity::Error,
                &t.id,
                format!(
                    "traffic to {} goes through {}, not {expected}",
                    t.id,
                    describe_kind(t.path.kind)
                ),
                t.path.evidence.join("; "),
                FindingCode::PATH_NOT_GATEWAY_ENDPOINT.general_fix().into(),
                vec![],
            );
        }
    }
}

fn describe_kind(kind: PathKind) -> &'static str {
    match kind {
        PathKind::GatewayEndpoint => "the gateway endpoint",
        PathKind::InterfaceEndpoint => "an interface endpoint",
        PathKind::Proxy => "a proxy",
        PathKind::Internet => "the internet (NAT or internet gateway)",
        PathKind::Unknown => "an unknown path",
    }
}

/// A target's findings: those of each of its names first (every name rule per name), then
/// those of the target as a whole.
fn diagnose_target(
    r: &ProbeResults,
    exp: &Expectations,
    slices: &[&dyn SliceRules],
    t: &TargetSpec,
    f: &mut Findings,
) {
    for name in &t.endpoint_names {
        let own = NAME_STEPS.iter().flat_map(|s| s.rules(|s| s.name_rules()));
        let sliced = slices.iter().flat_map(|s| s.name_rules());
        for rule in own.chain(sliced) {
            rule(r, exp, t, name, f);
        }
    }
    let own = TARGET_STEPS
        .iter()
        .flat_map(|s| s.rules(|s| s.target_rules()));
    let sliced = slices.iter().flat_map(|s| s.target_rules());
    for rule in own.chain(sliced) {
        rule(r, exp, t, f);
    }
}

/// Nothing probed is never "healthy": the SDKs' own calls fail before any packet. (Such a
/// target has no names, so no name rule said anything before.)
fn endpoint_rules_finding(t: &TargetSpec, f: &mut Findings) {
    if let Some(e) = &t.endpoint_error {
        f.add(
            FindingCode::ENDPOINT_RULES_REFUSED,
            Severity::Error,
            &t.id,
            format!("the SDKs' endpoint rules give {} no endpoint", t.id),
            format!("The rules answer: {e}."),
            FindingCode::ENDPOINT_RULES_REFUSED.general_fix().into(),
            Vec::new(),
        );
    }
}

/// Codes that are consequences of another code for the same target.
fn explained_by(code: FindingCode) -> &'static [FindingCode] {
    use FindingCode::*;
    match code {
        TCP_TIMEOUT | TCP_REFUSED | TCP_UNREACHABLE => &[
            HOSTS_FILE_OVERRIDE,
            DNS_SEARCH_DOMAIN_OVERRIDE,
            DNS_RESOLVERS_DISAGREE,
            // Calls to another region's endpoints cannot take this VPC's gateway endpoint.
            REGION_MISMATCH_SDK,
            S3_GLOBAL_ENDPOINT,
            NACL_EPHEMERAL_BLOCKED,
            DNS_OUTSIDE_SERVICE_RANGE,
            DNS_INTERFACE_ENDPOINT,
            NO_GATEWAY_ENDPOINT,
            ROUTE_TABLE_NOT_ASSOCIATED,
            ROUTE_OVERRIDES_ENDPOINT,
            SG_EGRESS_BLOCKS,
            NACL_OUTBOUND_BLOCKS,
            NACL_INBOUND_BLOCKS,
        ],
        NACL_EPHEMERAL_BLOCKED => &[NACL_INBOUND_BLOCKS],
        // A bare 403 (HeadBucket has no body) says nothing another call did not say better;
        // nor does one on a run whose clock or credentials make every signed call fail.
        ACCESS_DENIED_UNATTRIBUTED => &[
            CLOCK_SKEW,
            CREDENTIALS_EXPIRED,
            ENDPOINT_POLICY_DENIES,
            ACCESS_DENIED_VPCE_POLICY,
            ACCESS_DENIED_RESOURCE_POLICY,
            ACCESS_DENIED_IDENTITY_POLICY,
            ACCESS_DENIED_SCP,
            ACCESS_DENIED_RCP,
            ACCESS_DENIED_PERMISSIONS_BOUNDARY,
            ACCESS_DENIED_SESSION_POLICY,
        ],
        ACCESS_DENIED_VPCE_POLICY => &[ENDPOINT_POLICY_DENIES],
        DNS_RESOLUTION_FAILED => &[VPC_DNS_DISABLED, REGION_MISMATCH_SDK],
        DNS_OUTSIDE_SERVICE_RANGE => &[
            VPC_DNS_DISABLED,
            REGION_MISMATCH_SDK,
            HOSTS_FILE_OVERRIDE,
            DNS_SEARCH_DOMAIN_OVERRIDE,
        ],
        DNS_INTERFACE_ENDPOINT => &[HOSTS_FILE_OVERRIDE, DNS_SEARCH_DOMAIN_OVERRIDE],
        TLS_FAILED => &[
            TCP_TIMEOUT,
            TCP_REFUSED,
            TCP_UNREACHABLE,
            TLS_INTERCEPTED,
            HOSTS_FILE_OVERRIDE,
            DNS_SEARCH_DOMAIN_OVERRIDE,
        ],
        PATH_NOT_GATEWAY_ENDPOINT => &[
            HOSTS_FILE_OVERRIDE,
            DNS_SEARCH_DOMAIN_OVERRIDE,
            NO_GATEWAY_ENDPOINT,
            ROUTE_TABLE_NOT_ASSOCIATED,
            ROUTE_OVERRIDES_ENDPOINT,
            PROXY_IN_PATH,
            DNS_INTERFACE_ENDPOINT,
            DNS_OUTSIDE_SERVICE_RANGE,
            TLS_INTERCEPTED,
            NO_PROXY_INEFFECTIVE,
        ],
        PROXY_IN_PATH => &[NO_PROXY_INEFFECTIVE],
        WRONG_REGION_REDIRECT => &[
            REGION_MISMATCH_BUCKET,
            REGION_MISMATCH_SDK,
            S3_GLOBAL_ENDPOINT,
        ],
        IMDS_UNAVAILABLE => &[IMDS_VIA_PROXY],
        NO_CREDENTIALS => &[IMDS_VIA_PROXY, IMDS_UNAVAILABLE],
        _ => &[],
    }
}

/// A healthy verdict still names its warnings (a silent name server, a pinned address): the
/// one line people read must not look clean when the report is not.
fn warnings_below_threshold(findings: &[Finding]) -> String {
    let warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| format!("{} ({})", f.code, f.target))
        .collect();
    match warnings.len() {
        0 => String::new(),
        1 => format!("; 1 warning: {}", warnings[0]),
        n => format!("; {n} warnings: {}", warnings.join(", ")),
    }
}

/// The verdict: the findings at or above `fail_on` (exit 1), else a run cut short by the
/// deadline or by setup errors (exit 3: the probe itself failed), else healthy. Setup errors
/// are said in the summary in every case: the report has no other place for them.
fn verdict(
    findings: &[Finding],
    fail_on: FailOn,
    deadline_hit: bool,
    setup_errors: &[String],
) -> Verdict {
    let threshold = match fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
    };
    let failing: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity >= threshold)
        .collect();
    let mut roots: Vec<&Finding> = failing
        .iter()
        .filter(|f| {
            !explained_by(f.code).iter().any(|cause| {
                findings.iter().any(|o| {
                    o.code == *cause
                        && (o.target == f.target || o.target == "host")
                        // Resolvers that merely disagree (a warning) explain no failure; only
                        // the stale answer that fails while the VPC's works (an error) does.
                        && (o.code != FindingCode::DNS_RESOLVERS_DISAGREE
                            || o.severity == Severity::Error)
                })
            })
        })
        .copied()
        .collect();
    // Every failure explained by something below the threshold: show the failures themselves.
    if roots.is_empty() {
        roots = failing.clone();
    }
    roots.sort_by_key(|f| (checklist_rank(&f.checklist_item), f.target.clone()));
    let root_causes: Vec<RootCause> = roots
        .iter()
        .map(|f| RootCause {
            code: f.code,
            target: f.target.clone(),
            title: f.title.clone(),
        })
        .collect();
    let (status, exit_code, summary) = if !failing.is_empty() {
        let first = root_causes
            .first()
            .map(|r| format!("{} ({}): {}", r.code, r.target, r.title))
            .unwrap_or_default();
        let cut = if deadline_hit {
            "; the deadline ended the run before every check finished"
        } else {
            ""
        };
        (
            OverallStatus::Problems,
            1,
            format!("problem found: {first}{cut}"),
        )
    } else if deadline_hit {
        (
            OverallStatus::Problems,
            3,
            "the deadline ended the run before every check finished; raise --deadline".to_string(),
        )
    } else if !setup_errors.is_empty() {
        (OverallStatus::Problems, 3, String::new())
    } else {
        (
            OverallStatus::Healthy,
            0,
            format!(
                "healthy: every probed path works{}",
                warnings_below_threshold(findings)
            ),
        )
    };
    let summary = match (summary.is_empty(), setup_errors_line(setup_errors)) {
        (_, None) => summary,
        (true, Some(errors)) => errors,
        (false, Some(errors)) => format!("{summary}; {errors}"),
    };
    Verdict {
        status,
        summary,
        root_causes,
        exit_code,
    }
}

fn setup_errors_line(errors: &[String]) -> Option<String> {
    let first = errors.first()?;
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Some(format!(
        "the probe could not run every check: {}{more}",
        crate::escape::line(first)
    ))
}

#[cfg(test)]
mod tests;
