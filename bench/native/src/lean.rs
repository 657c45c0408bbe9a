//! `--client lean`: the engine's own lean driver (`chopsticks::load::driver::LeanDriver`: hyper's
//! pooled HTTP/1 client, requests signed by `aws-sigv4` with UNSIGNED-PAYLOAD, bodies generated
//! as they are sent) called from this bare loop. Measured against `engine`, it shows what the
//! engine's users, scheduling and statistics cost on top of the request path itself.

use anyhow::{Context, Result};
use chopsticks::load::content::ContentSeed;
use chopsticks::load::driver::{Discard, Driver, LeanDriver};
use chopsticks::s3_config::{DriverConfig, DriverKind, Secret, WorkloadConfig};

pub struct Lean {
    driver: LeanDriver,
}

/// Any fixed seed: the bench never verifies bodies, it only needs them generated.
const SEED: ContentSeed = ContentSeed(0x5eed);

impl Lean {
    pub fn new(
        endpoint: &str,
        access: &str,
        secret: &str,
        region: &str,
        bucket: &str,
    ) -> Result<Lean> {
        let config = WorkloadConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            access_key: access.to_string(),
            secret_key: Secret::new(secret),
            bucket: bucket.to_string(),
            region: region.to_string(),
            driver: DriverKind::Lean,
            driver_config: DriverConfig::default(),
            spread: Default::default(),
        };
        let driver = LeanDriver::new(&config).context("lean driver")?;
        Ok(Lean { driver })
    }

    pub async fn put(&self, key: &str, size: u64) -> Result<u64> {
        self.driver.put(key, SEED, size).await?;
        Ok(size)
    }

    pub async fn get(&self, key: &str, expected_len: u64) -> Result<u64> {
        let reply = self
            .driver
            .get(key, None, expected_len, &mut Discard)
            .await?;
        Ok(reply.bytes)
    }

    pub async fn delete(&self, key: &str) -> Result<u64> {
        self.driver.delete(key).await?;
        Ok(0)
    }

    pub async fn list(&self, prefix: &str) -> Result<u64> {
        self.driver.list(prefix, 100, None).await?;
        Ok(0)
    }
}
