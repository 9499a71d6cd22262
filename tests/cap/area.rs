//! Area → stations: a polygon selects exactly the stations inside it (points a hair to
//! either side of every edge, on edges and vertices, a concave polygon, rays through
//! vertices), a circle measures km on the sphere, a geocode matches codes.

use loa::cap::area::{CapStation, circle_contains, distance_km, polygon_contains, select};
use loa::cap::model::{Area, Circle, LatLon, Polygon, ValuePair};

fn ll(lat: f64, lon: f64) -> LatLon {
    LatLon { lat, lon }
}

fn polygon(points: &[(f64, f64)]) -> Polygon {
    Polygon { points: points.iter().map(|&(lat, lon)| ll(lat, lon)).collect() }
}

/// A hair: 1e-6 degrees, about 11 cm.
const HAIR: f64 = 1e-6;

#[test]
fn points_a_hair_to_either_side_of_each_edge() {
    // A square, and a triangle with slanted edges.
    let shapes = [
        polygon(&[(10.0, 105.0), (10.0, 106.0), (11.0, 106.0), (11.0, 105.0), (10.0, 105.0)]),
        polygon(&[(10.0, 105.0), (10.0, 107.0), (12.0, 106.0), (10.0, 105.0)]),
    ];
    for poly in &shapes {
        let pts = &poly.points;
        let centroid = {
            let n = (pts.len() - 1) as f64;
            ll(
                pts[..pts.len() - 1].iter().map(|p| p.lat).sum::<f64>() / n,
                pts[..pts.len() - 1].iter().map(|p| p.lon).sum::<f64>() / n,
            )
        };
        for w in pts.windows(2) {
            for t in [0.1, 0.5, 0.9] {
                let on =
                    ll(w[0].lat + t * (w[1].lat - w[0].lat), w[0].lon + t * (w[1].lon - w[0].lon));
                // Unit normal of the edge, pointing away from the centroid.
                let (dlat, dlon) = (w[1].lat - w[0].lat, w[1].lon - w[0].lon);
                let len = (dlat * dlat + dlon * dlon).sqrt();
                let (mut nlat, mut nlon) = (-dlon / len, dlat / len);
                if (on.lat - centroid.lat) * nlat + (on.lon - centroid.lon) * nlon < 0.0 {
                    nlat = -nlat;
                    nlon = -nlon;
                }
                let outside = ll(on.lat + HAIR * nlat, on.lon + HAIR * nlon);
                let inside = ll(on.lat - HAIR * nlat, on.lon - HAIR * nlon);
                assert!(polygon_contains(poly, inside), "{inside:?} is inside {poly:?}");
                assert!(!polygon_contains(poly, outside), "{outside:?} is outside {poly:?}");
                assert!(polygon_contains(poly, on), "{on:?} on an edge counts as inside");
            }
        }
        for v in pts {
            assert!(polygon_contains(poly, *v), "a vertex counts as inside");
        }
    }
}

#[test]
fn a_concave_polygon_leaves_its_notch_out() {
    // A U: the square 0..3 × 0..3 less the notch lat 1..3, lon 1..2.
    let u = polygon(&[
        (0.0, 0.0),
        (0.0, 3.0),
        (3.0, 3.0),
        (3.0, 2.0),
        (1.0, 2.0),
        (1.0, 1.0),
        (3.0, 1.0),
        (3.0, 0.0),
        (0.0, 0.0),
    ]);
    for (p, inside) in [
        (ll(0.5, 0.5), true),
        (ll(0.5, 1.5), true),  // below the notch
        (ll(2.5, 0.5), true),  // left arm
        (ll(2.5, 2.5), true),  // right arm
        (ll(2.0, 1.5), false), // in the notch
        (ll(1.0 + HAIR, 1.5), false),
        (ll(1.0 - HAIR, 1.5), true),
        (ll(2.0, 1.0 - HAIR), true),
        (ll(2.0, 1.0 + HAIR), false),
        (ll(3.5, 1.5), false),
        (ll(-HAIR, 1.5), false),
    ] {
        assert_eq!(polygon_contains(&u, p), inside, "{p:?}");
    }
}

#[test]
fn rays_through_vertices_count_once() {
    // A diamond: a point level with its left and right vertices.
    let diamond = polygon(&[(0.0, 1.0), (1.0, 2.0), (2.0, 1.0), (1.0, 0.0), (0.0, 1.0)]);
    assert!(polygon_contains(&diamond, ll(1.0, 1.0)));
    assert!(!polygon_contains(&diamond, ll(1.0, -0.5)));
    assert!(!polygon_contains(&diamond, ll(1.0, 2.5)));
    // A zigzag whose top vertices are level with the point.
    let zigzag = polygon(&[
        (0.0, 0.0),
        (2.0, 1.0),
        (1.0, 2.0),
        (2.0, 3.0),
        (1.0, 4.0),
        (2.0, 5.0),
        (0.0, 6.0),
        (0.0, 0.0),
    ]);
    assert!(!polygon_contains(&zigzag, ll(2.0, -1.0)));
    assert!(polygon_contains(&zigzag, ll(1.0, 1.0)));
    assert!(
        polygon_contains(&zigzag, ll(1.0, 3.0)),
        "a vertex level with the point, the point inside"
    );
    assert!(!polygon_contains(&zigzag, ll(1.5, 2.0)), "between two teeth");
}

#[test]
fn circles_are_measured_in_km_on_the_sphere() {
    // Ha Noi to Ho Chi Minh City, great circle on the mean-radius sphere.
    let d = distance_km(ll(21.0285, 105.8542), ll(10.8231, 106.6297));
    assert!((d - 1137.806).abs() < 0.01, "{d}");
    let centre = ll(10.0, 105.0);
    let c = Circle { center: centre, radius_km: 10.0 };
    // Due north and due east, 9.99 km and 10.01 km away. One degree of longitude at 10°N
    // is shorter than one of latitude: a circle in km is not a circle in degrees.
    let km_per_deg_lat = 6371.0088 * std::f64::consts::PI / 180.0;
    let km_per_deg_lon_at = |lat: f64| km_per_deg_lat * lat.to_radians().cos();
    for (p, inside) in [
        (ll(10.0 + 9.99 / km_per_deg_lat, 105.0), true),
        (ll(10.0 + 10.01 / km_per_deg_lat, 105.0), false),
        (ll(10.0, 105.0 + 9.99 / km_per_deg_lon_at(10.0)), true),
        (ll(10.0, 105.0 + 10.01 / km_per_deg_lon_at(10.0)), false),
        (ll(10.0, 105.0 + 10.01 / km_per_deg_lat), true), // degrees of latitude would say outside
        (centre, true),
    ] {
        assert_eq!(circle_contains(&c, p), inside, "{p:?}: {} km", distance_km(centre, p));
    }
    // A radius of 0 (USGS writes it for an epicentre) holds only its centre.
    let point = Circle { center: centre, radius_km: 0.0 };
    assert!(circle_contains(&point, centre));
    assert!(!circle_contains(&point, ll(10.0 + HAIR, 105.0)));
}

#[test]
fn select_returns_exactly_the_stations_inside_in_their_order() {
    let stations = vec![
        CapStation { id: "in-1".into(), position: Some(ll(10.5, 105.5)), codes: vec![] },
        CapStation { id: "out".into(), position: Some(ll(11.0 + HAIR, 105.5)), codes: vec![] },
        CapStation { id: "edge".into(), position: Some(ll(11.0, 105.5)), codes: vec![] },
        CapStation { id: "no-position".into(), position: None, codes: vec!["30280".into()] },
        CapStation { id: "near".into(), position: Some(ll(12.0, 105.0)), codes: vec![] },
        CapStation {
            id: "far".into(),
            position: Some(ll(21.0, 105.8)),
            codes: vec!["30281".into()],
        },
    ];
    let area = Area {
        desc: "test".into(),
        polygons: vec![polygon(&[
            (10.0, 105.0),
            (10.0, 106.0),
            (11.0, 106.0),
            (11.0, 105.0),
            (10.0, 105.0),
        ])],
        circles: vec![Circle { center: ll(12.0, 105.0), radius_km: 1.0 }],
        geocodes: vec![ValuePair { name: "MaDVHC".into(), value: "30280".into() }],
        altitude: None,
        ceiling: None,
    };
    assert_eq!(select([&area], &stations, &[]), ["in-1", "edge", "no-position", "near"]);
    let polygon_only = Area { circles: vec![], geocodes: vec![], ..area.clone() };
    assert_eq!(select([&polygon_only], &stations, &[]), ["in-1", "edge"]);
    // Only geocodes whose valueName is an admin-unit code count, when configured.
    assert_eq!(select([&area], &stations, &["SAME".into()]), ["in-1", "edge", "near"]);
}
