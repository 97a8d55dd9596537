//! The signed calls' pure half: their own finding rule (CLOCK_SKEW from an answer's Date
//! header) and how a call's result reads as a report record (the calls are the probe's
//! checks/calls.rs). What a call's answer means for its target (denials, redirects, failures)
//! also reads the connections and the credentials: diagnose.

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, HostRule};
use crate::report::*;
use crate::results::ProbeResults;

/// The signed calls' rules: one about the host.
pub struct CallsSlice;

impl SliceRules for CallsSlice {
    fn host_rules(&self) -> &'static [HostRule] {
        &[date_header_skew_finding]
    }
}

/// Premise of CLOCK_SKEW: a Date header of a service answer beyond the limit.
fn date_header_skew_finding(r: &ProbeResults, _: &Expectations, f: &mut Findings) {
    let skew = r
        .calls
        .iter()
        .filter_map(|c| c.clock_offset_secs.map(|o| (o, c)))
        .max_by_key(|(o, _)| o.abs());
    if let Some((offset, call)) = skew
        && offset.abs() > crate::classify::CLOCK_SKEW_LIMIT_SECS
    {
        f.add(
            FindingCode::CLOCK_SKEW,
            Severity::Error,
            "host",
            format!(
                "the local clock is {} s {} AWS's",
                offset.abs(),
                if offset > 0 { "behind" } else { "ahead of" }
            ),
            format!(
                "The Date header of {} {} differs from the local clock by {offset} s; signatures are rejected beyond {} s.",
                call.operation,
                call.target,
                crate::classify::CLOCK_SKEW_LIMIT_SECS
            ),
            FindingCode::CLOCK_SKEW.general_fix().into(),
            vec![call.id()],
        );
    }
}

impl Check for CallResult {
    const KIND: CheckKind = CheckKind::S3;
    fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.service.as_str(),
            self.target.split(':').nth(1).unwrap_or(&self.target),
            self.operation.replace(' ', "-")
        )
    }
    fn subject(&self) -> String {
        self.target.clone()
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            CallOutcome::Ok => CheckStatus::Ok,
            CallOutcome::Skipped => CheckStatus::Skip,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let via = match (&self.proxy, &self.peer) {
            (Some(p), _) => format!(" via proxy {p}"),
            (None, Some(peer)) => format!(" at {peer}"),
            _ => String::new(),
        };
        let request_id = self
            .headers
            .get("x-amz-request-id")
            .or_else(|| self.headers.get("x-amzn-requestid"))
            .map(|id| format!(", request id {id}"))
            .unwrap_or_default();
        let what = match self.outcome {
            CallOutcome::Ok => format!(
                "{} {}",
                self.status.map(|s| s.to_string()).unwrap_or_default(),
                self.detail.as_deref().unwrap_or("ok")
            ),
            CallOutcome::Skipped => {
                format!("skipped: {}", self.error_message.as_deref().unwrap_or(""))
            }
            _ => {
                let mut what = self
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no answer".into());
                // No empty code between the status and the message ("200 : ...").
                if let Some(code) = self.error_code.as_deref().filter(|c| !c.is_empty()) {
                    what = format!("{what} {code}");
                }
                match self.error_message.as_deref() {
                    Some(m) => format!("{what}: {m}"),
                    None => what,
                }
            }
        };
        format!(
            "{} {}{via}: {what}{request_id} ({} ms)",
            self.operation, self.target, self.duration_ms
        )
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Call(Box::new(self.clone()))
    }
    fn record(&self) -> crate::report::CheckRecord {
        crate::report::CheckRecord {
            id: self.id(),
            check: match self.service {
                Service::S3 | Service::S3express => CheckKind::S3,
                Service::Dynamodb => CheckKind::Dynamodb,
            },
            subject: self.subject(),
            status: self.status(),
            summary: self.summary(),
            duration_ms: self.duration_ms,
            evidence: self.evidence(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::findings_of;

    fn call_with_offset(operation: &str, offset: i64) -> CallResult {
        CallResult {
            service: Service::S3,
            target: "s3:b".into(),
            operation: operation.into(),
            action: "s3:ListBucket".into(),
            endpoint_host: Some("b.s3.eu-west-1.amazonaws.com".into()),
            peer: Some("52.218.1.1".into()),
            proxy: None,
            status: Some(200),
            outcome: CallOutcome::Ok,
            error_code: None,
            error_message: None,
            headers: Default::default(),
            finding: None,
            denial: None,
            bucket_region: None,
            clock_offset_secs: Some(offset),
            detail: None,
            duration_ms: 1,
        }
    }

    /// The largest Date-header offset decides, and only beyond the limit S3 and DynamoDB
    /// reject signatures at.
    #[test]
    fn the_largest_date_header_offset_beyond_the_limit_is_clock_skew() {
        let exp = Expectations::default_run();
        let mut r = ProbeResults {
            calls: vec![
                call_with_offset("HeadBucket", -20),
                call_with_offset("ListObjectsV2", 1200),
            ],
            ..ProbeResults::default()
        };
        let found = findings_of(&CallsSlice, &r, &exp);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, FindingCode::CLOCK_SKEW);
        assert_eq!(found[0].target, "host");
        assert_eq!(found[0].title, "the local clock is 1200 s behind AWS's");
        assert_eq!(found[0].check_ids, vec![r.calls[1].id()]);

        r.calls[1].clock_offset_secs = Some(crate::classify::CLOCK_SKEW_LIMIT_SECS);
        assert!(findings_of(&CallsSlice, &r, &exp).is_empty());
    }
}
