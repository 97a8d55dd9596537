//! The pages in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, fantoccini) against the collector on loopback, holding a fleet where one subnet
//! is broken. It follows the links a person would (fleet → finding → instance → report), uses
//! the URL filters and the filter form, checks what is laid out and visible (element sizes,
//! colours, no horizontal overflow), and that no page logs a console error. It never skips:
//! without chromium and chromedriver (scripts/install-deps.sh installs them) it fails.
//!
//! With VPCE_COLLECTOR_SCREENSHOT=FILE it also saves the fleet page as a PNG there
//! (scripts/collector_screenshot.sh makes docs/collector-fleet.png that way).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step stops the test

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const NACL: &str = "NACL_OUTBOUND_BLOCKS";
const SG: &str = "SG_EGRESS_BLOCKS";
const BAD_SUBNET: &str = "subnet-0b4d5e6f7a8b9c0d1";
const GOOD_SUBNET: &str = "subnet-0a1b2c3d4e5f60718";
const OTHER_SUBNET: &str = "subnet-0c9d8e7f6a5b4c3d2";

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// chromedriver on a loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_chromedriver() -> Driver {
    let driver = which("chromedriver").unwrap_or_else(|| {
        panic!("chromedriver is not installed: run scripts/install-deps.sh (Debian packages chromium and chromium-driver)")
    });
    assert!(
        which("chromium").is_some(),
        "chromium is not installed: run scripts/install-deps.sh (Debian package chromium)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(driver)
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_for("chromedriver to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    d
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": which("chromium").expect("chromium").display().to_string(),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1280,900", "--hide-scrollbars",
                "--force-device-scale-factor=1",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless chromium")
}

/// chromedriver's log of the page's console (`POST /session/{id}/se/log`, as Selenium reads it).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Fails on any console message of level SEVERE or WARNING since the last call.
async fn assert_clean_console(c: &Client, page: &str) {
    let log = c
        .issue_cmd(BrowserLog)
        .await
        .expect("the browser's console log");
    let entries = log.as_array().cloned().unwrap_or_default();
    let bad: Vec<&Value> = entries
        .iter()
        .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
        .collect();
    assert!(bad.is_empty(), "console messages on {page}: {bad:#?}");
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A fleet: one subnet where every instance fails the same way (one of them healthy an hour
/// ago), a healthy subnet, and another account with a different failure.
fn seed(c: &Collector) {
    let now = SystemTime::now();
    let ago = |mins: u64| rfc3339(now - Duration::from_secs(mins * 60));
    let nacl: &[(&str, &str)] = &[(NACL, "s3:app-data")];
    let mut n = 0;
    let mut post =
        |instance: &str, account: &str, subnet: &str, at: String, problems: &[(&str, &str)]| {
            n += 1;
            let id = format!("5e1ec7ed-0000-4000-8000-{n:012}");
            let mut r = report(Spec {
                id: &id,
                instance,
                account,
                subnet,
                started_at: &at,
                problems,
            });
            // EC2's own host names, one per instance (the last digits of its id).
            let last = u8::from_str_radix(&instance[instance.len() - 2..], 16).unwrap_or(0);
            r["host"]["hostname"] = json!(format!("ip-10-0-{}-{last}", subnet.as_bytes()[8] % 8));
            let r = c.post(Some(TOKEN), &r);
            assert_eq!(r.status, 201, "{}", r.text());
        };
    post(
        "i-0b1f2e3d4c5b6a701",
        "111122223333",
        BAD_SUBNET,
        ago(62),
        &[],
    );
    post(
        "i-0b1f2e3d4c5b6a701",
        "111122223333",
        BAD_SUBNET,
        ago(32),
        nacl,
    );
    post(
        "i-0b1f2e3d4c5b6a701",
        "111122223333",
        BAD_SUBNET,
        ago(2),
        nacl,
    );
    post(
        "i-0b1f2e3d4c5b6a702",
        "111122223333",
        BAD_SUBNET,
        ago(1),
        nacl,
    );
    post(
        "i-0b1f2e3d4c5b6a703",
        "111122223333",
        BAD_SUBNET,
        ago(1),
        nacl,
    );
    post(
        "i-0a9e8d7c6b5a4f301",
        "111122223333",
        GOOD_SUBNET,
        ago(1),
        &[],
    );
    post(
        "i-0a9e8d7c6b5a4f302",
        "111122223333",
        GOOD_SUBNET,
        ago(1),
        &[],
    );
    post(
        "i-0a9e8d7c6b5a4f303",
        "111122223333",
        GOOD_SUBNET,
        ago(2),
        &[],
    );
    post(
        "i-0c1d2e3f4a5b6c901",
        "444455556666",
        OTHER_SUBNET,
        ago(3),
        &[(SG, "dynamodb:orders")],
    );
}

async fn path_of(c: &Client) -> String {
    let u = c.current_url().await.expect("url");
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// The element is displayed and has a real size on the page.
async fn laid_out(e: &fantoccini::elements::Element, what: &str) -> (f64, f64) {
    assert!(
        e.is_displayed().await.expect("displayed?"),
        "{what} is not displayed"
    );
    let (_, _, w, h) = e.rectangle().await.expect("rectangle");
    assert!(w > 10.0 && h > 5.0, "{what} has no size: {w}x{h}");
    (w, h)
}

async fn no_horizontal_overflow(c: &Client, page: &str) {
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(fits, json!(true), "{page} is wider than the window");
}

async fn rows(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.expect("find").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_in_headless_chromium() {
    let driver = start_chromedriver();
    let dir = Dir::new();
    let collector = Collector::start(&dir, &[]);
    seed(&collector);
    let base = format!("http://{}", collector.addr);
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(&driver, profile.path()).await;
    // The session is closed (and chromium with it) even when a check fails.
    let session = c.clone();
    let outcome = tokio::spawn(async move { walk(&session, &base).await }).await;
    let _ = c.close().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the browser walk did not finish: {e}"),
        }
    }
}

async fn walk(c: &Client, base: &str) {
    // The fleet page: the broken subnet is one group, flagged, with its root cause counted.
    c.goto(&format!("{base}/")).await.expect("fleet");
    assert_eq!(c.title().await.expect("title"), "Fleet · vpce-collector");
    let groups = c.find_all(Locator::Css("div.group")).await.expect("groups");
    assert_eq!(groups.len(), 3, "three subnets");
    let bad = c
        .find(Locator::XPath(&format!(
            "//div[contains(@class,'bad')][.//h2[contains(., '{BAD_SUBNET}')]]"
        )))
        .await
        .expect("the broken subnet's group");
    let (group_width, _) = laid_out(&bad, "the broken subnet's group").await;
    let summary = bad.find(Locator::Css("p.summary")).await.expect("summary");
    let text = summary.text().await.expect("text");
    assert!(
        text.contains("3 instances, 3 with problems") && text.contains(&format!("{NACL} ×3")),
        "{text}"
    );
    let other = c
        .find(Locator::XPath(&format!(
            "//div[contains(@class,'bad')][.//h2[contains(., '{OTHER_SUBNET}')]]//p[@class='summary']"
        )))
        .await
        .expect("the other account's group");
    let other = other.text().await.expect("text");
    assert!(other.starts_with("1 instance, 1 with problems"), "{other}");
    let table = bad.find(Locator::Css("table")).await.expect("table");
    let (table_width, _) = laid_out(&table, "the group's table").await;
    assert!(
        table_width <= group_width + 1.0,
        "the table ({table_width} px) fits its group ({group_width} px)"
    );
    assert_eq!(
        bad.find_all(Locator::Css("tr")).await.expect("rows").len(),
        4,
        "a header and three instances"
    );
    // Problems are red and bold; the group's left border is red.
    let verdict = bad
        .find(Locator::Css("span.problems"))
        .await
        .expect("verdict");
    laid_out(&verdict, "a problems verdict").await;
    assert_eq!(
        verdict.css_value("color").await.expect("color"),
        "rgba(179, 23, 29, 1)"
    );
    assert_eq!(
        bad.css_value("border-left-color").await.expect("border"),
        "rgba(179, 23, 29, 1)"
    );
    let good = c
        .find(Locator::XPath(&format!(
            "//div[contains(@class,'group')][.//h2[contains(., '{GOOD_SUBNET}')]]"
        )))
        .await
        .expect("the healthy subnet's group");
    assert_eq!(
        good.attr("class").await.expect("class").as_deref(),
        Some("group")
    );
    // The broken subnet comes first, before the healthy one it sorts after by name.
    let first_group = groups[0].find(Locator::Css("h2")).await.expect("h2");
    assert!(
        first_group.text().await.expect("h2").contains(BAD_SUBNET),
        "the broken subnet is the first group"
    );
    for field in ["account", "region", "vpc", "subnet", "verdict", "code"] {
        let input = c
            .find(Locator::Css(&format!("form [name='{field}']")))
            .await
            .expect("filter input");
        laid_out(&input, &format!("the {field} filter")).await;
    }
    no_horizontal_overflow(c, "the fleet page").await;
    assert_clean_console(c, "the fleet page").await;
    if let Some(path) = std::env::var_os("VPCE_COLLECTOR_SCREENSHOT") {
        // The whole page: the window as tall as the document plus the browser's own frame.
        let dims = c
            .execute(
                "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
                vec![],
            )
            .await
            .expect("page height");
        let height = dims[0].as_u64().unwrap_or(900) + dims[1].as_u64().unwrap_or(0);
        c.set_window_size(1280, u32::try_from(height).unwrap_or(900))
            .await
            .expect("resize");
        let png = c.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
        std::fs::write(&path, &png).expect("write the screenshot");
        eprintln!(
            "screenshot of the fleet page: {}",
            Path::new(&path).display()
        );
    }

    // Its root-cause link leads to the finding page.
    summary
        .find(Locator::LinkText(NACL))
        .await
        .expect("root-cause link")
        .click()
        .await
        .expect("click");
    assert_eq!(path_of(c).await, format!("/findings/{NACL}"));
    let h1 = c.find(Locator::Css("h1")).await.expect("h1");
    assert_eq!(h1.text().await.expect("h1"), format!("Finding {NACL}"));
    assert_eq!(rows(c, "table tr").await, 4, "three instances have it");
    laid_out(
        &c.find(Locator::Css("table")).await.expect("table"),
        "the finding table",
    )
    .await;
    no_horizontal_overflow(c, "the finding page").await;
    assert_clean_console(c, "the finding page").await;

    // The first instance's timeline: healthy an hour ago, then broken.
    c.find(Locator::LinkText("i-0b1f2e3d4c5b6a701"))
        .await
        .expect("instance link")
        .click()
        .await
        .expect("click");
    assert_eq!(path_of(c).await, "/instances/i-0b1f2e3d4c5b6a701");
    let changes = c
        .find(Locator::XPath(
            "//h2[.='Verdict changes']/following-sibling::table[1]",
        ))
        .await
        .expect("changes table");
    laid_out(&changes, "the verdict changes").await;
    let change_rows = changes.find_all(Locator::Css("tr")).await.expect("rows");
    assert_eq!(change_rows.len(), 3, "header, broke, first report");
    assert!(
        change_rows[1]
            .text()
            .await
            .expect("row")
            .contains("problems")
    );
    assert!(
        change_rows[2]
            .text()
            .await
            .expect("row")
            .contains("healthy")
    );
    let recent = c
        .find(Locator::XPath(
            "//h2[.='Last reports']/following-sibling::table[1]",
        ))
        .await
        .expect("last reports");
    assert_eq!(
        recent
            .find_all(Locator::Css("tr"))
            .await
            .expect("rows")
            .len(),
        4
    );
    no_horizontal_overflow(c, "the instance page").await;
    assert_clean_console(c, "the instance page").await;

    // The latest report, rendered as the probe's text report.
    change_rows[1]
        .find(Locator::Css("td:last-child a"))
        .await
        .expect("report link")
        .click()
        .await
        .expect("click");
    assert!(
        path_of(c).await.starts_with("/reports/5e1ec7ed-"),
        "{}",
        path_of(c).await
    );
    let pre = c.find(Locator::Css("pre")).await.expect("the text report");
    let (pre_width, pre_height) = laid_out(&pre, "the text report").await;
    assert!(
        pre_height > 200.0 && pre_width > 400.0,
        "{pre_width}x{pre_height}"
    );
    let text = pre.text().await.expect("text");
    assert!(text.contains("VERDICT") && text.contains(NACL), "{text}");
    assert!(text.contains("FINDINGS"), "{text}");
    let download = c
        .find(Locator::LinkText("Download the JSON report"))
        .await
        .expect("download link");
    assert!(
        download
            .attr("href")
            .await
            .expect("href")
            .unwrap_or_default()
            .ends_with(".json")
    );
    assert_clean_console(c, "the report page").await;

    // URL filters.
    c.goto(&format!("{base}/?subnet={GOOD_SUBNET}"))
        .await
        .expect("filter");
    assert_eq!(rows(c, "div.group").await, 1);
    assert_eq!(
        rows(c, "div.group tr").await,
        4,
        "the three healthy instances"
    );
    assert_eq!(
        rows(c, "td span.problems").await,
        0,
        "no broken instance listed"
    );
    c.goto(&format!("{base}/?verdict=problems"))
        .await
        .expect("filter");
    assert_eq!(
        rows(c, "div.group").await,
        2,
        "the broken subnet and the other account"
    );
    assert_eq!(
        rows(c, "td span.healthy").await,
        0,
        "no healthy instance listed"
    );
    c.goto(&format!("{base}/?code={SG}")).await.expect("filter");
    assert_eq!(rows(c, "div.group tr").await, 2, "one instance with {SG}");
    assert!(
        c.source()
            .await
            .expect("html")
            .contains("i-0c1d2e3f4a5b6c901")
    );
    c.goto(&format!("{base}/?account=444455556666&verdict=healthy"))
        .await
        .expect("filter");
    assert_eq!(rows(c, "div.group").await, 0);
    let empty = c
        .find(Locator::XPath("//p[.='No instance matches.']"))
        .await
        .expect("empty");
    laid_out(&empty, "the empty result").await;
    assert_clean_console(c, "the filtered pages").await;

    // The filter form builds the same URL.
    c.goto(&format!("{base}/")).await.expect("fleet");
    let form = c.form(Locator::Css("form")).await.expect("form");
    form.set_by_name("subnet", BAD_SUBNET).await.expect("type");
    c.find(Locator::Css(
        "select[name='verdict'] option[value='problems']",
    ))
    .await
    .expect("the verdict choice")
    .click()
    .await
    .expect("choose problems");
    form.submit().await.expect("submit");
    // The submit returns before the next page is there: wait for its URL (at most 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut path = path_of(c).await;
    while !path.contains("verdict=problems") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        path = path_of(c).await;
    }
    assert!(
        path.contains(&format!("subnet={BAD_SUBNET}")) && path.contains("verdict=problems"),
        "{path}"
    );
    let chosen = c
        .find(Locator::Css("select[name='verdict']"))
        .await
        .expect("select")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(
        chosen.as_deref(),
        Some("problems"),
        "the form shows the filter in use"
    );
    assert_eq!(rows(c, "div.group").await, 1);
    assert_eq!(rows(c, "div.group tr").await, 4);
    assert_clean_console(c, "the form's result").await;
}
