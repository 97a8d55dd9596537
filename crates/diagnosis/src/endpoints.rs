//! Where a name's calls connect, as the probe's endpoint rules (the probe's endpoints.rs) found
//! it: what diagnosis reads of them.

/// Where a name's calls connect: the endpoint URL's port (443 unless an `endpoint_url` says
/// otherwise) and whether they speak TLS (`https://`), as the SDKs connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameSocket {
    pub port: u16,
    pub tls: bool,
}

impl Default for NameSocket {
    fn default() -> Self {
        NameSocket {
            port: 443,
            tls: true,
        }
    }
}

impl NameSocket {
    /// The URL the clients send to for `host` (the proxy rules decide on it, ports included).
    pub fn url(&self, host: &str) -> Option<url::Url> {
        let scheme = if self.tls { "https" } else { "http" };
        url::Url::parse(&format!("{scheme}://{host}:{}/", self.port)).ok()
    }
}
