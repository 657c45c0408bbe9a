//! `chopsticks`: the load engine's command line. All logic lives in the library.

fn main() -> std::process::ExitCode {
    chopsticks::cli::main()
}
