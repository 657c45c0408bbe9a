//! What the observability tests share: real `chopsticks coordinator` / `worker` daemons on
//! loopback against the real RadosGW, and a real headless Chromium driven through
//! chromedriver (WebDriver, via fantoccini).
//!
//! Every wait is a bounded poll that says what it waited for and what it last saw. Daemons and
//! chromedriver are killed when their owner is dropped, pass or fail.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use crate::common::{
    free_port, isolated_command, wait_for, wait_for_with, workload_yaml, TestBucket, STARTUP,
};
use chopsticks::control::{RunStarted, StartRequest, Status};
use chopsticks::s3_config::{Secret, WorkloadConfig};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cluster token of the test daemons.
pub const TOKEN: &str = "observability-test-token-0123456789abcdef";

/// A process of ours with its output in a file; killed when dropped.
pub struct Proc {
    pub name: String,
    pub child: tokio::process::Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, program: &str, args: &[String]) -> Proc {
        Proc::spawn_with(dir, name, isolated_command(program, dir), args)
    }

    /// [`Proc::spawn`] as the leader of a process group of its own, so that
    /// [`Proc::kill_group`] reaches the processes it starts too.
    pub fn spawn_group(dir: &Path, name: &str, program: &str, args: &[String]) -> Proc {
        let mut command = isolated_command(program, dir);
        command.process_group(0);
        Proc::spawn_with(dir, name, command, args)
    }

    /// SIGKILLs the process group the process leads (see [`Proc::spawn_group`]).
    pub fn kill_group(&self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn spawn_with(
        dir: &Path,
        name: &str,
        mut command: tokio::process::Command,
        args: &[String],
    ) -> Proc {
        let program = format!("{:?}", command.as_std().get_program());
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file");
        let child = command
            .args(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- {} (last lines)\n{}",
            self.name,
            lines[start..].join("\n")
        )
    }

    /// SIGTERM, then waits (bounded) for the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        }
    }
}

/// A coordinator daemon (optionally with a web UI) and its workers.
pub struct Daemons {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen_port: u16,
    pub control_port: u16,
    pub token_file: PathBuf,
    /// The test bucket with the main user's keys.
    pub workload: PathBuf,
    /// The same bucket with keys of a user that may not use it: every request is refused.
    pub denied_workload: PathBuf,
    pub coordinator: Option<Proc>,
    pub workers: BTreeMap<String, Proc>,
    pub http: reqwest::Client,
}

impl Daemons {
    /// Starts a coordinator for `bucket` in `dir`; `web_ui`: e.g. `127.0.0.1:PORT`.
    pub async fn start(bucket: &TestBucket, dir: &Path, web_ui: Option<&str>) -> Daemons {
        let state_dir = dir.join("state");
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
        let workload = bucket.write_workload(dir);
        let denied_workload = dir.join("s3_denied.yaml");
        let denied = WorkloadConfig {
            access_key: bucket.rgw.nobucket_access_key.clone(),
            secret_key: Secret::new(bucket.rgw.nobucket_secret_key.clone()),
            ..bucket.config.clone()
        };
        std::fs::write(&denied_workload, workload_yaml(&denied))
            .expect("write the denied workload config");
        let mut d = Daemons {
            dir: dir.to_path_buf(),
            state_dir,
            listen_port: free_port(),
            control_port: free_port(),
            token_file,
            workload,
            denied_workload,
            coordinator: None,
            workers: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        };
        let mut args = vec![
            "coordinator".to_string(),
            "--state-dir".into(),
            d.state_dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", d.listen_port),
            "--control".into(),
            format!("127.0.0.1:{}", d.control_port),
            "--token-file".into(),
            d.token_file.display().to_string(),
            "--workload-config".into(),
            d.workload.display().to_string(),
        ];
        if let Some(addr) = web_ui {
            args.push("--web-ui".into());
            args.push(addr.to_string());
        }
        d.coordinator = Some(Proc::spawn(
            dir,
            "coordinator",
            env!("CARGO_BIN_EXE_chopsticks"),
            &args,
        ));
        let url = d.control("/api/status");
        let http = d.http.clone();
        d.wait(
            "the coordinator's control API",
            STARTUP,
            async || match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            },
        )
        .await;
        d
    }

    pub fn control(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.control_port)
    }

    /// The coordinator's Prometheus exposition (`GET /metrics` on the control API).
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.control("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Starts worker `name`; `denied`: with keys the bucket refuses.
    pub fn start_worker(&mut self, name: &str, denied: bool) {
        let workload = if denied {
            &self.denied_workload
        } else {
            &self.workload
        };
        let args = vec![
            "worker".to_string(),
            "--coordinator".into(),
            format!("127.0.0.1:{}", self.listen_port),
            "--token-file".into(),
            self.token_file.display().to_string(),
            "--workload-config".into(),
            workload.display().to_string(),
            "--name".into(),
            name.to_string(),
        ];
        let p = Proc::spawn(
            &self.dir,
            &format!("worker-{name}"),
            env!("CARGO_BIN_EXE_chopsticks"),
            &args,
        );
        self.workers.insert(name.to_string(), p);
    }

    /// Every daemon's last log lines.
    pub fn logs(&self) -> String {
        self.coordinator
            .iter()
            .chain(self.workers.values())
            .map(Proc::tail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// [`wait_for`], with the daemons' logs in the panic message.
    pub async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        check: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        wait_for_with(what, limit, check, || format!("\n{}", self.logs())).await
    }

    pub async fn status(&self) -> Result<Status, String> {
        let r = self
            .http
            .get(self.control("/api/status"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        r.json::<Status>().await.map_err(|e| e.to_string())
    }

    /// Waits until workers named `names` are connected.
    pub async fn wait_workers(&self, names: &[&str]) -> Status {
        self.wait("the workers to connect", STARTUP, async || {
            let s = self.status().await?;
            let connected: Vec<&str> = s
                .workers
                .iter()
                .filter(|w| w.state == "connected")
                .map(|w| w.name.as_str())
                .collect();
            if names.iter().all(|n| connected.contains(n)) {
                Ok(s)
            } else {
                Err(format!("connected: {connected:?}"))
            }
        })
        .await
    }

    pub async fn start_run(&self, request: &StartRequest) -> RunStarted {
        let r = self
            .http
            .post(self.control("/api/runs"))
            .json(request)
            .send()
            .await
            .expect("POST /api/runs");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(
            status.as_u16(),
            201,
            "start refused: {body}\n{}",
            self.logs()
        );
        serde_json::from_str(&body).expect("RunStarted")
    }

    /// Waits until run `run_id` is in a state `done` accepts.
    pub async fn wait_state(
        &self,
        run_id: &str,
        limit: Duration,
        done: impl Fn(&Status) -> bool,
    ) -> Status {
        self.wait(
            &format!("run {run_id} to reach a state"),
            limit,
            async || {
                let s = self.status().await?;
                if s.run_id.as_deref() == Some(run_id) && done(&s) {
                    Ok(s)
                } else {
                    Err(format!(
                        "{:?} {} ({} requests)",
                        s.run_id, s.state, s.requests
                    ))
                }
            },
        )
        .await
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.state_dir.join(run_id)
    }

    /// SIGKILLs worker `name`.
    pub fn kill_worker(&mut self, name: &str) {
        if let Some(mut p) = self.workers.remove(name) {
            let _ = p.child.start_kill();
        }
    }

    /// Ends every daemon with SIGTERM; returns the coordinator's exit code.
    pub async fn stop(mut self) -> Option<i32> {
        for (_, w) in std::mem::take(&mut self.workers) {
            w.terminate().await;
        }
        match self.coordinator.take() {
            Some(c) => c.terminate().await,
            None => None,
        }
    }
}

/// The main user's start request for a scenario file in the test's dir.
pub fn start_request(scenario: &Path, users: u32) -> StartRequest {
    StartRequest {
        scenario: scenario.display().to_string(),
        scenario_yaml: None,
        users,
        spawn_rate: 100.0,
        duration: None,
        iterations: None,
        expected_workers: Some(1),
        wait_workers_s: Some(30.0),
        run_id: None,
        seed: None,
        stop_timeout_s: Some(10.0),
        rate: None,
        sweeping: Default::default(),
    }
}

/// Headless Chromium driven through chromedriver.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Proc,
    _profile: tempfile::TempDir,
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a fresh headless Chromium.
    pub async fn start(dir: &Path, width: u32, height: u32) -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).is_file(),
                "{program} is missing: these tests drive Debian's Chromium through chromedriver. \
                 Run them with tests/run.sh, which installs the chromium and chromium-driver packages \
                 (or: apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        // A group of its own: Chromium is chromedriver's child, and killing chromedriver
        // alone would leave it running (see `Drop for Browser`).
        let driver = Proc::spawn_group(
            dir,
            &format!("chromedriver-{port}"),
            CHROMEDRIVER,
            &[format!("--port={port}")],
        );
        let profile = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir()
            .expect("create a Chromium profile dir");
        let caps: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--disable-dev-shm-usage",
                        "--hide-scrollbars",
                        format!("--user-data-dir={}", profile.path().display()),
                        format!("--window-size={width},{height}"),
                    ]
                }
            }))
            .expect("capabilities");
        let url = format!("http://127.0.0.1:{port}");
        let client = wait_for(
            "chromedriver to open a Chromium session",
            STARTUP,
            async || {
                let mut builder = fantoccini::ClientBuilder::rustls().map_err(|e| e.to_string())?;
                builder
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await
                    .map_err(|e| format!("{e}\n{}", driver.tail()))
            },
        )
        .await;
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens a written report.html and waits until its script has rendered it
    /// (`document.body.dataset.rendered`).
    pub async fn open_report(&self, report: &Path) {
        self.client
            .goto(&format!("file://{}", report.display()))
            .await
            .expect("open report.html");
        wait_for(
            "the report to render",
            Duration::from_secs(30),
            async || match self
                .js("return document.body.dataset.rendered || null;")
                .await
            {
                serde_json::Value::String(s) => Ok(s),
                other => Err(format!("{other}")),
            },
        )
        .await;
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Grows the window to the whole page and takes a PNG screenshot into `path`; returns
    /// the decoded image's (width, height, distinct colours among sampled pixels).
    pub async fn screenshot_page(&self, path: &Path) -> (u32, u32, usize) {
        let height = self
            .js("return Math.ceil(document.documentElement.scrollHeight);")
            .await
            .as_u64()
            .unwrap_or(1200)
            .clamp(600, 8000) as u32;
        let width = self
            .js("return window.outerWidth;")
            .await
            .as_u64()
            .unwrap_or(1400) as u32;
        self.client
            .set_window_size(width, height + 120)
            .await
            .expect("resize the window");
        // Let charts follow the new size (they redraw on the next frames).
        self.js("return await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));")
            .await;
        let png = self.client.screenshot().await.expect("take a screenshot");
        std::fs::write(path, &png).expect("write the screenshot");
        if let Ok(dir) = std::env::var("CHOPSTICKS_KEEP_SCREENSHOTS") {
            if let Some(name) = path.file_name() {
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::copy(path, Path::new(&dir).join(name));
            }
        }
        decode_png(&png)
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Kills chromedriver and every Chromium process it started, closed or not, pass or fail.
    fn drop(&mut self) {
        self.driver.kill_group();
    }
}

/// Decodes a PNG; returns (width, height, distinct colours among up to 20,000 sampled pixels).
pub fn decode_png(bytes: &[u8]) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let size = reader.output_buffer_size().expect("a sane PNG size");
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).expect("decode the PNG");
    let px = info.color_type.samples();
    let pixels = (info.width * info.height) as usize;
    let step = (pixels / 20_000).max(1);
    let mut colours = std::collections::HashSet::new();
    for i in (0..pixels).step_by(step) {
        let at = i * px;
        if at + px <= info.buffer_size() {
            colours.insert(buf[at..at + px].to_vec());
        }
    }
    (info.width, info.height, colours.len())
}
