//! A timer with sub-millisecond resolution for the open-model scheduler.
//!
//! tokio's timer wheel ticks once a millisecond and rounds every sleep up to its next tick,
//! so an arrival due at 10.2 ms is woken at 11 ms or later: with one sleep per arrival, most
//! arrivals would start up to a millisecond late before the scheduler did anything. A Linux
//! timerfd (through nix), polled by tokio's reactor (`AsyncFd`), wakes within tens of
//! microseconds of its deadline when the machine keeps up. Where no timerfd can be made the
//! scheduler falls back to tokio's timer (and says so once in the log).

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// nix's timerfd as tokio's reactor takes it (`AsyncFd` wants `AsRawFd`).
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One re-armable timer; each scheduler loop owns one.
pub struct PreciseTimer {
    /// The timerfd; `None` when it could not be made or armed, and tokio's timer is used.
    fd: Option<AsyncFd<Fd>>,
}

impl Default for PreciseTimer {
    fn default() -> PreciseTimer {
        PreciseTimer::new()
    }
}

impl PreciseTimer {
    pub fn new() -> PreciseTimer {
        let made = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| {
            // SAFETY: `Fd` owns the timerfd (nix's `TimerFd` holds an `OwnedFd`), so the
            // descriptor stays open and is not reused while the `AsyncFd` registration lives;
            // dropping the `AsyncFd` deregisters it before `Fd` closes it.
            unsafe { AsyncFd::register(Fd(fd)) }.map_err(std::io::Error::from)
        });
        match made {
            Ok(fd) => PreciseTimer { fd: Some(fd) },
            Err(e) => {
                log::warn!(
                    "no timerfd ({e}): arrivals are scheduled with tokio's 1 ms timer, so \
                     lateness below a millisecond is not measured"
                );
                PreciseTimer { fd: None }
            }
        }
    }

    /// Waits until `deadline` (never returns before it). Cancel-safe: a wait dropped before
    /// its deadline leaves nothing behind that could end the next wait early (arming the
    /// timer again resets its expirations, and stale readiness is cleared by a read that finds
    /// nothing).
    pub async fn sleep_until(&mut self, deadline: Instant) {
        if self.fd.is_some() {
            match self.wait_fd(deadline).await {
                // The timerfd's clock is Instant's (CLOCK_MONOTONIC) and it was armed with
                // the time left after `now` was read, so it does not fire early; the check
                // keeps that a guarantee rather than an assumption.
                Ok(()) if Instant::now() >= deadline => return,
                Ok(()) => {}
                Err(e) => {
                    log::warn!(
                        "the timerfd failed ({e}): arrivals fall back to tokio's 1 ms timer"
                    );
                    self.fd = None;
                }
            }
        }
        tokio::time::sleep_until(deadline).await;
    }

    async fn wait_fd(&self, deadline: Instant) -> std::io::Result<()> {
        let Some(fd) = &self.fd else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        fd.get_ref()
            .0
            .set(
                Expiration::OneShot(TimeSpec::from(left)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(std::io::Error::from)?;
        loop {
            let mut ready = fd.readable().await?;
            let read = ready.try_io(|fd| {
                let mut expirations = [0u8; 8];
                nix::unistd::read(&fd.get_ref().0, &mut expirations).map_err(std::io::Error::from)
            });
            match read {
                Ok(result) => return result.map(|_| ()),
                // Stale readiness (an earlier wait's expiration, consumed or reset): wait on.
                Err(_would_block) => continue,
            }
        }
    }
}

/// The scheduler slice the load runtime's threads ask for (the kernel's minimum).
const LOAD_THREAD_SLICE_NS: u64 = 100_000;

/// Asks the kernel to give the calling thread short scheduler slices, so that when it wakes
/// (a timerfd expiry, a response) it preempts a thread of this process that is in the middle
/// of a long slice on the same core, such as the coordinator writing a second's rows.
///
/// Linux's EEVDF scheduler (6.6 and later) lets a running thread finish its slice (about
/// 3 ms by default) before a thread that just woke runs, unless the woken one asked for a
/// shorter slice (6.12 and later, `sched_setattr` with `sched_runtime` under SCHED_OTHER,
/// no privilege needed). Measured on one core, the open-model scheduler waited up to 9 ms
/// for the coordinator's thread (docs/benchmarks.md, "Session 24"). The policy and nice
/// value stay what they were; older kernels ignore the slice. Errors are returned for the
/// caller to log: the run is still correct without it, only later.
pub fn prefer_short_slices() -> std::io::Result<()> {
    // getpriority can return -1 as a nice value: errno tells an error from it.
    nix::errno::Errno::clear();
    // SAFETY: getpriority reads the calling thread's nice value (`who` 0: this thread, as
    // Linux keeps nice per thread); it has no memory arguments.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: LOAD_THREAD_SLICE_NS,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a valid sched_attr whose `size` says how much of it the kernel may
    // read; pid 0 is the calling thread; flags 0.
    let done = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How much lower than the load threads the threads of everything else run (nice +10: a
/// weight of 110 against 1024). Under EEVDF a thread that woke runs first only while it is
/// *eligible*, i.e. has had less than its fair share of the core; on one core the load thread
/// uses far more than the bookkeeping, so with equal weights it waited for the bookkeeping
/// thread's slice (3–4 ms, measured). At a tenth of the weight the bookkeeping still gets a
/// tenth of a saturated core, many times what it needs.
const BACKGROUND_NICE_STEP: i32 = 10;

/// Lowers the calling thread's priority by [`BACKGROUND_NICE_STEP`] (the threads of the
/// coordinator, the worker's control loop, the web UI and the files they write), so the load
/// threads run first on a shared core. Raising nice needs no privilege.
pub fn yield_to_load_threads() -> std::io::Result<()> {
    nix::errno::Errno::clear();
    // SAFETY: as in `prefer_short_slices`.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: setpriority sets the calling thread's nice value (`who` 0); no memory arguments.
    let done =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, (nice + BACKGROUND_NICE_STEP).min(19)) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn never_wakes_before_the_deadline_and_survives_a_dropped_wait() {
        let mut timer = PreciseTimer::new();
        assert!(timer.fd.is_some(), "Linux has timerfd");
        // A wait dropped before its deadline, then the timer's own expiry passes unread.
        let first = Instant::now() + Duration::from_millis(2);
        let dropped = tokio::time::timeout(Duration::from_micros(100), timer.sleep_until(first));
        assert!(dropped.await.is_err(), "the wait was cut short");
        tokio::time::sleep(Duration::from_millis(5)).await;
        for gap_us in [300u64, 1500, 50, 0] {
            let deadline = Instant::now() + Duration::from_micros(gap_us);
            timer.sleep_until(deadline).await;
            assert!(
                Instant::now() >= deadline,
                "woke before a {gap_us} µs deadline"
            );
        }
        assert!(timer.fd.is_some(), "the timerfd kept working");
    }
}
