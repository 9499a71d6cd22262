//! Every bound on a CAP document, sent at its limit (read) and one past it (refused,
//! naming the element). The entity attacks are in `cap_attack.rs`.

use loa::cap::parse::{
    MAX_AREAS, MAX_INFOS, MAX_POLYGON_POINTS, MAX_TOTAL_POINTS, MAX_VALUE_BYTES,
};
use loa::cap::xml::{MAX_DEPTH, MAX_DOCUMENT_BYTES};
use loa::cap::{self, TrustStore};

const INFO_HEAD: &str = "<info><category>Met</category><event>Lũ</event><urgency>Immediate</urgency>\
<severity>Severe</severity><certainty>Observed</certainty>";

fn alert(body: &str) -> String {
    format!(
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>B-1</identifier>\
         <sender>s@x</sender><sent>2026-12-01T05:00:00+07:00</sent><status>Actual</status>\
         <msgType>Alert</msgType><scope>Public</scope>{body}</alert>"
    )
}

fn info(inner: &str) -> String {
    format!("{INFO_HEAD}{inner}</info>")
}

fn errors(doc: &str) -> Vec<String> {
    cap::check(doc.as_bytes(), &TrustStore::new())
        .diagnostics
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

fn accepted(doc: &str) {
    let e = errors(doc);
    assert!(e.is_empty(), "{e:?}");
}

/// A closed polygon of exactly `n` points (n ≥ 4).
fn polygon(n: usize) -> String {
    let mut pts: Vec<String> =
        (0..n - 1).map(|i| format!("10.{:05},105.{:05}", i % 99_999, (i * 7) % 99_999)).collect();
    pts.push(pts[0].clone());
    format!("<polygon>{}</polygon>", pts.join(" "))
}

#[test]
fn info_blocks() {
    accepted(&alert(&info("").repeat(MAX_INFOS)));
    assert_eq!(
        errors(&alert(&info("").repeat(MAX_INFOS + 1))),
        ["info[32]: more than 32 info blocks: refused"]
    );
}

#[test]
fn areas_per_info() {
    let area = "<area><areaDesc>a</areaDesc></area>";
    accepted(&alert(&info(&area.repeat(MAX_AREAS))));
    assert_eq!(
        errors(&alert(&info(&area.repeat(MAX_AREAS + 1)))),
        ["info[0]/area[256]: more than 256 area blocks in one info: refused"]
    );
}

#[test]
fn points_per_polygon() {
    accepted(&alert(&info(&format!(
        "<area><areaDesc>a</areaDesc>{}</area>",
        polygon(MAX_POLYGON_POINTS)
    ))));
    assert_eq!(
        errors(&alert(&info(&format!(
            "<area><areaDesc>a</areaDesc>{}</area>",
            polygon(MAX_POLYGON_POINTS + 1)
        )))),
        [
            "info[0]/area[0]/polygon[0]: 10001 points, more than the 10000 a polygon may have: refused"
        ]
    );
}

#[test]
fn points_per_alert() {
    let per = MAX_TOTAL_POINTS / 10;
    let ten = format!("<area><areaDesc>a</areaDesc>{}</area>", polygon(per).repeat(10));
    accepted(&alert(&info(&ten)));
    let more =
        format!("<area><areaDesc>a</areaDesc>{}{}</area>", polygon(per).repeat(10), polygon(4));
    assert_eq!(
        errors(&alert(&info(&more))),
        ["info[0]/area[0]/polygon[10]: more than 100000 polygon points in this alert: refused"]
    );
}

#[test]
fn text_of_an_element() {
    let headline = |n: usize| info(&format!("<headline>{}</headline>", "a".repeat(n)));
    let at = errors(&alert(&headline(MAX_VALUE_BYTES)));
    assert!(at.is_empty(), "{at:?}");
    assert_eq!(
        errors(&alert(&headline(MAX_VALUE_BYTES + 1))),
        ["info[0]/headline: 65537 bytes of text, more than the 65536 allowed: refused"]
    );
    // Embedded resources (derefUri) are bounded by the document's size only.
    let big = info(&format!(
        "<resource><resourceDesc>audio</resourceDesc><mimeType>audio/mpeg</mimeType><derefUri>{}</derefUri></resource>",
        "QUFB".repeat(MAX_VALUE_BYTES)
    ));
    accepted(&alert(&big));
}

#[test]
fn document_size_and_depth() {
    let mut doc = alert(&info("<description></description>")).into_bytes();
    let pad = MAX_DOCUMENT_BYTES - doc.len();
    let at = doc.iter().position(|&b| b == b'<').unwrap();
    let comment = format!("<!--{}-->", "x".repeat(pad - 7));
    doc.splice(at..at, comment.bytes());
    assert_eq!(doc.len(), MAX_DOCUMENT_BYTES);
    assert!(!cap::check(&doc, &TrustStore::new()).has_errors());
    doc.insert(at, b' ');
    assert_eq!(
        errors(std::str::from_utf8(&doc).unwrap()),
        [
            "document: 5242881 bytes, more than the 5242880 bytes (5 MiB) a CAP document may have: refused unread"
        ]
    );

    // Depth is counted from the root: alert/info is 2; nest foreign elements to the limit.
    let nest = |n: usize| format!("{}{}", "<x:e xmlns:x=\"urn:x\">".repeat(n), "</x:e>".repeat(n));
    let ok = errors(&alert(&nest(MAX_DEPTH - 1)));
    assert!(ok.is_empty(), "{ok:?}");
    let deep = errors(&alert(&nest(MAX_DEPTH)));
    assert_eq!(deep.len(), 1);
    assert!(
        deep[0].starts_with("xml: line 1, column ")
            && deep[0].ends_with("elements nested more than 32 deep: refused"),
        "{deep:?}"
    );
}
