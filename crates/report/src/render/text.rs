//! The short text report for people and SSM Run Command output: one line per check (DNS
//! grouped per name), the paths, then the findings with their fixes.

use std::fmt::Write;

use crate::report::*;

pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn status(&self, s: CheckStatus) -> String {
        let label = format!("{:<4}", s.as_str());
        match s {
            CheckStatus::Ok => self.paint("32", &label),
            CheckStatus::Warn => self.paint("33", &label),
            CheckStatus::Fail => self.paint("31;1", &label),
            CheckStatus::Skip => self.paint("2", &label),
        }
    }
    fn severity(&self, s: Severity) -> String {
        let label = format!("{:<7}", s.as_str().to_uppercase());
        match s {
            Severity::Error => self.paint("31;1", &label),
            Severity::Warning => self.paint("33", &label),
            Severity::Note => self.paint("2", &label),
        }
    }
}

pub fn render(report: &Report, style: &Style) -> String {
    let mut out = String::new();
    write_header(&mut out, report);
    write_checks(&mut out, report, style);
    write_paths(&mut out, report);
    write_findings(&mut out, report, style);
    write_verdict(&mut out, report);
    out
}

/// The tool, the instance, the region and the run's duration; the ranges and the report id.
fn write_header(out: &mut String, report: &Report) {
    let instance = report
        .instance
        .as_ref()
        .map(|i| {
            format!(
                "{} {} {} {}",
                i.instance_id.as_deref().unwrap_or("?"),
                i.availability_zone.as_deref().unwrap_or("?"),
                i.vpc_id.as_deref().unwrap_or("?"),
                i.subnet_id.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "not on EC2 (IMDS unavailable)".into());
    let _ = writeln!(
        out,
        "vpce-probe {}  {}  region {}  {} ms",
        report.tool.version,
        instance,
        report.region.effective.as_deref().unwrap_or("unknown"),
        report.duration_ms
    );
    let _ = writeln!(
        out,
        "ranges: {} ({})  report {}",
        report.ip_ranges.source, report.ip_ranges.create_date, report.report_id
    );
}

/// One line per check, except DNS: one line per name, with the worst status of its lookups.
fn write_checks(out: &mut String, report: &Report, style: &Style) {
    out.push_str("\nCHECKS\n");
    let mut dns_done: Vec<&str> = Vec::new();
    for c in &report.checks {
        // A DNS check the deadline cut short has no answers to group: its own line says so.
        if c.check != CheckKind::Dns || matches!(c.evidence, Evidence::Unfinished(_)) {
            let _ = writeln!(
                out,
                "  {} {:<12} {}",
                style.status(c.status),
                c.check.as_str(),
                c.summary
            );
            continue;
        }
        if dns_done.contains(&c.subject.as_str()) {
            continue;
        }
        dns_done.push(&c.subject);
        let group: Vec<&CheckRecord> = report
            .checks
            .iter()
            .filter(|o| o.check == CheckKind::Dns && o.subject == c.subject)
            .collect();
        let _ = writeln!(
            out,
            "  {} {:<12} {}",
            style.status(worst_status(&group)),
            "dns",
            dns_line(&c.subject, &group)
        );
    }
}

fn worst_status(group: &[&CheckRecord]) -> CheckStatus {
    group
        .iter()
        .map(|g| g.status)
        .max_by_key(|s| match s {
            CheckStatus::Fail => 3,
            CheckStatus::Warn => 2,
            CheckStatus::Ok => 1,
            CheckStatus::Skip => 0,
        })
        .unwrap_or(CheckStatus::Skip)
}

/// Per target: the path verdict, its evidence, the names a setting shaped, what would confirm it.
fn write_paths(out: &mut String, report: &Report) {
    out.push_str("\nPATHS\n");
    for t in &report.targets {
        let _ = writeln!(
            out,
            "  {:<28} {} ({}){}",
            t.id,
            t.path.kind.as_str(),
            t.path.confidence.as_str(),
            if t.path.reachable {
                ""
            } else {
                ", not reachable"
            }
        );
        for e in &t.path.evidence {
            let _ = writeln!(out, "      - {e}");
        }
        // A name shaped by a setting (FIPS, dual-stack, a profile's endpoint_url, path style)
        // says so: it is why the probe tested that name and not the classic one.
        for n in &t.names {
            let shaped: Vec<&str> = n
                .settings
                .iter()
                .filter(|s| !s.starts_with("the SDKs' "))
                .map(String::as_str)
                .collect();
            if !shaped.is_empty() {
                let _ = writeln!(out, "      name {}: {}", n.name, shaped.join("; "));
            }
        }
        if let Some(c) = &t.path.to_confirm {
            let _ = writeln!(out, "      to confirm: {c}");
        }
    }
}

/// Each finding with its evidence and fix; nothing at all when there is none.
fn write_findings(out: &mut String, report: &Report, style: &Style) {
    if report.findings.is_empty() {
        return;
    }
    out.push_str("\nFINDINGS\n");
    for f in &report.findings {
        let _ = writeln!(
            out,
            "  {} {} [{}] {}",
            style.severity(f.severity),
            f.code,
            f.target,
            f.title
        );
        let _ = writeln!(out, "          {}", f.detail);
        let _ = writeln!(out, "          fix: {}", f.remediation);
    }
}

/// The verdict, and the root causes when there is more than the one it names.
fn write_verdict(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\nVERDICT  {}", report.verdict.summary);
    if report.verdict.root_causes.len() > 1 {
        for r in &report.verdict.root_causes {
            let _ = writeln!(out, "  root cause: {} [{}] {}", r.code, r.target, r.title);
        }
    }
}

fn dns_line(name: &str, group: &[&CheckRecord]) -> String {
    let mut parts = Vec::new();
    for kind in [ResolverKind::System, ResolverKind::Vpc] {
        let mut answers = Vec::new();
        let mut asked = false;
        let mut server = None;
        let mut silent = Vec::new();
        let mut ms = 0;
        for g in group {
            let Evidence::Dns(d) = &g.evidence else {
                continue;
            };
            if d.resolver != kind {
                continue;
            }
            asked = true;
            server = server.or(d.server.clone());
            for s in &d.silent_servers {
                if !silent.contains(s) {
                    silent.push(s.clone());
                }
            }
            ms = ms.max(d.latency_ms);
            match d.outcome {
                DnsOutcome::Answered => answers.extend(
                    d.addresses
                        .iter()
                        .map(|a| format!("{} ({})", a.ip, crate::report::class_label(a.class))),
                ),
                DnsOutcome::NoData => {}
                other => answers.push(format!("{} {:?}", d.record_type, other)),
            }
        }
        // A name in a search domain is asked of the host's servers only.
        if !asked && kind == ResolverKind::Vpc {
            continue;
        }
        let answers = if answers.is_empty() {
            "no address".to_string()
        } else {
            answers.join(", ")
        };
        let after_silence = crate::report::after_silent_servers(&silent);
        parts.push(format!(
            "{} {}: {answers} {ms} ms{after_silence}",
            kind.as_str(),
            server.unwrap_or_else(|| "-".into())
        ));
    }
    // What the applications use comes first: it is what TCP, TLS and the calls tested.
    for g in group {
        if let Evidence::AppResolution(app) = &g.evidence {
            let what = match (app.answered_by, app.hosts_file.first()) {
                (None, _) => "no address".to_string(),
                (Some(_), Some(h)) => {
                    format!("{} from {} line {}", app_addresses(app), h.path, h.line)
                }
                (Some(source), None) => format!("{} from {}", app_addresses(app), source.as_str()),
            };
            parts.insert(0, format!("applications: {what}"));
        }
    }
    format!("{name} -> {}", parts.join(" | "))
}

fn app_addresses(app: &crate::report::AppResolution) -> String {
    app.addresses
        .iter()
        .map(|a| format!("{} ({})", a.ip, crate::report::class_label(a.class)))
        .collect::<Vec<_>>()
        .join(", ")
}
