//! Host facts for the report (sysinfo), and the kernel's ephemeral port range for the NACL sweep.

use crate::report::{HostFacts, PortRange};

pub fn collect(clock_utc: String) -> HostFacts {
    HostFacts {
        hostname: sysinfo::System::host_name().ok(),
        os: sysinfo::System::long_os_version().ok(),
        kernel: sysinfo::System::kernel_version().ok(),
        uptime_secs: sysinfo::System::uptime().unwrap_or(0),
        clock_utc,
        ephemeral_ports: std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| parse_port_range(&s)),
    }
}

pub fn parse_port_range(text: &str) -> Option<PortRange> {
    let mut it = text.split_whitespace().map(|p| p.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(first)), Some(Ok(last))) if first <= last => Some(PortRange { first, last }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_file() {
        assert_eq!(
            parse_port_range("32768\t60999\n"),
            Some(PortRange {
                first: 32768,
                last: 60999
            })
        );
        assert_eq!(parse_port_range("70000 1"), None);
        assert_eq!(parse_port_range(""), None);
    }
}
