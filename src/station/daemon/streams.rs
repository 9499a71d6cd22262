//! The daemon's streams: a scheduled relay's connection and buffer
//! ([`Station::prepare_relay`]), and a live broadcast from the province
//! ([`Station::air_live`]), which plays as an emergency (or priority) item whose feed is
//! the live relay buffer, ended by the province's last checkpoint.

use chrono::{DateTime, Utc};

use super::{Station, expected_sha256, file_sha256};
use crate::audio::Source;
use crate::audio::feed::Feed;
use crate::audio::relay::{OpenFallback, relay};
use crate::protocol::live::MAX_LIVE_SECS;
use crate::schedule::{AudioRef, Layer, Priority, StreamRef};
use crate::station::core::{Bulletin, Item, file_path};
use crate::station::live::AirLive;
use crate::station::relay::RelaySpec;

impl Station {
    /// Hands the player a relay of `item`'s stream: the connection opens now (the core
    /// prepares streams early enough to fill the buffer), the fallback is read from
    /// its file (checked against its sha256 like any file) whenever the stream is down.
    pub(super) fn prepare_relay(&mut self, id: u64, item: &Item) {
        if let Some(feed) = self.live_feeds.remove(&item.item_id) {
            // A live broadcast: its connection is already receiving.
            self.preparing.insert(id);
            self.player.prepare_feed(id, Box::new(feed));
            return;
        }
        let AudioRef::Stream(stream) = &item.audio else { return };
        let format = self.player.format();
        let cache = self.config.data_dir.join("audio");
        let fallback = file_path(&item.audio, &cache).and_then(|path| {
            let expected = expected_sha256(item, &path, &cache);
            match file_sha256(&path) {
                Ok(hex) if expected.as_ref().is_none_or(|want| *want == hex) => {
                    self.core.set_sha256(id, hex);
                    Some(path)
                }
                Ok(hex) => {
                    tracing::error!(item = %item.item_id, "fallback {} has sha256 {hex}, not the one named: not played", path.display());
                    None
                }
                Err(e) => {
                    tracing::warn!(item = %item.item_id, "fallback {} cannot be read ({e}): silence fills the drop-outs", path.display());
                    None
                }
            }
        });
        let gain_db = item.gain_db;
        let open_fallback = fallback.map(|path| {
            Box::new(move || {
                Source::open(&path, format, gain_db).ok().map(|s| Box::new(s) as Box<dyn Feed>)
            }) as OpenFallback
        });
        let end = crate::station::core::later(
            item.planned,
            chrono::Duration::from_std(stream.duration).unwrap_or_default(),
        );
        let (input, feed) = relay(format, self.config.relay_buffer, Some(end), open_fallback);
        let spec = RelaySpec {
            url: stream.url.clone(),
            format,
            gain_db,
            end,
            item_id: item.item_id.clone(),
        };
        let http = self.relay_http.get_or_insert_with(crate::station::relay::client).clone();
        crate::station::relay::spawn(spec, input, http, self.clock.clone());
        tracing::info!(item = %item.item_id, url = %stream.url, delay_ms = self.config.relay_buffer.as_millis() as u64, "relay connecting");
        self.preparing.insert(id);
        self.player.prepare_feed(id, Box::new(feed));
    }

    /// Queues a verified live broadcast at its priority; its connection starts now, so
    /// the buffer fills while anything it pre-empts fades out.
    pub(super) fn air_live(&mut self, live: AirLive, now: DateTime<Utc>) {
        let AirLive { doc, fetch } = live;
        let Some(priority) = doc.priority.level() else { return };
        let format = self.player.format();
        let (input, feed) = relay(format, self.config.relay_buffer, None, None);
        let url = format!("{}{}", fetch.central.preferred(), fetch.path);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(crate::station::live::listen::run(fetch, input, format));
            }
            Err(_) => {
                tracing::error!(id = %doc.id, "no runtime to receive the live broadcast on");
                return;
            }
        }
        self.live_feeds.insert(doc.id.clone(), feed);
        self.core.push_emergency(Item {
            item_id: doc.id.clone(),
            title: doc.title.clone(),
            layer: Layer::Provincial,
            priority: priority.max(Priority::Priority),
            planned: now,
            max_delay: chrono::Duration::hours(1),
            audio: AudioRef::Stream(StreamRef {
                url,
                duration: std::time::Duration::from_secs(MAX_LIVE_SECS),
                fallback: None,
            }),
            gain_db: 0.0,
            bulletin: Some(Bulletin {
                repeats_left: 0,
                expires: Some(doc.expires_at),
                interval: chrono::Duration::zero(),
            }),
        });
    }
}
