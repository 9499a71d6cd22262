//! Central under systemd: `READY=1` once it serves, `STATUS=` the fleet in one line, and
//! `WATCHDOG=1` only while the async runtime turns and the store answers (a wedged
//! database or a runtime whose workers are all blocked stops the pings, and systemd
//! restarts central). Nothing happens without `NOTIFY_SOCKET`.

use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::service::{Beat, Notifier, Watchdog};

/// How often the store is asked a question for the watchdog.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A store that has not answered in this long does not count as alive.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the notifications when `NOTIFY_SOCKET` is set; dropping the handle does not
/// stop them (they end with the runtime).
pub fn supervise(state: Arc<AppState>, url: String) -> Option<tokio::task::JoinHandle<()>> {
    let notifier = Notifier::from_env();
    if !notifier.enabled() {
        return None;
    }
    let notifier = Arc::new(notifier);
    let watchdog = Watchdog::from_env();
    let beat = Beat::new();
    let probe_beat = beat.clone();
    let probe_state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PROBE_EVERY);
        loop {
            every.tick().await;
            let store = probe_state.store.clone();
            let answered = tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::task::spawn_blocking(move || store.stations().is_ok()),
            )
            .await;
            if matches!(answered, Ok(Ok(true))) {
                probe_beat.bump();
            }
        }
    });
    let status = Arc::new(std::sync::Mutex::new(String::new()));
    let line = status.clone();
    let status_state = state.clone();
    let status_url = url.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            every.tick().await;
            let state = status_state.clone();
            let url = status_url.clone();
            if let Ok(text) = tokio::task::spawn_blocking(move || fleet_line(&state, &url)).await {
                *line.lock().unwrap_or_else(|p| p.into_inner()) = text;
            }
        }
    });
    let first = fleet_line(&state, &url);
    notifier.ready(&first);
    tracing::info!(status = %first, "ready (systemd notified)");
    Some(tokio::spawn(crate::service::watchdog(
        notifier,
        watchdog,
        vec![("runtime and store", beat)],
        move || status.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    )))
}

/// `serving https://0.0.0.0:8480: 150 stations, 148 heard from in 5 min`.
fn fleet_line(state: &AppState, url: &str) -> String {
    let now = state.clock.now();
    let stations = state.store.stations().map(|s| s.len()).unwrap_or(0);
    let online = state
        .store
        .heartbeats()
        .map(|beats| {
            beats.iter().filter(|b| now - b.received_at <= chrono::Duration::minutes(5)).count()
        })
        .unwrap_or(0);
    format!("serving {url}: {stations} stations, {online} heard from in 5 min")
}
