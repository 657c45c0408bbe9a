//! `chopsticks ctl`: drive a running coordinator through its control API.

use super::Exit;
use crate::control::client::{ControlClient, CtlError};
use crate::control::token::Token;
use crate::control::{RunState, StartRequest, Status};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The coordinator's control API.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8089",
        global = true
    )]
    pub control: String,
    /// Cluster token file (needed when the control API is not on loopback).
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Start a run.
    Start {
        /// Built-in scenario name or a path on the coordinator's machine.
        #[arg(long, short = 'f', default_value = "s3_small_objects")]
        scenario: String,
        /// Closed-model users (not with --rate).
        #[arg(long, short = 'u', value_parser = super::parse_users, required_unless_present = "rate", conflicts_with = "rate")]
        users: Option<u32>,
        /// Users started per second (not with --rate).
        #[arg(long, short = 'r', value_parser = super::parse_spawn_rate, required_unless_present = "rate", conflicts_with = "rate")]
        spawn_rate: Option<f64>,
        /// Open-model load: arrivals per second across all workers (e.g. 500/s, 30/m), in
        /// place of the scenario's `load.arrival` (rate or stages); instead of users.
        #[arg(long, value_name = "RATE", value_parser = super::parse_arrival_rate)]
        rate: Option<f64>,
        /// 90s, 10m, 1h30m; none = until stopped.
        #[arg(long = "run-time", short = 't', visible_alias = "duration", value_parser = super::parse_run_time)]
        run_time: Option<String>,
        #[arg(long, short = 'i', value_parser = super::parse_iterations)]
        iterations: Option<u64>,
        /// Wait until this many workers are connected.
        #[arg(long)]
        expected_workers: Option<u32>,
        /// How long to wait for them, in seconds.
        #[arg(long, value_parser = super::parse_wait_workers)]
        wait_workers: Option<f64>,
        #[arg(long)]
        run_id: Option<String>,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_parser = super::parse_stop_timeout)]
        stop_timeout: Option<f64>,
    },
    /// Stop the active run.
    Stop {
        /// Cut in-flight requests off instead of letting them finish.
        #[arg(long)]
        abort: bool,
        /// Wait up to this many seconds for the run to end, and report its final state.
        #[arg(long, value_parser = super::parse_ctl_wait)]
        wait: Option<Duration>,
    },
    /// What is running now (or what ran last).
    Status,
    /// Past and current runs.
    Runs,
    /// A run's summary.
    Summary { run_id: String },
}

pub async fn ctl(args: CtlArgs) -> Exit {
    let token = match &args.token_file {
        Some(p) => match Token::load(p) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::BadInput;
            }
        },
        None => None,
    };
    let client = ControlClient::new(&args.control, token);
    let result = match args.command {
        CtlCommand::Start {
            scenario,
            users,
            spawn_rate,
            run_time,
            iterations,
            expected_workers,
            wait_workers,
            run_id,
            seed,
            stop_timeout,
            rate,
        } => client
            .start(&StartRequest {
                scenario,
                scenario_yaml: None,
                // With --rate (clap refuses -u and -r next to it) the request still carries
                // users and a spawn rate, as the API requires; an open-model run does not
                // use them, and the coordinator says so in events.log.
                users: users.unwrap_or(1),
                spawn_rate: spawn_rate.unwrap_or(1.0),
                duration: run_time,
                iterations,
                expected_workers,
                wait_workers_s: wait_workers,
                run_id,
                seed,
                stop_timeout_s: stop_timeout,
                rate,
                sweeping: Default::default(),
            })
            .await
            .map(|r| {
                print(&r, args.json, || {
                    format!(
                        "started run {} ({}, {} workers); artifacts in {}",
                        r.run_id, r.scenario, r.workers, r.run_dir
                    )
                })
            }),
        CtlCommand::Stop { abort, wait } => match client.stop(abort).await {
            Ok(reply) => match wait {
                Some(limit) => client
                    .wait_ended(&reply.run_id, limit)
                    .await
                    .map(|s| print(&s, args.json, || status_text(&s))),
                None => {
                    print(&reply, args.json, || {
                        format!("run {} is {}", reply.run_id, reply.state)
                    });
                    Ok(())
                }
            },
            Err(e) => Err(e),
        },
        CtlCommand::Status => client
            .status()
            .await
            .map(|s| print(&s, args.json, || status_text(&s))),
        CtlCommand::Runs => client.runs().await.map(|runs| {
            print(&runs, args.json, || {
                runs.iter()
                    .map(|r| {
                        format!(
                            "{:<28} {:<12} {:<24} {:>10} requests {:>8} failures",
                            r.run_id, r.state, r.scenario, r.requests, r.failures
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }),
        CtlCommand::Summary { run_id } => client
            .summary(&run_id)
            .await
            .map(|s| print(&s, args.json, || s.table())),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(CtlError::Refused(e)) => {
            eprintln!("error: {e}");
            match e {
                crate::control::ControlError::BadRequest(_) => Exit::BadInput,
                _ => Exit::RunFailed,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::RunFailed
        }
    }
}

fn print<T: serde::Serialize>(value: &T, json: bool, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        println!("{}", text());
    }
}

fn status_text(s: &Status) -> String {
    let mut out = format!(
        "state: {}\nrun: {}\n",
        s.state,
        s.run_id.as_deref().unwrap_or("-")
    );
    if s.state != RunState::Idle {
        out.push_str(&format!(
            "elapsed: {:.0}s\nusers: {}/{}\nrequests: {} ({} failures)\nnow: {:.1} req/s, {:.2} MB/s\n",
            s.elapsed_s, s.users_running, s.users_target, s.requests, s.failures, s.current_rps, s.current_mb_per_s
        ));
    }
    out.push_str(&format!(
        "workers: {} connected, {} missing\n",
        s.workers_connected, s.workers_missing
    ));
    for w in &s.workers {
        out.push_str(&format!(
            "  {} (#{}): {}, {} users\n",
            w.name, w.id, w.state, w.users
        ));
    }
    if let Some(r) = &s.reason {
        out.push_str(&format!("reason: {r}\n"));
    }
    out.trim_end().to_string()
}
