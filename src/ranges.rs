//! AWS's published address ranges (ip-ranges.json format), reduced to S3 and DynamoDB.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use crate::report::{AddressClass, ClassifiedAddress, Service};
// Diagnosis classifies hop addresses with it too: it lives in the diagnosis crate.
pub use vpce_probe_diagnosis::ranges::is_private;

/// The snapshot shipped in the binary; its date is reported with every run.
const EMBEDDED: &str = include_str!("../data/ip-ranges-s3-dynamodb.json");

#[derive(Debug, thiserror::Error)]
pub enum RangesError {
    #[error("--ip-ranges: {0}")]
    Read(String),
    #[error(
        "ip-ranges file {path} is not in AWS's ip-ranges.json format: {reason}; download a fresh one from https://ip-ranges.amazonaws.com/ip-ranges.json"
    )]
    Format { path: String, reason: String },
}

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "createDate")]
    create_date: String,
    prefixes: Vec<V4Entry>,
    #[serde(default)]
    ipv6_prefixes: Vec<V6Entry>,
}

#[derive(Deserialize)]
struct V4Entry {
    ip_prefix: String,
    region: String,
    service: String,
}

#[derive(Deserialize)]
struct V6Entry {
    ipv6_prefix: String,
    region: String,
    service: String,
}

#[derive(Clone, Debug)]
pub struct Prefix {
    pub net: IpNet,
    pub region: String,
    pub service: Service,
}

#[derive(Clone, Debug)]
pub struct IpRanges {
    pub source: String,
    pub create_date: String,
    pub prefixes: Vec<Prefix>,
}

impl IpRanges {
    pub fn embedded() -> Self {
        // The embedded snapshot is checked by a unit test; failing here would be a build defect.
        Self::parse(EMBEDDED, "embedded").unwrap_or_else(|e| panic!("embedded ranges: {e}"))
    }

    pub fn from_file(path: &Path) -> Result<Self, RangesError> {
        let text = crate::fsread::read_string(path, crate::fsread::MAX_IP_RANGES)
            .map_err(RangesError::Read)?;
        Self::parse(&text, &crate::escape::shown_path(path))
    }

    pub fn parse(text: &str, source: &str) -> Result<Self, RangesError> {
        let format_err = |reason: String| RangesError::Format {
            path: source.to_string(),
            reason,
        };
        // serde's messages may quote the offending value: escaped and cut like any other.
        let doc: Document = serde_json::from_str(text)
            .map_err(|e| format_err(crate::escape::shown(&e.to_string())))?;
        let mut prefixes = Vec::new();
        let v4 = doc
            .prefixes
            .iter()
            .map(|e| (&e.ip_prefix, &e.region, &e.service));
        let v6 = doc
            .ipv6_prefixes
            .iter()
            .map(|e| (&e.ipv6_prefix, &e.region, &e.service));
        for (prefix, region, service) in v4.chain(v6) {
            let service = match service.as_str() {
                "S3" => Service::S3,
                "DYNAMODB" => Service::Dynamodb,
                _ => continue,
            };
            let net: IpNet = prefix.parse().map_err(|_| {
                format_err(format!(
                    "'{}' is not an address prefix",
                    crate::escape::shown(prefix)
                ))
            })?;
            prefixes.push(Prefix {
                net,
                region: region.clone(),
                service,
            });
        }
        if prefixes.is_empty() {
            return Err(format_err("it lists no S3 or DYNAMODB prefixes".into()));
        }
        Ok(IpRanges {
            source: source.to_string(),
            create_date: doc.create_date,
            prefixes,
        })
    }

    /// Regions that appear in the document (for validating --region).
    pub fn regions(&self) -> Vec<&str> {
        let mut regions: Vec<&str> = self
            .prefixes
            .iter()
            .map(|p| p.region.as_str())
            .filter(|r| *r != "GLOBAL")
            .collect();
        regions.sort_unstable();
        regions.dedup();
        regions
    }

    pub fn knows_region(&self, region: &str) -> bool {
        self.prefixes.iter().any(|p| p.region == region)
    }

    /// Whether the document lists any range of `service` (ip-ranges.json has none for S3
    /// Express One Zone).
    pub fn publishes(&self, service: Service) -> bool {
        service.has_published_ranges() && self.prefixes.iter().any(|p| p.service == service)
    }

    /// Classify an address against `service` in `region`. `vpc_cidrs` come from IMDS.
    pub fn classify(
        &self,
        ip: IpAddr,
        service: Service,
        region: &str,
        vpc_cidrs: &[IpNet],
    ) -> ClassifiedAddress {
        // Longest prefix of this service containing the address; ip-ranges lists some
        // addresses under both a regional and a GLOBAL entry.
        let best = self
            .prefixes
            .iter()
            .filter(|p| p.service == service && p.net.contains(&ip))
            .max_by_key(|p| (p.region == region, p.net.prefix_len()));
        let (class, prefix, prefix_region) = match best {
            Some(p) if p.region == region => (
                AddressClass::ServiceRegion,
                Some(p.net.to_string()),
                Some(p.region.clone()),
            ),
            Some(p) => (
                AddressClass::ServiceOtherRegion,
                Some(p.net.to_string()),
                Some(p.region.clone()),
            ),
            None if is_private(ip) || vpc_cidrs.iter().any(|n| n.contains(&ip)) => {
                (AddressClass::Private, None, None)
            }
            // No ranges to be outside of (S3 Express One Zone): never "outside".
            None if !self.publishes(service) => (AddressClass::Unpublished, None, None),
            None => (AddressClass::Outside, None, None),
        };
        ClassifiedAddress {
            ip: ip.to_string(),
            class,
            prefix,
            prefix_region,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_snapshot_parses_and_knows_regions() {
        let r = IpRanges::embedded();
        assert_eq!(r.create_date, "2026-08-22-15-17-05");
        assert!(r.prefixes.len() > 1000);
        assert!(r.knows_region("eu-west-1"));
        assert!(!r.knows_region("eu-wst-1"));
        assert!(r.regions().contains(&"us-east-1"));
        assert!(!r.regions().contains(&"GLOBAL"));
    }

    #[test]
    fn classification_table() {
        let r = IpRanges::embedded();
        let vpc: Vec<IpNet> = vec!["10.0.0.0/16".parse().unwrap()];
        // Pick a real eu-west-1 S3 prefix from the snapshot instead of hard-coding one.
        let eu_s3 = r
            .prefixes
            .iter()
            .find(|p| p.region == "eu-west-1" && p.service == Service::S3 && p.net.addr().is_ipv4())
            .expect("eu-west-1 S3 prefix");
        let inside = eu_s3.net.hosts().next().expect("host");
        let cases: Vec<(IpAddr, Service, &str, AddressClass)> = vec![
            (
                inside,
                Service::S3,
                "eu-west-1",
                AddressClass::ServiceRegion,
            ),
            (
                inside,
                Service::S3,
                "us-east-1",
                AddressClass::ServiceOtherRegion,
            ),
            (
                inside,
                Service::Dynamodb,
                "eu-west-1",
                AddressClass::Outside,
            ),
            (
                "10.0.3.4".parse().unwrap(),
                Service::S3,
                "eu-west-1",
                AddressClass::Private,
            ),
            (
                "172.16.9.9".parse().unwrap(),
                Service::S3,
                "eu-west-1",
                AddressClass::Private,
            ),
            (
                "192.0.2.1".parse().unwrap(),
                Service::S3,
                "eu-west-1",
                AddressClass::Outside,
            ),
            (
                "fd00::1".parse().unwrap(),
                Service::S3,
                "eu-west-1",
                AddressClass::Private,
            ),
        ];
        for (ip, service, region, want) in cases {
            let got = r.classify(ip, service, region, &vpc);
            assert_eq!(got.class, want, "{ip} {service:?} {region}");
        }
    }

    #[test]
    fn s3_express_addresses_are_never_outside_ranges_that_do_not_exist() {
        let r = IpRanges::embedded();
        assert!(r.publishes(Service::S3));
        assert!(!r.publishes(Service::S3express));
        let vpc: Vec<IpNet> = vec!["10.0.0.0/16".parse().unwrap()];
        for (ip, want) in [
            ("192.0.2.10", AddressClass::Unpublished),
            ("2001:db8::10", AddressClass::Unpublished),
            // Private answers still mean an interface endpoint or a private zone.
            ("10.0.1.50", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let got = r.classify(ip, Service::S3express, "eu-west-1", &vpc);
            assert_eq!(got.class, want, "{ip}");
            assert_eq!(got.prefix, None);
            assert!(got.class.fits_service() == (want == AddressClass::Unpublished));
        }
        // The same public address for S3 itself is outside its published ranges.
        let got = r.classify(
            "192.0.2.10".parse().unwrap(),
            Service::S3,
            "eu-west-1",
            &vpc,
        );
        assert_eq!(got.class, AddressClass::Outside);
        assert!(!got.class.fits_service());
    }

    #[test]
    fn malformed_documents_are_rejected_with_the_reason() {
        let cases = [
            ("not json", "expected"),
            (r#"{"createDate":"x","prefixes":[]}"#, "no S3 or DYNAMODB"),
            (
                r#"{"createDate":"x","prefixes":[{"ip_prefix":"1.2.3.0/99","region":"r","service":"S3"}]}"#,
                "'1.2.3.0/99' is not an address prefix",
            ),
            (r#"{"prefixes":[]}"#, "createDate"),
        ];
        for (text, want) in cases {
            let err = IpRanges::parse(text, "f.json").expect_err(text).to_string();
            assert!(err.contains(want), "{err} should contain {want}");
            assert!(err.contains("f.json"));
        }
    }
}
