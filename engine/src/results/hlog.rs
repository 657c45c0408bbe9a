//! `histograms.hlog`: every second's latency (and time-to-first-byte) histogram per task, in
//! the HdrHistogram interval log format, so standard HdrHistogram tooling
//! (HistogramLogProcessor, HdrHistogramVisualizer) can read a run.
//!
//! Values are microseconds. Each histogram is tagged with its task name (`get`), or
//! `ttfb:<task>` for time to first byte; spaces in names become `_` (tags cannot hold them).

use crate::load::stats::StatsDelta;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const HLOG: &str = "histograms.hlog";

/// An interval log being appended to.
pub struct HistogramLog {
    path: PathBuf,
    base: SystemTime,
    header_written: bool,
}

/// The tag for a task's latency (`ttfb == false`) or TTFB histogram.
pub fn tag_for(task: &str, ttfb: bool) -> String {
    let name: String = task
        .chars()
        .map(|c| {
            if matches!(c, ' ' | ',' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if ttfb {
        format!("ttfb:{name}")
    } else {
        name
    }
}

/// The tag of a task's service-time histogram (`service:<task>`), written only when its
/// requests had intended starts (then the plain tag is the latency from the intended start).
pub fn service_tag(task: &str) -> String {
    format!("service:{}", tag_for(task, false))
}

impl HistogramLog {
    /// A log in `dir` whose timestamps count from `base` (the start of the load).
    pub fn new(dir: &Path, base: SystemTime) -> HistogramLog {
        HistogramLog {
            path: dir.join(HLOG),
            base,
            header_written: dir.join(HLOG).exists(),
        }
    }

    /// Appends the interval `[start, start + duration)`.
    pub fn append(
        &mut self,
        interval: &StatsDelta,
        start: SystemTime,
        duration: Duration,
    ) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        if !self.header_written {
            builder
                .add_comment("Chopsticks run histograms: values in microseconds; tags are task names, ttfb:<task> for time to first byte, service:<task> for time from the send when requests had an intended start")
                .with_start_time(self.base)
                .with_base_time(self.base);
        }
        let mut writer = builder.begin_log_with(&mut file, &mut serializer)?;
        self.header_written = true;
        let offset = start.duration_since(self.base).unwrap_or_default();
        for (name, stats) in &interval.tasks {
            let tags = [
                (&stats.latency, tag_for(name, false)),
                (&stats.ttfb, tag_for(name, true)),
                (&stats.service, service_tag(name)),
            ];
            for (hist, tag) in tags {
                if hist.count() == 0 {
                    continue;
                }
                writer
                    .write_histogram(&*hist.histogram(), offset, duration, Tag::new(&tag))
                    .map_err(|e| io::Error::other(format!("{e:?}")))?;
            }
        }
        Ok(())
    }
}

/// Seconds since the epoch, for log headers.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::{Outcome, Recorder};
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn standard_readers_get_back_every_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let base = SystemTime::now();
        let mut log = HistogramLog::new(dir.path(), base);
        let r = Recorder::new(vec!["get object".into()]);
        for ms in [1u64, 2, 3] {
            r.record(
                0,
                0,
                &Outcome::Done {
                    latency: Duration::from_millis(ms),
                    ttfb: Some(Duration::from_micros(500)),
                    bytes: 1,
                    error: None,
                    waited: None,
                },
            );
        }
        log.append(&r.take(), base, Duration::from_secs(1)).unwrap();
        r.record(
            0,
            0,
            &Outcome::Done {
                latency: Duration::from_millis(9),
                ttfb: None,
                bytes: 1,
                error: None,
                waited: None,
            },
        );
        log.append(
            &r.take(),
            base + Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();

        let text = std::fs::read(dir.path().join(HLOG)).unwrap();
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    h.encoded_histogram(),
                )
                .unwrap();
                let hist: hdrhistogram::Histogram<u64> = Deserializer::new()
                    .deserialize(&mut std::io::Cursor::new(bytes))
                    .unwrap();
                intervals.push((
                    h.tag().map(|t| t.as_str().to_string()),
                    h.start_timestamp().as_secs(),
                    hist.len(),
                ));
            }
        }
        assert_eq!(
            intervals,
            vec![
                (Some("get_object".into()), 0, 3),
                (Some("ttfb:get_object".into()), 0, 3),
                (Some("get_object".into()), 1, 1),
            ]
        );
    }
}
