//! The specification's rules that tie elements together, checked on an alert whose
//! elements are each valid: who it is addressed to, what it refers to, when it applies,
//! how high its areas reach.

use super::model::*;

/// Rules between elements. Errors make the document invalid; warnings are advice.
pub fn validate(alert: &Alert) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    match alert.scope {
        Scope::Private if alert.addresses.is_empty() => out.push(Diagnostic::error(
            "addresses",
            "missing or empty: required when scope is Private (name the recipients)",
        )),
        Scope::Restricted if alert.restriction.as_deref().is_none_or(str::is_empty) => {
            out.push(Diagnostic::warning(
                "restriction",
                "missing: scope Restricted should say who may see the alert",
            ))
        }
        _ => {}
    }
    let key = alert.key();
    if alert.references.contains(&key) {
        out.push(Diagnostic::error("references", "names this alert itself"));
    }
    match alert.msg_type {
        MsgType::Update | MsgType::Cancel | MsgType::Ack | MsgType::Error
            if alert.references.is_empty() =>
        {
            out.push(Diagnostic::warning(
                "references",
                format!(
                    "missing: a {} names the earlier message(s) it is about; without them it \
                     {}",
                    alert.msg_type,
                    match alert.msg_type {
                        MsgType::Update => "is read as a new alert",
                        MsgType::Cancel => "cancels nothing",
                        _ => "refers to nothing",
                    }
                ),
            ));
        }
        _ => {}
    }
    for r in &alert.references {
        if r.sent > key.sent {
            out.push(Diagnostic::warning(
                "references",
                format!("{r} was sent after this alert ({})", alert.sent.to_rfc3339()),
            ));
        }
    }
    for (i, info) in alert.infos.iter().enumerate() {
        let path = format!("info[{i}]");
        if let (Some(from), Some(until)) = (info.effective.or(info.onset), info.expires)
            && until < from
        {
            out.push(Diagnostic::error(
                format!("{path}/expires"),
                format!(
                    "{} is before the alert takes effect ({})",
                    until.to_rfc3339(),
                    from.to_rfc3339()
                ),
            ));
        }
        if let Some(until) = info.expires
            && until < alert.sent
        {
            out.push(Diagnostic::warning(
                format!("{path}/expires"),
                format!("{} is before the alert was sent", until.to_rfc3339()),
            ));
        }
        if let Some(h) = &info.headline {
            let n = h.chars().count();
            if n > 160 {
                out.push(Diagnostic::warning(
                    format!("{path}/headline"),
                    format!("{n} characters: the specification asks for fewer than 160"),
                ));
            }
        }
        for (j, area) in info.areas.iter().enumerate() {
            let apath = format!("{path}/area[{j}]");
            match (area.altitude, area.ceiling) {
                (None, Some(_)) => out.push(Diagnostic::error(
                    format!("{apath}/ceiling"),
                    "given without altitude: write the altitude (the floor) too",
                )),
                (Some(a), Some(c)) if c < a => out.push(Diagnostic::error(
                    format!("{apath}/ceiling"),
                    format!("{c} is below the altitude {a}"),
                )),
                _ => {}
            }
        }
    }
    out
}
