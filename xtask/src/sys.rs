//! The three libc calls xtask needs, declared by hand so xtask stays
//! dependency-free: who we are, signalling process groups, and noticing
//! Ctrl-C.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

pub const SIGHUP: c_int = 1;
pub const SIGINT: c_int = 2;
pub const SIGKILL: c_int = 9;
pub const SIGTERM: c_int = 15;

extern "C" {
    fn geteuid() -> u32;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: c_int) {
    // Only an atomic store: the one thing that is async-signal-safe here.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

/// From now on SIGINT, SIGTERM and SIGHUP only set a flag that
/// [`stop_requested`] reports, instead of killing xtask.
pub fn trap_stop_signals() {
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            signal(sig, on_stop_signal);
        }
    }
}

pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Sends `sig` to every process in the group led by `pgid`; false when the
/// group is gone.
pub fn kill_group(pgid: u32, sig: c_int) -> bool {
    let Ok(pgid) = c_int::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false; // never signal "every process" or init's group
    }
    // SAFETY: kill only takes integers; a negative pid addresses a group.
    unsafe { kill(-pgid, sig) == 0 }
}
