//! Torrent files (JSON; one file or a directory): parse and validate. A
//! torrent that parses is valid, writes back to JSON that parses to the same
//! torrent with the same info hash, and its layout is consistent: every
//! piece's spans add up to the piece's size, every file maps to pieces that
//! exist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{Layout, Torrent};

fuzz_target!(|data: &[u8]| {
    let Ok(t) = Torrent::from_json(data) else {
        return;
    };
    t.info.validate().expect("a parsed torrent is valid");
    let json = t.to_json_pretty();
    let back = Torrent::from_json(json.as_bytes()).expect("our own JSON reads back");
    assert_eq!(back, t);
    assert_eq!(back.info_hash(), t.info_hash());
    let _ = t.tracker();

    let info = &t.info;
    let layout = Layout::new(info);
    assert_eq!(layout.total(), info.file_length);
    assert_eq!(layout.file_count(), info.file_list().len());
    let count = info.piece_count();
    for i in (0..count.min(64)).chain(count.saturating_sub(2)..count) {
        let spans = layout.piece_spans(i);
        let sum: u64 = spans.iter().map(|s| s.len).sum();
        assert_eq!(sum, info.piece_size(i), "piece {i}");
    }
    assert!(layout.piece_spans(count).is_empty());
    for file in 0..layout.file_count().min(64) {
        let r = layout.pieces_of_file(file);
        assert!(r.start <= r.end && r.end <= count, "file {file}: {r:?}");
    }
    if let Some(files) = &info.files {
        for f in files.iter().take(64) {
            let _ = f.display_path();
        }
    }
});
