//! Values inside CAP elements: dates, references, points, circles, language tags, quoted
//! lists; and how an error message names a missing code list.

use chrono::{DateTime, FixedOffset};

use super::super::model::*;

/// How to fill in a missing required element.
pub(super) fn hint(name: &str) -> String {
    match name {
        "status" => format!(" ({})", Status::list()),
        "msgType" => format!(" ({})", MsgType::list()),
        "scope" => format!(" ({})", Scope::list()),
        "category" => format!(" ({})", Category::list()),
        "urgency" => format!(" ({})", Urgency::list()),
        "severity" => format!(" ({})", Severity::list()),
        "certainty" => format!(" ({})", Certainty::list()),
        "sent" => " (e.g. 2026-12-01T05:30:00+07:00)".to_string(),
        _ => String::new(),
    }
}

/// At most 60 characters of `s`, for messages.
pub(super) fn clip(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(60).collect::<String>())
    }
}

/// RFC 3066: `primary(-subtag)*`, letters for the primary, letters and digits after.
pub(super) fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    (1..=8).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A CAP date and time: `YYYY-MM-DDThh:mm:ss±hh:mm`, nothing else (no `Z`, no
/// fractions: the specification's pattern).
pub fn parse_cap_datetime(s: &str) -> Result<DateTime<FixedOffset>, String> {
    let b = s.as_bytes();
    let shape = b.len() == 25
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 | 22 => c == b':',
            19 => c == b'+' || c == b'-',
            _ => c.is_ascii_digit(),
        });
    let fix = "write e.g. 2026-12-01T05:30:00+07:00 (with the offset; -00:00 for UTC, not Z)";
    if !shape {
        return Err(format!("{:?} is not a CAP date and time: {fix}", clip(s)));
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%:z")
        .map_err(|e| format!("{s:?} is not a real date and time ({e}): {fix}"))
}

/// `sender,identifier,sent`.
pub fn parse_reference(entry: &str) -> Result<AlertKey, String> {
    let parts: Vec<&str> = entry.split(',').collect();
    if parts.len() != 3 || parts[0].is_empty() || parts[1].is_empty() {
        return Err("is not sender,identifier,sent".to_string());
    }
    let sent = parse_cap_datetime(parts[2]).map_err(|m| format!("has a bad sent: {m}"))?;
    Ok(AlertKey {
        sender: parts[0].to_string(),
        identifier: parts[1].to_string(),
        sent: sent.to_utc(),
    })
}

pub(super) fn parse_point(pair: &str) -> Result<LatLon, String> {
    let mut it = pair.split(',');
    let (Some(lat), Some(lon), None) = (it.next(), it.next(), it.next()) else {
        return Err("is not latitude,longitude".to_string());
    };
    let (Ok(lat), Ok(lon)) = (lat.parse::<f64>(), lon.parse::<f64>()) else {
        return Err("is not latitude,longitude (decimal degrees)".to_string());
    };
    if !(-90.0..=90.0).contains(&lat) {
        return Err("has a latitude outside -90..90".to_string());
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err("has a longitude outside -180..180".to_string());
    }
    Ok(LatLon { lat, lon })
}

/// `lat,lon radius` (radius in km).
pub fn parse_circle(text: &str) -> Result<Circle, String> {
    let mut it = text.split_whitespace();
    let (Some(center), Some(radius), None) = (it.next(), it.next(), it.next()) else {
        return Err(format!(
            "{:?} is not \"latitude,longitude radius\" (radius in km)",
            clip(text)
        ));
    };
    let center = parse_point(center).map_err(|m| format!("centre {center:?} {m}"))?;
    match radius.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.0..=20_040.0).contains(&r) => {
            Ok(Circle { center, radius_km: r })
        }
        _ => Err(format!("radius {radius:?} is not a distance in km from 0 to 20040")),
    }
}

/// Splits a space-separated list whose entries may be "double quoted with spaces".
pub(super) fn split_quoted(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let Some(end) = q.find('"') else {
                return Err("a quoted entry is not closed with \"".to_string());
            };
            out.push(q[..end].to_string());
            rest = q[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_dates_are_strict() {
        assert!(parse_cap_datetime("2026-12-01T05:30:00+07:00").is_ok());
        assert!(parse_cap_datetime("2026-12-01T05:30:00-00:00").is_ok());
        for bad in
            ["2026-12-01T05:30:00Z", "2026-12-01T05:30:00.5+07:00", "2026-02-30T05:30:00+07:00", ""]
        {
            assert!(parse_cap_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_and_lists() {
        let k = parse_reference("a@b,ID-1,2026-12-01T05:30:00+07:00").unwrap();
        assert_eq!(k.to_string(), "a@b,ID-1,2026-11-30T22:30:00-00:00");
        assert!(parse_reference("a@b,ID-1").is_err());
        assert_eq!(split_quoted(r#"a "b c" d"#).unwrap(), vec!["a", "b c", "d"]);
        assert!(split_quoted(r#"a "b"#).is_err());
    }

    #[test]
    fn language_tags() {
        for ok in ["vi", "vi-VN", "en-US", "x-klingon", "zh-Hant-TW"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "vi_VN", "123", "toolongtag"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
