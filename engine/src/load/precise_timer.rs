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
                Ok(result) => {
                    // The expiration is consumed and the one-shot timer is not armed again
                    // until the next wait, so the fd is not readable now: forgetting the
                    // readiness saves the next wait a read that would find nothing.
                    ready.clear_ready();
                    return result.map(|_| ());
                }
                // Stale readiness (an earlier wait's expiration, consumed or reset): wait on.
                Err(_would_block) => continue,
            }
        }
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
