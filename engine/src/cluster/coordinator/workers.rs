//! The worker side of the actor: workers attach and leave, their messages go into the run,
//! and the plan is recomputed whenever the set of workers able to take users changes.

use super::actor::{Actor, Slot};
use super::run::Merged;
use super::Event;
use crate::cluster::plan;
use crate::cluster::protocol::{FromWorker, ToWorker};
use crate::cluster::worker::Link;
use crate::load::arrivals::{self, ArrivalShare};
use crate::load::driver::Driver;
use std::collections::BTreeSet;
use tokio::sync::mpsc;
use tokio::time::Instant;

impl<D: Driver> Actor<D> {
    pub(super) fn attach(&mut self, name: String) -> (u32, Link) {
        let id = self.next_worker_id;
        self.next_worker_id += 1;
        // A worker that reconnects under the same name replaces its stale slot.
        let stale: Vec<u32> = self
            .workers
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(id, _)| *id)
            .collect();
        for old in stale {
            self.remove_worker(old, &format!("worker {name} reconnected as #{id}"));
        }
        let (to_worker, worker_rx) = mpsc::channel(256);
        // Short: a coordinator that falls behind pushes back on the worker's socket instead of
        // queueing its deltas (each decoded delta can hold many histograms).
        let (worker_tx, mut from_worker) = mpsc::channel::<FromWorker>(16);
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(msg) = from_worker.recv().await {
                if events.send(Event::Worker(id, msg)).await.is_err() {
                    return;
                }
            }
            let _ = events.send(Event::WorkerGone(id)).await;
        });
        log::info!("worker {name} connected as #{id}");
        self.workers.insert(
            id,
            Slot {
                name: name.clone(),
                tx: to_worker,
                last_seen: Instant::now(),
                missing_since: None,
                users: 0,
            },
        );
        if let Some(run) = self.run.as_mut() {
            run.files.event(&format!("worker {name} (#{id}) connected"));
            if run.is_loading() {
                self.enlist(id);
                self.rebalance();
            }
        }
        self.check_pending();
        (
            id,
            Link {
                tx: worker_tx,
                rx: worker_rx,
            },
        )
    }

    /// Sends the active run to worker `id` and records it as a participant.
    pub(super) fn enlist(&mut self, id: u32) {
        let (Some(run), Some(slot)) = (self.run.as_mut(), self.workers.get(&id)) else {
            return;
        };
        if run.participants.contains_key(&id) {
            return;
        }
        let _ = slot.tx.try_send(ToWorker::Start {
            spec: (*run.spec).clone(),
        });
        run.enlist(id, &slot.name);
    }

    pub(super) fn worker_message(&mut self, id: u32, msg: FromWorker) {
        let Some(slot) = self.workers.get_mut(&id) else {
            return;
        };
        slot.last_seen = Instant::now();
        if slot.missing_since.take().is_some() {
            let name = slot.name.clone();
            log::info!("worker {name} (#{id}) is back");
            if let Some(run) = self.run.as_mut() {
                run.files.event(&format!("worker {name} (#{id}) is back"));
            }
            if self.run.as_ref().is_some_and(|r| r.is_loading()) {
                self.enlist(id);
                self.rebalance();
            }
        }
        match msg {
            FromWorker::Heartbeat { users } => {
                if let Some(slot) = self.workers.get_mut(&id) {
                    slot.users = users;
                }
            }
            FromWorker::Stats {
                run_id,
                seq,
                users,
                done,
                seconds,
                complete_through,
                died,
            } => {
                if let Some(slot) = self.workers.get_mut(&id) {
                    slot.users = users;
                }
                let Some(run) = self.run.as_mut().filter(|r| r.run_id() == run_id) else {
                    return;
                };
                let merged =
                    run.merge_stats(id, seq, users, done, &seconds, complete_through, died);
                if merged == Merged::Repeated {
                    log::warn!("worker #{id} repeated stats message {seq}; ignored");
                }
                if merged == Merged::Yes {
                    self.close_seconds();
                }
            }
            FromWorker::Finished { run_id, last_seq } => {
                let Some(run) = self.run.as_mut().filter(|r| r.run_id() == run_id) else {
                    return;
                };
                run.finished(id, last_seq);
                self.maybe_cleanup();
            }
            FromWorker::Checked { run_id, report } => {
                self.part_checked(&run_id, Some(id), &report);
            }
            FromWorker::Hello { .. } => {}
            FromWorker::CutRun { run } => {
                self.record_cut_run(Some(id), *run);
            }
        }
    }

    pub(super) fn worker_gone(&mut self, id: u32) {
        if let Some(name) = self.workers.get(&id).map(|s| s.name.clone()) {
            self.remove_worker(id, &format!("worker {name} (#{id}) disconnected"));
            self.rebalance();
            self.maybe_cleanup();
        }
    }

    pub(super) fn remove_worker(&mut self, id: u32, why: &str) {
        if self.workers.remove(&id).is_none() {
            return;
        }
        if self.run.is_some() {
            log::warn!("{why}");
        } else {
            log::info!("{why}");
        }
        if let Some(run) = self.run.as_mut() {
            run.files.event(why);
            run.lost(id);
        }
    }

    /// Workers that can take users: connected and not missing.
    pub(super) fn active_workers(&self) -> BTreeSet<u32> {
        self.workers
            .iter()
            .filter(|(_, s)| s.missing_since.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Workers attached to the hub, missing or not.
    pub(super) fn attached_workers(&self) -> BTreeSet<u32> {
        self.workers.keys().copied().collect()
    }

    /// Recomputes the plan over the active workers and sends changed assignments.
    pub(super) fn rebalance(&mut self) {
        let active = self.active_workers();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if !run.is_loading() {
            return;
        }
        let enlisted: Vec<u32> = active
            .into_iter()
            .filter(|id| run.participants.contains_key(id))
            .collect();
        let per_class = plan::users_per_class(&run.class_weights, run.users_target);
        let shares = plan::split(&per_class, enlisted.len());
        let rate = plan::split_rate(run.spawn_rate, enlisted.len());
        // The run's seconds are [0, duration): arrivals end with them.
        let ends_at_us = run
            .duration
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let arrivals: Vec<Option<ArrivalShare>> = match &run.arrival {
            Some(a) => arrivals::split_plan(a, enlisted.len())
                .into_iter()
                .map(|share| {
                    Some(ArrivalShare {
                        ends_at_us,
                        ..share
                    })
                })
                .collect(),
            None => vec![None; enlisted.len()],
        };
        for ((id, share), arrival) in enlisted.iter().zip(shares).zip(arrivals) {
            let Some(p) = run.participants.get_mut(id) else {
                continue;
            };
            if p.assigned == share && p.assigned_arrival == arrival {
                continue;
            }
            p.assigned = share.clone();
            p.assigned_arrival = arrival.clone();
            if let Some(slot) = self.workers.get(id) {
                let _ = slot.tx.try_send(ToWorker::Assign {
                    run_id: run.spec.run_id.clone(),
                    users: share.clone(),
                    spawn_rate: rate,
                    arrival: arrival.clone(),
                });
            }
            let name = self.workers.get(id).map(|s| s.name.as_str()).unwrap_or("?");
            match arrival {
                Some(a) if !a.stages.is_empty() => run.files.event(&format!(
                    "assigned {} rate stages (at most {:.6} arrivals/s, {} in flight{}) to worker {name} (#{id})",
                    a.stages.len(),
                    a.rate(),
                    a.max_in_flight,
                    connections_said(a.max_connections)
                )),
                Some(a) => run.files.event(&format!(
                    "assigned {:.6} arrivals/s (at most {} in flight{}) to worker {name} (#{id})",
                    a.rate(),
                    a.max_in_flight,
                    connections_said(a.max_connections)
                )),
                None => run.files.event(&format!(
                    "assigned {} users to worker {name} (#{id})",
                    share.iter().sum::<u32>(),
                )),
            }
        }
        // Missing workers keep no share; they get a fresh one if they come back.
        for (id, p) in run.participants.iter_mut() {
            if !enlisted.contains(id) {
                p.assigned.clear();
                p.assigned_arrival = None;
            }
        }
    }
}

/// ", on at most N connections" when a share bounds its connections; nothing otherwise.
pub(super) fn connections_said(max_connections: Option<u32>) -> String {
    max_connections
        .map(|n| format!(", on at most {n} connections"))
        .unwrap_or_default()
}
