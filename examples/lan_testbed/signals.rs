//! Ctrl-C and SIGTERM: delete the testbed's namespaces, then exit.
//!
//! The signal handler only writes one byte to a pipe (async-signal-safe); a
//! dedicated thread blocked on the other end does the clean-up. No signal is
//! blocked, so the child processes, which inherit the signal mask, still get
//! their SIGTERM (a handled signal reverts to its default action on exec).

use std::sync::atomic::{AtomicI32, Ordering};

/// Write end of the self-pipe, for the handler.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    let byte = 1u8;
    // SAFETY: write(2) is async-signal-safe; `byte` outlives the call.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// Installs the handler and its clean-up thread.
pub fn clean_up_on_signal() {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) fills the two descriptors of the array it is given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("lan_testbed: cannot create a pipe; Ctrl-C will not clean up");
        return;
    }
    let [read_fd, write_fd] = fds;
    PIPE_WRITE.store(write_fd, Ordering::Relaxed);
    std::thread::spawn(move || {
        let mut byte = 0u8;
        // SAFETY: reading one byte into a live local from our own pipe.
        while unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) } != 1 {}
        eprintln!("\nlan_testbed: interrupted; deleting its namespaces, veths and bridge");
        lanswarm::testbed::cleanup_this_process();
        std::process::exit(0);
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only calls write(2); the sigaction
        // struct is fully initialised (zeroed, then the fields we use).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}
