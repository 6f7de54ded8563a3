//! Torrent metadata: a JSON file describing one shared file or a directory.
//!
//! ```json
//! { "announce": "127.0.0.1", "port": 6666, "comment": "…",
//!   "info": { "piece_length": 262144, "piece_hash": ["<40 hex>", …],
//!             "file_name": "data.bin", "file_length": 1048576 } }
//! ```
//!
//! An optional `announce_list` names several trackers (`["host:port", …]`,
//! BEP 12 single tier): a peer tries them in order. Torrents without it keep
//! loading unchanged, and it never changes the info hash.
//!
//! A directory torrent holds `name` (the top directory) and `files`, a list
//! of `{"path": [components…], "length": N}`, instead of `file_name` and
//! `file_length`. Pieces run over the files concatenated in list order, as
//! in BitTorrent (BEP 3): a piece may span several files
//! ([`crate::layout`] maps pieces to files).
//!
//! We write piece hashes as lowercase hex; on read we also accept the seed
//! tool's Python bytes reprs (see [`crate::pyrepr`]). The [`InfoHash`] is the
//! SHA-1 of a canonical encoding of the parsed `info`, so reformatting the
//! file never changes it. Validation guarantees a consistent piece count, a
//! sane piece length, and a `file_name` that cannot escape a directory.

use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use crate::ids::{parse_hex20, to_hex, InfoHash};

/// Largest piece length we accept: 16 MiB.
pub const MAX_PIECE_LENGTH: u64 = 16 * 1024 * 1024;

/// Most trackers an `announce_list` may name.
pub const MAX_TRACKERS: usize = 32;

/// Most files a directory torrent may list.
pub const MAX_FILES: usize = 1_000_000;
/// Longest path component, in bytes (the usual file-system limit).
pub const MAX_COMPONENT: usize = 255;
/// Longest path of a file inside the torrent, `name/a/b/…`, in bytes.
pub const MAX_PATH: usize = 4096;

/// What is being shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub piece_length: u64,
    pub piece_hash: Vec<[u8; 20]>,
    /// The file's name; for a directory torrent, the top directory's name.
    pub file_name: String,
    /// The file's length; for a directory torrent, the sum of its files'.
    pub file_length: u64,
    /// For a directory torrent, its files in piece order; `None` for a
    /// single-file torrent.
    pub files: Option<Vec<FileEntry>>,
}

/// One file of a directory torrent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileEntry {
    /// Path components below the top directory.
    pub path: Vec<String>,
    pub length: u64,
}

impl FileEntry {
    /// The path joined with `/`, for messages.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

/// A torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    /// Tracker host; empty for a torrent without a tracker, which swarms by
    /// LAN discovery alone (`announce` and `port` are then left out).
    pub announce: String,
    /// Tracker port.
    pub port: u16,
    /// Several trackers as "host:port", in the order to try them; empty when
    /// the torrent names only `announce`/`port`.
    pub announce_list: Vec<String>,
    pub comment: String,
    pub info: Info,
}

/// Why a torrent file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TorrentError {
    #[error("torrent is not valid JSON: {0}")]
    Json(String),
    #[error("torrent is missing key '{0}'")]
    Missing(&'static str),
    #[error("torrent key '{key}' must be {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("piece hash #{index} is neither 40 hex characters nor a 20-byte Python bytes repr")]
    BadPieceHash { index: usize },
    #[error("piece_length must be between 1 and {MAX_PIECE_LENGTH} bytes, got {0}")]
    PieceLength(u64),
    #[error("torrent lists {actual} piece hashes but a {file_length}-byte file in {piece_length}-byte pieces has {expected}")]
    PieceCount {
        expected: u64,
        actual: usize,
        file_length: u64,
        piece_length: u64,
    },
    #[error("unsafe file_name {name:?}: {reason}")]
    FileName { name: String, reason: &'static str },
    #[error("unsafe path {path:?} in files: {reason}")]
    FilePath { path: String, reason: &'static str },
    #[error("a directory torrent lists {0} files; at most {MAX_FILES} are allowed")]
    TooManyFiles(usize),
    #[error("the files' lengths add up to more than 2^64 bytes")]
    TotalLength,
    #[error("two entries share the path {0:?}")]
    DuplicatePath(String),
    #[error("{file:?} is a file but also the directory of {child:?}")]
    FileIsDirectory { file: String, child: String },
    #[error("announce_list entry {0:?} is not \"host:port\" with a port from 1 to 65535")]
    BadTracker(String),
    #[error("announce_list names {0} trackers; at most {MAX_TRACKERS} are allowed")]
    TooManyTrackers(usize),
}

/// Checks one `announce_list` entry: a non-empty host without spaces or
/// control characters, a colon, a port 1–65535.
fn check_tracker(entry: &str) -> Result<(), TorrentError> {
    let bad = || TorrentError::BadTracker(entry.chars().take(80).collect());
    let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && !host.chars().any(|c| c.is_whitespace() || c.is_control());
    match port.parse::<u16>() {
        Ok(p) if p > 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

fn announce_list(obj: &Map<String, Value>) -> Result<Vec<String>, TorrentError> {
    let list = match obj.get("announce_list") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(TorrentError::WrongType {
                key: "announce_list",
                expected: "a list of \"host:port\" strings",
            })
        }
    };
    if list.len() > MAX_TRACKERS {
        return Err(TorrentError::TooManyTrackers(list.len()));
    }
    list.iter()
        .map(|v| {
            let entry = as_str(v, "announce_list")?;
            check_tracker(entry)?;
            Ok(entry.to_string())
        })
        .collect()
}

/// Why a path component is not a plain name, if it is not.
fn component_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.chars().any(is_unprintable) {
        Some("it contains a control character")
    } else if name.len() > MAX_COMPONENT {
        Some("it is longer than 255 bytes")
    } else {
        None
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional-text controls that
/// can make a name display as something else (marks, embeddings, overrides,
/// isolates, the Arabic letter mark). The one definition: the kit's escaping
/// of untrusted text for a terminal uses it too.
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Checks that `name` is a plain file name that cannot escape a directory
/// and holds no control characters.
pub fn validate_file_name(name: &str) -> Result<(), TorrentError> {
    let reason = component_problem(name).or_else(|| {
        (name.len() >= 2 && name.as_bytes()[1] == b':')
            .then_some("it looks like an absolute Windows path")
    });
    match reason {
        Some(reason) => Err(TorrentError::FileName {
            name: name.chars().take(100).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a directory torrent's file list: plain components, bounded
/// lengths, no two entries on one path, no file that is also a directory.
/// Returns the total length.
pub fn validate_files(name: &str, files: &[FileEntry]) -> Result<u64, TorrentError> {
    if files.len() > MAX_FILES {
        return Err(TorrentError::TooManyFiles(files.len()));
    }
    let mut total: u64 = 0;
    let mut paths = std::collections::HashSet::with_capacity(files.len());
    for f in files {
        let shown = || f.display_path().chars().take(200).collect::<String>();
        let bad = |reason| TorrentError::FilePath {
            path: shown(),
            reason,
        };
        if f.path.is_empty() {
            return Err(bad("it has no components"));
        }
        if let Some(reason) = f.path.iter().find_map(|c| component_problem(c)) {
            return Err(bad(reason));
        }
        let len = name.len() + f.path.iter().map(|c| c.len() + 1).sum::<usize>();
        if len > MAX_PATH {
            return Err(bad("the whole path is longer than 4096 bytes"));
        }
        if !paths.insert(f.path.as_slice()) {
            return Err(TorrentError::DuplicatePath(shown()));
        }
        total = total
            .checked_add(f.length)
            .ok_or(TorrentError::TotalLength)?;
    }
    for f in files {
        for depth in 1..f.path.len() {
            if paths.contains(&f.path[..depth]) {
                return Err(TorrentError::FileIsDirectory {
                    file: f.path[..depth].join("/"),
                    child: f.display_path(),
                });
            }
        }
    }
    Ok(total)
}

fn need<'a>(obj: &'a Map<String, Value>, key: &'static str) -> Result<&'a Value, TorrentError> {
    obj.get(key).ok_or(TorrentError::Missing(key))
}

/// An unsigned integer, also accepted as a decimal string.
fn as_u64(v: &Value, key: &'static str) -> Result<u64, TorrentError> {
    let err = TorrentError::WrongType {
        key,
        expected: "a non-negative integer",
    };
    match v {
        Value::Number(n) => n.as_u64().ok_or(err),
        Value::String(s) => s.trim().parse().map_err(|_| err),
        _ => Err(err),
    }
}

fn as_str<'a>(v: &'a Value, key: &'static str) -> Result<&'a str, TorrentError> {
    v.as_str().ok_or(TorrentError::WrongType {
        key,
        expected: "a string",
    })
}

fn parse_piece_hash(index: usize, v: &Value) -> Result<[u8; 20], TorrentError> {
    let bad = TorrentError::BadPieceHash { index };
    let s = v.as_str().ok_or(bad.clone())?;
    if let Some(h) = parse_hex20(s) {
        return Ok(h);
    }
    let bytes = crate::pyrepr::parse(s).map_err(|_| bad.clone())?;
    bytes.try_into().map_err(|_| bad)
}

fn parse_files(v: &Value) -> Result<Vec<FileEntry>, TorrentError> {
    let list = v.as_array().ok_or(TorrentError::WrongType {
        key: "files",
        expected: "a list",
    })?;
    if list.len() > MAX_FILES {
        return Err(TorrentError::TooManyFiles(list.len()));
    }
    list.iter()
        .map(|entry| {
            let obj = entry.as_object().ok_or(TorrentError::WrongType {
                key: "files",
                expected: "a list of objects",
            })?;
            let path = need(obj, "path")?
                .as_array()
                .ok_or(TorrentError::WrongType {
                    key: "path",
                    expected: "a list of strings",
                })?
                .iter()
                .map(|c| as_str(c, "path").map(str::to_owned))
                .collect::<Result<_, _>>()?;
            Ok(FileEntry {
                path,
                length: as_u64(need(obj, "length")?, "length")?,
            })
        })
        .collect()
}

fn files_json(files: &[FileEntry]) -> Value {
    files
        .iter()
        .map(|f| json!({"length": f.length, "path": f.path}))
        .collect()
}

impl Info {
    /// Whether this is a directory torrent.
    pub fn is_directory(&self) -> bool {
        self.files.is_some()
    }

    /// The files as (path below the download directory, length): the one
    /// file, or every file of the directory under its top name.
    pub fn file_list(&self) -> Vec<(Vec<&str>, u64)> {
        match &self.files {
            None => vec![(vec![self.file_name.as_str()], self.file_length)],
            Some(files) => files
                .iter()
                .map(|f| {
                    let mut path = vec![self.file_name.as_str()];
                    path.extend(f.path.iter().map(String::as_str));
                    (path, f.length)
                })
                .collect(),
        }
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_hash.len() as u32
    }

    /// Byte offset of piece `index` in the file.
    pub fn piece_offset(&self, index: u32) -> u64 {
        index as u64 * self.piece_length
    }

    /// Length of piece `index` (the last one may be short); 0 when out of range.
    pub fn piece_size(&self, index: u32) -> u64 {
        let start = self.piece_offset(index);
        if index >= self.piece_count() {
            return 0;
        }
        self.piece_length.min(self.file_length - start)
    }

    /// The number of pieces a file of `file_length` bytes has in `piece_length` pieces.
    pub fn expected_pieces(file_length: u64, piece_length: u64) -> u64 {
        file_length.div_ceil(piece_length)
    }

    /// A piece length for a file of `file_length` bytes: a power of two that
    /// gives about 1,000–2,000 pieces, clamped to 64 KiB..=4 MiB.
    pub fn suggested_piece_length(file_length: u64) -> u64 {
        let target = file_length.div_ceil(2000).max(1).next_power_of_two();
        target.clamp(64 * 1024, 4 * 1024 * 1024)
    }

    /// The canonical encoding hashed into the info hash: compact JSON with
    /// keys in fixed (alphabetical) order and hex piece hashes.
    ///
    /// A single-file torrent encodes `file_length`, `file_name`,
    /// `piece_hash`, `piece_length`; a directory torrent `files` (each
    /// `length`, `path`), `name`, `piece_hash`, `piece_length`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let hashes: Vec<String> = self.piece_hash.iter().map(|h| to_hex(h)).collect();
        // serde_json's default map keeps keys sorted, which fixes the order.
        let v = match &self.files {
            None => json!({
                "file_length": self.file_length,
                "file_name": self.file_name,
                "piece_hash": hashes,
                "piece_length": self.piece_length,
            }),
            Some(files) => json!({
                "files": files_json(files),
                "name": self.file_name,
                "piece_hash": hashes,
                "piece_length": self.piece_length,
            }),
        };
        serde_json::to_vec(&v).expect("JSON values always serialise")
    }

    /// Validates lengths, piece count, names and paths.
    pub fn validate(&self) -> Result<(), TorrentError> {
        validate_file_name(&self.file_name)?;
        if let Some(files) = &self.files {
            let total = validate_files(&self.file_name, files)?;
            if total != self.file_length {
                return Err(TorrentError::WrongType {
                    key: "file_length",
                    expected: "the sum of the files' lengths",
                });
            }
        }
        if self.piece_length == 0 || self.piece_length > MAX_PIECE_LENGTH {
            return Err(TorrentError::PieceLength(self.piece_length));
        }
        let expected = Self::expected_pieces(self.file_length, self.piece_length);
        if expected != self.piece_hash.len() as u64 {
            return Err(TorrentError::PieceCount {
                expected,
                actual: self.piece_hash.len(),
                file_length: self.file_length,
                piece_length: self.piece_length,
            });
        }
        Ok(())
    }

    fn from_value(v: &Value) -> Result<Info, TorrentError> {
        let obj = v.as_object().ok_or(TorrentError::WrongType {
            key: "info",
            expected: "an object",
        })?;
        let hashes = need(obj, "piece_hash")?
            .as_array()
            .ok_or(TorrentError::WrongType {
                key: "piece_hash",
                expected: "a list",
            })?;
        let piece_length = as_u64(need(obj, "piece_length")?, "piece_length")?;
        let piece_hash = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| parse_piece_hash(i, h))
            .collect::<Result<_, _>>()?;
        let info = match obj.get("files") {
            None => Info {
                piece_length,
                piece_hash,
                file_name: as_str(need(obj, "file_name")?, "file_name")?.to_string(),
                file_length: as_u64(need(obj, "file_length")?, "file_length")?,
                files: None,
            },
            Some(files) => {
                let name = as_str(need(obj, "name")?, "name")?.to_string();
                validate_file_name(&name)?;
                let files = parse_files(files)?;
                let file_length = validate_files(&name, &files)?;
                Info {
                    piece_length,
                    piece_hash,
                    file_name: name,
                    file_length,
                    files: Some(files),
                }
            }
        };
        info.validate()?;
        Ok(info)
    }
}

impl Torrent {
    /// Parses and validates a torrent file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Torrent, TorrentError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| TorrentError::Json(e.to_string()))?;
        let obj = v.as_object().ok_or(TorrentError::WrongType {
            key: "(top level)",
            expected: "an object",
        })?;
        // No `announce` at all: a torrent for LAN discovery only.
        let (announce, port) = match obj.get("announce") {
            None | Some(Value::Null) => (String::new(), 0),
            Some(a) => {
                let port = as_u64(need(obj, "port")?, "port")?;
                let port = u16::try_from(port).map_err(|_| TorrentError::WrongType {
                    key: "port",
                    expected: "a port number (0-65535)",
                })?;
                (as_str(a, "announce")?.to_string(), port)
            }
        };
        Ok(Torrent {
            announce,
            port,
            announce_list: announce_list(obj)?,
            comment: match obj.get("comment") {
                None | Some(Value::Null) => String::new(),
                Some(c) => as_str(c, "comment")?.to_string(),
            },
            info: Info::from_value(need(obj, "info")?)?,
        })
    }

    /// Pretty JSON with hex piece hashes.
    pub fn to_json_pretty(&self) -> String {
        let hashes: Vec<String> = self.info.piece_hash.iter().map(|h| to_hex(h)).collect();
        let info = match &self.info.files {
            None => json!({
                "piece_length": self.info.piece_length,
                "piece_hash": hashes,
                "file_name": self.info.file_name,
                "file_length": self.info.file_length,
            }),
            Some(files) => json!({
                "piece_length": self.info.piece_length,
                "piece_hash": hashes,
                "name": self.info.file_name,
                "files": files_json(files),
            }),
        };
        let mut v = match (self.announce.is_empty(), self.port) {
            (true, 0) => json!({
                "comment": self.comment,
                "info": info,
            }),
            _ => json!({
                "announce": self.announce,
                "port": self.port,
                "comment": self.comment,
                "info": info,
            }),
        };
        if !self.announce_list.is_empty() {
            v["announce_list"] = json!(self.announce_list);
        }
        let mut s = serde_json::to_string_pretty(&v).expect("JSON values always serialise");
        s.push('\n');
        s
    }

    /// The tracker as `HOST:PORT`, or `None` for a torrent without one.
    pub fn tracker(&self) -> Option<String> {
        (!self.announce.is_empty()).then(|| format!("{}:{}", self.announce, self.port))
    }

    /// The swarm's name: SHA-1 of [`Info::canonical_bytes`].
    pub fn info_hash(&self) -> InfoHash {
        InfoHash(Sha1::digest(self.info.canonical_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Torrent {
        Torrent {
            announce: "127.0.0.1".into(),
            port: 6666,
            announce_list: Vec::new(),
            comment: "test".into(),
            info: Info {
                piece_length: 4,
                piece_hash: vec![[1; 20], [2; 20], [3; 20]],
                file_name: "f.bin".into(),
                file_length: 10,
                files: None,
            },
        }
    }

    fn dir_sample() -> Torrent {
        let files = vec![
            FileEntry {
                path: vec!["a".into(), "x.bin".into()],
                length: 3,
            },
            FileEntry {
                path: vec!["b.txt".into()],
                length: 0,
            },
            FileEntry {
                path: vec!["c".into()],
                length: 7,
            },
        ];
        Torrent {
            announce: "127.0.0.1".into(),
            port: 6666,
            announce_list: Vec::new(),
            comment: String::new(),
            info: Info {
                piece_length: 4,
                piece_hash: vec![[1; 20], [2; 20], [3; 20]],
                file_name: "tree".into(),
                file_length: 10,
                files: Some(files),
            },
        }
    }

    #[test]
    fn announce_list_is_optional_checked_and_outside_the_info_hash() {
        let plain = sample();
        let text = plain.to_json_pretty();
        assert!(!text.contains("announce_list"), "{text}");
        let mut listed = plain.clone();
        listed.announce_list = vec!["10.0.0.1:6666".into(), "tracker.lan:7000".into()];
        let back = Torrent::from_json(listed.to_json_pretty().as_bytes()).unwrap();
        assert_eq!(back, listed);
        assert_eq!(back.info_hash(), plain.info_hash());
        let with = |list: Value| {
            let mut v: Value = serde_json::from_str(&text).unwrap();
            v["announce_list"] = list;
            Torrent::from_json(v.to_string().as_bytes())
        };
        assert_eq!(
            with(Value::Null).unwrap().announce_list,
            Vec::<String>::new()
        );
        for bad in ["10.0.0.1", ":6666", "h:0", "h:65536", "a b:1", "h:x"] {
            assert_eq!(
                with(json!([bad])),
                Err(TorrentError::BadTracker(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            with(json!("h:1")),
            Err(TorrentError::WrongType { .. })
        ));
        assert!(matches!(
            with(json!([1])),
            Err(TorrentError::WrongType { .. })
        ));
        let many: Vec<String> = (1..=MAX_TRACKERS + 1).map(|i| format!("h:{i}")).collect();
        assert_eq!(
            with(json!(many)),
            Err(TorrentError::TooManyTrackers(MAX_TRACKERS + 1))
        );
    }

    #[test]
    fn directory_torrents_round_trip_and_hash_canonically() {
        let t = dir_sample();
        let text = t.to_json_pretty();
        assert!(text.contains("\"name\": \"tree\""), "{text}");
        assert!(!text.contains("file_name"), "{text}");
        let back = Torrent::from_json(text.as_bytes()).unwrap();
        assert_eq!(back, t);
        // Formatting does not change the hash; the file list does.
        let v: Value = serde_json::from_str(&text).unwrap();
        let compact = Torrent::from_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(compact.info_hash(), t.info_hash());
        let mut other = t.clone();
        other.info.files.as_mut().unwrap()[2].path[0] = "d".into();
        assert_ne!(other.info_hash(), t.info_hash());
        // The same bytes as one file are another swarm.
        let mut single = t.clone();
        single.info.files = None;
        assert_ne!(single.info_hash(), t.info_hash());
        assert_eq!(
            t.info.file_list(),
            vec![
                (vec!["tree", "a", "x.bin"], 3),
                (vec!["tree", "b.txt"], 0),
                (vec!["tree", "c"], 7)
            ]
        );
    }

    #[test]
    fn a_torrent_without_tracker_round_trips_without_announce() {
        let mut t = sample();
        t.announce.clear();
        t.port = 0;
        let text = t.to_json_pretty();
        assert!(
            !text.contains("announce") && !text.contains("\"port\""),
            "{text}"
        );
        let back = Torrent::from_json(text.as_bytes()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.tracker(), None);
        assert_eq!(back.info_hash(), sample().info_hash());
        assert_eq!(sample().tracker().as_deref(), Some("127.0.0.1:6666"));
    }

    #[test]
    fn single_file_info_hash_is_unchanged() {
        // Pinned: the canonical encoding of single-file torrents must never change.
        let t = sample();
        assert_eq!(
            String::from_utf8(t.info.canonical_bytes()).unwrap(),
            format!(
                "{{\"file_length\":10,\"file_name\":\"f.bin\",\"piece_hash\":[\"{}\",\"{}\",\"{}\"],\"piece_length\":4}}",
                "01".repeat(20), "02".repeat(20), "03".repeat(20)
            )
        );
    }

    #[test]
    fn bad_directory_entries_are_refused_naming_the_entry() {
        let cases: Vec<(Vec<Vec<&str>>, &str)> = vec![
            (vec![vec!["..", "x"]], ".."),
            (vec![vec!["a", ""]], "a/"),
            (vec![vec!["a/b"]], "a/b"),
            (vec![vec!["a\\b"]], "a\\\\b"),
            (vec![vec!["nul\0"]], "nul"),
            (vec![vec!["esc\u{1b}[31m"]], "esc"),
            (vec![vec!["new\nline"]], "new"),
            (vec![vec!["bidi\u{202e}txt"]], "bidi"),
            (vec![vec![]], ""),
            (vec![vec!["same"], vec!["same"]], "same"),
            (vec![vec!["dir"], vec!["dir", "child"]], "dir"),
        ];
        let long = "x".repeat(256);
        let deep: Vec<String> = (0..20).map(|_| "y".repeat(250)).collect();
        let mut all: Vec<(Vec<Vec<String>>, String)> = cases
            .into_iter()
            .map(|(paths, needle)| {
                (
                    paths
                        .into_iter()
                        .map(|p| p.into_iter().map(String::from).collect())
                        .collect(),
                    needle.to_string(),
                )
            })
            .collect();
        all.push((vec![vec![long.clone()]], "xxx".into()));
        all.push((vec![deep], "yyy".into()));
        for (paths, needle) in all {
            let files: Vec<Value> = paths
                .iter()
                .map(|p| json!({"path": p, "length": 0}))
                .collect();
            let v = json!({"announce": "h", "port": 1, "info": {"piece_length": 4,
                "piece_hash": [], "name": "top", "files": files}});
            let err = Torrent::from_json(v.to_string().as_bytes()).unwrap_err();
            assert!(
                err.to_string().contains(&needle),
                "{paths:?}: {err} does not name {needle:?}"
            );
        }
        // The top-level name follows the same rules.
        for bad in ["..", "a/b", "", "tab\there"] {
            let v = json!({"announce": "h", "port": 1, "info": {"piece_length": 4,
                "piece_hash": [], "name": bad, "files": [{"path": ["f"], "length": 0}]}});
            assert!(
                matches!(
                    Torrent::from_json(v.to_string().as_bytes()),
                    Err(TorrentError::FileName { .. })
                ),
                "{bad:?}"
            );
        }
        // Lengths that overflow are refused, not wrapped.
        let v = json!({"announce": "h", "port": 1, "info": {"piece_length": 4,
            "piece_hash": [], "name": "t", "files": [
                {"path": ["a"], "length": u64::MAX}, {"path": ["b"], "length": 2}]}});
        assert_eq!(
            Torrent::from_json(v.to_string().as_bytes()),
            Err(TorrentError::TotalLength)
        );
    }

    #[test]
    fn round_trip_and_sizes() {
        let t = sample();
        let back = Torrent::from_json(t.to_json_pretty().as_bytes()).unwrap();
        assert_eq!(back, t);
        assert_eq!(t.info.piece_size(0), 4);
        assert_eq!(t.info.piece_size(2), 2);
        assert_eq!(t.info.piece_size(3), 0);
        assert_eq!(t.info.piece_offset(2), 8);
    }

    #[test]
    fn info_hash_ignores_formatting_and_hash_form() {
        let t = sample();
        let compact =
            serde_json::to_string(&serde_json::from_str::<Value>(&t.to_json_pretty()).unwrap())
                .unwrap();
        assert_eq!(
            Torrent::from_json(compact.as_bytes()).unwrap().info_hash(),
            t.info_hash()
        );
        // The seed tool's repr form gives the same info hash.
        let reprs: Vec<String> = t
            .info
            .piece_hash
            .iter()
            .map(|h| crate::pyrepr::to_repr(h))
            .collect();
        let seed_style = json!({"announce": "127.0.0.1", "port": "6666", "comment": "test",
            "info": {"piece_length": 4, "piece_hash": reprs, "file_name": "f.bin", "file_length": 10}});
        let parsed = Torrent::from_json(seed_style.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.info_hash(), t.info_hash());
        // A different comment is the same swarm; a different file is not.
        let mut other = t.clone();
        other.comment = "x".into();
        assert_eq!(other.info_hash(), t.info_hash());
        other.info.file_name = "g.bin".into();
        assert_ne!(other.info_hash(), t.info_hash());
    }

    #[test]
    fn validation_errors() {
        let mut t = sample();
        t.info.piece_hash.pop();
        assert!(matches!(
            Torrent::from_json(t.to_json_pretty().as_bytes()),
            Err(TorrentError::PieceCount {
                expected: 3,
                actual: 2,
                ..
            })
        ));
        let mut t = sample();
        t.info.piece_length = 0;
        assert_eq!(
            Torrent::from_json(t.to_json_pretty().as_bytes()),
            Err(TorrentError::PieceLength(0))
        );
        let mut t = sample();
        t.info.piece_length = MAX_PIECE_LENGTH + 1;
        t.info.piece_hash.truncate(1);
        assert!(matches!(
            Torrent::from_json(t.to_json_pretty().as_bytes()),
            Err(TorrentError::PieceLength(_))
        ));
        assert!(matches!(
            Torrent::from_json(b"{"),
            Err(TorrentError::Json(_))
        ));
        assert_eq!(
            Torrent::from_json(b"{}"),
            Err(TorrentError::Missing("info"))
        );
        assert_eq!(
            Torrent::from_json(br#"{"announce": "h"}"#),
            Err(TorrentError::Missing("port"))
        );
    }

    #[test]
    fn path_traversal_names_are_refused() {
        for bad in [
            "../evil",
            "..",
            ".",
            "",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "nul\0",
            "C:evil",
            "esc\u{1b}]0;title\u{7}",
            "line\nbreak",
            "bidi\u{202e}gnp.exe",
        ] {
            let mut t = sample();
            t.info.file_name = bad.into();
            let err = Torrent::from_json(t.to_json_pretty().as_bytes()).unwrap_err();
            assert!(
                matches!(err, TorrentError::FileName { .. }),
                "{bad:?} gave {err:?}"
            );
        }
        for good in ["data.bin", "..hidden", "a..b", "name with spaces"] {
            assert!(validate_file_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn bad_piece_hash() {
        let v = json!({"announce": "h", "port": 1, "info": {"piece_length": 4,
            "piece_hash": ["00".repeat(20), "b'short'"], "file_name": "f", "file_length": 8}});
        assert_eq!(
            Torrent::from_json(v.to_string().as_bytes()),
            Err(TorrentError::BadPieceHash { index: 1 })
        );
    }

    #[test]
    fn suggested_piece_length_targets_1000_to_2000_pieces() {
        for size in [200u64 << 20, 1 << 30, 3 << 30] {
            let pl = Info::suggested_piece_length(size);
            let n = Info::expected_pieces(size, pl);
            assert!((1000..=2000).contains(&n), "{size}: {pl} gives {n}");
        }
        assert_eq!(Info::suggested_piece_length(1000), 64 * 1024);
        assert_eq!(Info::suggested_piece_length(1 << 50), 4 * 1024 * 1024);
    }
}
