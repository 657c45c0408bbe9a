//! Which of the engine's threads the kernel runs first on a shared core.
//!
//! A worker runs its users, the open-model scheduler and their requests on the load runtime
//! (`chopsticks-load` threads) and everything else (the coordinator, the worker's control
//! loop and stats, the web UI, the files they write) on the control runtime
//! (`chopsticks-ctl`). Both are set up by the command line (`cli`), only for commands
//! that run a worker. The load threads ask for short scheduler slices and the control threads
//! run at a lower priority, so that on one core the requests seldom wait for the bookkeeping
//! (not never: the kernel still lets it finish a slice now and then; docs/benchmarks.md,
//! "Session 24").

/// The calling thread's nice value (Linux keeps nice per thread).
fn current_nice() -> std::io::Result<i32> {
    // getpriority can return -1 as a nice value: errno tells an error from it.
    nix::errno::Errno::clear();
    // SAFETY: getpriority reads the calling thread's nice value (`who` 0); it has no memory
    // arguments.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(nice)
}

/// The scheduler slice the load runtime's threads ask for (the kernel's minimum).
const LOAD_THREAD_SLICE_NS: u64 = 100_000;

/// Asks the kernel to give the calling thread short scheduler slices, so that when it wakes
/// (a timerfd expiry, a response) it preempts a thread of this process that is in the middle
/// of a long slice on the same core, such as the coordinator writing a second's rows.
///
/// Linux's EEVDF scheduler (6.6 and later) lets a running thread finish its slice (about
/// 3 ms by default) before a thread that just woke runs, unless the woken one asked for a
/// shorter slice (6.12 and later, `sched_setattr` with `sched_runtime` under SCHED_OTHER,
/// no privilege needed). Measured on one core, the open-model scheduler waited up to 9 ms
/// for the coordinator's thread (docs/benchmarks.md, "Session 24"). The policy and nice
/// value stay what they were; older kernels ignore the slice. Errors are returned for the
/// caller to log: the run is still correct without it, only later.
pub fn prefer_short_slices() -> std::io::Result<()> {
    let nice = current_nice()?;
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: LOAD_THREAD_SLICE_NS,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a valid sched_attr whose `size` says how much of it the kernel may
    // read; pid 0 is the calling thread; flags 0.
    let done = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How much lower than the load threads the threads of everything else run (nice +10: a
/// weight of 110 against 1024). Under EEVDF a thread that woke runs first only while it is
/// *eligible*, i.e. has had less than its fair share of the core; on one core the load thread
/// uses far more than the bookkeeping, so with equal weights it waited for the bookkeeping
/// thread's slice (3–4 ms, measured). At a tenth of the weight the bookkeeping still gets a
/// tenth of a saturated core, many times what it needs.
const BACKGROUND_NICE_STEP: i32 = 10;

/// Lowers the calling thread's priority by [`BACKGROUND_NICE_STEP`] (the threads of the
/// coordinator, the worker's control loop, the web UI and the files they write), so the load
/// threads run first on a shared core. Raising nice needs no privilege.
pub fn yield_to_load_threads() -> std::io::Result<()> {
    let nice = current_nice()?;
    // SAFETY: setpriority sets the calling thread's nice value (`who` 0); no memory arguments.
    let done =
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, (nice + BACKGROUND_NICE_STEP).min(19)) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice() -> i32 {
        current_nice().expect("getpriority")
    }

    #[test]
    fn a_control_thread_runs_ten_nice_steps_below_and_a_load_thread_keeps_its_nice() {
        // On threads of their own: nice is per thread on Linux, and the test runner's stays.
        let control = std::thread::spawn(|| {
            let before = nice();
            yield_to_load_threads().expect("raising nice needs no privilege");
            (before, nice())
        })
        .join()
        .unwrap();
        assert_eq!(control.1, (control.0 + BACKGROUND_NICE_STEP).min(19));
        let load = std::thread::spawn(|| {
            let before = nice();
            prefer_short_slices().expect("a fair-policy slice needs no privilege");
            // Kernels with custom slices (6.12+) show it in the thread's sched file.
            let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            let slice = sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string());
            (before, nice(), slice)
        })
        .join()
        .unwrap();
        assert_eq!(load.0, load.1, "the load thread's nice is unchanged");
        // Kernels 6.6 to 6.11 show a slice too, but take no custom one.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut version = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
        if let (Some(slice), true) = (load.2, (major, minor) >= (6, 12)) {
            assert_eq!(slice, LOAD_THREAD_SLICE_NS.to_string());
        }
    }
}
