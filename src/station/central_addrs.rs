//! Which of central's addresses to talk to now. A province may run central on more than
//! one machine (`central_url = ["https://a…", "https://b…"]` in station.toml,
//! `LOA_CENTRAL=https://a…,https://b…` for the CLI); this module owns the one piece of
//! state that says which address a request goes to, shared by every client of a station
//! (the sync, heartbeats, the playlog reporter, the bulletin receiver, delivery reports,
//! live listeners) so that what one of them learns about an address, all of them know.
//!
//! The policy ([`Policy`]) is pure — time and randomness are passed in — so every rule is
//! unit-tested without a sleep:
//! - requests go to the *current* address, the first one (the preferred) at start;
//! - a request that fails there for the network's or central's sake — no connection, no
//!   answer within [`ANSWER_TIMEOUT`], a 5xx — moves the current address to the next one
//!   in the list (wrapping round). An answer with a 4xx (a refused token, a bad request)
//!   is the asker's problem, not the address's: it moves nothing;
//! - a `Retry-After` that comes with a 5xx is honoured as a minimum: that address gets no
//!   request before it is over (at most [`MAX_RETRY_AFTER`]: on plain HTTP anyone on the
//!   path can write the header);
//! - while away from the preferred address, one request now and then is sent to it (a
//!   *probe*), first after [`RETURN_BACKOFF`]'s base and then, while it keeps failing,
//!   after a delay that doubles up to its cap, each with jitter so that a fleet which
//!   failed over together does not come back in one wave. The first answer there makes
//!   it current again (and tells the event stream, which holds one connection for
//!   hours, to move back: [`CentralAddrs::back_to_preferred`]);
//! - a failure of a request sent before the current address moved (a second client that
//!   was still waiting on the dead one) moves nothing again: one dead address costs one
//!   step, not one per client.
//!
//! Invariant: with N addresses, a dead one is left after at most one failed request per
//! client, and no address is asked before its `Retry-After` is over. A long-poll (which
//! legitimately answers late) is only sent to an address that has answered since it
//! became current ([`Choice::settled`]); otherwise the caller asks without waiting, so a
//! black-holed address — one that accepts the connection and never answers — is told
//! from a long-poll within [`ANSWER_TIMEOUT`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::sync::Backoff;

/// Most addresses `central_url` (or `LOA_CENTRAL`) may list.
pub const MAX_ADDRESSES: usize = 8;

/// Every request to central must have its answer's status line and headers within this,
/// connection and TLS handshake included (a long-poll adds the wait it asked for, an
/// upload the time its body takes at [`MIN_UPLOAD_RATE`]). Why 5 s: central answers a
/// short request in milliseconds, 5 s leaves room for a 3G link's retransmitted SYNs
/// (after 1 s, then 3 s) and a TLS handshake, and a station must have left a black-holed
/// address and done its work at the next one within 10 s.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The slowest upload a request's answer timeout allows for (16 KiB/s, a poor 3G link).
pub const MIN_UPLOAD_RATE: u64 = 16 * 1024;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How long a station stays away from its preferred address before trying it again:
/// 15–30 s the first time, doubling while it keeps failing, at most 5–10 min.
pub const RETURN_BACKOFF: Backoff =
    Backoff { base: Duration::from_secs(30), max: Duration::from_secs(600) };

/// The answer timeout for a request whose body is `bytes` long (see [`ANSWER_TIMEOUT`]).
pub fn patience_for_upload(bytes: u64) -> Duration {
    ANSWER_TIMEOUT + Duration::from_secs(bytes / MIN_UPLOAD_RATE)
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The address's position in the list (0: the preferred one).
    pub index: usize,
    /// Wait this long before sending: every address is within a `Retry-After`.
    pub wait: Duration,
    /// The address is current and has answered since it became so: a long-poll may be
    /// sent. Otherwise the caller asks a question central answers at once.
    pub settled: bool,
    /// A try of the preferred address while another is current.
    pub probe: bool,
}

/// The "which address now" state, pure. See the module's documentation for the rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Per address, no request before this (`Retry-After`).
    not_before: Vec<Option<Instant>>,
    current: usize,
    /// The current address has answered since it became current.
    confirmed: bool,
    /// While away from the preferred address: when to try it again.
    return_at: Option<Instant>,
    /// Probes of the preferred address that failed since it was left.
    returns_failed: u32,
    back: Backoff,
}

impl Policy {
    /// `len` addresses (at least one), the preferred first; `back` paces the probes of
    /// the preferred address ([`RETURN_BACKOFF`] in production).
    pub fn new(len: usize, back: Backoff) -> Self {
        Self {
            not_before: vec![None; len.max(1)],
            current: 0,
            confirmed: false,
            return_at: None,
            returns_failed: 0,
            back,
        }
    }

    /// The current address.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Whether the current address has answered since it became current.
    pub fn settled(&self) -> bool {
        self.confirmed
    }

    /// When the preferred address will be tried again (`None` while it is current).
    pub fn return_at(&self) -> Option<Instant> {
        self.return_at
    }

    fn len(&self) -> usize {
        self.not_before.len()
    }

    fn free(&self, index: usize, now: Instant) -> bool {
        self.not_before[index].is_none_or(|at| at <= now)
    }

    fn switch(&mut self, to: usize, now: Instant, unit: f64) {
        if to == self.current {
            return;
        }
        self.current = to;
        self.confirmed = false;
        if to == 0 {
            self.return_at = None;
            self.returns_failed = 0;
        } else if self.return_at.is_none() {
            self.returns_failed = 0;
            self.return_at = Some(now + self.back.delay(0, unit));
        }
    }

    /// Where the next request goes. `unit` in `[0, 1)` is the jitter of a probe's next
    /// time. Choosing a probe moves the next probe's time on, so concurrent requests
    /// keep using the current address meanwhile.
    pub fn choose(&mut self, now: Instant, unit: f64) -> Choice {
        if self.current != 0 && self.return_at.is_some_and(|at| now >= at) && self.free(0, now) {
            self.return_at = Some(now + self.back.delay(self.returns_failed, unit));
            return Choice { index: 0, wait: Duration::ZERO, settled: false, probe: true };
        }
        let n = self.len();
        if let Some(index) = (0..n).map(|k| (self.current + k) % n).find(|&i| self.free(i, now)) {
            self.switch(index, now, unit);
            return Choice { index, wait: Duration::ZERO, settled: self.confirmed, probe: false };
        }
        // Every address asked for time: the one free soonest.
        let (index, at) = self
            .not_before
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (i, at)))
            .min_by_key(|&(i, at)| (at, i))
            .unwrap_or((self.current, now));
        self.switch(index, now, unit);
        Choice { index, wait: at.saturating_duration_since(now), settled: false, probe: false }
    }

    /// `choice`'s request got no answer (no connection, no answer in time) or a 5xx,
    /// with `retry_after` if it said so.
    pub fn failed(
        &mut self,
        choice: &Choice,
        now: Instant,
        retry_after: Option<Duration>,
        unit: f64,
    ) {
        let index = choice.index.min(self.len() - 1);
        if let Some(wait) = retry_after {
            self.not_before[index] = Some(now + wait.min(MAX_RETRY_AFTER));
        }
        if choice.probe {
            if self.current != 0 {
                self.returns_failed = self.returns_failed.saturating_add(1);
                self.return_at = Some(now + self.back.delay(self.returns_failed, unit));
            }
        } else if index == self.current {
            let next = (index + 1) % self.len();
            if next == index {
                self.confirmed = false;
            } else {
                self.switch(next, now, unit);
            }
        }
        // Else: sent before the current address moved; it was already counted.
    }

    /// `choice`'s request was answered (any status but a 5xx). True when this brought
    /// the preferred address back.
    pub fn answered(&mut self, choice: &Choice) -> bool {
        let index = choice.index.min(self.len() - 1);
        if index == self.current {
            self.confirmed = true;
            false
        } else if index == 0 {
            self.current = 0;
            self.confirmed = true;
            self.return_at = None;
            self.returns_failed = 0;
            true
        } else {
            false
        }
    }
}

/// The seconds of a `Retry-After` header (the HTTP-date form is not used by central and
/// would need the wall clock: ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Why a request to central got no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// No connection, or it broke before the answer (reqwest's error).
    Http(reqwest::Error),
    /// Nothing within this (the address may be black-holed).
    Timeout(Duration),
}

/// One request's address.
#[derive(Debug, Clone)]
pub struct Pick {
    pub choice: Choice,
    /// The address, without a trailing `/`.
    pub base: String,
}

impl Pick {
    /// `path` at this address.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Central's addresses and the [`Policy`] over them, shared (in an `Arc`) by every
/// client of one station or one command.
pub struct CentralAddrs {
    urls: Vec<String>,
    policy: Mutex<Policy>,
    back: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for CentralAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentralAddrs").field("urls", &self.urls).finish()
    }
}

impl CentralAddrs {
    /// `urls` in order of preference (trailing `/` dropped). An empty list is one empty
    /// address, which fails every request (configs refuse an empty list first).
    pub fn new<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Self {
        let mut urls: Vec<String> =
            urls.into_iter().map(|u| u.as_ref().trim().trim_end_matches('/').to_string()).collect();
        if urls.is_empty() {
            urls.push(String::new());
        }
        Self {
            policy: Mutex::new(Policy::new(urls.len(), RETURN_BACKOFF)),
            urls,
            back: tokio::sync::watch::channel(0).0,
        }
    }

    /// One address.
    pub fn single(url: &str) -> Self {
        Self::new([url])
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The first address (what logs name as "central").
    pub fn preferred(&self) -> &str {
        &self.urls[0]
    }

    /// Whether the current address has answered since it became current.
    pub fn settled(&self) -> bool {
        self.lock().settled()
    }

    /// The address requests go to now.
    pub fn current(&self) -> &str {
        &self.urls[self.lock().current()]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the next request goes.
    pub fn choose(&self) -> Pick {
        let choice = self.lock().choose(Instant::now(), rand::random::<f64>());
        let base = self.urls[choice.index].clone();
        if choice.probe {
            tracing::info!(central = %base, "trying central's preferred address again");
        }
        Pick { choice, base }
    }

    /// `pick`'s request was answered (any status but a 5xx).
    pub fn answered(&self, pick: &Pick) {
        if self.lock().answered(&pick.choice) {
            tracing::info!(central = %pick.base, "central's preferred address answers again: using it");
            self.back.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// `pick`'s request got no answer, or a 5xx (with its `Retry-After`).
    pub fn failed(&self, pick: &Pick, retry_after: Option<Duration>) {
        let now = Instant::now();
        let moved = {
            let mut policy = self.lock();
            let before = policy.current();
            policy.failed(&pick.choice, now, retry_after, rand::random::<f64>());
            (policy.current() != before).then(|| policy.current())
        };
        if let Some(to) = moved {
            tracing::warn!(from = %pick.base, to = %self.urls[to], "central does not answer there: moving to its next address");
        }
    }

    /// Changes each time the preferred address answers again after the station had
    /// left it: a long-lived connection elsewhere ends and reconnects there.
    pub fn back_to_preferred(&self) -> tokio::sync::watch::Receiver<u64> {
        self.back.subscribe()
    }

    /// Sends `request` (built for `pick`'s address): first waits out a `Retry-After`,
    /// then allows `patience` for the answer's headers, and records the outcome in the
    /// policy. A 5xx is returned as the answer it is (the caller reports it) after it
    /// was recorded as a failure.
    pub async fn send(
        &self,
        pick: &Pick,
        request: reqwest::RequestBuilder,
        patience: Duration,
    ) -> Result<reqwest::Response, Unanswered> {
        if !pick.choice.wait.is_zero() {
            tokio::time::sleep(pick.choice.wait).await;
        }
        match tokio::time::timeout(patience, request.send()).await {
            Err(_) => {
                self.failed(pick, None);
                Err(Unanswered::Timeout(patience))
            }
            Ok(Err(e)) => {
                self.failed(pick, None);
                Err(Unanswered::Http(e))
            }
            Ok(Ok(response)) if response.status().is_server_error() => {
                self.failed(pick, retry_after(response.headers()));
                Ok(response)
            }
            Ok(Ok(response)) => {
                self.answered(pick);
                Ok(response)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy(n: usize) -> Policy {
        Policy::new(n, Backoff { base: 30 * S, max: 600 * S })
    }

    #[test]
    fn requests_go_to_the_preferred_address_and_move_in_order_on_failure() {
        let t0 = Instant::now();
        let mut p = policy(3);
        let c = p.choose(t0, 0.5);
        assert_eq!((c.index, c.settled, c.probe), (0, false, false));
        assert!(!p.answered(&c));
        assert!(p.choose(t0, 0.5).settled, "answered: a long-poll may go there");
        p.failed(&c, t0, None, 0.5);
        let c = p.choose(t0, 0.5);
        assert_eq!((c.index, c.settled), (1, false), "the next address, not yet settled");
        p.failed(&c, t0, None, 0.5);
        assert_eq!(p.choose(t0, 0.5).index, 2);
        let c = p.choose(t0, 0.5);
        p.failed(&c, t0, None, 0.5);
        assert_eq!(p.choose(t0, 0.5).index, 0, "round the list to the first again");
        assert_eq!(p.return_at(), None, "back on the preferred: no probe pending");
    }

    #[test]
    fn a_failure_sent_before_the_address_moved_does_not_move_it_again() {
        let t0 = Instant::now();
        let mut p = policy(3);
        let (first, second) = (p.choose(t0, 0.5), p.choose(t0, 0.5));
        p.failed(&first, t0, None, 0.5);
        p.failed(&second, t0 + S, None, 0.5);
        assert_eq!(p.current(), 1, "two clients lost on one dead address: one step");
    }

    #[test]
    fn a_single_address_stays_but_is_no_longer_settled_after_a_failure() {
        let t0 = Instant::now();
        let mut p = policy(1);
        let c = p.choose(t0, 0.0);
        p.answered(&c);
        p.failed(&c, t0, None, 0.0);
        let c = p.choose(t0, 0.0);
        assert_eq!((c.index, c.settled, c.probe), (0, false, false));
    }

    #[test]
    fn the_preferred_address_is_tried_again_with_growing_capped_jittered_delays() {
        let t0 = Instant::now();
        let mut p = policy(2);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, None, 0.0);
        // Jitter 0 → half the base: the first probe 15 s after leaving.
        assert_eq!(p.return_at(), Some(t0 + 15 * S));
        let c = p.choose(t0 + 14 * S, 0.0);
        assert_eq!((c.index, c.probe), (1, false), "not yet");
        p.answered(&c);
        let mut now = t0 + 15 * S;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let probe = p.choose(now, 0.0);
            assert_eq!((probe.index, probe.probe, probe.settled), (0, true, false));
            // Meanwhile the others stay on the address that works.
            let other = p.choose(now, 0.0);
            assert_eq!((other.index, other.probe, other.settled), (1, false, true));
            p.failed(&probe, now, None, 0.0);
            assert_eq!(p.current(), 1, "a failed probe leaves the current address alone");
            let at = p.return_at().expect("another probe planned");
            waits.push(at.duration_since(now).as_secs());
            now = at;
        }
        // 30 s · 2^k with jitter 0 (half), from the second attempt, capped at 600 s.
        assert_eq!(waits, [30, 60, 120, 240, 300, 300, 300, 300]);
    }

    #[test]
    fn jitter_spreads_a_probe_over_half_to_all_of_its_delay() {
        let t0 = Instant::now();
        for (unit, expected) in [(0.0, 15.0), (0.5, 22.5), (0.999_999, 30.0), (7.0, 30.0)] {
            let mut p = policy(2);
            let c = p.choose(t0, unit);
            p.failed(&c, t0, None, unit);
            let wait = p.return_at().expect("probe").duration_since(t0).as_secs_f64();
            assert!((wait - expected).abs() < 0.01, "unit {unit}: {wait}");
            assert!((15.0..=30.0).contains(&wait));
        }
    }

    #[test]
    fn the_first_answer_of_the_preferred_address_brings_everything_back() {
        let t0 = Instant::now();
        let mut p = policy(3);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, None, 0.0);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, None, 0.0);
        assert_eq!(p.current(), 2);
        let probe = p.choose(t0 + 20 * S, 0.0);
        assert!(probe.probe);
        assert!(p.answered(&probe), "the preferred address is back");
        let c = p.choose(t0 + 20 * S, 0.0);
        assert_eq!((c.index, c.settled, c.probe), (0, true, false));
        assert_eq!(p.return_at(), None);
        // A late failure of a request sent to the address left behind changes nothing.
        let stale = Choice { index: 2, wait: Duration::ZERO, settled: true, probe: false };
        p.failed(&stale, t0 + 21 * S, None, 0.0);
        assert_eq!(p.current(), 0);
    }

    #[test]
    fn retry_after_is_a_minimum_wait_for_that_address() {
        let t0 = Instant::now();
        let mut p = policy(2);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, Some(40 * S), 0.0);
        assert_eq!(p.current(), 1);
        // The probe is due at 15 s, but the preferred address asked for 40.
        let c = p.choose(t0 + 20 * S, 0.0);
        assert_eq!((c.index, c.probe), (1, false));
        let c = p.choose(t0 + 40 * S, 0.0);
        assert_eq!((c.index, c.probe), (0, true));
        // Both busy: the one free soonest, after its wait.
        let mut p = policy(2);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, Some(8 * S), 0.0);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, Some(5 * S), 0.0);
        let c = p.choose(t0 + S, 0.0);
        assert_eq!((c.index, c.wait, c.settled), (1, 4 * S, false));
        // A single address: the caller waits out its Retry-After.
        let mut p = policy(1);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, Some(5 * S), 0.0);
        assert_eq!(p.choose(t0 + 2 * S, 0.0).wait, 3 * S);
        assert_eq!(p.choose(t0 + 5 * S, 0.0).wait, Duration::ZERO);
        // A Retry-After from anyone on the path is bounded.
        let mut p = policy(1);
        let c = p.choose(t0, 0.0);
        p.failed(&c, t0, Some(Duration::from_secs(u32::MAX.into())), 0.0);
        assert_eq!(p.choose(t0, 0.0).wait, MAX_RETRY_AFTER);
    }

    #[test]
    fn retry_after_headers_are_read_as_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "5".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(5 * S));
        headers
            .insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn addresses_lose_their_trailing_slash_and_uploads_get_time_for_their_body() {
        let addrs = CentralAddrs::new(["http://a:1/", "http://b:2"]);
        assert_eq!(addrs.urls(), ["http://a:1", "http://b:2"]);
        assert_eq!(addrs.preferred(), "http://a:1");
        assert_eq!(patience_for_upload(0), ANSWER_TIMEOUT);
        assert_eq!(patience_for_upload(160 * 1024), ANSWER_TIMEOUT + 10 * S);
    }
}
