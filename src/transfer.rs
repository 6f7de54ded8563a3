//! Client/server mode in tests: `peer serve` and `peer fetch` processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use peer::events::Event;

use crate::expect_event;
use crate::files::write_random_file;
use crate::process::{command, Proc};

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// Writes `len` pseudo-random bytes (a fresh seed each call) to `dir/name`
/// and returns the path.
pub fn random_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    let path = dir.join(name);
    write_random_file(&path, len as u64, seed);
    path
}

/// Starts `peer serve FILE --listen 127.0.0.1:0 --json [extra…]` and returns it
/// with the address it reports.
pub fn start_server(file: &Path, extra: &[&str]) -> (Proc, String) {
    let mut cmd = command("peer");
    cmd.arg("serve")
        .arg(file)
        .args(["--listen", "127.0.0.1:0", "--json"])
        .args(extra);
    let mut server = Proc::spawn("serve", cmd);
    let addr = expect_event!(server, WAIT, Event::Listening { addr, .. } => addr);
    (server, addr)
}

/// Starts `peer fetch ADDR -o OUT --json [extra…]`.
pub fn start_fetch(name: &str, addr: &str, out: &Path, extra: &[&str]) -> Proc {
    let mut cmd = command("peer");
    cmd.args(["fetch", addr, "-o"])
        .arg(out)
        .arg("--json")
        .args(extra);
    Proc::spawn(name, cmd)
}
