//! The process's proxy environment, read once per run: its proxy variables in environment order
//! and, when one is set, the installed curl's version. What the clients make of them is the
//! diagnosis crate's proxy_rules (pure); this is the reading.

use crate::proxy_rules::{CurlVersion, ProxyEnv};

/// The proxy variables of this process, and the installed curl's version when a proxy variable
/// makes its rules matter.
pub fn from_process() -> ProxyEnv {
    ProxyEnv::from_environment(std::env::vars_os(), installed_curl)
}

/// Runs `curl --version` once (2 s at most; no network) and reads libcurl's version from its
/// first line. No curl, a timeout or an unreadable answer give [`CurlVersion::default`].
pub fn installed_curl() -> CurlVersion {
    curl_version_line(std::time::Duration::from_secs(2)).map_or_else(CurlVersion::default, |line| {
        CurlVersion::from_version_line(&line)
    })
}

/// The first line of `curl --version`, or `None` if curl is missing, fails
/// or takes longer than `timeout` (then it is killed).
fn curl_version_line(timeout: std::time::Duration) -> Option<String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new("curl")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(Some(_)) => return None,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = Vec::new();
    child.stdout.take()?.take(4096).read_to_end(&mut out).ok()?;
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_the_process_and_its_curl_never_fails() {
        // Whatever is installed here: an answer or the default, never a panic.
        let curl = installed_curl();
        assert!(curl.version().is_some() || curl == CurlVersion::default());
        let env = from_process();
        assert!(
            env.vars()
                .iter()
                .all(|(name, _)| name.to_ascii_lowercase().ends_with("_proxy")
                    || name == "REQUEST_METHOD")
        );
    }
}
