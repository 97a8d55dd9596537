//! TLS with rustls: the host's trust roots plus AWS_CA_BUNDLE / SSL_CERT_FILE, and a verifier
//! that keeps the presented chain even when verification fails, so the report can say who
//! issued the certificate a middlebox presented.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::report::{CertificateInfo, TlsOutcome};
use vpce_probe_diagnosis::reading::tls::issuer_expected;

/// System roots plus the extra PEM files; what of the system's could not be loaded, and the
/// first extra file that is not a usable PEM bundle.
fn root_store(
    extra_pem_files: &[std::path::PathBuf],
) -> (RootCertStore, Vec<String>, Option<String>) {
    let mut roots = RootCertStore::empty();
    let mut load_errors = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for e in native.errors {
        load_errors.push(e.to_string());
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    let mut extra_error = None;
    for path in extra_pem_files {
        match pem_bundle(path) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(e) => {
                load_errors.push(e.clone());
                extra_error.get_or_insert(e);
            }
        }
    }
    (roots, load_errors, extra_error)
}

/// The certificates of a CA bundle a person named (AWS_CA_BUNDLE, SSL_CERT_FILE, a sink's
/// ca_file), read through [`crate::fsread`]; see [`pem_certificates`].
pub fn pem_bundle(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = crate::fsread::read(path, crate::fsread::MAX_CA_BUNDLE)?;
    pem_certificates(&bytes).map_err(|e| {
        format!(
            "{}: not a usable PEM bundle: {e}",
            crate::escape::shown_path(path)
        )
    })
}

/// Every certificate of a PEM bundle, each parsed as a trust anchor; refused whole if any
/// section is broken (a truncated file, bad base64, DER that is no certificate) or there is
/// none. The AWS SDK's HTTP client panics on such a bundle, so it is checked before.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(i, c)| c.map_err(|e| format!("certificate {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    for (i, cert) in certs.iter().enumerate() {
        RootCertStore::empty().add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} is not a valid X.509 certificate: {e}",
                i + 1
            )
        })?;
    }
    Ok(certs)
}

/// A verifying client configuration (for the report sinks): system roots plus the extra PEM
/// files; a file that is not a usable bundle is an error here, since the sink would fail on
/// every send.
pub fn client_config(
    extra_pem_files: &[std::path::PathBuf],
) -> Result<rustls::ClientConfig, String> {
    let (roots, _, extra_error) = root_store(extra_pem_files);
    if let Some(e) = extra_error {
        return Err(format!("trust roots: {e}"));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

#[derive(Clone)]
pub struct TlsContext {
    provider: Arc<CryptoProvider>,
    verifier: Arc<WebPkiServerVerifier>,
    verified_chains: Arc<VerifiedChains>,
    pub roots: usize,
    pub load_errors: Vec<String>,
}

impl TlsContext {
    /// System roots plus the extra PEM files (AWS_CA_BUNDLE, SSL_CERT_FILE). A broken extra
    /// file is an error: the applications that read it fail too (the AWS SDK for Rust panics).
    pub fn new(extra_pem_files: &[std::path::PathBuf]) -> Result<Self, String> {
        let provider = Arc::new(sdk_cipher_suites(
            rustls::crypto::aws_lc_rs::default_provider(),
        ));
        let (roots, load_errors, extra_error) = root_store(extra_pem_files);
        if let Some(e) = extra_error {
            return Err(e);
        }
        let count = roots.len();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("no usable trust roots: {e}"))?;
        Ok(TlsContext {
            provider,
            verifier,
            verified_chains: Arc::default(),
            roots: count,
            load_errors,
        })
    }

    /// Handshake on an established TCP stream; `expect_issuers` are substrings of a genuine issuer.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        name: &str,
        timeout: Duration,
        expect_issuers: &[String],
    ) -> HandshakeResult {
        let started = Instant::now();
        let capture = Arc::new(CapturingVerifier {
            inner: self.verifier.clone(),
            verified_chains: self.verified_chains.clone(),
            chain: Mutex::new(Vec::new()),
        });
        let config = match rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(capture.clone())
                .with_no_client_auth(),
            Err(e) => {
                return HandshakeResult::failed(
                    TlsOutcome::HandshakeFailed,
                    e.to_string(),
                    started,
                );
            }
        };
        let server_name = match ServerName::try_from(name.to_string()) {
            Ok(n) => n,
            Err(e) => {
                return HandshakeResult::failed(
                    TlsOutcome::HandshakeFailed,
                    e.to_string(),
                    started,
                );
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let result = tokio::time::timeout(timeout, connector.connect(server_name, stream)).await;
        let chain = capture
            .chain
            .lock()
            .map(|c| c.iter().map(|der| describe_certificate(der)).collect())
            .unwrap_or_default();
        let mut out = HandshakeResult {
            outcome: TlsOutcome::Verified,
            error: None,
            protocol: None,
            cipher_suite: None,
            chain,
            elapsed: started.elapsed(),
            stream: None,
        };
        match result {
            Err(_) => {
                out.outcome = TlsOutcome::Timeout;
                out.error = Some(format!("no handshake within {} ms", timeout.as_millis()));
            }
            Ok(Err(e)) => {
                out.outcome = classify_error(&e);
                out.error = Some(e.to_string());
            }
            Ok(Ok(tls)) => {
                let (_, conn) = tls.get_ref();
                out.protocol = conn.protocol_version().map(|v| format!("{v:?}"));
                out.cipher_suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                if issuer_expected(&out.chain, expect_issuers) {
                    out.stream = Some(tls);
                } else {
                    out.outcome = TlsOutcome::UnexpectedIssuer;
                }
            }
        }
        out
    }
}

pub struct HandshakeResult {
    pub outcome: TlsOutcome,
    pub error: Option<String>,
    pub protocol: Option<String>,
    pub cipher_suite: Option<String>,
    pub chain: Vec<CertificateInfo>,
    pub elapsed: Duration,
    /// The verified connection, for the calls (net/handoff.rs); None unless `Verified`.
    pub stream: Option<tokio_rustls::client::TlsStream<TcpStream>>,
}

impl HandshakeResult {
    fn failed(outcome: TlsOutcome, error: String, started: Instant) -> Self {
        HandshakeResult {
            outcome,
            error: Some(error),
            protocol: None,
            cipher_suite: None,
            chain: Vec::new(),
            elapsed: started.elapsed(),
            stream: None,
        }
    }
}

/// The cipher suites the AWS SDK's HTTP client offers (aws-smithy-http-client restricts
/// rustls's defaults to these): a verified connection is handed to the signed calls, so it
/// must be one the SDK's client could have made itself.
fn sdk_cipher_suites(base: CryptoProvider) -> CryptoProvider {
    use rustls::CipherSuite as S;
    const SDK_SUITES: &[S] = &[
        S::TLS13_AES_256_GCM_SHA384,
        S::TLS13_AES_128_GCM_SHA256,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let cipher_suites = SDK_SUITES
        .iter()
        .filter_map(|wanted| {
            base.cipher_suites
                .iter()
                .find(|s| s.suite() == *wanted)
                .copied()
        })
        .collect();
    CryptoProvider {
        cipher_suites,
        ..base
    }
}

fn classify_error(e: &std::io::Error) -> TlsOutcome {
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return TlsOutcome::HandshakeFailed;
    };
    match inner {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsOutcome::WrongName
            }
            CertificateError::UnknownIssuer => TlsOutcome::UntrustedIssuer,
            _ => TlsOutcome::InvalidCertificate,
        },
        _ => TlsOutcome::HandshakeFailed,
    }
}

pub fn describe_certificate(der: &CertificateDer<'_>) -> CertificateInfo {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => {
            let dns_names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            CertificateInfo {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                dns_names,
                not_after: Some(cert.validity().not_after.to_string()),
            }
        }
        Err(e) => CertificateInfo {
            subject: format!("(unparsable certificate: {e})"),
            issuer: String::new(),
            dns_names: Vec::new(),
            not_after: None,
        },
    }
}

/// How long a verified chain is taken as verified: longer than a run (its deadline), so a
/// chain is verified once per run, short enough that a certificate expiring in between (or
/// an agent's context kept by mistake) is seen on the next full verification.
const VERIFIED_CHAIN_TTL_SECS: u64 = 60;

/// Chains (the end entity, then the intermediates, as presented) that verified up to a trust
/// anchor of this context, and when. S3 presents one wildcard certificate for every bucket
/// name, so a probe of 50 buckets built the same path and checked the same signatures 50
/// times (~5% of its CPU); the name is still checked on every handshake, and a chain that
/// failed is never remembered.
#[derive(Debug, Default)]
struct VerifiedChains {
    at: Mutex<HashMap<Vec<CertificateDer<'static>>, UnixTime>>,
    /// Full verifications (path to a trust anchor and its signatures) made: what a test counts.
    full: AtomicUsize,
}

impl VerifiedChains {
    fn fresh(&self, chain: &[CertificateDer<'static>], now: UnixTime) -> bool {
        let Ok(at) = self.at.lock() else {
            return false;
        };
        at.get(chain).is_some_and(|then| {
            now.as_secs() >= then.as_secs()
                && now.as_secs() - then.as_secs() <= VERIFIED_CHAIN_TTL_SECS
        })
    }

    fn remember(&self, chain: Vec<CertificateDer<'static>>, now: UnixTime) {
        if let Ok(mut at) = self.at.lock() {
            at.insert(chain, now);
        }
    }
}

#[derive(Debug)]
struct CapturingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verified_chains: Arc<VerifiedChains>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        if let Ok(mut chain) = self.chain.lock() {
            chain.clone_from(&presented);
        }
        if self.verified_chains.fresh(&presented, now) {
            // What rustls's own verifier does after the path: the name, on every handshake.
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_name(&cert, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.verified_chains.full.fetch_add(1, Ordering::Relaxed);
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.verified_chains.remember(presented, now);
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    const S3_WILDCARD: &str = "*.s3.eu-west-1.amazonaws.com";
    const BUCKET: &str = "bucket.s3.eu-west-1.amazonaws.com";
    const OTHER_BUCKET: &str = "other-bucket.s3.eu-west-1.amazonaws.com";

    /// A CA and a leaf it issued for `names`: (CA DER, leaf DER).
    fn ca_and_leaf(names: &[&str]) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        (ca_cert.der().clone(), leaf.der().clone())
    }

    fn verifier(root: &CertificateDer<'static>) -> CapturingVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(root.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        CapturingVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier"),
            verified_chains: Arc::default(),
            chain: Mutex::new(Vec::new()),
        }
    }

    fn verify(v: &CapturingVerifier, leaf: &CertificateDer<'_>, name: &str, now: UnixTime) -> bool {
        let name = ServerName::try_from(name.to_string()).expect("name");
        v.verify_server_cert(leaf, &[], &name, &[], now).is_ok()
    }

    #[test]
    fn a_verified_chain_is_verified_once_and_the_name_every_time() {
        let (root, leaf) = ca_and_leaf(&[S3_WILDCARD]);
        let v = verifier(&root);
        let now = UnixTime::now();
        assert!(verify(&v, &leaf, BUCKET, now));
        assert!(verify(&v, &leaf, OTHER_BUCKET, now));
        assert_eq!(v.verified_chains.full.load(Ordering::Relaxed), 1);
        // The remembered chain does not stand for a name the certificate does not cover.
        assert!(!verify(&v, &leaf, "dynamodb.eu-west-1.amazonaws.com", now));
        assert!(!verify(
            &v,
            &leaf,
            "s3.eu-west-1.amazonaws.com.evil.example",
            now
        ));
        assert_eq!(v.chain.lock().expect("chain").first(), Some(&leaf));
    }

    #[test]
    fn a_chain_that_failed_is_never_remembered() {
        let (_, untrusted_leaf) = ca_and_leaf(&[S3_WILDCARD]);
        let (root, _) = ca_and_leaf(&["unused.example"]);
        let v = verifier(&root);
        let now = UnixTime::now();
        for _ in 0..2 {
            assert!(!verify(&v, &untrusted_leaf, BUCKET, now));
        }
        assert_eq!(v.verified_chains.full.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_remembered_chain_is_verified_again_after_its_time() {
        let (root, leaf) = ca_and_leaf(&[S3_WILDCARD]);
        let v = verifier(&root);
        let now = UnixTime::now();
        assert!(verify(&v, &leaf, BUCKET, now));
        let later = UnixTime::since_unix_epoch(Duration::from_secs(
            now.as_secs() + VERIFIED_CHAIN_TTL_SECS + 1,
        ));
        assert!(verify(&v, &leaf, BUCKET, later));
        assert_eq!(v.verified_chains.full.load(Ordering::Relaxed), 2);
        // rcgen's default validity ends in 4096: after it, the full verification says expired.
        let expired = UnixTime::since_unix_epoch(Duration::from_secs(420_000_000_000));
        assert!(!verify(&v, &leaf, BUCKET, expired));
    }
}
