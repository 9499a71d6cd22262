//! TLS to PostgreSQL on the rustls + ring already built for HTTPS (no OpenSSL, no second
//! TLS stack): the `postgres` crate's connector traits over [`tokio_rustls`].
//!
//! The server's certificate is always verified, chain and host name, against the
//! system's roots plus the province's own CA (`database_ca_file`): a TLS connection that
//! anyone on the path could intercept would protect nothing, so unlike libpq's
//! `sslmode=require` there is no "encrypted but unverified" mode. A failed verification
//! is explained here, where the host name and the reason are both known.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// Where to read this setting from, for messages that tell the user what to change.
const CA_SETTING: &str = "database_ca_file in central.toml (or LOA_DATABASE_CA)";

/// Why TLS could not be set up or did not verify; the message says what to do next.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The rustls settings for connections to the database: the system's roots, and the
/// certificates in `ca_file` when one is given. Fails on a CA file that cannot be read
/// or holds no certificate (naming the file), never silently trusting fewer roots.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable entries of the system store are skipped: the rest still verify.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            roots.add(cert).map_err(|e| {
                TlsError(format!(
                    "database CA file {}: not a usable CA certificate ({e}): give the PEM \
                     certificate of the CA that issued the database server's certificate",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS settings for the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The most a database CA file may hold: a whole system bundle of every public CA is
/// about 220 KB; a file past this is the wrong file, refused unread.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// The PEM certificates in `path` (at most [`MAX_CA_FILE_BYTES`]); at least one.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use std::io::Read;
    let shown = path.display();
    let unreadable = |e: io::Error| {
        TlsError(format!("cannot read the database CA file {shown}: {e}: check {CA_SETTING}"))
    };
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem))
        .map_err(unreadable)?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(TlsError(format!(
            "the database CA file {shown} is larger than {MAX_CA_FILE_BYTES} bytes (1 MiB): \
             give the PEM file of the CA that issued the database server's certificate in \
             {CA_SETTING}"
        )));
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(TlsError(format!(
            "the database CA file {shown} holds no certificate: give the PEM file \
             (-----BEGIN CERTIFICATE-----) of the CA that issued the database server's \
             certificate in {CA_SETTING}"
        ))),
        Err(e) => Err(TlsError(format!(
            "the database CA file {shown} is not a PEM certificate file ({e}): give the CA \
             certificate that issued the database server's certificate in {CA_SETTING}"
        ))),
    }
}

/// Makes a TLS connector per connection attempt, for the host being connected to.
#[derive(Clone)]
pub(super) struct MakeRustls(TlsConnector);

impl MakeRustls {
    pub(super) fn new(config: Arc<rustls::ClientConfig>) -> Self {
        Self(TlsConnector::from(config))
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, TlsError> {
        Ok(RustlsConnect { connector: self.0.clone(), host: host.to_string() })
    }
}

/// One TLS handshake with the server at `host` (the name its certificate must hold).
pub(super) struct RustlsConnect {
    connector: TlsConnector,
    host: String,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                TlsError(format!(
                    "cannot check the database server's certificate for {:?} ({e}): name \
                     the server by a host name or IP address in the database URL",
                    self.host
                ))
            })?;
            match self.connector.connect(name, stream).await {
                Ok(stream) => Ok(RustlsStream(stream)),
                Err(e) => Err(explain(&self.host, e)),
            }
        })
    }
}

/// A handshake's failure in words that say what to do next.
fn explain(host: &str, e: io::Error) -> TlsError {
    use rustls::CertificateError as Cert;
    let Some(rustls::Error::InvalidCertificate(why)) =
        e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return TlsError(format!("TLS with the database server {host}: {e}"));
    };
    match why {
        Cert::NotValidForName | Cert::NotValidForNameContext { .. } => TlsError(format!(
            "the database server's certificate is not trusted for {host}: it does not name \
             {host} ({e}); connect by a name the certificate holds, or have the server's \
             certificate issued for {host}"
        )),
        Cert::Expired | Cert::ExpiredContext { .. } => TlsError(format!(
            "the database server {host}'s certificate is not trusted: it has expired ({e}); \
             renew the server's certificate"
        )),
        _ => TlsError(format!(
            "the database server {host}'s certificate is not trusted ({e}): give the CA \
             that issued it in {CA_SETTING}"
        )),
    }
}

/// A TLS connection to the server.
pub(super) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM without `-PLUS`. The verified certificate already
    /// rules out a server in the middle.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_empty_or_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n")
            .unwrap();
        for path in [&missing, &empty, &garbage] {
            let err = client_config(Some(path)).expect_err("refused");
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("database_ca_file"), "{message}");
        }
    }

    /// At the bound a file is read (and refused for what it holds); one byte past it is
    /// refused for its size, unread.
    #[test]
    fn a_ca_file_past_one_mebibyte_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("at.pem");
        std::fs::write(&at, vec![b'\n'; MAX_CA_FILE_BYTES as usize]).unwrap();
        let message = client_config(Some(&at)).expect_err("no certificate").to_string();
        assert!(message.contains("holds no certificate"), "{message}");
        let past = dir.path().join("past.pem");
        std::fs::write(&past, vec![b'\n'; MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        let message = client_config(Some(&past)).expect_err("too large").to_string();
        assert!(message.contains("larger than 1048576 bytes"), "{message}");
        assert!(message.contains("database_ca_file"), "{message}");
    }

    #[test]
    fn a_ca_file_with_a_certificate_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        client_config(Some(&path)).unwrap();
    }
}
