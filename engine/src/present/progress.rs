//! The live view of a standalone run: a progress bar on a terminal, a status line every ten
//! seconds otherwise (so logs captured by CI stay readable).

use crate::control::{RunState, Status};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Renders status updates of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            last_line: Instant::now(),
        }
    }

    pub fn update(&mut self, s: &Status) {
        let line = line(s);
        match &self.bar {
            Some(bar) => {
                if let Some(total) = s.duration_s {
                    bar.set_length((total * 10.0) as u64);
                    bar.set_position((s.elapsed_s.min(total) * 10.0) as u64);
                }
                bar.set_message(line);
            }
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(10) || s.state.is_terminal() {
                    eprintln!("{line}");
                    self.last_line = Instant::now();
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn line(s: &Status) -> String {
    let failures = if s.requests > 0 {
        100.0 * s.failures as f64 / s.requests as f64
    } else {
        0.0
    };
    let state = match s.state {
        RunState::Preparing => "preparing (bucket check, prefill)".to_string(),
        other => other.to_string(),
    };
    format!(
        "{state} | users {}/{} | {:.0} req/s | {:.2} MB/s | {} requests, {} failures ({failures:.2}%)",
        s.users_running, s.users_target, s.current_rps, s.current_mb_per_s, s.requests, s.failures
    )
}
