//! Opt-in Reachability Analyzer: a network insights path from the instance's ENI to the gateway
//! endpoint on TCP 443, one analysis, waited for within the run's deadline, and both deleted
//! again on every way out (success, failure, deadline, Ctrl-C). AWS charges per analysis.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Protocol, ResourceType, Tag, TagSpecification};

use crate::net::millis;
use crate::report::{ReachabilityEvidence, ReachabilityExplanation, Service};

/// Time kept back from the deadline for deleting what was created.
const CLEANUP_RESERVE: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_secs(2);

pub async fn analyze(
    client: &aws_sdk_ec2::Client,
    service: Service,
    eni: &str,
    endpoint: &str,
    deadline: Instant,
) -> ReachabilityEvidence {
    let started = Instant::now();
    let mut ev = ReachabilityEvidence {
        service,
        source: eni.to_string(),
        destination: endpoint.to_string(),
        status: "error".into(),
        ..ReachabilityEvidence::default()
    };
    let work_until = deadline.checked_sub(CLEANUP_RESERVE).unwrap_or(deadline);
    let work = run(client, eni, endpoint, work_until, &mut ev);
    tokio::select! {
        () = work => {}
        _ = tokio::signal::ctrl_c() => {
            ev.status = "interrupted".into();
            ev.error = Some("interrupted (Ctrl-C); cleaning up".into());
        }
    }
    ev.cleaned_up = cleanup(client, &ev).await;
    ev.duration_ms = millis(started.elapsed());
    ev
}

async fn run(
    client: &aws_sdk_ec2::Client,
    eni: &str,
    endpoint: &str,
    until: Instant,
    ev: &mut ReachabilityEvidence,
) {
    let left = || until.saturating_duration_since(Instant::now());
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::NetworkInsightsPath)
        .tags(Tag::builder().key("created-by").value("vpce-probe").build())
        .build();
    let created = tokio::time::timeout(
        left(),
        client
            .create_network_insights_path()
            .source(eni)
            .destination(endpoint)
            .protocol(Protocol::Tcp)
            .destination_port(443)
            .tag_specifications(tags)
            .send(),
    )
    .await;
    let path_id = match created {
        Ok(Ok(out)) => out
            .network_insights_path()
            .and_then(|p| p.network_insights_path_id())
            .map(str::to_string),
        Ok(Err(e)) => {
            ev.error = Some(error_text(&e));
            return;
        }
        Err(_) => {
            ev.error = Some("CreateNetworkInsightsPath did not answer in time".into());
            return;
        }
    };
    ev.path_id = path_id.clone();
    let Some(path_id) = path_id else {
        ev.error = Some("CreateNetworkInsightsPath returned no path id".into());
        return;
    };
    let started = tokio::time::timeout(
        left(),
        client
            .start_network_insights_analysis()
            .network_insights_path_id(&path_id)
            .send(),
    )
    .await;
    let analysis_id = match started {
        Ok(Ok(out)) => out
            .network_insights_analysis()
            .and_then(|a| a.network_insights_analysis_id())
            .map(str::to_string),
        Ok(Err(e)) => {
            ev.error = Some(error_text(&e));
            return;
        }
        Err(_) => {
            ev.error = Some("StartNetworkInsightsAnalysis did not answer in time".into());
            return;
        }
    };
    ev.analysis_id = analysis_id.clone();
    let Some(analysis_id) = analysis_id else {
        return;
    };
    loop {
        let described = tokio::time::timeout(
            left(),
            client
                .describe_network_insights_analyses()
                .network_insights_analysis_ids(&analysis_id)
                .send(),
        )
        .await;
        let analysis = match described {
            Ok(Ok(out)) => out.network_insights_analyses().first().cloned(),
            Ok(Err(e)) => {
                ev.error = Some(error_text(&e));
                return;
            }
            Err(_) => None,
        };
        let status = analysis
            .as_ref()
            .and_then(|a| a.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "running".into());
        ev.status = status.clone();
        if let Some(a) = &analysis
            && status != "running"
        {
            ev.network_path_found = a.network_path_found();
            ev.error = a.status_message().map(str::to_string);
            ev.explanations = a
                .explanations()
                .iter()
                .map(|x| {
                    let code = x.explanation_code().unwrap_or("").to_string();
                    ReachabilityExplanation {
                        meaning: meaning(&code).to_string(),
                        component: x.component().and_then(|c| c.id()).map(str::to_string),
                        direction: x.direction().map(str::to_string),
                        code,
                    }
                })
                .collect();
            return;
        }
        if left() <= POLL_EVERY {
            ev.error =
                Some("the analysis did not finish before the deadline (raise --deadline)".into());
            return;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Delete the analysis, then the path. True when nothing created is left behind.
async fn cleanup(client: &aws_sdk_ec2::Client, ev: &ReachabilityEvidence) -> bool {
    let bound = CLEANUP_RESERVE;
    let mut ok = true;
    if let Some(id) = &ev.analysis_id {
        ok &= matches!(
            tokio::time::timeout(
                bound,
                client
                    .delete_network_insights_analysis()
                    .network_insights_analysis_id(id)
                    .send()
            )
            .await,
            Ok(Ok(_))
        );
    }
    if let Some(id) = &ev.path_id {
        ok &= matches!(
            tokio::time::timeout(
                bound,
                client
                    .delete_network_insights_path()
                    .network_insights_path_id(id)
                    .send()
            )
            .await,
            Ok(Ok(_))
        );
    }
    ok
}

fn error_text<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::net::aws_error::sdk_error("EC2", e).text
}

/// Reachability Analyzer's explanation codes in plain words (the common ones; others are shown as codes).
pub fn meaning(code: &str) -> &'static str {
    match code {
        "ENI_SG_RULES_MISMATCH" | "SECURITY_GROUP_RULE_MISMATCH" | "SECURITY_GROUP_REFERENCE" => {
            "a security group rule does not allow the traffic"
        }
        "SUBNET_ACL_RESTRICTION" | "NETWORK_ACL_RULE" | "ACL_RULE_MISMATCH" => {
            "a network ACL rule denies the traffic"
        }
        "NO_ROUTE_TO_DESTINATION" | "ROUTE_TABLE_ROUTE" | "NO_ROUTE" => {
            "no route in the route table leads to the destination"
        }
        "MORE_SPECIFIC_ROUTE" => "a more specific route sends the traffic elsewhere",
        "BAD_STATE_ROUTE" | "BLACKHOLE_ROUTE" => "the route is in a bad or blackhole state",
        "VPC_ENDPOINT_SERVICE_RULE" | "VPC_ENDPOINT_POLICY" => {
            "the endpoint does not accept the traffic"
        }
        "BAD_STATE" | "BAD_STATE_VPCE" => "a component on the path is not available",
        "CANNOT_ROUTE" => "the traffic cannot be routed",
        _ => "see the explanation code in the Reachability Analyzer documentation",
    }
}
