//! Post-run checks (`checks: [readback, listing]`, SFKO's checks): after the load and before
//! cleanup, what the cluster kept is compared with what the run knows it wrote.
//!
//! - `readback` GETs every object the run wrote and did not delete and verifies every byte
//!   against its content seed (a GET that 404s is `missing`, other bytes or another length is
//!   `mismatched`);
//! - `listing` lists the part's prefix and compares the keys with the same set (`missing`:
//!   expected and not listed; `unexpected`: listed, never written or deleted by the run).
//!
//! The audit is split by who wrote what: each worker audits the objects its own users wrote
//! (under `<run-prefix>w<id>/`), the coordinator the prefilled pool (`<run-prefix>shared/`).
//! Reports are plain counts and add up exactly ([`ChecksReport::merge`]). Keys whose fate the
//! run cannot know — a PUT, copy or DELETE that failed or was cut off by a stop — are
//! `uncertain`: never read back, and neither missing nor unexpected when listed or not.

use crate::load::content::{ContentSeed, Verifier};
use crate::load::driver::{Driver, OpError};
use crate::load::scenario::Check;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Keys a report names per kind of problem (the first ones found).
pub const FIRST_KEYS: usize = 10;
/// GETs in flight during one part's readback.
const READBACK_IN_FLIGHT: usize = 16;
/// Keys per listing page.
const PAGE_KEYS: u32 = 1000;
/// Listing pages beyond what the expected keys need before a listing is given up as endless.
const EXTRA_PAGES: usize = 10_000;

/// An object the run wrote and did not delete: every byte follows from its seed and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub key: String,
    pub seed: ContentSeed,
    pub size: u64,
}

/// One part of the run to audit: a worker's objects or the prefilled pool.
#[derive(Debug, Clone, Default)]
pub struct AuditSet {
    /// Every key of the part lives under this prefix; the listing covers exactly it.
    pub prefix: String,
    /// What must be there.
    pub objects: Vec<Expected>,
    /// Keys whose fate the run does not know (a write or delete that failed or was cut off).
    pub uncertain: HashSet<String>,
}

/// What `readback` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadbackReport {
    /// Objects read back (every object the run wrote and did not delete).
    pub objects: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Objects whose content or length is not what was written.
    pub mismatched: u64,
    /// Objects the gateway answered 404 for.
    pub missing: u64,
    /// GETs that failed otherwise (timeout, connection, 5xx): these objects are unverified.
    #[serde(default)]
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_mismatched: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_missing: Vec<String>,
    /// `key: error` of the first failed GETs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

/// What `listing` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingReport {
    /// Keys that must be listed.
    pub expected: u64,
    /// Keys the listing returned.
    pub listed: u64,
    /// Expected keys the listing did not return.
    pub missing: u64,
    /// Keys listed that the run never wrote, or deleted.
    pub unexpected: u64,
    /// Listings that failed before their end: their counts cover only the pages read.
    #[serde(default)]
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_missing: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_unexpected: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

/// The checks of a run (or of one part of it): summary.json's `checks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChecksReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readback: Option<ReadbackReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<ListingReport>,
    /// Parts whose audit never came (a worker lost before it reported): the sums miss them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// Wall-clock seconds the checks took (not part of the load's time or statistics).
    #[serde(default)]
    pub seconds: f64,
}

fn push_first(list: &mut Vec<String>, item: impl FnOnce() -> String) {
    if list.len() < FIRST_KEYS {
        list.push(item());
    }
}

fn extend_first(list: &mut Vec<String>, more: &[String]) {
    let room = FIRST_KEYS.saturating_sub(list.len());
    list.extend(more.iter().take(room).cloned());
}

impl ReadbackReport {
    pub fn merge(&mut self, o: &ReadbackReport) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.mismatched += o.mismatched;
        self.missing += o.missing;
        self.errors += o.errors;
        extend_first(&mut self.first_mismatched, &o.first_mismatched);
        extend_first(&mut self.first_missing, &o.first_missing);
        extend_first(&mut self.first_errors, &o.first_errors);
    }
}

impl ListingReport {
    pub fn merge(&mut self, o: &ListingReport) {
        self.expected += o.expected;
        self.listed += o.listed;
        self.missing += o.missing;
        self.unexpected += o.unexpected;
        self.errors += o.errors;
        extend_first(&mut self.first_missing, &o.first_missing);
        extend_first(&mut self.first_unexpected, &o.first_unexpected);
        extend_first(&mut self.first_errors, &o.first_errors);
    }
}

fn merge_opt<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>, merge: impl FnOnce(&mut T, &T)) {
    match (mine.as_mut(), theirs) {
        (Some(m), Some(t)) => merge(m, t),
        (None, Some(t)) => *mine = Some(t.clone()),
        _ => {}
    }
}

impl ChecksReport {
    /// An empty report for `checks`: each check asked for is present, with zero counts.
    pub fn empty(checks: &[Check]) -> ChecksReport {
        ChecksReport {
            readback: checks
                .contains(&Check::Readback)
                .then(ReadbackReport::default),
            listing: checks
                .contains(&Check::Listing)
                .then(ListingReport::default),
            ..ChecksReport::default()
        }
    }

    /// Adds another part's report: the counts sum, the first keys are kept up to [`FIRST_KEYS`].
    pub fn merge(&mut self, o: &ChecksReport) {
        merge_opt(&mut self.readback, &o.readback, ReadbackReport::merge);
        merge_opt(&mut self.listing, &o.listing, ListingReport::merge);
        self.incomplete.extend(o.incomplete.iter().cloned());
    }

    /// Why the checks fail the run, naming the first keys; `None` when everything matched.
    pub fn failure(&self) -> Option<String> {
        let mut parts = Vec::new();
        let first = |keys: &[String]| {
            if keys.is_empty() {
                String::new()
            } else {
                format!(" (first: {})", keys.join(", "))
            }
        };
        if let Some(r) = &self.readback {
            if r.mismatched > 0 {
                parts.push(format!(
                    "readback: {} of {} objects mismatched{}",
                    r.mismatched,
                    r.objects,
                    first(&r.first_mismatched)
                ));
            }
            if r.missing > 0 {
                parts.push(format!(
                    "readback: {} of {} objects missing{}",
                    r.missing,
                    r.objects,
                    first(&r.first_missing)
                ));
            }
            if r.errors > 0 {
                parts.push(format!(
                    "readback: {} GETs failed, those objects are unverified{}",
                    r.errors,
                    first(&r.first_errors)
                ));
            }
        }
        if let Some(l) = &self.listing {
            if l.missing > 0 {
                parts.push(format!(
                    "listing: {} of {} expected keys not listed{}",
                    l.missing,
                    l.expected,
                    first(&l.first_missing)
                ));
            }
            if l.unexpected > 0 {
                parts.push(format!(
                    "listing: {} unexpected keys listed{}",
                    l.unexpected,
                    first(&l.first_unexpected)
                ));
            }
            if l.errors > 0 {
                parts.push(format!(
                    "listing: {} listings failed before their end{}",
                    l.errors,
                    first(&l.first_errors)
                ));
            }
        }
        if !self.incomplete.is_empty() {
            parts.push(format!(
                "not audited (the counts miss them): {}",
                self.incomplete.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| format!("post-run checks failed: {}", parts.join("; ")))
    }

    /// One line for events.log and the terminal.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.readback {
            parts.push(format!(
                "readback {} objects, {} bytes, {} mismatched, {} missing, {} errors",
                r.objects, r.bytes, r.mismatched, r.missing, r.errors
            ));
        }
        if let Some(l) = &self.listing {
            parts.push(format!(
                "listing {} expected, {} listed, {} missing, {} unexpected, {} errors",
                l.expected, l.listed, l.missing, l.unexpected, l.errors
            ));
        }
        format!("checks ({:.1}s): {}", self.seconds, parts.join("; "))
    }
}

/// Runs `checks` on one part of the run.
pub async fn audit<D: Driver>(driver: &D, checks: &[Check], set: &AuditSet) -> ChecksReport {
    let started = std::time::Instant::now();
    let mut report = ChecksReport::empty(checks);
    if let Some(r) = report.readback.as_mut() {
        *r = readback(driver, &set.objects).await;
    }
    if let Some(l) = report.listing.as_mut() {
        *l = listing(driver, set).await;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// What one GET of the readback found.
enum Read {
    Good(u64),
    Mismatched(u64),
    Missing,
    Failed(OpError),
}

async fn read_one<D: Driver>(driver: &D, o: &Expected) -> Read {
    let mut verifier = Verifier::new(o.seed, 0, o.size);
    match driver.get(&o.key, None, o.size, &mut verifier).await {
        Ok(reply) => match verifier.finish() {
            Ok(()) => Read::Good(reply.bytes),
            Err(_) => Read::Mismatched(reply.bytes),
        },
        Err(e) if e.is_status(404) => Read::Missing,
        Err(e) => Read::Failed(e),
    }
}

async fn readback<D: Driver>(driver: &D, objects: &[Expected]) -> ReadbackReport {
    let mut r = ReadbackReport::default();
    // Plain async blocks in a FuturesUnordered, not `stream::map` with a closure: a closure
    // over borrowed objects makes the task un-spawnable ("FnOnce is not general enough").
    let mut reads = futures::stream::FuturesUnordered::new();
    let mut queue = objects.iter();
    loop {
        while reads.len() < READBACK_IN_FLIGHT {
            let Some(o) = queue.next() else { break };
            reads.push(async move { (o, read_one(driver, o).await) });
        }
        let Some((o, read)) = reads.next().await else {
            break;
        };
        r.objects += 1;
        match read {
            Read::Good(bytes) => r.bytes += bytes,
            Read::Mismatched(bytes) => {
                r.bytes += bytes;
                r.mismatched += 1;
                push_first(&mut r.first_mismatched, || o.key.clone());
            }
            Read::Missing => {
                r.missing += 1;
                push_first(&mut r.first_missing, || o.key.clone());
            }
            Read::Failed(e) => {
                r.errors += 1;
                push_first(&mut r.first_errors, || format!("{}: {e}", o.key));
            }
        }
    }
    // Named in key order, so a report reads the same whatever order the GETs completed in.
    r.first_mismatched.sort();
    r.first_missing.sort();
    r
}

async fn listing<D: Driver>(driver: &D, set: &AuditSet) -> ListingReport {
    let expected: HashSet<&str> = set.objects.iter().map(|o| o.key.as_str()).collect();
    let mut seen: HashSet<&str> = HashSet::with_capacity(expected.len());
    let mut l = ListingReport {
        expected: expected.len() as u64,
        ..ListingReport::default()
    };
    let max_pages = (expected.len() + set.uncertain.len()) / PAGE_KEYS as usize + EXTRA_PAGES;
    let mut next = None;
    let mut ended = false;
    for _ in 0..max_pages {
        let page = match driver.list(&set.prefix, PAGE_KEYS, next.take()).await {
            Ok(page) => page,
            Err(e) => {
                l.errors += 1;
                push_first(&mut l.first_errors, || format!("{}: {e}", set.prefix));
                break;
            }
        };
        for key in &page.keys {
            l.listed += 1;
            if let Some(k) = expected.get(key.as_str()) {
                seen.insert(k);
            } else if !set.uncertain.contains(key) {
                l.unexpected += 1;
                push_first(&mut l.first_unexpected, || key.clone());
            }
        }
        match page.next {
            Some(token) => next = Some(token),
            None => {
                ended = true;
                break;
            }
        }
    }
    if !ended && l.errors == 0 {
        l.errors += 1;
        push_first(&mut l.first_errors, || {
            format!(
                "{}: the listing did not end after {max_pages} pages",
                set.prefix
            )
        });
    }
    for o in &set.objects {
        if !seen.contains(o.key.as_str()) {
            l.missing += 1;
            push_first(&mut l.first_missing, || o.key.clone());
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_up_and_keep_the_first_keys() {
        let mut a = ChecksReport::empty(&[Check::Readback, Check::Listing]);
        let b = ChecksReport {
            readback: Some(ReadbackReport {
                objects: 3,
                bytes: 30,
                mismatched: 1,
                missing: 1,
                first_mismatched: vec!["m".into()],
                first_missing: vec!["x".into()],
                ..ReadbackReport::default()
            }),
            listing: Some(ListingReport {
                expected: 3,
                listed: 2,
                missing: 1,
                first_missing: vec!["x".into()],
                ..ListingReport::default()
            }),
            ..ChecksReport::default()
        };
        a.merge(&b);
        a.merge(&b);
        let r = a.readback.as_ref().unwrap();
        assert_eq!((r.objects, r.bytes, r.mismatched, r.missing), (6, 60, 2, 2));
        assert_eq!(r.first_missing, vec!["x", "x"]);
        let l = a.listing.as_ref().unwrap();
        assert_eq!(
            (l.expected, l.listed, l.missing, l.unexpected),
            (6, 4, 2, 0)
        );
        let why = a.failure().unwrap();
        assert!(
            why.contains("2 of 6 objects mismatched (first: m, m)"),
            "{why}"
        );
        assert!(why.contains("2 of 6 expected keys not listed"), "{why}");
    }

    #[test]
    fn a_clean_report_does_not_fail_and_only_asked_checks_appear() {
        let r = ChecksReport::empty(&[Check::Listing]);
        assert!(r.readback.is_none() && r.listing.is_some());
        assert_eq!(r.failure(), None);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("readback").is_none());
        assert_eq!(json["listing"]["unexpected"], 0);
    }

    #[test]
    fn first_keys_are_bounded() {
        let mut list = Vec::new();
        for i in 0..100 {
            push_first(&mut list, || i.to_string());
        }
        assert_eq!(list.len(), FIRST_KEYS);
        extend_first(&mut list, &["more".to_string()]);
        assert_eq!(list.len(), FIRST_KEYS);
    }
}
