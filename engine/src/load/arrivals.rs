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
//!
//! Rate stages (`load.arrival.stages`, step and hold, see [`crate::load::scenario`]'s
//! `stages` module) generalise the grid: arrival `k` is due when the integral of the
//! worker's rate since the run's clock origin reaches `k` (Poisson: when it reaches the sum of
//! `k` unit exponential gaps), so a change of stage never drifts the schedule and a run's
//! arrivals are the integral of its stages. A stop sends the arrivals already due when it is
//! seen (not those after, except the ones already sent early: see below), so a run that ends
//! with its stages sends every arrival the stages hold.
//!
//! Each time it wakes, the loop sends every arrival due within the next [`TICK`] (early ones
//! count as on time; latency is measured from the later of the scheduled and the sent time),
//! then sleeps until the first arrival after that: wake-ups are at least a tick apart, an
//! arrival leaves at most a tick early and, by design, never late (only by the wake-up's own
//! delay), and a worker that fell behind catches up in one pass. Requests run as detached
//! tasks that count themselves out ([`Outstanding`]): a completion never wakes the scheduler.

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
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Arrivals are counted in millionths per second when a rate is split, so the workers'
/// shares add up to the target exactly.
pub const MICROS_PER_ARRIVAL: u64 = 1_000_000;

/// One worker's part of an open-model run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalShare {
    /// Arrivals per second, in millionths (exact when summed over workers); with `stages`,
    /// this worker's share of the highest stage's rate.
    pub rate_micro: u64,
    /// Exponential inter-arrival times.
    pub poisson: bool,
    /// This worker's requests outstanding at once.
    pub max_in_flight: u32,
    /// The connections this worker's requests share (at least 1); `None`: a request in flight
    /// opens one when it finds none idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// This worker's share of each rate stage, from the run's clock origin; empty = the
    /// constant `rate_micro`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageShare>,
    /// The run's end, in microseconds from its clock origin (its duration): no arrival is
    /// scheduled at or after it, so a run of T seconds at R/s holds R × T arrivals however
    /// late the stop reaches the worker. `None`: the run has no duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_us: Option<u64>,
}

/// A worker's share of one rate stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageShare {
    /// Arrivals per second in millionths (0 = a pause).
    pub rate_micro: u64,
    /// The stage's length in microseconds.
    pub for_us: u64,
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
    let total = micros(rate);
    let n = workers as u64;
    let flights = u64::from(max_in_flight);
    (0..n)
        .map(|i| ArrivalShare {
            rate_micro: part(total, i, n),
            poisson,
            max_in_flight: part(flights, i, n) as u32,
            max_connections: None,
            stages: Vec::new(),
            ends_at_us: None,
        })
        .collect()
}

/// Splits a plan across `workers` like [`split`], each rate stage too: every stage's shares
/// add up to the stage's rate exactly. `max_connections` is split the same way, but every
/// worker gets at least one (a worker without a connection could send nothing), so with
/// fewer connections than workers the sum is the number of workers.
pub fn split_plan(plan: &crate::load::scenario::ArrivalPlan, workers: usize) -> Vec<ArrivalShare> {
    let mut shares = split(plan.rate, plan.poisson, plan.max_in_flight, workers);
    let n = workers as u64;
    for (i, share) in shares.iter_mut().enumerate() {
        share.max_connections = plan
            .max_connections
            .map(|c| part(u64::from(c), i as u64, n).max(1) as u32);
        share.stages = plan
            .stages
            .iter()
            .map(|s| StageShare {
                rate_micro: part(micros(s.rate), i as u64, n),
                for_us: s.for_us,
            })
            .collect();
    }
    shares
}

/// A rate in millionths of an arrival per second.
fn micros(rate: f64) -> u64 {
    // Rates are checked against limits::ARRIVAL_RATE (at most 10^6/s): 10^12 fits a u64.
    (rate.max(0.0) * MICROS_PER_ARRIVAL as f64).round() as u64
}

/// Part `i` of `total` split `n` ways: the parts add up to `total` and differ by at most 1.
fn part(total: u64, i: u64, n: u64) -> u64 {
    total / n + u64::from(i < total % n)
}

/// A stretch of constant rate, in seconds from the schedule's epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    start: f64,
    /// Infinite for a constant rate.
    end: f64,
    /// Arrivals per second (0 = a pause).
    rate: f64,
}

/// The segments a share's arrivals follow: one endless one for a constant rate, else its
/// stages one after the other.
fn segments(share: &ArrivalShare) -> Vec<Segment> {
    if share.stages.is_empty() {
        return vec![Segment {
            start: 0.0,
            end: f64::INFINITY,
            rate: share.rate(),
        }];
    }
    let mut at_us = 0u64;
    share
        .stages
        .iter()
        .map(|s| {
            let start = at_us as f64 / 1e6;
            at_us = at_us.saturating_add(s.for_us);
            Segment {
                start,
                end: at_us as f64 / 1e6,
                rate: s.rate_micro as f64 / MICROS_PER_ARRIVAL as f64,
            }
        })
        .collect()
}

/// When each arrival of a share is due.
struct Schedule {
    /// Time 0 of `segments`: the run's clock origin (the same instant on every worker) for
    /// stages and a first constant share, or when a constant share last changed.
    epoch: Instant,
    /// The rate over time, from `epoch`.
    segments: Vec<Segment>,
    /// The next arrival's position in the integral of the rate: a whole number `k` on a
    /// grid, or a running sum of unit exponential gaps (Poisson).
    u: f64,
    /// The scheduled time of the next arrival; `None` once the stages hold no more.
    next: Option<Instant>,
    /// The rate, gaps and in-flight limit this schedule follows.
    share: ArrivalShare,
    /// The run's end (`share.ends_at_us` from the clock origin): `next` is `None` from there.
    ends: Option<Instant>,
}

impl Schedule {
    /// The first arrival at or after `from`, on a schedule anchored at `epoch`; `origin` is
    /// the run's clock origin (`share.ends_at_us` counts from it).
    fn new(
        share: ArrivalShare,
        origin: Instant,
        epoch: Instant,
        from: Instant,
        rng: &mut SmallRng,
    ) -> Schedule {
        let segments = segments(&share);
        let ends = share
            .ends_at_us
            .and_then(|us| origin.checked_add(Duration::from_micros(us)));
        let mut s = Schedule {
            epoch,
            segments,
            u: 0.0,
            next: None,
            share,
            ends,
        };
        let since = from.saturating_duration_since(epoch).as_secs_f64();
        let reached = s.integral(since);
        s.u = if s.share.poisson {
            reached + unit_exponential(rng)
        } else {
            reached.ceil()
        };
        s.next = s.at(s.u);
        s
    }

    /// Arrivals due in `[0, t)` seconds from the epoch: the integral of the rate.
    fn integral(&self, t: f64) -> f64 {
        self.segments
            .iter()
            .filter(|g| g.rate > 0.0 && t > g.start)
            .map(|g| g.rate * (t.min(g.end) - g.start))
            .sum()
    }

    /// When the integral of the rate reaches `u`; `None` past the last stage or at the run's
    /// end.
    fn at(&self, u: f64) -> Option<Instant> {
        self.unbounded_at(u)
            .filter(|t| self.ends.is_none_or(|end| *t < end))
    }

    /// [`Schedule::at`] without the run's end.
    fn unbounded_at(&self, u: f64) -> Option<Instant> {
        let mut before = 0.0;
        for g in &self.segments {
            if g.rate <= 0.0 {
                continue;
            }
            let holds = g.rate * (g.end - g.start);
            if u < before + holds {
                let secs = g.start + (u - before) / g.rate;
                // Bounded: a run lasts at most 30 days (limits::RUN_TIME).
                return Some(self.epoch + Duration::from_secs_f64(secs.clamp(0.0, 1e9)));
            }
            before += holds;
        }
        None
    }

    fn advance(&mut self, rng: &mut SmallRng) {
        self.u += if self.share.poisson {
            unit_exponential(rng)
        } else {
            1.0
        };
        self.next = self.at(self.u);
    }
}

/// An exponential gap of mean 1 (in arrivals; divided by the rate it is a time).
fn unit_exponential(rng: &mut SmallRng) -> f64 {
    // 1 - u is in (0, 1]: its logarithm is finite.
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

/// How long after the run's clock origin a worker's first share still starts at the origin.
const FIRST_SHARE_GRACE: Duration = Duration::from_secs(1);

/// How far ahead each wake-up of the scheduler sends: every arrival due within a tick of it
/// (see [`send_by`]), so its timer wakes it at most once per tick, and an arrival is sent at
/// most a tick early and exactly on time when arrivals are more than a tick apart. On the
/// machines measured, one wake-up per arrival cost more client CPU than the requests
/// themselves at thousands of arrivals per second, and sending a whole tick ahead (not half a
/// tick ahead and up to half a tick late) saved a third of the wake-ups at 2,000/s
/// (docs/benchmarks.md, "Open-model scheduling", "Session 28").
const TICK: Duration = Duration::from_millis(1);

/// The arrivals a wake-up at `now` sends: those due by this instant.
fn send_by(now: Instant) -> Instant {
    now + TICK
}

/// When to wake for the arrival due at `next`, the loop having last sent at `woke`: at
/// `next`, but not within a tick of `woke`. (After a pass, `next` is already more than a tick
/// away, see [`send_by`]; the bound matters after a wake-up that sent nothing new, such as a
/// new share.)
fn wake_for(next: Instant, woke: Instant) -> Instant {
    next.max(woke + TICK)
}

/// The pool of idle users, per class.
type Pool<D> = Arc<Mutex<Vec<Vec<User<D>>>>>;

/// Runs a worker's arrivals until `stop`, following `share` (re-read whenever it changes),
/// then waits for its requests in flight (cut off when `abort` fires). `origin` is the run's
/// clock origin on this machine. How it wakes and sends: see the module's documentation.
pub async fn run<D: Driver>(
    ctx: Arc<RunContext<D>>,
    mut share: watch::Receiver<ArrivalShare>,
    origin: Instant,
    stop: CancellationToken,
    abort: CancellationToken,
) -> UserEnd {
    let mut rng = SmallRng::seed_from_u64(
        ctx.spec.seed ^ (u64::from(ctx.worker_id) << 40) ^ 0xA1B2_C3D4_E5F6_0718,
    );
    let mut sender = Sender::new(ctx);
    let mut schedule = {
        let s = share.borrow_and_update().clone();
        sender.limit_connections(s.max_connections);
        let now = Instant::now();
        // The share the run starts with begins at the origin: arrivals due since (the few
        // milliseconds the assignment took) are sent now, late if so, so the run holds every
        // arrival its rate or stages say. A worker that joins later picks up from now.
        let from = if now.saturating_duration_since(origin) <= FIRST_SHARE_GRACE {
            origin
        } else {
            now
        };
        Schedule::new(s, origin, origin, from, &mut rng)
    };
    let mut timer = crate::load::precise_timer::PreciseTimer::new();
    // Made once: a cancellation future registers with the token when first polled.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    // When the stop was seen: arrivals due before it are still sent, none after.
    let mut stopped_at: Option<Instant> = None;
    // When the timer last woke the loop (see `TICK`).
    let mut woke = Instant::now();
    loop {
        // Every arrival due within the next tick (after a stop: due before the stop), in
        // schedule order.
        let due_by = stopped_at.unwrap_or_else(|| send_by(Instant::now()));
        while let Some(scheduled) = schedule.next.filter(|next| *next <= due_by) {
            if abort.is_cancelled() {
                break;
            }
            schedule.advance(&mut rng);
            sender.send(scheduled, schedule.share.max_in_flight, &abort, &mut rng);
        }
        if stopped_at.is_some() || abort.is_cancelled() {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut stopped => stopped_at = Some(Instant::now()),
            changed = share.changed() => {
                if changed.is_err() {
                    break;
                }
                let s = share.borrow_and_update().clone();
                let now = Instant::now();
                log::info!("arrivals: now {:.3}/s, at most {} in flight", s.rate(), s.max_in_flight);
                sender.limit_connections(s.max_connections);
                // Stages keep their clock (the run's origin); a constant rate starts a
                // fresh grid now.
                let epoch = if s.stages.is_empty() { now } else { origin };
                schedule = Schedule::new(s, origin, epoch, now, &mut rng);
            }
            _ = timer.sleep_until(wake_for(schedule.next.unwrap_or(origin), woke)), if schedule.next.is_some() => {
                woke = Instant::now();
            }
        }
    }
    // Requests in flight finish (or are cut off by `abort`, which each one watches).
    sender.outstanding.drained().await;
    // A request task that panicked lost its outcome, so the counts would not add up: the
    // run fails (the worker reports the scheduler's panic) rather than report them.
    assert!(
        !sender.outstanding.panicked.load(Ordering::Acquire),
        "a request of the open-model scheduler panicked"
    );
    UserEnd::Stopped
}

/// Sends arrivals: picks each one's class and tasks, counts it (sent or dropped), and runs
/// it on an idle user of its class.
struct Sender<D: Driver> {
    ctx: Arc<RunContext<D>>,
    /// Picks an arrival's class by class weight (`None`: one class).
    classes: Option<WeightedIndex<u64>>,
    /// Idle users per class, so a class that reads its own writes finds its objects.
    pool: Pool<D>,
    /// The id the next new user gets.
    next_user: u64,
    /// Requests sent and not yet completed (each pass counts once while it runs).
    outstanding: Arc<Outstanding>,
    /// The share's `max_connections` and a permit per connection: a pass holds one while it
    /// runs, so at most that many requests reach the HTTP client at once and its pool never
    /// holds more connections. (Without it, every request that finds no idle connection opens
    /// one: after a stall of the client or the server, hundreds, each a TCP handshake and
    /// later a close, docs/benchmarks.md "Session 24".) `None`: unbounded.
    connections: Option<(u32, Arc<tokio::sync::Semaphore>)>,
}

impl<D: Driver> Sender<D> {
    fn new(ctx: Arc<RunContext<D>>) -> Sender<D> {
        let weights: Vec<u64> = ctx
            .program
            .class_weights
            .iter()
            .map(|w| (*w).max(1) as u64)
            .collect();
        let pool = Arc::new(Mutex::new(
            (0..ctx.program.classes.len()).map(|_| Vec::new()).collect(),
        ));
        Sender {
            classes: WeightedIndex::new(&weights).ok(),
            ctx,
            pool,
            next_user: 0,
            outstanding: Arc::new(Outstanding::default()),
            connections: None,
        }
    }

    /// Bounds the connections the next passes use to `limit` (`None`: unbounded). A pass
    /// already running keeps the permit it holds, so right after a change the two limits
    /// can briefly add up.
    fn limit_connections(&mut self, limit: Option<u32>) {
        if self.connections.as_ref().map(|c| c.0) == limit {
            return;
        }
        self.connections =
            limit.map(|n| (n, Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize))));
    }

    /// Sends (or drops, with `max_in_flight` outstanding) the arrival scheduled at `scheduled`.
    fn send(
        &mut self,
        scheduled: Instant,
        max_in_flight: u32,
        abort: &CancellationToken,
        rng: &mut SmallRng,
    ) {
        let class = match &self.classes {
            Some(c) => c.sample(rng),
            None => 0,
        };
        let Some(class_program) = self.ctx.program.classes.get(class) else {
            return;
        };
        let tasks = class_program.arrival_tasks(rng);
        let sent_at = Instant::now();
        if self.outstanding.count.load(Ordering::Acquire) >= max_in_flight as usize {
            for &t in &tasks {
                self.ctx.recorder.record_arrival(
                    self.next_user,
                    class_program.stat_of(t),
                    ArrivalFate::Dropped,
                );
            }
            return;
        }
        let fate = ArrivalFate::Sent(sent_at.saturating_duration_since(scheduled));
        let idle = self
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(class)
            .and_then(Vec::pop);
        let mut user = match idle {
            Some(u) => u,
            None => {
                self.next_user += 1;
                User::new(Arc::clone(&self.ctx), self.next_user - 1, class)
            }
        };
        for &t in &tasks {
            self.ctx
                .recorder
                .record_arrival(user.id(), class_program.stat_of(t), fate);
        }
        let pool = Arc::clone(&self.pool);
        let abort = abort.clone();
        let counted = Outstanding::enter(&self.outstanding);
        let connections = self.connections.as_ref().map(|c| Arc::clone(&c.1));
        tokio::spawn(async move {
            // Waits for a free connection (in `latency_ms`, which runs from `scheduled`; not
            // in `service_ms`, which starts when the request is sent). A pass cut off while
            // it waits is aborted by `arrive` without sending anything.
            let _connection = match connections {
                Some(free) => tokio::select! {
                    biased;
                    permit = free.acquire_owned() => permit.ok(),
                    _ = abort.cancelled() => None,
                },
                None => None,
            };
            user.arrive(&tasks, scheduled.into_std(), &abort).await;
            put_back(&pool, class, user);
            drop(counted);
        });
    }
}

/// Requests outstanding, and a way to wait until there are none.
#[derive(Default)]
struct Outstanding {
    count: AtomicUsize,
    /// Notified each time the count falls to zero.
    idle: Notify,
    /// A request's task panicked (its outcome was never recorded).
    panicked: std::sync::atomic::AtomicBool,
}

impl Outstanding {
    /// Counts one request in until the returned guard is dropped (also when its task panics
    /// or is dropped with the runtime).
    fn enter(this: &Arc<Outstanding>) -> OutstandingGuard {
        this.count.fetch_add(1, Ordering::AcqRel);
        OutstandingGuard(Arc::clone(this))
    }

    /// Waits until no request is outstanding.
    async fn drained(&self) {
        loop {
            // Registered before the check, so a fall to zero in between is not missed.
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One outstanding request; dropping it counts the request out.
struct OutstandingGuard(Arc<Outstanding>);

impl Drop for OutstandingGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.panicked.store(true, Ordering::Release);
        }
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_task_that_panics_is_counted_out_and_flagged() {
        let outstanding = Arc::new(Outstanding::default());
        let (ok, bad) = (
            Outstanding::enter(&outstanding),
            Outstanding::enter(&outstanding),
        );
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(ok);
        });
        // As in `Sender::send`: the guard is held across the request's await, which panics.
        tokio::spawn(async move {
            async {
                tokio::task::yield_now().await;
                panic!("a request task panics");
            }
            .await;
            drop(bad);
        });
        tokio::time::timeout(Duration::from_secs(10), outstanding.drained())
            .await
            .expect("both tasks counted out");
        assert_eq!(outstanding.count.load(Ordering::Acquire), 0);
        assert!(outstanding.panicked.load(Ordering::Acquire));
    }

    #[test]
    fn the_timer_wakes_on_time_but_at_most_once_a_tick() {
        let woke = Instant::now();
        // The next arrival is more than a tick away: wake exactly for it.
        let far = woke + Duration::from_micros(2_500);
        assert_eq!(wake_for(far, woke), far);
        // One closer (possible only after a wake-up that sent nothing new) waits for the tick.
        let near = woke + Duration::from_micros(700);
        assert_eq!(wake_for(near, woke), woke + TICK);
    }

    /// The loop's timing with wake-ups that take no time: when each arrival of `schedule` (µs
    /// from the start) is sent, and when the loop sent (the start, then each timer wake-up).
    fn sends_and_passes(schedule: &[u64]) -> (Vec<u64>, Vec<u64>) {
        let start = Instant::now();
        let at = |us: u64| start + Duration::from_micros(us);
        let us = |t: Instant| t.duration_since(start).as_micros() as u64;
        let (mut sent, mut passes) = (Vec::new(), Vec::new());
        let mut arrivals = schedule.iter().copied().peekable();
        let mut now = start;
        loop {
            passes.push(us(now));
            while arrivals.next_if(|due| at(*due) <= send_by(now)).is_some() {
                sent.push(us(now));
            }
            let Some(&next) = arrivals.peek() else {
                return (sent, passes);
            };
            now = wake_for(at(next), now);
        }
    }

    #[test]
    fn an_arrival_leaves_at_most_a_tick_early_never_late_with_passes_a_tick_apart() {
        for gap_us in [100, 333, 500, 700, 1_000, 1_500, 5_000] {
            let schedule: Vec<u64> = (1..=200).map(|k| k * gap_us).collect();
            let (sent, passes) = sends_and_passes(&schedule);
            assert_eq!(
                sent.len(),
                schedule.len(),
                "gap {gap_us} µs: every arrival sent"
            );
            for (s, due) in sent.iter().zip(&schedule) {
                assert!(
                    s <= due,
                    "gap {gap_us} µs: sent at {s}, after its time {due}"
                );
                assert!(
                    due - s <= 1_000,
                    "gap {gap_us} µs: sent at {s}, over a tick before {due}"
                );
            }
            for pair in passes.windows(2) {
                assert!(
                    pair[1] - pair[0] >= 1_000,
                    "gap {gap_us} µs: passes {pair:?}"
                );
            }
            if gap_us > 1_000 {
                assert_eq!(
                    sent, schedule,
                    "more than a tick apart: each exactly on time"
                );
            }
        }
        // 2,000/s for 150 ms: the start and a wake-up each 1.5 ms, three arrivals each (half a
        // tick each way took a wake-up each millisecond, two arrivals each).
        let (_, passes) = sends_and_passes(&(1..=300).map(|k| k * 500).collect::<Vec<_>>());
        assert_eq!(passes.len(), 101);
    }

    #[test]
    fn a_constant_schedule_is_anchored_at_its_epoch() {
        let mut rng = SmallRng::seed_from_u64(1);
        let share = ArrivalShare {
            rate_micro: 100 * MICROS_PER_ARRIVAL,
            poisson: false,
            max_in_flight: 10,
            max_connections: None,
            stages: Vec::new(),
            ends_at_us: None,
        };
        let epoch = Instant::now();
        // Joining 1.234 s after the epoch: the next arrival is on the 10 ms grid.
        let mut s = Schedule::new(
            share,
            epoch,
            epoch,
            epoch + Duration::from_millis(1234),
            &mut rng,
        );
        assert_eq!(s.u, 124.0);
        for _ in 0..1000 {
            s.advance(&mut rng);
        }
        // No drift: arrival 1124 is exactly 11.24 s after the epoch.
        let at = s.next.unwrap().duration_since(epoch).as_secs_f64();
        assert!((at - 11.24).abs() < 1e-6, "{at}");
    }

    #[test]
    fn a_schedule_holds_no_arrival_at_or_after_the_runs_end() {
        let mut rng = SmallRng::seed_from_u64(3);
        let share = |rate: u64, poisson: bool| ArrivalShare {
            rate_micro: rate * MICROS_PER_ARRIVAL,
            poisson,
            max_in_flight: 10,
            max_connections: None,
            stages: Vec::new(),
            ends_at_us: Some(8_000_000),
        };
        let origin = Instant::now();
        let count = |mut s: Schedule, rng: &mut SmallRng| {
            let mut n = 0u64;
            while let Some(at) = s.next {
                assert!(at < origin + Duration::from_secs(8));
                n += 1;
                s.advance(rng);
            }
            n
        };
        // 100/s for 8 s: 800 arrivals, the one due at 8 s excluded.
        let s = Schedule::new(share(100, false), origin, origin, origin, &mut rng);
        assert_eq!(count(s, &mut rng), 800);
        // A share re-split 2.5 s in (a fresh grid from then) still ends at the run's end.
        let later = origin + Duration::from_millis(2500);
        let s = Schedule::new(share(400, false), origin, later, later, &mut rng);
        assert_eq!(count(s, &mut rng), 2200);
        // Poisson arrivals end there too.
        let s = Schedule::new(share(400, true), origin, origin, origin, &mut rng);
        let n = count(s, &mut rng);
        assert!((3000..3400).contains(&n), "{n}");
    }

    #[test]
    fn poisson_gaps_average_to_the_rate() {
        let mut rng = SmallRng::seed_from_u64(7);
        let share = ArrivalShare {
            rate_micro: 500 * MICROS_PER_ARRIVAL,
            poisson: true,
            max_in_flight: 10,
            max_connections: None,
            stages: Vec::new(),
            ends_at_us: None,
        };
        let epoch = Instant::now();
        let mut s = Schedule::new(share, epoch, epoch, epoch, &mut rng);
        let first = s.next.unwrap();
        let n = 20_000;
        for _ in 0..n {
            s.advance(&mut rng);
        }
        let mean = s.next.unwrap().duration_since(first).as_secs_f64() / n as f64;
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

    /// Arrival times of a share's whole schedule, in seconds from the epoch.
    fn arrival_times(share: ArrivalShare) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(3);
        let epoch = Instant::now();
        let mut s = Schedule::new(share, epoch, epoch, epoch, &mut rng);
        let mut out = Vec::new();
        while let Some(next) = s.next {
            out.push(next.duration_since(epoch).as_secs_f64());
            s.advance(&mut rng);
            assert!(out.len() < 1_000_000, "a staged schedule ends");
        }
        out
    }

    fn staged(stages: &[(f64, f64)]) -> crate::load::scenario::ArrivalPlan {
        crate::load::scenario::ArrivalPlan {
            rate: stages.iter().map(|s| s.0).fold(0.0, f64::max),
            poisson: false,
            max_in_flight: 10,
            max_connections: None,
            stages: stages
                .iter()
                .map(|&(rate, secs)| crate::load::scenario::RateStage {
                    rate,
                    for_us: (secs * 1e6) as u64,
                })
                .collect(),
        }
    }

    #[test]
    fn rate_stages_step_and_hold_and_add_up_to_their_integral() {
        // 50/s for 2 s, a 1 s pause, 150/s for 2 s: 100 + 0 + 300 arrivals.
        let plan = staged(&[(50.0, 2.0), (0.0, 1.0), (150.0, 2.0)]);
        let one = split_plan(&plan, 1).remove(0);
        let times = arrival_times(one);
        assert_eq!(times.len(), 400);
        let in_span = |a: f64, b: f64| times.iter().filter(|t| **t >= a && **t < b).count();
        assert_eq!((in_span(0.0, 1.0), in_span(1.0, 2.0)), (50, 50));
        assert_eq!(in_span(2.0, 3.0), 0, "the pause holds no arrival");
        assert_eq!((in_span(3.0, 4.0), in_span(4.0, 5.0)), (150, 150));
        assert!((times[100] - 3.0).abs() < 1e-9, "{}", times[100]);
        // Split three ways: every stage's shares add up, and so do the arrivals.
        let shares = split_plan(&plan, 3);
        for stage in 0..3 {
            let sum: u64 = shares.iter().map(|s| s.stages[stage].rate_micro).sum();
            assert_eq!(sum, micros(plan.stages[stage].rate));
        }
        // 50/3 per worker for 2 s is 33.3 arrivals: each worker's count is the ceiling of its
        // integral, so a boundary holds at most one more per worker.
        let total: usize = shares.into_iter().map(|s| arrival_times(s).len()).sum();
        assert!((400..=400 + 3 * 2).contains(&total), "{total}");
        // Two ways, the integrals are whole: exactly 400.
        let total: usize = split_plan(&plan, 2)
            .into_iter()
            .map(|s| arrival_times(s).len())
            .sum();
        assert_eq!(total, 400);
    }

    #[test]
    fn poisson_stages_average_to_their_integral() {
        let mut plan = staged(&[(2000.0, 2.0), (500.0, 2.0)]);
        plan.poisson = true;
        let times = arrival_times(split_plan(&plan, 1).remove(0));
        // 5000 expected; a Poisson count's standard deviation is sqrt(5000) ~ 71.
        assert!((4700..=5300).contains(&times.len()), "{}", times.len());
        assert!(times.iter().all(|t| *t < 4.0));
        let late = times.iter().filter(|t| **t >= 2.0).count();
        assert!((850..=1150).contains(&late), "{late}");
    }

    #[test]
    fn a_share_taken_mid_stage_continues_the_grid() {
        let plan = staged(&[(100.0, 2.0), (10.0, 2.0)]);
        let share = split_plan(&plan, 1).remove(0);
        let mut rng = SmallRng::seed_from_u64(1);
        let epoch = Instant::now();
        let s = Schedule::new(
            share,
            epoch,
            epoch,
            epoch + Duration::from_millis(2550),
            &mut rng,
        );
        // 200 arrivals in the first stage, then one per 100 ms: the next is at 2.6 s.
        assert_eq!(s.u, 206.0);
        let at = s.next.unwrap().duration_since(epoch).as_secs_f64();
        assert!((at - 2.6).abs() < 1e-6, "{at}");
    }

    #[test]
    fn connections_split_like_the_rate_and_every_worker_gets_one() {
        let mut plan = staged(&[(300.0, 1.0)]);
        plan.max_connections = Some(10);
        let shares = split_plan(&plan, 3);
        let connections: Vec<_> = shares.iter().map(|s| s.max_connections).collect();
        assert_eq!(connections, [Some(4), Some(3), Some(3)]);
        // Fewer connections than workers: each still gets one.
        plan.max_connections = Some(2);
        let shares = split_plan(&plan, 3);
        assert!(shares.iter().all(|s| s.max_connections == Some(1)));
        // Unset stays unset.
        plan.max_connections = None;
        assert!(split_plan(&plan, 3)
            .iter()
            .all(|s| s.max_connections.is_none()));
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
