//! How an alert reaches a person: a webhook (one JSON POST per event; a 2xx answer is
//! success) and e-mail (SMTP with TLS — implicit, or STARTTLS — through `lettre` on
//! rustls + ring, trusting the system's roots plus `smtp_ca_cert`).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use super::AlertsConfig;
use crate::store::Notification;

pub const WEBHOOK: &str = "webhook";
pub const EMAIL: &str = "email";
/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a notification did not go out.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("e-mail: {0}")]
    Email(String),
    #[error("channel {0:?} is not configured any more")]
    NotConfigured(String),
}

/// The JSON a webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WebhookBody {
    /// `raised` or `cleared`.
    pub event: String,
    pub key: String,
    pub kind: String,
    pub station: Option<String>,
    pub detail: String,
    pub raised_at: chrono::DateTime<chrono::Utc>,
    pub cleared_at: Option<chrono::DateTime<chrono::Utc>>,
    /// One line for chat rooms: `[loa] RAISED offline:tri-ton — no heartbeat …`.
    pub text: String,
}

/// Sends notifications over the configured channels.
pub struct Sender {
    webhook: Option<(reqwest::Client, String)>,
    email: Option<Email>,
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

fn summary(n: &Notification) -> String {
    format!(
        "[loa] {} {} — {}",
        n.event.to_uppercase(),
        n.alert.key,
        crate::protocol::text::printable(&n.alert.detail)
    )
}

impl Sender {
    /// From `[alerts]`; a channel that cannot be set up is logged and left out.
    pub fn new(config: &AlertsConfig) -> Self {
        let webhook = config.webhook_url.as_ref().and_then(|url| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(config.webhook_timeout_secs))
                .build();
            match client {
                Ok(c) => Some((c, url.clone())),
                Err(e) => {
                    tracing::error!("alerts: cannot make the webhook client: {e}");
                    None
                }
            }
        });
        let email = match email(config) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("alerts: e-mail is not usable: {e}");
                None
            }
        };
        Self { webhook, email }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        match n.channel.as_str() {
            WEBHOOK => {
                let (client, url) = self
                    .webhook
                    .as_ref()
                    .ok_or_else(|| NotifyError::NotConfigured(n.channel.clone()))?;
                let body = WebhookBody {
                    event: n.event.clone(),
                    key: n.alert.key.clone(),
                    kind: n.alert.kind.clone(),
                    station: n.alert.station_id.clone(),
                    detail: n.alert.detail.clone(),
                    raised_at: n.alert.raised_at,
                    cleared_at: n.alert.cleared_at,
                    text: summary(n),
                };
                let response = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| NotifyError::Webhook(e.to_string()))?;
                if !response.status().is_success() {
                    return Err(NotifyError::Webhook(format!(
                        "{url} answered {}",
                        response.status()
                    )));
                }
                Ok(())
            }
            EMAIL => {
                let email = self
                    .email
                    .as_ref()
                    .ok_or_else(|| NotifyError::NotConfigured(n.channel.clone()))?;
                // ASCII only (ids and the event), so no mail client shows it encoded.
                let subject = format!("[loa] {} {}", n.event.to_uppercase(), n.alert.key);
                let mut builder = Message::builder().from(email.from.clone()).subject(subject);
                for to in &email.to {
                    builder = builder.to(to.clone());
                }
                let text = format!(
                    "{}\n\nalert:   {}\nkind:    {}\nstation: {}\nraised:  {}\n{}\n-- \nloa central (`loa status --problems` lists what is open)\n",
                    crate::protocol::text::printable(&n.alert.detail),
                    n.alert.key,
                    n.alert.kind,
                    n.alert.station_id.as_deref().unwrap_or("-"),
                    n.alert.raised_at.to_rfc3339(),
                    n.alert
                        .cleared_at
                        .map(|c| format!("cleared: {}\n", c.to_rfc3339()))
                        .unwrap_or_default(),
                );
                let message = builder
                    .header(ContentType::TEXT_PLAIN)
                    .body(text)
                    .map_err(|e| NotifyError::Email(e.to_string()))?;
                email
                    .transport
                    .send(message)
                    .await
                    .map_err(|e| NotifyError::Email(e.to_string()))?;
                Ok(())
            }
            other => Err(NotifyError::NotConfigured(other.to_string())),
        }
    }
}

fn email(config: &AlertsConfig) -> Result<Option<Email>, String> {
    let Some(host) = &config.smtp_host else { return Ok(None) };
    let mut tls = TlsParameters::builder(host.clone());
    if let Some(path) = &config.smtp_ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read smtp_ca_cert {}: {e}", path.display()))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("smtp_ca_cert {}: {e}", path.display()))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls.build_rustls().map_err(|e| e.to_string())?;
    let (mode, port) = match config.smtp_tls {
        super::SmtpTls::Implicit => (Tls::Wrapper(tls), 465),
        super::SmtpTls::Starttls => (Tls::Required(tls), 587),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(config.smtp_port.unwrap_or(port))
        .tls(mode)
        .timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(password)) = (&config.smtp_username, &config.smtp_password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let from: Mailbox = config
        .email_from
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("email_from: {e}"))?;
    let to = config
        .email_to
        .iter()
        .map(|a| a.parse::<Mailbox>().map_err(|e| format!("email_to {a:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Email { transport: builder.build(), from, to }))
}
