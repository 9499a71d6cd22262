//! `relay_hosts`: the streams a schedule loaded through central may relay. A district
//! writes `stream = "…"` items; without this list one compromised district account could
//! point every loudspeaker it reaches at any URL. Checked when a schedule is loaded
//! (refused at the item's `stream` value, `file:line:column`), with the scheme and host
//! compared exactly (lowercase; no wildcards: a province names the few servers it relays).

use crate::schedule::{AudioRef, Schedule, url_host};

/// Most hosts in `relay_hosts`.
pub const MAX_HOSTS: usize = 100;
/// Longest host name (DNS: 253).
pub const MAX_HOST_CHARS: usize = 253;

/// Checks the list itself (central.toml): bounded, each a plain host name or address.
pub fn check_list(hosts: &[String]) -> Result<(), String> {
    if hosts.len() > MAX_HOSTS {
        return Err(format!("relay_hosts lists {} hosts: at most {MAX_HOSTS}", hosts.len()));
    }
    for h in hosts {
        let ok = !h.is_empty()
            && h.len() <= MAX_HOST_CHARS
            && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !ok {
            return Err(format!(
                "relay_hosts entry {:?} is not a host name: write names like \"stream.vov.vn\" (no scheme, path or port)",
                h.chars().take(80).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// The `file:line:column: error: …` lines for every stream item of `schedule` whose host
/// is not in `hosts`.
pub fn refused(schedule: &Schedule, hosts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for item in &schedule.items {
        let AudioRef::Stream(stream) = &item.audio else { continue };
        let host = url_host(&stream.url).unwrap_or_default();
        if hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            continue;
        }
        let allowed = if hosts.is_empty() {
            "relay_hosts in central.toml is empty: no stream may be relayed".to_string()
        } else {
            format!("relay_hosts allows {}", hosts.join(", "))
        };
        out.push(format!(
            "{}:{}:{}: error: item \"{}\" relays a stream from {host}, which central does not allow ({allowed}); ask the province to add the host",
            schedule.origin, item.audio_pos.line, item.audio_pos.column, item.id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn only_listed_hosts_may_be_relayed_and_the_list_is_bounded() {
        let text = "layer = \"local\"\n[[item]]\nid = \"vov\"\ntitle = \"VOV1\"\nstream = \"https://Stream.VOV.vn:8000/vov1.mp3\"\nduration = \"30m\"\ncron = \"0 5 * * *\"\n";
        let schedule = crate::schedule::parse(text, "d.toml", Path::new("")).schedule.unwrap();
        assert!(refused(&schedule, &["stream.vov.vn".to_string()]).is_empty());
        let out = refused(&schedule, &["radio.example.vn".to_string()]);
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .starts_with("d.toml:5:10: error: item \"vov\" relays a stream from stream.vov.vn"),
            "{}",
            out[0]
        );
        assert!(refused(&schedule, &[])[0].contains("relay_hosts in central.toml is empty"));

        let many: Vec<String> = (0..=MAX_HOSTS).map(|i| format!("h{i}.vn")).collect();
        assert!(check_list(&many[..MAX_HOSTS]).is_ok());
        assert!(check_list(&many).is_err(), "one past the bound");
        assert!(check_list(&["https://x.vn".to_string()]).is_err());
        assert!(check_list(&["a".repeat(MAX_HOST_CHARS)]).is_ok());
        assert!(check_list(&["a".repeat(MAX_HOST_CHARS + 1)]).is_err());
    }
}
