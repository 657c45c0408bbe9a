//! `chopsticks`: the load engine's command line. All logic lives in the library.

/// mimalloc instead of glibc's malloc: see the dependency's comment in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` (mimalloc.h, v3, as built by
/// libmimalloc-sys 0.1.49, pinned in engine/Cargo.toml for this reason). The Rust bindings name
/// the options around it (14 and 16) but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed and not reused stays with the process before mimalloc hands it back
/// to the kernel. mimalloc's default, 10 ms, returned each second's statistics to the kernel
/// between two seconds, and the load thread then page-faulted fresh pages back in while it
/// recorded the next second: on a VM each such fault can hold the thread for milliseconds,
/// and arrivals start late (docs/benchmarks.md, "Session 25"). Memory freed after a peak still
/// goes back, ten seconds later or more (mimalloc multiplies the delay for its arenas).
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn main() -> std::process::ExitCode {
    // SAFETY: sets one integer option of mimalloc's, which it reads when it next purges;
    // no allocation is in flight across the call that could depend on the old value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    chopsticks::cli::main()
}
