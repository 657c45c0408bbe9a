//! One place for limits: the upper (and lower) bound of every number an operator can give
//! (CLI flags, scenario YAML, the S3 connection file, the control API's start request, the
//! charm's action parameters), and the one checked conversion each goes through.
//!
//! A value past its bound is refused with a [`LimitError`] that names the field, the value,
//! the bound and the fix, so the front end can exit 2 (or fail the action). Nothing behind
//! these checks calls `Duration::from_secs_f64` or adds to an `Instant` on an unchecked value:
//! a bound small enough for the arithmetic is the point.

use crate::size::ByteSize;
use std::fmt;
use std::time::Duration;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// A number that was refused: which field, what was given, and what would be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{field} {value} is not a finite number; {fix}")]
    NotFinite {
        field: String,
        value: String,
        fix: String,
    },
    #[error("{field} {value} is below the minimum of {bound}; {fix}")]
    TooSmall {
        field: String,
        value: String,
        bound: String,
        fix: String,
    },
    #[error("{field} {value} is above the limit of {bound}; {fix}")]
    TooLarge {
        field: String,
        value: String,
        bound: String,
        fix: String,
    },
}

impl LimitError {
    /// The field the error is about.
    pub fn field(&self) -> &str {
        match self {
            LimitError::NotFinite { field, .. }
            | LimitError::TooSmall { field, .. }
            | LimitError::TooLarge { field, .. } => field,
        }
    }

    /// What is wrong, without the field's name (for messages that name it already).
    pub fn problem(&self) -> String {
        match self {
            LimitError::NotFinite { value, .. } => format!("{value} is not a finite number"),
            LimitError::TooSmall { value, bound, .. } => {
                format!("{value} is below the minimum of {bound}")
            }
            LimitError::TooLarge { value, bound, .. } => {
                format!("{value} is above the limit of {bound}")
            }
        }
    }

    /// How to fix it.
    pub fn fix(&self) -> &str {
        match self {
            LimitError::NotFinite { fix, .. }
            | LimitError::TooSmall { fix, .. }
            | LimitError::TooLarge { fix, .. } => fix,
        }
    }
}

/// Bounds of a length of time given in seconds (or as a parsed duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds {
    /// Whether 0 is allowed (a wait may be 0; a timeout may not).
    pub zero_ok: bool,
    pub max: Duration,
    /// What to write instead, e.g. "use e.g. 30 (seconds)".
    pub fix: &'static str,
}

/// A run lasts at most 30 days.
pub const RUN_TIME: Seconds = Seconds {
    zero_ok: false,
    max: Duration::from_secs(30 * DAY),
    fix: "the run time may be at most 30 days; write e.g. 90s, 10m, 1h30m",
};
/// Time allowed for one request (and its connection): at most 1 h.
pub const REQUEST_TIMEOUT: Seconds = Seconds {
    zero_ok: false,
    max: Duration::from_secs(HOUR),
    fix: "give a positive number of seconds up to 3600, e.g. 30",
};
/// Extra request time per MiB of payload: at most 60 s per MiB.
pub const TIMEOUT_PER_MIB: Seconds = Seconds {
    zero_ok: true,
    max: Duration::from_secs(60),
    fix: "give 0 to 60 seconds per MiB, e.g. 1",
};
/// Grace for in-flight requests when a run stops: at most 1 h.
pub const STOP_TIMEOUT: Seconds = Seconds {
    zero_ok: true,
    max: Duration::from_secs(HOUR),
    fix: "give 0 to 3600 seconds, e.g. 30",
};
/// How long a start waits for the expected workers: at most 1 h.
pub const WAIT_WORKERS: Seconds = Seconds {
    zero_ok: true,
    max: Duration::from_secs(HOUR),
    fix: "give 0 to 3600 seconds, e.g. 60",
};
/// How long cleanup retries before it reports the run's prefix as not cleaned: at most 1 h.
pub const CLEANUP_TIMEOUT: Seconds = Seconds {
    zero_ok: true,
    max: Duration::from_secs(HOUR),
    fix: "give 0 to 3600 seconds, e.g. 60",
};
/// A user's wait between tasks (constant, between, pacing): at most 1 day.
pub const WAIT: Seconds = Seconds {
    zero_ok: true,
    max: Duration::from_secs(DAY),
    fix: "give 0 to 86400 seconds, e.g. {between: [1, 3]}",
};
/// How long `ctl start --wait` waits for a run to end: a run's limit plus a day.
pub const CTL_WAIT: Seconds = Seconds {
    zero_ok: true,
    max: Duration::from_secs(31 * DAY),
    fix: "give 0 to 2678400 seconds",
};

fn show_f64(v: f64) -> String {
    // Rust prints 1e300 with 300 digits; exponent form for large values keeps messages short.
    if v.is_finite() && (v.abs() >= 1e15 || (v != 0.0 && v.abs() < 1e-6)) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs == DAY {
        format!("1 day ({secs}s)")
    } else if d.subsec_nanos() == 0 && secs >= DAY && secs.is_multiple_of(DAY) {
        format!("{} days ({secs}s)", secs / DAY)
    } else if d.subsec_nanos() == 0 && secs >= HOUR && secs.is_multiple_of(HOUR) {
        format!("{} h ({secs}s)", secs / HOUR)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

impl Seconds {
    /// The checked conversion of a number of seconds into a [`Duration`].
    pub fn secs(&self, field: &str, value: f64) -> Result<Duration, LimitError> {
        let shown = show_f64(value);
        if !value.is_finite() {
            return Err(LimitError::NotFinite {
                field: field.into(),
                value: shown,
                fix: format!("seconds must be finite; {}", self.fix),
            });
        }
        if value < 0.0 || (value == 0.0 && !self.zero_ok) {
            return Err(LimitError::TooSmall {
                field: field.into(),
                value: shown,
                bound: if self.zero_ok { "0 s" } else { "above 0 s" }.into(),
                fix: self.fix.into(),
            });
        }
        if value > self.max.as_secs_f64() {
            return Err(self.too_large(field, shown));
        }
        // In range, so this cannot fail; the fallback keeps the conversion panic-free anyway.
        let d =
            Duration::try_from_secs_f64(value).map_err(|_| self.too_large(field, shown.clone()))?;
        // A value below a nanosecond rounds to zero.
        if d.is_zero() && !self.zero_ok {
            return Err(LimitError::TooSmall {
                field: field.into(),
                value: shown,
                bound: "1 ns".into(),
                fix: self.fix.into(),
            });
        }
        Ok(d)
    }

    /// A value the edge already checked with [`Seconds::secs`], converted without allocating
    /// (for hot paths) and without any way to panic: out-of-range input is held to the bounds.
    pub fn within(&self, value: f64) -> Duration {
        if value.is_nan() || value <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(value.min(self.max.as_secs_f64())).unwrap_or(self.max)
    }

    /// Checks a duration that was already parsed (e.g. from `10m`).
    pub fn check(&self, field: &str, d: Duration) -> Result<Duration, LimitError> {
        if d.is_zero() && !self.zero_ok {
            return Err(LimitError::TooSmall {
                field: field.into(),
                value: show_duration(d),
                bound: "above 0 s".into(),
                fix: self.fix.into(),
            });
        }
        if d > self.max {
            return Err(self.too_large(field, show_duration(d)));
        }
        Ok(d)
    }

    fn too_large(&self, field: &str, value: String) -> LimitError {
        LimitError::TooLarge {
            field: field.into(),
            value,
            bound: show_duration(self.max),
            fix: self.fix.into(),
        }
    }
}

/// Bounds of a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub min: u64,
    pub max: u64,
    pub fix: &'static str,
}

/// Users in one run, across all workers. Each user is a task with its own connection state;
/// a million is beyond what any cluster of workers here holds, and keeps every sum in a u32.
pub const USERS: Count = Count {
    min: 1,
    max: 1_000_000,
    fix: "give a whole number of users from 1 to 1000000",
};
/// Weights of user classes, tasks and size buckets; their sums stay far from overflow.
pub const WEIGHT: Count = Count {
    min: 1,
    max: 1_000_000,
    fix: "give a whole-number weight from 1 to 1000000",
};
/// Tasks (or sequence passes) per user.
pub const ITERATIONS: Count = Count {
    min: 1,
    max: 1_000_000_000_000,
    fix: "give a whole number from 1 to 10^12 (or leave it out for no limit)",
};
/// Requests outstanding at once in an open-model run (`load.max_in_flight`), across workers.
pub const MAX_IN_FLIGHT: Count = Count {
    min: 1,
    max: 1_000_000,
    fix: "give a whole number of requests from 1 to 1000000, e.g. max_in_flight: 1000",
};
/// Connections an open-model run's requests use at once (`load.max_connections`), across
/// workers: requests beyond them wait in the client for a free one.
pub const MAX_CONNECTIONS: Count = Count {
    min: 1,
    max: 1_000_000,
    fix: "give a whole number of connections from 1 to 1000000, e.g. max_connections: 64",
};
/// Users of one load stage (`load.users.stages[i].users`); 0 is a pause or a ramp down.
pub const STAGE_USERS: Count = Count {
    min: 0,
    max: 1_000_000,
    fix: "give a whole number of users from 0 to 1000000, e.g. {users: 50, for: 2m}",
};
/// Keys in one DeleteObjects request (`delete_batch`'s `keys`): S3 takes at most 1000.
pub const BATCH_KEYS: Count = Count {
    min: 1,
    max: 1000,
    fix: "S3 takes 1 to 1000 keys in one DeleteObjects request, e.g. keys: 100",
};
/// Days of an object-locked bucket's default retention (`object_lock.days`): 1 day to 100
/// years. Locked versions cannot be deleted before then, so a typo costs storage for years.
pub const LOCK_DAYS: Count = Count {
    min: 1,
    max: 36_500,
    fix:
        "give a whole number of days from 1 to 36500, e.g. object_lock: {mode: GOVERNANCE, days: 1}",
};
/// Workers a start waits for.
pub const EXPECTED_WORKERS: Count = Count {
    min: 1,
    max: 10_000,
    fix: "give a whole number of workers from 1 to 10000",
};

impl Count {
    /// The checked bound of a whole number.
    pub fn check(&self, field: &str, value: u64) -> Result<u64, LimitError> {
        if value < self.min {
            return Err(LimitError::TooSmall {
                field: field.into(),
                value: value.to_string(),
                bound: self.min.to_string(),
                fix: self.fix.into(),
            });
        }
        if value > self.max {
            return Err(LimitError::TooLarge {
                field: field.into(),
                value: value.to_string(),
                bound: self.max.to_string(),
                fix: self.fix.into(),
            });
        }
        Ok(value)
    }

    /// Parses text as typed on a command line; a number too long for any integer type is
    /// "above the limit", not "not a number".
    pub fn parse(&self, field: &str, text: &str) -> Result<u64, ParseError> {
        let t = text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return match t.parse::<u64>() {
                Ok(v) => self.check(field, v).map_err(ParseError::Limit),
                Err(_) => Err(ParseError::Limit(LimitError::TooLarge {
                    field: field.into(),
                    value: t.into(),
                    bound: self.max.to_string(),
                    fix: self.fix.into(),
                })),
            };
        }
        Err(ParseError::NotANumber {
            field: field.into(),
            value: text.into(),
            fix: self.fix,
        })
    }

    /// Checks a count that must also fit a `u32` (users, workers).
    pub fn check_u32(&self, field: &str, value: u64) -> Result<u32, LimitError> {
        let v = self.check(field, value)?;
        u32::try_from(v).map_err(|_| LimitError::TooLarge {
            field: field.into(),
            value: v.to_string(),
            bound: u32::MAX.to_string(),
            fix: self.fix.into(),
        })
    }

    /// Checks a whole number read from JSON or YAML, where it may be negative or past `u64`.
    pub fn check_whole(&self, field: &str, value: i128) -> Result<u64, LimitError> {
        match u64::try_from(value) {
            Ok(v) => self.check(field, v),
            Err(_) if value < 0 => Err(LimitError::TooSmall {
                field: field.into(),
                value: value.to_string(),
                bound: self.min.to_string(),
                fix: self.fix.into(),
            }),
            Err(_) => Err(LimitError::TooLarge {
                field: field.into(),
                value: value.to_string(),
                bound: self.max.to_string(),
                fix: self.fix.into(),
            }),
        }
    }

    /// Checks a signed count (weights are written as signed numbers).
    pub fn check_signed(&self, field: &str, value: i64) -> Result<u64, LimitError> {
        if value < 0 {
            return Err(LimitError::TooSmall {
                field: field.into(),
                value: value.to_string(),
                bound: self.min.to_string(),
                fix: self.fix.into(),
            });
        }
        self.check(field, value as u64)
    }
}

/// A number typed as text that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("{field} '{value}' is not a number; {fix}")]
    NotANumber {
        field: String,
        value: String,
        fix: &'static str,
    },
    #[error(transparent)]
    Limit(LimitError),
}

/// Parses a decimal number as typed on a command line (`1e20` and `inf` parse; the bound
/// check that follows refuses them).
pub fn parse_f64(field: &str, text: &str, fix: &'static str) -> Result<f64, ParseError> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| ParseError::NotANumber {
            field: field.into(),
            value: text.into(),
            fix,
        })
}

impl Seconds {
    /// Parses seconds typed on a command line and checks them.
    pub fn parse(&self, field: &str, text: &str) -> Result<Duration, ParseError> {
        let v = parse_f64(field, text, self.fix)?;
        self.secs(field, v).map_err(ParseError::Limit)
    }
}

/// Bounds of a rate (per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub min: f64,
    pub max: f64,
    pub fix: &'static str,
    /// Arrivals per second: bounds are shown as `N/s`, or `N/h` below one a second (`1/h`,
    /// not 0.000277…). False for users per second (spawn rates): bare numbers.
    pub arrivals: bool,
}

/// Users started per second, across all workers.
pub const SPAWN_RATE: Rate = Rate {
    min: 0.001,
    max: 100_000.0,
    fix: "give users per second from 0.001 to 100000, e.g. 5 or 0.5",
    arrivals: false,
};

/// Arrivals per second of an open-model run (`load.arrival.rate`, `--rate`), across workers.
/// The smallest is one an hour; the largest is far past what one worker schedules.
pub const ARRIVAL_RATE: Rate = Rate {
    min: 1.0 / 3600.0,
    max: 1_000_000.0,
    fix: "give arrivals per second from 1/h to 1000000/s, e.g. 500/s",
    arrivals: true,
};

/// Arrivals per second of one rate stage (`load.arrival.stages[i].rate`); 0/s is a pause or
/// the end of a ramp down, allowed inside stages only.
pub const STAGE_RATE: Rate = Rate {
    min: 0.0,
    max: 1_000_000.0,
    fix: "give arrivals per second from 0/s to 1000000/s, e.g. {rate: 500/s, for: 1m}",
    arrivals: true,
};

impl Rate {
    fn show_bound(&self, per_s: f64) -> String {
        if !self.arrivals {
            show_f64(per_s)
        } else if per_s > 0.0 && per_s < 1.0 {
            let per_h = (per_s * 3600.0 * 1e9).round() / 1e9;
            format!("{}/h", show_f64(per_h))
        } else {
            format!("{}/s", show_f64(per_s))
        }
    }

    pub fn check(&self, field: &str, value: f64) -> Result<f64, LimitError> {
        let shown = show_f64(value);
        if !value.is_finite() {
            return Err(LimitError::NotFinite {
                field: field.into(),
                value: shown,
                fix: self.fix.into(),
            });
        }
        if value < self.min {
            return Err(LimitError::TooSmall {
                field: field.into(),
                value: shown,
                bound: self.show_bound(self.min),
                fix: self.fix.into(),
            });
        }
        if value > self.max {
            return Err(LimitError::TooLarge {
                field: field.into(),
                value: shown,
                bound: self.show_bound(self.max),
                fix: self.fix.into(),
            });
        }
        Ok(value)
    }
}

/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 << 30;
/// S3's largest multipart part.
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// S3's largest object.
pub const MAX_OBJECT: u64 = 5 << 40;

/// Checks a size against a maximum in bytes.
pub fn size(field: &str, value: ByteSize, max: u64, fix: &str) -> Result<ByteSize, LimitError> {
    if value.0 > max {
        return Err(LimitError::TooLarge {
            field: field.into(),
            value: value.to_string(),
            bound: ByteSize(max).to_string(),
            fix: fix.into(),
        });
    }
    Ok(value)
}

/// Limits on input files and the scenario's shape, so parsing and validation stay linear
/// and bounded in time and memory.
pub mod input {
    /// Largest scenario or connection file read (bytes).
    pub const MAX_FILE_BYTES: u64 = 4 << 20;
    /// Deepest YAML nesting accepted (the scenario schema needs fewer than 10 levels).
    pub const MAX_NESTING: usize = 64;
    /// YAML aliases (`*name`) per file: enough for reuse, too few for an expansion bomb.
    pub const MAX_ALIASES: usize = 50;
    /// User classes per scenario.
    pub const MAX_CLASSES: usize = 1_000;
    /// Tasks per user class.
    pub const MAX_TASKS_PER_CLASS: usize = 10_000;
    /// Tasks in one pass of a `sequence: true` class (the sum of its task weights).
    pub const MAX_SEQUENCE_PASS: i64 = 1_000_000;
    /// Stages of a staged load (`load.users.stages`, `load.arrival.stages`).
    pub const MAX_STAGES: usize = 1_000;
    /// Thresholds per scenario.
    pub const MAX_THRESHOLDS: usize = 1_000;
    /// Size buckets per size distribution.
    pub const MAX_BUCKETS: usize = 1_000;
    /// Characters of a scenario's `description` (it is copied into run.json and the report).
    pub const MAX_DESCRIPTION: usize = 4_096;
    /// Characters of a scenario, class or task name.
    pub const MAX_NAME: usize = 200;
}

/// A problem with an input file as a whole, before its content is parsed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path} is a directory, not a file; give the path of a YAML file")]
    Directory { path: String },
    #[error(
        "{path} is not a regular file (a device, pipe or socket); give the path of a YAML file"
    )]
    NotRegular { path: String },
    #[error("{path} is {size} bytes, above the limit of {max} bytes; a {what} file this large is a mistake")]
    TooLarge {
        path: String,
        size: u64,
        max: u64,
        what: &'static str,
    },
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not UTF-8 text; give a YAML file")]
    NotText { path: String },
}

/// Reads a small text input file: refuses directories, devices and files above
/// [`input::MAX_FILE_BYTES`] before reading, and never reads more than that.
pub fn read_input_file(path: &std::path::Path, what: &'static str) -> Result<String, FileError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    if meta.is_dir() {
        return Err(FileError::Directory { path: shown });
    }
    if !meta.is_file() {
        return Err(FileError::NotRegular { path: shown });
    }
    let max = input::MAX_FILE_BYTES;
    if meta.len() > max {
        return Err(FileError::TooLarge {
            path: shown,
            size: meta.len(),
            max,
            what,
        });
    }
    let file = std::fs::File::open(path).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read {
            path: shown.clone(),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge {
            path: shown,
            size: bytes.len() as u64,
            max,
            what,
        });
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotText { path: shown })
}

/// Why YAML text is refused before it is parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YamlShapeError {
    #[error("the YAML is {size} bytes, above the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error(
        "the YAML nests deeper than {max} levels (line {line}); a scenario needs fewer than 10"
    )]
    TooDeep { line: usize, max: usize },
    #[error(
        "the YAML uses more than {max} aliases (*name); an alias expansion this large is refused"
    )]
    TooManyAliases { max: usize },
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_duration(self.max))
    }
}

/// A linear pre-scan of YAML text for what would make the YAML parser slow or its output
/// huge: deep nesting (libyaml is quadratic in depth) and many aliases (expansion bombs).
/// It over-estimates depth rather than under-estimates it: the real schema is shallow.
pub fn check_yaml_shape(text: &str) -> Result<(), YamlShapeError> {
    let max_bytes = input::MAX_FILE_BYTES as usize;
    if text.len() > max_bytes {
        return Err(YamlShapeError::TooLarge {
            size: text.len(),
            max: max_bytes,
        });
    }
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    let mut aliases = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut depth_here = 0usize;
        if flow == 0 {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - - x` nests a sequence per dash on one line.
            let mut rest = body;
            while let Some(after) = rest.strip_prefix('-') {
                if after.is_empty() || after.starts_with(' ') {
                    depth_here += 1;
                    rest = after.trim_start_matches(' ');
                } else {
                    break;
                }
            }
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in body.chars() {
            match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '#' if prev == ' ' => break,
                    '"' | '\'' if " :,[{".contains(prev) => quote = Some(c),
                    '[' | '{' => flow += 1,
                    ']' | '}' => flow = flow.saturating_sub(1),
                    '*' if " ,[{:".contains(prev) || prev == '-' => aliases += 1,
                    _ => {}
                },
            }
            if indents.len() + depth_here + flow > input::MAX_NESTING {
                return Err(YamlShapeError::TooDeep {
                    line: n + 1,
                    max: input::MAX_NESTING,
                });
            }
            prev = c;
        }
        if indents.len() + depth_here + flow > input::MAX_NESTING {
            return Err(YamlShapeError::TooDeep {
                line: n + 1,
                max: input::MAX_NESTING,
            });
        }
        if aliases > input::MAX_ALIASES {
            return Err(YamlShapeError::TooManyAliases {
                max: input::MAX_ALIASES,
            });
        }
    }
    Ok(())
}

/// Gateways in one connection file (`endpoints:`, or an `endpoint:` with a `{a...b}` range):
/// each gets its own connection pool and its own `endpoint` label value on the request
/// counters, so this bounds both the sockets and the metrics' cardinality.
pub const ENDPOINTS: Count = Count {
    min: 1,
    max: 64,
    fix: "give 1 to 64 gateways (endpoints: [URL, ...] or a range like http://rgw{1...8}:7480)",
};
/// Buckets one run spreads its users over (`buckets: {count: N}` or a list of names). Every
/// bucket is prepared, prefilled and cleaned, so this bounds that work too.
pub const BUCKETS: Count = Count {
    min: 1,
    max: 100,
    fix: "give 1 to 100 buckets (buckets: {count: N, prefix: NAME-} or buckets: [a, b])",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_refuse_overflowing_and_infinite_values_with_the_bound() {
        let e = REQUEST_TIMEOUT
            .secs("driver_config.request_timeout", 1e20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("driver_config.request_timeout 1e20"), "{e}");
        assert!(e.contains("above the limit of 1 h (3600s)"), "{e}");
        let e = STOP_TIMEOUT
            .secs("--stop-timeout", f64::INFINITY)
            .unwrap_err();
        assert!(e.to_string().contains("must be finite"), "{e}");
        let e = STOP_TIMEOUT.secs("--stop-timeout", f64::NAN).unwrap_err();
        assert!(matches!(e, LimitError::NotFinite { .. }), "{e}");
        assert!(REQUEST_TIMEOUT.secs("t", 0.0).is_err());
        // Found by the fuzz harness: a positive value that rounds to 0 ns.
        assert!(RUN_TIME.secs("t", 1e-56).is_err());
        assert_eq!(STOP_TIMEOUT.secs("t", 0.0).unwrap(), Duration::ZERO);
        assert_eq!(
            RUN_TIME.secs("t", 2592000.0).unwrap(),
            Duration::from_secs(2592000)
        );
        let e = RUN_TIME.secs("--run-time", 2592000.5).unwrap_err();
        assert!(e.to_string().contains("30 days"), "{e}");
    }

    #[test]
    fn arrival_rate_bounds_read_as_rates() {
        let e = ARRIVAL_RATE.check("rate", 0.0001).unwrap_err().to_string();
        assert!(e.contains("below the minimum of 1/h"), "{e}");
        let e = ARRIVAL_RATE.check("rate", 2e6).unwrap_err().to_string();
        assert!(e.contains("above the limit of 1000000/s"), "{e}");
        // Spawn rates are users per second, written bare.
        let e = SPAWN_RATE.check("spawn_rate", 0.0).unwrap_err().to_string();
        assert!(e.contains("below the minimum of 0.001;"), "{e}");
    }

    #[test]
    fn counts_name_the_bound_even_past_u64() {
        let e = USERS
            .parse("--users", "4294967295")
            .unwrap_err()
            .to_string();
        assert!(e.contains("above the limit of 1000000"), "{e}");
        let e = USERS
            .parse("--users", "99999999999999999999999")
            .unwrap_err()
            .to_string();
        assert!(e.contains("above the limit of 1000000"), "{e}");
        let e = USERS.parse("--users", "ten").unwrap_err().to_string();
        assert!(e.contains("not a number"), "{e}");
        assert_eq!(USERS.parse("--users", "7").unwrap(), 7);
        assert!(USERS.parse("--users", "0").is_err());
    }

    #[test]
    fn yaml_shape_refuses_deep_nesting_and_alias_bombs_but_not_scenarios() {
        for (name, text) in crate::load::scenario::BUILTINS {
            check_yaml_shape(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            check_yaml_shape(&deep),
            Err(YamlShapeError::TooDeep { .. })
        ));
        let dashes = "- ".repeat(100_000);
        assert!(matches!(
            check_yaml_shape(&dashes),
            Err(YamlShapeError::TooDeep { .. })
        ));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9 {
            bomb.push_str(&format!(
                "b{i}: &b{i} [{}]\n",
                vec![
                    if i == 0 {
                        "*a".to_string()
                    } else {
                        format!("*b{}", i - 1)
                    };
                    9
                ]
                .join(", ")
            ));
        }
        assert!(matches!(
            check_yaml_shape(&bomb),
            Err(YamlShapeError::TooManyAliases { .. })
        ));
        // Quotes and comments do not count as nesting.
        check_yaml_shape("name: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\n# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n").unwrap();
    }
}
