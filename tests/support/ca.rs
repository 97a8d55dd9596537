//! A throw-away certificate authority (rcgen) and the leaves it issues.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct TestCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate: `cert_chain_pem` is the leaf then the CA, `key_pem` its PKCS#8 key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

fn validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
}

/// The parameters of every test CA: subject CN=common_name, O=common_name, unconstrained CA.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    params
}

impl TestCa {
    /// A self-signed CA with subject CN=common_name, O=common_name.
    pub fn new(common_name: &str) -> TestCa {
        let params = ca_params(common_name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A CA made earlier by `new(common_name)` and saved with `cert_pem()` and `key_pem()`
    /// (so that a long-running lab keeps one CA across server restarts). Leaves it issues
    /// chain to that saved certificate: same subject, same key, same key identifier.
    pub fn from_pem(common_name: &str, cert_pem: &str, key_pem: &str) -> Result<TestCa, String> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("CA certificate PEM: {e}"))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("CA key PEM: {e}"))?;
        Ok(TestCa {
            cert_pem: cert_pem.to_string(),
            cert_der,
            issuer: Issuer::new(ca_params(common_name), key),
        })
    }

    /// The CA's private key, PEM (PKCS#8), for `from_pem`.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// A server leaf signed by this CA with these SANs (DNS names, wildcards, or IP literals);
    /// CN = the first name.
    pub fn issue(&self, dns_names: &[&str]) -> Leaf {
        let names: Vec<String> = dns_names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)
            .unwrap_or_else(|e| panic!("bad SAN list {dns_names:?}: {e}"));
        if let Some(first) = dns_names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `cert_pem()` to `dir/file_name` and returns that path.
    pub fn write_pem(&self, dir: &Path, file_name: &str) -> PathBuf {
        let path = dir.join(file_name);
        std::fs::write(&path, self.cert_pem.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// A root store holding only this CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der()).expect("add CA to root store");
        roots
    }

    /// A rustls client config (aws-lc-rs) that trusts only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        Arc::new(config)
    }
}

impl Leaf {
    pub fn cert_chain_der(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("parse leaf chain PEM")
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("parse leaf key PEM")
    }

    /// A rustls server config (aws-lc-rs, no ALPN, no client auth) serving this leaf.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.cert_chain_der(), self.key_der())
            .expect("leaf cert/key");
        Arc::new(config)
    }
}
