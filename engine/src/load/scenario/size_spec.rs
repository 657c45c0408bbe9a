//! Object size distributions: fixed, uniform, lognormal, weighted buckets.
//!
//! In YAML a size is either a plain size (`64KiB`), a bucket list in one string
//! (`4KiB x8, 1MiB` — weights default to 1), or a map: `{uniform: [1KiB, 100KiB]}`,
//! `{lognormal: {median: 64KiB, max: 10MiB, sigma: 1.0}}`, `{buckets: [{size: 4KiB, weight: 8}]}`.

use crate::size::ByteSize;
use rand::Rng;
use rand_distr::Distribution;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A size distribution as written in a scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeSpec {
    Fixed(ByteSize),
    Uniform {
        min: ByteSize,
        max: ByteSize,
    },
    LogNormal {
        median: ByteSize,
        max: ByteSize,
        min: ByteSize,
        sigma: f64,
    },
    Buckets(Vec<Bucket>),
}

/// One size of a weighted-bucket distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub size: ByteSize,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

const DEFAULT_SIGMA: f64 = 1.0;

impl SizeSpec {
    /// Problems with the distribution, each as (message, how to fix it).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            SizeSpec::Fixed(_) => {}
            SizeSpec::Uniform { min, max } => {
                if max < min {
                    out.push((
                        format!("uniform max ({max}) is below min ({min})"),
                        "write the smaller size first: {uniform: [MIN, MAX]}".into(),
                    ));
                }
            }
            SizeSpec::LogNormal {
                median,
                max,
                min,
                sigma,
            } => {
                if max < median {
                    out.push((
                        format!("size max ({max}) is below median ({median})"),
                        "raise max or lower median".into(),
                    ));
                }
                if min > median {
                    out.push((
                        format!("size min ({min}) is above median ({median})"),
                        "lower min or raise median".into(),
                    ));
                }
                if !(sigma.is_finite() && *sigma > 0.0 && *sigma <= 10.0) {
                    out.push((
                        format!("lognormal sigma {sigma} is out of range"),
                        "use a sigma in (0, 10]; 1.0 is a wide spread, 0.25 a narrow one".into(),
                    ));
                }
                if median.0 == 0 {
                    out.push((
                        "lognormal median is 0".into(),
                        "give a median above zero, e.g. 64KiB".into(),
                    ));
                }
            }
            SizeSpec::Buckets(buckets) => {
                if buckets.is_empty() {
                    out.push((
                        "bucket list is empty".into(),
                        "list at least one size, e.g. \"4KiB x8, 1MiB\"".into(),
                    ));
                }
                if buckets.len() > crate::limits::input::MAX_BUCKETS {
                    out.push((
                        format!(
                            "{} buckets, above the limit of {}",
                            buckets.len(),
                            crate::limits::input::MAX_BUCKETS
                        ),
                        "use fewer sizes".into(),
                    ));
                    return out;
                }
                for b in buckets {
                    if let Err(e) = crate::limits::WEIGHT.check_signed("weight", b.weight) {
                        if b.weight > 0 {
                            out.push((
                                format!("bucket {}: {}", b.size, e.problem()),
                                e.fix().into(),
                            ));
                        }
                    }
                    if b.weight <= 0 {
                        out.push((
                            format!("bucket {} has weight {}", b.size, b.weight),
                            "give every bucket a positive weight".into(),
                        ));
                    }
                }
            }
        }
        out
    }

    /// The largest size this distribution can produce.
    pub fn max(&self) -> u64 {
        match self {
            SizeSpec::Fixed(s) => s.0,
            SizeSpec::Uniform { max, .. } | SizeSpec::LogNormal { max, .. } => max.0,
            SizeSpec::Buckets(b) => b.iter().map(|b| b.size.0).max().unwrap_or(0),
        }
    }

    /// A sampler for this distribution. Only call on a spec without `problems()`.
    pub fn sampler(&self) -> SizeSampler {
        match self {
            SizeSpec::Fixed(s) => SizeSampler::Fixed(s.0),
            SizeSpec::Uniform { min, max } => SizeSampler::Uniform(min.0, max.0),
            SizeSpec::LogNormal {
                median,
                max,
                min,
                sigma,
            } => {
                let mu = (median.0.max(1) as f64).ln();
                match rand_distr::LogNormal::new(mu, *sigma) {
                    Ok(d) => SizeSampler::LogNormal {
                        dist: d,
                        min: min.0,
                        max: max.0,
                    },
                    Err(_) => SizeSampler::Fixed(median.0),
                }
            }
            SizeSpec::Buckets(b) => {
                let weights: Vec<u64> = b.iter().map(|b| b.weight.max(1) as u64).collect();
                match rand::distr::weighted::WeightedIndex::new(&weights) {
                    Ok(index) => SizeSampler::Buckets {
                        sizes: b.iter().map(|b| b.size.0).collect(),
                        index,
                    },
                    Err(_) => SizeSampler::Fixed(b.first().map(|b| b.size.0).unwrap_or(0)),
                }
            }
        }
    }
}

/// Draws sizes from a validated [`SizeSpec`].
#[derive(Debug, Clone)]
pub enum SizeSampler {
    Fixed(u64),
    Uniform(u64, u64),
    LogNormal {
        dist: rand_distr::LogNormal<f64>,
        min: u64,
        max: u64,
    },
    Buckets {
        sizes: Vec<u64>,
        index: rand::distr::weighted::WeightedIndex<u64>,
    },
}

impl SizeSampler {
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            SizeSampler::Fixed(s) => *s,
            SizeSampler::Uniform(a, b) => rng.random_range(*a..=*b),
            SizeSampler::LogNormal { dist, min, max } => {
                // Redraw out-of-range values a few times so the bounds do not pile up mass at
                // the edges; clamp only the rare value that stays outside.
                let mut v = dist.sample(rng);
                for _ in 0..8 {
                    if v >= *min as f64 && v <= *max as f64 {
                        break;
                    }
                    v = dist.sample(rng);
                }
                (v.round() as u64).clamp(*min, *max)
            }
            SizeSampler::Buckets { sizes, index } => sizes[index.sample(rng)],
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeSpec::Fixed(s) => write!(f, "{s}"),
            SizeSpec::Uniform { min, max } => write!(f, "uniform {min}..{max}"),
            SizeSpec::LogNormal {
                median, max, sigma, ..
            } => write!(f, "lognormal median {median} max {max} sigma {sigma}"),
            SizeSpec::Buckets(b) => {
                let parts: Vec<String> = b
                    .iter()
                    .map(|b| {
                        if b.weight == 1 {
                            b.size.to_string()
                        } else {
                            format!("{} x{}", b.size, b.weight)
                        }
                    })
                    .collect();
                write!(f, "{}", parts.join(", "))
            }
        }
    }
}

/// Why a size distribution's text cannot be used.
#[derive(Debug, thiserror::Error)]
enum SizeTextError {
    #[error("bucket weight '{weight}' in '{text}' is not a whole number; write e.g. 4KiB x8")]
    Weight { weight: String, text: String },
    #[error(transparent)]
    Size(#[from] crate::size::SizeError),
}

/// Parses `4KiB x8, 1MiB` (or a plain size).
fn parse_size_text(s: &str) -> Result<SizeSpec, SizeTextError> {
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    let mut buckets = Vec::new();
    for item in &items {
        let (size, weight) = match item.rsplit_once(" x").or_else(|| item.rsplit_once('x')) {
            Some((size, w)) if !w.is_empty() && w.trim().chars().all(|c| c.is_ascii_digit()) => {
                let weight: i64 = w.trim().parse().map_err(|_| SizeTextError::Weight {
                    weight: w.to_string(),
                    text: s.to_string(),
                })?;
                (size.trim(), weight)
            }
            _ => (*item, 1),
        };
        let size: ByteSize = size.parse()?;
        buckets.push(Bucket { size, weight });
    }
    if buckets.len() == 1 && buckets[0].weight == 1 && !s.contains('x') {
        return Ok(SizeSpec::Fixed(buckets[0].size));
    }
    Ok(SizeSpec::Buckets(buckets))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogNormalFields {
    median: ByteSize,
    max: ByteSize,
    #[serde(default)]
    min: Option<ByteSize>,
    #[serde(default)]
    sigma: Option<f64>,
}

/// The map forms of a size: exactly one of the fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeMap {
    #[serde(default)]
    uniform: Option<[ByteSize; 2]>,
    #[serde(default)]
    lognormal: Option<LogNormalFields>,
    #[serde(default)]
    buckets: Option<Vec<Bucket>>,
    #[serde(default)]
    fixed: Option<ByteSize>,
}

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
            Map(SizeMap),
        }
        let raw = Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "size must be a size (64KiB), a bucket list (\"4KiB x8, 1MiB\"), \
                 {uniform: [MIN, MAX]} or {lognormal: {median: M, max: X}}",
            )
        })?;
        let one_of = || {
            serde::de::Error::custom(
                "a size map takes exactly one of uniform, lognormal, buckets or fixed",
            )
        };
        match raw {
            Raw::Number(n) => Ok(SizeSpec::Fixed(ByteSize(n))),
            Raw::Text(s) => parse_size_text(&s).map_err(serde::de::Error::custom),
            Raw::Map(m) => match (m.uniform, m.lognormal, m.buckets, m.fixed) {
                (Some([min, max]), None, None, None) => Ok(SizeSpec::Uniform { min, max }),
                (None, Some(l), None, None) => Ok(SizeSpec::LogNormal {
                    median: l.median,
                    max: l.max,
                    min: l.min.unwrap_or(ByteSize(0)),
                    sigma: l.sigma.unwrap_or(DEFAULT_SIGMA),
                }),
                (None, None, Some(b), None) => Ok(SizeSpec::Buckets(b)),
                (None, None, None, Some(s)) => Ok(SizeSpec::Fixed(s)),
                _ => Err(one_of()),
            },
        }
    }
}

impl Serialize for SizeSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SizeSpec::Fixed(s) => s.serialize(serializer),
            SizeSpec::Buckets(_) => serializer.serialize_str(&self.to_string()),
            SizeSpec::Uniform { min, max } => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("uniform", &[min, max])?;
                m.end()
            }
            SizeSpec::LogNormal {
                median,
                max,
                min,
                sigma,
            } => {
                #[derive(Serialize)]
                struct Fields<'a> {
                    median: &'a ByteSize,
                    max: &'a ByteSize,
                    min: &'a ByteSize,
                    sigma: f64,
                }
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry(
                    "lognormal",
                    &Fields {
                        median,
                        max,
                        min,
                        sigma: *sigma,
                    },
                )?;
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn parse(yaml: &str) -> Result<SizeSpec, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn all_forms_parse() {
        assert_eq!(parse("64KiB").unwrap(), SizeSpec::Fixed(ByteSize(65536)));
        assert_eq!(parse("1024").unwrap(), SizeSpec::Fixed(ByteSize(1024)));
        assert_eq!(
            parse("{uniform: [1KiB, 100KiB]}").unwrap(),
            SizeSpec::Uniform {
                min: ByteSize(1024),
                max: ByteSize(102400)
            }
        );
        assert!(matches!(
            parse("{lognormal: {median: 64KiB, max: 10MiB}}").unwrap(),
            SizeSpec::LogNormal { sigma, .. } if sigma == 1.0
        ));
        let b = parse("\"4KiB x8, 1MiB\"").unwrap();
        assert_eq!(
            b,
            SizeSpec::Buckets(vec![
                Bucket {
                    size: ByteSize(4096),
                    weight: 8
                },
                Bucket {
                    size: ByteSize(1 << 20),
                    weight: 1
                }
            ])
        );
        assert_eq!(b.to_string(), "4KiB x8, 1MiB");
    }

    #[test]
    fn lognormal_max_below_median_names_the_fix() {
        let spec = parse("{lognormal: {median: 1MiB, max: 64KiB}}").unwrap();
        let p = spec.problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].0.contains("max (64KiB) is below median (1MiB)"));
        assert!(p[0].1.contains("raise max"));
    }

    #[test]
    fn bad_size_text_is_refused() {
        let e = parse("lots").unwrap_err();
        assert!(e.contains("'lots' is not a size"), "{e}");
        assert!(parse("{gaussian: 3}").is_err());
    }

    #[test]
    fn samplers_stay_in_bounds_and_follow_weights() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let ln = parse("{lognormal: {median: 64KiB, max: 1MiB, min: 1KiB}}")
            .unwrap()
            .sampler();
        let mut below_median = 0;
        for _ in 0..10_000 {
            let v = ln.sample(&mut rng);
            assert!((1024..=1 << 20).contains(&v));
            if v < 65536 {
                below_median += 1;
            }
        }
        // Median of the draws is the configured median (within sampling noise).
        assert!((4_500..5_500).contains(&below_median), "{below_median}");

        let b = parse("\"4KiB x3, 1MiB\"").unwrap().sampler();
        let small = (0..10_000).filter(|_| b.sample(&mut rng) == 4096).count();
        assert!((7_200..7_800).contains(&small), "{small}");
    }

    #[test]
    fn serializes_back_to_parseable_yaml() {
        for y in [
            "64KiB",
            "{uniform: [1KiB, 100KiB]}",
            "{lognormal: {median: 64KiB, max: 10MiB, sigma: 0.5}}",
            "\"4KiB x8, 1MiB\"",
            // Sizes that are not a whole number of a binary unit must not be rounded.
            "\"4KB x8, 1500\"",
            "{uniform: [1000, 1000001]}",
            "{lognormal: {median: 1500, max: 4KB, min: 999}}",
            "1000001",
        ] {
            let s = parse(y).unwrap();
            let back = serde_yaml_ng::to_string(&s).unwrap();
            assert_eq!(parse(&back).unwrap(), s, "{back}");
        }
    }
}
