//! A central's turn to decide a CAP alert ([`Store::cap_turn`](super::Store::cap_turn)):
//! the alert ledger is read, acted on and written back as one step, so every central on
//! one database takes that step one at a time.

/// Held from reading the alert ledger until its new state is recorded; dropping it
/// ends the turn and lets the next decision in, in this process or another.
///
/// What it holds depends on the store (PostgreSQL: a connection holding an advisory
/// lock; SQLite: nothing). It is `Send`, so a decision holds it across the `.await`s of
/// making and sending its bulletins, and it may be dropped on any thread.
#[must_use = "the turn ends when this is dropped"]
pub struct CapTurn {
    _held: Option<Box<dyn Send>>,
}

impl CapTurn {
    /// A turn with nothing to release: the store is this process's alone, and the
    /// process already takes CAP alerts one at a time.
    pub fn within_process() -> Self {
        CapTurn { _held: None }
    }

    /// A turn that ends when `held` is dropped.
    pub(crate) fn holding(held: impl Send + 'static) -> Self {
        CapTurn { _held: Some(Box::new(held)) }
    }
}

impl std::fmt::Debug for CapTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let across = if self._held.is_some() { "across processes" } else { "within process" };
        write!(f, "CapTurn({across})")
    }
}
