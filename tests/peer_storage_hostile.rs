//! Storage under attack and after a crash (issue 14, items 13 and 14): a
//! link planted where the peer writes its resume file, or where `peer fetch`
//! writes its download, is never written through; `--recheck` finds data
//! that a resume file vouches for but that changed on disk.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::thread;

use lanswarm::files::dir_entries;
use lanswarm::fixture::*;
use lanswarm::transfer::{start_fetch, WAIT};

#[test]
fn a_link_planted_at_the_resume_temp_path_is_never_written_through() {
    let mut s = Scenario::new(4 << 20, 256 << 10, 81, &[]);
    let _seed = s.start_seeder("seed");
    let outside = s.path("precious.txt");
    std::fs::write(&outside, b"not yours").unwrap();
    let dir = s.path("leech");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join("data.bin.lsresume.tmp");
    symlink(&outside, &tmp).unwrap();

    let (mut leech, _) = start_peer("leech", s.leecher_command("leech"));
    expect_done(&mut leech);
    assert!(
        leech.wait_exit(STEP).unwrap().success(),
        "{}",
        leech.output()
    );
    assert!(s.has_right_copy("leech"));
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");
    // The link was removed, not followed; the resume file is a plain file.
    assert!(std::fs::symlink_metadata(&tmp).is_err());
    let resume = std::fs::symlink_metadata(dir.join("data.bin.lsresume")).unwrap();
    assert!(resume.is_file());
}

#[test]
fn a_link_planted_at_the_fetch_temp_path_is_refused() {
    // A server that sends its frame only when told: the link is planted
    // in between, at the name the fetch will use.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let _ = go_rx.recv();
        let mut frame = lanio::frame::header(5).to_vec();
        frame.extend_from_slice(b"hello");
        let _ = sock.write_all(&frame);
        let _ = sock.read(&mut [0u8; 1]);
    });
    let dir = tempfile::tempdir().unwrap();
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path().join("precious.txt");
    std::fs::write(&outside, b"not yours").unwrap();
    let mut fetch = start_fetch("fetch", &addr, &dir.path().join("out.bin"), &[]);
    let part = dir.path().join(format!(".out.bin.{}.part", fetch.pid()));
    symlink(&outside, &part).unwrap();
    go_tx.send(()).unwrap();
    let status = fetch.wait_exit(WAIT).unwrap();
    let output = fetch.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot create"), "{output}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");
    // Only the planted link is left; no OUT.
    assert_eq!(
        dir_entries(dir.path()).len(),
        1,
        "{:?}",
        dir_entries(dir.path())
    );
    server.join().unwrap();
}

#[test]
fn recheck_finds_a_piece_the_resume_file_vouches_for_but_the_disk_lost() {
    let piece = 256u64 << 10;
    let mut s = Scenario::new(4 << 20, piece, 82, &[]);
    let _seed = s.start_seeder("seed");
    let (mut leech, _) = start_peer("first", s.leecher_command("leech"));
    expect_done(&mut leech);
    assert!(leech.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"));

    // Piece 3 goes bad on disk, and the file's mtime is put back, as a
    // failing disk or a lost write after a power cut could leave it.
    let data = s.path("leech").join("data.bin");
    let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
        f.seek(SeekFrom::Start(3 * piece + 100)).unwrap();
        f.write_all(&[0u8; 64]).unwrap();
        f.set_modified(mtime).unwrap();
    }
    let pieces = (4u64 << 20) / piece;

    // Without --recheck the resume file is trusted.
    let (mut trusting, started) =
        start_peer("trusting", peer_command(&s.torrent, &s.path("leech")));
    assert!(started.resume, "{started:?}");
    assert_eq!(u64::from(started.have), pieces);
    stop_peer(&mut trusting);

    // With it, every piece is hashed: piece 3 is found bad and fetched again.
    let mut cmd = s.leecher_command("leech");
    cmd.arg("--recheck");
    let (mut recheck, started) = start_peer("recheck", cmd);
    assert!(!started.resume, "{started:?}");
    assert_eq!(u64::from(started.have), pieces - 1);
    expect_done(&mut recheck);
    assert!(recheck.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("leech"));
}

#[test]
fn peer_create_replaces_a_link_at_its_output_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    lanswarm::files::write_random_file(&data, 100_000, 5);
    let outside = dir.path().join("precious.txt");
    std::fs::write(&outside, b"not yours").unwrap();
    let out = dir.path().join("t.torrent");
    symlink(&outside, &out).unwrap();
    create_torrent(&data, "127.0.0.1:1".parse().unwrap(), None, &out);
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
    load_torrent(&out);
}
