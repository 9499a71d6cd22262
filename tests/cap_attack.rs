//! Entity attacks ("billion laughs", external entities) are refused before anything is
//! expanded or read, quickly and with memory that does not grow. One test in its own
//! binary, so the allocation count sees nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use loa::cap::{self, TrustStore};

/// Counts the bytes allocated and live, and the peak, for the memory test.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BILLION_LAUGHS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X</identifier><sender>s@x</sender>
<sent>2026-12-01T05:00:00+07:00</sent><status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><category>Met</category><event>&lol9;</event><urgency>Immediate</urgency><severity>Extreme</severity>
<certainty>Observed</certainty><headline>&lol9;</headline></info></alert>"#;

const XXE: &str = r#"<?xml version="1.0"?>
<!DOCTYPE alert [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> <!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p; ]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"#;

#[test]
fn entity_attacks_are_refused_before_anything_grows() {
    for (name, doc) in [("billion laughs", BILLION_LAUGHS), ("external entity", XXE)] {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let checked = cap::check(doc.as_bytes(), &TrustStore::new());
        let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        assert!(checked.alert.is_none());
        let e: Vec<String> = checked.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(e.len(), 1, "{name}: {e:?}");
        assert!(
            e[0].starts_with("xml: line 2, column 1: a DOCTYPE is not allowed"),
            "{name}: {e:?}"
        );
        assert!(!e[0].contains("root:"), "{name}");
        // The document is 1-2 KB; reading it allocates a few times that, where expanding
        // the entities would take 3 GB.
        assert!(grew < 64 * 1024, "{name}: {grew} bytes allocated");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{name}");
    }
}
