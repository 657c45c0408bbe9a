//! The states of a run, as run.json, summary.json, the API and every view name them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The states of a run (DESIGN.md §3). A finished test is `completed`, never `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Idle,
    Preparing,
    Spawning,
    Running,
    Stopping,
    Completed,
    Stopped,
    Failed,
    /// The coordinator went away mid-run; artifacts up to that point are kept.
    Interrupted,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Stopped | RunState::Failed | RunState::Interrupted
        )
    }

    pub fn is_active(self) -> bool {
        matches!(
            self,
            RunState::Preparing | RunState::Spawning | RunState::Running | RunState::Stopping
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Preparing => "preparing",
            RunState::Spawning => "spawning",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Completed => "completed",
            RunState::Stopped => "stopped",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
