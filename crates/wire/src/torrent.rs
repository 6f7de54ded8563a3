//! Torrent metadata: a JSON file describing one shared file.
//!
//! ```json
//! { "announce": "127.0.0.1", "port": 6666, "comment": "…",
//!   "info": { "piece_length": 262144, "piece_hash": ["<40 hex>", …],
//!             "file_name": "data.bin", "file_length": 1048576 } }
//! ```
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

/// What is being shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub piece_length: u64,
    pub piece_hash: Vec<[u8; 20]>,
    pub file_name: String,
    pub file_length: u64,
}

/// A torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    /// Tracker host.
    pub announce: String,
    /// Tracker port.
    pub port: u16,
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
}

/// Checks that `name` is a plain file name that cannot escape a directory.
pub fn validate_file_name(name: &str) -> Result<(), TorrentError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.len() >= 2 && name.as_bytes()[1] == b':' {
        Some("it looks like an absolute Windows path")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TorrentError::FileName {
            name: name.chars().take(100).collect(),
            reason,
        }),
        None => Ok(()),
    }
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

impl Info {
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
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let hashes: Vec<String> = self.piece_hash.iter().map(|h| to_hex(h)).collect();
        // serde_json's default map keeps keys sorted, which fixes the order.
        let v = json!({
            "file_length": self.file_length,
            "file_name": self.file_name,
            "piece_hash": hashes,
            "piece_length": self.piece_length,
        });
        serde_json::to_vec(&v).expect("JSON values always serialise")
    }

    /// Validates lengths, piece count and file name.
    pub fn validate(&self) -> Result<(), TorrentError> {
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
        validate_file_name(&self.file_name)
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
        let info = Info {
            piece_length: as_u64(need(obj, "piece_length")?, "piece_length")?,
            piece_hash: hashes
                .iter()
                .enumerate()
                .map(|(i, h)| parse_piece_hash(i, h))
                .collect::<Result<_, _>>()?,
            file_name: as_str(need(obj, "file_name")?, "file_name")?.to_string(),
            file_length: as_u64(need(obj, "file_length")?, "file_length")?,
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
        let port = as_u64(need(obj, "port")?, "port")?;
        let port = u16::try_from(port).map_err(|_| TorrentError::WrongType {
            key: "port",
            expected: "a port number (0-65535)",
        })?;
        Ok(Torrent {
            announce: as_str(need(obj, "announce")?, "announce")?.to_string(),
            port,
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
        let v = json!({
            "announce": self.announce,
            "port": self.port,
            "comment": self.comment,
            "info": {
                "piece_length": self.info.piece_length,
                "piece_hash": hashes,
                "file_name": self.info.file_name,
                "file_length": self.info.file_length,
            }
        });
        let mut s = serde_json::to_string_pretty(&v).expect("JSON values always serialise");
        s.push('\n');
        s
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
            comment: "test".into(),
            info: Info {
                piece_length: 4,
                piece_hash: vec![[1; 20], [2; 20], [3; 20]],
                file_name: "f.bin".into(),
                file_length: 10,
            },
        }
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
