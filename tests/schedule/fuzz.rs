//! Property tests with a fixed seed: random bytes, random mutations of the shipped
//! samples and randomly generated cron fields never panic the parser or the expansion,
//! and `Parsed::schedule` is present exactly when no diagnostic is an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use chrono::{DateTime, Utc};
use loa::schedule::{self, Parsed, Timeline};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test instant").to_utc()
}

/// Parses and, when it parsed, expands around a DST change; panics with the input when
/// any step panics or an invariant breaks.
fn exercise(source: &str) -> Parsed {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let parsed = schedule::parse(source, "fuzz.toml", Path::new("base"));
        let has_error = parsed.diagnostics.iter().any(|d| d.is_error());
        assert_eq!(parsed.schedule.is_some(), !has_error, "schedule iff no error");
        let lines = source.split('\n').count();
        for d in &parsed.diagnostics {
            assert!(d.line >= 1 && d.line <= lines && d.column >= 1, "bad position {d}");
            assert!(!d.message.is_empty() && !d.message.ends_with('.'), "bad message {d}");
        }
        if let Some(s) = &parsed.schedule {
            let from = instant("2027-03-25T00:00:00Z");
            let until = instant("2027-04-01T00:00:00Z");
            let week = s.occurrences(from, until);
            assert!(week.windows(2).all(|w| w[0].planned <= w[1].planned));
            assert!(week.iter().all(|o| o.planned >= from && o.planned < until));
            let next = s.next(from, 5);
            assert!(next.len() <= 5);
            let tl = Timeline::new(vec![s.clone()]);
            let _ = tl.conflicts(from, until, &|_| None);
        }
        parsed
    }));
    match result {
        Ok(p) => p,
        Err(_) => panic!("panicked on input:\n{source:?}"),
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x10a);
    for _ in 0..2000 {
        let len = rng.random_range(0..200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

const TOKENS: &[&str] = &[
    "=",
    "[",
    "]",
    "[[item]]",
    "\"",
    "'",
    "\n",
    "#",
    ",",
    "{",
    "}",
    "1-",
    "*/0",
    "L",
    "5#1",
    "W",
    "@daily",
    "2027-02-29",
    "2027-02-30",
    "2026-13-01",
    "T25:61:00",
    "-1",
    "99999999999999999999",
    "0 0 31 2 *",
    "Europe/Berlin",
    "Asia/Ho_Chi_Minh",
    "Nowhere/City",
    "priority",
    "emergency",
    "ắ",
    "\u{0}",
    "\t",
    " ",
    "cron",
    "at",
    "from",
    "until",
    "skip",
    "max_delay",
    "duration",
    "gain_db",
    "1e400",
    "nan",
    "inf",
    "true",
    "sha256:",
    "../",
    "10m",
    "0s",
    "1h70m",
];

fn mutate(rng: &mut StdRng, base: &str) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for _ in 0..rng.random_range(1..6) {
        if chars.is_empty() {
            break;
        }
        let at = rng.random_range(0..chars.len());
        match rng.random_range(0..4) {
            0 => {
                let end = (at + rng.random_range(1..12)).min(chars.len());
                chars.drain(at..end);
            }
            1 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            2 => {
                let end = (at + rng.random_range(1..40)).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                let to = rng.random_range(0..chars.len());
                chars.splice(to..to, copy);
            }
            _ => chars[at] = char::from(rng.random_range(0x20u8..0x7f)),
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_samples_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules");
    let samples: Vec<String> = ["provincial.toml", "district.toml"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).expect("sample"))
        .collect();
    let mut rng = StdRng::seed_from_u64(0x5ca1e);
    let mut parsed_ok = 0;
    for i in 0..1500 {
        let source = mutate(&mut rng, &samples[i % samples.len()]);
        if exercise(&source).schedule.is_some() {
            parsed_ok += 1;
        }
    }
    // Some mutations (inside comments, titles) keep the file valid: the expansion path
    // is exercised too.
    assert!(parsed_ok > 50, "only {parsed_ok} mutated files parsed");
}

#[test]
fn random_cron_fields_never_panic() {
    const FIELD: &[&str] = &[
        "*", "0", "1", "5", "7", "8", "23", "24", "29", "30", "31", "59", "60", "*/15", "*/0",
        "1-5", "5-1", "1,3,5", "L", "5L", "1#1", "1#6", "15W", "LW", "?", "JAN", "MON-FRI", "-",
        "",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    let zones = ["Europe/Berlin", "Asia/Ho_Chi_Minh", "America/Sao_Paulo", "Australia/Lord_Howe"];
    for _ in 0..600 {
        let n = rng.random_range(4..8);
        let fields: Vec<&str> = (0..n).map(|_| FIELD[rng.random_range(0..FIELD.len())]).collect();
        let tz = zones[rng.random_range(0..zones.len())];
        let source = format!(
            "layer = \"local\"\ntimezone = \"{tz}\"\n[[item]]\nid = \"x\"\ntitle = \"T\"\n\
             audio = \"sha256:{}\"\ncron = \"{}\"\n",
            "ab".repeat(32),
            fields.join(" ")
        );
        exercise(&source);
    }
}

#[test]
fn extreme_instants_never_panic() {
    let src = format!(
        "layer = \"local\"\ntimezone = \"Pacific/Kiritimati\"\n\
         [[item]]\nid = \"a\"\ntitle = \"A\"\naudio = \"sha256:{h}\"\ncron = \"0 0 * * *\"\n\
         [[item]]\nid = \"b\"\ntitle = \"B\"\naudio = \"sha256:{h}\"\nat = 9999-12-31T23:59:59\n",
        h = "ab".repeat(32)
    );
    let parsed = exercise(&src);
    let Some(s) = parsed.schedule else { panic!("{:?}", parsed.diagnostics) };
    let tl = Timeline::new(vec![s]);
    let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    assert!(tl.next(max, 3).is_empty());
    assert!(tl.occurrences(max, max).is_empty());
    let near_end = instant("9999-12-31T00:00:00Z");
    assert!(tl.occurrences(near_end, max).iter().any(|o| o.item_id == "b"));
    assert_eq!(tl.next(min, 1).len(), 1);
}
