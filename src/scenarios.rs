//! Which scenario a `start-test` names, and its YAML text.
//!
//! Actions run as root, so an operator's `scenario-file` must never open an arbitrary path:
//! files are read only from the charm's scenario directory (`/var/lib/chopsticks/scenarios`),
//! by a plain name, without following a symlink and only if it is a small regular file. The
//! charm sends the text itself to the coordinator, which opens no path. Built-in names and the
//! seed's old paths (`src/chopsticks/scenarios/X.py`) still work. No error quotes the file.

use chopsticks::load::scenario::{builtin, builtin_names, Scenario, ScenarioError, Source};
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::io::Read;
use std::path::Path;

/// The largest scenario file the charm reads.
pub const MAX_SCENARIO_BYTES: u64 = 256 * 1024;

/// A scenario chosen and read: what the coordinator is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenScenario {
    /// Where it came from: the built-in's name or the file's path, for results and run.json.
    pub label: String,
    /// The YAML text (already checked to be a valid scenario).
    pub yaml: String,
}

/// Why a `scenario-file` is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioFileError {
    #[error(
        "scenario-file={given}: scenario files are read only from {dir}; copy the file there \
         (juju scp FILE chopsticks/leader:/tmp/ and juju ssh chopsticks/leader -- sudo install -m 0644 \
         /tmp/FILE {dir}/) and give its name, or use a built-in: {builtins}"
    )]
    OutsideDir {
        given: String,
        dir: String,
        builtins: String,
    },
    /// Neither a built-in nor a file in the directory: the engine's own refusal (the words
    /// `chopsticks run` and the control API use), after where the charm looked.
    #[error("scenario-file={given} (files are read from {dir}): {source}")]
    Unknown {
        given: String,
        dir: String,
        #[source]
        source: ScenarioError,
    },
    #[error("scenario-file={given}: {dir}/{given} {problem}")]
    Unreadable {
        given: String,
        dir: String,
        problem: FileProblem,
    },
    #[error("scenario-file={given}: {source}")]
    Invalid {
        given: String,
        #[source]
        source: ScenarioError,
    },
}

/// The largest `scenarios` option the charm reads (every entry together).
pub const MAX_SCENARIOS_OPTION_BYTES: usize = 1024 * 1024;

/// One entry of the `scenarios` option: a name and its scenario's YAML text.
#[derive(Debug, Clone, PartialEq)]
pub struct Configured {
    pub name: String,
    pub yaml: String,
}

/// Why the `scenarios` option cannot be read. The message names the option and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfiguredError {
    #[error(
        "the scenarios option is not a YAML map of name to scenario ({0}); e.g. \
         juju config chopsticks scenarios=@scenarios.yaml with a file like \
         'mine: {{name: mine, users: [...]}}'"
    )]
    NotAMap(String),
    #[error(
        "the scenarios option is larger than {MAX_SCENARIOS_OPTION_BYTES} bytes; keep a few \
         short scenarios there"
    )]
    TooLarge,
    #[error("scenarios: '{name}' is not a usable name; use letters, digits, '-', '_' and '.' (not first)")]
    BadName { name: String },
    #[error("scenarios: '{name}' is the name of a built-in scenario; give yours another name")]
    ShadowsBuiltin { name: String },
}

/// Reads the `scenarios` option (a YAML map of name → scenario, each scenario a mapping or
/// its YAML text). The scenarios themselves are checked when used or listed.
pub fn configured(option: &str) -> Result<Vec<Configured>, ConfiguredError> {
    if option.len() > MAX_SCENARIOS_OPTION_BYTES {
        return Err(ConfiguredError::TooLarge);
    }
    if option.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: std::collections::BTreeMap<String, serde_yaml_ng::Value> =
        serde_yaml_ng::from_str(option).map_err(|e| {
            ConfiguredError::NotAMap(chopsticks::load::scenario::yaml_error_message(&e))
        })?;
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let usable = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !usable {
            return Err(ConfiguredError::BadName { name });
        }
        if builtin(&name).is_some() {
            return Err(ConfiguredError::ShadowsBuiltin { name });
        }
        let yaml = match value {
            serde_yaml_ng::Value::String(text) => text,
            other => serde_yaml_ng::to_string(&other).map_err(|e| {
                ConfiguredError::NotAMap(chopsticks::load::scenario::yaml_error_message(&e))
            })?,
        };
        out.push(Configured { name, yaml });
    }
    Ok(out)
}

/// Why a scenario given as text (the action's `scenario` parameter) is refused.
#[derive(Debug, thiserror::Error)]
pub enum InlineError {
    #[error("scenario is larger than {MAX_SCENARIO_BYTES} bytes; a scenario is a short YAML text")]
    TooLarge,
    /// The engine's validation message.
    #[error("scenario: {0}")]
    Invalid(#[source] ScenarioError),
}

/// The label a scenario given as the action's text carries in run.json and the results.
pub const INLINE_LABEL: &str = "start-test scenario parameter";

/// A scenario given as YAML text, checked by the engine's parser.
pub fn inline(text: &str) -> Result<ChosenScenario, InlineError> {
    if text.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(InlineError::TooLarge);
    }
    Scenario::from_yaml(text, Source(INLINE_LABEL.to_string())).map_err(InlineError::Invalid)?;
    Ok(ChosenScenario {
        label: INLINE_LABEL.to_string(),
        yaml: text.to_string(),
    })
}

/// Resolves `given` against the `scenarios` option's names first, then like [`choose`].
pub fn choose_with(
    given: &str,
    configured: &[Configured],
    dir: &Path,
) -> Result<ChosenScenario, ScenarioFileError> {
    match configured.iter().find(|c| c.name == given) {
        Some(c) => compile(given, &format!("scenarios option: {}", c.name), &c.yaml),
        None => choose(given, dir),
    }
}

/// A scenario `list-scenarios` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub name: String,
    /// `built-in`, `scenarios option` or `file in DIR`.
    pub origin: String,
    /// The scenario's description (or its `name:` when it has none); for one that does not
    /// compile, the engine's message.
    pub description: Result<String, String>,
}

fn describe(text: &str, label: &str) -> Result<String, String> {
    Scenario::from_yaml(text, Source(label.to_string()))
        .map(|s| s.description.unwrap_or_else(|| format!("({})", s.name)))
        .map_err(|e| e.to_string())
}

/// The built-ins, then the configured scenarios, then the operator's files (names only; their
/// content is read only through the same checks as `start-test`).
pub fn list(configured: &[Configured], dir: &Path) -> Vec<Listed> {
    let mut out: Vec<Listed> = builtin_names()
        .iter()
        .filter_map(|name| {
            builtin(name).map(|text| Listed {
                name: name.to_string(),
                origin: "built-in".into(),
                description: describe(text, name),
            })
        })
        .collect();
    out.extend(configured.iter().map(|c| Listed {
        name: c.name.clone(),
        origin: "scenarios option".into(),
        description: describe(&c.yaml, &format!("scenarios option: {}", c.name)),
    }));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.') && (n.ends_with(".yaml") || n.ends_with(".yml")))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for name in files {
        let description = match choose(&name, dir) {
            Ok(c) => describe(&c.yaml, &c.label),
            Err(e) => Err(e.to_string()),
        };
        out.push(Listed {
            name,
            origin: format!("file in {}", dir.display()),
            description,
        });
    }
    out
}

/// Resolves `given` against the built-ins and the files in `dir`.
pub fn choose(given: &str, dir: &Path) -> Result<ChosenScenario, ScenarioFileError> {
    let builtins = || builtin_names().join(", ");
    let dir_text = dir.display().to_string();
    let outside = || ScenarioFileError::OutsideDir {
        given: given.to_string(),
        dir: dir_text.clone(),
        builtins: builtins(),
    };
    // The seed's paths name the built-in of the same name; nothing is opened.
    if let Some(stem) = given
        .strip_suffix(".py")
        .map(|p| p.rsplit('/').next().unwrap_or(p))
    {
        return match builtin(stem) {
            Some(text) => compile(given, stem, text),
            None => Err(outside()),
        };
    }
    let name = match given.strip_prefix(&format!("{dir_text}/")) {
        Some(rest) => rest,
        None if given.contains('/') => return Err(outside()),
        None => given,
    };
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(outside());
    }
    match read_in_dir(dir, name) {
        Ok(Some(text)) => compile(given, &dir.join(name).display().to_string(), &text),
        Ok(None) => {
            let stem = name
                .strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))
                .unwrap_or(name);
            match builtin(stem) {
                Some(text) => compile(given, stem, text),
                None => Err(ScenarioFileError::Unknown {
                    given: given.to_string(),
                    dir: dir_text,
                    source: ScenarioError::Unknown {
                        name: given.to_string(),
                    },
                }),
            }
        }
        Err(problem) => Err(ScenarioFileError::Unreadable {
            given: name.to_string(),
            dir: dir_text,
            problem,
        }),
    }
}

fn compile(given: &str, label: &str, text: &str) -> Result<ChosenScenario, ScenarioFileError> {
    Scenario::from_yaml(text, Source(label.to_string())).map_err(|source| {
        ScenarioFileError::Invalid {
            given: given.to_string(),
            source,
        }
    })?;
    Ok(ChosenScenario {
        label: label.to_string(),
        yaml: text.to_string(),
    })
}

/// Why a file in the scenario directory is not read. No variant carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("cannot be read: the directory {0}")]
    Directory(nix::errno::Errno),
    #[error("is a symbolic link; put the scenario file itself in the directory")]
    Symlink,
    #[error("cannot be opened ({0})")]
    Open(nix::errno::Errno),
    #[error("cannot be read ({0})")]
    Stat(nix::errno::Errno),
    #[error("is not a regular file")]
    NotRegular,
    #[error("has other hard links; copy the file instead of linking it")]
    HardLinked,
    #[error("is larger than {MAX_SCENARIO_BYTES} bytes; a scenario is a short YAML file")]
    TooLarge,
    #[error("cannot be read ({0})")]
    Read(std::io::ErrorKind),
    #[error("is not UTF-8 text; a scenario is a YAML file")]
    NotText,
}

/// Reads `dir/name` without following a symlink at either step; `None` when there is no such
/// file. The problem never includes the file's content.
fn read_in_dir(dir: &Path, name: &str) -> Result<Option<String>, FileProblem> {
    let dir_fd = match open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(FileProblem::Directory(e)),
    };
    let fd = match openat(
        &dir_fd,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(nix::errno::Errno::ELOOP) => return Err(FileProblem::Symlink),
        Err(e) => return Err(FileProblem::Open(e)),
    };
    let stat = fstat(&fd).map_err(FileProblem::Stat)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(FileProblem::NotRegular);
    }
    if stat.st_nlink != 1 {
        return Err(FileProblem::HardLinked);
    }
    if stat.st_size as u64 > MAX_SCENARIO_BYTES {
        return Err(FileProblem::TooLarge);
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileProblem::Read(e.kind()))?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(FileProblem::TooLarge);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| FileProblem::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const CANARY: &str = "CANARY-7f3e-not-a-scenario";

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("scenarios");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(root.path().join("secret"), format!("{CANARY}\n")).unwrap();
        (root, dir)
    }

    fn refused(given: &str, dir: &Path) -> String {
        let e = choose(given, dir).unwrap_err().to_string();
        assert!(!e.contains(CANARY), "{e}");
        e
    }

    const MINE: &str = "name: mine\ndescription: My own mix\nusers:\n  - name: u\n    tasks:\n      - {op: put, size: 1KiB}\n";

    #[test]
    fn the_scenarios_option_is_a_map_of_names_to_scenarios() {
        let (_root, dir) = setup();
        let option = format!(
            "mine: {{name: mine, description: My own mix, users: [{{name: u, tasks: [{{op: put, size: 1KiB}}]}}]}}\n\
             text: |\n  {}\nbroken: {{name: broken}}\n",
            MINE.trim_end().replace('\n', "\n  ")
        );
        let entries = configured(&option).unwrap();
        let names: Vec<&str> = entries.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["broken", "mine", "text"]);
        let c = choose_with("mine", &entries, &dir).unwrap();
        assert_eq!(c.label, "scenarios option: mine");
        assert!(Scenario::from_yaml(&c.yaml, Source("t".into())).is_ok());
        assert_eq!(
            choose_with("text", &entries, &dir).unwrap().yaml.trim_end(),
            MINE.trim_end()
        );
        // Built-ins still resolve; a bad entry is refused with the engine's message.
        assert!(choose_with("s3_small_objects", &entries, &dir).is_ok());
        let e = choose_with("broken", &entries, &dir)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("scenario-file=broken: "), "{e}");
        assert!(e.contains("users"), "{e}");

        assert!(configured("").unwrap().is_empty());
        assert!(configured("[a, b]")
            .unwrap_err()
            .to_string()
            .starts_with("the scenarios option is not a YAML map"));
        assert!(configured("s3_small_objects: {name: x}")
            .unwrap_err()
            .to_string()
            .contains("built-in"));
        assert!(configured("'../x': {name: x}")
            .unwrap_err()
            .to_string()
            .contains("not a usable name"));
        assert!(matches!(
            configured(&"#".repeat(MAX_SCENARIOS_OPTION_BYTES + 1)),
            Err(ConfiguredError::TooLarge)
        ));
    }

    #[test]
    fn inline_scenarios_are_checked_by_the_engine() {
        let c = inline(MINE).unwrap();
        assert_eq!(c.yaml, MINE);
        assert_eq!(c.label, INLINE_LABEL);
        let e = inline("name: x\nusers: []\n").unwrap_err().to_string();
        let engine = Scenario::from_yaml("name: x\nusers: []\n", Source(INLINE_LABEL.into()))
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("scenario: {engine}"));
        assert!(matches!(
            inline(&"#".repeat(MAX_SCENARIO_BYTES as usize + 1)),
            Err(InlineError::TooLarge)
        ));
    }

    #[test]
    fn list_shows_builtins_configured_and_files_with_descriptions() {
        let (_root, dir) = setup();
        std::fs::write(dir.join("file.yaml"), MINE).unwrap();
        std::fs::write(dir.join("bad.yaml"), "name: bad\n").unwrap();
        let entries = configured(&format!(
            "mine: |\n  {}\n",
            MINE.trim_end().replace('\n', "\n  ")
        ))
        .unwrap();
        let listed = list(&entries, &dir);
        let builtins = builtin_names().len();
        assert_eq!(listed.len(), builtins + 3);
        assert!(listed[..builtins]
            .iter()
            .all(|l| l.origin == "built-in" && l.description.is_ok()));
        assert_eq!(listed[builtins].name, "mine");
        assert_eq!(listed[builtins].description.as_deref(), Ok("My own mix"));
        assert_eq!(listed[builtins + 1].name, "bad.yaml");
        assert!(listed[builtins + 1].description.is_err());
        assert_eq!(listed[builtins + 2].name, "file.yaml");
        assert!(listed[builtins + 2].origin.starts_with("file in "));
    }

    #[test]
    fn builtins_and_seed_paths_need_no_file() {
        let (_root, dir) = setup();
        let c = choose("s3_small_objects", &dir).unwrap();
        assert_eq!(c.label, "s3_small_objects");
        assert_eq!(c.yaml, builtin("s3_small_objects").unwrap());
        let c = choose("src/chopsticks/scenarios/s3_large_objects.py", &dir).unwrap();
        assert_eq!(c.label, "s3_large_objects");
        assert!(choose("s3_small_objects.yaml", &dir).is_ok());
    }

    #[test]
    fn files_come_only_from_the_directory() {
        let (root, dir) = setup();
        let mine = "name: mine\nusers:\n  - name: u\n    tasks:\n      - {op: put, size: 1KiB}\n";
        std::fs::write(dir.join("mine.yaml"), mine).unwrap();
        let c = choose("mine.yaml", &dir).unwrap();
        assert_eq!(c.yaml, mine);
        assert_eq!(c.label, dir.join("mine.yaml").display().to_string());
        let full = dir.join("mine.yaml").display().to_string();
        assert_eq!(choose(&full, &dir).unwrap().yaml, mine);

        let secret = root.path().join("secret").display().to_string();
        assert!(refused(&secret, &dir).contains("read only from"));
        assert!(refused("../secret", &dir).contains("read only from"));
        assert!(refused(&format!("{}/../secret", dir.display()), &dir).contains("read only from"));
        assert!(refused(".hidden", &dir).contains("read only from"));
        std::os::unix::fs::symlink(root.path().join("secret"), dir.join("link.yaml")).unwrap();
        assert!(refused("link.yaml", &dir).contains("symbolic link"));
        std::fs::hard_link(root.path().join("secret"), dir.join("hard.yaml")).unwrap();
        assert!(refused("hard.yaml", &dir).contains("hard links"));
        std::fs::create_dir(dir.join("sub.yaml")).unwrap();
        assert!(refused("sub.yaml", &dir).contains("not a regular file"));
        std::fs::write(dir.join("big.yaml"), vec![b'#'; 300 * 1024]).unwrap();
        assert!(refused("big.yaml", &dir).contains("larger than"));
        assert!(refused("nope.yaml", &dir).contains("no built-in scenario and no file"));
        // A file in the directory that is not a scenario: the error names no content.
        std::fs::write(dir.join("bad.yaml"), format!("{CANARY}\n")).unwrap();
        assert!(refused("bad.yaml", &dir).contains("invalid type: string (value not shown)"));
        // The directory itself may not be a symlink either.
        let other = root.path().join("other");
        std::os::unix::fs::symlink(&dir, &other).unwrap();
        assert!(refused("mine.yaml", &other).contains("cannot be read"));
    }
}
