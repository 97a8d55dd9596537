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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::findings_of;

    /// No credentials (the fix names the instance profile's role when there is one), expired
    /// ones, and found ones that say nothing.
    #[test]
    fn missing_and_expired_credentials() {
        let exp = Expectations::default_run();
        let mut r = ProbeResults {
            credentials: Some(CredentialsEvidence {
                found: false,
                error: Some("no providers in chain provided credentials".into()),
                ..CredentialsEvidence::default()
            }),
            instance: Some(InstanceFacts {
                iam_role: Some("app-role".into()),
                ..InstanceFacts::default()
            }),
            ..ProbeResults::default()
        };
        let found = findings_of(&CredentialsSlice, &r, &exp);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, FindingCode::NO_CREDENTIALS);
        assert!(
            found[0]
                .remediation
                .starts_with("The instance profile names role app-role"),
            "{}",
            found[0].remediation
        );

        r.credentials = Some(CredentialsEvidence {
            found: true,
            expired: true,
            source: Some("profile default".into()),
            expires_at: Some("2026-01-01T00:00:00Z".into()),
            ..CredentialsEvidence::default()
        });
        let found = findings_of(&CredentialsSlice, &r, &exp);
        assert_eq!(found[0].code, FindingCode::CREDENTIALS_EXPIRED);
        assert_eq!(
            found[0].title,
            "the credentials from profile default expired"
        );
        assert_eq!(found[0].detail, "They expired at 2026-01-01T00:00:00Z.");

        if let Some(c) = r.credentials.as_mut() {
            c.expired = false;
        }
        assert!(findings_of(&CredentialsSlice, &r, &exp).is_empty());
    }
}
