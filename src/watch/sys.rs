//! Signals and privileges (Unix, through `libc`).

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

static HUP: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: set a flag the main loop reads.
    if sig == libc::SIGHUP {
        HUP.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

/// SIGHUP asks for a reload (and reopening the alert file); SIGINT and SIGTERM for a clean stop.
pub fn install_handlers() -> Result<(), String> {
    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to atomics.
        let r = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(format!("installing a signal handler: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Was SIGHUP received since the last call?
pub fn take_hup() -> bool {
    HUP.swap(false, Ordering::SeqCst)
}

/// Was SIGINT or SIGTERM received?
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Becomes `user` (its uid, its primary gid, no supplementary groups), for good.
pub fn drop_privileges(user: &str) -> Result<(), String> {
    let name = CString::new(user).map_err(|_| format!("--user {user:?}: not a user name"))?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once, before any
    // other call that could reuse it.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(format!("--user {user}: no such user"));
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    let err = |what: &str| format!("--user {user}: {what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain system calls; the group changes come first, while we still may.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(err("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(err("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(err("setuid"));
        }
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(format!("--user {user}: could regain root after dropping it; refusing to run"));
        }
    }
    Ok(())
}
