//! The data file on disk, and its resume file.
//!
//! Pieces are written at their offsets in a preallocated file with
//! positional I/O (`pwrite`/`pread`), so any number of connection tasks can
//! read and write concurrently through a shared `&Storage` and memory never
//! holds more than the pieces in transit.
//!
//! The resume file (`<file_name>.lsresume` beside the data) records the
//! verified pieces together with the data file's size and mtime. On start,
//! a resume file that matches lets the peer skip re-hashing; one that does not
//! (e.g. after a crash, when the file changed after the last flush) makes it
//! re-hash the file, so only verified data is ever trusted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use wire::{Bitfield, Info, InfoHash};

use crate::hashing;

/// How a data file was found on start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartState {
    /// There was no data file; an empty one was created.
    Created,
    /// The resume file matched; its bitfield was used without hashing.
    Resumed,
    /// The existing file was hashed piece by piece.
    Verified,
}

/// The on-disk record of verified pieces.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ResumeRecord {
    info_hash: String,
    file_length: u64,
    mtime_ns: u128,
    /// One character per piece, '1' for verified.
    have: String,
}

/// A torrent's data file.
#[derive(Debug)]
pub struct Storage {
    file: File,
    info: Info,
    info_hash: InfoHash,
    data_path: PathBuf,
    resume_path: PathBuf,
}

fn mtime_ns(file: &File) -> io::Result<u128> {
    let modified = file.metadata()?.modified()?;
    Ok(modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos())
}

impl Storage {
    /// Opens (or creates and preallocates) `dir/file_name` and works out which
    /// pieces it already holds. `verify_progress` is called with bytes hashed
    /// when the file has to be re-hashed.
    pub fn open(
        dir: &Path,
        info: &Info,
        info_hash: InfoHash,
        verify_progress: impl FnMut(u64),
    ) -> anyhow::Result<(Storage, Bitfield, StartState)> {
        // The torrent parser already refuses unsafe names; check again at the
        // point where the name becomes a path.
        wire::torrent::validate_file_name(&info.file_name)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let data_path = dir.join(&info.file_name);
        let resume_path = dir.join(format!("{}.lsresume", info.file_name));
        let existed = data_path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .with_context(|| format!("opening {}", data_path.display()))?;
        let storage = Storage {
            file,
            info: info.clone(),
            info_hash,
            data_path,
            resume_path,
        };
        let (have, state) = if !existed {
            (Bitfield::new(info.piece_count()), StartState::Created)
        } else if let Some(have) = storage.load_resume() {
            (have, StartState::Resumed)
        } else {
            (storage.verify(verify_progress)?, StartState::Verified)
        };
        storage.preallocate()?;
        Ok((storage, have, state))
    }

    /// Path of the data file.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Path of the resume file.
    pub fn resume_path(&self) -> &Path {
        &self.resume_path
    }

    fn preallocate(&self) -> anyhow::Result<()> {
        let len = self.info.file_length;
        if self.file.metadata()?.len() != len {
            self.file
                .set_len(len)
                .with_context(|| format!("sizing {}", self.data_path.display()))?;
        }
        if len > 0 {
            // Reserve the blocks so a full disk shows now, not mid-download.
            // SAFETY: plain syscall on a file descriptor we own.
            let rc = unsafe {
                libc::posix_fallocate(
                    std::os::fd::AsRawFd::as_raw_fd(&self.file),
                    0,
                    len as libc::off_t,
                )
            };
            if rc != 0 && rc != libc::EOPNOTSUPP && rc != libc::EINVAL {
                return Err(io::Error::from_raw_os_error(rc))
                    .with_context(|| format!("preallocating {}", self.data_path.display()));
            }
        }
        Ok(())
    }

    /// Hashes the existing file and returns the pieces that match.
    fn verify(&self, progress: impl FnMut(u64)) -> anyhow::Result<Bitfield> {
        let file = File::open(&self.data_path)?;
        let digests = hashing::hash_pieces(file, self.info.piece_length, progress)
            .with_context(|| format!("hashing {}", self.data_path.display()))?;
        let mut have = Bitfield::new(self.info.piece_count());
        for (i, expected) in self.info.piece_hash.iter().enumerate() {
            let i = i as u32;
            // A short file's last digest covers a partial piece: compare only
            // pieces whose full length is present.
            let full = self.info.piece_offset(i) + self.info.piece_size(i);
            if digests.get(i as usize) == Some(expected) && full <= self.file.metadata()?.len() {
                have.set(i, true);
            }
        }
        Ok(have)
    }

    fn load_resume(&self) -> Option<Bitfield> {
        let bytes = std::fs::read(&self.resume_path).ok()?;
        let rec: ResumeRecord = serde_json::from_slice(&bytes).ok()?;
        let meta = self.file.metadata().ok()?;
        let matches = rec.info_hash == self.info_hash.to_hex()
            && rec.file_length == self.info.file_length
            && meta.len() == self.info.file_length
            && rec.mtime_ns == mtime_ns(&self.file).ok()?
            && rec.have.len() == self.info.piece_count() as usize;
        if !matches {
            tracing::info!("resume file does not match the data file; re-hashing");
            return None;
        }
        let bits = rec.have.bytes().map(|c| c == b'1').collect();
        Some(Bitfield::from_bools(bits))
    }

    /// Records `have` (a snapshot taken before this call) with the file's
    /// current mtime. Written to a temporary file and renamed into place.
    pub fn save_resume(&self, have: &Bitfield) -> io::Result<()> {
        let rec = ResumeRecord {
            info_hash: self.info_hash.to_hex(),
            file_length: self.info.file_length,
            mtime_ns: mtime_ns(&self.file)?,
            have: have
                .as_bools()
                .iter()
                .map(|&b| if b { '1' } else { '0' })
                .collect(),
        };
        let tmp = self.resume_path.with_extension("lsresume.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&rec).expect("record serialises"))?;
        std::fs::rename(&tmp, &self.resume_path)
    }

    /// The open data file (for zero-copy sends).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads piece `index`.
    pub fn read_piece(&self, index: u32) -> io::Result<Bytes> {
        let len = self.info.piece_size(index) as usize;
        let mut buf = BytesMut::zeroed(len);
        self.file
            .read_exact_at(&mut buf, self.info.piece_offset(index))?;
        Ok(buf.freeze())
    }

    /// Writes piece `index`, whose length the caller has checked.
    pub fn write_piece(&self, index: u32, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(data.len() as u64, self.info.piece_size(index));
        self.file.write_all_at(data, self.info.piece_offset(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_for(data: &[u8], piece_length: u64) -> Info {
        Info {
            piece_length,
            piece_hash: data
                .chunks(piece_length as usize)
                .map(hashing::sha1)
                .collect(),
            file_name: "data.bin".into(),
            file_length: data.len() as u64,
            files: None,
        }
    }

    #[test]
    fn create_write_resume_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let info = info_for(&data, 1024);
        let ih = InfoHash([7; 20]);
        let (st, mut have, state) = Storage::open(dir.path(), &info, ih, |_| {}).unwrap();
        assert_eq!(state, StartState::Created);
        assert_eq!(have.count(), 0);
        assert_eq!(std::fs::metadata(st.data_path()).unwrap().len(), 10_000);
        for i in [0u32, 3, 9] {
            let piece = &data[info.piece_offset(i) as usize..][..info.piece_size(i) as usize];
            st.write_piece(i, piece).unwrap();
            have.set(i, true);
            assert_eq!(&st.read_piece(i).unwrap()[..], piece);
        }
        st.save_resume(&have).unwrap();
        drop(st);

        // A matching resume file is trusted.
        let (st, have2, state) = Storage::open(dir.path(), &info, ih, |_| {}).unwrap();
        assert_eq!(state, StartState::Resumed);
        assert_eq!(have2, have);

        // After a change to the data file the resume file no longer matches: re-hash.
        st.write_piece(5, &data[5120..6144]).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        st.file.set_modified(later).unwrap();
        drop(st);
        let (_, have3, state) = Storage::open(dir.path(), &info, ih, |_| {}).unwrap();
        assert_eq!(state, StartState::Verified);
        assert_eq!(have3.iter_present().collect::<Vec<_>>(), vec![0, 3, 5, 9]);
    }

    #[test]
    fn existing_complete_file_is_verified_as_seed() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![42u8; 5000];
        std::fs::write(dir.path().join("data.bin"), &data).unwrap();
        let info = info_for(&data, 1024);
        let (_, have, state) =
            Storage::open(dir.path(), &info, InfoHash::default(), |_| {}).unwrap();
        assert_eq!(state, StartState::Verified);
        assert!(have.is_complete());
    }

    #[test]
    fn unsafe_names_are_refused_before_touching_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut info = info_for(&[1, 2, 3], 1024);
        info.file_name = "../evil".into();
        assert!(
            Storage::open(&dir.path().join("sub"), &info, InfoHash::default(), |_| {}).is_err()
        );
        assert!(!dir.path().join("evil").exists());
        assert!(!dir.path().join("sub").exists());
    }
}
