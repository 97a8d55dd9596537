//! Instance facts over IMDSv2 through aws-config's IMDS client (token handling, endpoint
//! selection from AWS_EC2_METADATA_SERVICE_ENDPOINT). Credentials are never read here.

use std::time::{Duration, Instant};

use aws_config::imds::Client;
use aws_config::imds::client::error::ImdsError;
use tokio::sync::OnceCell;

use crate::config::Environment;
use crate::report::{ImdsEvidence, InstanceFacts};
// The walk's result and how it reads as a record are its pure half, the diagnosis crate's.
pub use vpce_probe_diagnosis::reading::imds::ImdsResult;

/// One IMDSv2 session for a whole run: one client, whose session token is fetched once and
/// shared by the instance facts and the SDK's credential chain (its IMDS provider walks the
/// same metadata service), and the instance's region, asked once by whichever needs it first
/// (the data plane waits for the region only, not for the whole walk).
pub struct ImdsSession {
    endpoint: String,
    /// None with the reason when IMDS is off or its endpoint is not usable.
    client: Result<Client, String>,
    region: OnceCell<Result<Option<String>, String>>,
}

impl ImdsSession {
    pub fn new(env: &Environment, timeout: Duration) -> Self {
        let endpoint = env.imds_endpoint_or_default();
        let client = if env.imds_disabled {
            Err("disabled by AWS_EC2_METADATA_DISABLED=true".to_string())
        } else {
            build_client(env, timeout)
        };
        ImdsSession {
            endpoint,
            client,
            region: OnceCell::new(),
        }
    }

    /// The client for the SDK's credential chain, once it holds a session token (the region
    /// was read with it): its IMDS provider then reuses that token. None otherwise, and the
    /// chain walks IMDS with its own client, as the applications' chain does: a token fetch
    /// that fails is not kept, so a chain sharing a client whose token is still being fetched
    /// would fetch it again after a failure, one more timeout when IMDS does not answer.
    pub fn client_with_token(&self) -> Option<Client> {
        match self.region.get() {
            Some(Ok(_)) => self.client.as_ref().ok().cloned(),
            _ => None,
        }
    }

    /// `placement/region`, fetched once; the first request also fetches the session token, so
    /// its failure means IMDS is not there. Ok(None) for a 404.
    pub async fn region(&self) -> &Result<Option<String>, String> {
        self.region
            .get_or_init(|| async {
                match &self.client {
                    Ok(c) => fetch(c, "/latest/meta-data/placement/region").await,
                    Err(e) => Err(e.clone()),
                }
            })
            .await
    }
}

fn build_client(env: &Environment, timeout: Duration) -> Result<Client, String> {
    let mut builder = Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .operation_timeout(timeout * 3)
        .max_attempts(1);
    if let Some(custom) = &env.imds_endpoint {
        builder = builder.endpoint(custom).map_err(|e| {
            format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={custom} is not usable: {e}")
        })?;
    }
    Ok(builder.build())
}

/// The instance facts: the region and the `mac` first, then every other path at once, the
/// interface's own included (three round trips after the token).
pub async fn collect(session: &ImdsSession) -> ImdsResult {
    let started = Instant::now();
    let endpoint = session.endpoint.clone();
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
    let client = match &session.client {
        Ok(c) => c.clone(),
        Err(e) => return unavailable(e.clone()),
    };
    let get = |path: &'static str| {
        let client = client.clone();
        async move { fetch(&client, path).await }
    };

    let (region, mac) = match region_and_mac(session, &client).await {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };
    let mut missing = Vec::new();
    let mac_value = mac.as_ref().ok().cloned().flatten();
    let ((az, instance_id, local_ipv4, public_ipv4, roles, identity), interface) = tokio::join!(
        async {
            tokio::join!(
                get("/latest/meta-data/placement/availability-zone"),
                get("/latest/meta-data/instance-id"),
                get("/latest/meta-data/local-ipv4"),
                get("/latest/meta-data/public-ipv4"),
                get("/latest/meta-data/iam/security-credentials/"),
                get("/latest/dynamic/instance-identity/document"),
            )
        },
        interface_paths(&client, mac_value.as_deref())
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
    if let (Some(_), Some((vpc, subnet, sgs, cidrs, eni))) = (&facts.mac, interface) {
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

/// One path's answer: Ok(None) for a 404.
type Fetched = Result<Option<String>, String>;

/// The region (shared with the rest of the run) and, beside it, the `mac`, so the interface's
/// paths need no third round trip. Err when IMDS is not there; then the mac's answer is not
/// waited for (a token that could not be fetched is fetched again by the next request).
async fn region_and_mac(
    session: &ImdsSession,
    client: &Client,
) -> Result<(String, Fetched), String> {
    let mac_request = fetch(client, "/latest/meta-data/mac");
    tokio::pin!(mac_request);
    let mut mac_answer = None;
    let region = tokio::select! {
        biased;
        r = session.region() => r.clone(),
        m = &mut mac_request => {
            mac_answer = Some(m);
            session.region().await.clone()
        }
    };
    let region = match region {
        Ok(Some(r)) => r,
        Ok(None) => return Err("placement/region: 404 Not Found".into()),
        Err(e) => return Err(e),
    };
    let mac = match mac_answer {
        Some(m) => m,
        None => mac_request.await,
    };
    Ok((region, mac))
}

/// The interface's `vpc-id`, `subnet-id`, `security-group-ids`, `vpc-ipv4-cidr-blocks` and
/// `interface-id`, at once; None without a mac.
async fn interface_paths(
    client: &Client,
    mac: Option<&str>,
) -> Option<(Fetched, Fetched, Fetched, Fetched, Fetched)> {
    let base = format!("/latest/meta-data/network/interfaces/macs/{}", mac?);
    let (vpc, subnet, sgs, cidrs, eni) = (
        format!("{base}/vpc-id"),
        format!("{base}/subnet-id"),
        format!("{base}/security-group-ids"),
        format!("{base}/vpc-ipv4-cidr-blocks"),
        format!("{base}/interface-id"),
    );
    Some(tokio::join!(
        fetch(client, &vpc),
        fetch(client, &subnet),
        fetch(client, &sgs),
        fetch(client, &cidrs),
        fetch(client, &eni),
    ))
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
async fn fetch(client: &Client, path: &str) -> Fetched {
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
