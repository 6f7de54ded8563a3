//! Error classification and process exit codes.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success, including a clean stop with Ctrl-C / SIGTERM |
//! | 1 | runtime failure (socket error, I/O error) |
//! | 2 | usage or bad input (not a multicast group, oversize message, unknown interface, ...) |

use std::process::ExitCode;

pub use lanio::exit::{bad_input as usage, BadInput as UsageError};

/// Exit code for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage errors and bad input (same as clap's).
pub const EXIT_USAGE: u8 = 2;

/// Maps an error to the exit code documented in the module docs.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}
