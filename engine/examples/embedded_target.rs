//! The embedded S3 target on its own, for benchmarks that give the server and the client
//! their own cores (bench/scheduling.py): `chopsticks run` starts the same target inside
//! its own process, where the two would share one core.
//!
//!     embedded_target CONFIG_PATH
//!
//! Writes a workload config for the target to CONFIG_PATH (mode 0600: it holds the target's
//! random keys), prints "ready" on stdout, and serves until its standard input closes.
//! Listens on 127.0.0.1 only.

use chopsticks::embedded_s3::EmbeddedTarget;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: embedded_target CONFIG_PATH")?;
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(EmbeddedTarget::start())?;
    let config = target.workload_config();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(
        file,
        "endpoint: {}\naccess_key: {}\nsecret_key: {}\nbucket: {}\nregion: {}",
        config.endpoint,
        config.access_key,
        config.secret_key.expose(),
        config.bucket,
        config.region
    )?;
    drop(file);
    println!("ready");
    std::io::stdout().flush()?;
    // Serve (on the runtime's threads) until the benchmark closes our standard input.
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    target.stop();
    Ok(())
}
