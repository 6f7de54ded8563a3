//! The data on disk, and its resume file.
//!
//! A torrent's data is one file, `DIR/file_name`, or for a directory torrent
//! the files `DIR/name/…` that its pieces run over in list order
//! ([`wire::Layout`]). Pieces are written at their offsets in preallocated
//! files with positional I/O (`pwrite`/`pread`), a piece that spans files
//! piece by piece of each, so any number of connection tasks can read and
//! write concurrently through a shared `&Storage`, and memory never holds
//! more than the pieces in transit.
//!
//! Every file is opened below DIR without following links
//! ([`crate::beneath`]). At most [`MAX_OPEN_FILES`] stay open at a time (the
//! least recently used is closed), so a torrent of 100,000 files works
//! within the default descriptor limit.
//!
//! The resume file (`<name>.lsresume` beside the data) records the verified
//! pieces together with the data's total size and newest mtime. On start, a
//! resume file that matches lets the peer skip re-hashing; one that does not
//! (e.g. after a crash, when a file changed after the last flush) makes it
//! re-hash the data, so only verified data is ever trusted.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use wire::{Bitfield, Info, InfoHash, Layout};

use lanio::BadInput;

use crate::beneath::{self, BeneathError, Create};
use crate::diskspace;
use crate::durable;
use crate::hashing;

/// Most data files held open at once.
pub const MAX_OPEN_FILES: usize = 64;

/// How the data was found on start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartState {
    /// There was no data; empty files were created.
    Created,
    /// The resume file matched; its bitfield was used without hashing.
    Resumed,
    /// The existing data was hashed piece by piece.
    Verified,
}

/// The on-disk record of verified pieces.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ResumeRecord {
    info_hash: String,
    /// Total bytes of the data.
    file_length: u64,
    /// The newest modification time among the data files.
    mtime_ns: u128,
    /// One character per piece, '1' for verified.
    have: String,
}

/// The open data files: a small cache, least recently used closed first.
#[derive(Debug, Default)]
struct Handles {
    open: HashMap<usize, (Arc<File>, u64)>,
    clock: u64,
    /// Files written since the last resume save.
    dirty: HashSet<usize>,
}

/// A torrent's data files.
#[derive(Debug)]
pub struct Storage {
    root: PathBuf,
    /// Each file's path below `root` and its length, in piece order.
    files: Vec<(Vec<String>, u64)>,
    layout: Layout,
    info: Info,
    info_hash: InfoHash,
    data_path: PathBuf,
    resume_path: PathBuf,
    handles: Mutex<Handles>,
    /// The newest mtime seen among the files, for the resume record.
    newest_mtime: Mutex<u128>,
    /// Held for the whole of a resume save; holds the piece count of the
    /// newest record written. Saves come from the progress task, the piece
    /// that completes the download and the shutdown, and may overlap.
    saving: Mutex<u32>,
    /// Taken around each write, by file index modulo their number. The
    /// kernel writes to one file one call at a time anyway (ext4 holds the
    /// inode's lock for the whole copy), and a second writer waits for it
    /// by spinning on the CPU while the first one copies: with two cores,
    /// that was a sixth of the receive threads' time on a download larger
    /// than the warm memory (a copy into fresh pages is slow). A writer
    /// waiting here sleeps instead, and leaves the core to others.
    write_turns: [Mutex<()>; WRITE_TURNS],
}

/// How many write turns (see [`Storage::write_turns`]): files of a
/// directory torrent share them, by index.
const WRITE_TURNS: usize = 8;

fn mtime_ns(file: &File) -> io::Result<u128> {
    let modified = file.metadata()?.modified()?;
    Ok(modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos())
}

impl Storage {
    /// Opens (or creates and preallocates) the torrent's files below `dir`
    /// and works out which pieces they already hold. `verify_progress` is
    /// called with bytes hashed when the data has to be re-hashed.
    pub fn open(
        dir: &Path,
        info: &Info,
        info_hash: InfoHash,
        verify_progress: impl FnMut(u64),
    ) -> anyhow::Result<(Storage, Bitfield, StartState)> {
        Self::open_with(dir, info, info_hash, false, verify_progress)
    }

    /// [`Storage::open`]; with `recheck`, data already there is re-hashed
    /// piece by piece whatever its resume file says (`peer --recheck`).
    pub fn open_with(
        dir: &Path,
        info: &Info,
        info_hash: InfoHash,
        recheck: bool,
        verify_progress: impl FnMut(u64),
    ) -> anyhow::Result<(Storage, Bitfield, StartState)> {
        // The torrent parser already refuses unsafe names; check again at the
        // point where names become paths.
        info.validate()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files: Vec<(Vec<String>, u64)> = info
            .file_list()
            .into_iter()
            .map(|(path, len)| (path.into_iter().map(str::to_owned).collect(), len))
            .collect();
        let storage = Storage {
            root: dir.to_path_buf(),
            layout: Layout::new(info),
            files,
            info: info.clone(),
            info_hash,
            data_path: dir.join(&info.file_name),
            resume_path: dir.join(format!("{}.lsresume", info.file_name)),
            handles: Mutex::new(Handles::default()),
            newest_mtime: Mutex::new(0),
            saving: Mutex::new(0),
            write_turns: Default::default(),
        };
        let existed = storage.prepare_files()?;
        let (have, state) = if !existed {
            (Bitfield::new(info.piece_count()), StartState::Created)
        } else if let Some(have) = storage.load_resume().filter(|_| !recheck) {
            (have, StartState::Resumed)
        } else {
            (storage.verify(verify_progress)?, StartState::Verified)
        };
        Ok((storage, have, state))
    }

    /// The data: the file, or the top directory of a directory torrent.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Path of the resume file.
    pub fn resume_path(&self) -> &Path {
        &self.resume_path
    }

    fn rel(&self, file: usize) -> Vec<&str> {
        self.files[file].0.iter().map(String::as_str).collect()
    }

    fn shown(&self, file: usize) -> String {
        self.root
            .join(self.files[file].0.join("/"))
            .display()
            .to_string()
    }

    /// Creates every file that is missing, sizes and preallocates each, and
    /// notes the newest mtime of those that were there. Returns whether any
    /// file existed before.
    fn prepare_files(&self) -> anyhow::Result<bool> {
        // Refuse at the start, not mid-download, when the disk cannot hold it.
        let needed = (self.files.iter().enumerate())
            .map(|(i, (_, len))| {
                diskspace::still_to_reserve(&self.root.join(self.rel(i).join("/")), *len)
            })
            .sum();
        diskspace::ensure_room(&self.root, needed)?;
        let mut any_existed = false;
        let mut newest = 0;
        for (i, (_, len)) in self.files.iter().enumerate() {
            let (file, existed) = beneath::open_file(&self.root, &self.rel(i), Create::Yes)
                .map_err(|e| match e {
                    // Something planted in the download directory: refused as bad input.
                    BeneathError::Link(_) | BeneathError::NotADirectory(_) => {
                        anyhow::Error::from(BadInput(e.to_string()))
                    }
                    BeneathError::Io { .. } => e.into(),
                })?
                .expect("Create::Yes always gives a file");
            // A file already of the right size is left alone: reserving its
            // blocks again would move its mtime and void the resume file.
            if !existed || file.metadata()?.len() != *len {
                preallocate(&file, *len).with_context(|| format!("sizing {}", self.shown(i)))?;
            }
            if existed {
                any_existed = true;
                newest = newest.max(mtime_ns(&file)?);
            }
        }
        *self.newest_mtime.lock().unwrap_or_else(|e| e.into_inner()) = newest;
        Ok(any_existed)
    }

    /// An open handle on file `i`, from the cache or freshly opened.
    fn handle(&self, i: usize) -> io::Result<Arc<File>> {
        let mut h = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        h.clock += 1;
        let now = h.clock;
        if let Some((file, used)) = h.open.get_mut(&i) {
            *used = now;
            return Ok(file.clone());
        }
        if h.open.len() >= MAX_OPEN_FILES {
            if let Some(&oldest) = h
                .open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k)
            {
                h.open.remove(&oldest);
            }
        }
        let (file, _) =
            beneath::open_file(&self.root, &self.rel(i), Create::No)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} has disappeared", self.shown(i)),
                )
            })?;
        let file = Arc::new(file);
        h.open.insert(i, (file.clone(), now));
        Ok(file)
    }

    /// Hashes the existing data and returns the pieces that match.
    fn verify(&self, progress: impl FnMut(u64)) -> anyhow::Result<Bitfield> {
        let reader = self.reader();
        let digests = hashing::hash_pieces(reader, self.info.piece_length, progress)
            .with_context(|| format!("hashing {}", self.data_path.display()))?;
        let mut have = Bitfield::new(self.info.piece_count());
        for (i, expected) in self.info.piece_hash.iter().enumerate() {
            if digests.get(i) == Some(expected) {
                have.set(i as u32, true);
            }
        }
        Ok(have)
    }

    /// All the data as one stream, in piece order.
    fn reader(&self) -> hashing::Concat {
        let root = self.root.clone();
        let files = self.files.clone();
        hashing::Concat::new(
            files.iter().map(|(_, len)| *len).collect(),
            Box::new(move |i| {
                let rel: Vec<&str> = files[i].0.iter().map(String::as_str).collect();
                Ok(beneath::open_file(&root, &rel, Create::No)?.map(|(f, _)| f))
            }),
        )
    }

    fn load_resume(&self) -> Option<Bitfield> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut durable::open_read(&self.resume_path).ok()?, &mut bytes).ok()?;
        let rec: ResumeRecord = serde_json::from_slice(&bytes).ok()?;
        let newest = *self.newest_mtime.lock().unwrap_or_else(|e| e.into_inner());
        let matches = rec.info_hash == self.info_hash.to_hex()
            && rec.file_length == self.info.file_length
            && rec.mtime_ns == newest
            && rec.have.len() == self.info.piece_count() as usize;
        if !matches {
            tracing::info!("resume file does not match the data; re-hashing");
            return None;
        }
        let bits = rec.have.bytes().map(|c| c == b'1').collect();
        Some(Bitfield::from_bools(bits))
    }

    /// Records `have` (a snapshot taken before this call) with the data's
    /// newest mtime. The data it vouches for reaches the disk first: every
    /// file written since the last save is synced (`fdatasync`), then the
    /// record is written durably ([`durable::replace`]: a fresh temporary
    /// file, synced, renamed, the directory synced). A crash at any point
    /// leaves either the old record or the new one, each true of the disk.
    ///
    /// Saves run one at a time: otherwise a save could write its record
    /// while the data it vouches for is still being synced by another (which
    /// took it off the dirty list), and two saves would share one temporary
    /// file. A snapshot older than the newest record written (held pieces
    /// only grow) is not written over it.
    pub fn save_resume(&self, have: &Bitfield) -> io::Result<()> {
        let mut saved = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        if have.count() < *saved {
            return Ok(());
        }
        let dirty: Vec<usize> = {
            let mut h = self.handles.lock().unwrap_or_else(|e| e.into_inner());
            h.dirty.drain().collect()
        };
        let mut newest = *self.newest_mtime.lock().unwrap_or_else(|e| e.into_inner());
        for i in dirty {
            let file = self.handle(i)?;
            file.sync_data()?;
            newest = newest.max(mtime_ns(&file)?);
        }
        *self.newest_mtime.lock().unwrap_or_else(|e| e.into_inner()) = newest;
        let rec = ResumeRecord {
            info_hash: self.info_hash.to_hex(),
            file_length: self.info.file_length,
            mtime_ns: newest,
            have: have
                .as_bools()
                .iter()
                .map(|&b| if b { '1' } else { '0' })
                .collect(),
        };
        let tmp = self.resume_path.with_extension("lsresume.tmp");
        let bytes = serde_json::to_vec(&rec).expect("record serialises");
        durable::replace(&self.resume_path, &tmp, &bytes)?;
        *saved = have.count();
        Ok(())
    }

    /// Where piece `index` lies: files, offsets and lengths, in order (for
    /// zero-copy sends). Open each file with [`Storage::span_file`] only
    /// when its turn comes: a piece may span more files than may be open.
    pub fn piece_spans(&self, index: u32) -> Vec<wire::Span> {
        self.layout.piece_spans(index)
    }

    /// The open file of a span.
    pub fn span_file(&self, span: &wire::Span) -> io::Result<Arc<File>> {
        self.handle(span.file)
    }

    /// Reads piece `index`.
    pub fn read_piece(&self, index: u32) -> io::Result<Bytes> {
        let len = self.info.piece_size(index) as usize;
        let mut buf = BytesMut::zeroed(len);
        let mut at = 0;
        for s in self.layout.piece_spans(index) {
            let end = at + s.len as usize;
            self.handle(s.file)?
                .read_exact_at(&mut buf[at..end], s.offset)?;
            at = end;
        }
        Ok(buf.freeze())
    }

    /// Writes piece `index`, whose length the caller has checked.
    pub fn write_piece(&self, index: u32, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(data.len() as u64, self.info.piece_size(index));
        self.write_piece_part(index, 0, data)
    }

    /// Writes `data` at byte `offset` of piece `index` (one chunk of a piece
    /// being received: one `pwrite` per file it touches). Bytes beyond the
    /// piece's end are refused.
    pub fn write_piece_part(&self, index: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset + data.len() as u64 > self.info.piece_size(index) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write beyond the end of piece {index}"),
            ));
        }
        let mut skip = offset;
        let mut data = data;
        for s in self.layout.piece_spans(index) {
            if data.is_empty() {
                break;
            }
            if skip >= s.len {
                skip -= s.len;
                continue;
            }
            let n = ((s.len - skip) as usize).min(data.len());
            let file = self.handle(s.file)?;
            {
                let _turn = self.write_turns[s.file % WRITE_TURNS]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                file.write_all_at(&data[..n], s.offset + skip)?;
            }
            self.handles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .dirty
                .insert(s.file);
            data = &data[n..];
            skip = 0;
        }
        Ok(())
    }
}

/// Sizes `file` to `len` bytes and reserves its blocks, so that a full disk
/// shows now, not mid-download.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    if file.metadata()?.len() != len {
        file.set_len(len)?;
    }
    if len > 0 {
        // SAFETY: plain syscall on a file descriptor we own.
        let rc = unsafe {
            libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(file), 0, len as libc::off_t)
        };
        if rc != 0 && rc != libc::EOPNOTSUPP && rc != libc::EINVAL {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
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
        st.handle(0).unwrap().set_modified(later).unwrap();
        drop(st);
        let (_, have3, state) = Storage::open(dir.path(), &info, ih, |_| {}).unwrap();
        assert_eq!(state, StartState::Verified);
        assert_eq!(have3.iter_present().collect::<Vec<_>>(), vec![0, 3, 5, 9]);
    }

    #[test]
    fn overlapping_resume_saves_all_succeed_and_the_newest_record_stands() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        let info = info_for(&data, 1024);
        let ih = InfoHash([3; 20]);
        let (st, _, _) = Storage::open(dir.path(), &info, ih, |_| {}).unwrap();
        let st = Arc::new(st);
        // Eight savers at once, each writing pieces and then saving a
        // snapshot that holds what it wrote; every save must succeed.
        let savers: Vec<_> = (0..8u32)
            .map(|t| {
                let st = st.clone();
                let data = data.clone();
                let info = info.clone();
                std::thread::spawn(move || {
                    for round in 0..8u32 {
                        let mut have = Bitfield::new(info.piece_count());
                        for i in 0..=(t * 8 + round) {
                            let piece = &data[info.piece_offset(i) as usize..]
                                [..info.piece_size(i) as usize];
                            st.write_piece(i, piece).unwrap();
                            have.set(i, true);
                        }
                        st.save_resume(&have).unwrap();
                    }
                })
            })
            .collect();
        for s in savers {
            s.join().unwrap();
        }
        // The shutdown's save, then an older snapshot arriving late: it
        // must not replace the newer record.
        let mut all = Bitfield::new(info.piece_count());
        for i in 0..64 {
            all.set(i, true);
        }
        st.save_resume(&all).unwrap();
        st.save_resume(&Bitfield::new(info.piece_count())).unwrap();
        drop(st);
        let (_, have, state) = Storage::open(dir.path(), &info, ih, |_| {}).unwrap();
        assert_eq!(state, StartState::Resumed);
        assert_eq!(have, all);
    }

    #[test]
    fn a_piece_written_in_chunks_across_files_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut info = info_for(&data, 1024);
        info.file_name = "tree".into();
        info.files = Some(
            [700u64, 1, 1300, 999]
                .iter()
                .enumerate()
                .map(|(i, &length)| wire::FileEntry {
                    path: vec![format!("f{i}")],
                    length,
                })
                .collect(),
        );
        let (st, _, _) = Storage::open(dir.path(), &info, InfoHash([1; 20]), |_| {}).unwrap();
        for i in 0..info.piece_count() {
            let piece = &data[info.piece_offset(i) as usize..][..info.piece_size(i) as usize];
            let mut at = 0;
            for part in piece.chunks(300) {
                st.write_piece_part(i, at as u64, part).unwrap();
                at += part.len();
            }
            assert_eq!(&st.read_piece(i).unwrap()[..], piece, "piece {i}");
        }
        assert!(
            st.write_piece_part(2, 900, &[0; 100]).is_err(),
            "past the end"
        );
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
