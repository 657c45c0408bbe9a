//! The open-model scheduler: arrivals at their scheduled times, whatever the server does.
//!
//! One task per worker and run. Arrival `k` of a share is due at `epoch + k / rate` (constant)
//! or at the previous arrival's *scheduled* time plus an exponential gap (Poisson), so the
//! schedule never drifts with how long the loop took; `epoch` is the run's clock origin (the
//! same instant on every worker), or the moment a new share took effect. Each arrival picks a
//! user class by class weight and then a task by task weight (a sequence class runs one
//! pass). An arrival that finds `max_in_flight` of this worker's requests outstanding is not
//! sent and counts as `dropped`; one sent [`crate::load::stats::LATE_AFTER`] or more after its
//! scheduled time counts as `late`, with its lateness in a histogram. Requests run on
//! [`User`]s kept in a pool (at most `max_in_flight` of them), so a class that reads its own
//! writes finds objects it wrote.

use crate::load::driver::Driver;
use crate::load::stats::ArrivalFate;
use crate::load::user::{RunContext, User, UserEnd};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Arrivals are counted in millionths per second when a rate is split, so the workers'
/// shares add up to the target exactly.
pub const MICROS_PER_ARRIVAL: u64 = 1_000_000;

/// One worker's part of an open-model run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalShare {
    /// Arrivals per second, in millionths (exact when summed over workers).
    pub rate_micro: u64,
    /// Exponential inter-arrival times.
    pub poisson: bool,
    /// This worker's requests outstanding at once.
    pub max_in_flight: u32,
}

impl ArrivalShare {
    /// Arrivals per second.
    pub fn rate(&self) -> f64 {
        self.rate_micro as f64 / MICROS_PER_ARRIVAL as f64
    }
}

/// Splits `rate` arrivals per second and `max_in_flight` across `workers`: the shares' rates
/// (in millionths) and in-flight limits add up to the totals exactly, and differ by at most
/// one unit between workers.
pub fn split(rate: f64, poisson: bool, max_in_flight: u32, workers: usize) -> Vec<ArrivalShare> {
    if workers == 0 {
        return Vec::new();
    }
    // Rates are checked against limits::ARRIVAL_RATE (at most 10^6/s): 10^12 fits a u64.
    let total = (rate.max(0.0) * MICROS_PER_ARRIVAL as f64).round() as u64;
    let n = workers as u64;
    let flights = u64::from(max_in_flight);
    (0..n)
        .map(|i| ArrivalShare {
            rate_micro: total / n + u64::from(i < total % n),
            poisson,
            max_in_flight: (flights / n + u64::from(i < flights % n)) as u32,
        })
        .collect()
}

/// When each arrival of a share is due.
struct Schedule {
    /// Arrival `k` is due at `epoch + k / rate`: the run's clock origin (the same instant on
    /// every worker), or when the share last changed.
    epoch: Instant,
    /// The index of the next arrival since `epoch` (constant rate).
    k: u64,
    /// The scheduled time of the next arrival.
    next: Instant,
    /// The rate, gaps and in-flight limit this schedule follows.
    share: ArrivalShare,
}

impl Schedule {
    /// The first arrival at or after `from`, on a grid anchored at `epoch`.
    fn new(share: ArrivalShare, epoch: Instant, from: Instant, rng: &mut SmallRng) -> Schedule {
        let mut s = Schedule {
            epoch,
            k: 0,
            next: epoch,
            share,
        };
        let rate = share.rate();
        if rate > 0.0 && !share.poisson {
            let since = from.saturating_duration_since(epoch).as_secs_f64();
            s.k = (since * rate).ceil() as u64;
            s.next = s.at(s.k);
        } else if rate > 0.0 {
            s.next = from.max(epoch) + exponential(rate, rng);
        }
        s
    }

    /// The scheduled time of arrival `k` (constant rate).
    fn at(&self, k: u64) -> Instant {
        let secs = k as f64 / self.share.rate();
        // Bounded: a run lasts at most 30 days (limits::RUN_TIME).
        self.epoch + Duration::from_secs_f64(secs.min(1e9))
    }

    fn advance(&mut self, rng: &mut SmallRng) {
        if self.share.poisson {
            self.next += exponential(self.share.rate(), rng);
        } else {
            self.k += 1;
            self.next = self.at(self.k);
        }
    }
}

/// An exponential gap for `rate` arrivals per second.
fn exponential(rate: f64, rng: &mut SmallRng) -> Duration {
    // 1 - u is in (0, 1]: its logarithm is finite.
    let u: f64 = rng.random();
    Duration::from_secs_f64((-(1.0 - u).ln() / rate).min(1e9))
}

/// The pool of idle users, per class.
type Pool<D> = Arc<Mutex<Vec<Vec<User<D>>>>>;

/// Runs a worker's arrivals until `stop`, following `share` (re-read whenever it changes),
/// then waits for its requests in flight (cut off when `abort` fires). `origin` is the run's
/// clock origin on this machine.
pub async fn run<D: Driver>(
    ctx: Arc<RunContext<D>>,
    mut share: watch::Receiver<ArrivalShare>,
    origin: Instant,
    stop: CancellationToken,
    abort: CancellationToken,
) -> UserEnd {
    let program = Arc::clone(&ctx.program);
    let mut rng = SmallRng::seed_from_u64(
        ctx.spec.seed ^ (u64::from(ctx.worker_id) << 40) ^ 0xA1B2_C3D4_E5F6_0718,
    );
    let weights: Vec<u64> = program
        .class_weights
        .iter()
        .map(|w| (*w).max(1) as u64)
        .collect();
    let classes = WeightedIndex::new(&weights).ok();
    let pool: Pool<D> = Arc::new(Mutex::new(
        (0..program.classes.len()).map(|_| Vec::new()).collect(),
    ));
    let mut next_user = 0u64;
    // Requests sent and not yet completed (each pass counts once while it runs).
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut requests: JoinSet<()> = JoinSet::new();
    let mut schedule = {
        let s = *share.borrow_and_update();
        Schedule::new(s, origin, Instant::now(), &mut rng)
    };
    loop {
        let active = schedule.share.rate() > 0.0;
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            changed = share.changed() => {
                if changed.is_err() {
                    break;
                }
                let s = *share.borrow_and_update();
                let now = Instant::now();
                log::info!("arrivals: now {:.3}/s, at most {} in flight", s.rate(), s.max_in_flight);
                schedule = Schedule::new(s, now, now, &mut rng);
                continue;
            }
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
            _ = tokio::time::sleep_until(schedule.next), if active => {}
        }
        let scheduled = schedule.next;
        schedule.advance(&mut rng);
        let class = match &classes {
            Some(c) => c.sample(&mut rng),
            None => 0,
        };
        let Some(class_program) = program.classes.get(class) else {
            continue;
        };
        let tasks = class_program.arrival_tasks(&mut rng);
        let sent_at = Instant::now();
        if in_flight.load(Ordering::Acquire) >= schedule.share.max_in_flight as usize {
            for &t in &tasks {
                ctx.recorder.record_arrival(
                    next_user,
                    class_program.stat_of(t),
                    ArrivalFate::Dropped,
                );
            }
            continue;
        }
        let fate = ArrivalFate::Sent(sent_at.saturating_duration_since(scheduled));
        let idle = pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(class)
            .and_then(Vec::pop);
        let mut user = match idle {
            Some(u) => u,
            None => {
                next_user += 1;
                User::new(Arc::clone(&ctx), next_user - 1, class)
            }
        };
        for &t in &tasks {
            ctx.recorder
                .record_arrival(user.id(), class_program.stat_of(t), fate);
        }
        let pool = Arc::clone(&pool);
        let abort = abort.clone();
        let outstanding = Arc::clone(&in_flight);
        outstanding.fetch_add(1, Ordering::AcqRel);
        requests.spawn(async move {
            user.arrive(&tasks, scheduled.into_std(), &abort).await;
            outstanding.fetch_sub(1, Ordering::AcqRel);
            put_back(&pool, class, user);
        });
    }
    // Requests in flight finish (or are cut off by `abort`, which each one watches).
    while requests.join_next().await.is_some() {}
    UserEnd::Stopped
}

fn put_back<D>(pool: &Pool<D>, class: usize, user: User<D>) {
    if let Some(idle) = pool
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(class)
    {
        idle.push(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_constant_schedule_is_anchored_at_its_epoch() {
        let mut rng = SmallRng::seed_from_u64(1);
        let share = ArrivalShare {
            rate_micro: 100 * MICROS_PER_ARRIVAL,
            poisson: false,
            max_in_flight: 10,
        };
        let epoch = Instant::now();
        // Joining 1.234 s after the epoch: the next arrival is on the 10 ms grid.
        let mut s = Schedule::new(share, epoch, epoch + Duration::from_millis(1234), &mut rng);
        assert_eq!(s.k, 124);
        for _ in 0..1000 {
            s.advance(&mut rng);
        }
        // No drift: arrival 1124 is exactly 11.24 s after the epoch.
        let at = s.next.duration_since(epoch).as_secs_f64();
        assert!((at - 11.24).abs() < 1e-6, "{at}");
    }

    #[test]
    fn poisson_gaps_average_to_the_rate() {
        let mut rng = SmallRng::seed_from_u64(7);
        let share = ArrivalShare {
            rate_micro: 500 * MICROS_PER_ARRIVAL,
            poisson: true,
            max_in_flight: 10,
        };
        let epoch = Instant::now();
        let mut s = Schedule::new(share, epoch, epoch, &mut rng);
        let first = s.next;
        let n = 20_000;
        for _ in 0..n {
            s.advance(&mut rng);
        }
        let mean = s.next.duration_since(first).as_secs_f64() / n as f64;
        assert!((mean - 0.002).abs() < 0.0001, "mean gap {mean}");
    }

    proptest! {
        /// The shares add up to the target exactly and are balanced.
        #[test]
        fn shares_add_up_exactly(rate in 0.001f64..1_000_000.0, flights in 1u32..1_000_000, workers in 1usize..50) {
            let shares = split(rate, false, flights, workers);
            prop_assert_eq!(shares.len(), workers);
            let total: u64 = shares.iter().map(|s| s.rate_micro).sum();
            prop_assert_eq!(total, (rate * MICROS_PER_ARRIVAL as f64).round() as u64);
            prop_assert_eq!(shares.iter().map(|s| s.max_in_flight).sum::<u32>(), flights);
            let (lo, hi) = (shares.iter().map(|s| s.rate_micro).min().unwrap(), shares.iter().map(|s| s.rate_micro).max().unwrap());
            prop_assert!(hi - lo <= 1);
        }
    }

    #[test]
    fn three_hundred_per_second_splits_evenly() {
        let shares = split(300.0, false, 30, 3);
        assert!(shares
            .iter()
            .all(|s| s.rate() == 100.0 && s.max_in_flight == 10));
        let two = split(300.0, false, 30, 2);
        assert_eq!(two[0].rate() + two[1].rate(), 300.0);
    }
}
