use super::curl::parse_curl_version;
use super::no_proxy::normalise_host;
use super::*;
use HttpClientKind::{AwsSdkRust as Sdk, Botocore as Boto, Curl};

fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
    ProxyEnv::from_pairs(pairs.iter().copied())
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("test URL")
}

const S3: &str = "https://s3.eu-west-1.amazonaws.com/";
const BUCKET: &str = "https://mybucket.s3.eu-west-1.amazonaws.com/key";
const IMDS: &str = "http://169.254.169.254/latest/api/token";

/// Expected result per client: `None` direct, `Some(var)` through the proxy from `var`.
struct Case {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    url: &'static str,
    sdk: Option<&'static str>,
    curl: Option<&'static str>,
    boto: Option<&'static str>,
}

const P: &str = "http://proxy.corp:3128";

const CASES: &[Case] = &[
    Case {
        name: "no vars",
        env: &[],
        url: S3,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "https_proxy vs HTTPS_PROXY",
        env: &[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
        ],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
    Case {
        name: "only HTTPS_PROXY",
        env: &[("HTTPS_PROXY", P)],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "only https_proxy",
        env: &[("https_proxy", P)],
        url: S3,
        sdk: Some("https_proxy"),
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
    Case {
        name: "HTTP_PROXY for http URL",
        env: &[("HTTP_PROXY", P)],
        url: IMDS,
        sdk: Some("HTTP_PROXY"),
        curl: None,
        boto: Some("HTTP_PROXY"),
    },
    Case {
        name: "http_proxy for http URL",
        env: &[("http_proxy", P)],
        url: IMDS,
        sdk: Some("http_proxy"),
        curl: Some("http_proxy"),
        boto: Some("http_proxy"),
    },
    Case {
        name: "HTTP_PROXY under CGI",
        env: &[("HTTP_PROXY", P), ("REQUEST_METHOD", "GET")],
        url: IMDS,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "http_proxy under CGI",
        env: &[("http_proxy", P), ("REQUEST_METHOD", "GET")],
        url: IMDS,
        sdk: None,
        curl: Some("http_proxy"),
        boto: Some("http_proxy"),
    },
    Case {
        name: "HTTPS_PROXY under CGI",
        env: &[("HTTPS_PROXY", P), ("REQUEST_METHOD", "")],
        url: S3,
        sdk: None,
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "ALL_PROXY fallback",
        env: &[("ALL_PROXY", P)],
        url: S3,
        sdk: Some("ALL_PROXY"),
        curl: Some("ALL_PROXY"),
        boto: None,
    },
    Case {
        name: "all_proxy fallback",
        env: &[("all_proxy", P)],
        url: IMDS,
        sdk: Some("all_proxy"),
        curl: Some("all_proxy"),
        boto: None,
    },
    Case {
        name: "specific beats ALL_PROXY",
        env: &[("ALL_PROXY", "http://all:1"), ("https_proxy", P)],
        url: S3,
        sdk: Some("https_proxy"),
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
    Case {
        name: "invalid HTTPS_PROXY falls back to ALL_PROXY for the SDK",
        env: &[("HTTPS_PROXY", "ftp://nope:21"), ("ALL_PROXY", P)],
        url: S3,
        sdk: Some("ALL_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "NO_PROXY *",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "*")],
        url: S3,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "no_proxy * for IMDS",
        env: &[("http_proxy", P), ("no_proxy", "*")],
        url: IMDS,
        sdk: Some("http_proxy"),
        curl: None,
        boto: None,
    },
    Case {
        name: "* inside a list",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "localhost,*")],
        url: S3,
        sdk: None,
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "exact host",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "s3.eu-west-1.amazonaws.com"),
        ],
        url: S3,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: ".suffix",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", ".amazonaws.com")],
        url: BUCKET,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "suffix",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "amazonaws.com")],
        url: BUCKET,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: ".suffix equals host",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", ".s3.eu-west-1.amazonaws.com"),
        ],
        url: S3,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "suffix is not a substring",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "zonaws.com")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "*.amazonaws.com",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "*.amazonaws.com")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "CIDR vs IP URL",
        env: &[("http_proxy", P), ("no_proxy", "10.0.0.0/8")],
        url: "http://10.1.2.3/",
        sdk: None,
        curl: None,
        boto: Some("http_proxy"),
    },
    Case {
        name: "CIDR vs name",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "10.0.0.0/8")],
        url: "https://s3.internal.example/",
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "IMDS address",
        env: &[("http_proxy", P), ("no_proxy", "169.254.169.254")],
        url: IMDS,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "IMDS with HTTP_PROXY/NO_PROXY",
        env: &[("HTTP_PROXY", P), ("NO_PROXY", "localhost,169.254.169.254")],
        url: IMDS,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "IMDS not listed",
        env: &[("http_proxy", P), ("no_proxy", "localhost")],
        url: IMDS,
        sdk: Some("http_proxy"),
        curl: Some("http_proxy"),
        boto: Some("http_proxy"),
    },
    Case {
        name: "IMDS CIDR",
        env: &[("http_proxy", P), ("no_proxy", "169.254.0.0/16")],
        url: IMDS,
        sdk: None,
        curl: None,
        boto: Some("http_proxy"),
    },
    Case {
        name: "entry with port",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "s3.eu-west-1.amazonaws.com:443"),
        ],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "entry with port, URL spells it",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "s3.eu-west-1.amazonaws.com:8443"),
        ],
        url: "https://s3.eu-west-1.amazonaws.com:8443/",
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: None,
    },
    Case {
        name: "empty HTTPS_PROXY",
        env: &[("HTTPS_PROXY", "")],
        url: S3,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "empty HTTPS_PROXY hides https_proxy for the SDK",
        env: &[("HTTPS_PROXY", ""), ("https_proxy", P)],
        url: S3,
        sdk: None,
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
    Case {
        name: "empty https_proxy cancels HTTPS_PROXY for botocore",
        env: &[("HTTPS_PROXY", P), ("https_proxy", "")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: None,
    },
    Case {
        name: "empty NO_PROXY hides no_proxy for the SDK",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", ""),
            ("no_proxy", "amazonaws.com"),
        ],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: None,
        boto: None,
    },
    Case {
        name: "spaces around entries",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", " localhost , .amazonaws.com "),
        ],
        url: S3,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "space-separated entries stop curl",
        env: &[("HTTPS_PROXY", P), ("NO_PROXY", "localhost .amazonaws.com")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "uppercase host and entry",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "S3.EU-WEST-1.AMAZONAWS.COM"),
        ],
        url: "https://S3.EU-WEST-1.AMAZONAWS.COM/",
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "NO_PROXY vs no_proxy precedence",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "amazonaws.com"),
            ("no_proxy", "localhost"),
        ],
        url: S3,
        sdk: None,
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    // botocore checks NO_PROXY for its client's endpoint URL, not the bucket's name.
    Case {
        name: "bucket name listed: botocore still proxies",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "mybucket.s3.eu-west-1.amazonaws.com"),
        ],
        url: BUCKET,
        sdk: None,
        curl: None,
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "regional name listed: botocore direct for the bucket too",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "s3.eu-west-1.amazonaws.com"),
        ],
        url: BUCKET,
        sdk: None,
        curl: None,
        boto: None,
    },
    Case {
        name: "access point name listed: botocore checks s3.<region>",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "s3-accesspoint.eu-west-1.amazonaws.com"),
        ],
        url: "https://myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com/",
        sdk: None,
        curl: None,
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "account-based DynamoDB name listed: botocore checks dynamodb.<region>",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "ddb.eu-west-1.amazonaws.com"),
        ],
        url: "https://123456789012.ddb.eu-west-1.amazonaws.com/",
        sdk: None,
        curl: None,
        boto: Some("HTTPS_PROXY"),
    },
    // urllib walks os.environ in order: among names it treats alike, the later wins.
    Case {
        name: "HTTPS_PROXY then Https_Proxy: botocore takes the later",
        env: &[("HTTPS_PROXY", "http://a:1"), ("Https_Proxy", "http://b:1")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("Https_Proxy"),
    },
    Case {
        name: "Https_Proxy then HTTPS_PROXY: botocore takes the later",
        env: &[("Https_Proxy", "http://b:1"), ("HTTPS_PROXY", "http://a:1")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("HTTPS_PROXY"),
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "https_proxy then HTTPS_proxy: lower-case suffixes, the later wins",
        env: &[("https_proxy", "http://a:1"), ("HTTPS_proxy", "http://b:1")],
        url: S3,
        sdk: Some("https_proxy"),
        curl: Some("https_proxy"),
        boto: Some("HTTPS_proxy"),
    },
    Case {
        name: "HTTPS_proxy then https_proxy",
        env: &[("HTTPS_proxy", "http://b:1"), ("https_proxy", "http://a:1")],
        url: S3,
        sdk: Some("https_proxy"),
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
    Case {
        name: "https_proxy before HTTPS_PROXY: lower case wins whatever the order",
        env: &[("https_proxy", "http://a:1"), ("HTTPS_PROXY", "http://b:1")],
        url: S3,
        sdk: Some("HTTPS_PROXY"),
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
    Case {
        name: "NO_PROXY then No_Proxy: botocore reads the later",
        env: &[
            ("HTTPS_PROXY", P),
            ("NO_PROXY", "amazonaws.com"),
            ("No_Proxy", "localhost"),
        ],
        url: S3,
        sdk: None,
        curl: None,
        boto: Some("HTTPS_PROXY"),
    },
    Case {
        name: "scheme-less proxy",
        env: &[("https_proxy", "proxy.corp:3128")],
        url: S3,
        sdk: Some("https_proxy"),
        curl: Some("https_proxy"),
        boto: Some("https_proxy"),
    },
];

#[test]
fn decision_table() {
    for case in CASES {
        let e = env(case.env);
        let u = url(case.url);
        for (client, want) in [(Sdk, case.sdk), (Curl, case.curl), (Boto, case.boto)] {
            let d = decide(client, &e, &u);
            assert_eq!(
                d.proxy.as_ref().map(|p| p.variable.as_str()),
                want,
                "case '{}', client {:?}: {}",
                case.name,
                client,
                d.explanation
            );
            assert!(!d.explanation.is_empty());
            if d.proxy.is_some() {
                assert!(d.bypass_entry.is_none());
            }
        }
    }
}

#[test]
fn bypass_entry_is_reported_as_written() {
    let e = env(&[
        ("HTTPS_PROXY", P),
        ("NO_PROXY", "localhost, .Amazonaws.com "),
    ]);
    for client in HttpClientKind::ALL {
        let d = decide(client, &e, &url(S3));
        assert_eq!(
            d.bypass_entry.as_deref(),
            Some(".Amazonaws.com"),
            "{client:?}"
        );
    }
    let e = env(&[("https_proxy", P), ("no_proxy", "*")]);
    for client in HttpClientKind::ALL {
        assert_eq!(
            decide(client, &e, &url(S3)).bypass_entry.as_deref(),
            Some("*")
        );
    }
    // No proxy configured: direct without a bypass entry.
    let e = env(&[("NO_PROXY", "amazonaws.com")]);
    for client in HttpClientKind::ALL {
        let d = decide(client, &e, &url(S3));
        assert!(d.proxy.is_none() && d.bypass_entry.is_none());
    }
}

#[test]
fn proxy_choice_fields_and_ports() {
    let u = url(S3);
    let e = env(&[("HTTPS_PROXY", "http://proxy.corp")]);
    let port = |c| decide(c, &e, &u).proxy.map(|p| (p.scheme, p.host, p.port));
    assert_eq!(port(Sdk), Some(("http".into(), "proxy.corp".into(), 80)));
    assert_eq!(port(Curl), Some(("http".into(), "proxy.corp".into(), 1080)));
    assert_eq!(port(Boto), Some(("http".into(), "proxy.corp".into(), 80)));

    let e = env(&[("HTTPS_PROXY", "https://proxy.corp")]);
    let port = |c| decide(c, &e, &u).proxy.map(|p| p.port);
    assert_eq!(
        (port(Sdk), port(Curl), port(Boto)),
        (Some(443), Some(443), Some(443))
    );

    let e = env(&[("HTTPS_PROXY", "proxy.corp:3128")]);
    for c in HttpClientKind::ALL {
        let p = decide(c, &e, &u).proxy.expect("proxied");
        assert_eq!(
            (p.scheme.as_str(), p.host.as_str(), p.port),
            ("http", "proxy.corp", 3128),
            "{c:?}"
        );
    }

    let e = env(&[("ALL_PROXY", "socks5://10.0.0.9")]);
    let sdk = decide(Sdk, &e, &u);
    assert_eq!(
        sdk.proxy.as_ref().map(|p| (p.scheme.as_str(), p.port)),
        Some(("socks5", 1080))
    );
    assert!(sdk.explanation.contains("unsupported scheme"));
    let curl = decide(Curl, &e, &u).proxy.expect("curl uses socks");
    assert_eq!((curl.scheme.as_str(), curl.port), ("socks5", 1080));

    // botocore turns a socks URL into http://socks5://...: host "socks5", port 80.
    let e = env(&[("https_proxy", "socks5://10.0.0.9:1080")]);
    let boto = decide(Boto, &e, &u).proxy.expect("botocore proxies");
    assert_eq!(
        (boto.host.as_str(), boto.port, boto.scheme.as_str()),
        ("socks5", 80, "http")
    );

    // The SDK refuses a scheme-less value with a path, then goes direct.
    let e = env(&[("https_proxy", "proxy.corp:3128/")]);
    assert!(decide(Sdk, &e, &u).proxy.is_none());
    // curl refuses an unknown scheme and fails rather than going direct.
    let e = env(&[("https_proxy", "ftp://proxy.corp:21")]);
    let curl = decide(Curl, &e, &u);
    assert!(curl.proxy.is_some() && curl.explanation.contains("fails"));
}

#[test]
fn ipv6_hosts() {
    let u = url("http://[fd00::1]/");
    let e = env(&[("http_proxy", P), ("no_proxy", "fd00::/8")]);
    assert!(decide(Sdk, &e, &u).proxy.is_none());
    assert!(decide(Curl, &e, &u).proxy.is_some());
    assert!(decide(Boto, &e, &u).proxy.is_some());
    let e = env(&[("http_proxy", P), ("no_proxy", "fd00::1,[fd00::1]")]);
    for c in HttpClientKind::ALL {
        assert!(decide(c, &e, &u).proxy.is_none(), "{c:?}");
    }
}

#[test]
fn mixed_case_names_reach_botocore_only() {
    let e = env(&[("Https_Proxy", P)]);
    assert!(decide(Sdk, &e, &url(S3)).proxy.is_none());
    assert!(decide(Curl, &e, &url(S3)).proxy.is_none());
    assert_eq!(
        decide(Boto, &e, &url(S3)).proxy.map(|p| p.variable),
        Some("Https_Proxy".into())
    );
    assert!(
        ProxyEnv::from_pairs([("PATH", "/bin"), ("HOME", "/root")])
            .vars()
            .is_empty()
    );
}

#[test]
fn env_accessors() {
    let e = env(&[
        ("HTTPS_PROXY", ""),
        ("REQUEST_METHOD", "GET"),
        ("PATH", "/bin"),
    ]);
    assert_eq!(e.get("HTTPS_PROXY"), Some(""));
    assert_eq!(e.get("PATH"), None);
    assert!(e.is_empty());
    assert_eq!(e.vars().len(), 2);
    assert!(!env(&[("no_proxy", "x")]).is_empty());
    assert!(ProxyEnv::default().is_empty());
    let _ = ProxyEnv::from_environment(std::env::vars_os(), CurlVersion::default);
}

#[test]
fn ineffective_cidr_for_a_name() {
    let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "localhost,10.0.0.0/8")]);
    let u = url("https://vpce.internal.example/");
    let found = ineffective_entries(&e, &u, &["10.1.2.3".parse().expect("ip")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].entry, "10.0.0.0/8");
    assert_eq!(found[0].variable, "NO_PROXY");
    assert_eq!(found[0].clients, vec![Sdk, Curl, Boto]);
    assert!(
        found[0].reason.contains("literal IP"),
        "{}",
        found[0].reason
    );
    assert!(found[0].reason.contains("10.1.2.3"));
    // Not resolved into the range: nothing to report.
    assert!(ineffective_entries(&e, &u, &["192.168.0.1".parse().expect("ip")]).is_empty());
}

#[test]
fn ineffective_only_for_clients_that_proxy() {
    // CIDR against an IP URL works for the SDK and curl, not for botocore.
    let e = env(&[("http_proxy", P), ("no_proxy", "169.254.0.0/16")]);
    let found = ineffective_entries(&e, &url(IMDS), &[]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].clients, vec![Boto]);
    assert!(found[0].reason.contains("CIDR"));

    let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "*.amazonaws.com")]);
    let found = ineffective_entries(&e, &url(S3), &[]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].clients, vec![Sdk, Curl, Boto]);
    assert!(
        found[0].reason.contains("not a wildcard"),
        "{}",
        found[0].reason
    );

    let e = env(&[
        ("HTTPS_PROXY", P),
        ("NO_PROXY", "s3.eu-west-1.amazonaws.com:443,localhost"),
    ]);
    let found = ineffective_entries(&e, &url(S3), &[]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].entry, "s3.eu-west-1.amazonaws.com:443");

    // Nothing proxies: nothing to report.
    let e = env(&[("NO_PROXY", "*.amazonaws.com")]);
    assert!(ineffective_entries(&e, &url(S3), &[]).is_empty());

    // An entry in a variable curl does not read.
    let e = env(&[
        ("HTTPS_PROXY", P),
        ("NO_PROXY", "amazonaws.com"),
        ("no_proxy", "localhost"),
    ]);
    let found = ineffective_entries(&e, &url(S3), &[]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].clients, vec![Curl, Boto]);
    assert!(found[0].reason.contains("no_proxy"));

    // curl stops at a blank.
    let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "localhost .amazonaws.com")]);
    let found = ineffective_entries(&e, &url(S3), &[]);
    assert_eq!(found.len(), 1);
    assert!(found[0].reason.contains("blank"), "{}", found[0].reason);
}

#[test]
fn case_conflict_pairs() {
    let e = env(&[
        ("HTTPS_PROXY", "http://a:1"),
        ("https_proxy", "http://b:1"),
        ("HTTP_PROXY", P),
        ("http_proxy", P),
        ("NO_PROXY", ""),
        ("no_proxy", "x"),
        ("ALL_PROXY", "y"),
    ]);
    assert_eq!(
        case_conflicts(&e),
        vec![
            ("HTTPS_PROXY".to_owned(), "https_proxy".to_owned()),
            ("NO_PROXY".to_owned(), "no_proxy".to_owned())
        ]
    );
    assert!(case_conflicts(&ProxyEnv::default()).is_empty());
}

#[test]
fn recommended_value_examples() {
    let e = env(&[
        ("no_proxy", "localhost,127.0.0.1"),
        ("NO_PROXY", "localhost, .internal"),
    ]);
    let rec = recommended_no_proxy(
        &e,
        &[
            "mybucket.s3.eu-west-1.amazonaws.com",
            "s3.eu-west-1.amazonaws.com",
            "169.254.169.254",
        ],
    );
    assert_eq!(
        rec,
        "localhost,127.0.0.1,.internal,s3.eu-west-1.amazonaws.com,169.254.169.254"
    );
    // Already covered by an existing entry under all three clients.
    let e = env(&[("NO_PROXY", ".amazonaws.com")]);
    assert_eq!(
        recommended_no_proxy(&e, &["s3.eu-west-1.amazonaws.com"]),
        ".amazonaws.com"
    );
    // '*.amazonaws.com' covers nothing, so the host is added.
    let e = env(&[("NO_PROXY", "*.amazonaws.com")]);
    assert_eq!(
        recommended_no_proxy(&e, &["dynamodb.eu-west-1.amazonaws.com"]),
        "*.amazonaws.com,dynamodb.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        recommended_no_proxy(&ProxyEnv::default(), &["::1"]),
        "::1,[::1]"
    );
}

#[test]
fn recommended_value_makes_every_client_direct() {
    let host_sets: &[&[&str]] = &[
        &[
            "mybucket.s3.eu-west-1.amazonaws.com",
            "s3.eu-west-1.amazonaws.com",
        ],
        &[
            "s3.eu-west-1.amazonaws.com",
            "dynamodb.eu-west-1.amazonaws.com",
            "169.254.169.254",
        ],
        &[
            "S3.US-EAST-1.AMAZONAWS.COM.",
            "bucket.s3.us-east-1.amazonaws.com",
            "fd00:ec2::254",
        ],
        &["169.254.169.254", "10.0.0.5"],
    ];
    let starts: &[&[(&str, &str)]] = &[
        &[],
        &[("NO_PROXY", "*")],
        &[
            ("no_proxy", "localhost 10.0.0.0/8"),
            ("NO_PROXY", "*.amazonaws.com"),
        ],
        &[("NO_PROXY", "s3.eu-west-1.amazonaws.com:443,169.254.0.0/16")],
    ];
    for hosts in host_sets {
        for start in starts {
            let rec = recommended_no_proxy(&env(start), hosts);
            let e = env(&[
                ("HTTP_PROXY", P),
                ("http_proxy", P),
                ("HTTPS_PROXY", P),
                ("https_proxy", P),
                ("NO_PROXY", rec.as_str()),
                ("no_proxy", rec.as_str()),
            ]);
            for host in *hosts {
                let h = normalise_host(host).expect("host");
                for scheme in ["http", "https"] {
                    let u = url(&format!("{scheme}://{}/", host_display(&h)));
                    for client in HttpClientKind::ALL {
                        let d = decide(client, &e, &u);
                        assert!(
                            d.proxy.is_none(),
                            "{rec} / {u} / {client:?}: {}",
                            d.explanation
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn redaction() {
    let cases = [
        (
            "http://user:s3cr3t@proxy.corp:3128",
            "http://***@proxy.corp:3128",
        ),
        ("http://proxy.corp:3128", "http://proxy.corp:3128"),
        ("http://proxy.corp:3128/", "http://proxy.corp:3128/"),
        ("user:s3cr3t@proxy.corp:3128", "***@proxy.corp:3128"),
        // A token as the user alone, with an empty password, and without a scheme.
        (
            "http://TOKEN@proxy.corp:3128/",
            "http://***@proxy.corp:3128/",
        ),
        (
            "http://TOKEN:@proxy.corp:3128",
            "http://***@proxy.corp:3128",
        ),
        ("TOKEN@proxy.corp:3128", "***@proxy.corp:3128"),
        ("http://:s3cr3t@proxy.corp", "http://***@proxy.corp"),
        ("http://@proxy.corp", "http://***@proxy.corp"),
        ("http://us:p@ss/w0rd@proxy.corp", "http://***@proxy.corp"),
        (
            "socks5h://u:p%40ss@10.0.0.1:1080/",
            "socks5h://***@10.0.0.1:1080/",
        ),
        // "://" later in the value is not a scheme separator.
        (
            "TOKEN@proxy.corp:3128/?next=http://x",
            "***@proxy.corp:3128/?next=http://x",
        ),
        ("u:a://b@proxy.corp", "***@proxy.corp"),
        ("http://u:a://b@proxy.corp", "http://***@proxy.corp"),
        ("://TOKEN@proxy.corp", "***@proxy.corp"),
        ("", ""),
        ("::@", "***@"),
        ("localhost,169.254.169.254", "localhost,169.254.169.254"),
    ];
    for (raw, want) in cases {
        assert_eq!(redact_proxy_url(raw), want, "{raw}");
    }
}

#[test]
fn password_never_leaks() {
    let secret = "Sup3rS3cret";
    let values = [
        format!("http://alice:{secret}@proxy.corp:3128"),
        format!("alice:{secret}@proxy.corp:3128"),
        format!("https://alice:{secret}@proxy.corp"),
        format!("socks5://alice:{secret}@proxy.corp"),
        format!("http://alice:{secret}/x@proxy.corp"),
        format!("ftp://alice:{secret}@proxy.corp"),
        // The secret as the user name: a token with no password, or an empty one.
        format!("http://{secret}@proxy.corp:3128/"),
        format!("http://{secret}:@proxy.corp:3128"),
        format!("{secret}@proxy.corp:3128"),
        format!("https://{secret}@proxy.corp"),
        format!("socks5h://{secret}@proxy.corp"),
        format!("http://{secret}@[::1]:3128"),
        format!("http://{secret}/x@proxy.corp"),
    ];
    for value in &values {
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "http_proxy",
            "HTTP_PROXY",
        ] {
            let e = env(&[(var, value.as_str())]);
            for u in [url(S3), url(IMDS)] {
                for client in HttpClientKind::ALL {
                    let d = decide(client, &e, &u);
                    let text = format!("{d:?}");
                    assert!(!text.contains(secret), "{value} via {var}: {text}");
                }
            }
        }
    }
    let u = url(&format!("https://bob:{secret}@s3.eu-west-1.amazonaws.com/"));
    let d = decide(Boto, &env(&[("HTTPS_PROXY", P)]), &u);
    assert!(!format!("{d:?}").contains(secret));
}

#[test]
fn never_panics_on_odd_values() {
    let odd = [
        "",
        " ",
        "*",
        "/",
        "//",
        ":",
        "@",
        "[",
        "]",
        "[::1",
        "http://",
        "http://@",
        "http://:",
        "http://[::1]:99999",
        "h\u{e9}llo:1",
        "\u{1F600}://x",
        ".",
        "..",
        ",,,",
        "*.",
        "10.0.0.0/99",
        "10.0.0.0/-1",
        "::/0",
        "a b",
        "\t",
        "socks5h://",
        "HTTP://P:1",
        "http:proxy",
        "x:y:z",
        "%zz@host",
        "[@]",
    ];
    let urls = [
        url(S3),
        url(IMDS),
        url("http://[::1]:8080/"),
        url("https://a./"),
        url("file:///etc/passwd"),
        url("data:text/plain,x"),
    ];
    for a in odd {
        for b in odd {
            let e = env(&[
                ("HTTPS_PROXY", a),
                ("http_proxy", a),
                ("NO_PROXY", b),
                ("no_proxy", b),
                ("ALL_PROXY", b),
            ]);
            for u in &urls {
                for client in HttpClientKind::ALL {
                    let _ = decide(client, &e, u);
                }
                let _ = ineffective_entries(&e, u, &["10.0.0.1".parse().expect("ip")]);
            }
            let _ = recommended_no_proxy(&e, &[a, b]);
            let _ = case_conflicts(&e);
            let _ = redact_proxy_url(a);
        }
    }
}

#[test]
fn curl_blank_separated_lists() {
    let e = env(&[("http_proxy", P), ("no_proxy", "localhost 169.254.169.254")]);
    let d = decide(Curl, &e, &url(IMDS));
    assert!(d.proxy.is_some());
    assert!(
        d.explanation
            .contains("7.86–8.8 would match '169.254.169.254'"),
        "{}",
        d.explanation
    );
    let e = env(&[
        ("http_proxy", P),
        ("no_proxy", "localhost , 169.254.169.254"),
    ]);
    assert!(decide(Curl, &e, &url(IMDS)).proxy.is_none());
}

#[test]
fn unusable_values_name_each_client_they_break() {
    // (value, SDK fails, curl fails, botocore fails); the SDK ignores values it cannot
    // parse and connects directly, which is not a failure.
    let cases = [
        ("socks5://127.0.0.1:1080", true, false, true),
        ("socks5h://127.0.0.1:1080", true, false, true),
        ("HTTP://127.0.0.1:3128", false, false, true),
        ("ftp://127.0.0.1:21", false, true, true),
        ("http://127.0.0.1:3128 ", false, true, true),
        ("http://127.0.0.1:3128", false, false, false),
        ("127.0.0.1:3128", false, false, false),
    ];
    for (value, sdk, curl, boto) in cases {
        let e = env(&[("HTTPS_PROXY", value)]);
        let got = |c| decide(c, &e, &url(S3)).fails;
        assert_eq!(
            (got(Sdk), got(Curl), got(Boto)),
            (sdk, curl, boto),
            "{value:?}"
        );
    }
    let d = decide(
        Boto,
        &env(&[("HTTPS_PROXY", "HTTP://127.0.0.1:3128")]),
        &url(S3),
    );
    assert!(
        d.explanation.contains("host named 'http'"),
        "{}",
        d.explanation
    );
}

#[test]
fn curl_rules_follow_the_installed_version() {
    let e = env(&[("http_proxy", P), ("no_proxy", "localhost 169.254.169.254")]);
    let old = e.clone().with_curl(CurlVersion::installed(7, 88, 1));
    let d = decide(Curl, &old, &url(IMDS));
    assert!(d.proxy.is_none(), "{}", d.explanation);
    assert_eq!(d.client_version.as_deref(), Some("curl 7.88.1"));
    assert!(
        d.explanation.starts_with("curl 7.88.1 "),
        "{}",
        d.explanation
    );
    assert!(d.explanation.contains("curl ≥ 8.9 stops at the blank"));
    let new = e.clone().with_curl(CurlVersion::installed(8, 9, 0));
    assert!(decide(Curl, &new, &url(IMDS)).proxy.is_some());
    // Unknown curl: the current rules, and the decision says they were assumed.
    let d = decide(Curl, &e, &url(IMDS));
    assert!(d.proxy.is_some());
    assert!(
        d.client_version
            .as_deref()
            .is_some_and(|v| v.contains("assumed"))
    );
    // The blank-separated entry is not "ineffective" for a curl that reads it.
    let e = env(&[("HTTPS_PROXY", P), ("NO_PROXY", "localhost .amazonaws.com")])
        .with_curl(CurlVersion::installed(7, 88, 1));
    let found = ineffective_entries(&e, &url(S3), &[]);
    assert!(
        found.iter().all(|f| !f.reason.contains("blank")),
        "{found:?}"
    );
    assert_eq!(
        decide(Sdk, &e, &url(BUCKET)).client_version,
        None,
        "only curl's rules depend on a version"
    );
}

#[test]
fn curl_version_line() {
    assert_eq!(
        parse_curl_version(
            "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13"
        ),
        Some((7, 88, 1))
    );
    assert_eq!(
        parse_curl_version("curl 8.10.0-DEV (x) libcurl/8.9.1-DEV"),
        Some((8, 9, 1))
    );
    assert_eq!(parse_curl_version("curl 8.5"), Some((8, 5, 0)));
    assert_eq!(parse_curl_version("wget 1.21"), None);
    assert_eq!(parse_curl_version(""), None);
    assert_eq!(parse_curl_version("curl x.y"), None);
    assert_eq!(
        CurlVersion::from_version_line("curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1"),
        CurlVersion::installed(7, 88, 1)
    );
    assert_eq!(
        CurlVersion::from_version_line("wget 1.21"),
        CurlVersion::default()
    );
}

#[test]
fn botocore_endpoints() {
    let ep = |u: &str, known: &[&str]| {
        let known: Vec<Url> = known.iter().map(|k| url(k)).collect();
        botocore_endpoint_url(&url(u), &known).to_string()
    };
    assert_eq!(ep(BUCKET, &[]), "https://s3.eu-west-1.amazonaws.com/");
    assert_eq!(
        ep("https://b.s3-fips.dualstack.us-east-1.amazonaws.com/k", &[]),
        "https://s3-fips.dualstack.us-east-1.amazonaws.com/"
    );
    assert_eq!(
        ep(
            "https://b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com/",
            &[]
        ),
        "https://s3.us-east-1.amazonaws.com/"
    );
    assert_eq!(
        ep("https://123456789012.ddb.eu-west-1.amazonaws.com/", &[]),
        "https://dynamodb.eu-west-1.amazonaws.com/"
    );
    // Not an account id: left alone.
    assert_eq!(
        ep("https://shop.ddb.example.com/", &[]),
        "https://shop.ddb.example.com/"
    );
    // An interface endpoint name under a custom endpoint URL: found among the known URLs.
    let vpce = "https://bucket.vpce-1a2b.s3.eu-west-1.vpce.amazonaws.com/";
    assert_eq!(ep(vpce, &[]), vpce);
    assert_eq!(
        ep(
            vpce,
            &["https://vpce-1a2b.s3.eu-west-1.vpce.amazonaws.com/", S3]
        ),
        "https://vpce-1a2b.s3.eu-west-1.vpce.amazonaws.com/"
    );
    assert_eq!(ep(S3, &[]), S3);
    assert_eq!(ep(IMDS, &[]), IMDS);
    // Path style under a custom endpoint URL with a port (botocore's default there): the
    // endpoint is the URL's root, port kept.
    assert_eq!(
        ep("https://s3.example.com:8443/mybucket", &[]),
        "https://s3.example.com:8443/"
    );
    let d = decide(Boto, &env(&[("HTTPS_PROXY", P)]), &url(BUCKET));
    assert_eq!(
        d.checked_url.as_deref(),
        Some("https://s3.eu-west-1.amazonaws.com/")
    );
    assert!(decide(Boto, &env(&[]), &url(S3)).checked_url.is_none());
    // The recommended value covers botocore's endpoint as well as the request name.
    let rec = recommended_no_proxy(
        &ProxyEnv::default(),
        &["myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com"],
    );
    assert_eq!(
        rec,
        "myap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com,s3.eu-west-1.amazonaws.com"
    );
}

#[test]
fn process_environment_keeps_its_order() {
    let e = ProxyEnv::from_pairs([
        ("https_proxy", "a"),
        ("PATH", "/bin"),
        ("HTTPS_PROXY", "b"),
        ("https_proxy", "c"),
    ]);
    let names: Vec<&str> = e.vars().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["https_proxy", "HTTPS_PROXY"]);
    assert_eq!(e.get("https_proxy"), Some("c"));
}

#[test]
fn serde_names() {
    assert_eq!(HttpClientKind::AwsSdkRust.label(), "AWS SDK for Rust");
    assert_eq!(HttpClientKind::Curl.label(), "curl");
    assert_eq!(
        HttpClientKind::Botocore.label(),
        "botocore (AWS CLI, boto3)"
    );
    assert_eq!(HttpClientKind::ALL.len(), 3);
}
