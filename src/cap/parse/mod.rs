//! The element tree of [`super::xml`] → an [`Alert`], checking every element the CAP 1.2
//! specification defines: presence and number, order, code values, dates, geometry and
//! the bounds below. Every problem found is reported, each naming its element.
//! CAP 1.1 is read as 1.2 (its `resource` may omit `mimeType`; its deprecated certainty
//! "Very Likely" reads as Likely).

use super::model::*;
use super::xml::Element;

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
pub(super) enum Occurs {
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

mod fields;
mod values;

use fields::join;
use values::{is_language_tag, parse_point};
pub use values::{parse_cap_datetime, parse_circle, parse_reference};

pub(super) struct Reader {
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
}
