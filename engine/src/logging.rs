//! Logs go to journald under systemd (so `journalctl -u chopsticks-*` shows them with
//! priorities) and to stderr otherwise; with `--log-file` also to a file (the charm's units write
//! `/var/log/chopsticks/*.log`, which the Canonical Observability Stack's collector tails).
//!
//! The file is rotated by size inside the daemon ([`LOG_FILE_BYTES`], [`LOG_FILES_KEPT`] old
//! files): its disk use is bounded however fast it logs (a daily logrotate run is not, e.g. at
//! debug level under load), no line is lost in a copy-and-truncate window, and the unit needs
//! no signal to reopen it. Every file is created 0640.
//!
//! Libraries below us (the embedded target's s3s, hyper, the AWS SDK via `tracing`'s log
//! bridge) log every request at info; one shared filter keeps them to warnings and errors
//! whichever backend is in use.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

/// Size at which a log file is rotated.
pub const LOG_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Rotated files kept beside the current one (`NAME.1` … `NAME.5`): at most 60 MiB a daemon.
pub const LOG_FILES_KEPT: usize = 5;
/// Mode of every log file: the service user writes, its group (operators) reads.
pub const LOG_FILE_MODE: u32 = 0o640;

/// A `--log-file` that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("--log-file {path}: cannot open it for appending ({source}); give a file in a writable directory")]
pub struct LogFileError {
    path: String,
    #[source]
    source: std::io::Error,
}

type RotatingFile = file_rotate::FileRotate<file_rotate::suffix::AppendCount>;

fn log_file_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).create(true).append(true).mode(LOG_FILE_MODE);
    o
}

/// Opens `path` for appending (checked here, so a bad path is a clear error at start and
/// not a failure inside the rotating writer), rotated by size.
fn open_log_file(path: &Path) -> Result<RotatingFile, LogFileError> {
    let err = |source| LogFileError {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    log_file_options().open(path).map_err(err)?;
    Ok(file_rotate::FileRotate::new(
        path,
        file_rotate::suffix::AppendCount::new(LOG_FILES_KEPT),
        file_rotate::ContentLimit::BytesSurpassed(LOG_FILE_BYTES),
        file_rotate::compression::Compression::None,
        Some(log_file_options()),
    ))
}

/// Writes one record to the file. A failure to write (disk full, the directory removed) must
/// never take the daemon down: the line is dropped and the journal still has it.
fn write_line(file: &Mutex<RotatingFile>, record: &log::Record<'_>) {
    let line = format!(
        "{} {} {}: {}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        record.level(),
        record.target(),
        record.args()
    );
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Ok(mut f) = file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }));
}

/// Module prefixes limited to warnings: per-request chatter from libraries.
const QUIET: [&str; 6] = ["tracing", "s3s", "hyper", "aws_", "h2", "rustls"];

fn filter(level: log::LevelFilter) -> env_filter::Filter {
    let mut builder = env_filter::Builder::new();
    builder.filter_level(level);
    for module in QUIET {
        builder.filter_module(module, log::LevelFilter::Warn.min(level));
    }
    // s3s reports the demo target's expected "not implemented" answers as errors.
    builder.filter_module("s3s", log::LevelFilter::Off);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse(&spec);
    }
    builder.build()
}

/// Journald with the shared filter in front.
struct Filtered<L> {
    filter: env_filter::Filter,
    inner: L,
    /// `--log-file`: every record also goes there.
    file: Option<Mutex<RotatingFile>>,
}

impl<L: log::Log> log::Log for Filtered<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.filter.matches(record) {
            self.inner.log(record);
            if let Some(file) = &self.file {
                write_line(file, record);
            }
        }
    }

    fn flush(&self) {
        self.inner.flush();
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                let _ = f.flush();
            }
        }
    }
}

/// Starts logging at `level` (`error`..`trace`); `RUST_LOG` refines it. `log_file`: also
/// append to that file, rotated by size.
pub fn init(level: log::LevelFilter, log_file: Option<&Path>) -> Result<(), LogFileError> {
    let filter = filter(level);
    let max = filter.filter();
    let mut file = log_file.map(open_log_file).transpose()?.map(Mutex::new);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journal) = systemd_journal_logger::JournalLog::new() {
            let logger = Filtered {
                filter,
                inner: journal,
                file: file.take(),
            };
            if log::set_boxed_logger(Box::new(logger)).is_ok() {
                log::set_max_level(max);
            }
            return Ok(());
        }
    }
    let stderr = env_logger::Builder::new()
        .filter_level(log::LevelFilter::Trace)
        .format_timestamp_millis()
        .write_style(if std::io::stderr().is_terminal() {
            env_logger::WriteStyle::Auto
        } else {
            env_logger::WriteStyle::Never
        })
        .build();
    let logger = Filtered {
        filter: self::filter(level),
        inner: stderr,
        file,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn log_files_are_0640_and_rotate_by_size_keeping_five() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chopsticks/coordinator.log");
        let mut file = open_log_file(&path).unwrap();
        assert_eq!(mode(&path), 0o640);
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        // Seven files' worth: the current one plus five rotated, the oldest dropped.
        for _ in 0..(7 * LOG_FILE_BYTES / line.len() + 10) {
            file.write_all(&line).unwrap();
        }
        file.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "coordinator.log",
                "coordinator.log.1",
                "coordinator.log.2",
                "coordinator.log.3",
                "coordinator.log.4",
                "coordinator.log.5"
            ]
        );
        for name in &names {
            let p = path.with_file_name(name);
            assert_eq!(mode(&p), 0o640, "{name}");
            let len = std::fs::metadata(&p).unwrap().len() as usize;
            assert!(len <= LOG_FILE_BYTES + line.len(), "{name}: {len}");
        }
    }

    #[test]
    fn an_unwritable_log_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let e = match open_log_file(&blocker.join("x.log")) {
            Ok(_) => panic!("a log file under a regular file was opened"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.starts_with(&format!(
                "--log-file {}/x.log: cannot open it",
                blocker.display()
            )),
            "{e}"
        );
    }
}
