//! Where a torrent's bytes live: pieces mapped onto files.
//!
//! Pieces run over the torrent's files concatenated in list order (BEP 3),
//! so one piece may span several files and one file hold several pieces.
//! A single-file torrent is the case of one file. [`Layout`] answers, for a
//! byte range of the torrent, which files hold it and where: a list of
//! [`Span`]s, empty files skipped.

use std::ops::Range;

use crate::torrent::Info;

/// A run of bytes inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the file in [`Info::file_list`] order.
    pub file: usize,
    /// Offset inside that file.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// The files of a torrent as byte ranges of the concatenated whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// End offset (exclusive) of each file in the whole; non-decreasing.
    ends: Vec<u64>,
    piece_length: u64,
}

impl Layout {
    /// The layout of `info`'s files.
    pub fn new(info: &Info) -> Layout {
        let mut end = 0u64;
        let ends = info
            .file_list()
            .iter()
            .map(|&(_, len)| {
                end = end.saturating_add(len);
                end
            })
            .collect();
        Layout {
            ends,
            piece_length: info.piece_length.max(1),
        }
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.ends.len()
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Where file `file` starts in the whole.
    pub fn file_start(&self, file: usize) -> u64 {
        if file == 0 {
            0
        } else {
            self.ends
                .get(file - 1)
                .copied()
                .unwrap_or_else(|| self.total())
        }
    }

    /// The spans holding bytes `[offset, offset + len)` of the whole, in
    /// order, clipped to the total length.
    pub fn spans(&self, offset: u64, len: u64) -> Vec<Span> {
        let end = offset.saturating_add(len).min(self.total());
        let mut spans = Vec::new();
        let mut at = offset;
        // The first file that ends after `offset` (empty files end where they start).
        let mut file = self.ends.partition_point(|&e| e <= offset);
        while at < end && file < self.ends.len() {
            let start = self.file_start(file);
            let stop = self.ends[file].min(end);
            if stop > at {
                spans.push(Span {
                    file,
                    offset: at - start,
                    len: stop - at,
                });
                at = stop;
            }
            file += 1;
        }
        spans
    }

    /// The spans of piece `index` (the last piece may be short).
    pub fn piece_spans(&self, index: u32) -> Vec<Span> {
        let offset = u64::from(index).saturating_mul(self.piece_length);
        self.spans(offset, self.piece_length)
    }

    /// The pieces that hold any byte of file `file` (empty for an empty file).
    pub fn pieces_of_file(&self, file: usize) -> Range<u32> {
        let (start, end) = (
            self.file_start(file),
            self.ends.get(file).copied().unwrap_or(0),
        );
        if end <= start {
            return 0..0;
        }
        let first = start / self.piece_length;
        let last = (end - 1) / self.piece_length;
        first as u32..last as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::FileEntry;

    fn info(lengths: &[u64], piece_length: u64) -> Info {
        let total: u64 = lengths.iter().sum();
        Info {
            piece_length,
            piece_hash: vec![[0; 20]; Info::expected_pieces(total, piece_length) as usize],
            file_name: "t".into(),
            file_length: total,
            files: Some(
                lengths
                    .iter()
                    .enumerate()
                    .map(|(i, &length)| FileEntry {
                        path: vec![format!("f{i}")],
                        length,
                    })
                    .collect(),
            ),
        }
    }

    fn span(file: usize, offset: u64, len: u64) -> Span {
        Span { file, offset, len }
    }

    #[test]
    fn a_piece_spans_three_files_and_empty_files_are_skipped() {
        // Files: 3 bytes, empty, 1 byte, empty, 10 bytes; pieces of 6.
        let l = Layout::new(&info(&[3, 0, 1, 0, 10], 6));
        assert_eq!(l.total(), 14);
        assert_eq!(
            l.piece_spans(0),
            vec![span(0, 0, 3), span(2, 0, 1), span(4, 0, 2)]
        );
        assert_eq!(l.piece_spans(1), vec![span(4, 2, 6)]);
        assert_eq!(l.piece_spans(2), vec![span(4, 8, 2)]);
        assert_eq!(l.piece_spans(3), vec![]);
        assert_eq!(l.pieces_of_file(0), 0..1);
        assert_eq!(l.pieces_of_file(1), 0..0);
        assert_eq!(l.pieces_of_file(4), 0..3);
    }

    #[test]
    fn single_file_is_one_span() {
        let mut i = info(&[10], 4);
        i.files = None;
        i.file_name = "data.bin".into();
        let l = Layout::new(&i);
        assert_eq!(l.file_count(), 1);
        assert_eq!(l.piece_spans(2), vec![span(0, 8, 2)]);
        assert_eq!(l.spans(u64::MAX, u64::MAX), vec![]);
    }

    #[test]
    fn spans_cover_every_byte_once() {
        let lengths = [0, 5, 1, 0, 0, 7, 2, 0, 9];
        let l = Layout::new(&info(&lengths, 4));
        let mut covered = 0;
        for p in 0..Info::expected_pieces(l.total(), 4) as u32 {
            let spans = l.piece_spans(p);
            let sum: u64 = spans.iter().map(|s| s.len).sum();
            assert_eq!(sum, (l.total() - u64::from(p) * 4).min(4));
            for s in &spans {
                assert!(s.len > 0 && s.offset + s.len <= lengths[s.file]);
            }
            covered += sum;
        }
        assert_eq!(covered, l.total());
    }
}
