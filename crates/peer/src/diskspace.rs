//! Free space on the file system a download writes to, checked before
//! anything is written, so a full disk shows at the start with a clear
//! error instead of mid-download (or after filling the disk for others).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Not enough room for a download.
#[derive(Debug, thiserror::Error)]
#[error(
    "not enough free space in {}: {needed} bytes needed, {available} available",
    dir.display()
)]
pub struct NoRoom {
    pub dir: PathBuf,
    pub needed: u64,
    pub available: u64,
}

/// Bytes an unprivileged process may still write on the file system of `dir`.
pub fn available(dir: &Path) -> io::Result<u64> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: `statvfs` fills the zeroed struct we own; `path` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Checks that `needed` more bytes fit in `dir`'s file system. A file system
/// that cannot say (an error from `statvfs`) is given the benefit of the doubt.
pub fn ensure_room(dir: &Path, needed: u64) -> Result<(), NoRoom> {
    match available(dir) {
        Ok(available) if available < needed => Err(NoRoom {
            dir: dir.to_path_buf(),
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

/// Bytes still to be reserved for a file of `len` bytes at `path`: all of
/// them if it is missing (or not a plain file), else those its blocks do not
/// cover yet. Links are not followed.
pub fn still_to_reserve(path: &Path, len: u64) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => len.saturating_sub(m.blocks().saturating_mul(512)),
        _ => len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_has_some_room_but_not_an_exabyte() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available(dir.path()).unwrap() > 0);
        assert!(ensure_room(dir.path(), 1).is_ok());
        let err = ensure_room(dir.path(), u64::MAX).unwrap_err();
        assert_eq!(err.needed, u64::MAX);
        assert!(err.to_string().contains("not enough free space"), "{err}");
    }

    #[test]
    fn reserved_blocks_count_and_missing_files_need_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(still_to_reserve(&path, 1 << 20), 1 << 20);
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        assert_eq!(still_to_reserve(&path, 1 << 20), 0);
        // A sparse file reserves nothing yet.
        let sparse = dir.path().join("s");
        std::fs::File::create(&sparse)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        assert_eq!(still_to_reserve(&sparse, 1 << 20), 1 << 20);
    }
}
