//! The data of the per-client proxy decisions (the rules that produce them live in the probe).

/// One of the HTTP clients whose proxy choice is modelled.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum HttpClientKind {
    /// The AWS SDK for Rust's default HTTPS client (aws-smithy-http-client + hyper-util).
    AwsSdkRust,
    /// curl / libcurl.
    Curl,
    /// botocore, used by the AWS CLI and boto3.
    Botocore,
}

impl HttpClientKind {
    /// Every modelled client, in report order.
    pub const ALL: [HttpClientKind; 3] = [
        HttpClientKind::AwsSdkRust,
        HttpClientKind::Curl,
        HttpClientKind::Botocore,
    ];

    /// A human-readable name.
    pub fn label(self) -> &'static str {
        match self {
            HttpClientKind::AwsSdkRust => "AWS SDK for Rust",
            HttpClientKind::Curl => "curl",
            HttpClientKind::Botocore => "botocore (AWS CLI, boto3)",
        }
    }
}

/// The proxy a client would send a request to.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ProxyChoice {
    /// The variable the proxy came from, e.g. "https_proxy".
    pub variable: String,
    /// The proxy URL as written, with any user and password replaced by "***".
    pub url_redacted: String,
    /// The proxy host as the client reads it (IPv6 without brackets).
    pub host: String,
    /// The proxy port, with each client's default when none is written.
    pub port: u16,
    /// The proxy scheme as the client reads it: "http", "https", "socks5", ...
    pub scheme: String,
}

/// Whether one client sends one URL through a proxy, and why.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ProxyDecision {
    /// The client modelled.
    pub client: HttpClientKind,
    /// The target URL (any password redacted).
    pub url: String,
    /// `None` means a direct connection. `Some` means the client will not
    /// connect directly; `fails` says whether it can use that proxy at all.
    pub proxy: Option<ProxyChoice>,
    /// The NO_PROXY entry (as written, without surrounding blanks) that made it direct, if any.
    pub bypass_entry: Option<String>,
    /// True when the client picks a proxy value it cannot use, so its
    /// requests fail: a SOCKS proxy for the AWS SDK and botocore, a value
    /// curl refuses, a value botocore or urllib3 misreads (`HTTP://`,
    /// `ftp://`, a blank).
    #[serde(default)]
    pub fails: bool,
    /// The URL the client checked NO_PROXY for, when it is not `url`:
    /// botocore checks its client's endpoint URL once, not each request URL.
    #[serde(default)]
    pub checked_url: Option<String>,
    /// The client version whose rules were applied, where they differ by
    /// version (curl: the installed one, or the assumed default).
    #[serde(default)]
    pub client_version: Option<String>,
    /// One sentence: which variable(s) and which rule decided.
    pub explanation: String,
}
