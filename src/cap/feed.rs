//! Feeds of CAP documents: an Atom or RSS index (as the disaster authorities and alert
//! hubs publish them) → the links to the CAP documents it lists. Pure: central fetches
//! the index and the documents, bounded (see `central::cap::feed`), and hands the bytes
//! here; the index goes through the same bounded XML reader as an alert (5 MiB, no
//! DOCTYPE, depth and element bounds).
//!
//! Per entry (Atom `entry`, RSS `item`), the first of:
//! - a `link` (Atom) or `enclosure` (RSS) whose `type` names CAP (`application/cap+xml`)
//!   or XML;
//! - Atom: a `content` with `src`, else the `link` with `rel="alternate"` or no `rel`;
//! - RSS: the `link` element's text, else a `guid` that is a URL.
//!
//! Links are returned as written (a relative one is resolved by the caller against the
//! feed's URL), in the index's order (feeds list the newest first), without repeats.

use super::xml::{self, Element};

/// The Atom namespace.
pub const NS_ATOM: &str = "http://www.w3.org/2005/Atom";

/// Longest link kept, in bytes (longer ones are skipped).
pub const MAX_LINK_BYTES: usize = 2048;

/// The links to CAP documents in an Atom or RSS index, at most `max`.
pub fn links(bytes: &[u8], max: usize) -> Result<Vec<String>, String> {
    let doc = xml::parse(bytes).map_err(|e| format!("{}: {}", e.path, e.message))?;
    let root = &doc.root;
    let is_atom = root.is(NS_ATOM, "feed");
    let is_rss = matches!(root.local.as_str(), "rss" | "RDF");
    if !is_atom && !is_rss {
        return Err(format!(
            "the index is <{}>, not an Atom <feed> or an RSS <rss>: give central the URL of an Atom or RSS list of CAP documents",
            root.qname()
        ));
    }
    let mut entries = Vec::new();
    collect_entries(root, &mut entries);
    let mut out: Vec<String> = Vec::new();
    for entry in entries {
        if out.len() >= max {
            break;
        }
        let Some(link) = entry_link(entry) else { continue };
        let link = link.trim().to_string();
        let plain = !link.is_empty()
            && link.len() <= MAX_LINK_BYTES
            && !link.chars().any(|c| c.is_control() || c.is_whitespace());
        if plain && !out.contains(&link) {
            out.push(link);
        }
    }
    Ok(out)
}

/// Atom `entry` and RSS `item` elements, in document order (RSS 2.0 keeps them in
/// `channel`, RSS 1.0 beside it).
fn collect_entries<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    for child in e.elements() {
        if child.is(NS_ATOM, "entry") || child.local == "item" {
            out.push(child);
        } else if child.local == "channel" {
            collect_entries(child, out);
        }
    }
}

fn names_cap(kind: Option<&str>) -> bool {
    kind.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.contains("cap") || t.contains("xml")
    })
}

fn entry_link(entry: &Element) -> Option<String> {
    let children: Vec<&Element> = entry.elements().collect();
    // A link or enclosure typed as CAP (or XML) wins.
    for c in &children {
        if (c.local == "link" || c.local == "enclosure")
            && names_cap(c.attr("type"))
            && let Some(href) = c.attr("href").or_else(|| c.attr("url"))
        {
            return Some(href.to_string());
        }
    }
    if entry.is(NS_ATOM, "entry") {
        if let Some(src) =
            children.iter().find(|c| c.local == "content").and_then(|c| c.attr("src"))
        {
            return Some(src.to_string());
        }
        return children
            .iter()
            .find(|c| c.local == "link" && matches!(c.attr("rel"), None | Some("alternate")))
            .and_then(|c| c.attr("href"))
            .map(str::to_string);
    }
    if let Some(link) = children.iter().find(|c| c.local == "link" && c.attr("href").is_none()) {
        let text = link.text();
        if !text.trim().is_empty() {
            return Some(text);
        }
    }
    children
        .iter()
        .find(|c| c.local == "guid")
        .map(|g| g.text())
        .filter(|t| t.trim().starts_with("http://") || t.trim().starts_with("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atom_entries_give_their_cap_links_in_order() {
        let atom = r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Cảnh báo</title>
  <link rel="self" href="https://x/feed.atom"/>
  <entry><title>a</title><link rel="alternate" type="text/html" href="https://x/a.html"/>
    <link rel="related" type="application/cap+xml" href="https://x/a.xml"/></entry>
  <entry><title>b</title><link href="b.xml"/></entry>
  <entry><title>c</title><content type="application/cap+xml" src="/c.xml"/></entry>
  <entry><title>b again</title><link href="b.xml"/></entry>
  <entry><title>none</title></entry>
</feed>"#;
        assert_eq!(links(atom.as_bytes(), 10).unwrap(), ["https://x/a.xml", "b.xml", "/c.xml"]);
        assert_eq!(links(atom.as_bytes(), 2).unwrap(), ["https://x/a.xml", "b.xml"]);
    }

    #[test]
    fn rss_items_give_enclosures_links_or_guids() {
        let rss = r#"<rss version="2.0"><channel><title>t</title>
  <item><title>a</title><link>https://x/a.html</link>
    <enclosure url="https://x/a.cap" type="application/cap+xml" length="1"/></item>
  <item><title>b</title><link> https://x/b.xml </link></item>
  <item><title>c</title><guid>https://x/c.xml</guid></item>
  <item><title>d</title><guid>not-a-url</guid></item>
</channel></rss>"#;
        assert_eq!(
            links(rss.as_bytes(), 10).unwrap(),
            ["https://x/a.cap", "https://x/b.xml", "https://x/c.xml"]
        );
    }

    #[test]
    fn anything_else_is_refused_with_what_to_do() {
        let err = links(b"<html><body/></html>", 10).unwrap_err();
        assert!(err.contains("not an Atom <feed> or an RSS <rss>"), "{err}");
        let err = links(b"<!DOCTYPE feed [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><feed/>", 10)
            .unwrap_err();
        assert!(err.contains("DOCTYPE"), "{err}");
        let long = format!(
            "<feed xmlns=\"{NS_ATOM}\"><entry><link href=\"https://x/{}\"/></entry><entry><link href=\"https://x/{}\"/></entry></feed>",
            "a".repeat(MAX_LINK_BYTES - 10),
            "b".repeat(MAX_LINK_BYTES - 9)
        );
        let got = links(long.as_bytes(), 10).unwrap();
        assert_eq!(got.len(), 1, "the link one byte over the bound is skipped");
        assert_eq!(got[0].len(), MAX_LINK_BYTES);
    }
}
