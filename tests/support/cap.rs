//! CAP alerts as a province's warning system writes them, for tests that post them to
//! central.

/// An alert about a flood on the Hậu river, from `canhbao@angiang.gov.vn`; change any
/// field with struct update syntax (`Alert { severity: "Extreme", ..Alert::new(…) }`).
pub struct Alert {
    pub id: &'static str,
    pub status: &'static str,
    pub msg_type: &'static str,
    pub references: Option<String>,
    pub severity: &'static str,
    pub sent: String,
    pub expires: String,
    /// The `<area>`'s shapes or codes (after its `areaDesc`).
    pub area: &'static str,
    pub description: String,
}

/// Who sends every [`Alert`].
pub const SENDER: &str = "canhbao@angiang.gov.vn";

impl Alert {
    /// An actual Severe alert `id` over `area`, sent 2026-12-01 06:30 +07:00 and expiring
    /// at noon.
    pub fn new(area: &'static str, id: &'static str) -> Self {
        Alert {
            id,
            status: "Actual",
            msg_type: "Alert",
            references: None,
            severity: "Severe",
            sent: "2026-12-01T06:30:00+07:00".into(),
            expires: "2026-12-01T12:00:00+07:00".into(),
            area,
            description: "Mực nước sông Hậu đang lên.".into(),
        }
    }

    /// The CAP 1.2 document.
    pub fn xml(&self) -> String {
        let references = self
            .references
            .as_ref()
            .map(|r| format!("<references>{r}</references>"))
            .unwrap_or_default();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{id}</identifier>
  <sender>{SENDER}</sender>
  <sent>{sent}</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {references}
  <info>
    <language>vi-VN</language>
    <category>Met</category>
    <event>Lũ</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Observed</certainty>
    <expires>{expires}</expires>
    <headline>Cảnh báo lũ {id}</headline>
    <description>{description}</description>
    <area><areaDesc>Ven sông Hậu</areaDesc>{area}</area>
  </info>
</alert>"#,
            id = self.id,
            sent = self.sent,
            status = self.status,
            msg_type = self.msg_type,
            severity = self.severity,
            expires = self.expires,
            description = self.description,
            area = self.area,
        )
    }

    /// `sender,identifier,sent` as a later alert references it.
    pub fn key(&self) -> String {
        format!("{SENDER},{},{}", self.id, self.sent)
    }
}
