//! Address classification that needs no ranges file (the probe's ranges.rs holds ip-ranges.json).

use std::net::IpAddr;

/// RFC 1918, carrier-grade NAT, and IPv6 unique-local addresses: where interface endpoints live.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}
