//! Which stations an alert's areas reach: a polygon or a circle selects the stations with
//! coordinates inside it, a geocode the stations carrying that administrative-unit code.
//!
//! Geometry: CAP coordinates are WGS 84 degrees. A polygon is tested in the plane of
//! longitude and latitude (as CAP's authors and every CAP consumer draw them; the
//! antimeridian is not crossed anywhere loa runs), a point on an edge or a vertex is
//! inside. A circle's radius is a great-circle distance in km on a sphere of the mean
//! Earth radius (6371.0088 km), its rim inside.

use serde::Deserialize;

use super::model::{Area, Circle, LatLon, Polygon};

/// Mean Earth radius (IUGG), km: the sphere circles are measured on.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// How far from an edge (in degrees, about 0.1 mm) a point still counts as on it.
const EDGE_TOLERANCE_DEG: f64 = 1e-9;

/// A station as the area selection sees it: central's stations with the place `loa
/// central station add … --lat --lon --geocode` gave them, or the stations file of `loa
/// cap check --stations`.
#[derive(Debug, Clone, PartialEq)]
pub struct CapStation {
    pub id: String,
    pub position: Option<LatLon>,
    /// Administrative-unit codes (the commune's, and the district's or province's if a
    /// geocode may name those), matched exactly against `geocode/value`.
    pub codes: Vec<String>,
}

/// True when `p` is inside the polygon or on its boundary (even-odd rule, so a concave
/// polygon is handled; a self-crossing one counts its overlaps as outside).
pub fn polygon_contains(poly: &Polygon, p: LatLon) -> bool {
    let pts = &poly.points;
    if pts.len() < 2 {
        return false;
    }
    let (x, y) = (p.lon, p.lat);
    let mut inside = false;
    for w in pts.windows(2) {
        let (ax, ay, bx, by) = (w[0].lon, w[0].lat, w[1].lon, w[1].lat);
        if on_segment(x, y, ax, ay, bx, by) {
            return true;
        }
        if (ay > y) != (by > y) {
            let cross_x = ax + (y - ay) * (bx - ax) / (by - ay);
            if x < cross_x {
                inside = !inside;
            }
        }
    }
    inside
}

fn on_segment(x: f64, y: f64, ax: f64, ay: f64, bx: f64, by: f64) -> bool {
    let (dx, dy) = (bx - ax, by - ay);
    let len = (dx * dx + dy * dy).sqrt();
    if len == 0.0 {
        return (x - ax).abs() <= EDGE_TOLERANCE_DEG && (y - ay).abs() <= EDGE_TOLERANCE_DEG;
    }
    let distance = (dx * (y - ay) - dy * (x - ax)).abs() / len;
    let along = (dx * (x - ax) + dy * (y - ay)) / len;
    distance <= EDGE_TOLERANCE_DEG
        && along >= -EDGE_TOLERANCE_DEG
        && along <= len + EDGE_TOLERANCE_DEG
}

/// Great-circle distance in km (haversine) on the mean-radius sphere.
pub fn distance_km(a: LatLon, b: LatLon) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// True when `p` is within the circle (its rim included, to a millimetre).
pub fn circle_contains(c: &Circle, p: LatLon) -> bool {
    distance_km(c.center, p) <= c.radius_km + 1e-6
}

/// Whether one area reaches the station: any polygon, circle or geocode does (CAP: the
/// area is the union of its shapes and codes). `geocode_names` limits which geocode
/// `valueName`s are administrative-unit codes (empty: any).
pub fn area_selects(area: &Area, station: &CapStation, geocode_names: &[String]) -> bool {
    if let Some(p) = station.position
        && (area.polygons.iter().any(|poly| polygon_contains(poly, p))
            || area.circles.iter().any(|c| circle_contains(c, p)))
    {
        return true;
    }
    area.geocodes.iter().any(|g| {
        (geocode_names.is_empty() || geocode_names.iter().any(|n| n == &g.name))
            && station.codes.iter().any(|c| c == g.value.trim())
    })
}

/// The ids of the stations any of `areas` reaches, in the order of `stations`.
pub fn select<'a>(
    areas: impl IntoIterator<Item = &'a Area> + Clone,
    stations: &[CapStation],
    geocode_names: &[String],
) -> Vec<String> {
    stations
        .iter()
        .filter(|s| areas.clone().into_iter().any(|a| area_selects(a, s, geocode_names)))
        .map(|s| s.id.clone())
        .collect()
}

/// One line per shape, for people: what would select stations.
pub fn describe(area: &Area) -> Vec<String> {
    let mut out = Vec::new();
    for p in &area.polygons {
        let (mut lat0, mut lat1, mut lon0, mut lon1) = (90.0f64, -90.0f64, 180.0f64, -180.0f64);
        for q in &p.points {
            lat0 = lat0.min(q.lat);
            lat1 = lat1.max(q.lat);
            lon0 = lon0.min(q.lon);
            lon1 = lon1.max(q.lon);
        }
        out.push(format!(
            "polygon of {} points within lat {lat0}..{lat1}, lon {lon0}..{lon1}",
            p.points.len()
        ));
    }
    for c in &area.circles {
        out.push(format!("circle of {} km around {}", c.radius_km, c.center));
    }
    for g in &area.geocodes {
        out.push(format!("geocode {} = {}", g.name, g.value));
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StationsFile {
    #[serde(default)]
    station: Vec<StationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StationEntry {
    id: String,
    // Accepted so a list of central's stations can be pasted in; not used here.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    district: Option<String>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
    #[serde(default)]
    codes: Vec<String>,
}

/// Reads a stations file (TOML):
/// ```toml
/// [[station]]
/// id = "xa-an-binh"      # the station id central knows
/// lat = 10.3833           # optional, WGS 84 degrees, with lon
/// lon = 105.4333
/// codes = ["30280"]       # optional administrative-unit codes
/// ```
pub fn stations_from_toml(text: &str) -> Result<Vec<CapStation>, String> {
    let file: StationsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out: Vec<CapStation> = Vec::with_capacity(file.station.len());
    for (i, s) in file.station.into_iter().enumerate() {
        let at = format!("station[{i}] ({:?})", s.id);
        if s.id.trim().is_empty() {
            return Err(format!("station[{i}]: id is empty"));
        }
        if out.iter().any(|o| o.id == s.id) {
            return Err(format!("{at}: the id appears twice"));
        }
        let position = match (s.lat, s.lon) {
            (None, None) => None,
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err(format!("{at}: lat must be -90..90 and lon -180..180"));
                }
                Some(LatLon { lat, lon })
            }
            _ => return Err(format!("{at}: give both lat and lon, or neither")),
        };
        out.push(CapStation { id: s.id, position, codes: s.codes });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::model::ValuePair;

    fn ll(lat: f64, lon: f64) -> LatLon {
        LatLon { lat, lon }
    }

    #[test]
    fn distance_matches_known_values() {
        // One degree of a great circle on this sphere.
        let d = distance_km(ll(0.0, 0.0), ll(0.0, 1.0));
        assert!((d - 111.195).abs() < 0.001, "{d}");
        assert_eq!(distance_km(ll(10.0, 105.0), ll(10.0, 105.0)), 0.0);
    }

    #[test]
    fn a_geocode_selects_by_code_and_value_name() {
        let area = Area {
            desc: "x".into(),
            polygons: vec![],
            circles: vec![],
            geocodes: vec![ValuePair { name: "VN-ADMIN".into(), value: " 30280 ".into() }],
            altitude: None,
            ceiling: None,
        };
        let s = CapStation { id: "a".into(), position: None, codes: vec!["30280".into()] };
        assert!(area_selects(&area, &s, &[]));
        assert!(area_selects(&area, &s, &["VN-ADMIN".into()]));
        assert!(!area_selects(&area, &s, &["SAME".into()]));
        let other = CapStation { id: "b".into(), position: None, codes: vec!["3028".into()] };
        assert!(!area_selects(&area, &other, &[]));
    }

    #[test]
    fn stations_file_is_checked() {
        let ok = stations_from_toml(
            "[[station]]\nid = \"a\"\nlat = 10.0\nlon = 105.0\ncodes = [\"1\"]\n[[station]]\nid = \"b\"\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].position, None);
        assert!(
            stations_from_toml("[[station]]\nid = \"a\"\nlat = 1.0\n")
                .unwrap_err()
                .contains("both lat and lon")
        );
        assert!(
            stations_from_toml("[[station]]\nid = \"a\"\n[[station]]\nid = \"a\"\n")
                .unwrap_err()
                .contains("twice")
        );
        assert!(stations_from_toml("[[station]]\nid = \"a\"\nlat = 91.0\nlon = 0.0\n").is_err());
        assert!(stations_from_toml("[[station]]\nid = \"a\"\nkey = 1\n").is_err());
    }
}
