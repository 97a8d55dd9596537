//! A DNS server on UDP and TCP that answers A/AAAA from a fixed table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::runtime::{Background, READ_TIMEOUT, bind_tcp, hold, log, tokio_listener};

const TTL: u32 = 60;

/// Name (lowercase, no trailing dot) → addresses.
#[derive(Clone, Debug, Default)]
pub struct DnsRecords {
    map: HashMap<String, Vec<IpAddr>>,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsRecords {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one address to `name` (A or AAAA according to the address family).
    pub fn add(mut self, name: &str, ip: IpAddr) -> Self {
        self.map.entry(normalize(name)).or_default().push(ip);
        self
    }

    /// Makes `name` exist with no addresses: every A/AAAA query for it gets NODATA.
    pub fn add_empty(mut self, name: &str) -> Self {
        self.map.entry(normalize(name)).or_default();
        self
    }
}

pub enum DnsMode {
    /// Answers from the records.
    Answer,
    /// Never answers: clients time out (queries are still counted).
    Drop,
    /// Answers every query with SERVFAIL.
    ServFail,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    asked: Arc<Mutex<Vec<String>>>,
    asked_typed: Arc<Mutex<Vec<String>>>,
    _bg: Background,
}

impl DnsServer {
    /// Queries received so far (UDP and TCP, every mode).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Names asked so far, in order (lowercase, no trailing dot).
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Questions asked so far as "name TYPE", e.g. "s3.eu-west-1.amazonaws.com AAAA".
    pub fn asked_with_type(&self) -> Vec<String> {
        self.asked_typed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct State {
    addr: SocketAddr,
    records: DnsRecords,
    mode: DnsMode,
    queries: Arc<AtomicUsize>,
    asked: Arc<Mutex<Vec<String>>>,
    asked_typed: Arc<Mutex<Vec<String>>>,
}

impl State {
    /// Decodes one query and builds the answer; None = send nothing.
    fn handle(&self, packet: &[u8], transport: &str) -> Option<Vec<u8>> {
        let req = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(e) => {
                log(
                    "dns",
                    self.addr,
                    format!("undecodable {transport} packet: {e}"),
                );
                return None;
            }
        };
        if req.metadata.message_type != MessageType::Query {
            log("dns", self.addr, "ignoring a message that is not a query");
            return None;
        }
        self.queries.fetch_add(1, Ordering::SeqCst);
        for q in &req.queries {
            let name = normalize(&q.name().to_ascii());
            self.asked_typed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{name} {}", q.query_type()));
            self.asked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(name);
        }
        if matches!(self.mode, DnsMode::Drop) {
            return None;
        }

        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.checking_disabled = req.metadata.checking_disabled;
        resp.add_queries(req.queries.iter().cloned());
        if req.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            resp.set_edns(edns);
        }

        resp.metadata.response_code = if matches!(self.mode, DnsMode::ServFail) {
            ResponseCode::ServFail
        } else if req.metadata.op_code != OpCode::Query || req.queries.len() != 1 {
            ResponseCode::FormErr
        } else {
            let q = &req.queries[0];
            match self.records.map.get(&normalize(&q.name().to_ascii())) {
                None => ResponseCode::NXDomain,
                Some(ips) => {
                    for ip in ips {
                        let rdata = match (q.query_type(), ip) {
                            (RecordType::A, IpAddr::V4(v4)) => RData::A(A(*v4)),
                            (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
                            _ => continue,
                        };
                        resp.add_answer(Record::from_rdata(q.name().clone(), TTL, rdata));
                    }
                    ResponseCode::NoError
                }
            }
        };

        match resp.to_vec() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                log("dns", self.addr, format!("cannot encode answer: {e}"));
                None
            }
        }
    }
}

/// UDP and TCP on `bind` (e.g. 127.0.53.1:53). A/AAAA answer with the name's records of that
/// family; a known name without records of the asked type gets NOERROR with no answers (NODATA);
/// an unknown name gets NXDOMAIN. TTL 60; echoes id and question; sets RA; counts queries.
/// With port 0, UDP and TCP share one ephemeral port.
pub fn start_dns(bind: SocketAddr, records: DnsRecords, mode: DnsMode) -> DnsServer {
    let (udp, tcp) = bind_udp_and_tcp(bind);
    let addr = udp.local_addr().expect("udp local addr");
    let queries = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let asked_typed = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::new(State {
        addr,
        records,
        mode,
        queries: queries.clone(),
        asked: asked.clone(),
        asked_typed: asked_typed.clone(),
    });
    let bg = Background::spawn(format!("fake-dns-{addr}"), move || async move {
        let udp = match UdpSocket::from_std(udp) {
            Ok(s) => s,
            Err(e) => {
                log("dns", addr, format!("cannot register UDP socket: {e}"));
                return;
            }
        };
        let Some(tcp) = tokio_listener("dns", addr, tcp) else {
            return;
        };
        tokio::spawn(serve_tcp(state.clone(), tcp));
        serve_udp(state, udp).await;
    });
    DnsServer {
        addr,
        queries,
        asked,
        asked_typed,
        _bg: bg,
    }
}

fn bind_udp_and_tcp(bind: SocketAddr) -> (std::net::UdpSocket, std::net::TcpListener) {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind(bind)
            .unwrap_or_else(|e| panic!("fake dns: cannot bind UDP {bind}: {e}"));
        udp.set_nonblocking(true).expect("udp nonblocking");
        let actual = udp.local_addr().expect("udp local addr");
        if bind.port() != 0 {
            return (udp, bind_tcp("dns", actual));
        }
        match std::net::TcpListener::bind(actual) {
            Ok(tcp) => {
                tcp.set_nonblocking(true).expect("tcp nonblocking");
                return (udp, tcp);
            }
            Err(e) => last_err = Some(e),
        }
    }
    panic!("fake dns: no port free for both UDP and TCP on {bind}: {last_err:?}");
}

async fn serve_udp(state: Arc<State>, udp: UdpSocket) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = match udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // e.g. ICMP port unreachable reported on a previous send; keep serving.
                log("dns", state.addr, format!("udp recv error: {e}"));
                continue;
            }
        };
        if let Some(answer) = state.handle(&buf[..n], "UDP") {
            let answer = if answer.len() > 512 && !has_edns(&buf[..n]) {
                truncated(&buf[..n]).unwrap_or(answer)
            } else {
                answer
            };
            if let Err(e) = udp.send_to(&answer, peer).await {
                log("dns", state.addr, format!("udp send to {peer}: {e}"));
            }
        }
    }
}

fn has_edns(packet: &[u8]) -> bool {
    Message::from_vec(packet)
        .map(|m| m.edns.is_some())
        .unwrap_or(false)
}

/// An empty TC=1 answer, so that a client without EDNS retries over TCP.
fn truncated(packet: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(packet).ok()?;
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.truncation = true;
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_queries(req.queries.iter().cloned());
    resp.to_vec().ok()
}

async fn serve_tcp(state: Arc<State>, listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(tcp_conn(state.clone(), stream));
            }
            Err(e) => {
                log("dns", state.addr, format!("tcp accept error: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_conn(state: Arc<State>, mut stream: TcpStream) {
    loop {
        let mut len = [0u8; 2];
        match timeout(READ_TIMEOUT, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return, // closed, or idle for READ_TIMEOUT
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        match timeout(READ_TIMEOUT, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                log("dns", state.addr, format!("tcp read: {e}"));
                return;
            }
            Err(_) => {
                log("dns", state.addr, "tcp read timed out mid-message");
                return;
            }
        }
        match state.handle(&msg, "TCP") {
            Some(answer) => {
                let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&answer);
                let write = timeout(READ_TIMEOUT, stream.write_all(&framed)).await;
                if !matches!(write, Ok(Ok(()))) {
                    return;
                }
            }
            None if matches!(state.mode, DnsMode::Drop) => {
                hold(&mut stream).await;
                return;
            }
            None => {}
        }
    }
}
