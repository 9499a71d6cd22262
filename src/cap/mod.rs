//! Warnings from the disaster authorities: CAP 1.2 alerts (CAP 1.1 read as 1.2) in,
//! bulletin plans out. Pure: bytes, stations, settings and "now" come in; nothing here
//! reads a file, opens a socket or looks at the clock.
//!
//! # Layout
//! - [`xml`]: bytes → element tree. Size checked first (5 MiB), encoding as declared,
//!   DOCTYPE refused (no entity is ever declared, expanded or fetched), bounded.
//! - [`parse`]: element tree → [`model::Alert`], every element checked, every problem
//!   named by its path (`info[0]/area[1]/polygon[0]: fewer than 4 points …`).
//! - [`validate`]: the rules between elements (scope and addresses, references, times).
//! - [`signature`], [`c14n`]: enveloped XML signatures verified against trusted keys.
//! - [`area`]: polygons, circles and geocodes → the stations inside.
//! - [`bulletin`]: alert → [`bulletin::CapBulletinPlan`] or why none.
//! - [`ledger`]: the sequence of alerts → bulletins made and cancelled.
//! - [`config`]: the `[cap]` settings (priority table, expiry, trusted signers, auto-air,
//!   feeds).
//! - [`feed`]: an Atom or RSS index → the links to the CAP documents it lists.
//!
//! # Use (what central's ingest, `central::cap`, does)
//! ```no_run
//! # use loa::cap::{self, CapConfig, TrustStore, AlertLedger};
//! # let (bytes, stations, now) = (Vec::<u8>::new(), Vec::new(), chrono::Utc::now());
//! let config = CapConfig::default();
//! let trust = TrustStore::new(); // add_pem() for each trusted signer
//! let checked = cap::check(&bytes, &trust);
//! if let Some(alert) = &checked.alert {
//!     let decision = cap::plan(alert, Some(&stations), &config, now);
//!     let mut ledger = AlertLedger::new();
//!     for action in ledger.apply(alert, decision) {
//!         // Make(plan): push it (auto-air if config.auto_air(&plan, &checked.signature),
//!         // else wait for a person); Cancel { alert, .. }: cancel that alert's bulletin.
//!         let _ = action;
//!     }
//! } // else: refuse, with checked.diagnostics
//! ```

pub mod area;
pub mod bulletin;
pub mod c14n;
pub mod config;
pub mod feed;
pub mod ledger;
pub mod model;
pub mod parse;
pub mod signature;
pub mod validate;
pub mod xml;

pub use area::{CapStation, stations_from_toml};
pub use bulletin::{CapBulletinPlan, Decision, NoBulletin, PlanPriority, plan};
pub use config::CapConfig;
pub use ledger::{AlertLedger, LedgerAction};
pub use model::{Alert, AlertKey, Diagnostic, Level};
pub use signature::{SignatureOutcome, SignatureReport, TrustStore};

/// A document read and judged.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The alert, when the document has no error (signature refusals included).
    pub alert: Option<Alert>,
    /// The alert as read even when the document has errors (a refused signature, a
    /// broken rule), to say which alert was refused; `None` when it could not be read.
    pub read: Option<Alert>,
    /// Every error and warning, XML and CAP and signature, in that order.
    pub diagnostics: Vec<Diagnostic>,
    pub signature: SignatureReport,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads, validates and verifies one CAP document.
pub fn check(bytes: &[u8], trust: &TrustStore) -> Checked {
    let doc = match xml::parse(bytes) {
        Ok(d) => d,
        Err(e) => {
            return Checked {
                alert: None,
                read: None,
                diagnostics: vec![Diagnostic::error(e.path, e.message)],
                signature: SignatureReport::default(),
            };
        }
    };
    let parsed = parse::read_alert(&doc.root);
    let mut diagnostics = parsed.diagnostics;
    if let Some(alert) = &parsed.alert {
        diagnostics.extend(validate::validate(alert));
    }
    let signature = if doc.root.namespace.as_deref() == Some(parse::NS_CAP_1_2)
        || doc.root.namespace.as_deref() == Some(parse::NS_CAP_1_1)
    {
        signature::verify(&doc, trust)
    } else {
        SignatureReport::default()
    };
    diagnostics.extend(signature.diagnostics());
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    let (alert, read) =
        if ok { (parsed.alert.clone(), parsed.alert) } else { (None, parsed.alert) };
    Checked { alert, read, diagnostics, signature }
}
