//! What a worker's users run: the compiled scenario and the run's identity, seeds, key layout
//! and clock. The coordinator builds it once per run; the protocol carries it to workers.

use crate::load::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Everything a worker needs to run its part of a run, sent once per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub run_id: String,
    pub scenario: Scenario,
    /// Seeds object contents and every random choice.
    pub seed: u64,
    /// Every object of the run lives under this prefix (`chopsticks/<run-id>/`).
    pub key_prefix: String,
    /// Tasks (or sequence passes) each user runs before it stops; `None` = until stopped.
    pub iterations: Option<u64>,
    /// How long in-flight requests may finish after a stop before they are cut off.
    pub stop_timeout_s: f64,
    /// Unix time in microseconds of the run's clock origin, per the coordinator's clock: the
    /// instant load began. Second N of the run is `[origin + N s, origin + N + 1 s)`; every
    /// sample is attributed to the second it completed in, on every worker alike (workers'
    /// clocks are assumed synchronised, e.g. by NTP; an offset shifts their samples by it).
    pub clock_origin_unix_us: i64,
}

impl RunSpec {
    /// The clock origin as a `SystemTime`.
    pub fn clock_origin(&self) -> std::time::SystemTime {
        let us = Duration::from_micros(self.clock_origin_unix_us.unsigned_abs());
        if self.clock_origin_unix_us >= 0 {
            std::time::UNIX_EPOCH + us
        } else {
            std::time::UNIX_EPOCH - us
        }
    }

    /// The local `Instant` of the clock origin: `now` shifted by how far the origin is from
    /// this machine's wall clock.
    pub fn clock_origin_instant(&self, now: Instant, wall_now: std::time::SystemTime) -> Instant {
        let origin = self.clock_origin();
        match wall_now.duration_since(origin) {
            Ok(ago) => now.checked_sub(ago).unwrap_or(now),
            Err(ahead) => now.checked_add(ahead.duration()).unwrap_or(now),
        }
    }
}

impl RunSpec {
    /// Key of prefilled object `index`.
    pub fn shared_key(&self, index: u64) -> String {
        format!("{}shared/{index:08}", self.key_prefix)
    }

    pub fn shared_prefix(&self) -> String {
        format!("{}shared/", self.key_prefix)
    }

    /// Prefix of the objects every user of worker `worker` writes.
    pub fn worker_prefix(&self, worker: u32) -> String {
        format!("{}w{worker}/", self.key_prefix)
    }

    /// Prefix of the objects user `user` of worker `worker` writes.
    pub fn user_prefix(&self, worker: u32, user: u64) -> String {
        let mut prefix = String::with_capacity(self.key_prefix.len() + 24);
        self.push_user_prefix(&mut prefix, worker, user);
        prefix
    }

    /// Key of object `seq` of user `user` of worker `worker`, built in one buffer: it is made
    /// for every request.
    pub fn user_key(&self, worker: u32, user: u64, seq: u64) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + 32);
        self.push_user_prefix(&mut key, worker, user);
        let _ = write!(key, "{seq}");
        key
    }

    fn push_user_prefix(&self, out: &mut String, worker: u32, user: u64) {
        let _ = write!(out, "{}w{worker}/u{user}/", self.key_prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::protocol::{unix_us, FromWorker, ToWorker};
    use crate::load::scenario::Scenario;

    #[test]
    fn user_keys_live_under_their_user_prefix() {
        let (scenario, _) = Scenario::resolve("s3_small_objects").unwrap();
        let spec = RunSpec {
            run_id: "r".into(),
            scenario,
            seed: 1,
            key_prefix: "chopsticks/r/".into(),
            iterations: None,
            stop_timeout_s: 1.0,
            clock_origin_unix_us: 0,
        };
        assert_eq!(spec.user_prefix(3, 7), "chopsticks/r/w3/u7/");
        assert_eq!(spec.user_key(3, 7, 42), "chopsticks/r/w3/u7/42");
        // u1's keys are not under u11's prefix, nor the other way round.
        assert!(!spec.user_key(3, 1, 1).starts_with(&spec.user_prefix(3, 11)));
        assert!(!spec.user_key(3, 11, 1).starts_with(&spec.user_prefix(3, 1)));
    }

    #[test]
    fn the_clock_origin_maps_to_this_machines_instants() {
        let (scenario, _) = Scenario::resolve("s3_small_objects").unwrap();
        let wall = std::time::SystemTime::now();
        let now = Instant::now();
        let mut spec = RunSpec {
            run_id: "r".into(),
            scenario,
            seed: 1,
            key_prefix: "chopsticks/r/".into(),
            iterations: None,
            stop_timeout_s: 1.0,
            clock_origin_unix_us: unix_us(wall - Duration::from_millis(2500)),
        };
        let origin = spec.clock_origin_instant(now, wall);
        let ago = now.duration_since(origin);
        assert!((ago.as_secs_f64() - 2.5).abs() < 1e-5, "{ago:?}");
        // An origin ahead of this clock (a skewed worker) maps into the future.
        spec.clock_origin_unix_us = unix_us(wall + Duration::from_millis(300));
        let ahead = spec.clock_origin_instant(now, wall).duration_since(now);
        assert!((ahead.as_secs_f64() - 0.3).abs() < 1e-5, "{ahead:?}");
    }

    #[test]
    fn messages_are_tagged_json() {
        let m = ToWorker::Stop {
            run_id: "r".into(),
            abort: false,
        };
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, r#"{"type":"stop","run_id":"r","abort":false}"#);
        let back: ToWorker = serde_json::from_str(&j).unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<FromWorker>(r#"{"type":"nonsense"}"#).is_err());
    }
}
