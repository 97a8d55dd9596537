//! The proxy check's pure half: which client sends which URL through a proxy (the rules are
//! proxy_rules), its finding rules (variables that contradict each other, a proxy value a
//! client cannot use, the SDK's proxy and its CONNECT probe, and the NO_PROXY value every proxy
//! finding recommends), and how the proxy evidence and a CONNECT probe read as report records.
//! The CONNECT probe and its moment are the probe's checks/proxy.rs, which implements the
//! probe's `Slice` for the same `ProxySlice`.

use url::Url;

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{ExpectPath, Expectations, Findings, HostRule, NameRule};
use crate::proxy_rules::{self, HttpClientKind, ProxyChoice, ProxyDecision, ProxyEnv};
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// The proxy check's rules (the environment's decisions and the CONNECT probes, both of kind
/// `proxy`): one about the host, one about each name of a target. They are steps of
/// diagnosis's stages, where they always ran (registered as a slice they would run after the
/// rules that follow them there, and change the findings' order); the CONNECT probe's moment is
/// the probe's half.
pub struct ProxySlice;

impl SliceRules for ProxySlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[proxy_env_conflict_findings]
    }
    fn name_rules(&self) -> &'static [NameRule] {
        &[proxy_findings]
    }
}

/// Proxy variables that contradict each other (upper and lower case set differently).
fn proxy_env_conflict_findings(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    if let Some(env) = &r.proxy_env {
        for (upper, lower) in &env.conflicts {
            f.add(
                FindingCode::PROXY_ENV_CONFLICT,
                Severity::Warning,
                "host",
                format!("{upper} and {lower} are set to different values"),
                "curl reads the lower-case variable first, botocore lets lower case win, and other tools differ; the same host then takes different paths depending on the client.".into(),
                format!("Set {upper} and {lower} to the same value, or unset one of them."),
                vec!["proxy/env".into()],
            );
        }
    }
}

/// The one NO_PROXY value every proxy finding recommends: it makes all three clients
/// bypass the proxy for every target's names, botocore's endpoints and IMDS at once.
pub fn no_proxy_fix(r: &ProbeResults, exp: &Expectations, f: &Findings) -> String {
    f.no_proxy_fix
        .get_or_init(|| recommended_no_proxy_export(r, exp))
        .clone()
}

fn recommended_no_proxy_export(r: &ProbeResults, exp: &Expectations) -> String {
    let imds = r.proxy_env.as_ref().and_then(|env| {
        env.decisions
            .iter()
            .find(|d| d.url.contains(IMDS_TOKEN_PATH))
            .and_then(|d| url::Url::parse(&d.url).ok())
            .and_then(|u| u.host_str().map(str::to_string))
    });
    let imds = imds.unwrap_or_else(|| "169.254.169.254".into());
    let hosts: Vec<&str> = r
        .targets
        .iter()
        .flat_map(|t| t.endpoint_names.iter().map(String::as_str))
        .chain(std::iter::once(imds.as_str()))
        .collect();
    format!(
        "export NO_PROXY={} (and no_proxy the same)",
        proxy_rules::recommended_no_proxy(&exp.proxy_env, &hosts)
    )
}

/// The clients whose decision for `url` sends it to this proxy host and port.
fn clients_using(
    env: &ProxyEnvEvidence,
    url: &str,
    proxy: &proxy_rules::ProxyChoice,
) -> Vec<&'static str> {
    HttpClientKind::ALL
        .into_iter()
        .filter(|c| {
            decision_for(env, *c, url)
                .and_then(|d| d.proxy.as_ref())
                .is_some_and(|p| p.host == proxy.host && p.port == proxy.port)
        })
        .map(HttpClientKind::label)
        .collect()
}

/// Per name: a proxy value some client cannot use, and the SDK's proxy (and whether it
/// tunnels). (NO_PROXY entries that do not bypass it need the DNS answers too: diagnose.)
fn proxy_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let Some(env) = &r.proxy_env else { return };
    let url = format!("https://{name}/");
    unusable_proxy_finding(r, exp, env, t, name, &url, f);
    proxy_in_path_findings(r, exp, env, t, name, &url, f);
}

// A value some client cannot use at all (SOCKS for the SDK and botocore, `HTTP://` or
// `ftp://` for botocore, a blank): one finding per value, naming every client it breaks.
fn unusable_proxy_finding(
    r: &ProbeResults,
    exp: &Expectations,
    env: &ProxyEnvEvidence,
    t: &TargetSpec,
    name: &str,
    url: &str,
    f: &mut Findings,
) {
    let failing: Vec<&proxy_rules::ProxyDecision> = HttpClientKind::ALL
        .into_iter()
        .filter_map(|c| decision_for(env, c, url))
        .filter(|d| d.fails)
        .collect();
    if let Some(first) = failing.first().and_then(|d| d.proxy.as_ref()) {
        let clients: Vec<&str> = failing.iter().map(|d| d.client.label()).collect();
        let fix = no_proxy_fix(r, exp, f);
        f.add(
            FindingCode::PROXY_UNUSABLE,
            if failing.iter().any(|d| d.client == HttpClientKind::AwsSdkRust) {
                Severity::Error
            } else {
                Severity::Warning
            },
            &t.id,
            format!(
                "{}='{}' breaks {} for {name}",
                first.variable,
                first.url_redacted,
                clients.join(", ")
            ),
            failing
                .iter()
                .map(|d| d.explanation.clone())
                .collect::<Vec<_>>()
                .join(" "),
            format!(
                "Write the proxy as http://HOST:PORT (lower-case scheme, no blanks) in every proxy variable, or bypass it: {fix}"
            ),
            vec!["proxy/env".into()],
        );
    }
}

/// The SDK sends `name` through a proxy: where the path goes, and whether the proxy tunnels.
#[allow(clippy::too_many_arguments)]
fn proxy_in_path_findings(
    r: &ProbeResults,
    exp: &Expectations,
    env: &ProxyEnvEvidence,
    t: &TargetSpec,
    name: &str,
    url: &str,
    f: &mut Findings,
) {
    let sdk = decision_for(env, HttpClientKind::AwsSdkRust, url);
    if let Some(d) = sdk
        && let Some(p) = &d.proxy
    {
        let fix = no_proxy_fix(r, exp, f);
        f.add(
            FindingCode::PROXY_IN_PATH,
            if exp.expect_path == ExpectPath::Any {
                Severity::Note
            } else {
                Severity::Error
            },
            &t.id,
            format!("the SDK sends {name} through the proxy {}", p.url_redacted),
            d.explanation.clone(),
            fix.clone(),
            vec!["proxy/env".into()],
        );
        // A proxy that was not tried (SOCKS) is neither reachable nor unreachable.
        for probe in r
            .measured
            .of::<ProxyProbe>()
            .iter()
            .filter(|p| p.name == name && is_probed(&p.proxy))
        {
            let clients = clients_using(env, url, &probe.proxy).join(", ");
            let (code, title) = match probe.outcome {
                ProxyOutcome::Tunnelled => continue,
                ProxyOutcome::Refused => (
                    FindingCode::PROXY_REFUSED_CONNECT,
                    format!(
                        "the proxy {} refuses CONNECT to {name} (used by {clients})",
                        probe.proxy.url_redacted
                    ),
                ),
                ProxyOutcome::Unreachable | ProxyOutcome::Timeout | ProxyOutcome::Error => (
                    FindingCode::PROXY_UNREACHABLE,
                    format!(
                        "the proxy {} cannot be reached, which breaks {clients} for {name}",
                        probe.proxy.url_redacted
                    ),
                ),
            };
            f.add(
                code,
                Severity::Error,
                &t.id,
                title,
                probe.summary(),
                if probe
                    .status_line
                    .as_deref()
                    .is_some_and(|l| l.contains(" 407"))
                {
                    format!(
                        "The proxy wants credentials: put them in the proxy URL ({}=http://USER:PASSWORD@{}:{}), or bypass it: {fix}",
                        probe.proxy.variable, probe.proxy.host, probe.proxy.port
                    )
                } else {
                    format!("{} Or: {fix}", code.general_fix())
                },
                vec![probe.id()],
            );
        }
    }
}

/// Decide, for every URL and client, whether a proxy applies. The URLs are
/// those of the same clients, so botocore's endpoint for a virtual-hosted name
/// is found among them (it checks NO_PROXY for its endpoint URL only); `configured` are the
/// endpoint URLs as the settings wrote them.
pub fn analyze(env: &ProxyEnv, urls: &[Url], configured: &[String]) -> ProxyEnvEvidence {
    let decisions = urls
        .iter()
        .flat_map(|u| {
            HttpClientKind::ALL
                .iter()
                .map(move |c| proxy_rules::decide_among(*c, env, u, urls, configured))
        })
        .collect();
    ProxyEnvEvidence {
        variables: env
            .vars()
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: proxy_rules::redact_proxy_url(value),
            })
            .collect(),
        conflicts: proxy_rules::case_conflicts(env),
        decisions,
    }
}

/// The path of the IMDSv2 token request: the first request every IMDS client makes.
pub const IMDS_TOKEN_PATH: &str = "/latest/api/token";

/// The decision of `client` for `url`, if it was analysed.
pub fn decision_for<'a>(
    evidence: &'a ProxyEnvEvidence,
    client: HttpClientKind,
    url: &str,
) -> Option<&'a ProxyDecision> {
    evidence
        .decisions
        .iter()
        .find(|d| d.client == client && d.url == url)
}

/// Whether [`connect_probe`] talks to this proxy: only HTTP(S) proxies are tried, so a
/// SOCKS proxy's probe says nothing about whether it can be reached.
pub fn is_probed(proxy: &ProxyChoice) -> bool {
    proxy.scheme == "http" || proxy.scheme == "https"
}

pub struct ProxyEnvCheck(pub ProxyEnvEvidence);

impl Check for ProxyEnvCheck {
    const KIND: CheckKind = CheckKind::Proxy;
    fn id(&self) -> String {
        "proxy/env".into()
    }
    fn subject(&self) -> String {
        "proxy environment".into()
    }
    fn status(&self) -> CheckStatus {
        let sdk_proxies = self
            .0
            .decisions
            .iter()
            .any(|d| d.client == HttpClientKind::AwsSdkRust && d.proxy.is_some());
        if !self.0.conflicts.is_empty() || sdk_proxies {
            CheckStatus::Warn
        } else {
            CheckStatus::Ok
        }
    }
    fn summary(&self) -> String {
        if self.0.variables.is_empty() {
            return "no proxy variables set: every client connects directly".into();
        }
        let proxied: Vec<String> = self
            .0
            .decisions
            .iter()
            .filter(|d| d.client == HttpClientKind::AwsSdkRust && d.proxy.is_some())
            .map(|d| d.url.clone())
            .collect();
        let vars = self
            .0
            .variables
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if proxied.is_empty() {
            format!("{vars} set; the SDK connects directly to every probed URL")
        } else {
            format!("{vars} set; the SDK would proxy {}", proxied.join(", "))
        }
    }
    fn duration_ms(&self) -> u64 {
        0
    }
    fn evidence(&self) -> Evidence {
        Evidence::ProxyEnv(self.0.clone())
    }
}

impl Check for ProxyProbe {
    const KIND: CheckKind = CheckKind::Proxy;
    fn id(&self) -> String {
        format!("proxy/{}/{}", self.proxy.host, self.name)
    }
    fn subject(&self) -> String {
        format!("{}:{}", self.proxy.host, self.proxy.port)
    }
    fn status(&self) -> CheckStatus {
        if !is_probed(&self.proxy) {
            return CheckStatus::Skip;
        }
        match self.outcome {
            // Working, but the traffic leaves through the proxy: a warning at most.
            ProxyOutcome::Tunnelled => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let via = format!(
            "CONNECT {}:443 via {} ({})",
            self.name, self.proxy.url_redacted, self.proxy.variable
        );
        match self.outcome {
            ProxyOutcome::Tunnelled => format!("{via}: tunnel opened ({} ms)", self.connect_ms),
            ProxyOutcome::Refused => format!(
                "{via}: refused: {}",
                self.status_line.as_deref().unwrap_or("")
            ),
            _ => format!("{via}: {}", self.error.as_deref().unwrap_or("failed")),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.connect_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Proxy(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::{findings_of, s3_target};

    const NAME: &str = "s3.eu-west-1.amazonaws.com";

    /// Upper and lower case set differently: a host warning. A proxy the SDK uses for a name:
    /// PROXY_IN_PATH (an error when a path is expected), with the one NO_PROXY value as the fix.
    #[test]
    fn conflicting_variables_and_the_sdks_proxy() {
        let mut exp = Expectations::default_run();
        exp.proxy_env = ProxyEnv::from_pairs([
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("https_proxy", "http://other.corp:3128"),
        ]);
        let urls = [Url::parse(&format!("https://{NAME}/")).unwrap()];
        let r = ProbeResults {
            targets: vec![s3_target(NAME)],
            proxy_env: Some(analyze(&exp.proxy_env, &urls, &[])),
            ..ProbeResults::default()
        };
        let found = findings_of(&ProxySlice, &r, &exp);
        let codes: Vec<FindingCode> = found.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            vec![FindingCode::PROXY_ENV_CONFLICT, FindingCode::PROXY_IN_PATH]
        );
        assert_eq!(
            found[0].title,
            "HTTPS_PROXY and https_proxy are set to different values"
        );
        assert_eq!(found[1].severity, Severity::Error);
        assert!(
            found[1].remediation.starts_with("export NO_PROXY=")
                && found[1].remediation.contains(NAME),
            "{}",
            found[1].remediation
        );

        exp.expect_path = ExpectPath::Any;
        let found = findings_of(&ProxySlice, &r, &exp);
        assert_eq!(found[1].severity, Severity::Note);
    }
}
