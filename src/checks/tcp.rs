//! TCP to every answer on the endpoint's port (443 unless an endpoint URL says otherwise), with
//! the connect time; the established stream goes on to the
//! TLS check so a healthy run costs one connect per address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use super::Check;
use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::report::{
    AddressClass, AddressOrigin, CheckKind, CheckStatus, Evidence, Service, TcpAttempt, TcpOutcome,
};

pub const HTTPS_PORT: u16 = 443;

pub async fn attempt(
    name: &str,
    service: Service,
    ip: IpAddr,
    port: u16,
    class: AddressClass,
    timeout: Duration,
    limits: &Limits,
) -> (TcpAttempt, Option<TcpStream>) {
    let addr = SocketAddr::new(ip, port);
    let c = tcp::connect(limits, addr, None, timeout).await;
    (
        TcpAttempt {
            name: name.to_string(),
            service,
            address: ip.to_string(),
            port,
            address_class: class,
            origin: AddressOrigin::Application,
            local_address: c.local.map(|l| l.to_string()),
            outcome: c.outcome,
            error: c.error,
            connect_ms: millis(c.elapsed),
        },
        c.stream,
    )
}

/// The checklist items a failed connect points to, for the text and the finding.
pub fn suspects(outcome: TcpOutcome) -> &'static str {
    match outcome {
        TcpOutcome::Timeout => {
            "route table (endpoint route missing), security group egress, or network ACL"
        }
        TcpOutcome::Refused => "a host firewall or a device answering for the address",
        TcpOutcome::Unreachable => "the instance's own routes or host firewall",
        TcpOutcome::Connected | TcpOutcome::Error => "",
    }
}

impl Check for TcpAttempt {
    const KIND: CheckKind = CheckKind::Tcp;
    fn id(&self) -> String {
        format!("tcp/{}/{}", self.name, self.address)
    }
    fn subject(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
    fn status(&self) -> CheckStatus {
        match self.outcome {
            TcpOutcome::Connected => CheckStatus::Ok,
            _ => CheckStatus::Fail,
        }
    }
    fn summary(&self) -> String {
        let addr = if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        };
        match self.outcome {
            TcpOutcome::Connected => {
                format!("{addr} ({}) connected in {} ms", self.name, self.connect_ms)
            }
            outcome => format!(
                "{addr} ({}) {}: {} (suspect: {})",
                self.name,
                match outcome {
                    TcpOutcome::Timeout => "timed out",
                    TcpOutcome::Refused => "refused",
                    TcpOutcome::Unreachable => "unreachable",
                    _ => "failed",
                },
                self.error.as_deref().unwrap_or(""),
                suspects(outcome),
            ),
        }
    }
    fn duration_ms(&self) -> u64 {
        self.connect_ms
    }
    fn evidence(&self) -> Evidence {
        Evidence::Tcp(self.clone())
    }
}
