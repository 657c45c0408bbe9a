//! Assembling the run's seconds from workers' per-second deltas.
//!
//! Every worker stamps what it sends with the second of the run it completed in (seconds
//! counted from the run's clock origin) and says up to which second it has sent everything.
//! Second N is closed — written to the history — once every worker still taking part has sent
//! everything up to N, or, for a worker that is slow to do so, once a grace period after the
//! end of N has passed. A sample arriving for a second that is already closed is late: it
//! still counts in the run's totals (the coordinator merges those separately), and it is
//! reported here so the history's gap can be said, not hidden.

use crate::load::stats::StatsDelta;
use std::collections::BTreeMap;
use std::time::Duration;

/// The seconds of one run that are not yet closed.
#[derive(Debug, Default)]
pub struct SecondAssembler {
    /// The first second not yet closed; every earlier one has been handed out.
    next: u64,
    /// What arrived for seconds at or after `next`.
    pending: BTreeMap<u64, StatsDelta>,
    /// Per worker id: every sample of the seconds before this one has arrived.
    through: BTreeMap<u32, u64>,
}

/// Where a delta went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Into its own second, not yet closed.
    OnTime,
    /// Its second was already closed: it is only in the totals.
    Late,
}

impl SecondAssembler {
    pub fn new() -> SecondAssembler {
        SecondAssembler::default()
    }

    /// The first second not yet closed.
    #[cfg(test)]
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Adds what a worker saw complete in `second`.
    pub fn add(&mut self, second: u64, delta: &StatsDelta) -> Placement {
        if second < self.next {
            return Placement::Late;
        }
        self.pending.entry(second).or_default().merge(delta);
        Placement::OnTime
    }

    /// Notes that `worker` has sent every sample of the seconds before `through`.
    pub fn complete_through(&mut self, worker: u32, through: u64) {
        let t = self.through.entry(worker).or_insert(0);
        *t = (*t).max(through);
    }

    /// Closes, in order, the seconds that are ready, given the workers to wait for and the
    /// time since the clock origin. Second N is ready when it has ended and every worker in
    /// `waiting_for` has sent everything of it, or when `grace` has passed since its end.
    ///
    /// This runs on every stats message, so `waiting_for` is taken lazily and walked only up
    /// to the first worker still owing the second: with thousands of workers, building the
    /// whole list per message made the coordinator's work per second grow with the square of
    /// the worker count.
    pub fn close_ready<'w>(
        &mut self,
        waiting_for: impl IntoIterator<Item = &'w u32> + Clone,
        elapsed: Duration,
        grace: Duration,
    ) -> Vec<(u64, StatsDelta)> {
        let mut out = Vec::new();
        loop {
            let n = self.next;
            let end = Duration::from_secs(n.saturating_add(1));
            if elapsed < end {
                break;
            }
            let all_in = waiting_for
                .clone()
                .into_iter()
                .all(|w| self.through.get(w).is_some_and(|t| *t > n));
            if !all_in && elapsed < end + grace {
                break;
            }
            out.push(self.close_next());
        }
        out
    }

    /// Closes every second up to and including `last` (the end of the run), ready or not.
    pub fn close_through(&mut self, last: u64) -> Vec<(u64, StatsDelta)> {
        let mut out = Vec::new();
        while self.next <= last {
            out.push(self.close_next());
        }
        out
    }

    /// The last second that holds anything not yet closed.
    pub fn last_pending(&self) -> Option<u64> {
        self.pending.keys().next_back().copied()
    }

    fn close_next(&mut self) -> (u64, StatsDelta) {
        let n = self.next;
        self.next += 1;
        (n, self.pending.remove(&n).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::{Outcome, Recorder};

    /// A delta of `n` successful requests of `ms` milliseconds for task `t`.
    fn delta(t: &str, n: u64, ms: u64) -> StatsDelta {
        let r = Recorder::new(vec![t.into()]);
        for _ in 0..n {
            let done = Outcome::Done {
                latency: Duration::from_millis(ms),
                ttfb: None,
                bytes: 10,
                error: None,
                waited: None,
            };
            r.record(0, 0, &done);
        }
        r.take()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    const GRACE: Duration = Duration::from_secs(3);

    #[test]
    fn a_second_closes_when_every_worker_has_sent_it_with_exact_totals() {
        let mut a = SecondAssembler::new();
        a.add(0, &delta("put", 10, 5));
        a.complete_through(1, 1);
        // Worker 2 has not reported second 0 yet: it stays open.
        assert!(a.close_ready(&[1, 2], secs(1.2), GRACE).is_empty());
        a.add(0, &delta("put", 7, 9));
        a.complete_through(2, 1);
        let closed = a.close_ready(&[1, 2], secs(1.2), GRACE);
        assert_eq!(closed.len(), 1);
        let (second, d) = &closed[0];
        assert_eq!(*second, 0);
        assert_eq!(d.requests(), 17);
        assert_eq!(d.bytes(), 170);
        assert_eq!(d.tasks["put"].latency.count(), 17);
        assert_eq!(a.next(), 1);
    }

    #[test]
    fn a_second_that_has_not_ended_stays_open_even_if_reported() {
        let mut a = SecondAssembler::new();
        a.add(3, &delta("put", 1, 1));
        a.complete_through(1, 10);
        let closed = a.close_ready(&[1], secs(2.5), GRACE);
        assert_eq!(closed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1]);
        // Empty seconds close as empty rows: a real stall shows as zero, not as a gap.
        assert!(closed.iter().all(|(_, d)| d.requests() == 0));
        assert_eq!(a.next(), 2);
    }

    #[test]
    fn a_silent_worker_is_waited_for_only_until_the_grace_period_ends() {
        let mut a = SecondAssembler::new();
        a.add(0, &delta("put", 4, 1));
        a.complete_through(1, 1);
        assert!(a.close_ready(&[1, 2], secs(3.9), GRACE).is_empty());
        let closed = a.close_ready(&[1, 2], secs(4.0), GRACE);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].1.requests(), 4);
        // Worker 2's delta for second 0 comes after it closed: late, not moved to "now".
        assert_eq!(a.add(0, &delta("put", 3, 1)), Placement::Late);
        a.complete_through(2, 4);
        let closed = a.close_ready(&[1, 2], secs(4.0), GRACE);
        // Second 1..3 have ended; worker 1 has not reported them: second 1 waited out its
        // grace (ended at 2 s, now 4 s < 5 s), so nothing more closes yet.
        assert!(closed.is_empty());
        // Nothing of the late delta leaked into a later second.
        let rest = a.close_through(3);
        assert_eq!(rest.iter().map(|(_, d)| d.requests()).sum::<u64>(), 0);
    }

    #[test]
    fn late_deltas_for_open_seconds_go_to_their_own_second() {
        let mut a = SecondAssembler::new();
        // Worker 1 reports seconds 0 and 1, then a straggler of second 0 with second 2.
        a.add(0, &delta("put", 5, 1));
        a.add(1, &delta("put", 6, 1));
        a.add(2, &delta("put", 7, 1));
        assert_eq!(a.add(0, &delta("put", 1, 1)), Placement::OnTime);
        a.complete_through(1, 3);
        let closed = a.close_ready(&[1], secs(3.1), GRACE);
        let counts: Vec<(u64, u64)> = closed.iter().map(|(s, d)| (*s, d.requests())).collect();
        assert_eq!(counts, [(0, 6), (1, 6), (2, 7)]);
    }

    #[test]
    fn the_final_close_takes_every_second_up_to_the_end() {
        let mut a = SecondAssembler::new();
        a.add(0, &delta("get", 2, 1));
        a.add(2, &delta("get", 3, 1));
        assert_eq!(a.last_pending(), Some(2));
        let closed = a.close_through(2);
        let counts: Vec<(u64, u64)> = closed.iter().map(|(s, d)| (*s, d.requests())).collect();
        assert_eq!(counts, [(0, 2), (1, 0), (2, 3)]);
        assert_eq!(a.last_pending(), None);
        assert!(a.close_through(2).is_empty());
    }
}
