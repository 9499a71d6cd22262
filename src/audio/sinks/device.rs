//! The real output: a sound card through cpal (ALSA on Linux), f32 or i16 as the device
//! takes, in ALSA periods of at most 50 ms ([`period_frames`]: 2048 frames at 44.1 and
//! 48 kHz) with two periods in the device.
//!
//! The player writes into a ring the cpal callback drains. Each callback records which
//! ring frame it starts with and when that frame will be heard: the clock's now plus the
//! device's own latency (`playback − callback` from cpal's `OutputCallbackInfo`). From
//! that anchor, the instant of any frame written later follows by counting frames.
//!
//! Paused (the player has nothing due soon, [`Sink::pause`]): the stream keeps running and
//! each callback plays silence at once instead of waiting for frames; its anchor is then
//! the *next* callback's playback instant, where the first frame written after
//! [`Sink::resume`] will land. A device that drains faster than real time is paced by the
//! paused callback itself. A stream error while paused shows in [`Sink::check`].
//!
//! A stream error (the device went away, the ALSA plugin's write failed) makes the next
//! `write` fail; the player then drops this sink, which stops cpal's stream and closes
//! the PCM, and opens a new one (see `audio::player`). Underruns are counted, not errors.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, OutputCallbackInfo, SampleFormat, SizedSample, StreamConfig};

use super::{AudioFormat, DeviceInfo, Sink, SinkError, SinkOptions, after_frames};
use crate::clock::SharedClock;

/// How long `write` waits for the device to take frames before calling it stalled.
const STALL: Duration = Duration::from_secs(5);
/// How long a callback short of frames waits for the player before playing silence.
const CALLBACK_PATIENCE: Duration = Duration::from_millis(500);
/// The longest ALSA period asked for; see [`period_frames`].
const MAX_PERIOD: Duration = Duration::from_millis(50);

/// Frames per ALSA period at `rate`: the largest power of two within [`MAX_PERIOD`]
/// (2048 at 44.1 and 48 kHz, 4096 at 96 kHz), inside the range the device supports.
///
/// Why this size: the stream runs all day, idle included (`audio::player` pauses only its
/// own writing), and cpal's ALSA thread runs one callback per period
/// (`BufferSize::Fixed(n)`: period n, device buffer 2n), so each period is a wakeup, a
/// callback and a write of silence whether anything plays or not. At 1024 frames that
/// was 47 a second, most of an idle station's CPU; 2048 halves their number (README,
/// "Idle cost": about a quarter off the idle figure through the test rig).
///
/// What it costs: the device holds two periods, so a frame written now (the fade-out and
/// first frame of an emergency bulletin pre-empting, the first frame after a pause)
/// reaches the speaker up to `2 × (period − 1024)` frames later than with 1024-frame
/// periods: 2048 frames, 42.7 ms at 48 kHz (with the ring in front: at most 6144 frames,
/// 128 ms, instead of 4096). The device holds at most 100 ms unless it allows no period
/// that short. 4096 frames would hold 171 ms: too slow for an emergency. Starts stay on
/// their exact frame: the anchor comes from each callback's playback timestamp, however
/// far apart the callbacks are.
fn period_frames(rate: u32, supported: &cpal::SupportedBufferSize) -> u32 {
    let within = (u64::from(rate) * MAX_PERIOD.as_millis() as u64 / 1000).max(1);
    let frames = 1u64 << within.ilog2();
    let frames = u32::try_from(frames).unwrap_or(u32::MAX);
    match *supported {
        cpal::SupportedBufferSize::Range { min, max } if min <= max => frames.clamp(min, max),
        _ => frames,
    }
}

struct Shared {
    ring: VecDeque<f32>,
    /// Frames ever taken out of the ring by the callback.
    taken: u64,
    /// (ring frame index, instant it reaches the speaker) from the latest callback.
    anchor: Option<(u64, DateTime<Utc>)>,
    latency: chrono::Duration,
    error: Option<String>,
    underruns: u64,
    /// Set on drop: callbacks stop waiting for frames that will not come.
    closing: bool,
    /// The player paused (nothing plays or is due soon): callbacks play silence at once
    /// instead of waiting for frames. From the first paused callback: when it ran and the
    /// frames of silence played since, so a device that drains faster than real time
    /// (the test file tap) is paced by the callback itself.
    paused: bool,
    paused_from: Option<(std::time::Instant, u64)>,
}

struct State {
    shared: Mutex<Shared>,
    /// Signalled by the callback when it took frames.
    room: Condvar,
    /// Signalled by the writer when it added frames.
    data: Condvar,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The cpal sink. See the module docs.
pub struct DeviceSink {
    format: AudioFormat,
    state: Arc<State>,
    clock: SharedClock,
    /// Frames ever written into the ring.
    written: u64,
    capacity_samples: usize,
    sample_format: SampleFormat,
    _stream: cpal::Stream,
}

fn device_err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Device { detail: e.to_string() }
}

fn find_device(name: Option<&str>) -> Result<cpal::Device, SinkError> {
    let host = cpal::default_host();
    match name {
        None | Some("default") => host
            .default_output_device()
            .ok_or_else(|| SinkError::Device { detail: "no default output device".into() }),
        Some(wanted) => {
            let devices = host.output_devices().map_err(device_err)?;
            for device in devices {
                let id = device.id().map(|id| id.to_string()).unwrap_or_default();
                let desc = device.description().map(|d| d.name().to_string()).unwrap_or_default();
                if id == wanted || desc == wanted {
                    return Ok(device);
                }
            }
            Err(SinkError::Device { detail: format!("no output device named {wanted:?}") })
        }
    }
}

/// Output devices cpal sees on the default host.
pub fn list() -> Result<Vec<DeviceInfo>, SinkError> {
    let host = cpal::default_host();
    let default_id = host.default_output_device().and_then(|d| d.id().ok()).map(|i| i.to_string());
    let mut out = Vec::new();
    for device in host.output_devices().map_err(device_err)? {
        let name = device.id().map(|id| id.to_string()).unwrap_or_else(|_| "?".into());
        let description = device.description().map(|d| d.to_string()).unwrap_or_default();
        let is_default = default_id.as_deref() == Some(name.as_str());
        out.push(DeviceInfo { name, description, is_default });
    }
    Ok(out)
}

impl DeviceSink {
    /// Opens the device and starts its stream; it plays silence until frames arrive.
    pub fn open(options: SinkOptions) -> Result<Self, SinkError> {
        let device = find_device(options.device.as_deref())?;
        let supported = device.default_output_config().map_err(device_err)?;
        let format = AudioFormat {
            rate: supported.sample_rate(),
            channels: usize::from(supported.channels()),
        };
        if format.channels == 0 {
            return Err(SinkError::Device { detail: "device reports 0 channels".into() });
        }
        let config = StreamConfig {
            channels: supported.channels(),
            sample_rate: supported.sample_rate(),
            buffer_size: cpal::BufferSize::Fixed(period_frames(
                format.rate,
                supported.buffer_size(),
            )),
        };
        let state = Arc::new(State {
            shared: Mutex::new(Shared {
                ring: VecDeque::new(),
                taken: 0,
                anchor: None,
                latency: chrono::Duration::zero(),
                error: None,
                underruns: 0,
                closing: false,
                paused: false,
                paused_from: None,
            }),
            room: Condvar::new(),
            data: Condvar::new(),
        });
        let clock = options.clock.clone();
        let stream = match supported.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, config, &state, &clock, format),
            SampleFormat::I16 => build::<i16>(&device, config, &state, &clock, format),
            SampleFormat::I32 => build::<i32>(&device, config, &state, &clock, format),
            SampleFormat::U8 => build::<u8>(&device, config, &state, &clock, format),
            other => Err(SinkError::Device {
                detail: format!("the device's sample format {other} is not supported"),
            }),
        }?;
        stream.play().map_err(device_err)?;
        // What ALSA made of the request (a card may round it).
        let period = stream.buffer_size().map_or(0, |p| p as usize);
        tracing::info!(
            rate = format.rate,
            channels = format.channels,
            sample_format = %supported.sample_format(),
            period_frames = period,
            "sound card stream started"
        );
        // The ring holds two of the player's buffers, as before the period grew, and at
        // least a period: a callback waits for a whole period of frames.
        let ring_frames = (2 * options.buffer_frames).max(period);
        Ok(Self {
            format,
            state,
            clock: options.clock,
            written: 0,
            capacity_samples: ring_frames * format.channels,
            sample_format: supported.sample_format(),
            _stream: stream,
        })
    }
}

fn build<T>(
    device: &cpal::Device,
    config: StreamConfig,
    state: &Arc<State>,
    clock: &SharedClock,
    format: AudioFormat,
) -> Result<cpal::Stream, SinkError>
where
    T: SizedSample + FromSample<f32>,
{
    let cb_state = state.clone();
    let err_state = state.clone();
    let clock = clock.clone();
    let channels = format.channels;
    let patience = CALLBACK_PATIENCE;
    device
        .build_output_stream(
            config,
            move |data: &mut [T], info: &OutputCallbackInfo| {
                let now = clock.now();
                let ts = info.timestamp();
                let latency = ts.playback.saturating_duration_since(ts.callback);
                let latency = chrono::Duration::from_std(latency).unwrap_or_default();
                let mut shared = cb_state.lock();
                // Short of frames: the player writes continuously while not paused, so
                // they are on their way; wait for them rather than play a gap. On a sound
                // card the device has underrun either way; a device that drains faster
                // than real time (the test file tap) is thereby paced by the player.
                let waited_from = std::time::Instant::now();
                if shared.paused && shared.ring.len() < data.len() {
                    shared = paused_callback(&cb_state, shared, data.len() / channels, format.rate);
                    let n = shared.ring.len().min(data.len());
                    for (d, s) in data[..n].iter_mut().zip(shared.ring.drain(..n)) {
                        *d = T::from_sample(s);
                    }
                    for d in &mut data[n..] {
                        *d = T::from_sample(0.0f32);
                    }
                    shared.taken += (n / channels) as u64;
                    // The next frame written plays at the start of the next callback.
                    let period =
                        super::frames_to_duration((data.len() / channels) as u64, format.rate);
                    let next =
                        now + latency + chrono::Duration::from_std(period).unwrap_or_default();
                    shared.anchor = Some((shared.taken, next));
                    shared.latency = latency;
                    drop(shared);
                    cb_state.room.notify_all();
                    return;
                }
                while shared.ring.len() < data.len() && !shared.closing {
                    let Some(left) = patience.checked_sub(waited_from.elapsed()) else { break };
                    let (guard, _) =
                        cb_state.data.wait_timeout(shared, left).unwrap_or_else(|p| p.into_inner());
                    shared = guard;
                }
                shared.anchor = Some((shared.taken, now + latency));
                shared.latency = latency;
                let n = data.len().min(shared.ring.len());
                for (d, s) in data[..n].iter_mut().zip(shared.ring.drain(..n)) {
                    *d = T::from_sample(s);
                }
                if n < data.len() {
                    if shared.taken > 0 && n > 0 {
                        shared.underruns += 1;
                    }
                    for d in &mut data[n..] {
                        *d = T::from_sample(0.0f32);
                    }
                }
                shared.taken += (n / channels) as u64;
                drop(shared);
                cb_state.room.notify_all();
            },
            move |e: cpal::Error| {
                if e.kind() == cpal::ErrorKind::Xrun {
                    // cpal recovers an underrun itself (prepare); not a broken device.
                    err_state.lock().underruns += 1;
                    return;
                }
                let mut shared = err_state.lock();
                if shared.error.is_none() {
                    tracing::error!("sound card stream error: {e}");
                    shared.error = Some(e.to_string());
                }
                drop(shared);
                err_state.room.notify_all();
            },
            None,
        )
        .map_err(device_err)
}

/// A callback while the player is paused: no frames are coming, so nothing to wait for,
/// unless the device is taking silence faster than real time (no sound card does; the
/// test file tap's null slave does): then it waits until real time has caught up, or
/// until the player writes again.
fn paused_callback<'a>(
    state: &'a State,
    mut shared: MutexGuard<'a, Shared>,
    frames: usize,
    rate: u32,
) -> MutexGuard<'a, Shared> {
    let now = std::time::Instant::now();
    let (since, played) = *shared.paused_from.get_or_insert((now, 0));
    let ahead = super::frames_to_duration(played, rate).saturating_sub(now.duration_since(since));
    if ahead > super::frames_to_duration(2 * frames as u64, rate) {
        let (guard, _) = state
            .data
            .wait_timeout(shared, ahead.min(Duration::from_millis(100)))
            .unwrap_or_else(|p| p.into_inner());
        shared = guard;
    }
    if let Some((_, played)) = shared.paused_from.as_mut() {
        *played += frames as u64;
    }
    shared
}

impl Sink for DeviceSink {
    fn name(&self) -> &str {
        "alsa"
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    fn describe(&self) -> String {
        format!(
            "{} Hz, {} channels, {}",
            self.format.rate, self.format.channels, self.sample_format
        )
    }

    fn next_frame_at(&mut self) -> DateTime<Utc> {
        let shared = self.state.lock();
        let now = self.clock.now();
        let earliest = now + shared.latency;
        match shared.anchor {
            Some((frame, at)) => {
                let at = after_frames(at, self.written.saturating_sub(frame), self.format.rate);
                at.max(earliest)
            }
            None => after_frames(
                earliest,
                (shared.ring.len() / self.format.channels) as u64,
                self.format.rate,
            ),
        }
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        let step = self.capacity_samples / 2;
        for chunk in samples.chunks(step.max(self.format.channels)) {
            let mut shared = self.state.lock();
            while shared.ring.len() + chunk.len() > self.capacity_samples {
                if let Some(e) = &shared.error {
                    return Err(SinkError::Device { detail: e.clone() });
                }
                let (guard, timeout) =
                    self.state.room.wait_timeout(shared, STALL).unwrap_or_else(|p| p.into_inner());
                shared = guard;
                if timeout.timed_out() && shared.ring.len() + chunk.len() > self.capacity_samples {
                    return Err(SinkError::Device {
                        detail: format!("the device took no audio for {} s", STALL.as_secs()),
                    });
                }
            }
            if let Some(e) = &shared.error {
                return Err(SinkError::Device { detail: e.clone() });
            }
            shared.paused = false;
            shared.paused_from = None;
            shared.ring.extend(chunk.iter().copied());
            drop(shared);
            self.state.data.notify_all();
            self.written += (chunk.len() / self.format.channels) as u64;
        }
        Ok(())
    }

    fn pause(&mut self) -> bool {
        let mut shared = self.state.lock();
        shared.paused = true;
        shared.paused_from = None;
        true
    }

    fn resume(&mut self) {
        let mut shared = self.state.lock();
        shared.paused = false;
        shared.paused_from = None;
    }

    fn check(&mut self) -> Result<(), SinkError> {
        match &self.state.lock().error {
            Some(e) => Err(SinkError::Device { detail: e.clone() }),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Let what was written drain to the device, within reason.
        let mut shared = self.state.lock();
        if shared.underruns > 0 {
            tracing::warn!(underruns = shared.underruns, "the sound card ran dry mid-stream");
        }
        while !shared.ring.is_empty() && shared.error.is_none() {
            let (guard, timeout) =
                self.state.room.wait_timeout(shared, STALL).unwrap_or_else(|p| p.into_inner());
            shared = guard;
            if timeout.timed_out() {
                break;
            }
        }
        Ok(())
    }
}

impl Drop for DeviceSink {
    fn drop(&mut self) {
        let mut shared = self.state.lock();
        shared.closing = true;
        shared.paused = false;
        drop(shared);
        self.state.data.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    #[test]
    fn a_period_is_the_largest_power_of_two_within_50_ms() {
        let any = SupportedBufferSize::Unknown;
        assert_eq!(period_frames(48_000, &any), 2048);
        assert_eq!(period_frames(44_100, &any), 2048);
        assert_eq!(period_frames(96_000, &any), 4096);
        assert_eq!(period_frames(22_050, &any), 1024);
        assert_eq!(period_frames(8_000, &any), 256);
        for rate in [8_000, 22_050, 44_100, 48_000, 96_000, 192_000, 384_000] {
            let frames = u64::from(period_frames(rate, &any));
            assert!(frames * 1000 <= u64::from(rate) * 50, "{rate} Hz: {frames} frames");
            assert!(frames * 2 * 1000 > u64::from(rate) * 50, "{rate} Hz: {frames} frames");
        }
    }

    #[test]
    fn a_period_stays_within_what_the_device_supports() {
        let narrow = SupportedBufferSize::Range { min: 64, max: 1024 };
        assert_eq!(period_frames(48_000, &narrow), 1024);
        let large = SupportedBufferSize::Range { min: 4096, max: 65_536 };
        assert_eq!(period_frames(48_000, &large), 4096);
        let odd = SupportedBufferSize::Range { min: 4096, max: 64 };
        assert_eq!(period_frames(48_000, &odd), 2048);
    }
}
