//! TCP to every answer on the endpoint's port (443 unless an endpoint URL says otherwise), with
//! the connect time; the established stream goes on to the
//! TLS check so a healthy run costs one connect per address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::net::limits::Limits;
use crate::net::{millis, tcp};
use crate::report::{AddressClass, AddressOrigin, Service, TcpAttempt};

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
