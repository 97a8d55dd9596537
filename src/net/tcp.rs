//! TCP connects through socket2, so the source port can be chosen (bind before connect) for
//! the network-ACL sweep, and errors keep their errno for classification.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use crate::net::limits::Limits;
use crate::report::TcpOutcome;

pub struct Connected {
    pub outcome: TcpOutcome,
    pub stream: Option<TcpStream>,
    pub error: Option<String>,
    pub elapsed: Duration,
    pub local: Option<SocketAddr>,
}

/// Connect to `addr`, optionally from `source_port`, within `timeout`, inside the run's
/// connection bounds: the timeout (and `elapsed`) start once the connect may start.
pub async fn connect(
    limits: &Limits,
    addr: SocketAddr,
    source_port: Option<u16>,
    timeout: Duration,
) -> Connected {
    limits
        .connect(addr.ip(), connect_now(addr, source_port, timeout), |c| {
            c.outcome != TcpOutcome::Timeout
        })
        .await
}

async fn connect_now(addr: SocketAddr, source_port: Option<u16>, timeout: Duration) -> Connected {
    let started = Instant::now();
    let fail = |outcome, error: String| Connected {
        outcome,
        stream: None,
        error: Some(error),
        elapsed: started.elapsed(),
        local: None,
    };
    let socket = match make_socket(addr, source_port) {
        Ok(s) => s,
        Err(e) => return fail(TcpOutcome::Error, describe(&e)),
    };
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Err(_) => fail(
            TcpOutcome::Timeout,
            format!("no answer within {} ms", timeout.as_millis()),
        ),
        Ok(Err(e)) => fail(classify(&e), describe(&e)),
        Ok(Ok(stream)) => Connected {
            outcome: TcpOutcome::Connected,
            local: stream.local_addr().ok(),
            stream: Some(stream),
            error: None,
            elapsed: started.elapsed(),
        },
    }
}

fn make_socket(addr: SocketAddr, source_port: Option<u16>) -> io::Result<TcpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(port) = source_port {
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], port)),
        };
        socket.bind(&local.into())?;
    }
    Ok(TcpSocket::from_std_stream(socket.into()))
}

/// What each errno means on the path (the VPC lab produces each: lab/README.md, "Faults").
pub fn classify(e: &io::Error) -> TcpOutcome {
    match e.raw_os_error() {
        Some(libc_errno::ECONNREFUSED) => TcpOutcome::Refused,
        Some(libc_errno::EHOSTUNREACH)
        | Some(libc_errno::ENETUNREACH)
        | Some(libc_errno::EACCES)
        | Some(libc_errno::EPERM)
        | Some(libc_errno::EINVAL) => TcpOutcome::Unreachable,
        Some(libc_errno::ETIMEDOUT) => TcpOutcome::Timeout,
        _ => match e.kind() {
            io::ErrorKind::ConnectionRefused => TcpOutcome::Refused,
            io::ErrorKind::TimedOut => TcpOutcome::Timeout,
            _ => TcpOutcome::Error,
        },
    }
}

fn describe(e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc_errno::EACCES) | Some(libc_errno::EPERM) => {
            " (a prohibit route or a host firewall rule)"
        }
        Some(libc_errno::EINVAL) => " (a blackhole route)",
        _ => "",
    };
    format!("{e}{hint}")
}

/// Linux errno values (stable ABI); spelled out to avoid a libc dependency for five numbers.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const EACCES: i32 = 13;
    pub const EINVAL: i32 = 22;
    pub const ENETUNREACH: i32 = 101;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
    pub const EHOSTUNREACH: i32 = 113;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classification() {
        let cases = [
            (111, TcpOutcome::Refused),
            (113, TcpOutcome::Unreachable),
            (101, TcpOutcome::Unreachable),
            (13, TcpOutcome::Unreachable),
            (22, TcpOutcome::Unreachable),
            (110, TcpOutcome::Timeout),
            (104, TcpOutcome::Error),
        ];
        for (errno, want) in cases {
            assert_eq!(
                classify(&io::Error::from_raw_os_error(errno)),
                want,
                "{errno}"
            );
        }
    }

    #[tokio::test]
    async fn connects_from_a_chosen_source_port_and_reports_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Find a free port by binding then releasing it.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let limits = Limits::unbounded();
        let c = connect(&limits, addr, Some(port), Duration::from_secs(2)).await;
        assert_eq!(c.outcome, TcpOutcome::Connected, "{:?}", c.error);
        assert_eq!(c.local.unwrap().port(), port);
        drop(listener);
        let c = connect(&limits, addr, None, Duration::from_secs(2)).await;
        assert_eq!(c.outcome, TcpOutcome::Refused);
    }
}
