//! The sound card's input, for `loa live --input default`: a cpal input stream (ALSA on
//! Linux, feature `alsa-backend`) at 48 kHz, down-mixed to mono, into a bounded ring the
//! encoder drains.
//!
//! Bounds: the ring holds at most [`BUFFER_SECS`] of audio; past that the newest samples
//! are dropped and counted ([`Capture::dropped`]), never the memory grown. A device that
//! gives nothing for [`STALL`] is an error, not a silent broadcast of nothing.
//!
//! The device is opened (format checked) by [`Capture::open`] but records nothing until
//! [`Capture::start`]: what is said before the broadcast is on air is not sent.
//!
//! A device that delivers faster than real time (no sound card does; ALSA's `file`
//! plugin over a `null` slave, which the tests use as a microphone, does) is paced by the
//! callback itself, as the playback sink paces the test file tap: a callback more than
//! [`PACE_SLACK`] ahead of real time waits until it is not.
//!
//! It knows nothing of Opus, HTTP or broadcasts: it gives 48 kHz mono `f32` samples.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[cfg(feature = "alsa-backend")]
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

/// The only rate captured: the live codec's (Opus, 48 kHz).
pub const RATE: u32 = 48_000;
/// The most audio the ring holds before the newest is dropped.
pub const BUFFER_SECS: u32 = 4;
/// The ring's capacity in (mono) samples.
pub const BUFFER_SAMPLES: usize = (RATE * BUFFER_SECS) as usize;
/// A device silent (no callback at all) this long is broken.
pub const STALL: Duration = Duration::from_secs(5);

/// Why the sound card could not be captured, with what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError(pub String);

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureError {}

/// What the callback and the reader share.
#[derive(Default)]
#[cfg_attr(not(feature = "alsa-backend"), allow(dead_code))]
struct Shared {
    ring: VecDeque<f32>,
    /// Mono samples dropped because the ring was full.
    dropped: u64,
    /// Frames delivered since the first callback, and when that was (the pacing).
    delivered: u64,
    first: Option<Instant>,
    /// The latest callback, or the start: a device quiet for [`STALL`] past it is broken.
    heard: Option<Instant>,
    error: Option<String>,
}

#[derive(Default)]
struct State {
    shared: Mutex<Shared>,
    data: Condvar,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves up to `out.len()` samples into `out`, waiting at most `patience` for the
    /// first; the number moved (0 when none came in time). An error once the device has
    /// failed, or has given nothing for [`STALL`] since it started.
    fn take(&self, out: &mut [f32], patience: Duration) -> Result<usize, CaptureError> {
        let called = Instant::now();
        let mut shared = self.lock();
        loop {
            if let Some(e) = &shared.error {
                return Err(CaptureError(format!("the capture device failed: {e}")));
            }
            if !shared.ring.is_empty() {
                let n = shared.ring.len().min(out.len());
                for (o, s) in out.iter_mut().zip(shared.ring.drain(..n)) {
                    *o = s;
                }
                return Ok(n);
            }
            if shared.heard.is_some_and(|h| h.elapsed() > STALL) {
                return Err(CaptureError(format!(
                    "the capture device gave nothing for {} s: check it is plugged in and \
                     not muted, or pick another with --device",
                    STALL.as_secs()
                )));
            }
            let waited = called.elapsed();
            if waited >= patience {
                return Ok(0);
            }
            let (guard, _) = self
                .data
                .wait_timeout(shared, patience - waited)
                .unwrap_or_else(|p| p.into_inner());
            shared = guard;
        }
    }
}

/// Down-mixes interleaved `frames` of `channels` into `ring`, keeping it at most
/// `capacity` samples; returns how many mono samples did not fit (dropped).
#[cfg_attr(not(feature = "alsa-backend"), allow(dead_code))]
fn push(ring: &mut VecDeque<f32>, frames: &[f32], channels: usize, capacity: usize) -> u64 {
    let channels = channels.max(1);
    let mut dropped = 0u64;
    for frame in frames.chunks(channels) {
        if ring.len() >= capacity {
            dropped += 1;
            continue;
        }
        ring.push_back(frame.iter().sum::<f32>() / frame.len() as f32);
    }
    dropped
}

/// How long a callback that has delivered `delivered` frames since `first` must wait for
/// real time to catch up (zero for any real device, which is never ahead).
#[cfg_attr(not(feature = "alsa-backend"), allow(dead_code))]
fn ahead(first: Instant, delivered: u64, now: Instant) -> Duration {
    let audio = Duration::from_micros(delivered.saturating_mul(1_000_000) / u64::from(RATE));
    audio.saturating_sub(now.saturating_duration_since(first))
}

/// How far ahead of real time a device may run before its callback waits: a sound card
/// whose crystal runs 50 ppm fast (a usual tolerance) gains 0.36 s in a broadcast's 2 h
/// and never waits; one far worse waits 200 ms now and then (at worst a counted overrun
/// at the device); the tests' unpaced device waits at once.
pub const PACE_SLACK: Duration = Duration::from_millis(500);

/// What a callback `ahead` of real time sleeps: nothing within [`PACE_SLACK`], else
/// 200 ms (less than the slack, so it never falls behind real time by waiting).
#[cfg_attr(not(feature = "alsa-backend"), allow(dead_code))]
fn pause(ahead: Duration) -> Option<Duration> {
    (ahead > PACE_SLACK).then_some(Duration::from_millis(200))
}

/// An open capture stream. See the module docs.
pub struct Capture {
    state: Arc<State>,
    /// What was opened, for the operator: device, rate, channels, sample format.
    pub description: String,
    #[cfg(feature = "alsa-backend")]
    stream: cpal::Stream,
}

impl Capture {
    /// Opens `device` (`None` or `"default"`: the default input) at 48 kHz, without
    /// starting it.
    #[cfg(feature = "alsa-backend")]
    pub fn open(device: Option<&str>) -> Result<Self, CaptureError> {
        use cpal::SampleFormat;
        let device = find_device(device)?;
        let name = device.id().map(|id| id.to_string()).unwrap_or_else(|_| "?".into());
        let ranges: Vec<_> = device
            .supported_input_configs()
            .map_err(|e| CaptureError(format!("capture device {name}: {e}")))?
            .filter(|r| r.min_sample_rate() <= RATE && RATE <= r.max_sample_rate())
            .filter(|r| r.channels() > 0)
            .collect();
        // Fewest channels, then the formats this reads, i16 first (what a microphone gives).
        let rank = |f: SampleFormat| match f {
            SampleFormat::I16 => Some(0),
            SampleFormat::F32 => Some(1),
            SampleFormat::I32 => Some(2),
            _ => None,
        };
        let chosen = ranges
            .into_iter()
            .filter_map(|r| rank(r.sample_format()).map(|k| (r.channels(), k, r)))
            .min_by_key(|(c, k, _)| (*c, *k))
            .map(|(_, _, r)| r.with_sample_rate(RATE))
            .ok_or_else(|| {
                CaptureError(format!(
                    "capture device {name} cannot record 48 kHz as i16, i32 or f32: pick \
                     another with --device, or record a file and pass --input FILE"
                ))
            })?;
        let channels = usize::from(chosen.channels());
        let config = cpal::StreamConfig {
            channels: chosen.channels(),
            sample_rate: RATE,
            buffer_size: cpal::BufferSize::Default,
        };
        let state = Arc::new(State::default());
        let stream = match chosen.sample_format() {
            SampleFormat::I16 => build::<i16>(&device, config, &state, channels),
            SampleFormat::I32 => build::<i32>(&device, config, &state, channels),
            _ => build::<f32>(&device, config, &state, channels),
        }
        .map_err(|e| CaptureError(format!("cannot open capture device {name}: {e}")))?;
        let description =
            format!("{name} at {RATE} Hz, {channels} channel(s), {}", chosen.sample_format());
        Ok(Self { state, description, stream })
    }

    /// Without the `alsa-backend` feature there is no sound card to capture.
    #[cfg(not(feature = "alsa-backend"))]
    pub fn open(_device: Option<&str>) -> Result<Self, CaptureError> {
        Err(CaptureError(
            "this loa was built without the sound card (feature alsa-backend): record a file \
             and pass --input FILE"
                .into(),
        ))
    }

    /// Starts recording into the ring.
    pub fn start(&self) -> Result<(), CaptureError> {
        self.state.lock().heard = Some(Instant::now());
        #[cfg(feature = "alsa-backend")]
        self.stream.play().map_err(|e| CaptureError(format!("cannot start capturing: {e}")))?;
        Ok(())
    }

    /// Moves up to `out.len()` samples into `out`, waiting at most `patience` for the
    /// first; the number moved (0 when none came in time). An error once the device has
    /// failed, or has given nothing for [`STALL`] since it started.
    pub fn take(&self, out: &mut [f32], patience: Duration) -> Result<usize, CaptureError> {
        self.state.take(out, patience)
    }

    /// Mono samples dropped because the ring was full (the upload could not keep up).
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }
}

/// The capture devices cpal sees, as `--device` takes them: (name, description).
#[cfg(feature = "alsa-backend")]
pub fn list() -> Result<Vec<(String, String)>, CaptureError> {
    let devices = cpal::default_host()
        .input_devices()
        .map_err(|e| CaptureError(format!("cannot list capture devices: {e}")))?;
    Ok(devices
        .filter_map(|d| {
            let id = d.id().ok()?.id().to_string();
            let description = d.description().map(|d| d.to_string()).unwrap_or_default();
            Some((id, description))
        })
        .collect())
}

/// Without the `alsa-backend` feature there is no sound card to list.
#[cfg(not(feature = "alsa-backend"))]
pub fn list() -> Result<Vec<(String, String)>, CaptureError> {
    Ok(Vec::new())
}

#[cfg(feature = "alsa-backend")]
fn find_device(name: Option<&str>) -> Result<cpal::Device, CaptureError> {
    let host = cpal::default_host();
    match name {
        None | Some("default") => host.default_input_device().ok_or_else(|| {
            CaptureError(
                "no default capture device: plug in a microphone or name one with --device".into(),
            )
        }),
        Some(wanted) => {
            let devices = host
                .input_devices()
                .map_err(|e| CaptureError(format!("cannot list capture devices: {e}")))?;
            let mut seen = Vec::new();
            for device in devices {
                let Ok(id) = device.id() else { continue };
                let desc = device.description().map(|d| d.name().to_string()).unwrap_or_default();
                // `alsa:NAME`, `NAME` (as `loa audio devices` lists it) or the description.
                if id.to_string() == wanted || id.id() == wanted || desc == wanted {
                    return Ok(device);
                }
                seen.push(id.id().to_string());
            }
            seen.truncate(20);
            Err(CaptureError(format!(
                "no capture device named {wanted:?}: pass one of {} (`loa audio devices` \
                 lists them)",
                if seen.is_empty() { "(none found)".to_string() } else { seen.join(", ") }
            )))
        }
    }
}

#[cfg(feature = "alsa-backend")]
fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    state: &Arc<State>,
    channels: usize,
) -> Result<cpal::Stream, cpal::Error>
where
    T: cpal::SizedSample,
    f32: cpal::FromSample<T>,
{
    let cb_state = state.clone();
    let err_state = state.clone();
    let mut scratch: Vec<f32> = Vec::new();
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            scratch.clear();
            scratch.extend(data.iter().map(|s| s.to_sample::<f32>()));
            let now = Instant::now();
            let mut shared = cb_state.lock();
            let first = *shared.first.get_or_insert(now);
            shared.heard = Some(now);
            let wait = ahead(first, shared.delivered, now);
            let dropped = push(&mut shared.ring, &scratch, channels, BUFFER_SAMPLES);
            shared.dropped += dropped;
            shared.delivered += (data.len() / channels.max(1)) as u64;
            drop(shared);
            cb_state.data.notify_all();
            // Only a device running ahead of real time waits here (see the module docs).
            if let Some(pause) = pause(wait) {
                std::thread::sleep(pause);
            }
        },
        move |e: cpal::Error| {
            if e.kind() == cpal::ErrorKind::Xrun {
                // An overrun: cpal recovers it; the samples lost are the device's.
                return;
            }
            let mut shared = err_state.lock();
            if shared.error.is_none() {
                tracing::error!("capture stream error: {e}");
                shared.error = Some(e.to_string());
            }
            drop(shared);
            err_state.data.notify_all();
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_holds_its_capacity_and_drops_one_past_it() {
        let mut ring = VecDeque::new();
        assert_eq!(push(&mut ring, &[0.5; 10], 1, 10), 0);
        assert_eq!(ring.len(), 10);
        assert_eq!(push(&mut ring, &[0.25], 1, 10), 1, "one past the capacity is dropped");
        assert_eq!(ring.len(), 10);
        assert!(ring.iter().all(|&s| s == 0.5), "the newest is dropped, not the oldest");
    }

    #[test]
    fn stereo_is_mixed_to_mono() {
        let mut ring = VecDeque::new();
        assert_eq!(push(&mut ring, &[1.0, 0.0, 0.5, 0.5, -1.0, -0.5], 2, 100), 0);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec![0.5, 0.5, -0.75]);
    }

    #[test]
    fn a_device_ahead_of_real_time_waits_and_one_behind_does_not() {
        let t0 = Instant::now();
        let one_s = u64::from(RATE);
        assert_eq!(ahead(t0, one_s, t0 + Duration::from_millis(400)), Duration::from_millis(600));
        assert_eq!(ahead(t0, one_s, t0 + Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(ahead(t0, u64::MAX, t0), Duration::from_micros(u64::MAX / u64::from(RATE)));
    }

    #[test]
    fn a_device_waits_only_past_the_slack_and_briefly() {
        assert_eq!(pause(PACE_SLACK), None);
        assert_eq!(pause(PACE_SLACK + Duration::from_millis(1)), Some(Duration::from_millis(200)));
        assert_eq!(pause(Duration::from_secs(10)), Some(Duration::from_millis(200)));
    }

    #[test]
    fn a_device_quiet_past_the_stall_bound_is_an_error_and_one_within_it_is_not() {
        let state = Arc::new(State::default());
        let capture = &state;
        let mut out = [0.0f32; 4];
        state.lock().heard = Some(Instant::now() - STALL + Duration::from_secs(1));
        assert_eq!(capture.take(&mut out, Duration::from_millis(1)), Ok(0));
        state.lock().heard = Some(Instant::now() - STALL - Duration::from_millis(1));
        assert!(capture.take(&mut out, Duration::from_millis(1)).is_err());
        // Samples waiting are taken, at most what fits.
        state.lock().heard = Some(Instant::now());
        state.lock().ring.extend([0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(capture.take(&mut out, Duration::from_millis(1)), Ok(4));
        assert_eq!(capture.take(&mut out, Duration::from_millis(1)), Ok(1));
    }
}
