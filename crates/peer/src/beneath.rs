//! Opening files below a directory without ever following a symbolic link.
//!
//! A torrent names paths; the download directory may hold anything,
//! including links planted to lead a write elsewhere. Every file the peer
//! creates or writes is opened component by component with `openat` and
//! `O_NOFOLLOW` from the directory the user chose, so a link at any step,
//! dangling or not, is refused ([`BeneathError::Link`]) instead of followed.
//! The chosen directory itself may be a link: that is the user's choice.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Why a path below the directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("refusing to follow the symbolic link at {0}")]
    Link(PathBuf),
    #[error("{0} is in the way: it is not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl From<BeneathError> for io::Error {
    fn from(e: BeneathError) -> io::Error {
        let kind = match &e {
            BeneathError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, e)
    }
}

/// Whether a missing file (and its directories) may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Yes,
    No,
}

fn c_name(name: &str, path: &Path) -> Result<CString, BeneathError> {
    CString::new(name).map_err(|_| BeneathError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path component"),
    })
}

fn openat(dir: &OwnedFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: openat with a valid directory fd and a NUL-terminated name;
    // the returned fd is owned by us from here on.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o644) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `name` in `dir` is a symbolic link (not followed).
fn is_link(dir: &OwnedFd, name: &CString) -> bool {
    // SAFETY: an all-zero stat is a valid value for fstatat to fill in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat with a valid directory fd, a NUL-terminated name and a
    // valid out-pointer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Tells a link (ELOOP with O_NOFOLLOW, or ENOTDIR with O_DIRECTORY on a
/// link) and a non-directory apart from other failures, naming the path.
fn classify_at(err: io::Error, dir: &OwnedFd, name: &CString, path: &Path) -> BeneathError {
    if err.raw_os_error() == Some(libc::ENOTDIR) && is_link(dir, name) {
        return BeneathError::Link(path.to_path_buf());
    }
    classify(err, path)
}

/// Tells a link (ELOOP with O_NOFOLLOW) and a non-directory apart from
/// other failures, naming the path.
fn classify(err: io::Error, path: &Path) -> BeneathError {
    match err.raw_os_error() {
        Some(libc::ELOOP) => BeneathError::Link(path.to_path_buf()),
        Some(libc::ENOTDIR) => BeneathError::NotADirectory(path.to_path_buf()),
        _ => BeneathError::Io {
            path: path.to_path_buf(),
            source: err,
        },
    }
}

/// Opens `root/rel[0]/…/rel[n-1]` for reading and writing, refusing a link
/// at every component. With [`Create::Yes`], missing directories and the
/// file are created; `Ok(None)` means the file does not exist (only with
/// [`Create::No`]). Returns the file and whether it existed.
pub fn open_file(
    root: &Path,
    rel: &[&str],
    create: Create,
) -> Result<Option<(File, bool)>, BeneathError> {
    let mut path = root.to_path_buf();
    let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let mut dir: OwnedFd = File::open(root)
        .map_err(|source| BeneathError::Io {
            path: path.clone(),
            source,
        })?
        .into();
    let Some((leaf, parents)) = rel.split_last() else {
        return Err(BeneathError::Io {
            path,
            source: io::Error::new(io::ErrorKind::InvalidInput, "empty path"),
        });
    };
    for comp in parents {
        path.push(comp);
        let name = c_name(comp, &path)?;
        let next = match openat(&dir, &name, dir_flags | libc::O_NOFOLLOW) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create == Create::Yes => {
                // SAFETY: mkdirat with a valid directory fd and a NUL-terminated name.
                let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(classify(e, &path));
                    }
                }
                openat(&dir, &name, dir_flags | libc::O_NOFOLLOW)
            }
            other => other,
        };
        dir = match next {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(classify_at(e, &dir, &name, &path)),
        };
    }
    path.push(leaf);
    let name = c_name(leaf, &path)?;
    let flags = libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    match openat(&dir, &name, flags) {
        Ok(fd) => return Ok(Some((File::from(fd), true))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create == Create::Yes => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(classify(e, &path)),
    }
    // O_EXCL: a link (even a dangling one) that appeared meanwhile is refused.
    match openat(&dir, &name, flags | libc::O_CREAT | libc::O_EXCL) {
        Ok(fd) => Ok(Some((File::from(fd), false))),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => openat(&dir, &name, flags)
            .map(|fd| Some((File::from(fd), true)))
            .map_err(|e| classify(e, &path)),
        Err(e) => Err(classify(e, &path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_nested_files_and_reopens_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_, existed) = open_file(dir.path(), &["a", "b", "c.bin"], Create::Yes)
            .unwrap()
            .unwrap();
        assert!(!existed);
        assert!(dir.path().join("a/b/c.bin").is_file());
        let (_, existed) = open_file(dir.path(), &["a", "b", "c.bin"], Create::No)
            .unwrap()
            .unwrap();
        assert!(existed);
        assert!(open_file(dir.path(), &["a", "nope"], Create::No)
            .unwrap()
            .is_none());
        assert!(open_file(dir.path(), &["x", "nope"], Create::No)
            .unwrap()
            .is_none());
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn links_are_refused_at_every_component() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("target"), b"keep").unwrap();
        // A link as the file, as a directory on the way, and a dangling one.
        symlink(outside.path().join("target"), dir.path().join("file")).unwrap();
        symlink(outside.path(), dir.path().join("sub")).unwrap();
        symlink(outside.path().join("new"), dir.path().join("dangling")).unwrap();
        for rel in [
            &["file"][..],
            &["sub", "target"],
            &["sub", "x", "y"],
            &["dangling"],
        ] {
            for create in [Create::Yes, Create::No] {
                let err = open_file(dir.path(), rel, create).unwrap_err();
                assert!(matches!(err, BeneathError::Link(_)), "{rel:?}: {err}");
            }
        }
        assert_eq!(
            std::fs::read(outside.path().join("target")).unwrap(),
            b"keep"
        );
        assert!(!outside.path().join("new").exists());
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn a_file_in_the_way_of_a_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        let err = open_file(dir.path(), &["a", "b"], Create::Yes).unwrap_err();
        assert!(matches!(err, BeneathError::NotADirectory(_)), "{err}");
    }
}
