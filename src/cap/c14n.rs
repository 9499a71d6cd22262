//! Canonical XML for XML signatures: inclusive C14N 1.0 and exclusive C14N, with or
//! without comments, of a whole document less some elements (the enveloped-signature
//! transform) or of one subtree (`SignedInfo`).
//!
//! Written for the node-sets XML-DSig makes of an enveloped signature over `URI=""`: the
//! document minus whole subtrees, or one subtree with its ancestors' context. It is not a
//! general XPath node-set canonicalizer.

use std::collections::BTreeMap;

use super::xml::{Attr, Document, Element, Node, XML_NS};

/// Which canonicalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Canonical XML 1.0 (and 1.1, which differs only in `xml:id`/`xml:base` inheritance
    /// on document subsets that are not whole subtrees).
    Inclusive,
    /// Exclusive XML Canonicalization 1.0, with its InclusiveNamespaces prefix list
    /// (`#default` for the default namespace).
    Exclusive { inclusive_prefixes: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C14n {
    pub method: Method,
    pub with_comments: bool,
}

/// Namespace context: prefix (`""` = default) → URI.
type Ns = BTreeMap<String, String>;

/// The document, canonicalized, without the elements `omit` selects (and everything
/// inside them).
pub fn document(doc: &Document, c14n: &C14n, omit: &dyn Fn(&Element) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for node in &doc.before {
        if misc(&mut out, node, c14n) {
            out.push(b'\n');
        }
    }
    if !omit(&doc.root) {
        element(&mut out, &doc.root, &Ns::new(), &Ns::new(), c14n, omit, &[]);
    }
    for node in &doc.after {
        let mut piece = Vec::new();
        if misc(&mut piece, node, c14n) {
            out.push(b'\n');
            out.extend_from_slice(&piece);
        }
    }
    out
}

/// The subtree whose apex is the last element of `path` (outermost first), canonicalized
/// as its own node-set: its ancestors give namespace context (and, inclusively, `xml:`
/// attributes), but are not output.
pub fn subtree(path: &[&Element], c14n: &C14n) -> Vec<u8> {
    let Some((apex, ancestors)) = path.split_last() else { return Vec::new() };
    let mut in_scope = Ns::new();
    for a in ancestors {
        declare(&mut in_scope, a);
    }
    let mut inherited: Vec<Attr> = Vec::new();
    if c14n.method == Method::Inclusive {
        for a in ancestors.iter().rev() {
            for attr in &a.attrs {
                if attr.namespace.as_deref() == Some(XML_NS)
                    && !inherited.iter().any(|i| i.local == attr.local)
                    && !apex
                        .attrs
                        .iter()
                        .any(|x| x.namespace == attr.namespace && x.local == attr.local)
                {
                    inherited.push(attr.clone());
                }
            }
        }
    }
    let mut out = Vec::with_capacity(1024);
    element(&mut out, apex, &in_scope, &Ns::new(), c14n, &|_| false, &inherited);
    out
}

fn declare(ns: &mut Ns, e: &Element) {
    for (p, uri) in &e.ns_decls {
        let key = p.clone().unwrap_or_default();
        if key.is_empty() && uri.is_empty() {
            ns.remove("");
        } else {
            ns.insert(key, uri.clone());
        }
    }
}

/// Writes a comment or PI outside the root; false when nothing was written.
fn misc(out: &mut Vec<u8>, node: &Node, c14n: &C14n) -> bool {
    match node {
        Node::Comment(c) if c14n.with_comments => {
            out.extend_from_slice(b"<!--");
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"-->");
            true
        }
        Node::Pi { target, data } => {
            pi(out, target, data);
            true
        }
        _ => false,
    }
}

fn pi(out: &mut Vec<u8>, target: &str, data: &str) {
    out.extend_from_slice(b"<?");
    out.extend_from_slice(target.as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data.as_bytes());
    }
    out.extend_from_slice(b"?>");
}

/// `parent_scope`: the namespaces in scope in the source at the parent; `rendered`: the
/// namespaces in effect in the output at the nearest output ancestor.
fn element(
    out: &mut Vec<u8>,
    e: &Element,
    parent_scope: &Ns,
    rendered: &Ns,
    c14n: &C14n,
    omit: &dyn Fn(&Element) -> bool,
    extra_attrs: &[Attr],
) {
    let mut scope = parent_scope.clone();
    declare(&mut scope, e);

    // Namespace declarations to write: (prefix, uri), prefix "" = default.
    let mut decls: Vec<(String, String)> = Vec::new();
    let differs = |p: &str, uri: &str| rendered.get(p).map(String::as_str).unwrap_or("") != uri;
    match &c14n.method {
        Method::Inclusive => {
            for (p, uri) in &scope {
                if differs(p, uri) {
                    decls.push((p.clone(), uri.clone()));
                }
            }
            if !scope.contains_key("") && differs("", "") {
                decls.push((String::new(), String::new()));
            }
        }
        Method::Exclusive { inclusive_prefixes } => {
            let mut used: Vec<String> = vec![e.prefix.clone().unwrap_or_default()];
            for a in e.attrs.iter().chain(extra_attrs) {
                if let Some(p) = &a.prefix
                    && p != "xml"
                    && !used.contains(p)
                {
                    used.push(p.clone());
                }
            }
            for p in inclusive_prefixes {
                let p = if p == "#default" { String::new() } else { p.clone() };
                if (p.is_empty() || scope.contains_key(&p)) && !used.contains(&p) {
                    used.push(p);
                }
            }
            for p in used {
                let uri = scope.get(&p).cloned().unwrap_or_default();
                if (p.is_empty() || !uri.is_empty()) && differs(&p, &uri) {
                    decls.push((p, uri));
                }
            }
        }
    }
    decls.sort();
    let mut now_rendered = rendered.clone();
    for (p, uri) in &decls {
        if uri.is_empty() {
            now_rendered.remove(p);
        } else {
            now_rendered.insert(p.clone(), uri.clone());
        }
    }

    let name = e.qname();
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    for (p, uri) in &decls {
        if p.is_empty() {
            out.extend_from_slice(b" xmlns=\"");
        } else {
            out.extend_from_slice(b" xmlns:");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"=\"");
        }
        escape_attr(out, uri);
        out.push(b'"');
    }
    let mut attrs: Vec<&Attr> = e.attrs.iter().chain(extra_attrs).collect();
    attrs.sort_by(|a, b| {
        (a.namespace.as_deref().unwrap_or(""), a.local.as_str())
            .cmp(&(b.namespace.as_deref().unwrap_or(""), b.local.as_str()))
    });
    for a in attrs {
        out.push(b' ');
        if let Some(p) = &a.prefix {
            out.extend_from_slice(p.as_bytes());
            out.push(b':');
        }
        out.extend_from_slice(a.local.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_attr(out, &a.value);
        out.push(b'"');
    }
    out.push(b'>');
    for child in &e.children {
        match child {
            Node::Element(c) => {
                if !omit(c) {
                    element(out, c, &scope, &now_rendered, c14n, omit, &[]);
                }
            }
            Node::Text(t) => escape_text(out, t),
            Node::Comment(c) => {
                if c14n.with_comments {
                    out.extend_from_slice(b"<!--");
                    out.extend_from_slice(c.as_bytes());
                    out.extend_from_slice(b"-->");
                }
            }
            Node::Pi { target, data } => pi(out, target, data),
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

fn escape_text(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

fn escape_attr(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::xml::parse;

    fn inclusive() -> C14n {
        C14n { method: Method::Inclusive, with_comments: false }
    }
    fn exclusive() -> C14n {
        C14n { method: Method::Exclusive { inclusive_prefixes: vec![] }, with_comments: false }
    }
    fn canon(doc: &str, c: &C14n) -> String {
        let d = parse(doc.as_bytes()).unwrap();
        String::from_utf8(document(&d, c, &|_| false)).unwrap()
    }

    /// Examples from the Canonical XML 1.0 recommendation, section 3.
    #[test]
    fn recommendation_examples() {
        // 3.1 PIs, comments, and outside of document element
        let doc = "<?xml version=\"1.0\"?>\n\n<?xml-stylesheet   href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n\n<doc>Hello, world!<!-- Comment 1 --></doc>\n\n<?pi-without-data     ?>\n\n<!-- Comment 2 -->\n\n<!-- Comment 3 -->";
        assert_eq!(
            canon(doc, &inclusive()),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!</doc>\n<?pi-without-data?>"
        );
        assert_eq!(
            canon(doc, &C14n { method: Method::Inclusive, with_comments: true }),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!<!-- Comment 1 --></doc>\n<?pi-without-data?>\n<!-- Comment 2 -->\n<!-- Comment 3 -->"
        );
        // 3.3 Start and end tags (without the DTD's default attributes)
        let doc = "<doc>\n   <e1   />\n   <e2   ></e2>\n   <e3   name = \"elem3\"   id=\"elem3\"   />\n   <e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\"\n      xmlns:b=\"http://www.ietf.org\"\n      xmlns:a=\"http://www.w3.org\"\n      xmlns=\"http://example.org\"/>\n   <e6 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\" xmlns:a=\"http://www.w3.org\">\n            <e9 xmlns=\"\" xmlns:a=\"http://www.ietf.org\"/>\n         </e8>\n      </e7>\n   </e6>\n</doc>";
        assert_eq!(
            canon(doc, &inclusive()),
            "<doc>\n   <e1></e1>\n   <e2></e2>\n   <e3 id=\"elem3\" name=\"elem3\"></e3>\n   <e5 xmlns=\"http://example.org\" xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5>\n   <e6 xmlns:a=\"http://www.w3.org\">\n      <e7 xmlns=\"http://www.ietf.org\">\n         <e8 xmlns=\"\">\n            <e9 xmlns:a=\"http://www.ietf.org\"></e9>\n         </e8>\n      </e7>\n   </e6>\n</doc>"
        );
        // 3.4 Character modifications and character references (no DTD parts)
        let doc = "<doc>\n   <text>First line&#x0d;&#10;Second line</text>\n   <value>&#x32;</value>\n   <compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute>\n   <compute expr='value>\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"'>valid</compute>\n   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n</doc>";
        assert_eq!(
            canon(doc, &inclusive()),
            "<doc>\n   <text>First line&#xD;\nSecond line</text>\n   <value>2</value>\n   <compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute>\n   <compute expr=\"value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;\">valid</compute>\n   <norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm>\n</doc>"
        );
        // 3.6 UTF-8 encoding
        assert_eq!(
            canon(
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<doc>&#169;</doc>",
                &inclusive()
            ),
            "<doc>\u{a9}</doc>"
        );
    }

    #[test]
    fn exclusive_writes_only_used_namespaces() {
        let doc =
            "<a xmlns=\"urn:a\" xmlns:x=\"urn:x\" xmlns:y=\"urn:y\"><x:b y:k=\"1\"><c/></x:b></a>";
        let d = parse(doc.as_bytes()).unwrap();
        let a = &d.root;
        let b = a.elements().next().unwrap();
        assert_eq!(
            String::from_utf8(subtree(&[a, b], &exclusive())).unwrap(),
            "<x:b xmlns:x=\"urn:x\" xmlns:y=\"urn:y\" y:k=\"1\"><c xmlns=\"urn:a\"></c></x:b>"
        );
        assert_eq!(
            String::from_utf8(subtree(&[a, b], &inclusive())).unwrap(),
            "<x:b xmlns=\"urn:a\" xmlns:x=\"urn:x\" xmlns:y=\"urn:y\" y:k=\"1\"><c></c></x:b>"
        );
        let with_default = C14n {
            method: Method::Exclusive { inclusive_prefixes: vec!["#default".into()] },
            with_comments: false,
        };
        assert_eq!(
            String::from_utf8(subtree(&[a, b], &with_default)).unwrap(),
            "<x:b xmlns=\"urn:a\" xmlns:x=\"urn:x\" xmlns:y=\"urn:y\" y:k=\"1\"><c></c></x:b>"
        );
    }

    #[test]
    fn omitted_subtrees_leave_no_trace() {
        let doc = "<a>x<s><t/></s>y</a>";
        let d = parse(doc.as_bytes()).unwrap();
        let out = document(&d, &inclusive(), &|e| e.local == "s");
        assert_eq!(String::from_utf8(out).unwrap(), "<a>xy</a>");
    }

    #[test]
    fn inclusive_subtree_inherits_xml_attributes() {
        let doc = "<a xml:lang=\"vi\"><b/></a>";
        let d = parse(doc.as_bytes()).unwrap();
        let b = d.root.elements().next().unwrap();
        assert_eq!(
            String::from_utf8(subtree(&[&d.root, b], &inclusive())).unwrap(),
            "<b xml:lang=\"vi\"></b>"
        );
        assert_eq!(String::from_utf8(subtree(&[&d.root, b], &exclusive())).unwrap(), "<b></b>");
    }
}
