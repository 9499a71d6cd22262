//! The audio thread's side of a failed sink: fail what plays, close it, reopen it on a
//! helper thread with backoff, and fail what falls due meanwhile (module docs of
//! [`super`]).

use std::time::Duration;

use super::{
    Broken, Cmd, Engine, OutputState, PlayError, PlayerEvent, REOPEN_MAX_WAIT, RequestId, Waiting,
    reopen_backoff,
};
use crate::audio::sinks::{Sink, SinkError};

impl Engine {
    /// While the sink is down: start a reopen try when one is due, and fail every item
    /// whose start has come (it cannot be heard).
    pub(super) fn while_broken(&mut self) {
        let mono = self.clock.monotonic();
        let Some(broken) = self.broken.as_mut() else { return };
        if !broken.in_flight
            && mono >= broken.next_try
            && let (Some(reopen), Some(tx)) = (&self.reopen, &self.cmd_tx)
        {
            let (reopen, tx) = (reopen.clone(), tx.clone());
            let spawned = std::thread::Builder::new().name("loa-reopen".into()).spawn(move || {
                let result = (reopen.lock().unwrap_or_else(|p| p.into_inner()))();
                let _ = tx.send(Cmd::Reopened(result));
            });
            match spawned {
                Ok(_) => broken.in_flight = true,
                Err(e) => {
                    tracing::warn!("cannot start a thread to reopen the sink: {e}");
                    broken.next_try = mono.saturating_add(reopen_backoff(broken.tries));
                }
            }
        }
        let now = self.clock.now();
        let down = SinkError::Down {
            since: broken.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            detail: broken.error.to_string(),
        };
        let mut due: Vec<RequestId> = self
            .waiting
            .iter()
            .filter(|(_, w)| matches!(w, Waiting::Ready { start: Some(at), .. } if *at <= now))
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        for id in due {
            self.waiting.remove(&id);
            tracing::warn!(id, "cannot start: {down}");
            self.emit(PlayerEvent::Failed {
                id,
                reason: PlayError::Sink(down.clone()),
                proof: None,
            });
        }
        self.publish_down(mono);
    }

    /// Publishes the down state with the monotonic time it was last checked at.
    pub(super) fn publish_down(&self, checked_at: Duration) {
        if let Some(b) = &self.broken {
            self.output.send_replace(OutputState::Failed {
                since: b.since,
                reason: b.error.to_string(),
                tries: b.tries,
                // While a try runs, the state is not settled at any time.
                checked_at: if b.in_flight { Duration::ZERO } else { checked_at },
            });
        }
    }

    /// A reopen try's result.
    pub(super) fn reopened(&mut self, result: Result<Box<dyn Sink>, SinkError>) {
        let mono = self.clock.monotonic();
        let Some(broken) = self.broken.as_mut() else { return };
        broken.in_flight = false;
        let failure = match result {
            Ok(sink) if sink.format() == self.format => {
                let down = self.clock.now() - broken.since;
                tracing::info!(
                    sink = sink.name(),
                    tries = broken.tries + 1,
                    down_for = %crate::clock::human(down),
                    "sound output reopened; playing again"
                );
                self.sink = Some(sink);
                self.broken = None;
                self.paused = Some(false);
                self.silent_blocks = 0;
                self.output.send_replace(OutputState::Working);
                return;
            }
            Ok(sink) => {
                if !broken.wrong_format {
                    tracing::error!(
                        reopened = %sink.describe(),
                        player = ?self.format,
                        "the sound output came back in another format; restart the station to use it"
                    );
                    broken.wrong_format = true;
                }
                None
            }
            Err(e) => Some(e),
        };
        if let Some(e) = failure {
            if broken.tries == 0 {
                tracing::warn!(
                    "cannot reopen the sound output yet (retrying, at most every {} s): {e}",
                    REOPEN_MAX_WAIT.as_secs()
                );
            } else {
                tracing::debug!(tries = broken.tries + 1, "cannot reopen the sound output: {e}");
            }
        }
        broken.next_try = mono.saturating_add(reopen_backoff(broken.tries));
        broken.tries = broken.tries.saturating_add(1);
        self.publish_down(mono);
    }

    /// The sink failed: fail what plays, close it, and start reopening it.
    pub(super) fn sink_failed(&mut self, e: SinkError) {
        {
            let name = self.sink.as_ref().map(|s| s.name().to_string()).unwrap_or_default();
            let reopening =
                if self.reopen.is_some() { "; closing it and opening it again" } else { "" };
            tracing::error!(sink = %name, "sound output failed: {e}{reopening}");
            // What was playing is cut (failed, with how long it played); what waits stays,
            // and fails only if its start comes before the sink is back.
            for p in std::mem::take(&mut self.playing) {
                let proof = p.proof.finish(Some(p.source.as_ref()));
                self.emit(PlayerEvent::Failed {
                    id: p.id,
                    reason: PlayError::Sink(e.clone()),
                    proof: Some(proof),
                });
            }
            // Closing the broken stream (a sound card's is reopened from scratch).
            self.sink = None;
            let since = self.clock.now();
            self.output.send_replace(OutputState::Failed {
                since,
                reason: e.to_string(),
                tries: 0,
                checked_at: self.clock.monotonic(),
            });
            self.broken = Some(Broken {
                since,
                error: e,
                next_try: self.clock.monotonic(),
                tries: 0,
                in_flight: false,
                wrong_format: false,
            });
        }
    }
}
