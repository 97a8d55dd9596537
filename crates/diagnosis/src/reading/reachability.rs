//! Reachability Analyzer's pure half: its finding rule (a "no path found" analysis, in the
//! finding of the checklist item its explanation names) and how an analysis reads as a report
//! record (the analysis is the probe's checks/reachability.rs).

use super::{Check, SliceRules};
use crate::catalogue::FindingCode;
use crate::findings::{Expectations, Findings, TargetRule};
use crate::report::*;
use crate::results::{ProbeResults, TargetSpec};

/// Reachability Analyzer's rules: one about each target.
pub struct ReachabilitySlice;

impl SliceRules for ReachabilitySlice {
    fn target_rules(&self) -> &'static [TargetRule] {
        &[reachability_findings]
    }
}

/// Reachability Analyzer's verdict, in the finding of the checklist item it names. Premise:
/// the analysis ran from this instance's ENI to this service's gateway endpoint, so what it
/// explains is the endpoint path itself; only "no path found" analyses count.
fn reachability_findings(r: &ProbeResults, _: &Expectations, t: &TargetSpec, f: &mut Findings) {
    for a in r.reachability.iter().filter(|a| a.service == t.service) {
        if a.network_path_found != Some(false) {
            continue;
        }
        for x in &a.explanations {
            let code = match x.code.as_str() {
                c if c.contains("SG") || c.contains("SECURITY_GROUP") => {
                    FindingCode::SG_EGRESS_BLOCKS
                }
                c if c.contains("ACL") => FindingCode::NACL_OUTBOUND_BLOCKS,
                "MORE_SPECIFIC_ROUTE" => FindingCode::ROUTE_OVERRIDES_ENDPOINT,
                c if c.contains("ROUTE") => FindingCode::ROUTE_TABLE_NOT_ASSOCIATED,
                _ => continue,
            };
            f.add(
                code,
                Severity::Error,
                &t.id,
                format!(
                    "Reachability Analyzer finds no path from {} to {}: {}",
                    a.source, a.destination, x.meaning
                ),
                format!(
                    "Analysis {} explanation {}{}{}.",
                    a.analysis_id.as_deref().unwrap_or("?"),
                    x.code,
                    x.component
                        .as_deref()
                        .map(|c| format!(" on {c}"))
                        .unwrap_or_default(),
                    x.direction
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                code.general_fix().into(),
                vec![format!("analyzer/{}", t.service.as_str())],
            );
        }
    }
}

impl Check for ReachabilityEvidence {
    const KIND: CheckKind = CheckKind::Reachability;
    fn id(&self) -> String {
        format!("analyzer/{}", self.service.as_str())
    }
    fn subject(&self) -> String {
        format!("{} -> {}", self.source, self.destination)
    }
    fn status(&self) -> CheckStatus {
        match (self.network_path_found, self.cleaned_up) {
            (Some(true), true) => CheckStatus::Ok,
            (Some(true), false) => CheckStatus::Warn,
            (Some(false), _) => CheckStatus::Fail,
            (None, _) => CheckStatus::Warn,
        }
    }
    fn summary(&self) -> String {
        let found = match self.network_path_found {
            Some(true) => "NetworkPathFound: true".to_string(),
            Some(false) => format!(
                "NetworkPathFound: false ({})",
                self.explanations
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.meaning))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            None => format!(
                "no result ({}: {})",
                self.status,
                self.error.as_deref().unwrap_or("unknown")
            ),
        };
        format!(
            "Reachability Analyzer {} -> {} tcp/443: {found}; {}",
            self.source,
            self.destination,
            if self.cleaned_up {
                "path and analysis deleted"
            } else {
                "COULD NOT DELETE the path/analysis it created (see the ids in the JSON report)"
            }
        )
    }
    fn duration_ms(&self) -> u64 {
        self.duration_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Reachability(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::slice::{findings_of, s3_target};

    fn explanation(code: &str) -> ReachabilityExplanation {
        ReachabilityExplanation {
            code: code.into(),
            meaning: format!("{code} blocks it"),
            component: Some("sg-1".into()),
            direction: Some("egress".into()),
        }
    }

    /// A "no path found" analysis of the target's service: each explanation in the finding of
    /// the checklist item it names (unknown ones left out); a found path says nothing.
    #[test]
    fn each_explanation_in_the_finding_of_its_item() {
        let exp = Expectations::default_run();
        let mut r = ProbeResults {
            targets: vec![s3_target("s3.eu-west-1.amazonaws.com")],
            reachability: vec![ReachabilityEvidence {
                service: Service::S3,
                source: "eni-1".into(),
                destination: "vpce-1".into(),
                analysis_id: Some("nia-1".into()),
                network_path_found: Some(false),
                explanations: vec![
                    explanation("ENI_SG_RULES_MISMATCH"),
                    explanation("SOMETHING_ELSE"),
                    explanation("MORE_SPECIFIC_ROUTE"),
                ],
                ..ReachabilityEvidence::default()
            }],
            ..ProbeResults::default()
        };
        let found = findings_of(&ReachabilitySlice, &r, &exp);
        let codes: Vec<FindingCode> = found.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            vec![
                FindingCode::SG_EGRESS_BLOCKS,
                FindingCode::ROUTE_OVERRIDES_ENDPOINT
            ]
        );
        assert_eq!(
            found[0].detail,
            "Analysis nia-1 explanation ENI_SG_RULES_MISMATCH on sg-1 (egress)."
        );
        assert_eq!(found[0].check_ids, vec!["analyzer/s3".to_string()]);

        r.reachability[0].network_path_found = Some(true);
        assert!(findings_of(&ReachabilitySlice, &r, &exp).is_empty());
    }
}
