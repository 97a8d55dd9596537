//! The TLS findings of a name: interception and failed handshakes. Only the handshakes with
//! the addresses the applications use count, which the TCP attempts say (an address only the
//! VPC resolver gave is evidence for the hosts-file finding), so this spans the TLS and TCP
//! checks. (TCP's own rule is reading/tcp.rs; the NACL sweep's reading/nacl.rs.)

use std::collections::BTreeSet;

use super::{Expectations, Findings};
use crate::catalogue::FindingCode;
use crate::reading::ids;
use crate::reading::tcp::tcp_attempts;
use crate::reading::tls as tls_check;
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// TLS: a certificate not from the service, or a handshake that fails.
pub(super) fn tls_findings(
    r: &ProbeResults,
    exp: &Expectations,
    t: &TargetSpec,
    name: &str,
    f: &mut Findings,
) {
    let all_attempts = tcp_attempts(r, name);
    let vpc_only: BTreeSet<&str> = all_attempts
        .iter()
        .filter(|a| a.origin == AddressOrigin::VpcResolver)
        .map(|a| a.address.as_str())
        .collect();
    let handshakes: Vec<&TlsHandshake> = r
        .tls
        .iter()
        .filter(|h| h.name == name && !vpc_only.contains(h.address.as_str()))
        .collect();
    let verified = handshakes.iter().any(|h| h.outcome == TlsOutcome::Verified);
    let intercepted: Vec<&TlsHandshake> = handshakes
        .iter()
        .filter(|h| tls_check::is_interception(h, &exp.expect_issuers))
        .copied()
        .collect();
    if let Some(h) = intercepted.first() {
        let leaf = h.chain.first();
        f.add(
            FindingCode::TLS_INTERCEPTED,
            Severity::Error,
            &t.id,
            format!("the certificate for {name} does not come from the service"),
            format!(
                "{} presented a certificate for [{}] issued by '{}' ({}); genuine service certificates are issued by {}.",
                h.address,
                leaf.map(|c| c.dns_names.join(", ")).unwrap_or_default(),
                leaf.map(|c| c.issuer.as_str()).unwrap_or("?"),
                h.error.as_deref().unwrap_or("trusted by this host"),
                exp.expect_issuers.join(" or ")
            ),
            FindingCode::TLS_INTERCEPTED.general_fix().into(),
            ids(&intercepted),
        );
    }
    let tls_failed: Vec<&TlsHandshake> = handshakes
        .iter()
        .filter(|h| !matches!(h.outcome, TlsOutcome::Verified | TlsOutcome::NotAttempted))
        .filter(|h| !tls_check::is_interception(h, &exp.expect_issuers))
        .copied()
        .collect();
    if let Some(h) = tls_failed.first() {
        f.add(
            FindingCode::TLS_FAILED,
            if verified {
                Severity::Warning
            } else {
                Severity::Error
            },
            &t.id,
            format!("TLS handshake with {name} fails at {}", h.address),
            h.error
                .clone()
                .unwrap_or_else(|| format!("{:?}", h.outcome)),
            FindingCode::TLS_FAILED.general_fix().into(),
            ids(&tls_failed),
        );
    }
}
