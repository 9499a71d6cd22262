//! A live broadcast from the province at the station: the gate its chunks pass
//! ([`verify`]), the connection that fetches, verifies and decodes it into the player's
//! relay buffer ([`listen`]), and what the bulletin receiver hands the daemon
//! ([`AirLive`]): the daemon plays it at the bulletin's priority, like a relay with no
//! fallback whose end is the province's signed last checkpoint.

pub mod listen;
pub mod verify;

use crate::protocol::live::LiveDoc;

/// A verified start document and how to fetch its audio.
pub struct AirLive {
    pub doc: LiveDoc,
    pub fetch: listen::LiveFetch,
}

impl std::fmt::Debug for AirLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirLive").field("doc", &self.doc).finish_non_exhaustive()
    }
}
