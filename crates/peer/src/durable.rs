//! Files the peer creates whole (the resume file, `peer fetch`'s download)
//! written so that a crash or power cut never leaves one that lies: written
//! to a fresh temporary file, synced, renamed into place, and the directory
//! synced. No link is ever followed: temporary files are created with
//! `O_EXCL | O_NOFOLLOW`, so something planted at their name is refused,
//! never written through.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` for writing, refusing anything already there (a planted
/// link included: `O_EXCL` never follows one).
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)
}

/// Opens `path` for reading unless it is a symbolic link.
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Syncs the directory holding `path`, so a rename into it lasts.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Syncs `file`, renames `tmp` to `path` and syncs the directory: once this
/// returns, `path` holds the file's contents even after a power cut.
pub fn commit(file: &File, tmp: &Path, path: &Path) -> io::Result<()> {
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_parent(path)
}

/// Replaces `path` with `bytes` durably, through `tmp` (a leftover at `tmp`
/// is unlinked first: unlinking never follows a link).
pub fn replace(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = create_new(tmp)?;
    file.write_all(bytes)?;
    commit(&file, tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_through_a_fresh_file_and_never_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"precious").unwrap();
        let path = dir.path().join("r.json");
        let tmp = dir.path().join("r.json.tmp");
        std::os::unix::fs::symlink(&outside, &tmp).unwrap();
        replace(&path, &tmp, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert!(!tmp.exists());
    }

    #[test]
    fn create_new_refuses_a_link_and_open_read_does_not_follow_one() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(create_new(&link).is_err());
        assert!(open_read(&link).is_err());
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(create_new(&dangling).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    }
}
