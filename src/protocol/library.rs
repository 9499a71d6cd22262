//! What operators send central and get back: schedule loads, the audio library,
//! targets, and the one error body every refusal uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a schedule goes when loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum Target {
    All,
    Stations(Vec<String>),
    /// An area path: its stations and those of every area under it
    /// ([`super::area::within`]); a district name is an area of one level.
    District(String),
}

impl std::str::FromStr for Target {
    type Err = String;

    /// Parses `all`, `district:NAME` (or `area:PATH`: the stations of an area and every
    /// area under it) or a comma-separated list of station ids.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Target::All);
        }
        if let Some(name) = text.strip_prefix("district:").or_else(|| text.strip_prefix("area:")) {
            if name.trim().is_empty() {
                return Err("district name is empty: write --to district:NAME".into());
            }
            return Ok(Target::District(name.trim().to_string()));
        }
        let ids: Vec<String> =
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if ids.is_empty() {
            return Err("no target: write --to all, --to ID,ID or --to district:NAME".into());
        }
        Ok(Target::Stations(ids))
    }
}

/// Operator → central: assign a schedule file to stations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadScheduleRequest {
    /// The file name as the operator gave it, for diagnostics.
    pub origin: String,
    pub source: String,
    /// `audio = "..."` values as written → sha256 (the CLI uploads missing files first).
    pub audio: BTreeMap<String, String>,
    pub to: Target,
}

/// Central → operator: what a successful load changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadScheduleResponse {
    pub schedule_id: i64,
    /// Station id → its new manifest version.
    pub stations: BTreeMap<String, u64>,
}

/// Central → operator: an uploaded audio file as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub sha256: String,
    pub title: String,
    pub size: u64,
    pub duration_ms: u64,
    /// Integrated loudness (EBU R128), LUFS.
    pub loudness_lufs: f64,
    /// Gain towards central's target, dB.
    pub gain_db: f32,
    /// What is wrong with a damaged file stored anyway (`loa audio add --accept-damaged`),
    /// as `loa audio probe` notes it: `truncated`, `3 corrupt packets skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
}

/// Every error body central sends: one message, plus file:line:column diagnostics when
/// a schedule was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_all_forms_and_refuses_empty() {
        assert_eq!("all".parse::<Target>(), Ok(Target::All));
        assert_eq!("district:Tri Tôn".parse::<Target>(), Ok(Target::District("Tri Tôn".into())));
        assert_eq!(
            "a, b".parse::<Target>(),
            Ok(Target::Stations(vec!["a".to_string(), "b".to_string()]))
        );
        assert!("district:".parse::<Target>().is_err());
        assert_eq!(
            "area:Tri Tôn/Ba Chúc".parse::<Target>(),
            Ok(Target::District("Tri Tôn/Ba Chúc".into()))
        );
        assert!(" , ".parse::<Target>().is_err());
    }
}
