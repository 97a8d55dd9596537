//! Prints timing figures of the one-shot probe against the tests' loopback fakes (run as root
//! through scripts/timing.sh). Figures, not assertions: the machines are shared and noisy.
//!
//! 1. Healthy: wall time of the run vs the sum of its checks' durations (sequential cost)
//!    and vs the slowest single check.
//! 2. One address black-holed (iptables DROP): wall time vs --timeout.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::Lab;

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn measure(lab: &Lab, extra: &[&str]) -> (f64, f64, f64, i32) {
    let mut walls = Vec::new();
    let mut sums = Vec::new();
    let mut maxes = Vec::new();
    let mut code = 0;
    for _ in 0..RUNS {
        let started = std::time::Instant::now();
        let out = lab.probe(extra);
        walls.push(started.elapsed().as_secs_f64() * 1000.0);
        code = out.code;
        let checks = out.report()["checks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let durations: Vec<f64> = checks
            .iter()
            .filter_map(|c| c["duration_ms"].as_f64())
            .collect();
        sums.push(durations.iter().sum());
        maxes.push(durations.iter().cloned().fold(0.0, f64::max));
    }
    (median(walls), median(sums), median(maxes), code)
}

fn main() {
    let lab = Lab::healthy(90);
    let (wall, sum, max, code) = measure(&lab, &[]);
    println!(
        "scenario                      exit  wall ms (median of {RUNS})  sum of checks ms  slowest check ms"
    );
    println!("healthy S3 + DynamoDB         {code:>4}  {wall:>22.0}  {sum:>16.0}  {max:>16.0}");
    let mut lab = lab;
    let s3 = lab.s3_ip().to_string();
    lab.drop_packets("OUTPUT", &["-d", &s3, "-p", "tcp", "--dport", "443"]);
    for timeout in ["1", "2"] {
        let (wall, sum, _max, code) = measure(&lab, &["--timeout", timeout]);
        let t: f64 = timeout.parse::<f64>().unwrap_or(1.0) * 1000.0;
        println!(
            "S3 black-holed, --timeout {timeout}   {code:>4}  {wall:>22.0}  {sum:>16.0}  ({:.2} x timeout)",
            wall / t
        );
    }
}
