//! The `peer` command line: help, torrent creation, and exit codes.

use std::process::Command;

fn peer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peer"))
}

#[test]
fn help_explains_the_modes() {
    let out = peer().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--torrent",
        "--exit-when-done",
        "--json",
        "create",
        "serve",
        "fetch",
        "Exit codes",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn create_writes_a_loadable_torrent_with_hex_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    std::fs::write(&file, vec![7u8; 300_000]).unwrap();
    let out_path = dir.path().join("f.torrent");
    let out = peer()
        .arg("create")
        .arg(&file)
        .args([
            "--tracker",
            "10.1.2.3:7777",
            "--piece-length",
            "65536",
            "--comment",
            "hi",
            "--json",
            "-o",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = wire::Torrent::from_json(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(report["info_hash"], t.info_hash().to_hex());
    assert_eq!(
        (t.announce.as_str(), t.port, t.comment.as_str()),
        ("10.1.2.3", 7777, "hi")
    );
    assert_eq!(t.info.piece_count(), 5);
    assert_eq!(t.info.file_name, "f.bin");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let first = raw["info"]["piece_hash"][0].as_str().unwrap();
    assert!(
        first.len() == 40
            && first
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn create_default_output_is_file_torrent_in_current_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.bin"), b"hello").unwrap();
    let out = peer()
        .current_dir(dir.path())
        .args(["create", "g.bin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("g.bin.torrent").exists());
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.bin"), b"hello").unwrap();
    let bad_tracker = peer()
        .current_dir(dir.path())
        .args(["create", "g.bin", "--tracker", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad_tracker.status.code(), Some(2));
    let bad_piece = peer()
        .current_dir(dir.path())
        .args(["create", "g.bin", "--piece-length", "0"])
        .output()
        .unwrap();
    assert_eq!(bad_piece.status.code(), Some(2));
    let no_torrent = peer().output().unwrap();
    assert_eq!(no_torrent.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_torrent.stderr).contains("--torrent"));
    let missing = peer()
        .args(["create", "/nonexistent/file"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}
