//! Resolution as the applications do it: the order of `hosts:` in nsswitch.conf, the hosts
//! file, the host's DNS servers (resolv.conf) and a local stub (systemd-resolved), so the
//! addresses TCP, TLS and the signed calls test are the ones the SDKs, the CLI and curl use.
//!
//! Written by hand rather than calling getaddrinfo: getaddrinfo says neither which source
//! answered nor which hosts-file line did, cannot be pointed at other files for a test, and
//! blocks with no timeout. The parts it runs (hosts file, nsswitch actions) are small.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::checks::dns::Classifier;
use crate::report::{AppResolution, AppSource, DnsLookup, DnsOutcome, HostsFileEntry, Service};

/// glibc's `hosts` database when nsswitch.conf has no `hosts:` line (nss/nss_database.c).
const GLIBC_DEFAULT_HOSTS: &str = "dns [!UNAVAIL=return] files";

/// systemd-resolved's stub listener, asked for the `resolve` source.
pub const RESOLVED_STUB: &str = "127.0.0.53:53";

/// The host's name-service files, read once per run.
#[derive(Clone, Debug)]
pub struct HostFiles {
    pub nsswitch_path: PathBuf,
    /// The `hosts:` sources in order, with their actions.
    pub sources: Vec<NssSource>,
    /// Where `sources` came from: the file, or glibc's default.
    pub sources_origin: String,
    pub hosts_path: PathBuf,
    /// Lines of the hosts file, or why it could not be read (evidence, never a crash).
    pub hosts: Result<Vec<HostsLine>, String>,
    /// Sources whose NSS module (libnss_NAME.so.2) is not installed: glibc skips them as UNAVAIL.
    pub missing_modules: std::collections::BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsLine {
    pub line: usize,
    pub ip: IpAddr,
    pub names: Vec<String>,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NssStatus {
    Success,
    NotFound,
    Unavail,
    TryAgain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NssAction {
    Return,
    Continue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NssSource {
    pub name: String,
    actions: BTreeMap<NssStatus, NssAction>,
}

impl NssSource {
    /// The action after this source ended with `status` (nsswitch.conf(5) defaults).
    pub fn action(&self, status: NssStatus) -> NssAction {
        self.actions.get(&status).copied().unwrap_or(match status {
            NssStatus::Success => NssAction::Return,
            _ => NssAction::Continue,
        })
    }
}

impl HostFiles {
    /// Reads both files off the async threads; missing files are evidence, not errors.
    pub async fn load(nsswitch_path: PathBuf, hosts_path: PathBuf) -> HostFiles {
        let paths = (nsswitch_path.clone(), hosts_path.clone());
        tokio::task::spawn_blocking(move || HostFiles::load_blocking(paths.0, paths.1))
            .await
            .unwrap_or_else(|e| HostFiles {
                nsswitch_path,
                sources: parse_nss_hosts(GLIBC_DEFAULT_HOSTS),
                sources_origin: "glibc default".into(),
                hosts_path,
                hosts: Err(format!("reading the name-service files failed: {e}")),
                missing_modules: Default::default(),
            })
    }

    fn load_blocking(nsswitch_path: PathBuf, hosts_path: PathBuf) -> HostFiles {
        let nss_line = read_name_service_file(&nsswitch_path)
            .ok()
            .and_then(|text| {
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .find_map(|l| l.strip_prefix("hosts:").map(str::to_string))
            });
        let (sources, sources_origin) = match nss_line {
            Some(line) => (parse_nss_hosts(&line), nsswitch_path.display().to_string()),
            None => (
                parse_nss_hosts(GLIBC_DEFAULT_HOSTS),
                format!(
                    "glibc default ({} has no hosts line)",
                    nsswitch_path.display()
                ),
            ),
        };
        let hosts = read_name_service_file(&hosts_path).map(|t| parse_hosts(&t));
        let missing_modules = sources
            .iter()
            .map(|s| s.name.clone())
            .filter(|name| !nss_module_installed(name))
            .collect();
        HostFiles {
            nsswitch_path,
            sources,
            sources_origin,
            hosts_path,
            hosts,
            missing_modules,
        }
    }

    /// Whether the applications ask systemd-resolved (then its stub is queried).
    pub fn uses_resolved(&self) -> bool {
        self.sources
            .iter()
            .any(|s| s.name == "resolve" && !self.missing_modules.contains("resolve"))
    }

    fn hosts_file_hits(&self, name: &str) -> Vec<&HostsLine> {
        match &self.hosts {
            Ok(lines) => lines
                .iter()
                .filter(|l| l.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Through the project's one reader of user-named files: regular files only (a FIFO never
/// hangs the run), capped in size.
fn read_name_service_file(path: &Path) -> Result<String, String> {
    // Hosts files of blocking lists run to megabytes: a larger cap than other small files.
    const MAX_NAME_SERVICE_FILE: u64 = 4 * 1024 * 1024;
    crate::fsread::read_string(path, MAX_NAME_SERVICE_FILE)
}

/// Where distributions install NSS modules (Debian's multiarch directories, Amazon Linux's lib64).
const NSS_MODULE_DIRS: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// glibc 2.34+ has `files` and `dns` built in; any other source is a shared object that may be
/// missing, and glibc then treats the source as UNAVAIL (Debian without libnss-resolve, say).
fn nss_module_installed(name: &str) -> bool {
    if matches!(name, "files" | "dns") {
        return true;
    }
    let file = format!("libnss_{name}.so.2");
    NSS_MODULE_DIRS
        .iter()
        .any(|dir| Path::new(dir).join(&file).exists())
}

/// hosts(5): `IP name [aliases...]`, `#` comments; lines that do not parse are ignored, as libc does.
pub fn parse_hosts(text: &str) -> Vec<HostsLine> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let content = raw.split('#').next().unwrap_or("");
            let mut fields = content.split_whitespace();
            // glibc accepts a zone index on link-local IPv6 ("fe80::1%eth0"); the zone is dropped.
            let ip: IpAddr = fields.next()?.split('%').next()?.parse().ok()?;
            let names: Vec<String> = fields.map(str::to_string).collect();
            (!names.is_empty()).then(|| HostsLine {
                line: i + 1,
                ip,
                names,
                text: content.split_whitespace().collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// The sources of an nsswitch.conf `hosts:` line, e.g. `files resolve [!UNAVAIL=return] dns`.
pub fn parse_nss_hosts(line: &str) -> Vec<NssSource> {
    let mut sources: Vec<NssSource> = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (inside, tail) = after.split_once(']').unwrap_or((after, ""));
            if let Some(last) = sources.last_mut() {
                for item in inside.split_whitespace() {
                    apply_action(last, item);
                }
            }
            rest = tail.trim_start();
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '[')
                .unwrap_or(rest.len());
            sources.push(NssSource {
                name: rest[..end].to_ascii_lowercase(),
                actions: BTreeMap::new(),
            });
            rest = rest[end..].trim_start();
        }
    }
    sources
}

fn apply_action(source: &mut NssSource, item: &str) {
    let Some((status, action)) = item.split_once('=') else {
        return;
    };
    let (negated, status) = match status.strip_prefix('!') {
        Some(s) => (true, s),
        None => (false, status),
    };
    let action = match action.to_ascii_lowercase().as_str() {
        "return" => NssAction::Return,
        // "merge" only matters for group databases; for hosts it behaves as continue.
        "continue" | "merge" => NssAction::Continue,
        _ => return,
    };
    let all = [
        NssStatus::Success,
        NssStatus::NotFound,
        NssStatus::Unavail,
        NssStatus::TryAgain,
    ];
    let named = match status.to_ascii_uppercase().as_str() {
        "SUCCESS" => NssStatus::Success,
        "NOTFOUND" => NssStatus::NotFound,
        "UNAVAIL" => NssStatus::Unavail,
        "TRYAGAIN" => NssStatus::TryAgain,
        _ => return,
    };
    for s in all {
        if (s == named) != negated {
            source.actions.insert(s, action);
        }
    }
}

/// What one source gave for a name.
struct SourceResult {
    status: NssStatus,
    addresses: Vec<IpAddr>,
    hosts_lines: Vec<HostsFileEntry>,
    note: String,
}

/// The outcome of DNS lookups (A and AAAA) as an nsswitch status, with their addresses.
fn from_lookups(lookups: &[&DnsLookup], source: AppSource) -> SourceResult {
    let what = if source == AppSource::Resolved {
        "resolve"
    } else {
        "dns"
    };
    let addresses: Vec<IpAddr> = lookups
        .iter()
        .flat_map(|l| l.addresses.iter())
        .filter_map(|a| a.ip.parse().ok())
        .collect();
    let outcomes: Vec<DnsOutcome> = lookups.iter().map(|l| l.outcome).collect();
    // The stub standing in for systemd-resolved: silent or refusing means the daemon is not
    // there, which nss-resolve reports as UNAVAIL (glibc then goes on to the next source).
    let daemon_absent = source == AppSource::Resolved
        && outcomes.iter().all(|o| {
            matches!(
                o,
                DnsOutcome::Error | DnsOutcome::Timeout | DnsOutcome::Refused
            )
        });
    let status = if !addresses.is_empty() {
        NssStatus::Success
    } else if outcomes.is_empty()
        || outcomes.iter().all(|o| *o == DnsOutcome::Error)
        || daemon_absent
    {
        NssStatus::Unavail
    } else if outcomes
        .iter()
        .any(|o| matches!(o, DnsOutcome::Timeout | DnsOutcome::ServFail))
    {
        NssStatus::TryAgain
    } else {
        NssStatus::NotFound
    };
    let server = lookups
        .iter()
        .find_map(|l| l.server.clone())
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    SourceResult {
        status,
        addresses,
        hosts_lines: Vec::new(),
        note: format!("{what}{server}: {status:?}"),
    }
}

/// What one nsswitch source gives for `name`, as glibc would get it.
fn ask_source(
    files: &HostFiles,
    source: &str,
    name: &str,
    system: &[&DnsLookup],
    stub: &[&DnsLookup],
) -> (AppSource, SourceResult) {
    match source {
        other if files.missing_modules.contains(other) => (
            AppSource::Other,
            SourceResult {
                status: NssStatus::Unavail,
                addresses: Vec::new(),
                hosts_lines: Vec::new(),
                note: format!("{other}: libnss_{other}.so.2 is not installed, glibc skips it"),
            },
        ),
        "files" => {
            let hits = files.hosts_file_hits(name);
            let result = match (&files.hosts, hits.is_empty()) {
                (Err(e), _) => SourceResult {
                    status: NssStatus::Unavail,
                    addresses: Vec::new(),
                    hosts_lines: Vec::new(),
                    note: format!("files: {e}"),
                },
                (Ok(_), true) => SourceResult {
                    status: NssStatus::NotFound,
                    addresses: Vec::new(),
                    hosts_lines: Vec::new(),
                    note: format!("files ({}): NotFound", files.hosts_path.display()),
                },
                (Ok(_), false) => SourceResult {
                    status: NssStatus::Success,
                    addresses: hits.iter().map(|h| h.ip).collect(),
                    hosts_lines: hits
                        .iter()
                        .map(|h| HostsFileEntry {
                            path: files.hosts_path.display().to_string(),
                            line: h.line,
                            text: h.text.clone(),
                        })
                        .collect(),
                    note: format!(
                        "files ({} line {}): Success",
                        files.hosts_path.display(),
                        hits.iter()
                            .map(|h| h.line.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            };
            (AppSource::HostsFile, result)
        }
        "dns" => (AppSource::Dns, from_lookups(system, AppSource::Dns)),
        "resolve" => (AppSource::Resolved, from_lookups(stub, AppSource::Resolved)),
        // Multicast DNS modules answer only .local names and return UNAVAIL for the rest, so
        // Ubuntu's `mdns4_minimal [NOTFOUND=return] dns` still reaches DNS for AWS names.
        other if other.starts_with("mdns") => (
            AppSource::Other,
            SourceResult {
                status: NssStatus::Unavail,
                addresses: Vec::new(),
                hosts_lines: Vec::new(),
                note: format!("{other}: only .local names"),
            },
        ),
        // myhostname answers only the host's own names, mymachines only local containers.
        other if other == "myhostname" || other == "mymachines" => (
            AppSource::Other,
            SourceResult {
                status: NssStatus::NotFound,
                addresses: Vec::new(),
                hosts_lines: Vec::new(),
                note: format!("{other}: not for AWS service names"),
            },
        ),
        other => (
            AppSource::Other,
            SourceResult {
                status: NssStatus::Unavail,
                addresses: Vec::new(),
                hosts_lines: Vec::new(),
                note: format!("{other}: not evaluated by the probe"),
            },
        ),
    }
}

/// Walks the `hosts:` sources for `name` as glibc does. `system` holds the host's DNS
/// lookups (resolv.conf servers), `stub` those of systemd-resolved's stub when asked.
pub fn resolve(
    files: &HostFiles,
    name: &str,
    service: Service,
    system: &[&DnsLookup],
    stub: &[&DnsLookup],
    classifier: &Classifier<'_>,
) -> AppResolution {
    let mut steps = Vec::new();
    let mut answer: Option<(AppSource, SourceResult)> = None;
    for source in &files.sources {
        let (kind, result) = ask_source(files, &source.name, name, system, stub);
        steps.push(result.note.clone());
        let status = result.status;
        if status == NssStatus::Success {
            answer = Some((kind, result));
        }
        if source.action(status) == NssAction::Return {
            break;
        }
    }
    let latency_ms = system
        .iter()
        .chain(stub.iter())
        .map(|l| l.latency_ms)
        .max()
        .unwrap_or(0);
    let (answered_by, addresses, hosts_file) = match answer {
        Some((kind, result)) => {
            let mut seen = std::collections::BTreeSet::new();
            let addresses = result
                .addresses
                .into_iter()
                .filter(|ip| seen.insert(*ip))
                .map(|ip| {
                    classifier
                        .ranges
                        .classify(ip, service, classifier.region, classifier.vpc_cidrs)
                })
                .collect();
            (Some(kind), addresses, result.hosts_lines)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    AppResolution {
        name: name.to_string(),
        service,
        nss_sources: files.sources.iter().map(|s| s.name.clone()).collect(),
        nss_origin: files.sources_origin.clone(),
        steps,
        answered_by,
        hosts_file,
        addresses,
        latency_ms,
        resolved_as: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;
    use crate::ranges::IpRanges;
    use crate::report::{AddressClass, CheckStatus, ClassifiedAddress, ResolverKind};

    fn lookup(rt: &str, outcome: DnsOutcome, ips: &[&str]) -> DnsLookup {
        DnsLookup {
            name: "s3.eu-west-1.amazonaws.com".into(),
            service: Service::S3,
            record_type: rt.into(),
            resolver: ResolverKind::System,
            server: Some("10.0.0.2:53".into()),
            outcome,
            addresses: ips
                .iter()
                .map(|ip| ClassifiedAddress {
                    ip: ip.to_string(),
                    class: AddressClass::ServiceRegion,
                    prefix: None,
                    prefix_region: None,
                })
                .collect(),
            error: None,
            latency_ms: 3,
            silent_servers: Vec::new(),
            libc_wait_secs: None,
        }
    }

    fn files(nss: &str, hosts: &str) -> HostFiles {
        HostFiles {
            nsswitch_path: "/etc/nsswitch.conf".into(),
            sources: parse_nss_hosts(nss),
            sources_origin: "test".into(),
            hosts_path: "/etc/hosts".into(),
            hosts: Ok(parse_hosts(hosts)),
            missing_modules: Default::default(),
        }
    }

    fn run(files: &HostFiles, system: &[DnsLookup], stub: &[DnsLookup]) -> AppResolution {
        let ranges = IpRanges::embedded();
        let classifier = Classifier {
            ranges: &ranges,
            region: "eu-west-1",
            vpc_cidrs: &[],
        };
        let system: Vec<&DnsLookup> = system.iter().collect();
        let stub: Vec<&DnsLookup> = stub.iter().collect();
        resolve(
            files,
            "s3.eu-west-1.amazonaws.com",
            Service::S3,
            &system,
            &stub,
            &classifier,
        )
    }

    #[test]
    fn hosts_file_parsing() {
        let lines = parse_hosts(
            "127.0.0.1 localhost\n# comment\n\n198.51.100.9  S3.eu-west-1.amazonaws.com  alias # pinned\nnot-an-ip name\nfe80::1%eth0 ll\n10.0.0.1\n",
        );
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].line, 4);
        assert_eq!(lines[1].ip.to_string(), "198.51.100.9");
        assert_eq!(
            lines[1].text,
            "198.51.100.9 S3.eu-west-1.amazonaws.com alias"
        );
        assert_eq!(lines[2].ip.to_string(), "fe80::1");
    }

    #[test]
    fn nsswitch_actions() {
        let s = parse_nss_hosts("files mdns4_minimal [NOTFOUND=return] dns myhostname");
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["files", "mdns4_minimal", "dns", "myhostname"]);
        assert_eq!(s[1].action(NssStatus::NotFound), NssAction::Return);
        assert_eq!(s[1].action(NssStatus::Unavail), NssAction::Continue);
        assert_eq!(s[0].action(NssStatus::Success), NssAction::Return);
        let d = parse_nss_hosts("dns [!UNAVAIL=return] files");
        assert_eq!(d[0].action(NssStatus::NotFound), NssAction::Return);
        assert_eq!(d[0].action(NssStatus::Unavail), NssAction::Continue);
        assert_eq!(d[0].action(NssStatus::Success), NssAction::Return);
    }

    #[test]
    fn hosts_file_wins_before_dns() {
        let f = files(
            "files dns",
            "198.51.100.9 s3.eu-west-1.amazonaws.com\n198.51.100.9 s3.eu-west-1.amazonaws.com\n",
        );
        let system = [lookup("A", DnsOutcome::Answered, &["52.218.1.1"])];
        let r = run(&f, &system, &[]);
        assert_eq!(r.answered_by, Some(AppSource::HostsFile));
        assert_eq!(r.addresses.len(), 1, "duplicates collapse");
        assert_eq!(r.addresses[0].ip, "198.51.100.9");
        assert_eq!(r.hosts_file[0].line, 1);
        assert_eq!(r.status(), CheckStatus::Warn);
    }

    #[test]
    fn dns_first_ignores_hosts_file_when_dns_answers() {
        let f = files("dns files", "198.51.100.9 s3.eu-west-1.amazonaws.com\n");
        let system = [lookup("A", DnsOutcome::Answered, &["52.218.1.1"])];
        let r = run(&f, &system, &[]);
        assert_eq!(r.answered_by, Some(AppSource::Dns));
        assert_eq!(r.addresses[0].ip, "52.218.1.1");
        // NXDOMAIN falls through to the hosts file.
        let r = run(&f, &[lookup("A", DnsOutcome::NxDomain, &[])], &[]);
        assert_eq!(r.answered_by, Some(AppSource::HostsFile));
    }

    #[test]
    fn ubuntus_mdns_line_still_reaches_dns() {
        let f = files("files mdns4_minimal [NOTFOUND=return] dns myhostname", "");
        let r = run(
            &f,
            &[lookup("A", DnsOutcome::Answered, &["52.218.1.1"])],
            &[],
        );
        assert_eq!(r.answered_by, Some(AppSource::Dns), "{:?}", r.steps);
        // Amazon Linux 2023: myhostname and resolve before dns.
        let f = files("files myhostname resolve [!UNAVAIL=return] dns", "");
        let r = run(
            &f,
            &[lookup("A", DnsOutcome::Answered, &["52.218.1.1"])],
            &[],
        );
        assert_eq!(r.answered_by, Some(AppSource::Dns), "{:?}", r.steps);
    }

    #[test]
    fn debians_mymachines_line_still_reaches_dns() {
        // What installing systemd-container with its recommends (libnss-mymachines) leaves on
        // Debian 12: mymachines answers only local containers' names, so DNS decides; whether
        // the module is installed or not (glibc skips a missing one).
        for missing in [false, true] {
            let mut f = files("files mymachines dns myhostname", "");
            if missing {
                f.missing_modules.insert("mymachines".into());
            }
            let r = run(
                &f,
                &[lookup("A", DnsOutcome::Answered, &["52.218.1.1"])],
                &[],
            );
            assert_eq!(r.answered_by, Some(AppSource::Dns), "{:?}", r.steps);
            let r = run(&f, &[lookup("A", DnsOutcome::NxDomain, &[])], &[]);
            assert_eq!(r.answered_by, None, "{:?}", r.steps);
        }
    }

    #[test]
    fn notfound_return_stops_the_walk() {
        let f = files(
            "dns [NOTFOUND=return] files",
            "198.51.100.9 s3.eu-west-1.amazonaws.com\n",
        );
        let r = run(&f, &[lookup("A", DnsOutcome::NxDomain, &[])], &[]);
        assert_eq!(r.answered_by, None);
        assert_eq!(r.status(), CheckStatus::Fail);
    }

    #[test]
    fn resolved_stub_is_a_source() {
        let f = files("resolve [!UNAVAIL=return] dns", "");
        let stub = [lookup("A", DnsOutcome::Answered, &["10.0.9.9"])];
        let system = [lookup("A", DnsOutcome::Answered, &["52.218.1.1"])];
        let r = run(&f, &system, &stub);
        assert_eq!(r.answered_by, Some(AppSource::Resolved));
        assert_eq!(r.addresses[0].ip, "10.0.9.9");
        // An unreachable stub is UNAVAIL: glibc goes on to dns.
        let dead = [lookup("A", DnsOutcome::Error, &[])];
        let r = run(&f, &system, &dead);
        assert_eq!(r.answered_by, Some(AppSource::Dns));
        // So is a silent one (resolved not running): not TRYAGAIN, which would stop the walk.
        let silent = [
            lookup("A", DnsOutcome::Timeout, &[]),
            lookup("AAAA", DnsOutcome::Timeout, &[]),
        ];
        let r = run(&f, &system, &silent);
        assert_eq!(r.answered_by, Some(AppSource::Dns), "{:?}", r.steps);
        // Without libnss_resolve the source does not exist for glibc, whatever the stub says.
        let mut without = f.clone();
        without.missing_modules.insert("resolve".into());
        assert!(!without.uses_resolved());
        let r = run(&without, &system, &stub);
        assert_eq!(r.answered_by, Some(AppSource::Dns));
        assert!(r.steps[0].contains("not installed"), "{:?}", r.steps);
    }

    #[test]
    fn unreadable_hosts_file_is_evidence() {
        let mut f = files("files dns", "");
        f.hosts = Err("cannot read /etc/hosts: denied".into());
        let r = run(
            &f,
            &[lookup("A", DnsOutcome::Answered, &["52.218.1.1"])],
            &[],
        );
        assert_eq!(r.answered_by, Some(AppSource::Dns));
        assert!(r.steps[0].contains("denied"), "{:?}", r.steps);
    }

    #[test]
    fn fifo_and_missing_files_do_not_hang() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        assert!(read_name_service_file(&fifo).is_err());
        let f = HostFiles::load_blocking(dir.path().join("none"), dir.path().join("none"));
        assert!(f.hosts.is_err());
        assert_eq!(f.sources[0].name, "dns");
        assert!(f.sources_origin.starts_with("glibc default"));
    }
}
