//! The `tracker` binary; see [`tracker::cli`].

fn main() -> std::process::ExitCode {
    tracker::cli::main()
}
