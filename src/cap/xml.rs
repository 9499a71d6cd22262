//! A bounded XML reader with no DTD: bytes in the encoding they declare → a small element
//! tree that keeps what XML signatures need (namespace declarations, attributes, text,
//! comments, processing instructions).
//!
//! quick-xml tokenizes; this module refuses a `<!DOCTYPE` the moment it is seen (so no
//! entity is ever declared, let alone expanded or fetched), resolves only the five
//! predefined entities and character references, and enforces every bound below before
//! it allocates for what comes next. It does no IO.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// Largest document accepted, checked before anything is decoded or parsed (5 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;
/// Deepest element nesting (a CAP alert with a signature needs 7).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one document.
pub const MAX_ELEMENTS: usize = 100_000;
/// Most attributes (namespace declarations included) on one element.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest element or attribute name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// The XML namespace, bound to the prefix `xml` in every document.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Why a document is not read at all. `path` is `document` (size, encoding) or `xml`
/// (well-formedness, DOCTYPE, bounds), and the message says where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub path: &'static str,
    pub message: String,
}

impl XmlError {
    fn document(message: impl Into<String>) -> Self {
        XmlError { path: "document", message: message.into() }
    }
}

/// A parsed document: the root element with the comments and processing instructions
/// around it (the XML declaration is not kept; canonical XML has none).
#[derive(Debug, Clone)]
pub struct Document {
    pub before: Vec<Node>,
    pub root: Element,
    pub after: Vec<Node>,
    /// The encoding the document was decoded from (its declaration's, else UTF-8).
    pub encoding: String,
}

#[derive(Debug, Clone)]
pub enum Node {
    Element(Element),
    /// Character data, entity and character references resolved, line ends normalized.
    Text(String),
    Comment(String),
    Pi {
        target: String,
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub prefix: Option<String>,
    pub local: String,
    /// Resolved namespace (unprefixed attributes have none).
    pub namespace: Option<String>,
    /// Normalized value (XML 1.0 §3.3.3), references resolved.
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct Element {
    pub prefix: Option<String>,
    pub local: String,
    /// Resolved namespace URI, `None` when the element is in no namespace.
    pub namespace: Option<String>,
    /// Namespace declarations written on this element, in document order: prefix
    /// (`None` = the default namespace) and URI (empty = `xmlns=""`).
    pub ns_decls: Vec<(Option<String>, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

impl Element {
    /// Qualified name as written (`ds:Signature`).
    pub fn qname(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}:{}", self.local),
            None => self.local.clone(),
        }
    }

    /// Child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with this namespace and local name.
    pub fn child(&self, namespace: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(namespace, local))
    }

    pub fn is(&self, namespace: &str, local: &str) -> bool {
        self.local == local && self.namespace.as_deref() == Some(namespace)
    }

    /// The value of an unprefixed attribute.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.prefix.is_none() && a.local == local).map(|a| a.value.as_str())
    }

    /// All text directly inside this element, concatenated.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }
}

/// Reads `bytes` as an XML document: size, then encoding, then well-formedness, DOCTYPE
/// and the bounds above. The first problem stops the reading.
pub fn parse(bytes: &[u8]) -> Result<Document, XmlError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(XmlError::document(format!(
            "{} bytes, more than the {} bytes (5 MiB) a CAP document may have: refused unread",
            bytes.len(),
            MAX_DOCUMENT_BYTES
        )));
    }
    let (decoded, encoding) = decode(bytes)?;
    // XML 1.0 §2.11: every CR LF and lone CR is read as LF, before anything else.
    let text = if decoded.contains('\r') {
        decoded.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        decoded
    };
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| !is_xml_char(c)) {
        let (line, column) = line_column(&text, at);
        return Err(XmlError {
            path: "xml",
            message: format!(
                "line {line}, column {column}: character U+{:04X} is not allowed in XML",
                c as u32
            ),
        });
    }
    Builder::new(&text).run(encoding)
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Decodes the document per its byte order mark or XML declaration (UTF-8 when it has
/// neither). Bytes that are not valid in that encoding are refused, never replaced.
fn decode(bytes: &[u8]) -> Result<(String, String), XmlError> {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return match encoding.decode_without_bom_handling_and_without_replacement(&bytes[bom..]) {
            Some(text) => Ok((text.into_owned(), encoding.name().to_string())),
            None => Err(XmlError::document(format!(
                "starts with a {} byte order mark but is not valid {}",
                encoding.name(),
                encoding.name()
            ))),
        };
    }
    if bytes.starts_with(&[0, b'<', 0, b'?']) || bytes.starts_with(&[b'<', 0, b'?', 0]) {
        let encoding = if bytes[0] == 0 { encoding_rs::UTF_16BE } else { encoding_rs::UTF_16LE };
        return match encoding.decode_without_bom_handling_and_without_replacement(bytes) {
            Some(text) => Ok((text.into_owned(), encoding.name().to_string())),
            None => Err(XmlError::document(format!("not valid {}", encoding.name()))),
        };
    }
    let label = declared_encoding(bytes)?;
    let name = label.clone().unwrap_or_else(|| "UTF-8".to_string());
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "utf-8" | "utf8" => match std::str::from_utf8(bytes) {
            Ok(t) => Ok((t.to_string(), "UTF-8".to_string())),
            Err(e) => {
                let said = if label.is_some() {
                    "declares UTF-8"
                } else {
                    "has no encoding declaration (so UTF-8)"
                };
                Err(XmlError::document(format!(
                    "{said} but byte {} is not UTF-8: save it as UTF-8 or declare its real encoding",
                    e.valid_up_to()
                )))
            }
        },
        // ISO-8859-1 exactly (byte n is U+00nn): encoding_rs reads this label as
        // windows-1252, which differs in 0x80-0x9F, and a signature digest would too.
        "iso-8859-1" | "iso_8859-1" | "latin1" | "l1" | "iso-ir-100" | "cp819" | "ibm819"
        | "iso8859-1" | "iso_8859-1:1987" => {
            Ok((bytes.iter().map(|&b| b as char).collect(), "ISO-8859-1".to_string()))
        }
        "us-ascii" | "ascii" => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok((String::from_utf8_lossy(bytes).into_owned(), "US-ASCII".to_string())),
            Some(i) => Err(XmlError::document(format!(
                "declares US-ASCII but byte {i} is not ASCII: declare its real encoding"
            ))),
        },
        _ => {
            let Some(encoding) = encoding_rs::Encoding::for_label(lower.as_bytes()) else {
                return Err(XmlError::document(format!(
                    "the XML declaration names encoding {name:?}, which is not known: use UTF-8"
                )));
            };
            if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
                return Err(XmlError::document(format!(
                    "declares {name} but is written in an 8-bit encoding (no byte order mark)"
                )));
            }
            match encoding.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(text) => Ok((text.into_owned(), encoding.name().to_string())),
                None => Err(XmlError::document(format!(
                    "declares {name} but holds bytes that are not valid {name}"
                ))),
            }
        }
    }
}

/// The `encoding` of an XML declaration written in an ASCII-compatible encoding.
fn declared_encoding(bytes: &[u8]) -> Result<Option<String>, XmlError> {
    if !bytes.starts_with(b"<?xml") || !bytes.get(5).is_some_and(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let head = &bytes[..bytes.len().min(512)];
    let Some(end) = head.windows(2).position(|w| w == b"?>") else {
        return Err(XmlError::document("the XML declaration is not closed with ?> early on"));
    };
    let decl = String::from_utf8_lossy(&head[5..end]);
    let Some(at) = decl.find("encoding") else { return Ok(None) };
    let rest = decl[at + "encoding".len()..].trim_start();
    let Some(rest) = rest.strip_prefix('=') else {
        return Err(XmlError::document("the XML declaration's encoding has no ="));
    };
    let rest = rest.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
    let Some(quote) = quote else {
        return Err(XmlError::document("the XML declaration's encoding is not quoted"));
    };
    let value = &rest[1..];
    let Some(close) = value.find(quote) else {
        return Err(XmlError::document("the XML declaration's encoding is not closed"));
    };
    Ok(Some(value[..close].to_string()))
}

/// Namespace scopes while reading: one frame of (prefix, URI) per open element.
struct Builder<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    stack: Vec<Element>,
    scopes: Vec<Vec<(Option<String>, String)>>,
    elements: usize,
    before: Vec<Node>,
    after: Vec<Node>,
    root: Option<Element>,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.trim_text(false);
        config.expand_empty_elements = false;
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        Builder {
            text,
            reader,
            stack: Vec::new(),
            scopes: Vec::new(),
            elements: 0,
            before: Vec::new(),
            after: Vec::new(),
            root: None,
        }
    }

    fn error_at(&self, at: u64, message: impl std::fmt::Display) -> XmlError {
        let (line, column) = line_column(self.text, at as usize);
        XmlError { path: "xml", message: format!("line {line}, column {column}: {message}") }
    }

    fn error(&self, message: impl std::fmt::Display) -> XmlError {
        self.error_at(self.reader.buffer_position(), message)
    }

    fn run(mut self, encoding: String) -> Result<Document, XmlError> {
        loop {
            let start = self.reader.buffer_position();
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let at = self.reader.error_position();
                    return Err(self.error_at(at, format!("not well-formed XML: {e}")));
                }
            };
            match event {
                Event::DocType(_) => {
                    return Err(self.error_at(
                        start,
                        "a DOCTYPE is not allowed: CAP documents have no DTD, and loa never \
                         declares, expands or fetches entities (refused unread)",
                    ));
                }
                Event::Decl(d) => {
                    if start != 0 {
                        return Err(self.error_at(start, "an XML declaration must come first"));
                    }
                    if let Ok(v) = d.version()
                        && v.as_ref() != "1.0"
                    {
                        return Err(self.error_at(
                            start,
                            format!("XML version {v} is not supported: write 1.0"),
                        ));
                    }
                }
                Event::Start(e) => {
                    let element = self.open(&e, start)?;
                    self.stack.push(element);
                }
                Event::Empty(e) => {
                    let element = self.open(&e, start)?;
                    self.scopes.pop();
                    self.close(element, start)?;
                }
                Event::End(_) => {
                    let Some(element) = self.stack.pop() else {
                        return Err(self.error_at(start, "an end tag without a start tag"));
                    };
                    self.scopes.pop();
                    self.close(element, start)?;
                }
                Event::Text(t) => {
                    let s: &str = &t;
                    self.text_node(s, start)?;
                }
                Event::CData(t) => {
                    let s: &str = &t;
                    if self.stack.is_empty() {
                        return Err(self.error_at(start, "CDATA outside the root element"));
                    }
                    self.push_text(s);
                }
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        Ok(None) => match predefined(&r) {
                            Some(c) => c,
                            None => {
                                let name: &str = &r;
                                return Err(self.error_at(
                                    start,
                                    format!(
                                        "entity reference &{name}; is not allowed: CAP \
                                         documents use no DTD, and entities are never expanded"
                                    ),
                                ));
                            }
                        },
                        Err(e) => return Err(self.error_at(start, format!("bad reference: {e}"))),
                    };
                    if !is_xml_char(c) {
                        return Err(self.error_at(
                            start,
                            format!(
                                "character reference to U+{:04X}, not allowed in XML",
                                c as u32
                            ),
                        ));
                    }
                    if self.stack.is_empty() {
                        return Err(self.error_at(start, "a reference outside the root element"));
                    }
                    let mut buf = [0u8; 4];
                    self.push_text(c.encode_utf8(&mut buf));
                }
                Event::Comment(t) => {
                    let s: &str = &t;
                    self.misc(Node::Comment(s.to_string()));
                }
                Event::PI(pi) => {
                    let target = pi.target().to_string();
                    if target.eq_ignore_ascii_case("xml") {
                        return Err(self.error_at(start, "an XML declaration must come first"));
                    }
                    let data = pi.content().trim_start_matches([' ', '\t', '\n']).to_string();
                    self.misc(Node::Pi { target, data });
                }
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(self.error(format!("the document ends inside <{}>", open.qname())));
        }
        let Some(root) = self.root else {
            return Err(self.error("no root element: this is not an XML document"));
        };
        Ok(Document { before: self.before, root, after: self.after, encoding })
    }

    fn misc(&mut self, node: Node) {
        if let Some(parent) = self.stack.last_mut() {
            parent.children.push(node);
        } else if self.root.is_none() {
            self.before.push(node);
        } else {
            self.after.push(node);
        }
    }

    fn text_node(&mut self, s: &str, at: u64) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            if s.chars().all(|c| matches!(c, ' ' | '\t' | '\n')) {
                return Ok(());
            }
            return Err(self.error_at(at, "text outside the root element"));
        }
        if s.contains('&') {
            // quick-xml hands references over as their own events; a bare & is an error.
            return Err(self.error_at(at, "a bare & in text: write &amp;"));
        }
        self.push_text(s);
        Ok(())
    }

    fn push_text(&mut self, s: &str) {
        let Some(parent) = self.stack.last_mut() else { return };
        if let Some(Node::Text(t)) = parent.children.last_mut() {
            t.push_str(s);
        } else {
            parent.children.push(Node::Text(s.to_string()));
        }
    }

    fn close(&mut self, element: Element, at: u64) -> Result<(), XmlError> {
        if let Some(parent) = self.stack.last_mut() {
            parent.children.push(Node::Element(element));
        } else if self.root.is_none() {
            self.root = Some(element);
        } else {
            return Err(self.error_at(at, "a second root element: a document has one"));
        }
        Ok(())
    }

    /// Reads a start tag: bounds, attributes, namespace declarations and resolution.
    /// Pushes the element's namespace frame.
    fn open(&mut self, e: &BytesStart<'_>, at: u64) -> Result<Element, XmlError> {
        if self.root.is_some() && self.stack.is_empty() {
            return Err(self.error_at(at, "a second root element: a document has one"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(
                self.error_at(at, format!("elements nested more than {MAX_DEPTH} deep: refused"))
            );
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(self.error_at(at, format!("more than {MAX_ELEMENTS} elements: refused")));
        }
        let qname = e.name();
        let raw_name: &str = qname.as_ref();
        if raw_name.len() > MAX_NAME_BYTES {
            return Err(self.error_at(
                at,
                format!("an element name longer than {MAX_NAME_BYTES} bytes: refused"),
            ));
        }
        let (prefix, local) = self.split_name(raw_name, at)?;
        let mut ns_decls = Vec::new();
        let mut raw_attrs: Vec<(Option<String>, String, String)> = Vec::new();
        for (n, attr) in e.attributes().with_checks(true).enumerate() {
            if n >= MAX_ATTRIBUTES {
                return Err(self.error_at(
                    at,
                    format!("<{raw_name}> has more than {MAX_ATTRIBUTES} attributes: refused"),
                ));
            }
            let attr = attr.map_err(|err| self.error_at(at, format!("bad attribute: {err}")))?;
            let key: &str = attr.key.as_ref();
            if key.len() > MAX_NAME_BYTES {
                return Err(self.error_at(
                    at,
                    format!("an attribute name longer than {MAX_NAME_BYTES} bytes: refused"),
                ));
            }
            let value = self.attr_value(&attr.value, key, at)?;
            if key == "xmlns" {
                ns_decls.push((None, value));
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                if value.is_empty() {
                    return Err(self.error_at(at, format!("xmlns:{p}=\"\" is not allowed")));
                }
                if (p == "xml") != (value == XML_NS) || p == "xmlns" {
                    return Err(self.error_at(at, format!("prefix {p} cannot be bound to {value}")));
                }
                ns_decls.push((Some(p.to_string()), value));
            } else {
                let (ap, al) = self.split_name(key, at)?;
                raw_attrs.push((ap, al, value));
            }
        }
        self.scopes.push(ns_decls.clone());
        let namespace = match &prefix {
            Some(p) => Some(self.resolve(p).ok_or_else(|| {
                self.error_at(at, format!("prefix {p} of <{raw_name}> is not declared"))
            })?),
            None => self.resolve_default(),
        };
        let mut attrs = Vec::with_capacity(raw_attrs.len());
        for (ap, al, value) in raw_attrs {
            let ans = match &ap {
                Some(p) => Some(self.resolve(p).ok_or_else(|| {
                    self.error_at(at, format!("prefix {p} of attribute {p}:{al} is not declared"))
                })?),
                None => None,
            };
            if attrs.iter().any(|a: &Attr| a.local == al && a.namespace == ans) {
                return Err(self.error_at(at, format!("attribute {al} appears twice")));
            }
            attrs.push(Attr { prefix: ap, local: al, namespace: ans, value });
        }
        Ok(Element { prefix, local, namespace, ns_decls, attrs, children: Vec::new() })
    }

    fn split_name(&self, name: &str, at: u64) -> Result<(Option<String>, String), XmlError> {
        match name.split_once(':') {
            None => Ok((None, name.to_string())),
            Some((p, l)) if !p.is_empty() && !l.is_empty() && !l.contains(':') => {
                Ok((Some(p.to_string()), l.to_string()))
            }
            Some(_) => Err(self.error_at(at, format!("name {name:?} is not a valid XML name"))),
        }
    }

    /// Attribute value: references resolved (only the predefined ones and character
    /// references), whitespace normalized as XML 1.0 §3.3.3 says.
    fn attr_value(&self, raw: &str, key: &str, at: u64) -> Result<String, XmlError> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(['&', '<', '\t', '\n']) {
            out.push_str(&rest[..i]);
            let c = rest.as_bytes()[i];
            rest = &rest[i + 1..];
            match c {
                b'<' => return Err(self.error_at(at, format!("< in the value of {key}"))),
                b'\t' | b'\n' => out.push(' '),
                _ => {
                    let Some(end) = rest.find(';') else {
                        return Err(self.error_at(at, format!("a bare & in the value of {key}")));
                    };
                    let name = &rest[..end];
                    rest = &rest[end + 1..];
                    let c = if let Some(num) = name.strip_prefix('#') {
                        let parsed = match num.strip_prefix('x') {
                            Some(hex) => u32::from_str_radix(hex, 16).ok(),
                            None => num.parse::<u32>().ok(),
                        };
                        parsed.and_then(char::from_u32).filter(|c| is_xml_char(*c))
                    } else {
                        predefined(name)
                    };
                    match c {
                        Some(c) => out.push(c),
                        None => {
                            return Err(self.error_at(
                                at,
                                format!(
                                    "reference &{name}; in the value of {key} is not allowed: \
                                     only &lt; &gt; &amp; &apos; &quot; and character references"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resolve(&self, prefix: &str) -> Option<String> {
        if prefix == "xml" {
            return Some(XML_NS.to_string());
        }
        for frame in self.scopes.iter().rev() {
            for (p, uri) in frame.iter().rev() {
                if p.as_deref() == Some(prefix) {
                    return Some(uri.clone());
                }
            }
        }
        None
    }

    fn resolve_default(&self) -> Option<String> {
        for frame in self.scopes.iter().rev() {
            for (p, uri) in frame.iter().rev() {
                if p.is_none() {
                    return if uri.is_empty() { None } else { Some(uri.clone()) };
                }
            }
        }
        None
    }
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

/// In-scope namespaces (prefix → URI; `None` is the default namespace, absent when
/// empty) after the declarations of each element of `path`, outermost first.
pub fn in_scope(path: &[&Element]) -> HashMap<Option<String>, String> {
    let mut map = HashMap::new();
    for e in path {
        for (p, uri) in &e.ns_decls {
            if p.is_none() && uri.is_empty() {
                map.remove(&None);
            } else {
                map.insert(p.clone(), uri.clone());
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(doc: &str) -> String {
        let e = parse(doc.as_bytes()).expect_err("refused");
        format!("{}: {}", e.path, e.message)
    }

    #[test]
    fn reads_namespaces_attributes_text_and_references() {
        let doc = parse(
            br#"<?xml version="1.0"?>
<!-- c --><a xmlns="urn:x" xmlns:p="urn:p" p:k="v&amp;&#x41;&#9;b"><p:b>t&lt;&#233;<![CDATA[<z>]]></p:b><c/></a>"#,
        )
        .unwrap();
        assert_eq!(doc.root.namespace.as_deref(), Some("urn:x"));
        // A character reference survives attribute normalization; a literal tab would not.
        assert_eq!(doc.root.attrs[0].value, "v&A\tb");
        assert_eq!(doc.root.attrs[0].namespace.as_deref(), Some("urn:p"));
        let b = doc.root.elements().next().unwrap();
        assert_eq!(b.namespace.as_deref(), Some("urn:p"));
        assert_eq!(b.text(), "t<é<z>");
        assert!(matches!(doc.before[0], Node::Comment(ref c) if c == " c "));
        assert_eq!(doc.root.elements().nth(1).unwrap().namespace.as_deref(), Some("urn:x"));
    }

    #[test]
    fn line_ends_are_normalized() {
        let doc = parse(b"<a>x\r\ny\rz</a>").unwrap();
        assert_eq!(doc.root.text(), "x\ny\nz");
    }

    #[test]
    fn doctype_is_refused_before_any_entity_is_read() {
        let e = err(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<a>&x;</a>",
        );
        assert!(e.starts_with("xml: line 2, column 1: a DOCTYPE is not allowed"), "{e}");
    }

    #[test]
    fn undeclared_entities_are_refused_in_text_and_attributes() {
        assert!(err("<a>&x;</a>").contains("entity reference &x; is not allowed"));
        assert!(err("<a b=\"&x;\"/>").contains("reference &x; in the value of b is not allowed"));
    }

    #[test]
    fn malformed_documents_say_where() {
        assert_eq!(err("<a>\n<b></a>").split(':').next(), Some("xml"));
        assert!(err("<a>\n<b></a>").contains("line 2"), "{}", err("<a>\n<b></a>"));
        assert!(err("").contains("no root element"));
        assert!(err("<a/><b/>").contains("second root"));
        assert!(err("<a/>x").contains("text outside"));
        assert!(err("<p:a/>").contains("prefix p of <p:a> is not declared"));
        assert!(err("<a>\u{1}</a>").contains("U+0001 is not allowed"));
        assert!(
            err("<a>&#0;</a>").contains("bad reference") || err("<a>&#0;</a>").contains("U+0000")
        );
        assert!(err("<a b='1' b='2'/>").contains("attribute"));
        assert!(err("<a>").contains("ends inside <a>"), "{}", err("<a>"));
    }

    #[test]
    fn size_is_checked_before_anything_else() {
        let big = vec![0xFFu8; MAX_DOCUMENT_BYTES + 1];
        let e = err_bytes(&big);
        assert!(e.starts_with("document: 5242881 bytes, more than the 5242880 bytes"), "{e}");
        // Exactly at the bound, the document is read (and here it is well-formed).
        let mut ok = b"<a>".to_vec();
        ok.resize(MAX_DOCUMENT_BYTES - 4, b'x');
        ok.extend_from_slice(b"</a>");
        assert_eq!(ok.len(), MAX_DOCUMENT_BYTES);
        assert!(parse(&ok).is_ok());
    }

    fn err_bytes(b: &[u8]) -> String {
        let e = parse(b).expect_err("refused");
        format!("{}: {}", e.path, e.message)
    }

    #[test]
    fn depth_elements_attributes_and_names_are_bounded() {
        let nest = |n: usize| "<a>".repeat(n) + &"</a>".repeat(n);
        assert!(parse(nest(MAX_DEPTH).as_bytes()).is_ok());
        assert!(err(&nest(MAX_DEPTH + 1)).contains("nested more than 32 deep"));

        let many = |n: usize| format!("<r>{}</r>", "<e/>".repeat(n - 1));
        assert!(parse(many(MAX_ELEMENTS).as_bytes()).is_ok());
        assert!(err(&many(MAX_ELEMENTS + 1)).contains("more than 100000 elements"));

        let attrs = |n: usize| {
            format!("<a {}/>", (0..n).map(|i| format!("k{i}=\"v\"")).collect::<Vec<_>>().join(" "))
        };
        assert!(parse(attrs(MAX_ATTRIBUTES).as_bytes()).is_ok());
        assert!(err(&attrs(MAX_ATTRIBUTES + 1)).contains("more than 32 attributes"));

        let named = |n: usize| format!("<{0}></{0}>", "n".repeat(n));
        assert!(parse(named(MAX_NAME_BYTES).as_bytes()).is_ok());
        assert!(err(&named(MAX_NAME_BYTES + 1)).contains("longer than 256 bytes"));
    }

    #[test]
    fn encodings_are_read_as_declared() {
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>Usulut\xe1n \x80</a>";
        let doc = parse(latin1).unwrap();
        assert_eq!(doc.root.text(), "Usulut\u{e1}n \u{80}");
        assert_eq!(doc.encoding, "ISO-8859-1");

        let vn = encoding_rs::WINDOWS_1258
            .encode("<?xml version=\"1.0\" encoding=\"windows-1258\"?><a>Hà Nội</a>")
            .0;
        assert_eq!(parse(&vn).unwrap().root.text(), "Hà Nội");

        let mut utf16 = vec![0xFF, 0xFE];
        for u in "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a>lũ</a>".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(parse(&utf16).unwrap().root.text(), "lũ");

        assert!(err_bytes(b"<a>\xe1</a>").contains("byte 3 is not UTF-8"));
        assert!(
            err_bytes(b"<?xml version=\"1.0\" encoding=\"klingon\"?><a/>")
                .contains("\"klingon\", which is not known")
        );
        assert!(
            err_bytes(b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a>\xe1</a>")
                .contains("not ASCII")
        );
    }
}
