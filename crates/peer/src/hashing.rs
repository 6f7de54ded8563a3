//! Streaming SHA-1 of a file's pieces, or of several files' concatenation.
//!
//! The file is read in large sequential chunks on one thread while another
//! hashes, so hashing runs at the speed of SHA-1 rather than of SHA-1 plus
//! `read`, and memory stays at a few buffers whatever the file size.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc;
use std::thread;

use sha1::{Digest, Sha1};

/// Size of each read; a multiple of every power-of-two piece length up to it.
const CHUNK: usize = 4 * 1024 * 1024;
/// Buffers circulating between the reader and the hasher.
const BUFFERS: usize = 3;

/// SHA-1 of one buffer.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// Hashes `file` (read from its current position to EOF; a [`File`] or a
/// [`Concat`]) in pieces of `piece_length` bytes. `progress` is called with
/// the number of bytes hashed so far after every chunk. Returns one digest
/// per piece.
pub fn hash_pieces<R: Read + Send + 'static>(
    file: R,
    piece_length: u64,
    mut progress: impl FnMut(u64),
) -> io::Result<Vec<[u8; 20]>> {
    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        empty_tx
            .send(vec![0u8; CHUNK])
            .expect("room for every buffer");
    }
    let reader = thread::spawn(move || -> io::Result<()> {
        let mut file = file;
        while let Ok(mut buf) = empty_rx.recv() {
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let eof = filled < buf.len();
            if full_tx.send((buf, filled)).is_err() || eof {
                break;
            }
        }
        Ok(())
    });

    let mut digests = Vec::new();
    let mut hasher = Sha1::new();
    let mut in_piece = 0u64;
    let mut total = 0u64;
    for (buf, filled) in full_rx.iter() {
        let mut data = &buf[..filled];
        while !data.is_empty() {
            let take = ((piece_length - in_piece) as usize).min(data.len());
            hasher.update(&data[..take]);
            in_piece += take as u64;
            data = &data[take..];
            if in_piece == piece_length {
                digests.push(hasher.finalize_reset().into());
                in_piece = 0;
            }
        }
        total += filled as u64;
        progress(total);
        // The reader may have stopped at EOF already; then the buffer is just dropped.
        let _ = empty_tx.send(buf);
    }
    reader.join().expect("reader thread does not panic")?;
    if in_piece > 0 {
        digests.push(hasher.finalize().into());
    }
    Ok(digests)
}

/// Opens file `i` of a [`Concat`]; `None` when it does not exist.
pub type Opener = Box<dyn FnMut(usize) -> io::Result<Option<File>> + Send>;

/// Several files read as one stream, each exactly its expected length:
/// a missing or short file reads as zeros, a longer one is cut. Files are
/// opened one at a time, as the stream reaches them.
pub struct Concat {
    lengths: Vec<u64>,
    open: Opener,
    /// The file being read, its index, and bytes of it already read.
    current: Option<(Option<File>, usize, u64)>,
    next: usize,
}

impl Concat {
    /// A stream over files of these `lengths`, opened by `open`.
    pub fn new(lengths: Vec<u64>, open: Opener) -> Concat {
        Concat {
            lengths,
            open,
            current: None,
            next: 0,
        }
    }
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() {
                if self.next >= self.lengths.len() {
                    return Ok(0);
                }
                let file = (self.open)(self.next)?;
                self.current = Some((file, self.next, 0));
                self.next += 1;
            }
            let (file, i, done) = self.current.as_mut().expect("set above");
            let left = self.lengths[*i] - *done;
            if left == 0 || buf.is_empty() {
                self.current = None;
                if buf.is_empty() {
                    return Ok(0);
                }
                continue;
            }
            let want = left.min(buf.len() as u64) as usize;
            let n = match file {
                Some(f) => match f.read(&mut buf[..want])? {
                    0 => {
                        // Short file: the rest reads as zeros.
                        *file = None;
                        continue;
                    }
                    n => n,
                },
                None => {
                    buf[..want].fill(0);
                    want
                }
            };
            *done += n as u64;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn concat_pads_short_and_missing_files_and_cuts_long_ones() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a", "b", "c", "d"];
        std::fs::write(dir.path().join("a"), b"abc").unwrap();
        std::fs::write(dir.path().join("b"), b"x").unwrap(); // short: 3 expected
                                                             // c is missing
        std::fs::write(dir.path().join("d"), b"toolong").unwrap(); // cut to 2
        let root = dir.path().to_path_buf();
        let mut c = Concat::new(
            vec![3, 3, 2, 2],
            Box::new(move |i| match File::open(root.join(names[i])) {
                Ok(f) => Ok(Some(f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }),
        );
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcx\0\0\0\0to");
    }

    #[test]
    fn pieces_match_direct_hashes() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let piece = 1 << 20;
        let mut last = 0;
        let got = hash_pieces(f, piece, |n| last = n).unwrap();
        let want: Vec<[u8; 20]> = data.chunks(piece as usize).map(sha1).collect();
        assert_eq!(got, want);
        assert_eq!(last, data.len() as u64);
    }

    #[test]
    fn odd_piece_lengths_and_empty_files() {
        let data = vec![9u8; 1000];
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let got = hash_pieces(f, 300, |_| {}).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], sha1(&data[900..]));
        let empty = tempfile::tempfile().unwrap();
        assert!(hash_pieces(empty, 300, |_| {}).unwrap().is_empty());
    }
}
