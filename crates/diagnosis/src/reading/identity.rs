//! The credentials check's pure half: its finding rule (NO_CREDENTIALS, CREDENTIALS_EXPIRED)
//! and how the credentials evidence reads as a report record (loading them is the probe's
//! checks/identity.rs).

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, HostRule};
use crate::report::*;
use crate::results::ProbeResults;

/// The credentials check's rules: one about the host.
pub struct CredentialsSlice;

impl SliceRules for CredentialsSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[credential_findings]
    }
}

/// Premises: NO_CREDENTIALS, the default chain itself found none (not a service answer);
/// CREDENTIALS_EXPIRED, the expiry the chain gave is past.
fn credential_findings(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    if let Some(c) = &r.credentials {
        if !c.found {
            let remediation = match r.instance.as_ref().and_then(|i| i.iam_role.as_ref()) {
                Some(role) => format!(
                    "The instance profile names role {role}, but its credentials could not be read: check IMDS (hop limit, IMDS_VIA_PROXY) and the role's trust policy."
                ),
                None => FindingCode::NO_CREDENTIALS.general_fix().into(),
            };
            f.add(
                FindingCode::NO_CREDENTIALS,
                Severity::Error,
                "host",
                "no AWS credentials in the default chain".into(),
                c.error.clone().unwrap_or_default(),
                remediation,
                vec!["credentials".into()],
            );
        } else if c.expired {
            f.add(
                FindingCode::CREDENTIALS_EXPIRED,
                Severity::Error,
                "host",
                format!(
                    "the credentials from {} expired",
                    c.source.as_deref().unwrap_or("the chain")
                ),
                format!(
                    "They expired at {}.",
                    c.expires_at.as_deref().unwrap_or("?")
                ),
                FindingCode::CREDENTIALS_EXPIRED.general_fix().into(),
                vec!["credentials".into()],
            );
        }
    }
}

impl Check for CredentialsEvidence {
    const KIND: CheckKind = CheckKind::Credentials;
    fn id(&self) -> String {
        "credentials".into()
    }
    fn subject(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| "default chain".into())
    }
    fn status(&self) -> CheckStatus {
        if !self.found || self.expired {
            CheckStatus::Fail
        } else if self.identity_error.is_some() {
            CheckStatus::Warn
        } else {
            CheckStatus::Ok
        }
    }
    fn summary(&self) -> String {
        if !self.found {
            return format!(
                "no credentials: {}",
                self.error
                    .as_deref()
                    .unwrap_or("the default chain found none")
            );
        }
        let who = match (&self.identity_arn, &self.identity_error) {
            (Some(arn), _) => arn.clone(),
            // The error names STS itself ("STS did not answer within 1 s ...").
            (None, Some(e)) => format!("identity unknown ({e})"),
            _ => "identity not asked".into(),
        };
        format!(
            "{} from {}{}; {who}",
            self.access_key_id.as_deref().unwrap_or("?"),
            self.source.as_deref().unwrap_or("?"),
            match (&self.expires_at, self.expired) {
                (Some(t), true) => format!(", EXPIRED at {t}"),
                (Some(t), false) => format!(", expires {t}"),
                (None, _) => String::new(),
            }
        )
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Credentials(self.clone())
    }
}
