//! glibc's search list, as the applications' `dns` source walks it (res_query.c,
//! `__res_context_search`): a name with fewer dots than `options ndots:` is tried with each
//! `search` domain appended before it is tried as it is, and a name that gives no address as it
//! is is tried with them after. An answer for `s3.eu-west-1.amazonaws.com.corp.example` (a
//! wildcard record in a search domain) is then what the applications connect to, while every
//! resolver asked for the service name itself answers well.
//!
//! Written by hand: no crate models glibc's walk, and the walk is a few lines.

use crate::report::{DnsLookup, DnsOutcome};

/// What glibc's resolver reads from resolv.conf besides the servers (res_init.c).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibcOptions {
    /// Its wait for a server's answer before it asks the next (`options timeout:`).
    pub timeout_secs: u32,
    /// Names with fewer dots are tried with the search domains first (`options ndots:`).
    pub ndots: u32,
    /// The `search` (or `domain`) line's domains, in order.
    pub search: Vec<String>,
}

/// The dots libc counts in a name against `ndots` (a trailing dot not included).
pub fn dots(name: &str) -> u32 {
    name.trim_end_matches('.').matches('.').count() as u32
}

fn has_addresses(lookups: &[&DnsLookup]) -> bool {
    lookups.iter().any(|l| !l.addresses.is_empty())
}

/// The full name libc asks for `name` in search domain `domain`.
pub fn in_domain(name: &str, domain: &str) -> String {
    format!("{}.{domain}", name.trim_end_matches('.'))
}

/// Whether libc asks the search domains before the name itself (fewer dots than ndots).
pub fn search_first(name: &str, libc: &LibcOptions) -> bool {
    !libc.search.is_empty() && dots(name) < libc.ndots
}

/// Whether libc goes on to the search domains after the name itself gave no address.
pub fn search_after(name: &str, libc: &LibcOptions, as_is: &[&DnsLookup]) -> bool {
    !libc.search.is_empty() && dots(name) >= libc.ndots && !has_addresses(as_is)
}

/// What libc's walk ends with: the lookups whose addresses the applications get, and the name
/// they were asked for when a search domain answered.
pub struct LibcAnswer<'a> {
    pub lookups: Vec<&'a DnsLookup>,
    pub resolved_as: Option<String>,
}

/// glibc goes on to the next search domain after NXDOMAIN, NODATA or SERVFAIL; any other
/// failure (a timeout, REFUSED) ends the search, and the name is then tried as it is.
fn keep_searching(lookups: &[&DnsLookup]) -> bool {
    lookups.iter().all(|l| {
        matches!(
            l.outcome,
            DnsOutcome::NxDomain | DnsOutcome::NoData | DnsOutcome::ServFail
        )
    })
}

/// Walks the search list as libc does, over the lookups made: `as_is` for the name itself and
/// `searched` for the names in the search domains (those not asked count as not found).
pub fn walk<'a>(
    name: &str,
    libc: Option<&LibcOptions>,
    as_is: Vec<&'a DnsLookup>,
    searched: &'a [DnsLookup],
) -> LibcAnswer<'a> {
    let plain = |lookups| LibcAnswer {
        lookups,
        resolved_as: None,
    };
    let Some(libc) = libc.filter(|l| !l.search.is_empty()) else {
        return plain(as_is);
    };
    if dots(name) >= libc.ndots && has_addresses(&as_is) {
        return plain(as_is);
    }
    for domain in &libc.search {
        let full = in_domain(name, domain);
        let lookups: Vec<&DnsLookup> = searched.iter().filter(|l| l.name == full).collect();
        if has_addresses(&lookups) {
            return LibcAnswer {
                lookups,
                resolved_as: Some(full),
            };
        }
        if !keep_searching(&lookups) {
            break;
        }
    }
    plain(as_is)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AddressClass, ResolverKind};

    fn lookup(name: &str, outcome: DnsOutcome, ip: Option<&str>) -> DnsLookup {
        let ips: Vec<_> = ip
            .into_iter()
            .map(|ip| (ip, AddressClass::Outside))
            .collect();
        crate::fixtures::dns_lookup(name, ResolverKind::System, "A", outcome, &ips)
    }

    fn libc(ndots: u32, search: &[&str]) -> LibcOptions {
        LibcOptions {
            timeout_secs: 5,
            ndots,
            search: search.iter().map(|s| s.to_string()).collect(),
        }
    }

    const NAME: &str = "s3.eu-west-1.amazonaws.com";

    #[test]
    fn when_the_search_domains_are_asked() {
        let answered = lookup(NAME, DnsOutcome::Answered, Some("198.51.100.10"));
        let nx = lookup(NAME, DnsOutcome::NxDomain, None);
        // Three dots: ndots 5 searches first, the default ndots 1 only after a failure.
        assert!(search_first(NAME, &libc(5, &["corp.example"])));
        assert!(!search_first(NAME, &libc(1, &["corp.example"])));
        assert!(!search_first(NAME, &libc(5, &[])));
        assert!(search_after(NAME, &libc(1, &["corp.example"]), &[&nx]));
        assert!(!search_after(
            NAME,
            &libc(1, &["corp.example"]),
            &[&answered]
        ));
        assert!(!search_after(NAME, &libc(5, &["corp.example"]), &[&nx]));
    }

    #[test]
    fn the_first_search_domain_with_an_address_wins_over_the_name_itself() {
        let as_is = lookup(NAME, DnsOutcome::Answered, Some("198.51.100.10"));
        let searched = vec![
            lookup(&in_domain(NAME, "a.example"), DnsOutcome::NxDomain, None),
            lookup(
                &in_domain(NAME, "b.example"),
                DnsOutcome::Answered,
                Some("203.0.113.80"),
            ),
        ];
        let options = libc(5, &["a.example", "b.example"]);
        let answer = walk(NAME, Some(&options), vec![&as_is], &searched);
        assert_eq!(
            answer.resolved_as.as_deref(),
            Some("s3.eu-west-1.amazonaws.com.b.example")
        );
        assert_eq!(answer.lookups[0].addresses[0].ip, "203.0.113.80");
        // With ndots 1 the name itself answers first and the search list is never reached.
        let answer = walk(
            NAME,
            Some(&libc(1, &["a.example", "b.example"])),
            vec![&as_is],
            &searched,
        );
        assert_eq!(answer.resolved_as, None);
        assert_eq!(answer.lookups[0].addresses[0].ip, "198.51.100.10");
    }

    #[test]
    fn a_timeout_in_a_search_domain_ends_the_search() {
        let as_is = lookup(NAME, DnsOutcome::Answered, Some("198.51.100.10"));
        let searched = vec![
            lookup(&in_domain(NAME, "a.example"), DnsOutcome::Timeout, None),
            lookup(
                &in_domain(NAME, "b.example"),
                DnsOutcome::Answered,
                Some("203.0.113.80"),
            ),
        ];
        let options = libc(5, &["a.example", "b.example"]);
        let answer = walk(NAME, Some(&options), vec![&as_is], &searched);
        assert_eq!(answer.resolved_as, None);
        assert_eq!(answer.lookups[0].addresses[0].ip, "198.51.100.10");
        // SERVFAIL goes on to the next domain.
        let searched = vec![
            lookup(&in_domain(NAME, "a.example"), DnsOutcome::ServFail, None),
            lookup(
                &in_domain(NAME, "b.example"),
                DnsOutcome::Answered,
                Some("203.0.113.80"),
            ),
        ];
        let answer = walk(NAME, Some(&options), vec![&as_is], &searched);
        assert_eq!(answer.lookups[0].addresses[0].ip, "203.0.113.80");
    }

    #[test]
    fn a_name_that_fails_as_it_is_may_resolve_in_a_search_domain() {
        let as_is = lookup(NAME, DnsOutcome::NxDomain, None);
        let searched = vec![lookup(
            &in_domain(NAME, "a.example"),
            DnsOutcome::Answered,
            Some("203.0.113.80"),
        )];
        let options = libc(1, &["a.example"]);
        let answer = walk(NAME, Some(&options), vec![&as_is], &searched);
        assert_eq!(
            answer.resolved_as.as_deref(),
            Some("s3.eu-west-1.amazonaws.com.a.example")
        );
    }
}
