//! Areas: where a station sits in the province, as a path of names from the top
//! (`"Tri Tôn"`, `"Tri Tôn/Ba Chúc"`). Since July 2025 Vietnam's local government has
//! two levels (province, commune) and many provinces have no district any more, so a
//! station's place is a path of any depth, not a district name.
//!
//! A role or a target naming an area covers that area and everything under it
//! ([`within`]): `district:Tri Tôn` sees `"Tri Tôn"` and `"Tri Tôn/Ba Chúc"`, not
//! `"Tri Tôn Mới"`. A district name stored before areas existed is a path of one name, so
//! every existing station, token and report keeps its meaning unchanged.
//!
//! Comparisons are by segment with the blanks around each name ignored, so a path typed
//! `"Tri Tôn / Ba Chúc"` is the same place as `"Tri Tôn/Ba Chúc"`.

/// Most names in a path (province-level areas have at most a few levels below them).
pub const MAX_DEPTH: usize = 6;
/// Longest area path, in characters.
pub const MAX_CHARS: usize = 200;
/// What separates the names of a path.
pub const SEPARATOR: char = '/';

/// The names of `path`, each trimmed; empty names (a stray `/`) are skipped.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split(SEPARATOR).map(str::trim).filter(|s| !s.is_empty())
}

/// Whether `path` is the area `scope` or lies under it. An empty scope covers nothing.
pub fn within(path: &str, scope: &str) -> bool {
    let mut inside = segments(path);
    let mut any = false;
    for name in segments(scope) {
        any = true;
        if inside.next() != Some(name) {
            return false;
        }
    }
    any
}

/// `path` written the one way it is stored: names trimmed, joined by `/`. Refused (with
/// what to write instead) when empty, too deep, too long, or holding control characters.
pub fn normalise(path: &str) -> Result<String, String> {
    if path.chars().any(char::is_control) {
        return Err("an area may not contain control characters".into());
    }
    let names: Vec<&str> = segments(path).collect();
    if names.is_empty() {
        return Err(
            "the area is empty: write a name, e.g. \"Tri Tôn\" or \"Tri Tôn/Ba Chúc\"".into()
        );
    }
    if names.len() > MAX_DEPTH {
        return Err(format!("the area has {} levels: at most {MAX_DEPTH}", names.len()));
    }
    let joined = names.join("/");
    if joined.chars().count() > MAX_CHARS {
        return Err(format!("the area is longer than {MAX_CHARS} characters"));
    }
    Ok(joined)
}

/// The area one level above `path` (`None` at the top).
pub fn parent(path: &str) -> Option<String> {
    let names: Vec<&str> = segments(path).collect();
    (names.len() > 1).then(|| names[..names.len() - 1].join("/"))
}

/// `path` and every area above it, from the top: `"A/B/C"` → `A`, `A/B`, `A/B/C`.
pub fn ancestry(path: &str) -> Vec<String> {
    let names: Vec<&str> = segments(path).collect();
    (1..=names.len()).map(|n| names[..n].join("/")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_covers_itself_and_what_lies_under_it_only() {
        assert!(within("Tri Tôn", "Tri Tôn"));
        assert!(within("Tri Tôn/Ba Chúc", "Tri Tôn"));
        assert!(within(" Tri Tôn / Ba Chúc ", "Tri Tôn/Ba Chúc"));
        assert!(!within("Tri Tôn Mới", "Tri Tôn"));
        assert!(!within("Tri Tôn", "Tri Tôn/Ba Chúc"));
        assert!(!within("Tịnh Biên/Ba Chúc", "Ba Chúc"));
        assert!(!within("Tri Tôn", ""), "an empty scope covers nothing");
        assert!(!within("Tri Tôn", " / "), "nor does one of blanks");
    }

    #[test]
    fn paths_are_stored_one_way_and_bounded() {
        assert_eq!(normalise(" Tri Tôn /Ba Chúc").unwrap(), "Tri Tôn/Ba Chúc");
        assert_eq!(normalise("Tri Tôn").unwrap(), "Tri Tôn", "a district is a path of one");
        assert!(normalise(" / ").unwrap_err().contains("empty"));
        assert!(normalise("a\u{1b}b").is_err());
        let deep = ["x"; MAX_DEPTH].join("/");
        assert!(normalise(&deep).is_ok());
        assert!(normalise(&format!("{deep}/y")).unwrap_err().contains("levels"));
        assert!(normalise(&"x".repeat(MAX_CHARS)).is_ok());
        assert!(normalise(&"x".repeat(MAX_CHARS + 1)).unwrap_err().contains("longer"));
    }

    #[test]
    fn parents_and_ancestry() {
        assert_eq!(parent("Tri Tôn/Ba Chúc").as_deref(), Some("Tri Tôn"));
        assert_eq!(parent("Tri Tôn"), None);
        assert_eq!(ancestry("A/B/C"), ["A", "A/B", "A/B/C"]);
    }
}
