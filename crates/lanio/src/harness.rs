//! A program's `main`: logging, the async runtime, the error message and
//! the exit code, the same way in every lanswarm program.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     lanio::harness::run(&lanio::harness::Program::new("demo"), || async {
//!         let mut signals = lanio::Signals::install()?; // before saying "ready"
//!         println!("ready");
//!         signals.recv().await;
//!         Ok(())
//!     })
//! }
//! ```

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use crate::exit;

/// Which tokio runtime a program runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One worker per core; on exit, blocking tasks still running are waited for.
    MultiThread,
    /// One thread; on exit, blocking tasks still running (a thread parked in
    /// a read of stdin, say) are abandoned rather than waited for.
    CurrentThread,
}

/// How a program is started.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The name printed before error messages (`peer: error: …`).
    pub name: &'static str,
    /// The log filter when `RUST_LOG` is not set (`warn`, `info`, …).
    pub default_log: &'static str,
    /// The runtime to use.
    pub flavor: Flavor,
}

impl Program {
    /// A multi-threaded program logging warnings unless `RUST_LOG` says otherwise.
    pub const fn new(name: &'static str) -> Program {
        Program {
            name,
            default_log: "warn",
            flavor: Flavor::MultiThread,
        }
    }

    /// The same program with another default log filter.
    pub const fn log(self, default_log: &'static str) -> Program {
        Program {
            default_log,
            ..self
        }
    }

    /// The same program on another runtime.
    pub const fn flavor(self, flavor: Flavor) -> Program {
        Program { flavor, ..self }
    }
}

/// Sets up `tracing` on stderr: `RUST_LOG` if set, else `default`; colours
/// only when stderr is a terminal (no escape codes in a piped or saved log).
/// Calling it again is harmless.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Runs `main` on a fresh runtime and turns its result into the exit code:
/// 0 on success, else the error printed on stderr as `NAME: error: …` with
/// its causes, and 2 for bad input or 1 for anything else.
///
/// The program installs its signal handlers with [`crate::Signals::install`]
/// before it says it is ready, and treats a signal as a clean stop (exit 0).
pub fn run<F, Fut>(program: &Program, main: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    init_logging(program.default_log);
    let mut builder = match program.flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "{}: error: cannot start the async runtime: {e}",
                program.name
            );
            return ExitCode::from(exit::EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(main());
    match program.flavor {
        Flavor::MultiThread => drop(runtime),
        Flavor::CurrentThread => runtime.shutdown_background(),
    }
    if let Err(e) = &result {
        eprintln!("{}: error: {e:#}", program.name);
    }
    exit::exit_code(&result)
}
