//! `stream = "…"` items: a relayed HTTP/Icecast programme instead of a file. The URL
//! (scheme, host, printable, bounded), the `fallback` file, and the `duration` a relay
//! must have (bounded by [`limits::MAX_STREAM_DURATION`]). Whether the host may be
//! relayed is central's question (`relay_hosts`), not the file's.

use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use super::{Cx, Value, limits};
use crate::schedule::model::{AudioRef, StreamRef, url_host};

/// What a stream item's own keys gave: the URL, the fallback (`Some(None)`: none
/// asked), and where `stream` was written. `None` parts were refused (already reported).
pub(super) type StreamParts = (Option<String>, Option<Option<Box<AudioRef>>>, usize);

impl Cx<'_> {
    /// Reads `stream` (the value `v`) and `fallback` of the item `t`.
    pub(super) fn stream_parts(
        &mut self,
        t: &DeTable<'_>,
        v: &Value<'_>,
        base_dir: &Path,
    ) -> StreamParts {
        let url = self.string(v, "stream").and_then(|u| self.stream_url(u, v));
        let fallback = match t.get("fallback") {
            None => Some(None),
            Some(f) => {
                let fallback =
                    self.string(f, "fallback").and_then(|s| self.audio(s, f, base_dir, "fallback"));
                if let Some(a) = &fallback {
                    let at = self.pos(f.span().start);
                    self.audio.push((a.clone(), at));
                }
                fallback.map(|a| Some(Box::new(a)))
            }
        };
        (url, fallback, v.span().start)
    }

    /// The item's `AudioRef::Stream`, once its `duration` (`Some(Some(len))` when valid)
    /// is known: a relay without one would never end.
    pub(super) fn stream_item(
        &mut self,
        t: &DeTable<'_>,
        (url, fallback, at): StreamParts,
        duration: &Option<Option<Duration>>,
        named: &str,
    ) -> Option<AudioRef> {
        match (t.get("duration"), duration) {
            (None, _) => {
                self.error(
                    at,
                    format!(
                        "{named} relays a stream but has no `duration`: add duration = \"1h\" \
                         (the relay ends that long after its planned start)"
                    ),
                );
                None
            }
            (Some(d), Some(Some(len))) if *len > limits::MAX_STREAM_DURATION => {
                self.error(
                    d.span().start,
                    "a relayed stream lasts at most 6h: split it into several items",
                );
                None
            }
            (Some(_), Some(Some(len))) => match (url, fallback) {
                (Some(url), Some(fallback)) => {
                    Some(AudioRef::Stream(StreamRef { url, duration: *len, fallback }))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// A `stream` URL: `http://` or `https://` with a host, printable, bounded.
    fn stream_url(&mut self, url: &str, v: &Value<'_>) -> Option<String> {
        let at = v.span().start;
        if url.len() > limits::MAX_STREAM_URL_BYTES {
            self.error(
                at,
                format!(
                    "`stream` is {} bytes long: a stream URL has at most {}",
                    url.len(),
                    limits::MAX_STREAM_URL_BYTES
                ),
            );
            return None;
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            self.error(
                at,
                "`stream` holds spaces or control characters: write the URL on one line, spaces as %20",
            );
            return None;
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            let shown: String = url.chars().take(60).collect();
            self.error(
                at,
                format!(
                    "`stream` \"{shown}\" is not an http:// or https:// URL: give the stream's \
                     address, such as \"https://radio.example.vn/live.mp3\""
                ),
            );
            return None;
        }
        if url_host(url).is_none() {
            self.error(at, "`stream` has no host name: write it as \"https://host/path\"");
            return None;
        }
        Some(url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::model::{AudioRef, url_host};
    use crate::schedule::parse::{limits, parse};
    use std::path::Path;

    fn item(stream: &str, extra: &str) -> String {
        format!(
            "layer = \"provincial\"\n[[item]]\nid = \"vov\"\ntitle = \"VOV1\"\nstream = \"{stream}\"\ncron = \"0 5 * * *\"\n{extra}"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text, "p.toml", Path::new("/s"))
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_stream_item_has_its_url_duration_and_fallback() {
        let text = item(
            "https://radio.example.vn/vov1.mp3",
            "duration = \"30m\"\nfallback = \"nhac.mp3\"\n",
        );
        let schedule = parse(&text, "p.toml", Path::new("/s")).schedule.expect("valid");
        let AudioRef::Stream(s) = &schedule.items[0].audio else { panic!("not a stream") };
        assert_eq!(s.url, "https://radio.example.vn/vov1.mp3");
        assert_eq!(s.duration.as_secs(), 1800);
        assert_eq!(s.fallback.as_deref(), Some(&AudioRef::Path("/s/nhac.mp3".into())));
        // Without a fallback, silence fills the drop-outs.
        let text = item("http://10.0.0.5:8000/live", "duration = \"1h\"\n");
        let schedule = parse(&text, "p.toml", Path::new("/s")).schedule.expect("valid");
        assert!(matches!(&schedule.items[0].audio, AudioRef::Stream(s) if s.fallback.is_none()));
    }

    #[test]
    fn the_url_and_the_duration_are_bounded_one_past_is_refused() {
        let base = "https://radio.example.vn/";
        let at_limit = format!("{base}{}", "a".repeat(limits::MAX_STREAM_URL_BYTES - base.len()));
        assert!(errors(&item(&at_limit, "duration = \"1h\"\n")).is_empty());
        let past = format!("{at_limit}a");
        let e = errors(&item(&past, "duration = \"1h\"\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("p.toml:5:10: error: `stream` is 2049 bytes long"), "{e:?}");

        let url = "https://radio.example.vn/a.mp3";
        assert!(errors(&item(url, "duration = \"6h\"\n")).is_empty());
        let e = errors(&item(url, "duration = \"6h0m1s\"\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("7:12: error: a relayed stream lasts at most 6h"), "{e:?}");
    }

    #[test]
    fn every_mistake_is_named_at_its_place() {
        let e = errors(&item("https://radio.example.vn/a.mp3", ""));
        assert!(
            e[0].contains("5:10: error: item \"vov\" relays a stream but has no `duration`"),
            "{e:?}"
        );
        let e = errors(&item("ftp://radio.example.vn/a.mp3", "duration = \"1h\"\n"));
        assert!(e[0].contains("is not an http:// or https:// URL"), "{e:?}");
        let e = errors(&item("https://radio.example.vn/a b.mp3", "duration = \"1h\"\n"));
        assert!(e[0].contains("spaces or control characters"), "{e:?}");
        let e = errors(&item("https://:80/a.mp3", "duration = \"1h\"\n"));
        assert!(e[0].contains("has no host name"), "{e:?}");
        let e = errors(&item(
            "https://radio.example.vn/a.mp3",
            "duration = \"1h\"\nfallback = \"sha256:12\"\n",
        ));
        assert!(e[0].contains("`fallback` \"sha256:...\" must be followed by 64"), "{e:?}");
    }

    #[test]
    fn hosts_are_read_without_user_port_or_case() {
        assert_eq!(url_host("https://u:p@Radio.VN:8000/x").as_deref(), Some("radio.vn"));
        assert_eq!(url_host("http://[::1]:8000/x").as_deref(), Some("::1"));
        assert_eq!(url_host("http://127.0.0.1/x?y").as_deref(), Some("127.0.0.1"));
        assert_eq!(url_host("https:///x"), None);
        assert_eq!(url_host("rtsp://h/x"), None);
    }
}
