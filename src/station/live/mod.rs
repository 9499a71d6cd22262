//! A live broadcast from the province at the station: the gate its chunks pass
//! ([`verify`]). UNFINISHED: the receiver that fetches a broadcast announced on the
//! event stream, decodes it and hands it to the daemon as an emergency is not built yet
//! (see ARCHITECTURE.md "Live voice").

pub mod verify;
