//! The element tree of [`super::xml`] → an [`Alert`], checking every element the CAP 1.2
//! specification defines: presence and number, order, code values, dates, geometry and
//! the bounds below. Every problem found is reported, each naming its element.
//! CAP 1.1 is read as 1.2 (its `resource` may omit `mimeType`; its deprecated certainty
//! "Very Likely" reads as Likely).

use chrono::{DateTime, FixedOffset};

use super::model::*;
use super::xml::{Element, Node};

pub const NS_CAP_1_2: &str = "urn:oasis:names:tc:emergency:cap:1.2";
pub const NS_CAP_1_1: &str = "urn:oasis:names:tc:emergency:cap:1.1";
pub const NS_CAP_1_0: &str = "http://www.incident.com/cap/1.0";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Most `info` blocks in one alert (one per language and audience in practice).
pub const MAX_INFOS: usize = 32;
/// Most `area` blocks in one `info`.
pub const MAX_AREAS: usize = 256;
/// Most points in one polygon.
pub const MAX_POLYGON_POINTS: usize = 10_000;
/// Most polygon points in one alert, all polygons together.
pub const MAX_TOTAL_POINTS: usize = 100_000;
/// Longest text of any one element, in bytes (`derefUri`, embedded audio or images, is
/// bounded by the document's size only, `polygon` by its number of points).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// How often an element may appear in its parent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Occurs {
    One,
    Optional,
    Many,
    OneOrMore,
}
use Occurs::*;

const ALERT: &[(&str, Occurs)] = &[
    ("identifier", One),
    ("sender", One),
    ("sent", One),
    ("status", One),
    ("msgType", One),
    ("source", Optional),
    ("scope", One),
    ("restriction", Optional),
    ("addresses", Optional),
    ("code", Many),
    ("note", Optional),
    ("references", Optional),
    ("incidents", Optional),
    ("info", Many),
];

const INFO: &[(&str, Occurs)] = &[
    ("language", Optional),
    ("category", OneOrMore),
    ("event", One),
    ("responseType", Many),
    ("urgency", One),
    ("severity", One),
    ("certainty", One),
    ("audience", Optional),
    ("eventCode", Many),
    ("effective", Optional),
    ("onset", Optional),
    ("expires", Optional),
    ("senderName", Optional),
    ("headline", Optional),
    ("description", Optional),
    ("instruction", Optional),
    ("web", Optional),
    ("contact", Optional),
    ("parameter", Many),
    ("resource", Many),
    ("area", Many),
];

const RESOURCE: &[(&str, Occurs)] = &[
    ("resourceDesc", One),
    ("mimeType", One),
    ("size", Optional),
    ("uri", Optional),
    ("derefUri", Optional),
    ("digest", Optional),
];

const AREA: &[(&str, Occurs)] = &[
    ("areaDesc", One),
    ("polygon", Many),
    ("circle", Many),
    ("geocode", Many),
    ("altitude", Optional),
    ("ceiling", Optional),
];

const PAIR: &[(&str, Occurs)] = &[("valueName", One), ("value", One)];

/// What [`read_alert`] found: the alert when there is no error, and every diagnostic.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub alert: Option<Alert>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads the root element as a CAP alert.
pub fn read_alert(root: &Element) -> Parsed {
    let mut r =
        Reader { diagnostics: Vec::new(), ns: NS_CAP_1_2, version: CapVersion::V1_2, points: 0 };
    let alert = r.alert(root);
    let has_error = r.diagnostics.iter().any(Diagnostic::is_error);
    Parsed { alert: if has_error { None } else { alert }, diagnostics: r.diagnostics }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}/{name}") }
}

/// The children of one complex element, sorted into the schema's slots.
struct Fields<'a> {
    slots: Vec<Vec<&'a Element>>,
    schema: &'static [(&'static str, Occurs)],
    path: String,
}

impl<'a> Fields<'a> {
    fn slot(&self, name: &str) -> &[&'a Element] {
        match self.schema.iter().position(|(n, _)| *n == name) {
            Some(i) => &self.slots[i],
            None => &[],
        }
    }
    fn one(&self, name: &str) -> Option<&'a Element> {
        self.slot(name).first().copied()
    }
    /// Path of an element of this slot: indexed when the slot may repeat.
    fn path_of(&self, name: &str, index: usize) -> String {
        let repeats = self.schema.iter().any(|(n, o)| *n == name && matches!(o, Many | OneOrMore));
        if repeats { join(&self.path, &format!("{name}[{index}]")) } else { join(&self.path, name) }
    }
}

struct Reader {
    diagnostics: Vec<Diagnostic>,
    /// The CAP namespace the document uses.
    ns: &'static str,
    version: CapVersion,
    /// Polygon points read so far in the whole alert.
    points: usize,
}

impl Reader {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(path, message));
    }
    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::warning(path, message));
    }

    fn alert(&mut self, root: &Element) -> Option<Alert> {
        if root.local != "alert" {
            self.error(
                "document",
                format!("the root element is <{}>, not a CAP <alert>", root.qname()),
            );
            return None;
        }
        match root.namespace.as_deref() {
            Some(NS_CAP_1_2) => {}
            Some(NS_CAP_1_1) => {
                self.ns = NS_CAP_1_1;
                self.version = CapVersion::V1_1;
            }
            Some(NS_CAP_1_0) => {
                self.error(
                    "alert",
                    format!(
                        "CAP 1.0 (namespace {NS_CAP_1_0}) is not read: ask the sender for CAP \
                         1.2 ({NS_CAP_1_2})"
                    ),
                );
                return None;
            }
            other => {
                let got = other.map_or("no namespace".to_string(), |n| format!("namespace {n}"));
                self.error(
                    "alert",
                    format!("{got} is not CAP: a CAP 1.2 alert has xmlns=\"{NS_CAP_1_2}\""),
                );
                return None;
            }
        }
        let f = self.fields(root, "", "alert", ALERT);

        let identifier = self.id_text(&f, "identifier");
        let sender = self.id_text(&f, "sender");
        let sent = self.date(&f, "sent");
        let status = self.code::<Status>(&f, "status", Status::parse, Status::list);
        let msg_type = self.code::<MsgType>(&f, "msgType", MsgType::parse, MsgType::list);
        let source = self.opt_text(&f, "source");
        let scope = self.code::<Scope>(&f, "scope", Scope::parse, Scope::list);
        let restriction = self.opt_text(&f, "restriction");
        let addresses = self.list(&f, "addresses");
        let codes: Vec<String> =
            (0..f.slot("code").len()).filter_map(|i| self.text_at(&f, "code", i)).collect();
        let note = self.opt_text(&f, "note");
        let references = self.references(&f);
        let incidents = self.list(&f, "incidents");

        let infos_el = f.slot("info");
        if infos_el.len() > MAX_INFOS {
            self.error(
                f.path_of("info", MAX_INFOS),
                format!("more than {MAX_INFOS} info blocks: refused"),
            );
            return None;
        }
        let mut infos = Vec::new();
        for (i, e) in infos_el.iter().enumerate() {
            if let Some(info) = self.info(e, &f.path_of("info", i)) {
                infos.push(info);
            }
        }

        let (Some(identifier), Some(sender), Some(sent), Some(status), Some(msg_type), Some(scope)) =
            (identifier, sender, sent, status, msg_type, scope)
        else {
            return None;
        };
        Some(Alert {
            version: self.version,
            identifier,
            sender,
            sent,
            status,
            msg_type,
            source,
            scope,
            restriction,
            addresses: addresses.unwrap_or_default(),
            codes,
            note,
            references,
            incidents: incidents.unwrap_or_default(),
            infos,
        })
    }

    fn info(&mut self, e: &Element, path: &str) -> Option<Info> {
        let f = self.fields(e, path, "info", INFO);
        let language = match self.opt_text(&f, "language") {
            None => "en-US".to_string(),
            Some(l) if is_language_tag(&l) => l,
            Some(l) => {
                self.error(
                    join(path, "language"),
                    format!("{l:?} is not a language code (RFC 3066): write e.g. vi, vi-VN, en-US"),
                );
                String::new()
            }
        };
        let mut categories = Vec::new();
        for i in 0..f.slot("category").len() {
            let p = f.path_of("category", i);
            if let Some(t) = self.text_at(&f, "category", i)
                && let Some(c) =
                    self.enum_value(&p, &t, Category::parse, Category::list, "category")
            {
                categories.push(c);
            }
        }
        let event = self.req_text(&f, "event");
        let mut response_types = Vec::new();
        for i in 0..f.slot("responseType").len() {
            let p = f.path_of("responseType", i);
            if let Some(t) = self.text_at(&f, "responseType", i)
                && let Some(c) =
                    self.enum_value(&p, &t, ResponseType::parse, ResponseType::list, "responseType")
            {
                response_types.push(c);
            }
        }
        let urgency = self.code::<Urgency>(&f, "urgency", Urgency::parse, Urgency::list);
        let severity = self.code::<Severity>(&f, "severity", Severity::parse, Severity::list);
        let version = self.version;
        let certainty = self.code::<Certainty>(
            &f,
            "certainty",
            move |s| match s {
                "Very Likely" if version == CapVersion::V1_1 => Some(Certainty::Likely),
                s => Certainty::parse(s),
            },
            Certainty::list,
        );
        if version == CapVersion::V1_1
            && f.one("certainty").is_some_and(|c| c.text().trim() == "Very Likely")
        {
            self.warning(join(path, "certainty"), "\"Very Likely\" (CAP 1.0) read as Likely");
        }
        let audience = self.opt_text(&f, "audience");
        let event_codes = self.pairs(&f, "eventCode");
        let effective = self.opt_date(&f, "effective");
        let onset = self.opt_date(&f, "onset");
        let expires = self.opt_date(&f, "expires");
        let sender_name = self.opt_text(&f, "senderName");
        let headline = self.opt_text(&f, "headline");
        let description = self.opt_text(&f, "description");
        let instruction = self.opt_text(&f, "instruction");
        let web = self.opt_text(&f, "web");
        let contact = self.opt_text(&f, "contact");
        let parameters = self.pairs(&f, "parameter");
        let mut resources = Vec::new();
        for (i, r) in f.slot("resource").iter().enumerate() {
            if let Some(res) = self.resource(r, &f.path_of("resource", i)) {
                resources.push(res);
            }
        }
        let areas_el = f.slot("area");
        if areas_el.len() > MAX_AREAS {
            self.error(
                f.path_of("area", MAX_AREAS),
                format!("more than {MAX_AREAS} area blocks in one info: refused"),
            );
            return None;
        }
        let mut areas = Vec::new();
        for (i, a) in areas_el.iter().enumerate() {
            if let Some(area) = self.area(a, &f.path_of("area", i)) {
                areas.push(area);
            }
        }
        let (Some(event), Some(urgency), Some(severity), Some(certainty)) =
            (event, urgency, severity, certainty)
        else {
            return None;
        };
        Some(Info {
            language,
            categories,
            event,
            response_types,
            urgency,
            severity,
            certainty,
            audience,
            event_codes,
            effective,
            onset,
            expires,
            sender_name,
            headline,
            description,
            instruction,
            web,
            contact,
            parameters,
            resources,
            areas,
        })
    }

    fn resource(&mut self, e: &Element, path: &str) -> Option<Resource> {
        let schema_path = path.to_string();
        let f = self.fields_with(e, &schema_path, "resource", RESOURCE, |name, version| {
            // CAP 1.1 made mimeType optional; 1.2 requires it.
            name == "mimeType" && version == CapVersion::V1_1
        });
        let desc = self.req_text(&f, "resourceDesc");
        let mime_type = match f.one("mimeType") {
            Some(_) => self.req_text(&f, "mimeType"),
            None => Some("application/octet-stream".to_string()),
        };
        let size = match self.opt_text(&f, "size") {
            None => None,
            Some(s) => match s.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        join(path, "size"),
                        format!("{s:?} is not a size in bytes (a whole number)"),
                    );
                    None
                }
            },
        };
        let uri = self.opt_text(&f, "uri");
        let deref_uri_len = f.one("derefUri").map(|d| d.text().trim().len());
        if let Some(d) = f.one("derefUri") {
            self.no_elements(d, &join(path, "derefUri"));
        }
        let digest = self.opt_text(&f, "digest");
        if let Some(d) = &digest
            && !d.is_empty()
            && !(d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            self.warning(
                join(path, "digest"),
                format!("{d:?} is not a SHA-1 digest (40 hex digits)"),
            );
        }
        Some(Resource { desc: desc?, mime_type: mime_type?, size, uri, deref_uri_len, digest })
    }

    fn area(&mut self, e: &Element, path: &str) -> Option<Area> {
        let f = self.fields(e, path, "area", AREA);
        let desc = self.req_text(&f, "areaDesc");
        let mut polygons = Vec::new();
        for i in 0..f.slot("polygon").len() {
            let p = f.path_of("polygon", i);
            if let Some(t) = self.text_at(&f, "polygon", i)
                && let Some(poly) = self.polygon(&p, &t)
            {
                polygons.push(poly);
            }
        }
        let mut circles = Vec::new();
        for i in 0..f.slot("circle").len() {
            let p = f.path_of("circle", i);
            if let Some(t) = self.text_at(&f, "circle", i) {
                match parse_circle(&t) {
                    Ok(c) => circles.push(c),
                    Err(m) => self.error(p, m),
                }
            }
        }
        let geocodes = self.pairs(&f, "geocode");
        let altitude = self.opt_number(&f, "altitude");
        let ceiling = self.opt_number(&f, "ceiling");
        Some(Area { desc: desc?, polygons, circles, geocodes, altitude, ceiling })
    }

    fn polygon(&mut self, path: &str, text: &str) -> Option<Polygon> {
        if text.is_empty() {
            self.warning(path, "empty: ignored (this area has no polygon here)");
            return None;
        }
        let n = text.split_whitespace().count();
        if n > MAX_POLYGON_POINTS {
            self.error(
                path,
                format!(
                    "{n} points, more than the {MAX_POLYGON_POINTS} a polygon may have: refused"
                ),
            );
            return None;
        }
        if self.points + n > MAX_TOTAL_POINTS {
            self.error(
                path,
                format!("more than {MAX_TOTAL_POINTS} polygon points in this alert: refused"),
            );
            return None;
        }
        self.points += n;
        let mut points = Vec::with_capacity(n);
        for (i, pair) in text.split_whitespace().enumerate() {
            match parse_point(pair) {
                Ok(p) => points.push(p),
                Err(m) => {
                    self.error(path, format!("point {} {pair:?} {m}", i + 1));
                    return None;
                }
            }
        }
        if points.len() < 4 {
            self.error(
                path,
                format!(
                    "fewer than 4 points ({} given): a polygon needs at least 4, the last the same as the first",
                    points.len()
                ),
            );
            return None;
        }
        if points.first() != points.last() {
            self.error(
                path,
                format!(
                    "not closed: the last point {} is not the first {}",
                    points[points.len() - 1],
                    points[0]
                ),
            );
            return None;
        }
        Some(Polygon { points })
    }

    /// Sorts an element's children into `schema`'s slots, reporting unknown, misplaced,
    /// repeated and missing elements, and text between elements.
    fn fields<'a>(
        &mut self,
        e: &'a Element,
        path: &str,
        what: &str,
        schema: &'static [(&'static str, Occurs)],
    ) -> Fields<'a> {
        self.fields_with(e, path, what, schema, |_, _| false)
    }

    fn fields_with<'a>(
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
    fn simple_text(&mut self, e: &Element, path: &str) -> Option<String> {
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

    fn no_elements(&mut self, e: &Element, path: &str) -> bool {
        if let Some(c) = e.elements().next() {
            self.error(
                path,
                format!("holds an element <{}>: {} holds text only", c.qname(), e.local),
            );
            return false;
        }
        true
    }

    fn text_at(&mut self, f: &Fields<'_>, name: &str, i: usize) -> Option<String> {
        let e = *f.slot(name).get(i)?;
        self.simple_text(e, &f.path_of(name, i))
    }

    fn opt_text(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
        self.text_at(f, name, 0)
    }

    /// Required text (missing was reported by `fields`). Empty is allowed only where the
    /// specification's type allows it; here it is reported.
    fn req_text(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
        let t = self.text_at(f, name, 0)?;
        if t.is_empty() {
            self.error(f.path_of(name, 0), format!("empty: write the {name}"));
            return None;
        }
        Some(t)
    }

    /// `identifier`, `sender`: no spaces, commas, < or &.
    fn id_text(&mut self, f: &Fields<'_>, name: &str) -> Option<String> {
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

    fn code<T>(
        &mut self,
        f: &Fields<'_>,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        list: fn() -> String,
    ) -> Option<T> {
        let t = self.text_at(f, name, 0)?;
        self.enum_value(&f.path_of(name, 0), &t, parse, list, name)
    }

    fn enum_value<T>(
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

    fn date(&mut self, f: &Fields<'_>, name: &str) -> Option<DateTime<FixedOffset>> {
        let t = self.text_at(f, name, 0)?;
        match parse_cap_datetime(&t) {
            Ok(d) => Some(d),
            Err(m) => {
                self.error(f.path_of(name, 0), m);
                None
            }
        }
    }

    fn opt_date(&mut self, f: &Fields<'_>, name: &str) -> Option<DateTime<FixedOffset>> {
        f.one(name)?;
        self.date(f, name)
    }

    fn opt_number(&mut self, f: &Fields<'_>, name: &str) -> Option<f64> {
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
    fn list(&mut self, f: &Fields<'_>, name: &str) -> Option<Vec<String>> {
        let t = self.opt_text(f, name)?;
        match split_quoted(&t) {
            Ok(v) => Some(v),
            Err(m) => {
                self.error(f.path_of(name, 0), m);
                None
            }
        }
    }

    fn references(&mut self, f: &Fields<'_>) -> Vec<AlertKey> {
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

    fn pairs(&mut self, f: &Fields<'_>, name: &str) -> Vec<ValuePair> {
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

/// How to fill in a missing required element.
fn hint(name: &str) -> String {
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
fn clip(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(60).collect::<String>())
    }
}

/// RFC 3066: `primary(-subtag)*`, letters for the primary, letters and digits after.
fn is_language_tag(s: &str) -> bool {
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

fn parse_point(pair: &str) -> Result<LatLon, String> {
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
fn split_quoted(s: &str) -> Result<Vec<String>, String> {
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
