//! Several gateways and buckets behind one driver (issue 14): which gateway and bucket each
//! request goes to, and how many requests each gateway has in flight.

use super::{AnyDriver, DriverError};
use crate::s3_config::{EndpointPolicy, WorkloadConfig};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where one request goes: the driver of its gateway and bucket, and the gateway's index.
/// While it lives the request counts as in flight on that gateway.
pub struct Route<'a, D> {
    pub driver: &'a D,
    /// The gateway's index in the connection file's order; `None` with a single gateway.
    pub endpoint: Option<usize>,
    /// The bucket's index in the connection file's order; `None` with a single bucket.
    pub bucket: Option<usize>,
    /// The in-flight counter this route raised, lowered again when the route is dropped.
    in_flight: Option<&'a AtomicU64>,
}

impl<'a, D> Route<'a, D> {
    /// The only gateway and bucket there is.
    pub fn direct(driver: &'a D) -> Route<'a, D> {
        Route {
            driver,
            endpoint: None,
            bucket: None,
            in_flight: None,
        }
    }

    /// Where the request goes, as the statistics count it.
    pub fn via(&self) -> crate::load::stats::Via {
        crate::load::stats::Via {
            endpoint: self.endpoint.and_then(|e| u8::try_from(e).ok()),
            bucket: self.bucket.and_then(|b| u8::try_from(b).ok()),
        }
    }
}

impl<D> Drop for Route<'_, D> {
    fn drop(&mut self) {
        if let Some(n) = self.in_flight {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One driver per gateway and bucket, and the policy that picks among them.
pub struct Fleet {
    /// `drivers[e * buckets.len() + b]` talks to gateway `e` about bucket `b`; the drivers of
    /// one gateway share its connection pool.
    drivers: Vec<AnyDriver>,
    /// Gateway URLs, in the connection file's order (ranges expanded).
    endpoints: Vec<String>,
    /// Bucket names, in order; user slot `s` works in bucket `s % len`.
    buckets: Vec<String>,
    /// How a request's gateway is chosen.
    policy: EndpointPolicy,
    /// Requests routed so far under `request`: the next goes to gateway `next % len`.
    next: AtomicU64,
    /// Requests in flight per gateway from this process, raised and lowered by [`Route`].
    in_flight: Vec<AtomicU64>,
}

impl Fleet {
    /// A driver for every gateway and bucket of `config`, each gateway with one client.
    pub(super) fn new(config: &WorkloadConfig) -> Result<Fleet, DriverError> {
        let endpoints = config.endpoints();
        let buckets = config.buckets();
        let mut drivers = Vec::with_capacity(endpoints.len() * buckets.len());
        for endpoint in &endpoints {
            let first = AnyDriver::single(&config.single(endpoint, &buckets[0]))?;
            let others: Vec<AnyDriver> = buckets[1..]
                .iter()
                .map(|b| match first.with_bucket(b) {
                    Some(d) => Ok(d),
                    None => AnyDriver::single(&config.single(endpoint, b)),
                })
                .collect::<Result<_, _>>()?;
            drivers.push(first);
            drivers.extend(others);
        }
        Ok(Fleet {
            drivers,
            in_flight: endpoints.iter().map(|_| AtomicU64::new(0)).collect(),
            endpoints,
            buckets,
            policy: config.spread.endpoint_policy.unwrap_or_default(),
            next: AtomicU64::new(0),
        })
    }

    /// Gateway 0, bucket 0: what operations outside a user's requests use.
    pub(super) fn primary(&self) -> &AnyDriver {
        &self.drivers[0]
    }

    pub(super) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub(super) fn buckets(&self) -> &[String] {
        &self.buckets
    }

    /// Gateway 0's driver for each bucket, in order, with the bucket's name.
    pub(super) fn per_bucket(&self) -> Vec<(&str, &AnyDriver)> {
        self.buckets
            .iter()
            .map(String::as_str)
            .zip(&self.drivers[..self.buckets.len()])
            .collect()
    }

    /// The route of a request of user slot `slot`.
    pub(super) fn route(&self, slot: u64) -> Route<'_, AnyDriver> {
        let n = self.endpoints.len() as u64;
        let endpoint = match self.policy {
            EndpointPolicy::User => (slot % n) as usize,
            EndpointPolicy::Request => (self.next.fetch_add(1, Ordering::Relaxed) % n) as usize,
            EndpointPolicy::LeastInFlight => least_loaded(&self.in_flight, (slot % n) as usize),
        };
        let bucket = (slot % self.buckets.len() as u64) as usize;
        let counter = &self.in_flight[endpoint];
        counter.fetch_add(1, Ordering::Relaxed);
        Route {
            driver: &self.drivers[endpoint * self.buckets.len() + bucket],
            endpoint: (n > 1).then_some(endpoint),
            bucket: (self.buckets.len() > 1).then_some(bucket),
            in_flight: Some(counter),
        }
    }
}

/// The index of the smallest counter; ties go to the first at or after `start` (so users
/// spread over idle gateways instead of all picking the first).
fn least_loaded(counters: &[AtomicU64], start: usize) -> usize {
    let n = counters.len();
    (0..n)
        .map(|i| (start + i) % n)
        .min_by_key(|&i| counters[i].load(Ordering::Relaxed))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3_config::{DriverKind, Spread};

    fn fleet(endpoints: usize, buckets: usize, policy: EndpointPolicy) -> Fleet {
        let mut config = crate::load::driver::tests::unused_target(DriverKind::Lean);
        config.spread = Spread {
            endpoints: (0..endpoints)
                .map(|i| format!("http://127.0.0.{}:9", i + 1))
                .collect(),
            endpoint_policy: Some(policy),
            buckets: (0..buckets).map(|i| format!("bucket-{i}")).collect(),
        };
        config.endpoint = config.spread.endpoints[0].clone();
        config.bucket = config.spread.buckets[0].clone();
        Fleet::new(&config).unwrap()
    }

    #[test]
    fn user_policy_pins_slots_round_robin_over_gateways_and_buckets() {
        let f = fleet(3, 2, EndpointPolicy::User);
        assert_eq!(f.drivers.len(), 6);
        let mut per_endpoint = [0u32; 3];
        for slot in 0..10u64 {
            let r = f.route(slot);
            assert_eq!(r.endpoint, Some((slot % 3) as usize));
            per_endpoint[r.endpoint.unwrap()] += 1;
            let expected = &f.drivers[(slot % 3) as usize * 2 + (slot % 2) as usize];
            assert!(std::ptr::eq(r.driver, expected), "slot {slot}");
        }
        assert_eq!(per_endpoint, [4, 3, 3]);
        let names: Vec<&str> = f.per_bucket().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["bucket-0", "bucket-1"]);
        assert!(f.in_flight.iter().all(|n| n.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn request_policy_rotates_and_least_in_flight_avoids_a_busy_gateway() {
        let f = fleet(2, 1, EndpointPolicy::Request);
        let picks: Vec<_> = (0..4).map(|_| f.route(7).endpoint.unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        let f = fleet(3, 1, EndpointPolicy::LeastInFlight);
        let held = f.route(0);
        assert_eq!(held.endpoint, Some(0));
        let second = f.route(0);
        assert_eq!(second.endpoint, Some(1));
        let third = f.route(0);
        assert_eq!(third.endpoint, Some(2));
        drop(second);
        assert_eq!(f.route(0).endpoint, Some(1));
        drop((held, third));
        assert!(f.in_flight.iter().all(|n| n.load(Ordering::Relaxed) == 0));
    }
}
