//! Disk filling (issue 14, item 16): a download that cannot fit is refused
//! at the start with a clear error, before anything is written, while a
//! download that fits (into another directory) is served as usual.
//!
//! The small file system is a tmpfs mounted for the test, so it needs root
//! and skips without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use lanswarm::fixture::*;
use lanswarm::netns::is_root;
use lanswarm::process::Proc;

/// A tmpfs of `mib` MiB mounted at a fresh directory, unmounted on drop
/// (also when the test fails).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(mib: u64) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs failed: {status}");
        SmallFs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_before_writing() {
    if !is_root() {
        eprintln!("skipping: mounting a small tmpfs needs root");
        return;
    }
    let mut s = Scenario::new(24 << 20, 1 << 20, 61, &[]);
    let _seed = s.start_seeder("seed");
    let small = SmallFs::mount(8);

    let mut cmd = peer_command(&s.torrent, &small.path());
    cmd.arg("--exit-when-done");
    let mut full = Proc::spawn("full", cmd);
    let status = full.wait_exit(STEP).unwrap();
    let output = full.output();
    assert!(!status.success(), "{output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("not enough free space"), "{output}");
    assert!(
        entries(&small.path()).is_empty(),
        "left {:?} on the small disk",
        entries(&small.path())
    );

    // The same download where it fits completes.
    let (mut fits, _) = start_peer("fits", s.leecher_command("fits"));
    expect_done(&mut fits);
    assert!(fits.wait_exit(STEP).unwrap().success());
    assert!(s.has_right_copy("fits"));
}
