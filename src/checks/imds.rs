//! Instance facts over IMDSv2 through aws-config's IMDS client (token handling, endpoint
//! selection from AWS_EC2_METADATA_SERVICE_ENDPOINT). Credentials are never read here.

use std::time::{Duration, Instant};

use aws_config::imds::client::error::ImdsError;

use super::Check;
use crate::config::Environment;
use crate::net::millis;
use crate::report::{CheckKind, CheckStatus, Evidence, ImdsEvidence, InstanceFacts};

pub struct ImdsResult {
    pub evidence: ImdsEvidence,
    pub facts: Option<InstanceFacts>,
    pub duration: Duration,
}

pub async fn collect(env: &Environment, timeout: Duration) -> ImdsResult {
    let started = Instant::now();
    let endpoint = env.imds_endpoint_or_default();
    let unavailable = |error: String| ImdsResult {
        evidence: ImdsEvidence {
            endpoint: endpoint.clone(),
            reachable: false,
            error: Some(error),
            missing: Vec::new(),
        },
        facts: None,
        duration: started.elapsed(),
    };
    if env.imds_disabled {
        return unavailable("disabled by AWS_EC2_METADATA_DISABLED=true".into());
    }
    let mut builder = aws_config::imds::Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .operation_timeout(timeout * 3)
        .max_attempts(1);
    if let Some(custom) = &env.imds_endpoint {
        builder = match builder.endpoint(custom) {
            Ok(b) => b,
            Err(e) => {
                return unavailable(format!(
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT={custom} is not usable: {e}"
                ));
            }
        };
    }
    let client = builder.build();
    let get = |path: &'static str| {
        let client = client.clone();
        async move { fetch(&client, path).await }
    };

    // The first request also fetches the session token: if it fails, IMDS is not there.
    let region = match get("/latest/meta-data/placement/region").await {
        Ok(Some(r)) => r,
        Ok(None) => return unavailable("placement/region: 404 Not Found".into()),
        Err(e) => return unavailable(e),
    };
    let mut missing = Vec::new();
    let (az, instance_id, mac, local_ipv4, public_ipv4, roles, identity) = tokio::join!(
        get("/latest/meta-data/placement/availability-zone"),
        get("/latest/meta-data/instance-id"),
        get("/latest/meta-data/mac"),
        get("/latest/meta-data/local-ipv4"),
        get("/latest/meta-data/public-ipv4"),
        get("/latest/meta-data/iam/security-credentials/"),
        get("/latest/dynamic/instance-identity/document"),
    );
    let mut keep = |name: &str, r: Result<Option<String>, String>, expected: bool| match r {
        Ok(Some(v)) => Some(v),
        Ok(None) if !expected => None,
        Ok(None) => {
            missing.push(format!("{name}: not found"));
            None
        }
        Err(e) => {
            missing.push(format!("{name}: {e}"));
            None
        }
    };
    let mut facts = InstanceFacts {
        region: Some(region),
        availability_zone: keep("placement/availability-zone", az, true),
        instance_id: keep("instance-id", instance_id, true),
        mac: keep("mac", mac, true),
        private_ipv4: keep("local-ipv4", local_ipv4, true),
        public_ipv4: keep("public-ipv4", public_ipv4, false),
        iam_role: keep("iam/security-credentials/", roles, false)
            .and_then(|r| r.lines().next().map(str::to_string)),
        ..InstanceFacts::default()
    };
    if let Some(doc) = keep("instance-identity/document", identity, true) {
        facts.account_id = serde_json::from_str::<serde_json::Value>(&doc)
            .ok()
            .and_then(|v| v.get("accountId")?.as_str().map(str::to_string));
    }
    if let Some(mac) = facts.mac.clone() {
        let base = format!("/latest/meta-data/network/interfaces/macs/{mac}");
        let path = |leaf: &str| format!("{base}/{leaf}");
        let (vpc_path, subnet_path, sgs_path, cidrs_path, eni_path) = (
            path("vpc-id"),
            path("subnet-id"),
            path("security-group-ids"),
            path("vpc-ipv4-cidr-blocks"),
            path("interface-id"),
        );
        let (vpc, subnet, sgs, cidrs, eni) = tokio::join!(
            fetch(&client, &vpc_path),
            fetch(&client, &subnet_path),
            fetch(&client, &sgs_path),
            fetch(&client, &cidrs_path),
            fetch(&client, &eni_path),
        );
        facts.eni_id = keep("interface-id", eni, true);
        facts.vpc_id = keep("vpc-id", vpc, true);
        facts.subnet_id = keep("subnet-id", subnet, true);
        facts.security_group_ids = lines(keep("security-group-ids", sgs, true));
        facts.vpc_cidrs = lines(keep("vpc-ipv4-cidr-blocks", cidrs, true));
    }
    ImdsResult {
        evidence: ImdsEvidence {
            endpoint,
            reachable: true,
            error: None,
            missing,
        },
        facts: Some(facts),
        duration: started.elapsed(),
    }
}

fn lines(v: Option<String>) -> Vec<String> {
    v.map(|s| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// Ok(None) for 404 (a path that does not apply to this instance), Err for anything else.
async fn fetch(client: &aws_config::imds::Client, path: &str) -> Result<Option<String>, String> {
    match client.get(path).await {
        Ok(v) => Ok(Some(v.as_ref().trim().to_string())),
        Err(ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => Ok(None),
        Err(ImdsError::ErrorResponse(r)) => Err(format!("HTTP {}", r.response().status().as_u16())),
        Err(ImdsError::FailedToLoadToken(e)) => Err(format!(
            "no IMDSv2 session token ({})",
            if e.is_dispatch_failure() {
                "could not connect or timed out"
            } else {
                "the token request was refused"
            }
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl Check for ImdsResult {
    const KIND: CheckKind = CheckKind::Imds;
    fn id(&self) -> String {
        "imds".into()
    }
    fn subject(&self) -> String {
        self.evidence.endpoint.clone()
    }
    fn status(&self) -> CheckStatus {
        match (&self.facts, self.evidence.missing.is_empty()) {
            (None, _) => CheckStatus::Fail,
            (Some(_), true) => CheckStatus::Ok,
            (Some(_), false) => CheckStatus::Warn,
        }
    }
    fn summary(&self) -> String {
        match &self.facts {
            None => format!(
                "IMDSv2 unavailable at {}: {}",
                self.evidence.endpoint,
                self.evidence.error.as_deref().unwrap_or("unknown error")
            ),
            Some(f) => format!(
                "{} in {} ({}, {})",
                f.instance_id.as_deref().unwrap_or("instance"),
                f.availability_zone
                    .as_deref()
                    .or(f.region.as_deref())
                    .unwrap_or("?"),
                f.vpc_id.as_deref().unwrap_or("vpc ?"),
                f.subnet_id.as_deref().unwrap_or("subnet ?"),
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        millis(self.duration)
    }
    fn evidence(&self) -> Evidence {
        Evidence::Imds(self.evidence.clone())
    }
}
