//! The actor's one-second clock: workers' liveness, ready seconds, the summary refresh, and
//! the transitions time decides (spawning → running, the duration's end).

use super::actor::Actor;
use super::run::Steering;
use super::{DROP_AFTER, MISSING_AFTER, SECOND_GRACE, SUMMARY_EVERY};
use crate::cluster::protocol::ToWorker;
use crate::control::RunState;
use crate::load::driver::Driver;
use tokio::time::Instant;

impl<D: Driver> Actor<D> {
    /// Once a second: liveness of workers, the pending start's deadline, seconds ready to
    /// write, summary refresh, spawning → running, and the run's end by duration or iterations.
    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        // Liveness.
        let mut changed = false;
        let ids: Vec<u32> = self.workers.keys().copied().collect();
        for id in ids {
            let Some(slot) = self.workers.get_mut(&id) else {
                continue;
            };
            let _ = slot.tx.try_send(ToWorker::Heartbeat);
            match slot.missing_since {
                None if now.duration_since(slot.last_seen) > MISSING_AFTER => {
                    slot.missing_since = Some(now);
                    let why = format!(
                        "worker {} (#{id}) missing: silent for {}s",
                        slot.name,
                        MISSING_AFTER.as_secs()
                    );
                    log::warn!("{why}");
                    if let Some(run) = self.run.as_mut() {
                        run.files.event(&why);
                        if let Some(p) = run.participants.get_mut(&id) {
                            p.record.missing_events += 1;
                            p.users = 0;
                        }
                    }
                    changed = true;
                }
                Some(since) if now.duration_since(since) > DROP_AFTER => {
                    let name = slot.name.clone();
                    self.remove_worker(
                        id,
                        &format!(
                            "worker {name} (#{id}) dropped: missing for {}s",
                            DROP_AFTER.as_secs()
                        ),
                    );
                    changed = true;
                }
                _ => {}
            }
        }
        if changed {
            self.rebalance();
        }
        self.check_pending();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        run.ticks += 1;
        if run.load_started.is_some() && !run.cleaning {
            self.close_seconds();
        }
        let active = self.active_workers();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.load_started.is_some() && !run.cleaning && run.ticks % SUMMARY_EVERY == 0 {
            run.write_progress();
        }
        let running_users: u32 = run.participants.values().map(|p| p.users).sum();
        let all_done = run.spec.iterations.is_some()
            && run.participants.keys().any(|id| active.contains(id))
            && run
                .participants
                .iter()
                .filter(|(id, _)| active.contains(id))
                .all(|(_, p)| p.done);
        if run.state == RunState::Spawning && (running_users >= run.users_target || all_done) {
            run.state = RunState::Running;
            run.record.state = RunState::Running;
            run.files
                .event(&format!("state running: {running_users} users"));
            run.files.write_record(&run.record);
        }
        let expired = run.deadline.is_some_and(|d| now >= d);
        if run.is_loading() {
            if expired {
                self.begin_stop(RunState::Completed, false, "duration reached");
            } else if all_done {
                self.begin_stop(RunState::Completed, false, "all users ran their iterations");
            }
        } else if run.state == RunState::Stopping {
            self.maybe_cleanup();
        }
    }

    /// Writes every second of the run that is ready.
    pub(super) fn close_seconds(&mut self) {
        let (active, attached) = (self.active_workers(), self.attached_workers());
        if let Some(run) = self.run.as_mut() {
            run.close_ready(&active, &attached, Instant::now(), SECOND_GRACE);
        }
        self.steer();
    }

    /// Does what the sweep or autoterm asked for when the last seconds were written.
    fn steer(&mut self) {
        let Some(steer) = self.run.as_mut().and_then(|r| r.steer.take()) else {
            return;
        };
        match steer {
            Steering::Rebalance => self.rebalance(),
            Steering::Stop(why) => {
                if let Some(run) = self.run.as_mut() {
                    if run.autoterm_stop.is_some() && run.record.reason.is_none() {
                        // run.json says why a completed run ended early.
                        run.record.reason = Some(why.clone());
                    }
                }
                self.begin_stop(RunState::Completed, false, &why)
            }
        }
    }
}
