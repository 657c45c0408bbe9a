//! A Chopsticks cluster of real processes on loopback for the distributed tests: one
//! `chopsticks coordinator` and N `chopsticks worker` daemons, driven through `chopsticks ctl`
//! and the control API, talking to the real Ceph RadosGW started by `tests/rgw/up.sh`.
//!
//! Every cluster has its own scratch directory (state dir, worker dirs, logs), its own ports
//! (found by binding 127.0.0.1:0) and its own bucket. Dropping a [`Cluster`] SIGKILLs every
//! daemon and removes the bucket, pass or fail; on failure it also prints the tail of every
//! daemon's log and keeps the scratch directory for a post-mortem. Daemons additionally get
//! `PR_SET_PDEATHSIG`, so even a test runner killed outright leaves no orphans behind.
//!
//! Waiting is always a bounded poll ([`wait_for`]) that names what it waited for and what it
//! last saw when it gives up.

// Not every test uses every helper.
#![allow(dead_code)]

use crate::common::{
    bucket_name_under, free_port, list_all, remove_bucket_on_drop, rgw, wait_for, workload_config,
    workload_yaml, STARTUP,
};
use chopsticks::cluster::worker::WorkerTotals;
use chopsticks::control::client::ControlClient;
use chopsticks::control::token::Token;
use chopsticks::control::{RunStarted, Status};
use chopsticks::load::driver::AwsDriver;
use chopsticks::results::artifacts::{self, RunRecord};
use chopsticks::results::summary::Summary;
use chopsticks::s3_config::WorkloadConfig;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The cluster token every good daemon shares.
pub const TOKEN: &str = "distributed-test-token-0123456789abcdef";
/// Longest any `chopsticks ctl` call may take.
const CTL_LIMIT: Duration = Duration::from_secs(60);

/// A daemon process; SIGKILLed and reaped when dropped.
pub struct Daemon {
    pub name: String,
    child: Child,
    log: PathBuf,
    killed: bool,
}

impl Daemon {
    fn spawn(name: &str, args: &[String], log: &Path) -> Daemon {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open daemon log");
        let err = out.try_clone().expect("clone daemon log handle");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chopsticks"));
        command
            .args(args)
            // Settings come only from the files the test writes.
            .env_remove("S3_ENDPOINT_URL")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("JOURNAL_STREAM")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the daemon
        // when the test thread that spawned it goes away, so no daemon outlives its test.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().expect("start chopsticks");
        Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            killed: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn sigkill(&mut self) {
        if !self.killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.killed = true;
        }
    }

    /// Whether the process has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// How a cluster is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the control API binds: `127.0.0.1`, or `0.0.0.0` to require the token.
    pub control_host: &'static str,
    /// Workers started (and awaited) with the cluster: `w1`..`wN`.
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            control_host: "127.0.0.1",
            workers: 4,
        }
    }
}

/// How one `chopsticks ctl` call ended.
#[derive(Debug)]
pub struct CtlRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtlRun {
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "chopsticks ctl exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// One line of a run's `events.log`.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub at: chrono::DateTime<chrono::FixedOffset>,
    pub text: String,
}

/// A coordinator and its workers on loopback, with their own bucket and scratch directory.
pub struct Cluster {
    pub dir: PathBuf,
    scratch: Option<tempfile::TempDir>,
    pub listen_port: u16,
    pub control_port: u16,
    pub control_host: &'static str,
    pub token_file: PathBuf,
    pub workload_file: PathBuf,
    pub config: WorkloadConfig,
    pub coordinator: Option<Daemon>,
    pub workers: BTreeMap<String, Daemon>,
    /// A control client that always presents the token.
    pub client: ControlClient,
}

impl Cluster {
    /// A coordinator and `options.workers` workers, all connected.
    pub async fn start(test: &str, options: Options) -> Cluster {
        let rgw = rgw();
        let scratch = tempfile::Builder::new()
            .prefix(&format!("chopsticks-dist-{test}-"))
            .tempdir()
            .expect("create a scratch dir");
        let dir = scratch.path().to_path_buf();
        // A bucket name of its own: `cs-dist-exact-merge-12345`.
        let config = workload_config(&rgw, &bucket_name_under("cs-dist", test));
        let workload_file = dir.join("s3_config.yaml");
        std::fs::write(&workload_file, workload_yaml(&config)).expect("write workload config");
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
        let control_port = free_port();
        let mut cluster = Cluster {
            scratch: Some(scratch),
            listen_port: free_port(),
            control_port,
            control_host: options.control_host,
            token_file,
            workload_file,
            config,
            coordinator: None,
            workers: BTreeMap::new(),
            client: ControlClient::new(
                &format!("http://127.0.0.1:{control_port}"),
                Some(Token::new(TOKEN)),
            ),
            dir,
        };
        cluster.start_coordinator().await;
        let names: Vec<String> = (1..=options.workers).map(|i| format!("w{i}")).collect();
        for name in &names {
            cluster.start_worker(name);
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        cluster.wait_workers(&names).await;
        cluster
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }

    pub fn worker_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.listen_port)
    }

    /// Starts (or restarts) the coordinator on the cluster's ports and state dir, and waits
    /// until its control API answers.
    pub async fn start_coordinator(&mut self) {
        let args = vec![
            "coordinator".to_string(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.listen_port),
            "--control".into(),
            format!("{}:{}", self.control_host, self.control_port),
            "--token-file".into(),
            self.token_file.display().to_string(),
            "--workload-config".into(),
            self.workload_file.display().to_string(),
        ];
        self.coordinator = Some(Daemon::spawn(
            "coordinator",
            &args,
            &self.dir.join("coordinator.log"),
        ));
        let log = self.dir.join("coordinator.log");
        wait_for("the coordinator's control API", STARTUP, async || {
            if let Some(status) = self.coordinator.as_mut().and_then(Daemon::exited) {
                panic!(
                    "the coordinator exited ({status}) while starting:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            self.client.status().await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// The coordinator's log (all of its incarnations).
    pub fn coordinator_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("coordinator.log")).unwrap_or_default()
    }

    /// Where worker `name` writes its own per-run totals.
    pub fn worker_dir(&self, name: &str) -> PathBuf {
        self.dir.join("workers").join(name)
    }

    /// Starts worker `name` with the cluster's token.
    pub fn start_worker(&mut self, name: &str) {
        let token = self.token_file.clone();
        self.start_worker_with_token(name, &token);
    }

    /// Starts worker `name` with the token in `token_file`; does not wait for it.
    pub fn start_worker_with_token(&mut self, name: &str, token_file: &Path) {
        let args = vec![
            "worker".to_string(),
            "--coordinator".into(),
            format!("127.0.0.1:{}", self.listen_port),
            "--token-file".into(),
            token_file.display().to_string(),
            "--workload-config".into(),
            self.workload_file.display().to_string(),
            "--name".into(),
            name.to_string(),
            "--state-dir".into(),
            self.worker_dir(name).display().to_string(),
        ];
        let log = self.dir.join(format!("worker-{name}.log"));
        self.workers
            .insert(name.to_string(), Daemon::spawn(name, &args, &log));
    }

    pub fn worker(&mut self, name: &str) -> &mut Daemon {
        self.workers
            .get_mut(name)
            .unwrap_or_else(|| panic!("no worker {name} in this cluster"))
    }

    pub async fn status(&self) -> Status {
        self.client
            .status()
            .await
            .unwrap_or_else(|e| panic!("GET /api/status: {e}"))
    }

    /// Waits until exactly the workers `names` are connected (none missing) and returns that
    /// status.
    pub async fn wait_workers(&self, names: &[&str]) -> Status {
        let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        want.sort();
        wait_for(
            &format!("workers {want:?} to be connected"),
            STARTUP,
            async || {
                let s = self.client.status().await.map_err(|e| e.to_string())?;
                let mut have: Vec<String> = s
                    .workers
                    .iter()
                    .filter(|w| w.state == "connected")
                    .map(|w| w.name.clone())
                    .collect();
                have.sort();
                if have == want
                    && s.workers_connected as usize == want.len()
                    && s.workers_missing == 0
                {
                    Ok(s)
                } else {
                    Err(format!("{:?}", s.workers))
                }
            },
        )
        .await
    }

    /// Writes a scenario file into the scratch dir; returns its absolute path.
    pub fn scenario(&self, file: &str, yaml: &str) -> String {
        let path = self.dir.join(file);
        std::fs::write(&path, yaml).expect("write scenario");
        path.display().to_string()
    }

    /// `chopsticks ctl --control URL --token-file T ARGS`.
    pub async fn ctl(&self, args: &[&str]) -> CtlRun {
        let token = self.token_file.display().to_string();
        let mut all = vec!["--token-file", token.as_str()];
        all.extend_from_slice(args);
        self.ctl_without_token(&all).await
    }

    /// `chopsticks ctl --control URL ARGS` (no token unless `args` has one).
    pub async fn ctl_without_token(&self, args: &[&str]) -> CtlRun {
        let url = self.control_url();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chopsticks"))
            .arg("ctl")
            .args(["--control", url.as_str()])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(CTL_LIMIT, child)
            .await
            .unwrap_or_else(|_| panic!("chopsticks ctl {args:?} did not end within {CTL_LIMIT:?}"))
            .expect("run chopsticks ctl");
        use std::os::unix::process::ExitStatusExt;
        CtlRun {
            code: out
                .status
                .code()
                .unwrap_or_else(|| -out.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `ctl --json start ARGS`, which must succeed.
    pub async fn start_run(&self, args: &[&str]) -> RunStarted {
        let mut all = vec!["--json", "start"];
        all.extend_from_slice(args);
        let run = self.ctl(&all).await;
        run.expect_code(0);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("ctl start printed no RunStarted ({e}): {}", run.stdout))
    }

    /// Waits until run `run_id` has ended (any terminal state) and returns that status.
    pub async fn wait_ended(&self, run_id: &str, limit: Duration) -> Status {
        wait_for(&format!("run {run_id} to end"), limit, async || {
            let s = self.client.status().await.map_err(|e| e.to_string())?;
            if s.run_id.as_deref() == Some(run_id) && s.state.is_terminal() {
                Ok(s)
            } else {
                Err(format!(
                    "run {:?} {} ({} requests, {} users)",
                    s.run_id, s.state, s.requests, s.users_running
                ))
            }
        })
        .await
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.state_dir().join(run_id)
    }

    /// `run.json` of a run.
    pub fn record(&self, run_id: &str) -> RunRecord {
        artifacts::read_record(&self.run_dir(run_id)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `summary.json` of a run.
    pub fn summary(&self, run_id: &str) -> Summary {
        let p = self.run_dir(run_id).join(artifacts::SUMMARY_JSON);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The lines of a run's `events.log`.
    pub fn events(&self, run_id: &str) -> Vec<EventLine> {
        let p = self.run_dir(run_id).join(artifacts::EVENTS_LOG);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .lines()
            .map(|line| {
                let (at, text) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("events.log line without a timestamp: {line}"));
                EventLine {
                    at: chrono::DateTime::parse_from_rfc3339(at)
                        .unwrap_or_else(|e| panic!("events.log timestamp {at}: {e}")),
                    text: text.to_string(),
                }
            })
            .collect()
    }

    /// What worker `name` says it executed in run `run_id` (its `<run-id>.worker-<id>.json`).
    pub async fn worker_totals(&self, name: &str, run_id: &str) -> WorkerTotals {
        let dir = self.worker_dir(name);
        let prefix = format!("{run_id}.worker-");
        wait_for(
            &format!("worker {name}'s totals for run {run_id}"),
            Duration::from_secs(10),
            async || {
                let files: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
                    })
                    .collect();
                match files.as_slice() {
                    [one] => {
                        let text = std::fs::read_to_string(one)
                            .map_err(|e| format!("{}: {e}", one.display()))?;
                        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", one.display()))
                    }
                    other => Err(format!("files {other:?}")),
                }
            },
        )
        .await
    }

    /// A driver on the cluster's bucket, for looking at what runs left behind.
    pub fn driver(&self) -> AwsDriver {
        AwsDriver::new(&self.config).expect("aws-sdk driver")
    }

    /// Every key under `prefix` in the cluster's bucket (all pages).
    pub async fn keys_under(&self, prefix: &str) -> Vec<String> {
        list_all(&self.driver(), prefix).await
    }

    /// The last lines of every daemon's log, for a failure report.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        let mut logs = vec![("coordinator".to_string(), self.coordinator_log())];
        logs.extend(self.workers.values().map(|d| (d.name.clone(), d.log())));
        for (name, log) in logs {
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            out.push_str(&format!("--- {name} (last {} lines)\n", tail.len()));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in self.workers.values_mut() {
            w.sigkill();
        }
        if let Some(c) = self.coordinator.as_mut() {
            c.sigkill();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails());
            if let Some(scratch) = self.scratch.take() {
                eprintln!("kept the test's files in {}", scratch.keep().display());
            }
        }
        remove_bucket_on_drop(&self.config);
    }
}
