//! The native floor for `bench/run.sh`: a bare aws-sdk-s3 loop.
//!
//! Stock SDK usage, nothing clever: one `Client` (one connection pool), N tokio tasks, each
//! looping over the workload's requests back to back until the duration is up. PUT bodies are
//! in memory (one `Bytes` per size, cloned by reference count), GET bodies are read chunk by
//! chunk and dropped. The client is configured like the engine's driver
//! (`engine/src/load/driver/aws.rs`): path-style addressing, SDK retries off, stalled-stream
//! protection off, checksums only when required.
//!
//! It writes a JSON report (per-op counts, bytes, p50/p99, and a once-a-second series of
//! cumulative requests and bytes with Unix timestamps) that `bench/bench.py` reads.
//!
//! `cleanup` deletes every object under a prefix (the harness runs it between contenders).
//!
//! `--client lean` swaps the SDK for the engine's own lean driver (see lean.rs): same
//! workloads, same report, so the two can be compared request for request, and the engine's
//! overhead on top of its request path shows against `chopsticks run`.

mod lean;

use anyhow::{bail, Context, Result};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(about = "Bare aws-sdk-s3 loop: the native floor for bench/run.sh")]
struct Cli {
    /// Bucket (created when missing).
    #[arg(long, default_value = "chopsticks-bench", global = true)]
    bucket: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload and write a JSON report.
    Run(RunArgs),
    /// Delete every object under a prefix.
    Cleanup {
        #[arg(long)]
        prefix: String,
    },
}

#[derive(Parser)]
struct RunArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    /// Concurrent tasks (the "users").
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Object size of the small workload, bytes.
    #[arg(long, default_value_t = 4096)]
    small_size: u64,
    /// Object size of the large workload, bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    large_size: u64,
    /// `memory`: the body is one in-memory `Bytes` (stock usage; the SDK then SHA-256-signs
    /// the payload). `stream`: the same bytes as a streamed body (signed UNSIGNED-PAYLOAD, as
    /// the engine's generated bodies are).
    #[arg(long, value_enum, default_value_t = BodyMode::Memory)]
    body: BodyMode,
    /// `sdk`: aws-sdk-s3 (the native floor). `lean`: the engine's lean driver (hyper + aws-sigv4).
    #[arg(long, value_enum, default_value_t = ClientKind::Sdk)]
    client: ClientKind,
    /// Key prefix of this run's objects.
    #[arg(long, default_value = "bench-native")]
    prefix: String,
    /// Where to write the JSON report.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// PUT one small object, then GET it.
    Small,
    /// PUT one large object, GET it, DELETE it.
    Large,
    /// put 40 / get 40 / list 10 / delete 10 at random, sizes 4KiB x6, 256KiB x3, 4MiB x1.
    Mixed,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    Sdk,
    Lean,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BodyMode {
    Memory,
    Stream,
}

/// The operations, indexing the per-op statistics.
#[derive(Clone, Copy)]
enum Op {
    Put = 0,
    Get = 1,
    Delete = 2,
    List = 3,
}

const OP_NAMES: [&str; 4] = ["put", "get", "delete", "list"];

/// Sizes of the mixed workload's PUTs and their weights.
const MIXED_SIZES: [(u64, u32); 3] = [(4 * 1024, 6), (256 * 1024, 3), (4 * 1024 * 1024, 1)];

/// Counters every task bumps, read once a second for the series.
#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    bytes: AtomicU64,
    failures: AtomicU64,
}

/// One task's own statistics, merged at the end.
#[derive(Default)]
struct Local {
    count: [u64; 4],
    failures: [u64; 4],
    bytes: [u64; 4],
    latency_us: [Vec<u32>; 4],
    first_error: Option<String>,
}

impl Local {
    fn record(&mut self, shared: &Shared, op: Op, started: Instant, result: Result<u64>) {
        let i = op as usize;
        let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        self.count[i] += 1;
        self.latency_us[i].push(us);
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(bytes) => {
                self.bytes[i] += bytes;
                shared.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => {
                self.failures[i] += 1;
                shared.failures.fetch_add(1, Ordering::Relaxed);
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{}: {e:#}", OP_NAMES[i]));
                }
            }
        }
    }

    fn merge(&mut self, other: Local) {
        for i in 0..4 {
            self.count[i] += other.count[i];
            self.failures[i] += other.failures[i];
            self.bytes[i] += other.bytes[i];
            self.latency_us[i].extend_from_slice(&other.latency_us[i]);
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

#[derive(Serialize)]
struct OpReport {
    requests: u64,
    failures: u64,
    bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct Report {
    tool: &'static str,
    workload: String,
    concurrency: usize,
    body: &'static str,
    duration_s: f64,
    ops: BTreeMap<&'static str, OpReport>,
    total: OpReport,
    first_error: Option<String>,
    /// `[unix time, cumulative requests, cumulative bytes]`, once a second.
    series: Vec<(f64, u64, u64)>,
}

fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn op_report(requests: u64, failures: u64, bytes: u64, latencies: &mut [u32]) -> OpReport {
    latencies.sort_unstable();
    OpReport {
        requests,
        failures,
        bytes,
        p50_ms: quantile_ms(latencies, 0.50),
        p99_ms: quantile_ms(latencies, 0.99),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A streamed body that hands out one shared buffer's bytes, `remaining` of them.
struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl http_body::Body for RepeatBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(this.chunk.len() as u64) as usize;
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(http_body::Frame::data(this.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The request bodies: one in-memory buffer per size, or a streamed view of a 1 MiB buffer.
struct Bodies {
    mode: BodyMode,
    buffers: BTreeMap<u64, Bytes>,
    chunk: Bytes,
}

impl Bodies {
    fn new(mode: BodyMode, sizes: &[u64]) -> Bodies {
        // Non-zero, non-repeating-looking bytes; their values do not matter to the server.
        let pattern = |len: usize| -> Bytes {
            (0..len)
                .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7])
                .collect::<Vec<u8>>()
                .into()
        };
        let buffers = match mode {
            BodyMode::Memory => sizes.iter().map(|&s| (s, pattern(s as usize))).collect(),
            BodyMode::Stream => BTreeMap::new(),
        };
        Bodies {
            mode,
            buffers,
            chunk: pattern(1024 * 1024),
        }
    }

    fn body(&self, size: u64) -> ByteStream {
        match (self.mode, self.buffers.get(&size)) {
            (BodyMode::Memory, Some(b)) => ByteStream::from(b.clone()),
            _ => {
                let chunk = self.chunk.clone();
                ByteStream::new(SdkBody::retryable(move || {
                    SdkBody::from_body_1_x(RepeatBody {
                        chunk: chunk.clone(),
                        remaining: size,
                    })
                }))
            }
        }
    }
}

/// Endpoint, access key, secret key and region from the environment.
struct Target {
    endpoint: String,
    access: String,
    secret: String,
    region: String,
}

fn target_from_env() -> Result<Target> {
    Ok(Target {
        endpoint: std::env::var("S3_ENDPOINT_URL")
            .or_else(|_| std::env::var("S3_ENDPOINT"))
            .context("S3_ENDPOINT_URL (or S3_ENDPOINT) is not set")?,
        access: std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?,
        secret: std::env::var("AWS_SECRET_ACCESS_KEY")
            .context("AWS_SECRET_ACCESS_KEY is not set")?,
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
    })
}

fn client_from_env() -> Result<Client> {
    let Target {
        endpoint,
        access,
        secret,
        region,
    } = target_from_env()?;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region))
        .credentials_provider(Credentials::new(access, secret, None, None, "bench-env"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Ok(Client::from_conf(config))
}

async fn ensure_bucket(client: &Client, bucket: &str) -> Result<()> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
            if text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists") {
                Ok(())
            } else {
                bail!("cannot create bucket {bucket}: {text}")
            }
        }
    }
}

/// One S3 call per function, each returning the payload bytes it moved.
struct Requests {
    client: Client,
    bucket: String,
    bodies: Arc<Bodies>,
    lean: Option<lean::Lean>,
}

impl Requests {
    async fn put(&self, key: &str, size: u64) -> Result<u64> {
        if let Some(lean) = &self.lean {
            return lean.put(key, size).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(size as i64)
            .body(self.bodies.body(size))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(size)
    }

    async fn get(&self, key: &str, size: u64) -> Result<u64> {
        if let Some(lean) = &self.lean {
            return lean.get(key, size).await;
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(sdk_error)?;
        let mut body = out.body;
        let mut n = 0u64;
        while let Some(chunk) = body.try_next().await.context("reading body")? {
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    async fn delete(&self, key: &str) -> Result<u64> {
        if let Some(lean) = &self.lean {
            return lean.delete(key).await;
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(0)
    }

    async fn list(&self, prefix: &str) -> Result<u64> {
        if let Some(lean) = &self.lean {
            return lean.list(prefix).await;
        }
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(100)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(0)
    }
}

/// An SDK error with its whole chain of causes (the SDK's own Display says only "service error").
fn sdk_error(e: impl std::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e))
}

/// xorshift64*: enough randomness for task and size choices, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % n.max(1)
    }
}

async fn user(
    id: usize,
    args: Arc<RunArgs>,
    requests: Arc<Requests>,
    shared: Arc<Shared>,
    deadline: Instant,
) -> Local {
    let mut local = Local::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 17));
    let prefix = format!("{}/t{id}/", args.prefix);
    let mut seq = 0u64;
    let mut own: Vec<(String, u64)> = Vec::new();
    while Instant::now() < deadline {
        let key = format!("{prefix}{seq}");
        seq += 1;
        match args.workload {
            Workload::Small => {
                let t = Instant::now();
                let r = requests.put(&key, args.small_size).await;
                local.record(&shared, Op::Put, t, r);
                let t = Instant::now();
                let r = requests.get(&key, args.small_size).await;
                local.record(&shared, Op::Get, t, r);
            }
            Workload::Large => {
                let t = Instant::now();
                let r = requests.put(&key, args.large_size).await;
                local.record(&shared, Op::Put, t, r);
                let t = Instant::now();
                let r = requests.get(&key, args.large_size).await;
                local.record(&shared, Op::Get, t, r);
                let t = Instant::now();
                let r = requests.delete(&key).await;
                local.record(&shared, Op::Delete, t, r);
            }
            Workload::Mixed => {
                let pick = rng.below(100);
                if pick < 40 {
                    let mut w = rng.below(10) as u32;
                    let mut size = MIXED_SIZES[0].0;
                    for (s, weight) in MIXED_SIZES {
                        if w < weight {
                            size = s;
                            break;
                        }
                        w -= weight;
                    }
                    let t = Instant::now();
                    let r = requests.put(&key, size).await;
                    let ok = r.is_ok();
                    local.record(&shared, Op::Put, t, r);
                    if ok {
                        own.push((key, size));
                    }
                } else if pick < 80 {
                    if own.is_empty() {
                        continue;
                    }
                    let i = rng.below(own.len() as u64) as usize;
                    let t = Instant::now();
                    let r = requests.get(&own[i].0, own[i].1).await;
                    local.record(&shared, Op::Get, t, r);
                } else if pick < 90 {
                    let t = Instant::now();
                    let r = requests.list(&prefix).await;
                    local.record(&shared, Op::List, t, r);
                } else {
                    if own.is_empty() {
                        continue;
                    }
                    let i = rng.below(own.len() as u64) as usize;
                    let (victim, _) = own.swap_remove(i);
                    let t = Instant::now();
                    let r = requests.delete(&victim).await;
                    local.record(&shared, Op::Delete, t, r);
                }
            }
        }
    }
    local
}

async fn run(bucket: String, args: RunArgs) -> Result<()> {
    let client = client_from_env()?;
    ensure_bucket(&client, &bucket).await?;
    let sizes: Vec<u64> = match args.workload {
        Workload::Small => vec![args.small_size],
        Workload::Large => vec![args.large_size],
        Workload::Mixed => MIXED_SIZES.iter().map(|(s, _)| *s).collect(),
    };
    let lean = match args.client {
        ClientKind::Sdk => None,
        ClientKind::Lean => {
            let t = target_from_env()?;
            if !t.endpoint.starts_with("http://") {
                bail!("--client lean speaks plain http:// only");
            }
            Some(lean::Lean::new(
                &t.endpoint,
                &t.access,
                &t.secret,
                &t.region,
                &bucket,
            )?)
        }
    };
    // The lean driver generates its bodies as it sends them (UNSIGNED-PAYLOAD, never hashed);
    // the SDK's buffers are not used then, so keep them small.
    let body_mode = if lean.is_some() {
        BodyMode::Stream
    } else {
        args.body
    };
    let requests = Arc::new(Requests {
        client,
        bucket,
        bodies: Arc::new(Bodies::new(body_mode, &sizes)),
        lean,
    });
    let args = Arc::new(args);
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let mut series = vec![(unix_now(), 0, 0)];
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..args.concurrency {
        tasks.spawn(user(
            id,
            Arc::clone(&args),
            Arc::clone(&requests),
            Arc::clone(&shared),
            deadline,
        ));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut total = Local::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                series.push((
                    unix_now(),
                    shared.requests.load(Ordering::Relaxed),
                    shared.bytes.load(Ordering::Relaxed),
                ));
            }
            joined = tasks.join_next() => match joined {
                Some(local) => total.merge(local.context("a load task panicked")?),
                None => break,
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    series.push((
        unix_now(),
        shared.requests.load(Ordering::Relaxed),
        shared.bytes.load(Ordering::Relaxed),
    ));
    let mut all = Vec::new();
    let mut ops = BTreeMap::new();
    for (i, name) in OP_NAMES.iter().enumerate() {
        if total.count[i] == 0 {
            continue;
        }
        all.extend_from_slice(&total.latency_us[i]);
        ops.insert(
            *name,
            op_report(
                total.count[i],
                total.failures[i],
                total.bytes[i],
                &mut total.latency_us[i],
            ),
        );
    }
    let report = Report {
        tool: match args.client {
            ClientKind::Sdk => "native",
            ClientKind::Lean => "native-lean",
        },
        workload: match args.workload {
            Workload::Small => "small",
            Workload::Large => "large",
            Workload::Mixed => "mixed",
        }
        .into(),
        concurrency: args.concurrency,
        body: match (args.client, args.body) {
            (ClientKind::Lean, _) => "generated",
            (ClientKind::Sdk, BodyMode::Memory) => "memory",
            (ClientKind::Sdk, BodyMode::Stream) => "stream",
        },
        duration_s: elapsed,
        total: op_report(
            total.count.iter().sum(),
            total.failures.iter().sum(),
            total.bytes.iter().sum(),
            &mut all,
        ),
        ops,
        first_error: total.first_error,
        series,
    };
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "native {}: {} requests ({} failed) in {elapsed:.1}s",
        report.workload, report.total.requests, report.total.failures
    );
    Ok(())
}

async fn cleanup(bucket: String, prefix: String) -> Result<()> {
    let client = client_from_env()?;
    let mut deleted = 0usize;
    loop {
        // Always list from the start: what was deleted is gone from the listing.
        let page = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .max_keys(1000)
            .send()
            .await
            .map_err(sdk_error)?;
        let keys: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        if keys.is_empty() {
            break;
        }
        deleted += keys.len();
        let delete = Delete::builder()
            .set_objects(Some(keys))
            .quiet(true)
            .build()?;
        client
            .delete_objects()
            .bucket(&bucket)
            .delete(delete)
            .send()
            .await
            .map_err(sdk_error)?;
    }
    eprintln!("cleanup: deleted {deleted} objects under {prefix}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(cli.bucket, args).await,
        Command::Cleanup { prefix } => cleanup(cli.bucket, prefix).await,
    }
}
