//! A whole station in one call: the daemon, the bulletin receiver and the uplink, started
//! together and stopped by one signal — the daemon first (it fades out and records the
//! shutdown), then the receiver and the uplink, so the shutdown's records go up too.

use std::future::Future;

use std::sync::Arc;

use super::bulletins::BulletinError;
use super::uplink::{Uplink, UplinkError};
use super::{Station, StationConfig, StationError};
use crate::clock::{OffsetClock, SharedClock};
use crate::service::{Beat, Notifier, Watchdog};

/// Why a station could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Station(#[from] StationError),
    #[error(transparent)]
    Bulletins(#[from] BulletinError),
    #[error(transparent)]
    Uplink(#[from] UplinkError),
}

/// Runs the station configured by `config` on `clock` until `shutdown` resolves. With
/// central configured the bulletin receiver and the uplink (sync, heartbeats, playlog)
/// run beside the daemon. Everything reads one clock, which plans by central's time while
/// this box's own clock is known to be wrong (see `uplink::CentralTime`).
pub async fn run(
    config: StationConfig,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_supervised(config, clock, shutdown, Supervisor::default()).await
}

/// Who watches the station: systemd's notify socket and watchdog (`service`), or nobody.
#[derive(Debug, Default)]
pub struct Supervisor {
    pub notifier: Option<Arc<Notifier>>,
    pub watchdog: Option<Watchdog>,
}

impl Supervisor {
    /// From `NOTIFY_SOCKET` and `WATCHDOG_USEC`.
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env();
        Self {
            watchdog: if notifier.enabled() { Watchdog::from_env() } else { None },
            notifier: notifier.enabled().then(|| Arc::new(notifier)),
        }
    }
}

/// [`run`], telling `supervisor` when the station can play (`READY=1`, once the sound
/// output is open and the previous run is accounted for), what it is doing (`STATUS=`),
/// and that it lives (`WATCHDOG=1`, only while both the scheduler's loop and the audio
/// thread go round).
pub async fn run_supervised(
    config: StationConfig,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
    supervisor: Supervisor,
) -> Result<(), RunError> {
    let offset_clock = OffsetClock::new(clock);
    let clock: SharedClock = offset_clock.clone();
    let (mut station, handle) = Station::from_config(config.clone(), clock.clone())?;
    let watch = supervisor.notifier.clone().map(|notifier| {
        let liveness = station.liveness();
        let mut status = station.status();
        let tz = config.timezone;
        tokio::spawn(async move {
            // Ready once the daemon has made its first decisions (sink open, recovery
            // done, schedules read).
            let _ = status.wait_for(|s| s.at.is_some()).await;
            let text = status.borrow().summary(tz);
            notifier.ready(&text);
            tracing::info!(status = %text, "ready (systemd notified)");
            let beats = vec![
                ("scheduler", Beat::from(liveness.scheduler)),
                ("audio thread", Beat::from(liveness.audio)),
            ];
            crate::service::watchdog(notifier, supervisor.watchdog, beats, move || {
                status.borrow().summary(tz)
            })
            .await;
        })
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopped_signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    // One set of central addresses for the receiver and the uplink: what one learns
    // about an address (it does not answer), the other knows at once.
    let sync = super::uplink::sync_config(&config).map_err(UplinkError::from)?;
    let receiver = super::bulletins::spawn_with(
        sync.clone(),
        &config,
        clock.clone(),
        handle.clone(),
        station.status(),
        station.bulletin_records(),
        stopped_signal(),
    )?;
    let uplink = match sync {
        Some(sync) => Some(Uplink::from_sync(&config, sync, handle, clock)?),
        None => None,
    };
    let uplink = uplink.map(|uplink| {
        let uplink = uplink.with_central_time(offset_clock, config.trust_central_time);
        tokio::spawn(uplink.run(stopped_signal()))
    });
    let result = station.run(shutdown).await;
    if let Some(task) = watch {
        task.abort();
    }
    if let Some(notifier) = &supervisor.notifier {
        notifier.stopping();
    }
    let _ = stop.send(true);
    if let Some(task) = receiver {
        let _ = task.await;
    }
    if let Some(task) = uplink {
        let _ = task.await;
    }
    Ok(result?)
}
