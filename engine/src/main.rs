//! `chopsticks`: the load engine's command line. All logic lives in the library.

/// mimalloc instead of glibc's malloc: see the dependency's comment in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    chopsticks::cli::main()
}
