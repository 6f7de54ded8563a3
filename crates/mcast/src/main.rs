//! The `mcast` binary; all logic lives in the library (see its module map).

fn main() -> std::process::ExitCode {
    mcast::main_entry()
}
