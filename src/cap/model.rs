//! The CAP 1.2 alert as loa reads it (CAP 1.1 is read into the same model), and the
//! diagnostics that name the element a problem is in.

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// Which CAP version the document declared (its namespace). Both are read as 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapVersion {
    V1_1,
    V1_2,
}

impl fmt::Display for CapVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapVersion::V1_1 => "1.1",
            CapVersion::V1_2 => "1.2",
        })
    }
}

/// Defines a CAP code-value enum with its exact spellings from the specification.
macro_rules! cap_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            /// Every value, in the specification's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// What this enum is called in messages.
            pub const WHAT: &'static str = $what;

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value spelled exactly as the specification does.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// "A, B, C" for messages.
            pub fn list() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

cap_enum!(
    /// `alert/status`.
    Status, "status" {
        Actual = "Actual", Exercise = "Exercise", System = "System", Test = "Test", Draft = "Draft",
    }
);
cap_enum!(
    /// `alert/msgType`.
    MsgType, "msgType" {
        Alert = "Alert", Update = "Update", Cancel = "Cancel", Ack = "Ack", Error = "Error",
    }
);
cap_enum!(
    /// `alert/scope`.
    Scope, "scope" { Public = "Public", Restricted = "Restricted", Private = "Private" }
);
cap_enum!(
    /// `info/category`.
    Category, "category" {
        Geo = "Geo", Met = "Met", Safety = "Safety", Security = "Security", Rescue = "Rescue",
        Fire = "Fire", Health = "Health", Env = "Env", Transport = "Transport", Infra = "Infra",
        Cbrne = "CBRNE", Other = "Other",
    }
);
cap_enum!(
    /// `info/responseType`.
    ResponseType, "responseType" {
        Shelter = "Shelter", Evacuate = "Evacuate", Prepare = "Prepare", Execute = "Execute",
        Avoid = "Avoid", Monitor = "Monitor", Assess = "Assess", AllClear = "AllClear",
        None = "None",
    }
);
cap_enum!(
    /// `info/urgency`.
    Urgency, "urgency" {
        Immediate = "Immediate", Expected = "Expected", Future = "Future", Past = "Past",
        Unknown = "Unknown",
    }
);
cap_enum!(
    /// `info/severity`.
    Severity, "severity" {
        Extreme = "Extreme", Severe = "Severe", Moderate = "Moderate", Minor = "Minor",
        Unknown = "Unknown",
    }
);
cap_enum!(
    /// `info/certainty`.
    Certainty, "certainty" {
        Observed = "Observed", Likely = "Likely", Possible = "Possible", Unlikely = "Unlikely",
        Unknown = "Unknown",
    }
);

/// An alert's identity: `sender,identifier,sent`, as `references` names earlier alerts.
/// Two keys are the same when sender and identifier match exactly and `sent` is the same
/// instant (`-00:00` and `+00:00` are one time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertKey {
    pub sender: String,
    pub identifier: String,
    pub sent: DateTime<Utc>,
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{}",
            self.sender,
            self.identifier,
            self.sent.format("%Y-%m-%dT%H:%M:%S-00:00")
        )
    }
}

/// A `valueName`/`value` pair (eventCode, parameter, geocode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValuePair {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl fmt::Display for LatLon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.lat, self.lon)
    }
}

/// A closed polygon: at least 4 points, the last equal to the first (WGS 84).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Polygon {
    pub points: Vec<LatLon>,
}

/// A circle: centre and radius in kilometres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Circle {
    pub center: LatLon,
    pub radius_km: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Area {
    pub desc: String,
    pub polygons: Vec<Polygon>,
    pub circles: Vec<Circle>,
    pub geocodes: Vec<ValuePair>,
    pub altitude: Option<f64>,
    pub ceiling: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub desc: String,
    pub mime_type: String,
    pub size: Option<u64>,
    pub uri: Option<String>,
    /// Only whether embedded data was present and how long: loa does not play it.
    pub deref_uri_len: Option<usize>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// `language`, `en-US` when absent (the specification's default).
    pub language: String,
    pub categories: Vec<Category>,
    pub event: String,
    pub response_types: Vec<ResponseType>,
    pub urgency: Urgency,
    pub severity: Severity,
    pub certainty: Certainty,
    pub audience: Option<String>,
    pub event_codes: Vec<ValuePair>,
    pub effective: Option<DateTime<FixedOffset>>,
    pub onset: Option<DateTime<FixedOffset>>,
    pub expires: Option<DateTime<FixedOffset>>,
    pub sender_name: Option<String>,
    pub headline: Option<String>,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub web: Option<String>,
    pub contact: Option<String>,
    pub parameters: Vec<ValuePair>,
    pub resources: Vec<Resource>,
    pub areas: Vec<Area>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub version: CapVersion,
    pub identifier: String,
    pub sender: String,
    pub sent: DateTime<FixedOffset>,
    pub status: Status,
    pub msg_type: MsgType,
    pub source: Option<String>,
    pub scope: Scope,
    pub restriction: Option<String>,
    pub addresses: Vec<String>,
    pub codes: Vec<String>,
    pub note: Option<String>,
    pub references: Vec<AlertKey>,
    pub incidents: Vec<String>,
    pub infos: Vec<Info>,
}

impl Alert {
    /// This alert's identity, as a later alert's `references` would name it.
    pub fn key(&self) -> AlertKey {
        AlertKey {
            sender: self.sender.clone(),
            identifier: self.identifier.clone(),
            sent: self.sent.to_utc(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Error,
    Warning,
}

/// One problem, located by element path: `info[0]/area[1]/polygon[0]: fewer than 4
/// points …`. Repeated elements carry their index (from 0) in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub level: Level,
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { level: Level::Error, path: path.into(), message: plain(message.into()) }
    }
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { level: Level::Warning, path: path.into(), message: plain(message.into()) }
    }
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// House style for messages: no trailing period (other crates' errors may end in one).
fn plain(message: String) -> String {
    let trimmed = message.trim_end().trim_end_matches('.');
    if trimmed.len() == message.len() { message } else { trimmed.to_string() }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
