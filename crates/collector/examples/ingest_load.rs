//! The load generator of scripts/collector_bench.py: many agents posting prepared gzip'd reports
//! over keep-alive HTTP/1.1 connections, as the agents' sinks do, with a few microseconds of CPU
//! per request (Python's http.client costs more CPU than the collector itself, on the same two
//! cores). std only; loopback addresses only.
//!
//!     ingest_load ADDR[,ADDR...] TOKEN DIR
//!
//! DIR holds one file per agent (`agent-N`): records of [u32 id length][id][u32 body length]
//! [gzip'd body], little-endian. Agent N posts to ADDR number N modulo their count. Prints
//! `wall_s SECONDS`, then `ok MICROSECONDS` or `fail STATUS MICROSECONDS` per report.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failed step stops it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn records(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let raw = std::fs::read(path).expect("agent file");
    let mut out = Vec::new();
    let mut at = 0;
    let take = |at: &mut usize| {
        let len = u32::from_le_bytes(raw[*at..*at + 4].try_into().expect("length")) as usize;
        let bytes = raw[*at + 4..*at + 4 + len].to_vec();
        *at += 4 + len;
        bytes
    };
    while at < raw.len() {
        let id = String::from_utf8(take(&mut at)).expect("id");
        let body = take(&mut at);
        out.push((id, body));
    }
    out
}

/// Reads one response; returns its status.
fn response(reader: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    status
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(args.len(), 4, "usage: ingest_load ADDR[,ADDR...] TOKEN DIR");
    let addrs: Vec<SocketAddr> = args[1]
        .split(',')
        .map(|a| a.parse().expect("address"))
        .collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "loopback only");
    let token = args[2].clone();
    let mut files: Vec<_> = std::fs::read_dir(&args[3])
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let agents: Vec<Vec<(String, Vec<u8>)>> = files.iter().map(|f| records(f)).collect();
    let barrier = Arc::new(Barrier::new(agents.len() + 1));
    let handles: Vec<_> = agents
        .into_iter()
        .enumerate()
        .map(|(n, reports)| {
            let addr = addrs[n % addrs.len()];
            let token = token.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("timeout");
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let mut results = Vec::with_capacity(reports.len());
                barrier.wait();
                for (id, body) in reports {
                    let head = format!(
                        "POST /v1/reports HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nAuthorization: Bearer {token}\r\nX-Vpce-Probe-Report-Id: {id}\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let started = Instant::now();
                    let mut request = head.into_bytes();
                    request.extend_from_slice(&body);
                    writer.write_all(&request).expect("write");
                    let status = response(&mut reader);
                    results.push((status, started.elapsed()));
                }
                results
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let results: Vec<Vec<(u16, Duration)>> = handles
        .into_iter()
        .map(|h| h.join().expect("agent"))
        .collect();
    let wall = started.elapsed();
    let mut out = String::new();
    out.push_str(&format!("wall_s {}\n", wall.as_secs_f64()));
    for (status, took) in results.into_iter().flatten() {
        if status == 201 {
            out.push_str(&format!("ok {}\n", took.as_micros()));
        } else {
            out.push_str(&format!("fail {status} {}\n", took.as_micros()));
        }
    }
    std::io::stdout().write_all(out.as_bytes()).expect("stdout");
}
