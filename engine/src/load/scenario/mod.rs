//! Scenarios: what virtual users do, in YAML (replacing the seed's Python locustfiles).
//!
//! The serde types here are the file format *and* what crosses process boundaries (the
//! coordinator sends the resolved scenario to workers; `run.json` records it), so a scenario
//! printed from a run can be saved and run again. [`Scenario::validate`] checks everything
//! the types cannot express and says, for each problem, the file, the field and the fix.

mod builtin;
mod load_spec;
mod resolved;
mod size_spec;
mod stages;
mod thresholds;

pub use builtin::{builtin, builtin_names, BUILTINS};
pub use load_spec::{
    parse_rate, Arrival, ArrivalPlan, Load, RateError, RateText, DEFAULT_MAX_IN_FLIGHT,
};
pub use resolved::{ResolvedScenario, ScenarioText};
pub use size_spec::{Bucket, SizeSampler, SizeSpec};
pub use stages::{
    stages_length, user_stage_at, ForText, RateStage, RateStageText, StageError, UserLoad,
    UserStage, UserStageText,
};
pub use thresholds::{Millis, Percent, Threshold};

use crate::size::ByteSize;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A load scenario: user classes, the objects they need, and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub users: Vec<UserClass>,
    /// Objects written before users start, shared by all users (`key: shared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<Prefill>,
    /// Check every GET body (and HEAD size) against what was written.
    #[serde(default)]
    pub verify: bool,
    /// Leave the run's objects in the bucket instead of deleting them at the end.
    #[serde(default)]
    pub keep: bool,
    /// Limits that fail the run when crossed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    /// Open-model load (arrivals at a rate) instead of closed-model users. Boxed: most
    /// scenarios have none, and a scenario travels inside every run spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<Box<Load>>,
    /// The saturation sweep `chopsticks sweep` (or a start with `sweep: true`) runs: steps of
    /// the arrival rate. Boxed like `load`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Box<crate::load::sweep::SweepBlock>>,
    /// Post-run checks of what the cluster kept (SFKO's checks), run after the load and
    /// before cleanup: `[readback, listing]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The run's buckets keep every version of an object: a bucket the run creates gets
    /// versioning enabled, one that exists must have it already.
    #[serde(default, skip_serializing_if = "is_false")]
    pub versioning: bool,
    /// The run's buckets are object-locked with this default retention (needs `versioning`):
    /// a bucket the run creates is created with object lock, one that exists must have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `object_lock: {mode: GOVERNANCE, days: 1}`: the default retention of the run's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// Retention in days; checked by `limits::LOCK_DAYS` (see [`ObjectLock::days`]).
    pub days: i64,
}

impl ObjectLock {
    /// The retention in days, as validated (1 for a value validation refused).
    pub fn days(&self) -> u32 {
        crate::limits::LOCK_DAYS
            .check_signed("object_lock.days", self.days)
            .ok()
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(1)
    }
}

/// S3's object lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LockMode {
    /// Versions may be deleted early by a request that bypasses governance retention.
    Governance,
    /// No one may delete a version before its retention ends, not even the bucket's owner.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl From<LockMode> for String {
    fn from(m: LockMode) -> String {
        m.as_str().to_string()
    }
}

/// Why an `object_lock.mode` is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object_lock.mode: unknown mode (value not shown); the modes are GOVERNANCE and COMPLIANCE, e.g. object_lock: {{mode: GOVERNANCE, days: 1}}")]
pub struct UnknownLockMode;

impl TryFrom<String> for LockMode {
    type Error = UnknownLockMode;
    fn try_from(s: String) -> Result<LockMode, UnknownLockMode> {
        match s.as_str() {
            "GOVERNANCE" => Ok(LockMode::Governance),
            "COMPLIANCE" => Ok(LockMode::Compliance),
            _ => Err(UnknownLockMode),
        }
    }
}

/// Where a copy goes (`to:` on a copy task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyTo {
    /// The next bucket of the run's set (same key).
    Other,
}

/// A post-run check (`checks:` in a scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Check {
    /// GET every object the run wrote and did not delete, and verify its content.
    Readback,
    /// ListObjects under the run's prefix must return exactly the objects the run kept.
    Listing,
}

/// Why a `checks:` entry is not a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checks: unknown check (value not shown); the checks are readback and listing, e.g. checks: [readback, listing]")]
pub struct UnknownCheck;

impl TryFrom<String> for Check {
    type Error = UnknownCheck;
    fn try_from(s: String) -> Result<Check, UnknownCheck> {
        match s.as_str() {
            "readback" => Ok(Check::Readback),
            "listing" => Ok(Check::Listing),
            _ => Err(UnknownCheck),
        }
    }
}

/// A kind of virtual user (Locust's `User` class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserClass {
    pub name: String,
    /// Share of users of this class, relative to the other classes.
    #[serde(default = "one")]
    pub weight: i64,
    /// Time between tasks.
    #[serde(default)]
    pub wait: Wait,
    /// Run tasks in the listed order (a task's weight then repeats it), instead of at random.
    #[serde(default)]
    pub sequence: bool,
    pub tasks: Vec<Task>,
}

/// Time a user waits between tasks, in seconds. Written as a one-key map:
/// `{constant: 1}`, `{between: [1, 3]}` or `{pacing: 2}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// The same pause after every task.
    Constant(f64),
    /// A pause drawn uniformly from `[a, b]`.
    Between([f64; 2]),
    /// Start a task every N seconds, whatever the task took (Locust's `constant_pacing`).
    Pacing(f64),
}

/// The YAML shape of [`Wait`]: exactly one of the fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    constant: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    between: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pacing: Option<f64>,
}

impl Serialize for Wait {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut f = WaitFields {
            constant: None,
            between: None,
            pacing: None,
        };
        match *self {
            Wait::Constant(v) => f.constant = Some(v),
            Wait::Between(v) => f.between = Some(v),
            Wait::Pacing(v) => f.pacing = Some(v),
        }
        f.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = WaitFields::deserialize(d)?;
        match (f.constant, f.between, f.pacing) {
            (Some(v), None, None) => Ok(Wait::Constant(v)),
            (None, Some(v), None) => Ok(Wait::Between(v)),
            (None, None, Some(v)) => Ok(Wait::Pacing(v)),
            _ => Err(serde::de::Error::custom(
                "wait takes exactly one of {constant: S}, {between: [A, B]}, {pacing: S}",
            )),
        }
    }
}

impl Default for Wait {
    fn default() -> Self {
        Wait::Constant(0.0)
    }
}

/// The S3 operations a task can perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Put,
    Get,
    Head,
    Delete,
    List,
    MultipartPut,
    Copy,
    /// One DeleteObjects request removing up to `keys` of the user's own objects.
    DeleteBatch,
    /// PutObjectTagging: replaces a picked object's tags with the task's `tags`.
    PutTagging,
    /// GetObjectTagging of a picked object.
    GetTagging,
    /// One ListObjectVersions page (versioned scenarios): versions and delete markers.
    ListVersions,
}

impl OpKind {
    pub const ALL: [OpKind; 11] = [
        OpKind::Put,
        OpKind::Get,
        OpKind::Head,
        OpKind::Delete,
        OpKind::List,
        OpKind::MultipartPut,
        OpKind::Copy,
        OpKind::DeleteBatch,
        OpKind::PutTagging,
        OpKind::GetTagging,
        OpKind::ListVersions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::Head => "head",
            OpKind::Delete => "delete",
            OpKind::List => "list",
            OpKind::MultipartPut => "multipart_put",
            OpKind::Copy => "copy",
            OpKind::DeleteBatch => "delete_batch",
            OpKind::PutTagging => "put_tagging",
            OpKind::GetTagging => "get_tagging",
            OpKind::ListVersions => "list_versions",
        }
    }

    /// The HTTP method, Locust's "Type" column.
    pub fn method(self) -> &'static str {
        match self {
            OpKind::Put | OpKind::MultipartPut | OpKind::Copy | OpKind::PutTagging => "PUT",
            OpKind::Get | OpKind::List | OpKind::GetTagging | OpKind::ListVersions => "GET",
            OpKind::Head => "HEAD",
            OpKind::Delete => "DELETE",
            OpKind::DeleteBatch => "POST",
        }
    }

    /// Whether the task creates a new object owned by the user.
    pub fn writes(self) -> bool {
        matches!(self, OpKind::Put | OpKind::MultipartPut | OpKind::Copy)
    }

    /// Whether the task needs an existing object to act on.
    pub fn needs_object(self) -> bool {
        matches!(
            self,
            OpKind::Get
                | OpKind::Head
                | OpKind::Delete
                | OpKind::Copy
                | OpKind::DeleteBatch
                | OpKind::PutTagging
                | OpKind::GetTagging
        )
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which objects a task picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChoice {
    /// Objects this user wrote.
    Own,
    /// The prefilled pool shared by all users.
    Shared,
    /// Either of the above.
    Any,
}

/// One weighted task of a user class. Fields that do not apply to `op` are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub op: OpKind,
    /// Name in statistics; defaults to the op. Tasks sharing a name share statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "one")]
    pub weight: i64,
    /// Object size (put, multipart_put).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<SizeSpec>,
    /// Which objects to act on (get, head, delete, copy; for list: which prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyChoice>,
    /// Read a random range of this length instead of the whole object (get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ByteSize>,
    /// Keys per ListObjectsV2 page (list), 1–1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u32>,
    /// Part size (multipart_put), at least 5MiB as S3 requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<ByteSize>,
    /// Parts uploaded concurrently (multipart_put).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_in_flight: Option<u32>,
    /// Keys per DeleteObjects request (delete_batch), 1–1000; checked by `limits::BATCH_KEYS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<i64>,
    /// Group the listing by this delimiter (list), e.g. "/": S3's common prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// The tag set put_tagging writes, 1–10 tags as S3 allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// Address one of the user's own objects by the version id its PUT returned (get,
    /// delete; versioned scenarios). A versioned delete removes that version for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<bool>,
    /// Copy into another bucket of the run's set instead of the same one (copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<CopyTo>,
}

/// Objects to write before the users start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefill {
    pub objects: u64,
    pub size: SizeSpec,
}

fn one() -> i64 {
    1
}

pub const DEFAULT_PART_SIZE: u64 = 8 * ByteSize::MIB;
pub const DEFAULT_PARTS_IN_FLIGHT: u32 = 4;
pub const DEFAULT_MAX_KEYS: u32 = 1000;
const MIN_PART_SIZE: u64 = 5 * ByteSize::MIB;
const MAX_PARTS: u64 = 10_000;
const MAX_PREFILL: u64 = 10_000_000;

impl Task {
    /// The name statistics are kept under.
    pub fn stats_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.op.as_str().to_string())
    }

    pub fn key_choice(&self) -> KeyChoice {
        self.key.unwrap_or(match self.op {
            OpKind::List | OpKind::ListVersions => KeyChoice::Any,
            _ => KeyChoice::Own,
        })
    }

    pub fn part_size(&self) -> u64 {
        self.part_size.map(|s| s.0).unwrap_or(DEFAULT_PART_SIZE)
    }

    pub fn parts_in_flight(&self) -> u32 {
        self.parts_in_flight.unwrap_or(DEFAULT_PARTS_IN_FLIGHT)
    }

    pub fn max_keys(&self) -> u32 {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }

    /// Keys per delete_batch request, as validated (0 for other ops or an invalid value,
    /// which validation refused).
    pub fn batch_keys(&self) -> u32 {
        self.keys
            .and_then(|k| crate::limits::BATCH_KEYS.check_signed("keys", k).ok())
            .and_then(|k| u32::try_from(k).ok())
            .unwrap_or(0)
    }
}

/// Where a scenario came from, for messages ("my.yaml", "built-in s3_small_objects").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source(pub String);

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "unknown scenario '{name}': no built-in scenario and no file has that name; give a \
         YAML scenario file or one of the built-ins: {}", builtin_names().join(", ")
    )]
    Unknown { name: String },
    #[error("cannot read scenario file {path}: {source}; check the path and its permissions")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario file {0}")]
    File(crate::limits::FileError),
    #[error("scenario file {source_name}: {message}; fix the YAML (the schema is in the README, section Scenarios)")]
    Syntax {
        source_name: Source,
        message: String,
    },
    #[error("{}", render_problems(.source_name, .problems))]
    Invalid {
        source_name: Source,
        problems: Vec<Problem>,
    },
}

/// A YAML error as it may be shown: what kind of error, the field path and the position, but
/// never a value from the text. serde's messages quote what they could not parse
/// (`invalid type: string "root:x:0:0..."`), so a file that is not a scenario at all would
/// otherwise be echoed back to whoever named it.
pub fn yaml_error_message(e: &serde_yaml_ng::Error) -> String {
    let full = e.to_string();
    let full = match full.rfind(" at line ") {
        Some(i) if e.location().is_some() => &full[..i],
        _ => full.as_str(),
    };
    let is_quote = |c: char| matches!(c, '"' | '\'' | '`');
    let (kind, tail) = match full.find(", expected ") {
        Some(i) => (&full[..i], &full[i..]),
        None => (full, ""),
    };
    // `missing field `users`` names a schema field; `unknown field `sise`` names the key the
    // file used, shown only when it is shaped like a field name (a typo worth seeing).
    let field_name = |name: &str| {
        !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let unknown_named = kind
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.strip_suffix('`'))
        .is_some_and(field_name);
    let kind = if kind.contains("missing field ") || unknown_named {
        kind.to_string()
    } else {
        match kind.find(is_quote) {
            Some(i) => format!("{} (value not shown)", kind[..i].trim_end()),
            None => kind.to_string(),
        }
    };
    // YAML reads an integer past 2^64 − 1 as no value at all, before any field sees it.
    let mut message = match kind.split_once("invalid type: integer") {
        Some((path, _)) if tail.contains("expected any YAML value") => format!(
            "{path}a whole number too large to read (above 18446744073709551615); every number has a bound, see the README's \"Limits on input\""
        ),
        _ => format!("{kind}{tail}"),
    };
    if let Some(at) = e.location() {
        message.push_str(&format!(" at line {} column {}", at.line(), at.column()));
    }
    message
}

/// One validation problem: the field, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
    pub fix: String,
}

/// Problems shown in one message; the rest are counted.
const PROBLEMS_SHOWN: usize = 50;

fn render_problems(source: &Source, problems: &[Problem]) -> String {
    let mut lines: Vec<String> = problems
        .iter()
        .take(PROBLEMS_SHOWN)
        .map(|p| format!("scenario {source}: {}: {}; {}", p.field, p.message, p.fix))
        .collect();
    if problems.len() > PROBLEMS_SHOWN {
        lines.push(format!(
            "scenario {source}: and {} more problems",
            problems.len() - PROBLEMS_SHOWN
        ));
    }
    lines.join("\n")
}

impl Scenario {
    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str, source: Source) -> Result<Scenario, ScenarioError> {
        let syntax = |message: String| ScenarioError::Syntax {
            source_name: source.clone(),
            message,
        };
        crate::limits::check_yaml_shape(text).map_err(|e| syntax(e.to_string()))?;
        let scenario: Scenario = serde_yaml_ng::from_str(text).map_err(|e| {
            // A limit of the YAML reader itself (alias repetition, recursion) hit inside an
            // untagged field surfaces as "not a size"; parsing without the schema names it.
            match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
                Err(plain) => syntax(yaml_error_message(&plain)),
                Ok(_) => syntax(yaml_error_message(&e)),
            }
        })?;
        let problems = scenario.problems();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Invalid {
                source_name: source,
                problems,
            })
        }
    }

    /// Resolves what an operator typed: a path to a YAML file, a built-in name, or one of the
    /// seed's old paths (`src/chopsticks/scenarios/s3_large_objects.py`), which map to the
    /// built-in of the same name.
    pub fn resolve(spec: &str) -> Result<(Scenario, Source), ScenarioError> {
        let (text, source) = Scenario::locate(spec)?;
        Scenario::from_yaml(&text, source.clone()).map(|s| (s, source))
    }

    /// The YAML text `spec` names and where it came from, read once: a file (read with the
    /// input limits), a built-in name, or a seed path that means a built-in.
    pub fn locate(spec: &str) -> Result<(String, Source), ScenarioError> {
        let path = Path::new(spec);
        // Anything that exists is read as a file, so a directory or a device is named as
        // such instead of "no such file".
        if path.exists() {
            let text =
                crate::limits::read_input_file(path, "scenario").map_err(ScenarioError::File)?;
            return Ok((text, Source(spec.to_string())));
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(spec)
            .to_string();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let bare = !spec.contains('/') && (ext.is_empty() || ext == "yaml" || ext == "yml");
        if bare || ext == "py" {
            if let Some(text) = builtin(&stem) {
                return Ok((text.to_string(), Source(format!("built-in {stem}"))));
            }
        }
        if spec.ends_with(".yaml") || spec.ends_with(".yml") || spec.contains('/') {
            return Err(ScenarioError::Read {
                path: spec.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        Err(ScenarioError::Unknown {
            name: spec.to_string(),
        })
    }

    /// Every problem the types cannot rule out, with its fix.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |field: String, message: String, fix: &str| {
            out.push(Problem {
                field,
                message,
                fix: fix.to_string(),
            })
        };
        use crate::limits::input;
        if self.name.trim().is_empty() {
            push("name".into(), "is empty".into(), "give the scenario a name");
        }
        check_name(&self.name, "name", &mut push);
        if let Some(d) = &self.description {
            let chars = d.chars().count();
            if chars > input::MAX_DESCRIPTION {
                push(
                    "description".into(),
                    format!(
                        "is {chars} characters, above the limit of {}",
                        input::MAX_DESCRIPTION
                    ),
                    "shorten it; a description is a line or a paragraph",
                );
            }
        }
        if self.users.len() > input::MAX_CLASSES {
            push(
                "users".into(),
                format!(
                    "{} user classes, above the limit of {}",
                    self.users.len(),
                    input::MAX_CLASSES
                ),
                "use fewer user classes",
            );
            return out;
        }
        if let Some((ci, class)) = self
            .users
            .iter()
            .enumerate()
            .find(|(_, c)| c.tasks.len() > input::MAX_TASKS_PER_CLASS)
        {
            push(
                format!("users[{ci}].tasks"),
                format!(
                    "{} tasks, above the limit of {} per user class",
                    class.tasks.len(),
                    input::MAX_TASKS_PER_CLASS
                ),
                "use fewer tasks (a task's weight repeats it)",
            );
            return out;
        }
        if self.thresholds.len() > input::MAX_THRESHOLDS {
            push(
                "thresholds".into(),
                format!(
                    "{} thresholds, above the limit of {}",
                    self.thresholds.len(),
                    input::MAX_THRESHOLDS
                ),
                "use fewer thresholds",
            );
            return out;
        }
        let distinct: std::collections::HashSet<Check> = self.checks.iter().copied().collect();
        if distinct.len() != self.checks.len() {
            push(
                "checks".into(),
                format!(
                    "{} entries; each check may be listed once",
                    self.checks.len()
                ),
                "list each check at most once: checks: [readback, listing]",
            );
        }
        if self.users.is_empty() {
            push(
                "users".into(),
                "no user classes".into(),
                "list at least one user class with tasks",
            );
        }
        let mut class_names = std::collections::HashSet::new();
        for (ci, class) in self.users.iter().enumerate() {
            let at = format!("users[{ci}]");
            if !class_names.insert(class.name.as_str()) {
                push(
                    format!("{at}.name"),
                    format!("user class '{}' is defined twice", class.name),
                    "give each user class its own name",
                );
            }
            check_name(&class.name, &format!("{at}.name"), &mut push);
            if class.weight <= 0 {
                push(
                    format!("{at}.weight"),
                    format!("weight {} is not positive", class.weight),
                    "give each user class a weight of 1 or more",
                );
            } else if let Err(e) =
                crate::limits::WEIGHT.check_signed(&format!("{at}.weight"), class.weight)
            {
                push(e.field().to_string(), e.problem(), e.fix());
            }
            check_wait(&class.wait, &format!("{at}.wait"), &mut push);
            if class.tasks.is_empty() {
                push(
                    format!("{at}.tasks"),
                    "no tasks".into(),
                    "list at least one task, e.g. {op: put, size: 4KiB}",
                );
            }
            if class.sequence {
                // A sequence pass repeats each task `weight` times: its length is held in memory.
                let pass = class
                    .tasks
                    .iter()
                    .fold(0i64, |sum, t| sum.saturating_add(t.weight.max(0)));
                if pass > crate::limits::input::MAX_SEQUENCE_PASS {
                    push(
                        format!("{at}.tasks"),
                        format!(
                            "a sequence pass of {pass} tasks (the sum of the weights), above the limit of {}",
                            crate::limits::input::MAX_SEQUENCE_PASS
                        ),
                        "lower the weights of the sequence's tasks",
                    );
                }
            }
            let class_writes = class.tasks.iter().any(|t| t.op.writes());
            for (ti, task) in class.tasks.iter().enumerate() {
                check_task(
                    task,
                    &format!("{at}.tasks[{ti}]"),
                    class_writes,
                    &class.name,
                    self.prefill.is_some(),
                    self.versioning,
                    &mut push,
                );
            }
        }
        if let Some(prefill) = &self.prefill {
            if prefill.objects == 0 || prefill.objects > MAX_PREFILL {
                push(
                    "prefill.objects".into(),
                    format!("{} objects", prefill.objects),
                    &format!("prefill between 1 and {MAX_PREFILL} objects"),
                );
            }
            for (message, fix) in prefill.size.problems() {
                push("prefill.size".into(), message, &fix);
            }
            if let Err(e) = crate::limits::size(
                "prefill.size",
                crate::size::ByteSize(prefill.size.max()),
                crate::limits::MAX_SINGLE_PUT,
                "prefill objects are written with one PUT each (S3 allows at most 5GiB)",
            ) {
                push(e.field().to_string(), e.problem(), e.fix());
            }
        }
        if let Some(lock) = &self.object_lock {
            if !self.versioning {
                push(
                    "object_lock".into(),
                    "object lock needs versioning (S3 locks object versions)".into(),
                    "add versioning: true at the top of the scenario, or remove object_lock",
                );
            }
            if let Err(e) = crate::limits::LOCK_DAYS.check_signed("object_lock.days", lock.days) {
                push(e.field().to_string(), e.problem(), e.fix());
            }
            if lock.mode == LockMode::Compliance && !self.keep {
                push(
                    "object_lock.mode".into(),
                    "COMPLIANCE retention forbids deleting any version before its retention ends, \
                     even for the bucket's owner, so cleanup could not delete the run's locked versions"
                        .into(),
                    "add keep: true (and remove the versions once their retention has passed), \
                     or use mode: GOVERNANCE, whose retention cleanup bypasses",
                );
            }
        }
        if let Some(load) = &self.load {
            for (field, message, fix) in load.problems() {
                push(field, message, &fix);
            }
        }
        if let Some(sweep) = &self.sweep {
            // Only a complete block is checked here: the CLI's flags may fill in the rest.
            if sweep.from.is_some() && sweep.to.is_some() {
                if let Err(e) = crate::load::sweep::SweepPlan::from_block(sweep) {
                    push(e.field, e.problem, &e.fix);
                }
            }
        }
        let names: Vec<String> = self.task_names().into_iter().map(|(n, _)| n).collect();
        let known: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        for (i, t) in self.thresholds.iter().enumerate() {
            for (message, fix) in t.problems(&names, &known) {
                push(format!("thresholds[{i}]"), message, &fix);
            }
        }
        let mut ops_by_name = std::collections::HashMap::new();
        for (ci, class) in self.users.iter().enumerate() {
            for (ti, task) in class.tasks.iter().enumerate() {
                let name = task.stats_name();
                if let Some(previous) = ops_by_name.insert(name.clone(), task.op) {
                    if previous != task.op {
                        push(
                            format!("users[{ci}].tasks[{ti}].name"),
                            format!(
                                "task name '{name}' is used for both {previous} and {}",
                                task.op
                            ),
                            "give tasks with different ops different names",
                        );
                    }
                }
            }
        }
        out
    }

    /// Distinct task names in first-seen order: the rows of every statistics table.
    pub fn task_names(&self) -> Vec<(String, OpKind)> {
        let mut seen = Vec::<(String, OpKind)>::new();
        let mut known = std::collections::HashSet::new();
        for class in &self.users {
            for task in &class.tasks {
                let name = task.stats_name();
                if known.insert(name.clone()) {
                    seen.push((name, task.op));
                }
            }
        }
        seen
    }
}

/// Names appear in every table and file of a run: keep them to a line.
fn check_name(name: &str, field: &str, push: &mut impl FnMut(String, String, &str)) {
    let chars = name.chars().count();
    if chars > crate::limits::input::MAX_NAME {
        push(
            field.into(),
            format!(
                "is {chars} characters, above the limit of {}",
                crate::limits::input::MAX_NAME
            ),
            "use a shorter name",
        );
    }
}

fn check_wait(wait: &Wait, field: &str, push: &mut impl FnMut(String, String, &str)) {
    let ok = |v: f64| v.is_finite() && v >= 0.0;
    let values: Vec<f64> = match *wait {
        Wait::Constant(s) | Wait::Pacing(s) => vec![s],
        Wait::Between([a, b]) => vec![a, b],
    };
    for v in values.into_iter().filter(|v| ok(*v)) {
        if let Err(e) = crate::limits::WAIT.secs(field, v) {
            push(field.into(), e.problem(), e.fix());
            return;
        }
    }
    match *wait {
        Wait::Constant(s) | Wait::Pacing(s) if !ok(s) => push(
            field.into(),
            format!("{s} is not a number of seconds"),
            "use a number of seconds of 0 or more",
        ),
        Wait::Between([a, b]) if !ok(a) || !ok(b) => push(
            field.into(),
            format!("between [{a}, {b}] is not a range of seconds"),
            "use seconds of 0 or more, e.g. {between: [1, 3]}",
        ),
        Wait::Between([a, b]) if b < a => push(
            field.into(),
            format!("between [{a}, {b}] ends before it starts"),
            "write the shorter wait first, e.g. {between: [1, 3]}",
        ),
        _ => {}
    }
}

/// S3's limits on a tag set: 10 tags, keys of 1–128 characters, values of up to 256.
const MAX_TAGS: usize = 10;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
/// Longest list delimiter accepted (S3 sets none; a delimiter is a separator, not a key).
const MAX_DELIMITER: usize = 64;

fn check_tags(
    tags: Option<&std::collections::BTreeMap<String, String>>,
    field: &str,
    push: &mut impl FnMut(String, String, &str),
) {
    let fix = "give 1 to 10 tags, keys of 1-128 characters and values of up to 256, e.g. tags: {team: storage}";
    let Some(tags) = tags else {
        push(field.into(), "op put_tagging needs tags".into(), fix);
        return;
    };
    if tags.is_empty() || tags.len() > MAX_TAGS {
        push(field.into(), format!("{} tags", tags.len()), fix);
    }
    for (k, v) in tags {
        let (kc, vc) = (k.chars().count(), v.chars().count());
        if kc == 0 || kc > MAX_TAG_KEY || vc > MAX_TAG_VALUE {
            push(
                field.into(),
                format!("a tag with a key of {kc} and a value of {vc} characters"),
                fix,
            );
        }
    }
}

fn check_task(
    task: &Task,
    at: &str,
    class_writes: bool,
    class_name: &str,
    has_prefill: bool,
    versioning: bool,
    push: &mut impl FnMut(String, String, &str),
) {
    let op = task.op;
    if task.weight <= 0 {
        push(
            format!("{at}.weight"),
            format!("weight {} is not positive", task.weight),
            "give each task a weight of 1 or more",
        );
    } else if let Err(e) = crate::limits::WEIGHT.check_signed(&format!("{at}.weight"), task.weight)
    {
        push(e.field().to_string(), e.problem(), e.fix());
    }
    if let Some(name) = &task.name {
        check_name(name, &format!("{at}.name"), push);
        if name.trim().is_empty() || name.contains(',') || name.contains('"') {
            push(
                format!("{at}.name"),
                format!("'{name}' is not a usable task name"),
                "use a non-empty name without commas or quotes",
            );
        }
    }
    let refuse = |field: &str, present: bool, push: &mut dyn FnMut(String, String, &str)| {
        if present {
            push(
                format!("{at}.{field}"),
                format!("does not apply to op {op}"),
                "remove it",
            );
        }
    };
    let sized = matches!(op, OpKind::Put | OpKind::MultipartPut);
    refuse("size", task.size.is_some() && !sized, push);
    refuse("range", task.range.is_some() && op != OpKind::Get, push);
    refuse(
        "max_keys",
        task.max_keys.is_some() && !matches!(op, OpKind::List | OpKind::ListVersions),
        push,
    );
    refuse(
        "part_size",
        task.part_size.is_some() && op != OpKind::MultipartPut,
        push,
    );
    refuse(
        "parts_in_flight",
        task.parts_in_flight.is_some() && op != OpKind::MultipartPut,
        push,
    );
    refuse("key", task.key.is_some() && sized, push);
    refuse(
        "keys",
        task.keys.is_some() && op != OpKind::DeleteBatch,
        push,
    );
    refuse(
        "delimiter",
        task.delimiter.is_some() && op != OpKind::List,
        push,
    );
    refuse(
        "tags",
        task.tags.is_some() && op != OpKind::PutTagging,
        push,
    );
    refuse(
        "version",
        task.version.is_some() && !matches!(op, OpKind::Get | OpKind::Delete),
        push,
    );
    refuse("to", task.to.is_some() && op != OpKind::Copy, push);
    if task.version == Some(true) {
        if !versioning {
            push(
                format!("{at}.version"),
                "version: true addresses an object version, but the scenario's buckets are not versioned".into(),
                "add versioning: true at the top of the scenario, or remove version",
            );
        }
        if task.key_choice() != KeyChoice::Own {
            push(
                format!("{at}.key"),
                "version: true picks one of the user's own objects (their version ids are known)"
                    .into(),
                "use key: own (or leave key out) with version: true",
            );
        }
    }
    if op == OpKind::ListVersions && !versioning {
        push(
            format!("{at}.op"),
            "list_versions lists object versions, but the scenario's buckets are not versioned"
                .into(),
            "add versioning: true at the top of the scenario, or use op: list",
        );
    }
    if let Some(d) = &task.delimiter {
        if d.is_empty() || d.len() > MAX_DELIMITER {
            push(
                format!("{at}.delimiter"),
                format!("a delimiter of {} bytes", d.len()),
                "give a delimiter of 1 to 64 bytes, e.g. delimiter: /",
            );
        }
    }
    if op == OpKind::PutTagging {
        check_tags(task.tags.as_ref(), &format!("{at}.tags"), push);
    }
    if op == OpKind::DeleteBatch {
        match task.keys {
            None => push(
                format!("{at}.keys"),
                "op delete_batch needs keys (how many objects one request deletes)".into(),
                crate::limits::BATCH_KEYS.fix,
            ),
            Some(k) => {
                if let Err(e) = crate::limits::BATCH_KEYS.check_signed(&format!("{at}.keys"), k) {
                    push(e.field().to_string(), e.problem(), e.fix());
                }
            }
        }
    }

    if sized {
        match &task.size {
            None => push(
                format!("{at}.size"),
                format!("op {op} needs a size"),
                "add e.g. size: 4KiB",
            ),
            Some(size) => {
                for (message, fix) in size.problems() {
                    push(format!("{at}.size"), message, &fix);
                }
                let (max, fix) = if op == OpKind::Put {
                    (
                        crate::limits::MAX_SINGLE_PUT,
                        "S3 takes at most 5GiB in one PUT; use op: multipart_put for larger objects",
                    )
                } else {
                    (crate::limits::MAX_OBJECT, "S3 objects are at most 5TiB")
                };
                if let Err(e) =
                    crate::limits::size(&format!("{at}.size"), ByteSize(size.max()), max, fix)
                {
                    push(e.field().to_string(), e.problem(), e.fix());
                }
            }
        }
    }
    if task.range == Some(ByteSize(0)) {
        push(
            format!("{at}.range"),
            "a range of 0 bytes reads nothing".into(),
            "give a range of 1 byte or more, or remove range to read whole objects",
        );
    }
    if op == OpKind::MultipartPut {
        let part = task.part_size();
        if part < MIN_PART_SIZE {
            push(
                format!("{at}.part_size"),
                format!("{} is below S3's 5MiB minimum part size", ByteSize(part)),
                "use a part_size of 5MiB or more",
            );
        } else if part > crate::limits::MAX_PART_SIZE {
            push(
                format!("{at}.part_size"),
                format!("{} is above S3's 5GiB maximum part size", ByteSize(part)),
                "use a part_size of 5MiB to 5GiB",
            );
        } else if let Some(size) = &task.size {
            if size.max().div_ceil(part) > MAX_PARTS {
                push(
                    format!("{at}.part_size"),
                    format!(
                        "{} objects in {} parts need more than S3's {MAX_PARTS} parts",
                        ByteSize(size.max()),
                        ByteSize(part)
                    ),
                    "raise part_size",
                );
            }
        }
        let pif = task.parts_in_flight();
        if pif == 0 || pif > 64 {
            push(
                format!("{at}.parts_in_flight"),
                format!("{pif} parts in flight"),
                "use 1 to 64",
            );
        }
    }
    if matches!(op, OpKind::List | OpKind::ListVersions) {
        let mk = task.max_keys();
        if mk == 0 || mk > 1000 {
            push(
                format!("{at}.max_keys"),
                format!("{mk} keys per page"),
                "use 1 to 1000 (S3's page limit)",
            );
        }
    }
    if op.needs_object() {
        let key = task.key_choice();
        if matches!(op, OpKind::Delete | OpKind::DeleteBatch) && key != KeyChoice::Own {
            push(
                format!("{at}.key"),
                format!("{op} may only remove the user's own objects"),
                "use key: own (the shared prefill pool is read by every user and must not shrink)",
            );
        }
        if key == KeyChoice::Own && !class_writes {
            push(
                format!("{at}.key"),
                format!("op {op} reads the user's own objects but user class '{class_name}' never writes one"),
                "add a put task to the class or use key: shared with a prefill",
            );
        }
        if matches!(key, KeyChoice::Shared) && !has_prefill {
            push(
                format!("{at}.key"),
                "key: shared needs the prefilled pool but the scenario has no prefill".into(),
                "add e.g. prefill: {objects: 100, size: 64KiB}",
            );
        }
        if key == KeyChoice::Any && !class_writes && !has_prefill {
            push(
                format!("{at}.key"),
                "key: any has nothing to pick from (no writes, no prefill)".into(),
                "add a put task or a prefill",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> String {
        Scenario::from_yaml(yaml, Source("t.yaml".into()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_design_example_parses() {
        let s = Scenario::from_yaml(
            r#"
name: s3_mixed_workload
users:
  - name: writer
    weight: 1
    wait: {between: [0.5, 1.0]}
    tasks:
      - {op: put, weight: 3, size: {lognormal: {median: 64KiB, max: 10MiB}}}
      - {op: get, weight: 5, key: own}
      - {op: delete, weight: 1}
      - {op: list, weight: 1, max_keys: 100}
prefill: {objects: 1000, size: 10KiB}
verify: true
"#,
            Source("t".into()),
        )
        .unwrap();
        assert_eq!(s.users[0].tasks.len(), 4);
        assert_eq!(s.users[0].wait, Wait::Between([0.5, 1.0]));
        assert!(s.verify && !s.keep);
        assert_eq!(s.prefill.as_ref().unwrap().objects, 1000);
    }

    #[test]
    fn unknown_field_is_named_with_its_location() {
        let e = errors("name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, sise: 4KiB}\n");
        assert!(e.contains("t.yaml"), "{e}");
        assert!(e.contains("unknown field `sise`"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn yaml_syntax_error_names_the_file_and_line() {
        let e = errors("name: x\nusers: [\n");
        assert!(e.contains("t.yaml") && e.contains("line"), "{e}");
    }

    #[test]
    fn zero_and_negative_weights_are_refused() {
        let e = errors(
            "name: x\nusers:\n  - name: a\n    weight: 0\n    tasks:\n      - {op: put, size: 1KiB, weight: -2}\n",
        );
        assert!(
            e.contains("users[0].weight: weight 0 is not positive"),
            "{e}"
        );
        assert!(
            e.contains("users[0].tasks[0].weight: weight -2 is not positive"),
            "{e}"
        );
        assert!(e.contains("give each task a weight of 1 or more"), "{e}");
    }

    #[test]
    fn size_max_below_median_is_refused() {
        let e = errors(
            "name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: {lognormal: {median: 1MiB, max: 4KiB}}}\n",
        );
        assert!(
            e.contains("users[0].tasks[0].size: size max (4KiB) is below median (1MiB); raise max"),
            "{e}"
        );
    }

    #[test]
    fn fields_that_do_not_apply_and_missing_sources_are_refused() {
        let e = errors(
            "name: x\nusers:\n  - name: a\n    tasks:\n      - {op: get, size: 4KiB}\n      - {op: head, key: shared}\n",
        );
        assert!(
            e.contains("tasks[0].size: does not apply to op get; remove it"),
            "{e}"
        );
        assert!(e.contains("never writes one"), "{e}");
        assert!(e.contains("has no prefill"), "{e}");
    }

    #[test]
    fn numbers_yaml_cannot_hold_and_bad_slo_values_get_a_message_with_a_fix() {
        let base = "name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
        let e = Scenario::from_yaml(
            &format!(
                "{base}load:\n  arrival: {{rate: 5/s}}\n  max_in_flight: 18446744073709551616\n"
            ),
            Source("t.yaml".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("too large to read") && e.contains("Limits on input"),
            "{e}"
        );
        for (slo, words) in [
            ("{p99: abc}", "not a latency; write e.g. 200ms"),
            ("{error_rate: abc}", "not a percentage; write e.g. 1%"),
        ] {
            let e = Scenario::from_yaml(
                &format!("{base}sweep: {{from: 5/s, to: 50/s, factor: 2, slo: {slo}}}\n"),
                Source("t.yaml".into()),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("sweep.slo") && e.contains(words), "{e}");
            assert!(!e.contains("abc"), "{e}");
        }
    }

    #[test]
    fn delete_batch_keys_are_bounded_and_named() {
        let task = |t: &str| {
            format!("name: x\nusers:\n  - name: a\n    tasks:\n      - {{op: put, size: 1KiB}}\n      - {t}\n")
        };
        let s = Scenario::from_yaml(
            &task("{op: delete_batch, keys: 1000}"),
            Source("t.yaml".into()),
        )
        .unwrap();
        assert_eq!(s.users[0].tasks[1].batch_keys(), 1000);
        for (t, words) in [
            (
                "{op: delete_batch, keys: 0}",
                "tasks[1].keys: 0 is below the minimum of 1",
            ),
            (
                "{op: delete_batch, keys: 1001}",
                "tasks[1].keys: 1001 is above the limit of 1000",
            ),
            (
                "{op: delete_batch, keys: -4}",
                "tasks[1].keys: -4 is below the minimum of 1",
            ),
            (
                "{op: delete_batch}",
                "tasks[1].keys: op delete_batch needs keys",
            ),
            (
                "{op: delete_batch, keys: 5, key: shared}",
                "delete_batch may only remove the user's own objects",
            ),
            (
                "{op: delete, keys: 5}",
                "tasks[1].keys: does not apply to op delete",
            ),
        ] {
            let e = errors(&task(t));
            assert!(e.contains(words), "{t}: {e}");
            assert!(
                e.contains("S3 takes 1 to 1000 keys")
                    || e.contains("remove it")
                    || e.contains("key: own"),
                "{t}: a fix is given: {e}"
            );
        }
    }

    #[test]
    fn tagging_and_delimiter_fields_are_checked() {
        let task = |t: &str| {
            format!("name: x\nusers:\n  - name: a\n    tasks:\n      - {{op: put, size: 1KiB}}\n      - {t}\n")
        };
        let s = Scenario::from_yaml(
            &task("{op: put_tagging, tags: {team: storage, tier: \"1\"}}"),
            Source("t.yaml".into()),
        )
        .unwrap();
        assert_eq!(s.users[0].tasks[1].tags.as_ref().unwrap().len(), 2);
        Scenario::from_yaml(&task("{op: list, delimiter: /}"), Source("t".into())).unwrap();
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}: v")).collect();
        for (t, words) in [
            (
                "{op: put_tagging}".to_string(),
                "tasks[1].tags: op put_tagging needs tags",
            ),
            (
                "{op: put_tagging, tags: {}}".to_string(),
                "tasks[1].tags: 0 tags",
            ),
            (
                format!("{{op: put_tagging, tags: {{{}}}}}", eleven.join(", ")),
                "tasks[1].tags: 11 tags",
            ),
            (
                format!("{{op: put_tagging, tags: {{{}: v}}}}", "k".repeat(129)),
                "a key of 129",
            ),
            (
                "{op: get_tagging, tags: {a: b}}".to_string(),
                "tasks[1].tags: does not apply to op get_tagging",
            ),
            (
                "{op: list, delimiter: \"\"}".to_string(),
                "tasks[1].delimiter: a delimiter of 0 bytes",
            ),
            (
                "{op: get, delimiter: /}".to_string(),
                "tasks[1].delimiter: does not apply to op get",
            ),
        ] {
            let e = errors(&task(&t));
            assert!(e.contains(words), "{t}: {e}");
        }
    }

    #[test]
    fn versioned_scenarios_round_trip_through_yaml() {
        let s = Scenario::from_yaml(
            "name: v\nversioning: true\nobject_lock: {mode: GOVERNANCE, days: 7}\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n      - {op: delete, version: true}\n      - {op: list_versions, max_keys: 10}\n",
            Source("t".into()),
        )
        .unwrap();
        let lock = s.object_lock.unwrap();
        assert_eq!((lock.mode, lock.days()), (LockMode::Governance, 7));
        assert_eq!(s.users[0].tasks[2].key_choice(), KeyChoice::Any);
        let text = serde_yaml_ng::to_string(&s).unwrap();
        assert!(text.contains("mode: GOVERNANCE"), "{text}");
        let back = Scenario::from_yaml(&text, Source("round trip".into())).unwrap();
        assert_eq!(back, s);
        // An unversioned scenario writes neither key.
        let (plain, _) = Scenario::resolve("s3_mixed_workload").unwrap();
        let text = serde_yaml_ng::to_string(&plain).unwrap();
        assert!(
            !text.contains("versioning") && !text.contains("object_lock"),
            "{text}"
        );
    }

    #[test]
    fn multipart_parts_are_checked() {
        let e = errors(
            "name: x\nusers:\n  - name: a\n    tasks:\n      - {op: multipart_put, size: 10MiB, part_size: 1MiB}\n",
        );
        assert!(e.contains("below S3's 5MiB minimum part size"), "{e}");
    }

    #[test]
    fn syntax_errors_never_quote_the_text() {
        for (text, kind) in [
            (
                "root:x:0:0:SECRET-LINE:/root:/bin/bash\n",
                "invalid type: string",
            ),
            ("SECRET-TOKEN-0123456789abcdef\n", "invalid type: string"),
            (
                "name: x\nSECRET KEY: 1\nusers: []\n",
                "unknown field (value not shown)",
            ),
            (
                "name: x\nSECRET.KEY: 1\nusers: []\n",
                "unknown field (value not shown)",
            ),
            ("name: [SECRET-VALUE\n", "line"),
            (
                "name: x\nusers:\n  - name: a\n    weight: SECRET-WEIGHT\n    tasks: []\n",
                "invalid type: string",
            ),
        ] {
            let e = Scenario::from_yaml(text, Source("t.yaml".into()))
                .unwrap_err()
                .to_string();
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.contains(kind), "{e}");
            assert!(e.contains("scenario file t.yaml"), "{e}");
        }
        let e = Scenario::from_yaml("name: x\n", Source("t.yaml".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing field `users`") && e.contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn the_arrival_block_parses_and_bad_values_are_named() {
        let base = "name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
        let s = Scenario::from_yaml(
            &format!(
                "{base}load:\n  arrival: {{rate: 500/s, poisson: true}}\n  max_in_flight: 20\n  max_connections: 8\n"
            ),
            Source("t.yaml".into()),
        )
        .unwrap();
        let plan = ArrivalPlan::from_load(s.load.as_deref(), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                plan.rate,
                plan.poisson,
                plan.max_in_flight,
                plan.max_connections
            ),
            (500.0, true, 20, Some(8))
        );
        for (load, field, words) in [
            (
                "arrival: {rate: 0/s}",
                "load.arrival.rate",
                "below the minimum",
            ),
            (
                "arrival: {rate: -5/s}",
                "load.arrival.rate",
                "below the minimum",
            ),
            (
                "arrival: {rate: -5}",
                "load.arrival.rate",
                "below the minimum",
            ),
            (
                "arrival: {rate: fast}",
                "load.arrival.rate",
                "'fast' is not a rate",
            ),
            (
                "{arrival: {rate: 5/s}, max_in_flight: 0}",
                "load.max_in_flight",
                "below the minimum of 1",
            ),
            (
                "{arrival: {rate: 5/s}, max_in_flight: -3}",
                "load.max_in_flight",
                "below the minimum of 1",
            ),
            ("{max_in_flight: 3}", "load.arrival", "offers no load"),
            (
                "{arrival: {rate: 5/s}, max_connections: 0}",
                "load.max_connections",
                "below the minimum of 1",
            ),
            (
                "{arrival: {rate: 5/s}, max_connections: 2000000}",
                "load.max_connections",
                "above the limit",
            ),
            (
                "{users: {stages: [{users: 2, for: 1s}]}, max_connections: 4}",
                "load.max_connections",
                "users stages have none",
            ),
        ] {
            let load = if load.starts_with('{') {
                load.to_string()
            } else {
                format!("{{{load}}}")
            };
            let e = errors(&format!("{base}load: {load}\n"));
            assert!(
                e.contains(&format!("scenario t.yaml: {field}: ")),
                "{load}: {e}"
            );
            assert!(e.contains(words), "{load}: {e}");
            assert!(e.contains("e.g."), "{load}: a fix is given: {e}");
        }
        // The text written comes back from run.json as written.
        let text = serde_yaml_ng::to_string(&s).unwrap();
        assert!(text.contains("rate: 500/s"), "{text}");
    }

    #[test]
    fn unknown_scenario_lists_builtins() {
        let e = Scenario::resolve("s3_nonexistent").unwrap_err().to_string();
        assert!(e.contains("unknown scenario 's3_nonexistent'"), "{e}");
        assert!(e.contains("s3_large_objects"), "{e}");
        let e = Scenario::resolve("/no/such/file.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read scenario file /no/such/file.yaml"),
            "{e}"
        );
    }

    #[test]
    fn seed_paths_resolve_to_builtins() {
        let (s, source) =
            Scenario::resolve("src/chopsticks/scenarios/s3_large_objects.py").unwrap();
        assert_eq!(s.name, "s3_large_objects");
        assert_eq!(source.0, "built-in s3_large_objects");
        let (s, _) = Scenario::resolve("s3_small_objects.yaml").unwrap();
        assert_eq!(s.name, "s3_small_objects");
    }

    #[test]
    fn resolved_scenarios_round_trip_through_yaml() {
        for name in builtin_names() {
            let (s, _) = Scenario::resolve(name).unwrap();
            let text = serde_yaml_ng::to_string(&s).unwrap();
            let back = Scenario::from_yaml(&text, Source("round trip".into())).unwrap();
            assert_eq!(back, s, "{name}");
        }
    }
}
