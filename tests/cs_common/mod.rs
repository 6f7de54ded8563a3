//! Shared helpers of the client/server (`peer serve` / `peer fetch`) tests.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use lanswarm::process::{command, Proc};
use rand::RngCore;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// Writes `len` random bytes to `dir/name` and returns the path.
pub fn random_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    let path = dir.join(name);
    std::fs::write(&path, &data).expect("write random file");
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
    let ev = server.expect_event("listening", WAIT);
    let addr = ev["addr"].as_str().expect("addr is a string").to_string();
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

/// Names of the entries of `dir`, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Asserts that two files hold the same bytes.
pub fn assert_same_file(expected: &Path, actual: &Path) {
    let a = std::fs::read(expected).expect("read expected");
    let b = std::fs::read(actual).unwrap_or_else(|e| panic!("read {}: {e}", actual.display()));
    assert_eq!(
        a.len(),
        b.len(),
        "{} has the wrong length",
        actual.display()
    );
    assert!(
        a == b,
        "{} differs from {}",
        actual.display(),
        expected.display()
    );
}
