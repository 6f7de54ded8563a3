//! Ctrl-C and SIGTERM: delete the testbed's namespaces, then exit.
//!
//! SIGINT and SIGTERM are blocked in the main thread before any other thread
//! starts, so every thread inherits the mask and only a dedicated thread,
//! waiting in `sigwait`, ever receives them. Child processes start with an
//! empty mask (std resets it), so they still react to signals normally.

use std::mem::MaybeUninit;

/// Installs the handler thread. Call before spawning any thread.
pub fn clean_up_on_signal() {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use;
    // pthread_sigmask only changes this thread's mask.
    let set = unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        let set = set.assume_init();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `set` is an initialised signal set blocked in every thread.
        unsafe { libc::sigwait(&set, &mut sig) };
        eprintln!("\nlan_testbed: interrupted; deleting its namespaces, veths and bridge");
        lanswarm::testbed::cleanup_this_process();
        std::process::exit(0);
    });
}
