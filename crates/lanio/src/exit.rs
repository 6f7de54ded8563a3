//! Exit codes, from one error type.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success, including a clean stop on Ctrl-C or SIGTERM |
//! | 1 | runtime failure: I/O, the network, a peer or server that misbehaved |
//! | 2 | bad usage or bad input: a malformed or unsafe torrent, a group that is not multicast, an unknown interface, ... (the same code clap uses) |
//!
//! Programs return `anyhow::Result`. An error whose chain holds a
//! [`BadInput`] exits 2; every other error exits 1.

use std::process::ExitCode;

/// Exit code for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage or bad input (clap's code for usage errors too).
pub const EXIT_BAD_INPUT: u8 = 2;

/// Bad usage or bad input from the user: the process exits with
/// [`EXIT_BAD_INPUT`]. The message says what is wrong and names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A [`BadInput`] as an `anyhow::Error`, for `?` and `ok_or_else`.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// Whether `err` (or anything in its chain) is bad input.
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<BadInput>())
}

/// The exit code for an error: 2 for bad input, 1 for anything else.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if is_bad_input(err) {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILURE
    }
}

/// The process exit code for a program's result.
pub fn exit_code(result: &anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(code_for(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn bad_input_anywhere_in_the_chain_exits_2() {
        let err = bad_input("not a multicast group");
        assert_eq!(code_for(&err), EXIT_BAD_INPUT);
        let wrapped = Err::<(), _>(err).context("parsing --group").unwrap_err();
        assert_eq!(code_for(&wrapped), EXIT_BAD_INPUT);
        assert_eq!(
            format!("{wrapped:#}"),
            "parsing --group: not a multicast group"
        );
    }

    #[test]
    fn other_errors_exit_1() {
        let err = anyhow::Error::from(std::io::Error::other("connection reset"));
        assert_eq!(code_for(&err), EXIT_FAILURE);
        assert_eq!(code_for(&anyhow::anyhow!("x")), EXIT_FAILURE);
    }
}
