//! How AWS evaluates a VPC's configuration, as pure functions over the data EC2 Describe*
//! returns: route selection, security-group egress, network ACLs (rule order, stateless,
//! default deny) and VPC endpoint policies. No I/O; the control-plane check feeds them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::report::{NaclEntry, PortRange, PrefixListFacts, RouteFacts, RouteTableFacts, SgRule};

/// The route AWS uses for `ip`: the longest matching prefix among CIDR routes and
/// prefix-list routes (a prefix-list route matches with the length of the entry that
/// contains the address). On a tie a CIDR route wins, which is the conservative reading.
pub fn effective_route<'a>(
    table: &'a RouteTableFacts,
    ip: IpAddr,
    prefix_lists: &[PrefixListFacts],
) -> Option<&'a RouteFacts> {
    let mut best: Option<(u8, bool, &RouteFacts)> = None;
    for route in table.routes.iter().filter(|r| r.state != "blackhole") {
        let len = if let Some(cidr) = &route.destination_cidr {
            cidr.parse::<IpNet>()
                .ok()
                .filter(|n| n.contains(&ip))
                .map(|n| n.prefix_len())
        } else if let Some(pl) = &route.destination_prefix_list {
            prefix_lists
                .iter()
                .filter(|p| &p.id == pl)
                .flat_map(|p| p.cidrs.iter())
                .filter_map(|c| c.parse::<IpNet>().ok())
                .filter(|n| n.contains(&ip))
                .map(|n| n.prefix_len())
                .max()
        } else {
            None
        };
        let Some(len) = len else { continue };
        let is_cidr = route.destination_cidr.is_some();
        let better = match best {
            None => true,
            Some((l, c, _)) => len > l || (len == l && is_cidr && !c),
        };
        if better {
            best = Some((len, is_cidr, route));
        }
    }
    best.map(|(_, _, r)| r)
}

/// The prefix-list route to the endpoint, if the table has it.
pub fn endpoint_route<'a>(
    table: &'a RouteTableFacts,
    prefix_list_id: &str,
    endpoint_id: &str,
) -> Option<&'a RouteFacts> {
    table.routes.iter().find(|r| {
        r.destination_prefix_list.as_deref() == Some(prefix_list_id) && r.target == endpoint_id
    })
}

/// Whether `rule` lets TCP `port` out to `ip` (or, without an address, to the prefix list `pl`).
/// A rule that references the prefix list allows only the list's CIDRs: an IPv6 address is not
/// covered by a list that holds IPv4 CIDRs only (AWS expands the reference to its entries). When
/// the entries were not read, the reference is taken to cover the address.
pub fn sg_rule_allows(
    rule: &SgRule,
    ip: Option<IpAddr>,
    pl: Option<&PrefixListFacts>,
    port: u16,
) -> bool {
    let proto_ok = matches!(rule.protocol.as_str(), "-1" | "tcp" | "6" | "all");
    let port = i32::from(port);
    let port_ok = rule.protocol == "-1"
        || (rule.from_port.unwrap_or(0) <= port && port <= rule.to_port.unwrap_or(65535));
    let port_ok = port_ok || (rule.from_port == Some(-1) && rule.to_port == Some(-1));
    let via_list = pl.is_some_and(|pl| {
        rule.prefix_list_ids.contains(&pl.id)
            && match ip {
                Some(ip) if !pl.cidrs.is_empty() => cidr_containing(&pl.cidrs, ip).is_some(),
                _ => true,
            }
    });
    let via_cidr = ip.is_some_and(|ip| cidr_containing(&rule.cidrs, ip).is_some());
    proto_ok && port_ok && (via_list || via_cidr)
}

/// The first of `cidrs` that contains `ip` (malformed entries are skipped).
pub fn cidr_containing(cidrs: &[String], ip: IpAddr) -> Option<&str> {
    cidrs
        .iter()
        .find(|c| c.parse::<IpNet>().is_ok_and(|n| n.contains(&ip)))
        .map(String::as_str)
}

/// The NACL rule that decides a packet: the lowest-numbered matching entry; none is a deny.
pub fn nacl_decide(
    entries: &[NaclEntry],
    egress: bool,
    ip: IpAddr,
    port: u16,
) -> (Option<i32>, bool) {
    let mut sorted: Vec<&NaclEntry> = entries.iter().filter(|e| e.egress == egress).collect();
    sorted.sort_by_key(|e| e.rule_number);
    for e in sorted {
        let proto_ok = matches!(e.protocol.as_str(), "-1" | "6" | "tcp");
        let port_ok = e.protocol == "-1"
            || (e.from_port.unwrap_or(0) <= i32::from(port)
                && i32::from(port) <= e.to_port.unwrap_or(65535));
        let cidr_ok = e
            .cidr
            .as_deref()
            .and_then(|c| c.parse::<IpNet>().ok())
            .is_some_and(|n| n.contains(&ip));
        if proto_ok && port_ok && cidr_ok {
            return (Some(e.rule_number), e.allow);
        }
    }
    (None, false)
}

/// Inbound return traffic from `ip` (source port 443) to each port of `range`: the spans
/// denied, with the rule that denies each. Evaluates one port per segment between rule
/// boundaries, which decides the whole segment.
pub fn nacl_denied_ports(
    entries: &[NaclEntry],
    ip: IpAddr,
    range: PortRange,
) -> Vec<(PortRange, Option<i32>)> {
    let mut cuts: Vec<u32> = vec![u32::from(range.first), u32::from(range.last) + 1];
    for e in entries.iter().filter(|e| !e.egress) {
        for p in [e.from_port, e.to_port.map(|t| t + 1)]
            .into_iter()
            .flatten()
        {
            if p > i32::from(range.first) && p <= i32::from(range.last) {
                cuts.push(p as u32);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<(PortRange, Option<i32>)> = Vec::new();
    for w in cuts.windows(2) {
        let (first, last) = (w[0] as u16, (w[1] - 1) as u16);
        let (rule, allow) = nacl_decide(entries, false, ip, first);
        if allow {
            continue;
        }
        match out.last_mut() {
            Some((span, r)) if *r == rule && u32::from(span.last) + 1 == u32::from(first) => {
                span.last = last
            }
            _ => out.push((PortRange { first, last }, rule)),
        }
    }
    out
}

/// What an endpoint policy says about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyDecision {
    Allowed {
        statement: String,
    },
    ExplicitDeny {
        statement: String,
    },
    /// No statement allows it.
    ImplicitDeny,
    /// The outcome depends on conditions (or elements) the probe does not evaluate.
    Undetermined {
        statement: String,
        reason: String,
    },
}

/// Evaluate a VPC endpoint policy for `action` on `resource` by `principal` (an ARN, if known).
/// Conditions are never guessed: a statement that would decide but has a Condition makes the
/// result `Undetermined`.
pub fn evaluate_policy(
    document: &str,
    action: &str,
    resource: &str,
    principal: Option<&str>,
) -> PolicyDecision {
    let Ok(doc) = serde_json::from_str::<Value>(document) else {
        return PolicyDecision::Undetermined {
            statement: "(policy)".into(),
            reason: "the policy document is not JSON".into(),
        };
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    let mut allowed: Option<String> = None;
    let mut undetermined: Option<(String, String)> = None;
    for (i, st) in statements.iter().enumerate() {
        let sid = st
            .get("Sid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("statement {}", i + 1));
        let matches = match statement_matches(st, action, resource, principal) {
            Ok(m) => m,
            Err(reason) => {
                undetermined.get_or_insert((sid.clone(), reason));
                continue;
            }
        };
        if !matches {
            continue;
        }
        let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
        if st.get("Condition").is_some() {
            undetermined.get_or_insert((
                sid.clone(),
                format!(
                    "its {} depends on a Condition the probe does not evaluate",
                    if deny { "Deny" } else { "Allow" }
                ),
            ));
            continue;
        }
        if deny {
            return PolicyDecision::ExplicitDeny { statement: sid };
        }
        allowed.get_or_insert(sid);
    }
    match (allowed, undetermined) {
        // An unconditional Allow still loses to a conditional Deny we cannot evaluate.
        (_, Some((statement, reason)))
            if statements_have_conditional_deny(&statements, action, resource, principal) =>
        {
            PolicyDecision::Undetermined { statement, reason }
        }
        (Some(statement), _) => PolicyDecision::Allowed { statement },
        (None, Some((statement, reason))) => PolicyDecision::Undetermined { statement, reason },
        (None, None) => PolicyDecision::ImplicitDeny,
    }
}

fn statements_have_conditional_deny(
    statements: &[&Value],
    action: &str,
    resource: &str,
    principal: Option<&str>,
) -> bool {
    statements.iter().any(|st| {
        st.get("Effect").and_then(Value::as_str) == Some("Deny")
            && st.get("Condition").is_some()
            && statement_matches(st, action, resource, principal).unwrap_or(true)
    })
}

/// Err when the statement uses an element the probe cannot evaluate.
fn statement_matches(
    st: &Value,
    action: &str,
    resource: &str,
    principal: Option<&str>,
) -> Result<bool, String> {
    if st.get("NotPrincipal").is_some() {
        return Err("it uses NotPrincipal".into());
    }
    let action_ok = match (st.get("Action"), st.get("NotAction")) {
        (Some(a), _) => any_glob(a, action, false),
        (None, Some(na)) => !any_glob(na, action, false),
        (None, None) => false,
    };
    let resource_ok = match (st.get("Resource"), st.get("NotResource")) {
        (Some(r), _) => any_glob(r, resource, true),
        (None, Some(nr)) => !any_glob(nr, resource, true),
        (None, None) => false,
    };
    let principal_ok = match st.get("Principal") {
        None => true,
        Some(Value::String(s)) if s == "*" => true,
        Some(Value::Object(m)) => match m.get("AWS") {
            Some(v) => {
                if any_glob(v, "*", true) {
                    true
                } else if let Some(p) = principal {
                    any_glob(v, p, true) || principal_account_matches(v, p)
                } else {
                    return Err("it names principals and the caller's identity is unknown".into());
                }
            }
            None => return Err("it names non-AWS principals".into()),
        },
        Some(_) => return Err("its Principal has an unexpected form".into()),
    };
    Ok(action_ok && resource_ok && principal_ok)
}

/// `"123456789012"` or `arn:aws:iam::123456789012:root` as a principal means the whole account.
fn principal_account_matches(v: &Value, principal: &str) -> bool {
    let account = principal.split(':').nth(4).unwrap_or("");
    values(v)
        .iter()
        .any(|p| *p == account || *p == format!("arn:aws:iam::{account}:root"))
}

fn values(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn any_glob(patterns: &Value, text: &str, case_sensitive: bool) -> bool {
    values(patterns)
        .iter()
        .any(|p| glob(p, text, case_sensitive))
}

/// IAM wildcards: `*` any run of characters, `?` one character. Actions compare without case.
pub fn glob(pattern: &str, text: &str, case_sensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_sensitive {
        (pattern.chars().collect(), text.chars().collect())
    } else {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    };
    // Iterative matcher with backtracking to the last '*'.
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(cidr: Option<&str>, pl: Option<&str>, target: &str) -> RouteFacts {
        RouteFacts {
            destination_cidr: cidr.map(str::to_string),
            destination_prefix_list: pl.map(str::to_string),
            target: target.into(),
            state: "active".into(),
        }
    }

    fn pls() -> Vec<PrefixListFacts> {
        vec![PrefixListFacts {
            id: "pl-s3".into(),
            name: "com.amazonaws.eu-west-1.s3".into(),
            service: crate::report::Service::S3,
            cidrs: vec!["52.218.0.0/17".into(), "3.5.64.0/21".into()],
        }]
    }

    #[test]
    fn route_selection() {
        let table = RouteTableFacts {
            id: "rtb-1".into(),
            main: false,
            routes: vec![
                route(Some("10.0.0.0/16"), None, "local"),
                route(Some("0.0.0.0/0"), None, "nat-1"),
                route(None, Some("pl-s3"), "vpce-1"),
                route(Some("52.218.10.0/24"), None, "pcx-1"),
            ],
        };
        let cases = [
            ("52.218.1.1", "vpce-1"),
            ("52.218.10.5", "pcx-1"),
            ("3.5.64.9", "vpce-1"),
            ("8.8.8.8", "nat-1"),
            ("10.0.3.3", "local"),
        ];
        for (ip, want) in cases {
            let got =
                effective_route(&table, ip.parse().unwrap(), &pls()).map(|r| r.target.as_str());
            assert_eq!(got, Some(want), "{ip}");
        }
        assert!(endpoint_route(&table, "pl-s3", "vpce-1").is_some());
        assert!(endpoint_route(&table, "pl-s3", "vpce-2").is_none());
    }

    #[test]
    fn security_group_egress() {
        let ip: IpAddr = "52.218.1.1".parse().unwrap();
        let rule =
            |proto: &str, from: Option<i32>, to: Option<i32>, cidrs: &[&str], pls: &[&str]| {
                SgRule {
                    protocol: proto.into(),
                    from_port: from,
                    to_port: to,
                    cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
                    prefix_list_ids: pls.iter().map(|s| s.to_string()).collect(),
                }
            };
        assert!(sg_rule_allows(
            &rule("-1", None, None, &["0.0.0.0/0"], &[]),
            Some(ip),
            None,
            443
        ));
        let pl_s3 = PrefixListFacts {
            id: "pl-s3".into(),
            cidrs: vec!["52.218.0.0/17".into()],
            ..PrefixListFacts::default()
        };
        assert!(sg_rule_allows(
            &rule("tcp", Some(443), Some(443), &[], &["pl-s3"]),
            Some(ip),
            Some(&pl_s3),
            443
        ));
        assert!(!sg_rule_allows(
            &rule("tcp", Some(443), Some(443), &[], &["pl-other"]),
            Some(ip),
            Some(&pl_s3),
            443
        ));
        // The list's reference covers its entries only: not an IPv6 address when the list
        // holds IPv4 CIDRs, nor an IPv4 address outside them.
        let v6: IpAddr = "2600:1fa0:80cb::1".parse().unwrap();
        let pl_rule = rule("tcp", Some(443), Some(443), &[], &["pl-s3"]);
        assert!(!sg_rule_allows(&pl_rule, Some(v6), Some(&pl_s3), 443));
        assert!(!sg_rule_allows(
            &pl_rule,
            Some("3.5.64.1".parse().unwrap()),
            Some(&pl_s3),
            443
        ));
        let dual = PrefixListFacts {
            cidrs: vec!["52.218.0.0/17".into(), "2600:1fa0:80cb::/48".into()],
            ..pl_s3.clone()
        };
        assert!(sg_rule_allows(&pl_rule, Some(v6), Some(&dual), 443));
        // Entries not read: the reference is taken to cover the address.
        let unread = PrefixListFacts {
            cidrs: vec![],
            ..pl_s3.clone()
        };
        assert!(sg_rule_allows(&pl_rule, Some(v6), Some(&unread), 443));
        assert!(sg_rule_allows(&pl_rule, None, Some(&pl_s3), 443));
        // IPv6 CIDR rules for IPv6 addresses, and never across families.
        assert!(sg_rule_allows(
            &rule("tcp", Some(443), Some(443), &["::/0"], &[]),
            Some(v6),
            None,
            443
        ));
        assert!(!sg_rule_allows(
            &rule("tcp", Some(443), Some(443), &["0.0.0.0/0"], &[]),
            Some(v6),
            None,
            443
        ));
        assert!(!sg_rule_allows(
            &rule("tcp", Some(80), Some(80), &["0.0.0.0/0"], &[]),
            Some(ip),
            None,
            443
        ));
        assert!(!sg_rule_allows(
            &rule("udp", Some(0), Some(65535), &["0.0.0.0/0"], &[]),
            Some(ip),
            None,
            443
        ));
        assert!(!sg_rule_allows(
            &rule("tcp", Some(443), Some(443), &["10.0.0.0/8"], &[]),
            Some(ip),
            None,
            443
        ));
    }

    fn entry(
        n: i32,
        egress: bool,
        proto: &str,
        allow: bool,
        cidr: &str,
        ports: Option<(i32, i32)>,
    ) -> NaclEntry {
        NaclEntry {
            rule_number: n,
            egress,
            protocol: proto.into(),
            allow,
            cidr: Some(cidr.into()),
            from_port: ports.map(|p| p.0),
            to_port: ports.map(|p| p.1),
        }
    }

    #[test]
    fn network_acl_rules_in_order_with_default_deny() {
        let ip: IpAddr = "52.218.1.1".parse().unwrap();
        let entries = vec![
            entry(100, true, "6", true, "0.0.0.0/0", Some((443, 443))),
            entry(32767, true, "-1", false, "0.0.0.0/0", None),
            entry(90, false, "6", false, "52.218.0.0/16", Some((50000, 50100))),
            entry(100, false, "6", true, "0.0.0.0/0", Some((1024, 32767))),
            entry(32767, false, "-1", false, "0.0.0.0/0", None),
        ];
        assert_eq!(nacl_decide(&entries, true, ip, 443), (Some(100), true));
        assert_eq!(nacl_decide(&entries, true, ip, 80), (Some(32767), false));
        assert_eq!(nacl_decide(&entries, false, ip, 2000), (Some(100), true));
        assert_eq!(nacl_decide(&entries, false, ip, 50050), (Some(90), false));
        assert_eq!(nacl_decide(&[], false, ip, 50050), (None, false));
        let denied = nacl_denied_ports(
            &entries,
            ip,
            PortRange {
                first: 32768,
                last: 60999,
            },
        );
        let spans: Vec<(u16, u16, Option<i32>)> =
            denied.iter().map(|(p, r)| (p.first, p.last, *r)).collect();
        assert_eq!(
            spans,
            vec![
                (32768, 49999, Some(32767)),
                (50000, 50100, Some(90)),
                (50101, 60999, Some(32767))
            ]
        );
        let open = vec![entry(100, false, "-1", true, "0.0.0.0/0", None)];
        assert!(
            nacl_denied_ports(
                &open,
                ip,
                PortRange {
                    first: 1024,
                    last: 65535
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn endpoint_policies() {
        let full = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;
        let narrow = r#"{"Statement":[{"Sid":"OnlyOne","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:List*"],"Resource":["arn:aws:s3:::logs","arn:aws:s3:::logs/*"]}]}"#;
        let deny = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},{"Sid":"NoPut","Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:Put*","Resource":"*"}]}"#;
        let conditional = r#"{"Statement":[{"Sid":"OrgOnly","Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}]}"#;
        type Case<'a> = (&'a str, &'a str, &'a str, fn(&PolicyDecision) -> bool);
        let cases: Vec<Case> = vec![
            (full, "s3:GetObject", "arn:aws:s3:::b/k", |d| {
                matches!(d, PolicyDecision::Allowed { .. })
            }),
            (narrow, "s3:GetObject", "arn:aws:s3:::logs/a", |d| {
                matches!(d, PolicyDecision::Allowed { .. })
            }),
            (narrow, "s3:ListBucket", "arn:aws:s3:::logs", |d| {
                matches!(d, PolicyDecision::Allowed { .. })
            }),
            (narrow, "s3:GetObject", "arn:aws:s3:::other/a", |d| {
                *d == PolicyDecision::ImplicitDeny
            }),
            (narrow, "s3:PutObject", "arn:aws:s3:::logs/a", |d| {
                *d == PolicyDecision::ImplicitDeny
            }),
            (deny, "s3:PutObject", "arn:aws:s3:::b/k", |d| {
                *d == PolicyDecision::ExplicitDeny {
                    statement: "NoPut".into(),
                }
            }),
            (deny, "s3:GetObject", "arn:aws:s3:::b/k", |d| {
                matches!(d, PolicyDecision::Allowed { .. })
            }),
            (conditional, "s3:GetObject", "arn:aws:s3:::b/k", |d| {
                matches!(d, PolicyDecision::Undetermined { .. })
            }),
            ("not json", "s3:GetObject", "arn:aws:s3:::b/k", |d| {
                matches!(d, PolicyDecision::Undetermined { .. })
            }),
        ];
        for (doc, action, resource, ok) in cases {
            let d = evaluate_policy(doc, action, resource, None);
            assert!(ok(&d), "{action} {resource}: {d:?} for {doc}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("s3:Get*", "s3:GetObject", false));
        assert!(glob("S3:get*", "s3:GetObject", false));
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y", true));
        assert!(!glob("arn:aws:s3:::B/*", "arn:aws:s3:::b/x", true));
        assert!(glob("s3:?etObject", "s3:GetObject", false));
        assert!(glob("*", "", true));
        assert!(!glob("s3:Get", "s3:GetObject", false));
    }
}
