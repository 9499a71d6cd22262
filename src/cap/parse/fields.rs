//! Reading one element's children against its schema slot table, and the typed readers
//! built on it (text, codes, dates, numbers, lists, references, name/value pairs), each
//! reporting a diagnostic that names the element.

use chrono::{DateTime, FixedOffset};

use super::super::model::*;
use super::super::xml::{Element, Node};
use super::values::*;
use super::{MAX_VALUE_BYTES, NS_DSIG, Occurs, Occurs::*, PAIR, Reader};

pub(super) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}/{name}") }
}

/// The children of one complex element, sorted into the schema's slots.
pub(super) struct Fields<'a> {
    slots: Vec<Vec<&'a Element>>,
    schema: &'static [(&'static str, Occurs)],
    path: String,
}

impl<'a> Fields<'a> {
    pub(super) fn slot(&self, name: &str) -> &[&'a Element] {
        match self.schema.iter().position(|(n, _)| *n == name) {
            Some(i) => &self.slots[i],
            None => &[],
        }
    }
    pub(super) fn one(&self, name: &str) -> Option<&'a Element> {
        self.slot(name).first().copied()
    }
    /// Path of an element of this slot: indexed when the slot may repeat.
    pub(super) fn path_of(&self, name: &str, index: usize) -> String {
        let repeats = self.schema.iter().any(|(n, o)| *n == name && matches!(o, Many | OneOrMore));
        if repeats { join(&self.path, &format!("{name}[{index}]")) } else { join(&self.path, name) }
    }
}

impl Reader {
    /// Sorts an element's children into `schema`'s slots, reporting unknown, misplaced,
    /// repeated and missing elements, and text between elements.
    pub(super) fn fields<'a>(
        &mut self,
        e: &'a Element,
        path: &str,
        what: &str,
        schema: &'static [(&'static str, Occurs)],
    ) -> Fields<'a> {
        self.fields_with(e, path, what, schema, |_, _| false)
    }

    pub(super) fn fields_with<'a>(
        &mut self,
        e: &'a Element,
        path: &str,
        what: &str,
        schema: &'static [(&'static str, Occurs)],
        optional_here: impl Fn(&str, CapVersion) -> bool,
    ) -> Fields<'a> {
        let mut fields =
            Fields { slots: vec![Vec::new(); schema.len()], schema, path: path.to_string() };
        let here = if path.is_empty() { "alert" } else { path };
        let mut last: Option<usize> = None;
        for node in &e.children {
            let child = match node {
                Node::Element(c) => c,
                Node::Text(t) => {
                    let t = t.trim();
                    if !t.is_empty() {
                        self.error(
                            here,
                            format!(
                                "text {:?} between elements: {what} holds elements only",
                                clip(t)
                            ),
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            if child.namespace.as_deref() != Some(self.ns) {
                if child.namespace.as_deref() == Some(NS_DSIG) && child.local == "Signature" {
                    if !path.is_empty() {
                        self.error(
                            join(path, "Signature"),
                            "a signature here is not verified: only an enveloped signature directly in <alert> is",
                        );
                    }
                    continue;
                }
                let ns = child.namespace.as_deref().unwrap_or("no namespace");
                self.warning(
                    join(path, &child.local),
                    format!("element from another namespace ({ns}), ignored"),
                );
                continue;
            }
            let Some(slot) = schema.iter().position(|(n, _)| *n == child.local) else {
                self.error(
                    join(path, &child.local),
                    format!("not an element of {what} in CAP 1.2"),
                );
                continue;
            };
            let (name, occurs) = schema[slot];
            let index = fields.slots[slot].len();
            if let Some(prev) = last.filter(|&p| p > slot) {
                self.error(
                    fields.path_of(name, index),
                    format!("out of order: must come before {}", schema[prev].0),
                );
            }
            last = Some(last.map_or(slot, |p| p.max(slot)));
            if matches!(occurs, One | Optional) && index == 1 {
                self.error(
                    fields.path_of(name, index),
                    format!("appears twice: {what} has at most one {name}"),
                );
            }
            fields.slots[slot].push(child);
        }
        for (slot, (name, occurs)) in schema.iter().enumerate() {
            if fields.slots[slot].is_empty()
                && matches!(occurs, One | OneOrMore)
                && !optional_here(name, self.version)
            {
                self.error(
                    join(path, name),
                    format!("missing: {what} requires {name}{}", hint(name)),
                );
            }
        }
        fields
    }

    /// The text of a simple element: no child elements, at most [`MAX_VALUE_BYTES`],
    /// trimmed.
    pub(super) fn simple_text(&mut self, e: &Element, path: &str) -> Option<String> {
        if !self.no_elements(e, path) {
            return None;
        }
        let t = e.text();
        // A polygon is bounded by its points (MAX_POLYGON_POINTS), not by its bytes.
        if t.len() > MAX_VALUE_BYTES && e.local != "polygon" {
            self.error(
                path,
                format!(
                    "{} bytes of text, more than the {MAX_VALUE_BYTES} allowed: refused",
                    t.len()
                ),
            );
            return None;
        }
        Some(t.trim().to_string())
    }

    pub(super) fn no_elements(&mut self, e: &Element, path: &str) -> bool {
        if let Some(c) = e.elements().next() {
            self.error(
                path,
                format!("holds an element <{}>: {} holds text only", c.qname(), e.local),
            );
            return false;
        }
        true
    }

    pub(super) fn text_at(&mut self, f: &Fields<'_>, name: &str, i: usize) -> Option<String> {
        let e = *f.slot(name).get(i)?;
        self.simple_text(e, &f.path_of(name, i))
    }

    pub(super) fn opt_text(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
        self.text_at(f, name, 0)
    }

    /// Required text (missing was reported by `fields`). Empty is allowed only where the
    /// specification's type allows it; here it is reported.
    pub(super) fn req_text(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
        let t = self.text_at(f, name, 0)?;
        if t.is_empty() {
            self.error(f.path_of(name, 0), format!("empty: write the {name}"));
            return None;
        }
        Some(t)
    }

    /// `identifier`, `sender`: no spaces, commas, < or &.
    pub(super) fn id_text(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
        let t = self.req_text(f, name)?;
        if let Some(c) = t.chars().find(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&')) {
            self.error(
                f.path_of(name, 0),
                format!(
                    "{:?} contains {c:?}: {name} must not contain spaces, commas, < or &",
                    clip(&t)
                ),
            );
            return None;
        }
        Some(t)
    }

    pub(super) fn code<T>(
        &mut self,
        f: &Fields<'_>,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        list: fn() -> String,
    ) -> Option<T> {
        let t = self.text_at(f, name, 0)?;
        self.enum_value(&f.path_of(name, 0), &t, parse, list, name)
    }

    pub(super) fn enum_value<T>(
        &mut self,
        path: &str,
        t: &str,
        parse: impl Fn(&str) -> Option<T>,
        list: fn() -> String,
        name: &str,
    ) -> Option<T> {
        if let Some(v) = parse(t) {
            return Some(v);
        }
        if t.is_empty() {
            self.error(path, format!("empty: write one of {}", list()));
        } else {
            self.error(
                path,
                format!("{:?} is not a CAP {name}: write one of {} (as spelled)", clip(t), list()),
            );
        }
        None
    }

    pub(super) fn date(&mut self, f: &Fields<'_>, name: &str) -> Option<DateTime<FixedOffset>> {
        let t = self.text_at(f, name, 0)?;
        match parse_cap_datetime(&t) {
            Ok(d) => Some(d),
            Err(m) => {
                self.error(f.path_of(name, 0), m);
                None
            }
        }
    }

    pub(super) fn opt_date(&mut self, f: &Fields<'_>, name: &str) -> Option<DateTime<FixedOffset>> {
        f.one(name)?;
        self.date(f, name)
    }

    pub(super) fn opt_number(&mut self, f: &Fields<'_>, name: &str) -> Option<f64> {
        let t = self.opt_text(f, name)?;
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.error(
                    f.path_of(name, 0),
                    format!("{:?} is not a number (feet above sea level)", clip(&t)),
                );
                None
            }
        }
    }

    /// `addresses`, `incidents`: space-separated, entries with spaces in double quotes.
    pub(super) fn list(&mut self, f: &Fields<'_>, name: &str) -> Option<Vec<String>> {
        let t = self.opt_text(f, name)?;
        match split_quoted(&t) {
            Ok(v) => Some(v),
            Err(m) => {
                self.error(f.path_of(name, 0), m);
                None
            }
        }
    }

    pub(super) fn references(&mut self, f: &Fields<'_>) -> Vec<AlertKey> {
        let Some(t) = self.opt_text(f, "references") else { return Vec::new() };
        let path = f.path_of("references", 0);
        if t.is_empty() {
            self.error(
                path,
                "empty: name each earlier message as sender,identifier,sent (separated by \
                 spaces), or leave references out",
            );
            return Vec::new();
        }
        let mut keys = Vec::new();
        for (i, entry) in t.split_whitespace().enumerate() {
            match parse_reference(entry) {
                Ok(k) => keys.push(k),
                Err(m) => self.error(&path, format!("entry {} {:?} {m}", i + 1, clip(entry))),
            }
        }
        keys
    }

    pub(super) fn pairs(&mut self, f: &Fields<'_>, name: &str) -> Vec<ValuePair> {
        let mut out = Vec::new();
        for (i, e) in f.slot(name).iter().enumerate() {
            let path = f.path_of(name, i);
            let pf = self.fields(e, &path, name, PAIR);
            let n = self.opt_text(&pf, "valueName");
            let v = self.opt_text(&pf, "value");
            if let (Some(name), Some(value)) = (n, v) {
                if name.is_empty() {
                    self.error(join(&path, "valueName"), "empty: name the value (e.g. SAME, UGC)");
                    continue;
                }
                out.push(ValuePair { name, value });
            }
        }
        out
    }
}
