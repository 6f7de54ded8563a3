use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = peer::cli::Cli::parse();
    peer::run(cli)
}

/// Piece buffers (up to 16 MiB) come and go all the time. By default glibc
/// serves each from a fresh mmap, so every piece costs page faults and
/// zeroing; keeping such blocks in the heap lets freed buffers be reused.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator thresholds; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
