//! The one way a connection to PostgreSQL is made — the pool's, the bulletin listener's,
//! `loa central migrate --to`'s and the test databases' — so the URL's `sslmode` means
//! the same everywhere and every failure to connect is explained the same way.
//!
//! `sslmode=require`: TLS, the server's certificate verified ([`super::tls`]).
//! No `sslmode`, `disable` or `prefer`: plain TCP, as before TLS was supported. `prefer`
//! is not upgraded to TLS because Debian's PostgreSQL has `ssl = on` with a self-signed
//! certificate out of the box: verifying it would break set-ups that work today, and TLS
//! that is not verified protects nothing. Plain connections belong on a private network.

use std::path::Path;

use postgres::Client;
use postgres::config::SslMode;

use super::StoreError;
use super::tls::{MakeRustls, client_config};

/// Connects to one database, with or without TLS as its URL says; also the pool's
/// connection manager.
#[derive(Clone)]
pub struct Connector {
    config: postgres::Config,
    /// `None`: plain connections.
    tls: Option<MakeRustls>,
    /// The URL without its password, for messages.
    shown: String,
}

/// A connection that could not be made or kept; the message says what to do next.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl From<postgres::Error> for ConnectError {
    /// With its causes: the `postgres` crate's own words are only the kind of failure
    /// ("error performing TLS handshake", "db error"), the reason is in its source.
    fn from(e: postgres::Error) -> Self {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message = format!("{message}: {c}");
            cause = c.source();
        }
        Self(message)
    }
}

impl Connector {
    /// For `url` (`postgres://…` or libpq's `key=value` form); `ca_file` adds the CA that
    /// issued the server's certificate to the system's roots (`sslmode=require` only).
    /// Fails on a URL that does not parse or a CA file that cannot be used.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, StoreError> {
        let shown = super::redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            let hint = if url.contains("sslmode=verify") {
                ": write sslmode=require (loa always verifies the server's certificate)"
            } else {
                ""
            };
            StoreError::Unavailable(format!("database_url {shown}: {e}{hint}"))
        })?;
        let tls = match config.get_ssl_mode() {
            SslMode::Require => {
                let tls =
                    client_config(ca_file).map_err(|e| StoreError::Unavailable(e.to_string()))?;
                Some(MakeRustls::new(tls))
            }
            // Disable, Prefer (see the module's doc), and any mode added later.
            _ => {
                if let Some(ca_file) = ca_file {
                    tracing::warn!(
                        "database CA file {} is not used: the database URL {shown} has no \
                         sslmode=require, so connections are plain",
                        ca_file.display()
                    );
                }
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        Ok(Self { config, tls, shown })
    }

    /// The connection settings, to add timeouts and options to.
    pub(super) fn config_mut(&mut self) -> &mut postgres::Config {
        &mut self.config
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A new connection.
    pub fn client(&self) -> Result<Client, ConnectError> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        };
        connected.map_err(|e| self.explain(e))
    }

    /// `e`, with what to do about a server that takes only encrypted connections.
    fn explain(&self, e: postgres::Error) -> ConnectError {
        let refused_plain = self.tls.is_none()
            && e.as_db_error().is_some_and(|db| {
                db.code() == &postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    && db.message().contains("no encryption")
            });
        let e = ConnectError::from(e);
        if refused_plain {
            return ConnectError(format!(
                "{e} (the database server refuses unencrypted connections): use \
                 sslmode=require to the database URL ({}), and database_ca_file in \
                 central.toml (or LOA_DATABASE_CA) if the server's certificate is from \
                 the province's own CA",
                self.shown
            ));
        }
        e
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = Client;
    type Error = ConnectError;

    fn connect(&self) -> Result<Client, ConnectError> {
        self.client()
    }

    fn is_valid(&self, client: &mut Client) -> Result<(), ConnectError> {
        client.simple_query("")?;
        Ok(())
    }

    fn has_broken(&self, client: &mut Client) -> bool {
        client.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_require_means_tls() {
        for (url, tls) in [
            ("postgres://loa@db/loa", false),
            ("postgres://loa@db/loa?sslmode=disable", false),
            ("postgres://loa@db/loa?sslmode=prefer", false),
            ("postgres://loa@db/loa?sslmode=require", true),
            ("host=db user=loa sslmode=require", true),
        ] {
            let connector = Connector::new(url, None).unwrap();
            assert_eq!(connector.tls.is_some(), tls, "{url}");
            let mode = connector.config.get_ssl_mode();
            assert_eq!(mode, if tls { SslMode::Require } else { SslMode::Disable }, "{url}");
        }
    }

    #[test]
    fn a_verify_mode_is_answered_with_the_one_to_write() {
        let err = Connector::new("postgres://loa:pw@db/loa?sslmode=verify-full", None)
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(message.contains("sslmode=require"), "{message}");
        assert!(!message.contains("pw"), "{message}");
    }

    #[test]
    fn a_ca_file_is_read_only_for_tls() {
        let missing = Path::new("/nonexistent/db-ca.pem");
        Connector::new("postgres://loa@db/loa", Some(missing)).unwrap();
        let err = Connector::new("postgres://loa@db/loa?sslmode=require", Some(missing))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("/nonexistent/db-ca.pem"), "{err}");
    }
}
