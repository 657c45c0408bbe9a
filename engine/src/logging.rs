//! Logs go to journald under systemd (so `journalctl -u chopsticks-*` shows them with
//! priorities) and to stderr otherwise.
//!
//! Libraries below us (the embedded target's s3s, hyper, the AWS SDK via `tracing`'s log
//! bridge) log every request at info; one shared filter keeps them to warnings and errors
//! whichever backend is in use.

use std::io::IsTerminal;

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
}

impl<L: log::Log> log::Log for Filtered<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.filter.matches(record) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Starts logging at `level` (`error`..`trace`); `RUST_LOG` refines it.
pub fn init(level: log::LevelFilter) {
    let filter = filter(level);
    let max = filter.filter();
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journal) = systemd_journal_logger::JournalLog::new() {
            let logger = Filtered {
                filter,
                inner: journal,
            };
            if log::set_boxed_logger(Box::new(logger)).is_ok() {
                log::set_max_level(max);
                return;
            }
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
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}
