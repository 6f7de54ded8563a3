//! Directory torrents end to end: a tree downloaded from two seeders, bad
//! paths refused, planted links not followed, resume after SIGKILL, and
//! many small files under a low descriptor limit.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use lanswarm::files::{assert_same_tree, dir_entries, write_tree};
use lanswarm::fixture::*;
use lanswarm::process::{command, Proc};
use peer::events::Event;

/// A tracker, a tree `src/tree` and its torrent, in a temporary directory.
struct TreeScenario {
    tmp: tempfile::TempDir,
    tracker: TrackerProc,
    torrent: PathBuf,
}

impl TreeScenario {
    fn new(files: &[(&str, u64)], piece_length: u64) -> TreeScenario {
        let tmp = tempfile::tempdir().unwrap();
        let tracker = start_tracker(&[]);
        let tree = tmp.path().join("src/tree");
        std::fs::create_dir_all(&tree).unwrap();
        write_tree(&tree, files);
        let torrent = create_torrent(
            &tree,
            tracker.addr,
            Some(piece_length),
            &tmp.path().join("tree.torrent"),
        );
        TreeScenario {
            tmp,
            tracker,
            torrent,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A seeder over a copy of the tree in `name/tree`.
    fn start_seeder(&mut self, name: &str) -> (Proc, Started) {
        let dir = self.path(name);
        copy_tree(&self.path("src/tree"), &dir.join("tree"));
        let started = start_peer(name, peer_command(&self.torrent, &dir));
        self.tracker.expect_join(&started.1.peer_id, STEP);
        started
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_tree_comes_from_two_seeders_byte_for_byte() {
    // Pieces of 4 KiB: piece 1 spans a/b/tail (tail of 3 KiB from 1 KiB),
    // the empty file, the 1-byte file and the start of c/data.
    let files = [
        ("a/b/first.bin", 5 * 1024),
        ("a/b/tail", 2 * 1024),
        ("a/empty", 0),
        ("a/one", 1),
        ("c/data", 300 * 1024),
        ("d/e/f/g/deep", 7777),
        ("zz", 0),
    ];
    let mut s = TreeScenario::new(&files, 4 * 1024);
    let (_s1, ev1) = s.start_seeder("seed1");
    let (_s2, ev2) = s.start_seeder("seed2");
    assert_eq!(ev1.have, ev1.pieces, "seed1 must verify the whole tree");
    assert_eq!(ev2.have, ev2.pieces);
    let mut cmd = peer_command(&s.torrent, &s.path("leech"));
    cmd.arg("--exit-when-done");
    let (mut leech, _) = start_peer("leech", cmd);
    let done = expect_done(&mut leech);
    assert!(
        leech.wait_exit(STEP).unwrap().success(),
        "{}",
        leech.output()
    );
    let total: u64 = files.iter().map(|f| f.1).sum();
    assert_eq!(done.bytes, total);
    assert!(
        done.downloaded_from(&ev1.peer_id) > 0 && done.downloaded_from(&ev2.peer_id) > 0,
        "not from both seeders: {done:?}"
    );
    assert_same_tree(&s.path("src/tree"), &s.path("leech/tree"));
    assert_eq!(
        std::fs::metadata(s.path("leech/tree/a/empty"))
            .unwrap()
            .len(),
        0
    );
}

/// Runs a peer on a torrent JSON written by the test; returns its exit
/// code and stderr.
fn run_on_torrent(json: &serde_json::Value, dir: &Path) -> (Option<i32>, String) {
    let torrent = dir.join("bad.torrent");
    std::fs::write(&torrent, json.to_string()).unwrap();
    let out = command("peer")
        .arg("--torrent")
        .arg(&torrent)
        .arg("--dir")
        .arg(dir.join("dl"))
        .args(["--listen", "127.0.0.1:0", "--tracker", "127.0.0.1:9"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_bad_path_is_refused_with_exit_2_naming_the_entry_and_nothing_is_created() {
    let long = "x".repeat(300);
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!([["..", "etc", "passwd"]]), ".."),
        (serde_json::json!([["ok", ".."]]), "ok/.."),
        (serde_json::json!([["."]]), "."),
        (serde_json::json!([["a", ""]]), "a/"),
        (serde_json::json!([["/abs"]]), "/abs"),
        (serde_json::json!([["back\\slash"]]), "back"),
        (serde_json::json!([["nul\u{0}"]]), "nul"),
        (serde_json::json!([["esc\u{1b}[2J"]]), "esc"),
        (serde_json::json!([["bidi\u{202e}fdp.exe"]]), "bidi"),
        (serde_json::json!([[long.clone()]]), "xxxx"),
        (serde_json::json!([["twin"], ["twin"]]), "twin"),
        (serde_json::json!([["dir"], ["dir", "child"]]), "dir"),
    ];
    for (paths, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let files: Vec<serde_json::Value> = paths
            .as_array()
            .unwrap()
            .iter()
            .map(|p| serde_json::json!({"path": p, "length": 1}))
            .collect();
        let n = files.len();
        let json = serde_json::json!({"announce": "127.0.0.1", "port": 9, "info": {
            "piece_length": 16384, "piece_hash": ["00".repeat(20)], "name": "top", "files": files}});
        let (code, stderr) = run_on_torrent(&json, tmp.path());
        assert_eq!(code, Some(2), "{paths} ({n} files): {stderr}");
        assert!(
            stderr.contains(needle),
            "{paths}: {stderr:?} does not name {needle:?}"
        );
        assert_eq!(
            dir_entries(tmp.path()),
            ["bad.torrent"],
            "{paths}: something was created"
        );
    }
    // The top-level name and a single file's name follow the same rules.
    for info in [
        serde_json::json!({"piece_length": 4, "piece_hash": [], "name": "..", "files": [{"path": ["f"], "length": 0}]}),
        serde_json::json!({"piece_length": 4, "piece_hash": ["00".repeat(20)], "file_name": "bell\u{7}", "file_length": 1}),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let json = serde_json::json!({"announce": "127.0.0.1", "port": 9, "info": info});
        let (code, stderr) = run_on_torrent(&json, tmp.path());
        assert_eq!(code, Some(2), "{info}: {stderr}");
        assert_eq!(dir_entries(tmp.path()), ["bad.torrent"]);
    }
}

#[test]
fn a_planted_symlink_is_not_followed() {
    let mut s = TreeScenario::new(&[("sub/victim.bin", 10_000), ("other", 10)], 4096);
    let (_seed, _) = s.start_seeder("seed");
    let outside = s.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"do not touch").unwrap();
    let leech = s.path("leech");
    // The file the torrent will write is a link out of the directory; so
    // is, in a second run, a directory on its way.
    for (link, target) in [
        ("tree/sub/victim.bin", outside.join("precious")),
        ("tree/sub", outside.clone()),
    ] {
        let _ = std::fs::remove_dir_all(&leech);
        let at = leech.join(link);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &at).unwrap();
        let out = peer_command(&s.torrent, &leech)
            .arg("--exit-when-done")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{link}: {stderr}");
        assert!(stderr.contains("symbolic link"), "{link}: {stderr}");
        assert_eq!(
            std::fs::read(outside.join("precious")).unwrap(),
            b"do not touch"
        );
        assert_eq!(dir_entries(&outside), ["precious"], "{link}: wrote outside");
    }
}

#[test]
fn a_killed_tree_download_resumes_without_refetching() {
    let (piece, n) = (4096u64, 8u64);
    let files: Vec<(String, u64)> = (0..n)
        .map(|i| (format!("d{}/f{i}", i % 3), 3 * piece))
        .collect();
    let refs: Vec<(&str, u64)> = files.iter().map(|(p, l)| (p.as_str(), *l)).collect();
    let mut s = TreeScenario::new(&refs, piece);
    let pieces = n * 3;
    // A peer holding only the first half of the files: the leecher stops there.
    let half = s.path("half");
    copy_tree(&s.path("src/tree"), &half.join("tree"));
    for (path, len) in &files[(n / 2) as usize..] {
        std::fs::write(half.join("tree").join(path), vec![0u8; *len as usize]).unwrap();
    }
    let leech_dir = s.path("leech");
    let _half = leech_until_then_kill(
        &mut s.tracker,
        &s.torrent,
        &half,
        &leech_dir,
        (pieces / 2) as u32,
    );

    let (_seed, _) = s.start_seeder("seed");
    let mut cmd = peer_command(&s.torrent, &s.path("leech"));
    cmd.arg("--exit-when-done");
    let (mut again, started) = start_peer("again", cmd);
    assert_eq!(
        u64::from(started.have),
        pieces / 2,
        "verified pieces were not kept"
    );
    let done = expect_done(&mut again);
    assert!(
        again.wait_exit(STEP).unwrap().success(),
        "{}",
        again.output()
    );
    assert_eq!(done.bytes, n / 2 * 3 * piece, "refetched verified data");
    assert_same_tree(&s.path("src/tree"), &s.path("leech/tree"));
}

#[test]
fn twenty_thousand_files_with_a_descriptor_limit_of_256() {
    let files: Vec<(String, u64)> = (0..20_000)
        .map(|i| (format!("d{:03}/f{i:05}", i % 200), 50 + (i % 7) as u64))
        .collect();
    let refs: Vec<(&str, u64)> = files.iter().map(|(p, l)| (p.as_str(), *l)).collect();
    let mut s = TreeScenario::new(&refs, 64 * 1024);
    let limit = |cmd: &mut std::process::Command| {
        // SAFETY: setrlimit in the child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 256,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    };
    let dir = s.path("seed");
    copy_tree(&s.path("src/tree"), &dir.join("tree"));
    let mut seed_cmd = peer_command(&s.torrent, &dir);
    limit(&mut seed_cmd);
    let (_seed, ev) = start_peer("seed", seed_cmd);
    assert_eq!(ev.have, ev.pieces);
    s.tracker.expect_join(&ev.peer_id, STEP);
    let mut cmd = peer_command(&s.torrent, &s.path("leech"));
    cmd.arg("--exit-when-done");
    limit(&mut cmd);
    let (mut leech, _) = start_peer("leech", cmd);
    expect_done(&mut leech);
    assert!(
        leech.wait_exit(STEP).unwrap().success(),
        "{}",
        leech.output()
    );
    assert_same_tree(&s.path("src/tree"), &s.path("leech/tree"));
}

#[test]
fn create_skips_links_with_a_warning_and_info_describes_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("release");
    write_tree(
        &tree,
        &[("bin/tool", 1000), ("doc/README", 10), ("empty.txt", 0)],
    );
    std::fs::create_dir_all(tree.join("nothing/here")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tree.join("doc/passwd")).unwrap();
    let torrent = tmp.path().join("release.torrent");
    let out = command("peer")
        .arg("create")
        .arg(&tree)
        .arg("-o")
        .arg(&torrent)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("doc/passwd") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing/here"),
        "empty directory not mentioned: {stderr}"
    );
    let created: Event = serde_json::from_slice(&out.stdout).unwrap();
    let Event::Created {
        files,
        file_length,
        info_hash,
        ..
    } = created
    else {
        panic!("{created:?}");
    };
    assert_eq!((files, file_length), (3, 1010));

    let out = command("peer")
        .arg("info")
        .arg(&torrent)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let Event::Info(info) = serde_json::from_slice(&out.stdout).unwrap() else {
        panic!("not an info event");
    };
    assert_eq!(info.info_hash, info_hash);
    assert_eq!(info.name, "release");
    assert!(info.directory);
    let listed: Vec<(&str, u64)> = info
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.length))
        .collect();
    assert_eq!(
        listed,
        [("bin/tool", 1000), ("doc/README", 10), ("empty.txt", 0)]
    );
    assert_eq!(info.trackers, ["127.0.0.1:6666"]);

    let text = command("peer").arg("info").arg(&torrent).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&info_hash) && text.contains("doc/README"),
        "{text}"
    );
    // A torrent that is not one: exit 2.
    std::fs::write(tmp.path().join("junk.torrent"), b"{").unwrap();
    let bad = command("peer")
        .arg("info")
        .arg(tmp.path().join("junk.torrent"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
