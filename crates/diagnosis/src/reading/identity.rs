//! How the credentials evidence reads as a report record (loading them is the probe's
//! checks/identity.rs).

use super::Check;
use crate::report::*;

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
