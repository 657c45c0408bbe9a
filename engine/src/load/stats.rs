//! Measured results: per task name, HdrHistograms of latency and time to first byte
//! (microseconds, 3 significant digits), request/failure counts, bytes, and failures by kind.
//! Latency and TTFB hold successful requests only; a failed request's time goes to its own
//! `failure_latency` histogram, so a burst of fast refusals cannot pull the percentiles down.
//!
//! [`TaskStats`] is both an interval delta (what a worker sends each second) and a running
//! total (what the coordinator keeps); merging is exact histogram addition, so merged
//! percentiles equal those of one histogram fed every sample. Histograms travel as their
//! recorded (value, count) pairs, varint-coded and base64 in JSON ([`wire`]); files in the
//! interchange format (`histograms.hlog`) stay HdrHistogram V2+deflate. The [`Recorder`] is the hot path: users record
//! into a few mutex-guarded shards, each outcome under the second of the run it completed
//! in, which a once-a-second `take_before` drains.

use crate::load::driver::{FailureKind, OpError};
use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Significant digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
///
/// Histograms that record or accumulate are dense, auto-resizing HDR histograms. One decoded
/// from the wire is kept *sparse* — its recorded (value, count) pairs — until it is added into
/// a dense one: a dense HDR counts array spans the whole value range (about 110 KB for 1 µs to
/// 10 s at 3 significant digits) however few samples it holds, so a coordinator with many
/// workers' deltas waiting would otherwise hold gigabytes. Sparse pairs are exact: each value
/// is its bucket's representative, so adding them reproduces the same counts.
#[derive(Debug, Clone)]
pub struct Hist(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Dense(Histogram<u64>),
    Sparse { pairs: Vec<(u64, u64)>, count: u64 },
}

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

fn empty_dense() -> Histogram<u64> {
    match Histogram::new(SIGFIG) {
        Ok(h) => h,
        Err(_) => unreachable!("hdrhistogram accepts 0..=5 significant digits"),
    }
}

/// The dense histogram holding sparse `pairs`.
fn dense_of(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = empty_dense();
    for &(value, count) in pairs {
        let _ = h.record_n(value, count);
    }
    h
}

fn pairs_of(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

impl Hist {
    pub fn new() -> Hist {
        Hist(Repr::Dense(empty_dense()))
    }

    fn dense_mut(&mut self) -> &mut Histogram<u64> {
        if let Repr::Sparse { pairs, .. } = &self.0 {
            self.0 = Repr::Dense(dense_of(pairs));
        }
        match &mut self.0 {
            Repr::Dense(h) => h,
            Repr::Sparse { .. } => unreachable!("made dense above"),
        }
    }

    /// The dense histogram (built on the fly for a sparse one).
    pub fn histogram(&self) -> std::borrow::Cow<'_, Histogram<u64>> {
        match &self.0 {
            Repr::Dense(h) => std::borrow::Cow::Borrowed(h),
            Repr::Sparse { pairs, .. } => std::borrow::Cow::Owned(dense_of(pairs)),
        }
    }

    /// The histogram ready for reading several figures: a sparse one is made dense once
    /// here, not once per figure (each costs a whole counts array: tens of KB allocated,
    /// filled and freed, which held a one-core client up for milliseconds every second).
    pub fn view(&self) -> HistView<'_> {
        let count = self.count();
        HistView {
            count,
            dense: (count > 0).then(|| self.histogram()),
        }
    }

    pub fn record(&mut self, d: Duration) {
        let micros = (d.as_micros() as u64).max(1);
        let h = self.dense_mut();
        // `record` grows an auto-resizing histogram; `saturating_record` would clamp instead.
        if h.record(micros).is_err() {
            h.saturating_record(micros);
        }
    }

    pub fn add(&mut self, other: &Hist) {
        if other.count() == 0 {
            return;
        }
        let h = self.dense_mut();
        match &other.0 {
            // Both sides are auto-resizing with the same precision: addition cannot fail.
            Repr::Dense(o) => {
                let _ = h.add(o);
            }
            Repr::Sparse { pairs, .. } => {
                for &(value, count) in pairs {
                    let _ = h.record_n(value, count);
                }
            }
        }
    }

    /// Empties the histogram, keeping its allocation when dense.
    pub fn reset(&mut self) {
        match &mut self.0 {
            Repr::Dense(h) => h.reset(),
            Repr::Sparse { .. } => self.0 = Repr::Dense(empty_dense()),
        }
    }

    pub fn count(&self) -> u64 {
        match &self.0 {
            Repr::Dense(h) => h.len(),
            Repr::Sparse { count, .. } => *count,
        }
    }

    /// Recorded values in `[low, high]` microseconds (at HDR resolution).
    pub fn count_between(&self, low: u64, high: u64) -> u64 {
        self.view().count_between(low, high)
    }

    /// Value at `q` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.view().quantile_ms(q)
    }

    pub fn min_ms(&self) -> f64 {
        self.view().min_ms()
    }

    pub fn max_ms(&self) -> f64 {
        self.view().max_ms()
    }

    pub fn mean_ms(&self) -> f64 {
        self.view().mean_ms()
    }

    /// The wire encoding: the recorded (value, count) pairs, varint-coded (see [`wire`]).
    pub fn encode(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Dense(h) => wire::encode(&pairs_of(h)),
            Repr::Sparse { pairs, .. } => wire::encode(pairs),
        }
    }

    /// Decodes the wire encoding into a sparse histogram. HdrHistogram V2(+deflate) bytes, what
    /// protocol 2 sent and a worker's `cut-run.json` may still hold, are decoded too.
    pub fn decode(bytes: &[u8]) -> Result<Hist, HistDecodeError> {
        if bytes.first() == Some(&wire::FORMAT) {
            let (pairs, count) = wire::decode(bytes)?;
            return Ok(Hist(Repr::Sparse { pairs, count }));
        }
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .map_err(|e| HistDecodeError::HdrV2(format!("{e:?}")))?;
        Ok(Hist(Repr::Sparse {
            count: h.len(),
            pairs: pairs_of(&h),
        }))
    }

    /// The recorded (value, count) pairs: the histogram's canonical content.
    fn pairs(&self) -> Vec<(u64, u64)> {
        match &self.0 {
            Repr::Dense(h) => pairs_of(h),
            Repr::Sparse { pairs, .. } => pairs.clone(),
        }
    }
}

/// A histogram read for its figures, in milliseconds (see [`Hist::view`]).
pub struct HistView<'a> {
    count: u64,
    /// `None` when empty: every figure is then 0, and nothing is built.
    dense: Option<std::borrow::Cow<'a, Histogram<u64>>>,
}

impl HistView<'_> {
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Recorded values in `[low, high]` microseconds (at HDR resolution).
    pub fn count_between(&self, low: u64, high: u64) -> u64 {
        self.dense
            .as_ref()
            .map_or(0, |h| h.count_between(low, high))
    }

    /// Value at `q` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.ms(|h| h.value_at_quantile(q) as f64)
    }

    pub fn min_ms(&self) -> f64 {
        self.ms(|h| h.min() as f64)
    }

    pub fn max_ms(&self) -> f64 {
        self.ms(|h| h.max() as f64)
    }

    pub fn mean_ms(&self) -> f64 {
        self.ms(Histogram::mean)
    }

    /// `micros` of the histogram in milliseconds; 0 when empty.
    fn ms(&self, micros: impl Fn(&Histogram<u64>) -> f64) -> f64 {
        self.dense.as_ref().map_or(0.0, |h| micros(h) / 1000.0)
    }
}

impl PartialEq for Hist {
    fn eq(&self, other: &Hist) -> bool {
        self.count() == other.count() && self.pairs() == other.pairs()
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.encode()))
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        Hist::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Why histogram bytes from a peer or a file were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistDecodeError {
    #[error("histogram bytes end in the middle of a number")]
    Truncated,
    #[error("a histogram number is longer than 64 bits")]
    VarintTooLong,
    #[error("histogram values must be strictly increasing and at least 1")]
    NotIncreasing,
    #[error("a histogram value has a count of 0")]
    ZeroCount,
    #[error("a histogram value exceeds {max}")]
    ValueTooLarge { max: u64 },
    #[error("histogram counts add up to more than 2^64")]
    CountOverflow,
    #[error("{0} bytes follow the histogram")]
    TrailingBytes(usize),
    #[error("bad HdrHistogram V2 histogram: {0}")]
    HdrV2(String),
}

/// How histograms travel (protocol 3 on): the recorded (value, count) pairs of an HDR
/// histogram, ascending, as LEB128 varints — a format byte, the number of pairs, then per pair
/// the gap from the previous value (the first from 0) and the count. A worker's second of
/// samples has at most a few thousand distinct buckets, so this is a few bytes per pair and the
/// coordinator decodes it without building the ~100 KB dense counts array HdrHistogram's V2
/// format needs (and without inflating it): profiling 500 workers showed V2+deflate decoding
/// took about three quarters of the coordinator's CPU. Values are each bucket's highest equivalent value, so
/// adding the pairs into a dense histogram reproduces its counts exactly.
pub mod wire {
    use super::HistDecodeError;

    /// First byte of the encoding. HdrHistogram's V2 cookies begin with 0x1c, so the two are
    /// told apart by it.
    pub const FORMAT: u8 = b'S';
    /// The largest value accepted: what an auto-resizing HDR histogram can still record.
    pub const MAX_VALUE: u64 = u64::MAX / 2;

    fn put(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn take(bytes: &[u8], at: &mut usize) -> Result<u64, HistDecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*at).ok_or(HistDecodeError::Truncated)?;
            *at += 1;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(HistDecodeError::VarintTooLong);
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(HistDecodeError::VarintTooLong)
    }

    /// Encodes ascending (value, count) pairs.
    pub fn encode(pairs: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + pairs.len() * 4);
        out.push(FORMAT);
        put(&mut out, pairs.len() as u64);
        let mut previous = 0;
        for &(value, count) in pairs {
            put(&mut out, value - previous);
            put(&mut out, count);
            previous = value;
        }
        out
    }

    /// The pairs and their total count; every rule of the format is checked.
    pub fn decode(bytes: &[u8]) -> Result<(Vec<(u64, u64)>, u64), HistDecodeError> {
        let mut at = 1;
        let n = take(bytes, &mut at)?;
        // Each pair takes at least two bytes: a claimed length cannot reserve more than that.
        let room = bytes.len().saturating_sub(at) / 2;
        let mut pairs = Vec::with_capacity(usize::try_from(n).unwrap_or(usize::MAX).min(room));
        let (mut value, mut total) = (0u64, 0u64);
        for _ in 0..n {
            let gap = take(bytes, &mut at)?;
            if gap == 0 {
                return Err(HistDecodeError::NotIncreasing);
            }
            value = value
                .checked_add(gap)
                .filter(|v| *v <= MAX_VALUE)
                .ok_or(HistDecodeError::ValueTooLarge { max: MAX_VALUE })?;
            let count = take(bytes, &mut at)?;
            if count == 0 {
                return Err(HistDecodeError::ZeroCount);
            }
            total = total
                .checked_add(count)
                .ok_or(HistDecodeError::CountOverflow)?;
            pairs.push((value, count));
        }
        if at != bytes.len() {
            return Err(HistDecodeError::TrailingBytes(bytes.len() - at));
        }
        Ok((pairs, total))
    }
}

/// Failures of one kind: how many, and one example message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureCount {
    pub kind: FailureKind,
    pub count: u64,
    pub sample: String,
}

/// Results for one task name over some interval (or the whole run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStats {
    /// Completed requests, failed ones included (Locust's "Request Count").
    pub requests: u64,
    pub failures: u64,
    /// Payload bytes moved: uploaded for writes, downloaded for reads.
    pub bytes: u64,
    /// Requests cut short when a run was stopped; not in `requests`.
    pub aborted: u64,
    /// Tasks not executed because there was no object to act on yet.
    pub skipped: u64,
    /// Successful requests only.
    pub latency: Hist,
    /// Successful reads only.
    pub ttfb: Hist,
    /// Failed requests only: how long a request took to fail.
    pub failure_latency: Hist,
    /// Keyed by the kind's display text, so JSON keys read like `failures.csv`.
    pub failures_by_kind: BTreeMap<String, FailureCount>,
    /// Successful requests that had an intended start (open-model arrivals, `pacing` users):
    /// time from the moment the request was sent. `latency` then holds the time from the
    /// intended start. Empty in a run without intended starts, where the two are the same
    /// and `latency` alone holds them (recorded once).
    #[serde(default)]
    pub service: Hist,
    /// Open-model arrivals of this task (one per task of a sequence pass): issued or dropped.
    #[serde(default)]
    pub arrivals: u64,
    /// Arrivals not sent because `max_in_flight` requests were outstanding.
    #[serde(default)]
    pub dropped: u64,
    /// Arrivals sent more than [`LATE_AFTER`] after their scheduled time.
    #[serde(default)]
    pub late: u64,
    /// How late each late arrival was sent.
    #[serde(default)]
    pub lateness: Hist,
}

/// An arrival sent this long or longer after its scheduled time is late (the timer's
/// resolution is a millisecond; below it, an arrival is on time).
pub const LATE_AFTER: Duration = Duration::from_millis(1);

/// What the open-model scheduler did with one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalFate {
    /// Sent, this long after its scheduled time.
    Sent(Duration),
    /// Not sent: `max_in_flight` requests were outstanding.
    Dropped,
}

impl TaskStats {
    pub fn merge(&mut self, other: &TaskStats) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.bytes += other.bytes;
        self.aborted += other.aborted;
        self.skipped += other.skipped;
        self.latency.add(&other.latency);
        self.ttfb.add(&other.ttfb);
        self.failure_latency.add(&other.failure_latency);
        self.service.add(&other.service);
        self.arrivals += other.arrivals;
        self.dropped += other.dropped;
        self.late += other.late;
        self.lateness.add(&other.lateness);
        for (k, f) in &other.failures_by_kind {
            self.failures_by_kind
                .entry(k.clone())
                .and_modify(|mine| mine.count += f.count)
                .or_insert_with(|| f.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.aborted == 0 && self.skipped == 0 && self.arrivals == 0
    }

    /// Requests issued: completed (failed ones included) and aborted.
    pub fn issued(&self) -> u64 {
        self.requests + self.aborted
    }

    fn record_arrival(&mut self, fate: ArrivalFate) {
        self.arrivals += 1;
        match fate {
            ArrivalFate::Dropped => self.dropped += 1,
            ArrivalFate::Sent(lateness) if lateness >= LATE_AFTER => {
                self.late += 1;
                self.lateness.record(lateness);
            }
            ArrivalFate::Sent(_) => {}
        }
    }

    fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Done {
                latency,
                ttfb,
                bytes,
                error,
                waited,
            } => {
                self.requests += 1;
                match error {
                    None => {
                        self.bytes += bytes;
                        match waited {
                            Some(w) => {
                                self.latency.record(latency.saturating_add(*w));
                                self.service.record(*latency);
                            }
                            None => self.latency.record(*latency),
                        }
                        if let Some(t) = ttfb {
                            self.ttfb.record(*t);
                        }
                    }
                    Some(e) => {
                        self.failures += 1;
                        self.failure_latency.record(*latency);
                        let key = e.kind.to_string();
                        self.failures_by_kind
                            .entry(key)
                            .and_modify(|f| f.count += 1)
                            .or_insert_with(|| FailureCount {
                                kind: e.kind.clone(),
                                count: 1,
                                sample: e.detail.clone(),
                            });
                    }
                }
            }
            Outcome::Aborted => self.aborted += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// What happened to one task execution.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A request completed, successfully or not.
    Done {
        /// From the moment the request was sent (the service time).
        latency: Duration,
        ttfb: Option<Duration>,
        bytes: u64,
        error: Option<OpError>,
        /// For a request with an intended start (an arrival, a `pacing` user): how long after
        /// it the request was sent. `None` for closed users without pacing.
        waited: Option<Duration>,
    },
    /// The request was cut off by a stop.
    Aborted,
    /// No object to act on yet.
    Skipped,
}

/// Which gateway and bucket a request went to, as indexes into the run's lists; `None` when
/// there is only one (nothing is counted per gateway or bucket then). Small: every user keeps
/// its last one (both lists are bounded far below 256 by `limits::ENDPOINTS` and `BUCKETS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Via {
    pub endpoint: Option<u8>,
    pub bucket: Option<u8>,
}

/// Per task name results; the unit workers send and the coordinator merges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsDelta {
    pub tasks: BTreeMap<String, TaskStats>,
    /// The same requests per gateway URL (all tasks merged), when a run has several gateways;
    /// empty with one. Absent in deltas and summaries from before several gateways existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, TaskStats>,
    /// The same requests per bucket name (all tasks merged), when a run spreads its users over
    /// several buckets; empty with one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub buckets: BTreeMap<String, TaskStats>,
}

/// Merges `other`'s per-name statistics into `mine`, cloning a name only when it is new.
fn merge_named(mine: &mut BTreeMap<String, TaskStats>, other: &BTreeMap<String, TaskStats>) {
    for (name, t) in other {
        match mine.get_mut(name) {
            Some(m) => m.merge(t),
            None => {
                mine.insert(name.clone(), t.clone());
            }
        }
    }
}

impl StatsDelta {
    pub fn merge(&mut self, other: &StatsDelta) {
        // Task names repeat every second: look up before cloning a name for a new entry.
        merge_named(&mut self.tasks, &other.tasks);
        merge_named(&mut self.endpoints, &other.endpoints);
        merge_named(&mut self.buckets, &other.buckets);
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.values().all(TaskStats::is_empty)
    }

    /// All tasks merged: the "Aggregated" row.
    pub fn total(&self) -> TaskStats {
        let mut all = TaskStats::default();
        for t in self.tasks.values() {
            all.merge(t);
        }
        all
    }

    pub fn requests(&self) -> u64 {
        self.tasks.values().map(|t| t.requests).sum()
    }

    pub fn failures(&self) -> u64 {
        self.tasks.values().map(|t| t.failures).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tasks.values().map(|t| t.bytes).sum()
    }
}

/// Number of shards users record into; a power of two comfortably above the core count.
const SHARDS: usize = 8;

/// One shard: per second of the run (oldest first), per task index, what completed in it.
/// Usually one or two seconds are open at once, so a short list beats a map.
type Shard = Vec<(u64, Vec<TaskStats>)>;

/// Where users record outcomes. Task names are fixed per run and addressed by index. Every
/// outcome goes to the second of the run it completed in (seconds count from `origin`, the
/// run's clock origin on this machine), so a delta is exactly the samples of its seconds,
/// whenever it is taken.
pub struct Recorder {
    names: Vec<String>,
    /// Gateway URLs when a run has several: their slots follow the tasks' in each second
    /// (slot `names.len() + e` is gateway `e`). Empty with one gateway.
    endpoints: Vec<String>,
    /// Bucket names when a run spreads users over several: their slots follow the gateways'
    /// (slot `names.len() + endpoints.len() + b` is bucket `b`). Empty with one bucket.
    buckets: Vec<String>,
    /// Second 0 of the run begins here.
    origin: Instant,
    shards: Vec<Mutex<Shard>>,
}

impl Recorder {
    /// A recorder whose second 0 begins now.
    pub fn new(names: Vec<String>) -> Recorder {
        Recorder::with_origin(names, Instant::now())
    }

    /// A recorder whose second 0 begins at `origin` (the run's clock origin on this machine).
    pub fn with_origin(names: Vec<String>, origin: Instant) -> Recorder {
        let shards = (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect();
        Recorder {
            names,
            endpoints: Vec::new(),
            buckets: Vec::new(),
            origin,
            shards,
        }
    }

    /// The same recorder, also counting each outcome under the gateway it was sent to (see
    /// [`Recorder::record_via`]). With fewer than two gateways nothing is counted per gateway.
    pub fn with_endpoints(mut self, endpoints: Vec<String>) -> Recorder {
        if endpoints.len() > 1 {
            self.endpoints = endpoints;
        }
        self
    }

    /// The same recorder, also counting each outcome under the bucket it went to (see
    /// [`Recorder::record_via`]). With fewer than two buckets nothing is counted per bucket.
    pub fn with_buckets(mut self, buckets: Vec<String>) -> Recorder {
        if buckets.len() > 1 {
            self.buckets = buckets;
        }
        self
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The second of the run `at` falls in (0 before the origin).
    pub fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Records one outcome of task `task` for user `user` (which picks the shard), in the
    /// second that is current now.
    pub fn record(&self, user: u64, task: usize, outcome: &Outcome) {
        self.record_at(self.second_of(Instant::now()), user, task, outcome);
    }

    /// Records one outcome of task `task` for user `user`, sent to gateway `via.endpoint` and
    /// bucket `via.bucket` (indexes into the recorder's gateways and buckets; `None` or out of
    /// range counts it under the task only).
    pub fn record_via(&self, user: u64, task: usize, via: Via, outcome: &Outcome) {
        let second = self.second_of(Instant::now());
        let slots = self.names.len();
        let endpoint = via
            .endpoint
            .map(usize::from)
            .filter(|&e| e < self.endpoints.len())
            .map(|e| slots + e);
        let bucket = via
            .bucket
            .map(usize::from)
            .filter(|&b| b < self.buckets.len())
            .map(|b| slots + self.endpoints.len() + b);
        self.with_slots(second, user, task, [endpoint, bucket], |t| {
            t.record(outcome)
        });
    }

    /// Records what became of one arrival of task `task`, in the second that is current now.
    pub fn record_arrival(&self, user: u64, task: usize, fate: ArrivalFate) {
        let second = self.second_of(Instant::now());
        self.with_slot(second, user, task, |t| t.record_arrival(fate));
    }

    /// Records one outcome in second `second`.
    pub fn record_at(&self, second: u64, user: u64, task: usize, outcome: &Outcome) {
        self.with_slot(second, user, task, |t| t.record(outcome));
    }

    fn with_slot(&self, second: u64, user: u64, task: usize, f: impl Fn(&mut TaskStats)) {
        self.with_slots(second, user, task, [None, None], f);
    }

    /// Applies `f` to task `task`'s slot and to each slot of `also` that is given, in the
    /// same second.
    fn with_slots(
        &self,
        second: u64,
        user: u64,
        task: usize,
        also: [Option<usize>; 2],
        f: impl Fn(&mut TaskStats),
    ) {
        if task >= self.names.len() {
            return;
        }
        let width = self.names.len() + self.endpoints.len() + self.buckets.len();
        let shard = &self.shards[(user as usize) % SHARDS];
        let mut seconds = shard.lock().unwrap_or_else(|p| p.into_inner());
        let slot = match seconds.iter().rposition(|(s, _)| *s == second) {
            Some(i) => i,
            None => {
                // Keep the list in second order: outcomes nearly always land in the newest.
                let at = seconds.partition_point(|(s, _)| *s < second);
                seconds.insert(at, (second, vec![TaskStats::default(); width]));
                at
            }
        };
        f(&mut seconds[slot].1[task]);
        for i in also.into_iter().flatten() {
            if let Some(t) = seconds[slot].1.get_mut(i) {
                f(t);
            }
        }
    }

    /// Everything recorded for seconds before `limit`, per second (ascending); those seconds
    /// are emptied. Later seconds stay.
    pub fn take_before(&self, limit: u64) -> Vec<(u64, StatsDelta)> {
        let mut merged: Vec<(u64, Vec<TaskStats>)> = Vec::new();
        for shard in &self.shards {
            // Taken out under the lock and merged after it: users (and the open-model
            // scheduler) record into the shard meanwhile, and a merge of histograms holds it
            // for milliseconds (docs/benchmarks.md, "Session 24").
            let taken: Vec<(u64, Vec<TaskStats>)> = {
                let mut seconds = shard.lock().unwrap_or_else(|p| p.into_inner());
                let n = seconds.partition_point(|(s, _)| *s < limit);
                seconds.drain(..n).collect()
            };
            for (second, tasks) in taken {
                match merged.iter_mut().find(|(s, _)| *s == second) {
                    Some((_, acc)) => {
                        for (a, t) in acc.iter_mut().zip(&tasks) {
                            a.merge(t);
                        }
                    }
                    None => merged.push((second, tasks)),
                }
            }
        }
        merged.sort_by_key(|(s, _)| *s);
        merged
            .into_iter()
            .map(|(second, mut tasks)| {
                let mut per_endpoint = tasks.split_off(self.names.len().min(tasks.len()));
                let per_bucket =
                    per_endpoint.split_off(self.endpoints.len().min(per_endpoint.len()));
                let named = |names: &[String], stats: Vec<TaskStats>| -> BTreeMap<_, _> {
                    names
                        .iter()
                        .cloned()
                        .zip(stats)
                        .filter(|(_, t)| !t.is_empty())
                        .collect()
                };
                let delta = StatsDelta {
                    tasks: self
                        .names
                        .iter()
                        .cloned()
                        .zip(tasks)
                        .filter(|(_, t)| !t.is_empty())
                        .collect(),
                    endpoints: named(&self.endpoints, per_endpoint),
                    buckets: named(&self.buckets, per_bucket),
                };
                (second, delta)
            })
            .filter(|(_, d)| !d.tasks.is_empty())
            .collect()
    }

    /// Everything recorded so far, all seconds merged; empties the recorder.
    pub fn take(&self) -> StatsDelta {
        let mut all = StatsDelta::default();
        for (_, d) in self.take_before(u64::MAX) {
            all.merge(&d);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(ms: u64, err: Option<FailureKind>) -> Outcome {
        Outcome::Done {
            latency: Duration::from_millis(ms),
            ttfb: Some(Duration::from_millis(ms / 2)),
            bytes: 100,
            error: err.map(|k| OpError::new(k, "boom")),
            waited: None,
        }
    }

    #[test]
    fn recorder_counts_exactly_and_resets() {
        let r = Recorder::new(vec!["put".into(), "get".into()]);
        for u in 0..100u64 {
            r.record(u, 0, &done(10, None));
            r.record(u, 1, &done(20, Some(FailureKind::Integrity)));
        }
        r.record(3, 1, &Outcome::Skipped);
        let d = r.take();
        assert_eq!(d.tasks["put"].requests, 100);
        assert_eq!(d.tasks["put"].bytes, 10_000);
        assert_eq!(d.tasks["get"].requests, 100);
        assert_eq!(d.tasks["get"].failures, 100);
        assert_eq!(d.tasks["get"].bytes, 0);
        assert_eq!(d.tasks["get"].skipped, 1);
        assert_eq!(d.tasks["get"].failures_by_kind["integrity"].count, 100);
        // Failed requests are not latency: they have their own histogram.
        assert_eq!(d.tasks["put"].latency.count(), 100);
        assert_eq!(d.tasks["put"].ttfb.count(), 100);
        assert_eq!(d.tasks["put"].failure_latency.count(), 0);
        assert_eq!(d.tasks["get"].latency.count(), 0);
        assert_eq!(d.tasks["get"].ttfb.count(), 0);
        assert_eq!(d.tasks["get"].failure_latency.count(), 100);
        assert!(r.take().is_empty());
    }

    #[test]
    fn fast_failures_do_not_pull_the_latency_percentiles_down() {
        let mut t = TaskStats::default();
        // 30 successes of 100 ms, 70 refusals of 1 ms: most requests failed fast.
        for _ in 0..30 {
            t.record(&done(100, None));
        }
        for _ in 0..70 {
            t.record(&done(1, Some(FailureKind::Connection)));
        }
        assert_eq!((t.requests, t.failures), (100, 70));
        assert_eq!(t.latency.count(), 30);
        assert_eq!(t.failure_latency.count(), 70);
        assert!((t.latency.quantile_ms(0.5) - 100.0).abs() < 0.1);
        assert!((t.failure_latency.quantile_ms(0.5) - 1.0).abs() < 0.01);
        let mut merged = TaskStats::default();
        merged.merge(&t);
        merged.merge(&t);
        assert_eq!(merged.failure_latency.count(), 140);
        assert_eq!(merged.latency.count(), 60);
    }

    #[test]
    fn outcomes_go_to_the_second_they_completed_in() {
        let origin = Instant::now();
        let r = Recorder::with_origin(vec!["put".into()], origin);
        assert_eq!(r.second_of(origin + Duration::from_millis(999)), 0);
        assert_eq!(r.second_of(origin + Duration::from_millis(1000)), 1);
        // Before the origin (a clock step): second 0.
        assert_eq!(
            r.second_of(
                origin
                    .checked_sub(Duration::from_millis(5))
                    .unwrap_or(origin)
            ),
            0
        );
        for (second, n) in [(0u64, 3u64), (1, 5), (2, 7), (4, 1)] {
            for u in 0..n {
                r.record_at(second, u, 0, &done(1, None));
            }
        }
        // A straggler of second 1 after seconds 2 and 4 were recorded.
        r.record_at(1, 9, 0, &done(1, None));
        let first = r.take_before(2);
        let counts: Vec<(u64, u64)> = first.iter().map(|(s, d)| (*s, d.requests())).collect();
        assert_eq!(counts, [(0, 3), (1, 6)]);
        // Taken seconds are gone; later ones stay until their turn.
        assert!(r.take_before(2).is_empty());
        let rest = r.take_before(u64::MAX);
        let counts: Vec<(u64, u64)> = rest.iter().map(|(s, d)| (*s, d.requests())).collect();
        assert_eq!(counts, [(2, 7), (4, 1)]);
        assert!(r.take().is_empty());
    }

    #[test]
    fn intended_starts_and_arrivals_are_counted_exactly() {
        let r = Recorder::new(vec!["put".into()]);
        // Three arrivals: one on time, one 2 s late, one dropped.
        r.record_arrival(0, 0, ArrivalFate::Sent(Duration::from_micros(300)));
        r.record_arrival(1, 0, ArrivalFate::Sent(Duration::from_secs(2)));
        r.record_arrival(2, 0, ArrivalFate::Dropped);
        let sent = |service_ms: u64, waited_ms: u64| Outcome::Done {
            latency: Duration::from_millis(service_ms),
            ttfb: None,
            bytes: 1,
            error: None,
            waited: Some(Duration::from_millis(waited_ms)),
        };
        r.record(0, 0, &sent(10, 0));
        r.record(1, 0, &sent(10, 2000));
        let t = r.take().tasks.remove("put").unwrap();
        assert_eq!((t.arrivals, t.dropped, t.late), (3, 1, 1));
        assert_eq!(t.arrivals, t.issued() + t.dropped);
        assert_eq!(t.lateness.count(), 1);
        assert!((t.lateness.max_ms() - 2000.0).abs() < 2.0);
        // Latency from the intended start, service from the send.
        assert!(
            (t.latency.max_ms() - 2010.0).abs() < 2.0,
            "{}",
            t.latency.max_ms()
        );
        assert!((t.service.max_ms() - 10.0).abs() < 0.1);
        assert_eq!(t.service.count(), 2);
        // Closed users without pacing record latency once.
        let mut closed = TaskStats::default();
        closed.record(&done(5, None));
        assert_eq!((closed.latency.count(), closed.service.count()), (1, 0));
        let back: TaskStats = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn histograms_survive_the_wire() {
        let mut t = TaskStats::default();
        for ms in [1, 5, 10, 250, 1000] {
            t.record(&done(ms, None));
        }
        let json = serde_json::to_string(&t).unwrap();
        let back: TaskStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.latency.count(), 5);
    }

    /// The wire form of `h`, as a base64 JSON string.
    fn wire_json(bytes: &[u8]) -> String {
        serde_json::to_string(&base64::engine::general_purpose::STANDARD.encode(bytes)).unwrap()
    }

    #[test]
    fn histograms_travel_as_varint_pairs_and_decode_sparse() {
        let mut h = Hist::new();
        for us in [1u64, 1, 5, 300, 20_000, 20_001, 4_000_000] {
            h.record(Duration::from_micros(us));
        }
        let bytes = h.encode();
        assert_eq!(bytes[0], wire::FORMAT);
        // A handful of samples is a handful of bytes, not a V2 header and a deflate stream.
        assert!(bytes.len() < 24, "{} bytes", bytes.len());
        let back = Hist::decode(&bytes).unwrap();
        assert!(matches!(back.0, Repr::Sparse { .. }));
        assert_eq!(back, h);
        assert_eq!(back.count(), 7);
        for q in [0.0, 0.5, 0.9, 1.0] {
            assert_eq!(back.quantile_ms(q), h.quantile_ms(q));
        }
        // A sparse histogram encodes to the same bytes as the dense one it came from.
        assert_eq!(back.encode(), bytes);
        // The empty histogram: the format byte and a zero.
        assert_eq!(Hist::new().encode(), [wire::FORMAT, 0]);
        assert_eq!(Hist::decode(&[wire::FORMAT, 0]).unwrap().count(), 0);
    }

    #[test]
    fn a_view_reads_the_same_figures_from_a_sparse_histogram_as_from_its_dense_one() {
        let mut dense = Hist::new();
        for us in [3u64, 250, 251, 999, 1_000, 1_001, 48_000, 2_500_000] {
            dense.record(Duration::from_micros(us));
        }
        let sparse = Hist::decode(&dense.encode()).unwrap();
        assert!(matches!(sparse.0, Repr::Sparse { .. }));
        let (d, s) = (dense.view(), sparse.view());
        assert_eq!((d.count(), s.count()), (8, 8));
        for q in [0.0, 0.25, 0.5, 0.66, 0.99, 0.999, 1.0] {
            assert_eq!(s.quantile_ms(q), d.quantile_ms(q), "q {q}");
        }
        assert_eq!(
            (s.min_ms(), s.mean_ms(), s.max_ms()),
            (d.min_ms(), d.mean_ms(), d.max_ms())
        );
        assert_eq!(s.count_between(0, 1_000), d.count_between(0, 1_000));
        assert_eq!(d.count_between(0, 1_000), 5);
        assert_eq!(
            crate::results::summary::Percentiles::of(&sparse),
            crate::results::summary::Percentiles::of(&dense)
        );
        // Empty: every figure is 0, whatever the representation.
        let empty = Hist::decode(&Hist::new().encode()).unwrap();
        let empty = empty.view();
        assert_eq!(
            (
                empty.quantile_ms(0.5),
                empty.min_ms(),
                empty.max_ms(),
                empty.mean_ms()
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(empty.count_between(0, u64::MAX), 0);
    }

    #[test]
    fn hdr_v2_histograms_still_decode() {
        // What protocol 2 sent and an older worker's cut-run.json holds.
        let mut h = Hist::new();
        for us in [7u64, 70, 700, 7_000] {
            h.record(Duration::from_micros(us));
        }
        use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer, V2Serializer};
        let mut deflated = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h.histogram(), &mut deflated)
            .unwrap();
        let mut plain = Vec::new();
        V2Serializer::new()
            .serialize(&h.histogram(), &mut plain)
            .unwrap();
        for bytes in [deflated, plain] {
            let back: Hist = serde_json::from_str(&wire_json(&bytes)).unwrap();
            assert_eq!(back, h);
        }
    }

    #[test]
    fn malformed_histograms_are_refused_with_the_reason() {
        use HistDecodeError::*;
        let f = wire::FORMAT;
        let cases: [(&[u8], HistDecodeError); 8] = [
            (&[f], Truncated),
            (&[f, 2, 5, 1], Truncated),
            (&[f, 1, 0x80], Truncated),
            (&[f, 2, 5, 1, 0, 1], NotIncreasing),
            (&[f, 1, 5, 0], ZeroCount),
            (&[f, 1, 5, 1, 9], TrailingBytes(1)),
            (
                &[
                    f, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1,
                ],
                ValueTooLarge {
                    max: wire::MAX_VALUE,
                },
            ),
            (
                &[
                    f, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                VarintTooLong,
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(Hist::decode(bytes).unwrap_err(), error, "{bytes:?}");
        }
        // Counts that overflow u64 together.
        let mut bytes = vec![f, 2];
        for gap in [1u64, 1] {
            bytes.push(gap as u8);
            bytes.extend([0xff; 9]);
            bytes.push(0x01);
        }
        assert_eq!(Hist::decode(&bytes).unwrap_err(), CountOverflow);
        // A length claiming more pairs than there are bytes reserves nothing absurd.
        assert_eq!(
            Hist::decode(&[f, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err(),
            Truncated
        );
        // Neither format: the V2 deserializer says why.
        assert!(matches!(Hist::decode(&[0, 1, 2, 3]), Err(HdrV2(_))));
        // The largest value accepted can be recorded by a dense histogram.
        let big = Hist::decode(&[
            f, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 3,
        ])
        .unwrap();
        let mut dense = Hist::new();
        dense.add(&big);
        assert_eq!(dense.count(), 3);
    }

    proptest! {
        /// Merged percentiles equal those of one histogram that saw every sample.
        #[test]
        fn merge_is_exact(parts in proptest::collection::vec(proptest::collection::vec(1u64..5_000_000, 0..200), 1..6)) {
            let mut single = Hist::new();
            let mut merged = TaskStats::default();
            for part in &parts {
                let mut t = TaskStats::default();
                for v in part {
                    t.record(&Outcome::Done { latency: Duration::from_micros(*v), ttfb: None, bytes: 1, error: None, waited: None });
                    single.record(Duration::from_micros(*v));
                }
                // Through the wire format, as a worker delta would travel.
                let t: TaskStats = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
                merged.merge(&t);
            }
            prop_assert_eq!(merged.requests, parts.iter().map(|p| p.len() as u64).sum::<u64>());
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                prop_assert_eq!(merged.latency.quantile_ms(q), single.quantile_ms(q));
            }
            prop_assert_eq!(merged.latency.min_ms(), single.min_ms());
        }
    }
}
