//! A whole station in one call: the daemon, the bulletin receiver and the uplink, started
//! together and stopped by one signal — the daemon first (it fades out and records the
//! shutdown), then the receiver and the uplink, so the shutdown's records go up too.

use std::future::Future;

use super::bulletins::BulletinError;
use super::uplink::{Uplink, UplinkError};
use super::{Station, StationConfig, StationError};
use crate::clock::{OffsetClock, SharedClock};

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
    let offset_clock = OffsetClock::new(clock);
    let clock: SharedClock = offset_clock.clone();
    let (mut station, handle) = Station::from_config(config.clone(), clock.clone())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopped_signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let receiver = super::bulletins::spawn_for(
        &config,
        clock.clone(),
        handle.clone(),
        station.status(),
        station.bulletin_records(),
        stopped_signal(),
    )?;
    let uplink = Uplink::from_config(&config, handle, clock)?.map(|uplink| {
        let uplink = uplink.with_central_time(offset_clock, config.trust_central_time);
        tokio::spawn(uplink.run(stopped_signal()))
    });
    let result = station.run(shutdown).await;
    let _ = stop.send(true);
    if let Some(task) = receiver {
        let _ = task.await;
    }
    if let Some(task) = uplink {
        let _ = task.await;
    }
    Ok(result?)
}
