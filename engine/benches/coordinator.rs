//! How much a real coordinator pays to merge the stats of many workers.
//!
//! Starts the real `chopsticks coordinator` (the binary `cargo bench` builds in the bench
//! profile, or `--coordinator PATH`) and connects many *simulated* workers to it over real
//! WebSockets from this process. Each simulated worker speaks the real protocol (hello, then
//! answers start/assign/stop) and sends one `Stats` delta per second, at its own phase, with
//! one entry per task name holding realistic latency and TTFB HdrHistograms (log-normal
//! samples, encoded as real workers send them). The simulated workers never touch S3; the
//! coordinator only uses the RadosGW for its run's prepare and cleanup.
//!
//! From the repository root (the workspace's default package is the charm, hence `-p`):
//!
//! ```text
//! set -a; eval "$(tests/rgw/up.sh)"; set +a
//! cargo bench -p chopsticks --bench coordinator          # 500 workers x 20 tasks, 30 s
//! cargo bench -p chopsticks --bench coordinator -- --workers 50 --seconds 5
//! ```
//!
//! Flags: `--workers N` (500), `--tasks N` (20), `--seconds N` (30, the measuring window),
//! `--samples N` (requests per task per delta, 10), `--max-rss-mib N` (4096: the bench gives up
//! when the coordinator grows past this, to spare a shared machine), `--coordinator PATH`,
//! `--quick` (2 workers, 2 tasks, 2 samples, a 2 s window whatever the other flags say: a
//! smoke test of the bench, not a measurement; `engine/tests/bench_commands.rs` runs every
//! documented bench command this way).
//! Every 5 s of the window a progress line shows the coordinator's RSS, its CPU over those
//! 5 s, and how many deltas' worth of requests were sent but not yet merged (a backlog).
//! The coordinator dies with the bench (SIGKILL on drop, and `PR_SET_PDEATHSIG`); Ctrl-C
//! ends the bench cleanly.
//!
//! Measures, over the window (after every worker runs its users and sent a delta):
//! - deltas/s: `Stats` messages the simulated workers handed to their sockets per second
//!   (it drops below the worker count if the coordinator cannot keep up: sends would block);
//! - coordinator CPU: utime + stime from `/proc/<pid>/stat` over the window ÷ wall time
//!   (100 % = one core busy);
//! - coordinator RSS: `VmRSS` at the end of the window, the peak `VmHWM`, and how fast
//!   `VmRSS` grew over the window (MiB per minute; what a long run would add);
//! - merge latency: simulated worker 0 puts exactly one failed request in each of its deltas
//!   (every other delta has none), so `failures` in `GET /api/status` counts its merged
//!   deltas. The latency of one delta is the time from just before it is handed to its
//!   WebSocket to the first status answer whose failure count includes it: the WebSocket
//!   transfer, decoding in the hub, the wait in the coordinator's queue behind the other
//!   workers' deltas, the merge, and one status round trip (status is polled every 2 ms while
//!   a delta is outstanding, so the figure can be up to ~2 ms high);
//! - exactness: after the run is stopped, the merged request count must equal what the
//!   simulated workers sent.
//!
//! This process shares the machine with the coordinator; its own CPU share is printed too, and
//! so is the CPU everything else on the machine used during the window (from `/proc/stat`).

// The integration tests' bucket removal (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/shared/bucket.rs"]
mod bucket;

use anyhow::{anyhow, bail, Context, Result};
use chopsticks::cluster::protocol::{FromWorker, ToWorker, PROTOCOL_VERSION};
use chopsticks::control::{RunState, Status};
use chopsticks::load::driver::FailureKind;
use chopsticks::load::stats::{FailureCount, Hist, StatsDelta, TaskStats};
use chopsticks::s3_config::{DriverConfig, DriverKind, Secret, WorkloadConfig};
use futures::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use std::collections::VecDeque;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "coordinator-benchmark-token-0123456789";
/// Distinct pre-encoded deltas the simulated workers take turns sending.
const VARIANTS: usize = 32;
/// Bytes a simulated request moved.
const OBJECT_SIZE: u64 = 64 * 1024;
/// The task the merge-latency marker (one failed request) is recorded under.
const MARKER_TASK: usize = 0;
/// How often status is polled while a marker delta is outstanding.
const STATUS_POLL: Duration = Duration::from_millis(2);
/// Bound on every wait for the coordinator.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Args {
    workers: usize,
    tasks: usize,
    seconds: u64,
    samples: u64,
    max_rss_mib: f64,
    coordinator: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        workers: 500,
        tasks: 20,
        seconds: 30,
        samples: 10,
        max_rss_mib: 4096.0,
        coordinator: PathBuf::from(env!("CARGO_BIN_EXE_chopsticks")),
    };
    let mut quick = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            // `cargo bench` passes this to every bench binary.
            "--bench" => {}
            "--workers" => args.workers = value()?.parse().context("--workers")?,
            "--tasks" => args.tasks = value()?.parse().context("--tasks")?,
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--samples" => args.samples = value()?.parse().context("--samples")?,
            "--max-rss-mib" => args.max_rss_mib = value()?.parse().context("--max-rss-mib")?,
            "--coordinator" => args.coordinator = PathBuf::from(value()?),
            "--quick" => quick = true,
            other => bail!(
                "unknown argument {other}; flags: --workers N --tasks N --seconds N --samples N --max-rss-mib N --coordinator PATH --quick"
            ),
        }
    }
    if quick {
        args.workers = 2;
        args.tasks = 2;
        args.samples = 2;
        args.seconds = 2;
    }
    if args.workers == 0 || args.tasks == 0 || args.seconds == 0 || args.samples == 0 {
        bail!("--workers, --tasks, --seconds and --samples must be at least 1");
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = bench(args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; the coordinator was killed")),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------------------------ setup

/// The RadosGW the coordinator prepares and cleans up against.
fn target(bucket: &str) -> Result<WorkloadConfig> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "{name} is not set: the coordinator needs the project's RadosGW for prepare and \
                     cleanup. Run: set -a; eval \"$(tests/rgw/up.sh)\"; set +a"
                )
            })
    };
    Ok(WorkloadConfig {
        endpoint: var("S3_ENDPOINT")?,
        access_key: var("AWS_ACCESS_KEY_ID")?,
        secret_key: Secret::new(var("AWS_SECRET_ACCESS_KEY")?),
        bucket: bucket.to_string(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        driver: DriverKind::AwsSdk,
        driver_config: DriverConfig::default(),
        spread: Default::default(),
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Task names `task-00`…; puts and gets alternate so the summary has both kinds of rows.
fn task_names(tasks: usize) -> Vec<String> {
    (0..tasks).map(|i| format!("task-{i:02}")).collect()
}

fn scenario_yaml(tasks: usize) -> String {
    let mut yaml = format!(
        "name: bench_{tasks}_tasks\nusers:\n  - name: simulated\n    wait: {{constant: 1}}\n    tasks:\n"
    );
    for (i, name) in task_names(tasks).iter().enumerate() {
        if i % 2 == 0 {
            yaml.push_str(&format!("      - {{op: put, name: {name}, size: 64KiB}}\n"));
        } else {
            yaml.push_str(&format!("      - {{op: get, name: {name}, key: own}}\n"));
        }
    }
    yaml
}

/// The coordinator process; SIGKILLed if still running when dropped.
struct CoordinatorProcess {
    child: Child,
}

impl CoordinatorProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (the daemon's clean exit), then SIGKILL after `limit`.
    fn terminate(&mut self, limit: Duration) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pre-encoded `Stats` deltas: the JSON of a [`StatsDelta`] and the requests it holds.
struct Variant {
    json: String,
    requests: u64,
}

/// `VARIANTS` distinct deltas with `samples` requests per task: log-normal latencies around
/// 20 ms (TTFB a fraction of that for reads), the way a loaded worker reports a second.
fn variants(tasks: usize, samples: u64, marker: bool) -> Result<Vec<Variant>> {
    let mut rng = SmallRng::seed_from_u64(if marker { 7 } else { 42 });
    let latency_us = LogNormal::new((20_000f64).ln(), 0.6)?;
    let names = task_names(tasks);
    let mut out = Vec::with_capacity(VARIANTS);
    for _ in 0..VARIANTS {
        let mut delta = StatsDelta::default();
        for (i, name) in names.iter().enumerate() {
            let mut t = TaskStats {
                requests: samples,
                bytes: samples * OBJECT_SIZE,
                ..TaskStats::default()
            };
            let mut latency = Hist::new();
            let mut ttfb = Hist::new();
            for _ in 0..samples {
                let us = latency_us.sample(&mut rng).clamp(200.0, 5_000_000.0);
                latency.record(Duration::from_micros(us as u64));
                if i % 2 == 1 {
                    let frac: f64 = rng.random_range(0.2..0.6);
                    ttfb.record(Duration::from_micros((us * frac) as u64));
                }
            }
            t.latency = latency;
            t.ttfb = ttfb;
            if marker && i == MARKER_TASK {
                t.requests += 1;
                t.failures = 1;
                t.failure_latency.record(Duration::from_millis(5));
                let kind = FailureKind::Http {
                    status: 503,
                    code: "SlowDown".into(),
                };
                t.failures_by_kind.insert(
                    kind.to_string(),
                    FailureCount {
                        kind,
                        count: 1,
                        sample: "benchmark marker".into(),
                    },
                );
            }
            delta.tasks.insert(name.clone(), t);
        }
        out.push(Variant {
            requests: delta.requests(),
            json: serde_json::to_string(&delta)?,
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------------------ workers

/// What the simulated workers have handed to their sockets.
#[derive(Default)]
struct Sent {
    deltas: AtomicU64,
    requests: AtomicU64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, name: &str) -> Result<Ws> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let hello = FromWorker::Hello {
        protocol: PROTOCOL_VERSION,
        name: name.to_string(),
        engine_version: chopsticks::VERSION.to_string(),
    };
    ws.send(Message::Text(serde_json::to_string(&hello)?.into()))
        .await?;
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ToWorker>(&text)? {
            ToWorker::Welcome { .. } => Ok(ws),
            other => bail!("{name}: expected welcome, got {other:?}"),
        },
        other => bail!("{name}: no welcome ({other:?})"),
    }
}

/// A stats message carrying `delta_json` as second `seq - 1` of the run, complete through it.
fn stats_text(run_id: &str, seq: u64, users: u32, delta_json: &str) -> Result<String> {
    let second = seq.saturating_sub(1);
    Ok(format!(
        r#"{{"type":"stats","run_id":{},"seq":{seq},"users":{users},"done":false,"seconds":[{{"second":{second},"delta":{delta_json}}}],"complete_through":{seq},"died":[]}}"#,
        serde_json::to_string(run_id)?
    ))
}

/// One simulated worker: answers the coordinator and sends a delta every second.
/// The marker worker reports the send instant of each delta on `marks`.
async fn simulate(
    index: usize,
    mut ws: Ws,
    variants: Arc<Vec<Variant>>,
    sent: Arc<Sent>,
    marks: Option<mpsc::UnboundedSender<Instant>>,
    stop: CancellationToken,
) -> Result<()> {
    let phase = Duration::from_millis(rand::random_range(0..1000));
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut run: Option<String> = None;
    let mut seq = 0u64;
    let mut users = 0u32;
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                };
                match serde_json::from_str::<ToWorker>(&text)? {
                    ToWorker::Start { spec } => {
                        run = Some(spec.run_id);
                        seq = 0;
                        users = 0;
                    }
                    ToWorker::Assign { users: u, .. } => users = u.iter().sum(),
                    ToWorker::Stop { run_id, .. } => {
                        if run.as_deref() == Some(run_id.as_str()) {
                            seq += 1;
                            ws.send(Message::Text(stats_text(&run_id, seq, 0, r#"{"tasks":{}}"#)?.into())).await?;
                            let finished = FromWorker::Finished { run_id, last_seq: seq };
                            ws.send(Message::Text(serde_json::to_string(&finished)?.into())).await?;
                            run = None;
                            users = 0;
                        }
                    }
                    ToWorker::Refused { reason } => bail!("worker {index} refused: {reason}"),
                    ToWorker::Heartbeat | ToWorker::Welcome { .. } | ToWorker::CutRunRecorded { .. } => {}
                    ToWorker::Audit { .. } => bail!("worker {index} was asked for checks the bench scenario has none of"),
                }
            }
            _ = tick.tick() => {
                match &run {
                    Some(run_id) if users > 0 => {
                        seq += 1;
                        let v = &variants[(index + seq as usize) % variants.len()];
                        let text = stats_text(run_id, seq, users, &v.json)?;
                        if let Some(m) = &marks {
                            let _ = m.send(Instant::now());
                        }
                        ws.send(Message::Text(text.into())).await?;
                        sent.deltas.fetch_add(1, Ordering::Relaxed);
                        sent.requests.fetch_add(v.requests, Ordering::Relaxed);
                    }
                    Some(run_id) => {
                        seq += 1;
                        ws.send(Message::Text(stats_text(run_id, seq, 0, r#"{"tasks":{}}"#)?.into())).await?;
                    }
                    None => {
                        let hb = FromWorker::Heartbeat { users: 0 };
                        ws.send(Message::Text(serde_json::to_string(&hb)?.into())).await?;
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------ measuring

/// CPU time (utime + stime) of a process, in seconds.
fn cpu_seconds(pid: &str, ticks_per_s: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let utime: f64 = fields.get(11).ok_or_else(|| anyhow!("no utime"))?.parse()?;
    let stime: f64 = fields.get(12).ok_or_else(|| anyhow!("no stime"))?.parse()?;
    Ok((utime + stime) / ticks_per_s)
}

/// CPU time the whole machine spent busy (every state but idle and iowait), in seconds.
fn machine_busy_seconds(ticks_per_s: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let mut busy = 0.0;
    for (i, field) in line.split_whitespace().skip(1).take(8).enumerate() {
        // user nice system idle iowait irq softirq steal
        if i != 3 && i != 4 {
            busy += field.parse::<f64>()?;
        }
    }
    Ok(busy / ticks_per_s)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))?
            .parse::<f64>()
            .map_err(Into::into)
    };
    Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    async fn status(&self) -> Result<Status> {
        Ok(self
            .http
            .get(format!("{}/api/status", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Polls status until `done` holds (at most [`PATIENCE`]).
    async fn wait(&self, what: &str, done: impl Fn(&Status) -> bool) -> Result<Status> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(s) = self.status().await {
                if done(&s) {
                    return Ok(s);
                }
                if Instant::now() >= deadline {
                    bail!(
                        "timed out waiting for {what}; state {} with {} workers",
                        s.state,
                        s.workers_connected
                    );
                }
            } else if Instant::now() >= deadline {
                bail!("timed out waiting for {what}: the control API does not answer");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Measures each marker delta: from just before its send to the first status that counts it.
/// The k-th marker delta sim-0 sends is merged once status says `failures >= k`.
async fn measure_merges(
    control: Arc<Control>,
    mut marks: mpsc::UnboundedReceiver<Instant>,
    window: CancellationToken,
) -> Vec<Duration> {
    let opened = Instant::now();
    let mut latencies = Vec::new();
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut marked = 0u64;
    loop {
        if pending.is_empty() {
            tokio::select! {
                _ = window.cancelled() => return latencies,
                m = marks.recv() => match m {
                    Some(t) => {
                        marked += 1;
                        pending.push_back((marked, t));
                    }
                    None => return latencies,
                },
            }
        }
        while let Ok(t) = marks.try_recv() {
            marked += 1;
            pending.push_back((marked, t));
        }
        if window.is_cancelled() {
            return latencies;
        }
        if let Ok(s) = control.status().await {
            let answered = Instant::now();
            while let Some(&(k, sent_at)) = pending.front() {
                if k > s.failures {
                    break;
                }
                pending.pop_front();
                // Deltas sent before the window opened (warm-up) are not measured.
                if sent_at >= opened {
                    latencies.push(answered - sent_at);
                }
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(STATUS_POLL).await;
        }
    }
}

/// Sleeps through the window, printing progress every 5 s, and gives up if the coordinator
/// grows past `--max-rss-mib`.
async fn watch_window(
    args: &Args,
    control: &Control,
    sent: &Sent,
    pid: u32,
    ticks: f64,
    opened: Instant,
) -> Result<()> {
    const STEP: Duration = Duration::from_secs(5);
    let end = opened + Duration::from_secs(args.seconds);
    let per_delta = (args.tasks as u64 * args.samples) as f64;
    let pid_s = pid.to_string();
    let mut cpu = cpu_seconds(&pid_s, ticks)?;
    let mut at = Instant::now();
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        tokio::time::sleep(STEP.min(end - now)).await;
        let (rss, _) = rss_mib(pid)?;
        let (cpu_now, at_now) = (cpu_seconds(&pid_s, ticks)?, Instant::now());
        let share = (cpu_now - cpu) / (at_now - at).as_secs_f64() * 100.0;
        (cpu, at) = (cpu_now, at_now);
        let sent_requests = sent.requests.load(Ordering::Relaxed);
        let backlog = match tokio::time::timeout(STEP, control.status()).await {
            Ok(Ok(s)) => format!(
                "{:.0}",
                sent_requests.saturating_sub(s.requests) as f64 / per_delta
            ),
            _ => "? (status did not answer within 5 s)".into(),
        };
        eprintln!(
            "  {:>4.0}s  coordinator RSS {rss:>6.0} MiB  CPU {share:>5.1}%  sent but unmerged: {backlog} deltas",
            opened.elapsed().as_secs_f64()
        );
        if rss > args.max_rss_mib {
            bail!(
                "the coordinator's RSS reached {rss:.0} MiB (limit --max-rss-mib {:.0}); stopped to spare the machine",
                args.max_rss_mib
            );
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------------------ the bench

async fn bench(args: Args) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("chopsticks-bench-coordinator-")
        .tempdir()?;
    let dir = scratch.path();
    let bucket = format!("cs-bench-coordinator-{}", std::process::id());
    let config = target(&bucket)?;
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN)?;
    let workload_file = dir.join("s3_config.yaml");
    std::fs::write(
        &workload_file,
        format!(
            "endpoint: {}\naccess_key: {}\nsecret_key: {}\nbucket: {}\nregion: {}\n",
            config.endpoint,
            config.access_key,
            config.secret_key.expose(),
            config.bucket,
            config.region
        ),
    )?;
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, scenario_yaml(args.tasks))?;
    let (listen, control_port) = (free_port()?, free_port()?);

    eprintln!(
        "coordinator benchmark: {} simulated workers x {} tasks, {} samples per task per delta, {} s window",
        args.workers, args.tasks, args.samples, args.seconds
    );
    eprintln!("coordinator: {}", args.coordinator.display());
    let mut coordinator = spawn_coordinator(
        &args.coordinator,
        dir,
        listen,
        control_port,
        &token_file,
        &workload_file,
    )?;
    let control = Arc::new(Control {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: format!("http://127.0.0.1:{control_port}"),
    });
    control.wait("the control API", |_| true).await?;

    let result = drive(&args, &control, listen, coordinator.pid(), &scenario).await;
    coordinator.terminate(Duration::from_secs(15));
    if let Err(e) = bucket::remove_bucket(&config).await {
        eprintln!("note: could not remove bucket {bucket}: {e}");
    }
    if result.is_err() {
        let log = std::fs::read_to_string(dir.join("coordinator.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!("--- coordinator log (last 30 lines)");
        for l in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{l}");
        }
    }
    result
}

fn spawn_coordinator(
    binary: &Path,
    dir: &Path,
    listen: u16,
    control: u16,
    token: &Path,
    workload: &Path,
) -> Result<CoordinatorProcess> {
    let log = std::fs::File::create(dir.join("coordinator.log"))?;
    let mut command = Command::new(binary);
    // SAFETY: prctl is async-signal-safe; it asks the kernel to SIGKILL the coordinator when
    // this bench's main thread (which spawns it) ends, however it ends.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let child = command
        .arg("coordinator")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--control", &format!("127.0.0.1:{control}")])
        .arg("--token-file")
        .arg(token)
        .arg("--workload-config")
        .arg(workload)
        .env_remove("JOURNAL_STREAM")
        .env_remove("S3_ENDPOINT_URL")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(CoordinatorProcess { child })
}

async fn drive(
    args: &Args,
    control: &Arc<Control>,
    listen: u16,
    pid: u32,
    scenario: &Path,
) -> Result<()> {
    let url = format!("ws://127.0.0.1:{listen}/ws");
    let plain = Arc::new(variants(args.tasks, args.samples, false)?);
    let marked = Arc::new(variants(args.tasks, args.samples, true)?);
    let per_delta_bytes = plain.iter().map(|v| v.json.len()).sum::<usize>() / plain.len();

    // Connect everyone, a few dozen at a time.
    let connected = Instant::now();
    let sockets: Vec<Result<Ws>> = futures::stream::iter(0..args.workers)
        .map(|i| {
            let url = url.clone();
            async move { connect(&url, &format!("sim-{i:04}")).await }
        })
        .buffered(32)
        .collect()
        .await;
    let sent = Arc::new(Sent::default());
    let stop = CancellationToken::new();
    let (marks_tx, marks_rx) = mpsc::unbounded_channel();
    let mut sims = tokio::task::JoinSet::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let ws = ws.with_context(|| format!("connecting simulated worker {i}"))?;
        let (variants, marks) = if i == 0 {
            (Arc::clone(&marked), Some(marks_tx.clone()))
        } else {
            (Arc::clone(&plain), None)
        };
        sims.spawn(simulate(
            i,
            ws,
            variants,
            Arc::clone(&sent),
            marks,
            stop.clone(),
        ));
    }
    drop(marks_tx);
    let workers = args.workers as u32;
    control
        .wait("every simulated worker to be connected", |s| {
            s.workers_connected == workers
        })
        .await?;
    eprintln!(
        "{} workers connected in {:.1}s",
        args.workers,
        connected.elapsed().as_secs_f64()
    );

    let started = control
        .post(
            "/api/runs",
            serde_json::json!({
                "scenario": scenario.display().to_string(),
                "users": workers,
                "spawn_rate": 100_000.0,
                "expected_workers": workers,
                "stop_timeout_s": 0.0,
            }),
        )
        .await?;
    let run_id = started["run_id"].as_str().unwrap_or_default().to_string();
    control
        .wait("the run to be running", |s| s.state == RunState::Running)
        .await?;
    // Every worker has its user and has sent at least one full delta.
    let warm = sent.deltas.load(Ordering::Relaxed) + 2 * args.workers as u64;
    let deadline = Instant::now() + PATIENCE;
    while sent.deltas.load(Ordering::Relaxed) < warm {
        if Instant::now() >= deadline {
            bail!("the simulated workers did not get going");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The window.
    let ticks = clock_ticks();
    let pid_s = pid.to_string();
    let window = CancellationToken::new();
    let prober = tokio::spawn(measure_merges(
        Arc::clone(control),
        marks_rx,
        window.clone(),
    ));
    let (cpu0, me0) = (cpu_seconds(&pid_s, ticks)?, cpu_seconds("self", ticks)?);
    let machine0 = machine_busy_seconds(ticks)?;
    let (rss0, _) = rss_mib(pid)?;
    let (d0, t0) = (sent.deltas.load(Ordering::Relaxed), Instant::now());
    watch_window(args, control, &sent, pid, ticks, t0).await?;
    let (cpu1, me1) = (cpu_seconds(&pid_s, ticks)?, cpu_seconds("self", ticks)?);
    let machine1 = machine_busy_seconds(ticks)?;
    let (d1, wall) = (
        sent.deltas.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    let (rss, peak) = rss_mib(pid)?;
    window.cancel();
    let mut latencies = prober.await.unwrap_or_default();
    latencies.sort();

    // Stop, and check that every request sent was merged.
    control
        .post(
            "/api/runs/current/stop",
            serde_json::json!({"abort": false}),
        )
        .await?;
    let end = control
        .wait("the run to end", |s| {
            s.run_id.as_deref() == Some(run_id.as_str()) && s.state.is_terminal()
        })
        .await?;
    stop.cancel();
    while let Some(joined) = sims.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("note: a simulated worker ended with: {e:#}"),
            Err(e) => eprintln!("note: a simulated worker panicked: {e}"),
        }
    }
    let sent_requests = sent.requests.load(Ordering::Relaxed);

    let deltas_per_s = (d1 - d0) as f64 / wall;
    println!();
    println!(
        "coordinator benchmark ({} run {})",
        chopsticks::VERSION,
        run_id
    );
    println!(
        "{:>7} {:>5} {:>9} {:>9} {:>10} {:>8} {:>9} {:>12} {:>13} {:>13} {:>13} {:>8} {:>9}",
        "workers",
        "tasks",
        "delta KB",
        "deltas/s",
        "req/s",
        "coord",
        "RSS MiB",
        "RSS MiB/min",
        "merge p50 ms",
        "merge p90 ms",
        "merge max ms",
        "samples",
        "bench"
    );
    println!(
        "{:>7} {:>5} {:>9.1} {:>9.1} {:>10.0} {:>7.1}% {:>4.0}/{:<4.0} {:>+12.1} {:>13.1} {:>13.1} {:>13.1} {:>8} {:>8.1}%",
        args.workers,
        args.tasks,
        per_delta_bytes as f64 / 1024.0,
        deltas_per_s,
        deltas_per_s * (args.tasks as u64 * args.samples) as f64,
        (cpu1 - cpu0) / wall * 100.0,
        rss,
        peak,
        (rss - rss0) / wall * 60.0,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN),
        latencies.len(),
        (me1 - me0) / wall * 100.0,
    );
    println!(
        "coord = coordinator CPU (utime+stime over {wall:.1} s wall; 100% = one core of {}); RSS = now/peak, and its growth over the window;",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("merge = sim-0 delta sent -> counted in /api/status (polled every {} ms); bench = this process's CPU", STATUS_POLL.as_millis());
    // A coordinator starved of CPU by other work falls behind at a load it would carry on
    // an idle machine: say how busy the machine was.
    println!(
        "other work on the machine during the window: {:.2} cores (all busy CPU less the coordinator's and this process's)",
        ((machine1 - machine0) - (cpu1 - cpu0) - (me1 - me0)).max(0.0) / wall
    );
    println!(
        "exactness: run {} merged {} requests; the simulated workers sent {} ({})",
        end.state,
        end.requests,
        sent_requests,
        if end.requests == sent_requests {
            "equal"
        } else {
            "DIFFERENT"
        }
    );
    if end.requests != sent_requests {
        bail!(
            "the coordinator merged {} requests but {} were sent",
            end.requests,
            sent_requests
        );
    }
    Ok(())
}
