//! `dispatch`: the Chopsticks charm's entry point. Juju runs it for every hook and action.

fn main() -> std::process::ExitCode {
    chopsticks_charm::dispatch()
}
