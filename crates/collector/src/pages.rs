//! Server-rendered pages (maud escapes every value). No JavaScript: filters are plain links
//! and a GET form, so every view is a URL that can be pasted into a ticket.

use std::time::{Duration, UNIX_EPOCH};

use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::model::{Report, render_text};
use crate::store::{CodeHolder, FleetCounts, FleetFilter, InstanceRow, ReportRow};

/// Characters left as they are in a path segment or query value.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

/// What every link needs: the read token when the reader passed it as ?token=.
pub struct Ctx {
    pub token: Option<String>,
}

impl Ctx {
    fn href(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut pairs: Vec<String> = query
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        if let Some(t) = &self.token {
            pairs.push(format!("token={}", enc(t)));
        }
        if pairs.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", pairs.join("&"))
        }
    }
    fn instance(&self, key: &str) -> String {
        self.href(&format!("/instances/{}", enc(key)), &[])
    }
    fn report(&self, id: &str) -> String {
        self.href(&format!("/reports/{}", enc(id)), &[])
    }
    fn finding(&self, code: &str) -> String {
        self.href(&format!("/findings/{}", enc(code)), &[])
    }
}

fn when(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn ago(now: i64, ms: i64) -> String {
    let secs = u64::try_from(now.saturating_sub(ms) / 1000).unwrap_or(0);
    let d = Duration::from_secs(secs);
    if secs == 0 {
        "just now".into()
    } else {
        format!("{} ago", humantime::format_duration(coarse(d)))
    }
}

/// "3h 12m" rather than "3h 12m 5s".
fn coarse(d: Duration) -> Duration {
    let s = d.as_secs();
    let unit = match s {
        0..=119 => 1,
        120..=7199 => 60,
        _ => 3600,
    };
    Duration::from_secs(s - s % unit)
}

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.healthy{color:#176a1c}.problems{color:#b3171d;font-weight:bold}
.silent{background:#fff2c6}
.group{margin-top:1.5em;border-left:4px solid #bbb;padding-left:.6em}
.group.bad{border-color:#b3171d}
.group h2{font-size:1.2em}
pre{background:#f7f7f7;padding:1em;overflow-x:auto}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.9em}
form input,form select{width:9em}
.group table{width:100%}
.nw,th{white-space:nowrap}
nav a{margin-right:1em}
"#;

fn layout(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No favicon request: a browser would log its 404 as a console error.
                link rel="icon" href="data:,";
                title { (title) " · vpce-collector" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                nav { a href=(ctx.href("/", &[])) { "Fleet" } a href=(ctx.href("/", &[("verdict", "problems")])) { "Problems" } a href=(ctx.href("/", &[("verdict", "silent")])) { "Silent" } }
                h1 { (title) }
                (body)
            }
        }
    }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

fn codes(ctx: &Ctx, root_causes: &[String]) -> Markup {
    html! {
        @for (i, rc) in root_causes.iter().enumerate() {
            @let (code, target) = rc.split_once(' ').unwrap_or((rc.as_str(), ""));
            @if i > 0 { br; }
            span.nw { a href=(ctx.finding(code)) { code { (code) } } " " (target) }
        }
    }
}

fn verdict(row: &ReportRow) -> Markup {
    html! { span class=(row.status) { (row.status) } }
}

/// How many of the group's instances have each root-cause code, most frequent first.
fn cause_counts(members: &[&InstanceRow]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for m in members {
        let mut seen: Vec<&str> = Vec::new();
        for rc in &m.latest.root_causes {
            let code = rc.split(' ').next().unwrap_or("");
            if seen.contains(&code) {
                continue;
            }
            seen.push(code);
            match counts.iter_mut().find(|(c, _)| c == code) {
                Some(entry) => entry.1 += 1,
                None => counts.push((code.to_string(), 1)),
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts
}

type GroupKey = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub fn fleet(
    ctx: &Ctx,
    filter: &FleetFilter,
    rows: &[InstanceRow],
    counts: &FleetCounts,
    now: i64,
) -> Markup {
    let status = |s: &str| {
        counts
            .by_status
            .iter()
            .find(|(k, _)| k == s)
            .map_or(0, |(_, n)| *n)
    };
    // Rows come sorted by account, region, VPC, subnet: consecutive runs are the groups.
    let mut groups: Vec<(GroupKey, Vec<&InstanceRow>)> = Vec::new();
    for row in rows {
        let l = &row.latest;
        let key = (
            l.account.clone(),
            l.region.clone(),
            l.vpc_id.clone(),
            l.subnet_id.clone(),
        );
        match groups.last_mut() {
            Some((k, members)) if *k == key => members.push(row),
            _ => groups.push((key, vec![row])),
        }
    }
    // Groups with problems first, then those with silent instances, then the healthy ones
    // (stable: each kind keeps the account / region / VPC / subnet order).
    groups.sort_by_key(|(_, members)| {
        if members.iter().any(|m| m.latest.status == "problems") {
            0
        } else if members.iter().any(|m| m.silent) {
            1
        } else {
            2
        }
    });
    let f = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        p {
            (plural(usize::try_from(status("healthy") + status("problems")).unwrap_or(0), "instance")) ": "
            span class="healthy" { (status("healthy")) " healthy" } ", "
            span class="problems" { (status("problems")) " with problems" } ", "
            (counts.silent) " silent"
        }
        form method="get" action="/" {
            "account " input name="account" value=(f(&filter.account));
            " region " input name="region" value=(f(&filter.region));
            " VPC " input name="vpc" value=(f(&filter.vpc));
            " subnet " input name="subnet" value=(f(&filter.subnet));
            " verdict " select name="verdict" {
                @for (value, label) in [("", "any"), ("healthy", "healthy"), ("problems", "problems"), ("silent", "silent")] {
                    option value=(value) selected[filter.verdict.as_deref().unwrap_or("") == value] { (label) }
                }
            }
            " code " input name="code" value=(f(&filter.code));
            @if let Some(t) = &ctx.token { input type="hidden" name="token" value=(t); }
            " " button type="submit" { "Filter" }
        }
        @if !counts.by_code.is_empty() {
            p { "Findings in latest reports: "
                @for (code, n) in &counts.by_code {
                    a href=(ctx.finding(code)) { code { (code) } } " ×" (n) " "
                }
            }
        }
        @if rows.is_empty() { p { "No instance matches." } }
        @for ((account, region, vpc, subnet), members) in &groups {
            @let bad = members.iter().filter(|m| m.latest.status == "problems").count();
            @let silent = members.iter().filter(|m| m.silent).count();
            @let causes = cause_counts(members);
            div class=(if bad > 0 { "group bad" } else { "group" }) {
                h2 {
                    "account " a href=(ctx.href("/", &[("account", opt(account))])) { (opt(account)) }
                    " · " a href=(ctx.href("/", &[("account", opt(account)), ("region", opt(region))])) { (opt(region)) }
                    " · " a href=(ctx.href("/", &[("vpc", opt(vpc))])) { (opt(vpc)) }
                    " · subnet " a href=(ctx.href("/", &[("subnet", opt(subnet))])) { (opt(subnet)) }
                    // A subnet lives in one AZ: said once here rather than on every row.
                    @if let Some(az) = members.first().and_then(|m| m.latest.az.as_deref()) { " (" (az) ")" }
                }
                p class="summary" {
                    (plural(members.len(), "instance")) ", " (bad) " with problems, " (silent) " silent"
                    @if !causes.is_empty() {
                        ". Root causes: "
                        @for (code, n) in &causes {
                            a href=(ctx.finding(code)) { code { (code) } } " ×" (n) " "
                        }
                    }
                }
                table {
                    tr { th { "instance" } th { "host" } th { "verdict" } th { "root causes" } th { "paths" } th { "last report" } }
                    @for m in members {
                        tr class=(if m.silent { "silent" } else { "" }) {
                            td.nw { a href=(ctx.instance(&m.instance_key)) { (m.instance_key) } }
                            td.nw { (opt(&m.latest.hostname)) }
                            td.nw { (verdict(&m.latest)) }
                            td { (codes(ctx, &m.latest.root_causes)) }
                            td {
                                @for p in &m.latest.path_kinds {
                                    @let (target, kind) = p.split_once('=').unwrap_or((p.as_str(), ""));
                                    span.nw { (target) ": " (kind) } br;
                                }
                            }
                            td.nw {
                                a href=(ctx.report(&m.latest.report_id)) { (ago(now, m.last_received_ms)) }
                                @if m.silent { " — silent (usual interval " (interval(m.interval_ms)) ")" }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(ctx, "Fleet", body)
}

/// "1 instance", "3 instances".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn interval(ms: Option<i64>) -> String {
    ms.map(|m| {
        humantime::format_duration(Duration::from_secs(u64::try_from(m / 1000).unwrap_or(0)))
            .to_string()
    })
    .unwrap_or_else(|| "unknown".into())
}

fn report_table(ctx: &Ctx, rows: &[ReportRow]) -> Markup {
    html! {
        table {
            tr { th { "started" } th { "received" } th { "verdict" } th { "exit" } th { "root causes" } th { "report" } }
            @for r in rows {
                tr {
                    td { (when(r.started_at_ms)) }
                    td { (when(r.received_at_ms)) }
                    td { (verdict(r)) }
                    td { (r.exit_code) }
                    td { (codes(ctx, &r.root_causes)) }
                    td { a href=(ctx.report(&r.report_id)) { (r.report_id) } @if !r.body_kept { " (summary only)" } }
                }
            }
        }
    }
}

pub fn instance(
    ctx: &Ctx,
    i: &InstanceRow,
    changes: &[ReportRow],
    recent: &[ReportRow],
    now: i64,
) -> Markup {
    let l = &i.latest;
    let body = html! {
        p {
            (verdict(l)) " — " (l.summary) br;
            "account " (opt(&l.account)) " · " (opt(&l.region)) " · " (opt(&l.az)) " · "
            a href=(ctx.href("/", &[("vpc", opt(&l.vpc_id))])) { (opt(&l.vpc_id)) } " · "
            a href=(ctx.href("/", &[("subnet", opt(&l.subnet_id))])) { (opt(&l.subnet_id)) } br;
            "host " (opt(&l.hostname)) " · vpce-probe " (l.tool_version) " · token " (l.token_label) br;
            (i.reports) " reports since " (when(i.first_received_ms)) "; last " (ago(now, i.last_received_ms))
            ", usual interval " (interval(i.interval_ms))
            @if i.silent { strong { " — silent for more than 3 intervals" } }
        }
        h2 { "Verdict changes" }
        (report_table(ctx, changes))
        h2 { "Last reports" }
        (report_table(ctx, recent))
    };
    layout(ctx, &format!("Instance {}", i.instance_key), body)
}

pub fn finding(ctx: &Ctx, code: &str, holders: &[CodeHolder], now: i64) -> Markup {
    let body = html! {
        p { (holders.len()) " instances have " code { (code) } " in their latest report. "
            a href=(ctx.href("/", &[("code", code)])) { "Show them in the fleet view" } }
        table {
            tr { th { "instance" } th { "account" } th { "region" } th { "VPC" } th { "subnet" } th { "targets" } th { "severity" } th { "since" } th { "latest" } }
            @for h in holders {
                @let l = &h.instance.latest;
                tr {
                    td { a href=(ctx.instance(&h.instance.instance_key)) { (h.instance.instance_key) } }
                    td { (opt(&l.account)) } td { (opt(&l.region)) } td { (opt(&l.vpc_id)) }
                    td { a href=(ctx.href("/", &[("subnet", opt(&l.subnet_id))])) { (opt(&l.subnet_id)) } }
                    td { (h.targets.join(", ")) }
                    td { (h.severity) }
                    td { (when(h.since_ms)) " (" (ago(now, h.since_ms)) ")" }
                    td { a href=(ctx.report(&l.report_id)) { (verdict(l)) } }
                }
            }
        }
    };
    layout(ctx, &format!("Finding {code}"), body)
}

pub fn report(
    ctx: &Ctx,
    row: &ReportRow,
    body: Option<&str>,
    findings: &[(String, String, String)],
    now: i64,
) -> Markup {
    let rendered = body.map(|b| {
        serde_json::from_str::<Report>(b)
            .map(|r| render_text(&r))
            .map_err(|e| e.to_string())
    });
    let json_href = ctx.href(&format!("/reports/{}.json", enc(&row.report_id)), &[]);
    let page = html! {
        p {
            "instance " a href=(ctx.instance(&row.instance_key)) { (row.instance_key) }
            " · started " (when(row.started_at_ms)) " · received " (ago(now, row.received_at_ms))
            " · " (verdict(row)) " (exit " (row.exit_code) ")"
        }
        @match &rendered {
            Some(Ok(text)) => {
                p { a href=(json_href) download { "Download the JSON report" } }
                pre { (text) }
            }
            Some(Err(e)) => { p { "The stored JSON cannot be read as a report: " (e) } }
            None => {
                p { "Only the summary of this report is kept: its verdict and root causes are those of the report before it. "
                    "The full JSON of the instance's latest report and of every change is kept." }
                p { (row.summary) }
                table {
                    tr { th { "finding" } th { "target" } th { "severity" } }
                    @for (code, target, severity) in findings {
                        tr { td { a href=(ctx.finding(code)) { code { (code) } } } td { (target) } td { (severity) } }
                    }
                }
            }
        }
    };
    layout(ctx, &format!("Report {}", row.report_id), page)
}
