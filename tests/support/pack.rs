//! Builds the charm with the project's own `scripts/pack-charm.sh`, as an operator would, but
//! from the binaries of the test suite's own build (`--from-test-build`): an operator's
//! `cargo build` differs from it only in features the dev-dependencies switch on, and would
//! compile the engine and its largest dependencies a second time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Packs the charm into `<cargo target tmp>/<dir>/` and returns the `.charm` file's path.
pub fn pack_charm(dir: &str) -> PathBuf {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let status = Command::new(top.join("scripts/pack-charm.sh"))
        .arg("--from-test-build")
        .arg(&out)
        .current_dir(top)
        .stdout(Stdio::null())
        .status()
        .expect("running scripts/pack-charm.sh");
    assert!(status.success(), "scripts/pack-charm.sh failed");
    out.join("chopsticks_ubuntu@24.04-amd64.charm")
}
