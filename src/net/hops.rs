//! One TCP SYN with a chosen TTL (IPv6: hop limit), unprivileged: `IP_RECVERR` /
//! `IPV6_RECVERR` on the connecting socket queue the ICMP error a router sends back (time
//! exceeded, unreachable) with its sender, read from the socket's error queue (`recvmsg` with
//! `MSG_ERRQUEUE`), as `tracepath` does. No raw socket, no CAP_NET_RAW.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpSocket;

/// ICMP types of an error that names the router that sent it (the numbers differ by family).
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP6_DEST_UNREACH: u8 = 1;
const ICMP6_TIME_EXCEEDED: u8 = 3;

enum Icmp {
    TimeExceeded,
    Unreachable,
    Other,
}

fn icmp_kind(ty: u8, v6: bool) -> Icmp {
    match (v6, ty) {
        (false, ICMP_TIME_EXCEEDED) | (true, ICMP6_TIME_EXCEEDED) => Icmp::TimeExceeded,
        (false, ICMP_DEST_UNREACH) | (true, ICMP6_DEST_UNREACH) => Icmp::Unreachable,
        _ => Icmp::Other,
    }
}

/// What one probe with one TTL got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The address itself answered: a SYN-ACK (`refused` false) or a RST (`refused` true).
    Reached { refused: bool },
    /// A router on the way dropped the SYN because its TTL ran out, and said so.
    TimeExceeded { from: IpAddr },
    /// A router said the address is unreachable (`from`), or the local routing did (no `from`).
    Unreachable { from: Option<IpAddr>, error: String },
    /// Nothing within the wait.
    Silent,
    /// No probe could be sent (the socket could not be made or set up).
    Error(String),
}

impl Answer {
    pub fn reached(&self) -> bool {
        matches!(self, Answer::Reached { .. })
    }
}

/// Sends one SYN to `addr` with TTL `ttl` and waits up to `wait` for what comes back.
pub async fn probe(addr: SocketAddr, ttl: u8, wait: Duration) -> (Answer, Duration) {
    let started = Instant::now();
    let (socket, errqueue) = match make_socket(addr, ttl) {
        Ok(s) => s,
        Err(e) => return (Answer::Error(e.to_string()), started.elapsed()),
    };
    let answer = match tokio::time::timeout(wait, socket.connect(addr)).await {
        Err(_) => Answer::Silent,
        Ok(Ok(_stream)) => Answer::Reached { refused: false },
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Answer::Reached { refused: true }
        }
        Ok(Err(e)) => match icmp_error(&errqueue) {
            Some((Icmp::TimeExceeded, from)) => Answer::TimeExceeded { from },
            Some((Icmp::Unreachable, from)) => Answer::Unreachable {
                from: Some(from),
                error: e.to_string(),
            },
            _ => Answer::Unreachable {
                from: None,
                error: e.to_string(),
            },
        },
    };
    (answer, started.elapsed())
}

/// A non-blocking TCP socket with the TTL set and the error queue on, and a second handle to
/// it (the connect consumes the first; the error queue outlives it on the second).
fn make_socket(addr: SocketAddr, ttl: u8) -> io::Result<(TcpSocket, Socket)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match addr {
        SocketAddr::V4(_) => {
            socket.set_ttl_v4(u32::from(ttl))?;
            setsockopt(&socket, sockopt::Ipv4RecvErr, &true).map_err(io::Error::from)?;
        }
        SocketAddr::V6(_) => {
            socket.set_unicast_hops_v6(u32::from(ttl))?;
            setsockopt(&socket, sockopt::Ipv6RecvErr, &true).map_err(io::Error::from)?;
        }
    }
    let errqueue = socket.try_clone()?;
    Ok((TcpSocket::from_std_stream(socket.into()), errqueue))
}

/// The kind and sender of the first ICMP error queued on the socket, if any.
fn icmp_error(socket: &Socket) -> Option<(Icmp, IpAddr)> {
    let mut cmsg = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
    let mut buf = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
    )
    .ok()?;
    msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4RecvErr(err, Some(from))
            if err.ee_origin == nix::libc::SO_EE_ORIGIN_ICMP =>
        {
            let ip = Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr));
            Some((icmp_kind(err.ee_type, false), IpAddr::V4(ip)))
        }
        ControlMessageOwned::Ipv6RecvErr(err, Some(from))
            if err.ee_origin == nix::libc::SO_EE_ORIGIN_ICMP6 =>
        {
            let ip = Ipv6Addr::from(from.sin6_addr.s6_addr);
            Some((icmp_kind(err.ee_type, true), IpAddr::V6(ip)))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ttl_one_to_loopback_reaches_at_the_first_hop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answer, _) = probe(addr, 1, Duration::from_secs(2)).await;
        assert_eq!(answer, Answer::Reached { refused: false });
        drop(listener);
        let (answer, _) = probe(addr, 1, Duration::from_secs(2)).await;
        assert_eq!(answer, Answer::Reached { refused: true });
    }

    #[tokio::test]
    async fn ttl_one_to_ipv6_loopback_reaches_at_the_first_hop() {
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answer, _) = probe(addr, 1, Duration::from_secs(2)).await;
        assert_eq!(answer, Answer::Reached { refused: false });
    }
}
