//! HTTPS for central: rustls (ring provider) in front of the same router
//! ([`super::server`] runs the handshakes), and the province's own small PKI.
//!
//! `loa central init --host NAME…` (or `loa central tls --host NAME…` later) makes a
//! private CA for the province and a certificate for central signed by it, in
//! `data_dir/tls/`; central serves HTTPS with them whenever `tls_cert`/`tls_key` are not
//! set. Stations and the CLI pin that CA (`ca_cert`), and nothing else: no web roots.
//! Signatures still decide what plays — TLS keeps tokens secret on the wire.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::CentralError;

/// Folder of the data directory holding the province CA and central's certificate.
pub const TLS_DIR: &str = "tls";
/// The CA certificate every station and operator pins (`ca_cert`).
pub const CA_FILE: &str = "ca.pem";
/// The CA's private key (0600): keep a copy offline; only re-issuing needs it.
pub const CA_KEY_FILE: &str = "ca.key";
/// Central's certificate (signed by the CA) and key (0600).
pub const CERT_FILE: &str = "central.pem";
pub const KEY_FILE: &str = "central.key";
/// The CA is valid for 10 years; central's certificate for 825 days (what clients
/// accept), re-issued with `loa central tls`.
const CA_DAYS: i64 = 3650;
const CERT_DAYS: i64 = 825;

/// What [`issue`] made.
#[derive(Debug, Clone)]
pub struct Issued {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the CA certificate (DER), `AB:CD:…`: read it to whoever installs a
    /// station, so they can check the `ca_cert` they were handed.
    pub ca_fingerprint: String,
    /// Every name and address the certificate is valid for.
    pub hosts: Vec<String>,
    /// Whether the CA was made now (else an existing one signed the new certificate).
    pub new_ca: bool,
}

/// The CA's fixed parameters: the same each time, so a certificate re-issued later
/// names the same issuer and key identifier as the CA certificate stations hold.
fn ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "loa province CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params
}

/// Sets `params` valid from an hour ago (a station whose clock is a little behind still
/// accepts it) for `days` days.
fn validity(params: &mut rcgen::CertificateParams, now_unix: i64, days: i64) -> Result<(), String> {
    let at = |unix: i64| time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| e.to_string());
    params.not_before = at(now_unix - 3600)?;
    params.not_after = at(now_unix + days * 86_400)?;
    Ok(())
}

/// Whether `host` may go in a certificate: an IP address, or a DNS name of letters,
/// digits, `-` and dots.
fn valid_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }))
}

/// Makes the province CA in `data_dir/tls/` when there is none, and (again) central's
/// certificate for `hosts` plus `localhost` and `127.0.0.1` (so the CLI on central's own
/// machine can use HTTPS too). Private keys are written 0600.
pub fn issue(data_dir: &Path, hosts: &[String], now_unix: i64) -> Result<Issued, CentralError> {
    let dir = data_dir.join(TLS_DIR);
    let fail = |path: &Path, message: String| CentralError::Tls {
        path: path.display().to_string(),
        message,
    };
    for host in hosts {
        if !valid_host(host) {
            return Err(fail(
                &dir,
                format!("{host:?} is not a host name or IP address for the certificate"),
            ));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e.to_string()))?;
    let (ca_cert, ca_key) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
    let new_ca = !ca_key.exists();
    let ca_keypair = if new_ca {
        let key = rcgen::KeyPair::generate().map_err(|e| fail(&ca_key, e.to_string()))?;
        let mut params = ca_params();
        validity(&mut params, now_unix, CA_DAYS).map_err(|e| fail(&ca_cert, e))?;
        let cert = params.self_signed(&key).map_err(|e| fail(&ca_cert, e.to_string()))?;
        write_private(&ca_key, &key.serialize_pem()).map_err(|e| fail(&ca_key, e.to_string()))?;
        write_public(&ca_cert, &cert.pem()).map_err(|e| fail(&ca_cert, e.to_string()))?;
        key
    } else {
        let pem = std::fs::read_to_string(&ca_key).map_err(|e| fail(&ca_key, e.to_string()))?;
        rcgen::KeyPair::from_pem(&pem).map_err(|e| fail(&ca_key, format!("not a key: {e}")))?
    };
    let issuer = rcgen::Issuer::new(ca_params(), ca_keypair);
    let mut names: Vec<String> = hosts.to_vec();
    for local in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == local) {
            names.push(local.to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names.clone())
        .map_err(|e| fail(&dir, format!("host names: {e}")))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0].clone());
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, now_unix, CERT_DAYS).map_err(|e| fail(&dir, e))?;
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let key = rcgen::KeyPair::generate().map_err(|e| fail(&key_path, e.to_string()))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| fail(&cert_path, e.to_string()))?;
    write_private(&key_path, &key.serialize_pem()).map_err(|e| fail(&key_path, e.to_string()))?;
    write_public(&cert_path, &cert.pem()).map_err(|e| fail(&cert_path, e.to_string()))?;
    Ok(Issued {
        ca_fingerprint: fingerprint(&ca_cert)?,
        ca_cert,
        cert: cert_path,
        key: key_path,
        hosts: names,
        new_ca,
    })
}

/// The SHA-256 fingerprint (`AB:CD:…`) of the first certificate in the PEM file `path`.
pub fn fingerprint(path: &Path) -> Result<String, CentralError> {
    let bad = |message: String| CentralError::Tls { path: path.display().to_string(), message };
    let der = CertificateDer::from_pem_file(path).map_err(|e| bad(e.to_string()))?;
    let digest = sha2::Sha256::digest(der.as_ref());
    Ok(digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn write_public(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}
/// Reads a PEM certificate chain and private key into an acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, CentralError> {
    let bad = |path: &Path, what: &str| CentralError::Tls {
        path: path.display().to_string(),
        message: what.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate found (expected PEM `BEGIN CERTIFICATE`)"));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, &format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, &e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(cert, &format!("certificate and key do not fit together: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_rustls::rustls::client::danger::ServerCertVerifier;

    #[test]
    fn init_makes_a_ca_and_a_certificate_that_rustls_accepts_and_keeps_the_ca_on_reissue() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_796_000_000;
        let first =
            issue(dir.path(), &["central.example.vn".into(), "10.0.0.5".into()], now).unwrap();
        assert!(first.new_ca);
        assert_eq!(first.hosts, ["central.example.vn", "10.0.0.5", "localhost", "127.0.0.1"]);
        assert_eq!(first.ca_fingerprint.len(), 32 * 3 - 1);
        acceptor(&first.cert, &first.key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for key in [&first.key, &dir.path().join(TLS_DIR).join(CA_KEY_FILE)] {
            assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // The certificate verifies against the CA, for the names given.
        let roots = {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from_pem_file(&first.ca_cert).unwrap()).unwrap();
            Arc::new(roots)
        };
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let cert = CertificateDer::from_pem_file(&first.cert).unwrap();
        let at = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            now as u64,
        ));
        for name in ["central.example.vn", "10.0.0.5", "localhost"] {
            let name = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier.verify_server_cert(&cert, &[], &name, &[], at).unwrap();
        }
        let wrong = rustls::pki_types::ServerName::try_from("other.example.vn").unwrap();
        assert!(verifier.verify_server_cert(&cert, &[], &wrong, &[], at).is_err());
        // Re-issued for another name: same CA (stations keep their ca_cert).
        let again = issue(dir.path(), &["new.example.vn".into()], now).unwrap();
        assert!(!again.new_ca);
        assert_eq!(again.ca_fingerprint, first.ca_fingerprint);
        let cert = CertificateDer::from_pem_file(&again.cert).unwrap();
        let name = rustls::pki_types::ServerName::try_from("new.example.vn").unwrap();
        verifier.verify_server_cert(&cert, &[], &name, &[], at).unwrap();
        // Nonsense names are refused before anything is written.
        assert!(issue(dir.path(), &["bad host/../x".into()], now).is_err());
    }
}
