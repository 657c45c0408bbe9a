//! `dispatch`: the Chopsticks charm entry point. Juju runs it for every hook and action.
fn main() {
    eprintln!("chopsticks charm: hook dispatch is not implemented yet");
    std::process::exit(1);
}
