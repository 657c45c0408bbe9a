//! What the integration tests share: the real Ceph RadosGW started by `tests/rgw/up.sh`, a
//! bucket of one's own per test, the real `chopsticks` binary, and its artifacts read back
//! through the library's own serde types.
//!
//! Every test that needs S3 gets its own bucket (named after the test and this process), so
//! the tests of a binary run in parallel and "the bucket is empty afterwards" can be checked
//! by listing the whole bucket. The bucket is emptied and deleted when the test ends, pass or
//! fail.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use chopsticks::load::driver::{AwsDriver, Driver};
use chopsticks::results::artifacts::{self, RunRecord};
use chopsticks::results::summary::{Summary, TaskSummary};
use chopsticks::s3_config::{DriverConfig, DriverKind, Secret, WorkloadConfig};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest any single `chopsticks` invocation may take before the test gives up on it.
pub const CLI_LIMIT: Duration = Duration::from_secs(180);
/// Pause between two looks at a condition.
pub const POLL: Duration = Duration::from_millis(100);
/// How long daemons (and a browser) get to come up and find each other.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The RadosGW the tests talk to, from the environment `tests/rgw/up.sh` prints.
#[derive(Debug, Clone)]
pub struct Rgw {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// A user that may not create buckets.
    pub nobucket_access_key: String,
    pub nobucket_secret_key: String,
}

/// The RadosGW settings; fails the test (never skips it) when they are missing.
pub fn rgw() -> Rgw {
    let var = |name: &str| -> String {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{name} is not set: this test needs the project's real Ceph RadosGW. \
                     Run the tests with tests/run.sh, which starts RGW (tests/rgw/up.sh) and \
                     exports S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
                     S3_NOBUCKET_ACCESS_KEY_ID and S3_NOBUCKET_SECRET_ACCESS_KEY"
                )
            })
    };
    Rgw {
        endpoint: var("S3_ENDPOINT"),
        access_key: var("AWS_ACCESS_KEY_ID"),
        secret_key: var("AWS_SECRET_ACCESS_KEY"),
        region: std::env::var("AWS_REGION")
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into()),
        nobucket_access_key: var("S3_NOBUCKET_ACCESS_KEY_ID"),
        nobucket_secret_key: var("S3_NOBUCKET_SECRET_ACCESS_KEY"),
    }
}

/// A valid S3 bucket name for `test`, unique to this process: `cs-every-operation-12345`.
pub fn bucket_name(test: &str) -> String {
    bucket_name_under("cs", test)
}

/// A valid S3 bucket name for `test` starting with `prefix`, unique to this process:
/// `cs-dist-exact-merge-12345` for `cs-dist`.
pub fn bucket_name_under(prefix: &str, test: &str) -> String {
    let pid = std::process::id().to_string();
    let mut stem: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    stem.truncate(63 - prefix.len() - "--".len() - pid.len());
    format!("{prefix}-{}-{pid}", stem.trim_matches('-'))
}

/// A connection to `bucket` on the test RGW with the main user's keys.
pub fn workload_config(rgw: &Rgw, bucket: &str) -> WorkloadConfig {
    WorkloadConfig {
        endpoint: rgw.endpoint.clone(),
        access_key: rgw.access_key.clone(),
        secret_key: Secret::new(rgw.secret_key.clone()),
        bucket: bucket.to_string(),
        region: rgw.region.clone(),
        driver: DriverKind::default(),
        driver_config: DriverConfig::default(),
        spread: Default::default(),
    }
}

/// The connection file (`--workload-config`, the seed's s3_config.yaml format) for a config.
pub fn workload_yaml(c: &WorkloadConfig) -> String {
    format!(
        "endpoint: {}\naccess_key: {}\nsecret_key: {}\nbucket: {}\nregion: {}\ndriver: {}\n",
        c.endpoint,
        c.access_key,
        c.secret_key.expose(),
        c.bucket,
        c.region,
        c.driver
    )
}

/// A test's own bucket, emptied and deleted when dropped.
pub struct TestBucket {
    pub rgw: Rgw,
    pub name: String,
    pub config: WorkloadConfig,
    pub driver: AwsDriver,
}

impl TestBucket {
    pub fn new(test: &str) -> TestBucket {
        let rgw = rgw();
        let name = bucket_name(test);
        let config = workload_config(&rgw, &name);
        let driver = AwsDriver::new(&config).expect("aws-sdk driver");
        TestBucket {
            rgw,
            name,
            config,
            driver,
        }
    }

    /// Writes the connection file for this bucket into `dir`.
    pub fn write_workload(&self, dir: &Path) -> PathBuf {
        let path = dir.join("s3_config.yaml");
        std::fs::write(&path, workload_yaml(&self.config)).expect("write workload config");
        path
    }

    /// Every key in the bucket (all pages).
    pub async fn keys(&self) -> Vec<String> {
        list_all(&self.driver, "").await
    }

    /// Every key under `prefix` (all pages).
    pub async fn keys_under(&self, prefix: &str) -> Vec<String> {
        list_all(&self.driver, prefix).await
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        remove_bucket_on_drop(&self.config);
    }
}

/// Lists every key under `prefix`, following continuation tokens.
pub async fn list_all<D: Driver>(driver: &D, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut next = None;
    for _ in 0..10_000 {
        let page = driver
            .list(prefix, 1000, next)
            .await
            .unwrap_or_else(|e| panic!("listing '{prefix}': {e}"));
        keys.extend(page.keys);
        match page.next {
            Some(token) => next = Some(token),
            None => return keys,
        }
    }
    panic!("listing '{prefix}' did not end after 10000 pages");
}

#[path = "../shared/bucket.rs"]
mod bucket;
pub use bucket::remove_bucket_on_drop;

/// A scratch directory for one test: scenario files, the connection file, run directories
/// and the binary's captured output.
pub fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chopsticks-test-")
        .tempdir()
        .expect("create a temp dir")
}

/// Writes a scenario file and returns its path.
pub fn write_scenario(dir: &Path, file: &str, yaml: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, yaml).expect("write scenario");
    path
}

/// How one `chopsticks` invocation ended.
#[derive(Debug)]
pub struct CliRun {
    /// The exit code, or -SIGNAL when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "chopsticks exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr contains every one of `needles`.
    pub fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr does not contain {n:?}\n--- stderr\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Fresh file names for one invocation's stdout and stderr.
fn output_paths(dir: &Path) -> (PathBuf, PathBuf) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (
        dir.join(format!("out-{n}.stdout")),
        dir.join(format!("out-{n}.stderr")),
    )
}

/// A running `chopsticks` process; output goes to files, so a chatty run never blocks on a
/// full pipe.
pub struct CliChild {
    pub child: tokio::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// `program` run in `dir` without the S3 settings of the test's environment (the variables
/// the binary would read are removed, so settings come only from what the test passes), with
/// no colour and no stdin; killed when dropped.
pub fn isolated_command(program: &str, dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .current_dir(dir)
        .env_remove("S3_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Starts the real binary with `args`. S3 settings come only from what the test passes: the
/// variables the binary would read from the environment are removed.
pub fn spawn_cli(dir: &Path, args: &[&str]) -> CliChild {
    spawn_cli_with_env(dir, args, &[])
}

/// [`spawn_cli`] with extra environment variables (e.g. a test-only hook).
pub fn spawn_cli_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CliChild {
    let (stdout, stderr) = output_paths(dir);
    let child = isolated_command(env!("CARGO_BIN_EXE_chopsticks"), dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(File::create(&stdout).expect("create stdout file"))
        .stderr(File::create(&stderr).expect("create stderr file"))
        .spawn()
        .expect("start chopsticks");
    CliChild {
        child,
        stdout,
        stderr,
    }
}

impl CliChild {
    pub fn pid(&self) -> i32 {
        self.child.id().expect("child has a pid") as i32
    }

    /// Waits for the process to end (at most [`CLI_LIMIT`]).
    pub async fn finish(mut self) -> CliRun {
        let status = match tokio::time::timeout(CLI_LIMIT, self.child.wait()).await {
            Ok(status) => status.expect("wait for chopsticks"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "chopsticks did not exit within {}s\n--- stderr\n{}",
                    CLI_LIMIT.as_secs(),
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
        };
        use std::os::unix::process::ExitStatusExt;
        CliRun {
            code: status
                .code()
                .unwrap_or_else(|| -status.signal().unwrap_or(0)),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

/// Runs the real binary to completion.
pub async fn cli(dir: &Path, args: &[&str]) -> CliRun {
    spawn_cli(dir, args).finish().await
}

/// A finished run: how the binary exited and the run's artifacts.
pub struct Finished {
    pub cli: CliRun,
    pub run_dir: PathBuf,
    pub summary: Summary,
    pub record: RunRecord,
}

impl Finished {
    /// The summary row of task `name`.
    pub fn task(&self, name: &str) -> &TaskSummary {
        self.summary
            .tasks
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no task '{name}' in summary.json (tasks: {:?})",
                    self.summary
                        .tasks
                        .iter()
                        .map(|t| &t.name)
                        .collect::<Vec<_>>()
                )
            })
    }
}

/// Runs `scenario_yaml` against the test's bucket with `args` (users, iterations, …) and
/// reads the artifacts back.
pub async fn run_scenario(
    bucket: &TestBucket,
    dir: &Path,
    scenario_yaml: &str,
    args: &[&str],
) -> Finished {
    let scenario = write_scenario(dir, "scenario.yaml", scenario_yaml);
    let workload = bucket.write_workload(dir);
    let run_dir = dir.join("runs").join("run");
    let mut all: Vec<&str> = vec![
        "run",
        "--workload-config",
        workload.to_str().expect("utf-8 path"),
        "-f",
        scenario.to_str().expect("utf-8 path"),
        "--run-dir",
        run_dir.to_str().expect("utf-8 path"),
        "-r",
        "100",
    ];
    all.extend_from_slice(args);
    let cli = cli(dir, &all).await;
    let summary = read_summary(&run_dir);
    let record = read_record(&run_dir);
    Finished {
        cli,
        run_dir,
        summary,
        record,
    }
}

pub fn read_summary(run_dir: &Path) -> Summary {
    let path = run_dir.join(artifacts::SUMMARY_JSON);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub fn read_record(run_dir: &Path) -> RunRecord {
    artifacts::read_record(run_dir).unwrap_or_else(|e| panic!("reading run.json: {e}"))
}

/// Polls `condition` every 50 ms, for at most `limit`; panics with `what` if it never holds.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {}s waiting until {what}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port on 127.0.0.1")
}

/// Polls `check` every [`POLL`] until it answers `Ok`, for at most `limit`. `Err` carries what
/// was seen, so a timeout says what `what` looked like last.
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    wait_for_with(what, limit, check, String::new).await
}

/// [`wait_for`], with `context()` (e.g. daemon logs) appended to the timeout's panic message.
pub async fn wait_for_with<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {:.1}s waiting for {what}; last seen: {last}{}",
            limit.as_secs_f64(),
            context()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Starts `chopsticks run` (headless, into `<dir>/runs/run`) on `bucket` through `endpoint` —
/// the bucket's own RadosGW, or a proxy in front of it — with `scenario_yaml`, extra `args` and
/// `env`; returns the child and the run directory.
pub fn spawn_run_through(
    bucket: &TestBucket,
    endpoint: &str,
    dir: &Path,
    scenario_yaml: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (CliChild, PathBuf) {
    let scenario = write_scenario(dir, "scenario.yaml", scenario_yaml);
    let mut config = bucket.config.clone();
    config.endpoint = endpoint.to_string();
    let workload = dir.join("s3_config.yaml");
    std::fs::write(&workload, workload_yaml(&config)).expect("write workload");
    let run_dir = dir.join("runs").join("run");
    let mut all: Vec<&str> = vec![
        "run",
        "--workload-config",
        workload.to_str().expect("utf-8 path"),
        "-f",
        scenario.to_str().expect("utf-8 path"),
        "--run-dir",
        run_dir.to_str().expect("utf-8 path"),
        "--headless",
    ];
    all.extend_from_slice(args);
    (spawn_cli_with_env(dir, &all, env), run_dir)
}
