//! `peer create`: hashing a file, or a directory tree, into a torrent.
//!
//! A directory becomes a directory torrent: its regular files in sorted
//! path order, pieces running across them. Symbolic links are skipped with
//! a warning (never followed out of the tree), empty files are kept, and
//! empty directories are dropped, with a note.

use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use wire::torrent::{validate_file_name, validate_files, FileEntry};
use wire::{Info, Torrent, MAX_PIECE_LENGTH};

use crate::cli::CreateArgs;
use crate::hashing;
use lanio::BadInput;

use crate::events::Event;
/// Splits HOST:PORT.
pub fn parse_host_port(s: &str) -> Result<(String, u16), BadInput> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| BadInput(format!("tracker address {s:?} is not HOST:PORT")))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| BadInput(format!("tracker address {s:?} has a bad port")))?;
    if host.is_empty() {
        return Err(BadInput(format!("tracker address {s:?} has no host")));
    }
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    ))
}

/// What a tree walk found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// Regular files, in sorted path order.
    pub files: Vec<FileEntry>,
    /// Symbolic links skipped, as paths below the top.
    pub links: Vec<String>,
    /// Directories dropped because they hold no file.
    pub empty_dirs: Vec<String>,
    /// Other entries skipped (sockets, devices, fifos).
    pub others: Vec<String>,
}

/// Walks `top` without following links: regular files in sorted order.
pub fn walk(top: &Path) -> anyhow::Result<Tree> {
    fn visit(dir: &Path, prefix: &mut Vec<String>, tree: &mut Tree) -> anyhow::Result<bool> {
        let mut entries: Vec<(String, std::fs::FileType)> = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| BadInput(format!("{}: {n:?} is not valid UTF-8", dir.display())))?;
            entries.push((name, entry.file_type()?));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut any_file = false;
        for (name, kind) in entries {
            prefix.push(name);
            let shown = prefix.join("/");
            if kind.is_symlink() {
                tree.links.push(shown);
            } else if kind.is_dir() {
                let path = dir.join(prefix.last().expect("just pushed"));
                if visit(&path, prefix, tree)? {
                    any_file = true;
                } else {
                    tree.empty_dirs.push(shown);
                }
            } else if kind.is_file() {
                let path = dir.join(prefix.last().expect("just pushed"));
                let length = std::fs::symlink_metadata(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                tree.files.push(FileEntry {
                    path: prefix.clone(),
                    length,
                });
                any_file = true;
            } else {
                tree.others.push(shown);
            }
            prefix.pop();
        }
        Ok(any_file)
    }
    let mut tree = Tree::default();
    visit(top, &mut Vec::new(), &mut tree)?;
    Ok(tree)
}

/// Opens a source file for reading, refusing a link that replaced it.
fn open_source(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let (announce, port) = if args.no_tracker {
        (String::new(), 0)
    } else {
        parse_host_port(&args.tracker[0])?
    };
    for other in &args.tracker[1..] {
        parse_host_port(other)?;
    }
    // One tracker: the plain form; several: all of them, in order, too.
    let announce_list = if args.tracker.len() > 1 && !args.no_tracker {
        args.tracker.clone()
    } else {
        Vec::new()
    };
    let meta = std::fs::metadata(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    // `peer create .` names the torrent after the directory itself.
    let real = args.file.canonicalize().ok();
    let file_name = args
        .file
        .file_name()
        .or_else(|| real.as_deref().and_then(Path::file_name))
        .and_then(|n| n.to_str())
        .ok_or_else(|| BadInput(format!("{} has no usable file name", args.file.display())))?
        .to_string();
    validate_file_name(&file_name).map_err(|e| BadInput(e.to_string()))?;
    let (files, file_length, reader): (Option<Vec<FileEntry>>, u64, hashing::Concat) = if meta
        .is_dir()
    {
        let tree = walk(&args.file)?;
        for link in &tree.links {
            tracing::warn!("skipping the symbolic link {link}");
            eprintln!("warning: skipping the symbolic link {link} (links are not followed)");
        }
        for other in &tree.others {
            eprintln!("warning: skipping {other}: not a regular file");
        }
        for dir in &tree.empty_dirs {
            eprintln!("note: dropping the empty directory {dir}");
        }
        if tree.files.is_empty() {
            bail!(BadInput(format!(
                "{} holds no regular file to share",
                args.file.display()
            )));
        }
        let total = validate_files(&file_name, &tree.files).map_err(|e| BadInput(e.to_string()))?;
        let root = args.file.clone();
        let paths: Vec<PathBuf> = tree.files.iter().map(|f| f.path.iter().collect()).collect();
        let reader = hashing::Concat::new(
            tree.files.iter().map(|f| f.length).collect(),
            Box::new(move |i| open_source(&root.join(&paths[i])).map(Some)),
        );
        (Some(tree.files), total, reader)
    } else if meta.is_file() {
        let path = args.file.clone();
        let reader = hashing::Concat::new(
            vec![meta.len()],
            Box::new(move |_| open_source(&path).map(Some)),
        );
        (None, meta.len(), reader)
    } else {
        bail!(BadInput(format!(
            "{} is neither a regular file nor a directory",
            args.file.display()
        )));
    };
    let piece_length = args
        .piece_length
        .unwrap_or_else(|| Info::suggested_piece_length(file_length));
    if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
        bail!(BadInput(format!(
            "--piece-length must be between 1 and {MAX_PIECE_LENGTH}, got {piece_length}"
        )));
    }

    let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(file_length);
        bar.set_style(
            ProgressStyle::with_template(
                "hashing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar
    });
    let start = Instant::now();
    let file_count = files.as_ref().map_or(1, Vec::len);
    let piece_hash = hashing::hash_pieces(reader, piece_length, |n| {
        if let Some(bar) = &bar {
            bar.set_position(n);
        }
    })
    .with_context(|| format!("reading {}", args.file.display()))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let elapsed = start.elapsed().as_secs_f64();

    let torrent = Torrent {
        announce,
        port,
        announce_list,
        comment: args.comment,
        info: Info {
            piece_length,
            piece_hash,
            file_name: file_name.clone(),
            file_length,
            files,
        },
    };
    torrent
        .info
        .validate()
        .map_err(|e| BadInput(e.to_string()))?;
    let out = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{file_name}.torrent")));
    // Through a fresh temporary file and a rename: a link planted at OUT is
    // replaced, never written through.
    let mut tmp = out.clone().into_os_string();
    tmp.push(".tmp");
    crate::durable::replace(&out, Path::new(&tmp), torrent.to_json_pretty().as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    let info_hash = torrent.info_hash();
    if args.json {
        let events = lanio::EventWriter::stdout(true);
        events.emit(&Event::Created {
            torrent: out,
            info_hash: info_hash.to_hex(),
            pieces: torrent.info.piece_count(),
            piece_length,
            file_length,
            files: file_count,
            seconds: elapsed,
        });
        events.finish(crate::output::FLUSH_AT_EXIT);
    } else {
        let what = if torrent.info.is_directory() {
            format!("{file_count} files, ")
        } else {
            String::new()
        };
        println!(
            "wrote {} ({what}{} pieces of {}, info hash {}) in {:.2}s",
            out.display(),
            torrent.info.piece_count(),
            crate::output::human_bytes(piece_length),
            info_hash,
            elapsed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("127.0.0.1:6666").unwrap(),
            ("127.0.0.1".into(), 6666)
        );
        assert_eq!(parse_host_port("[::1]:80").unwrap(), ("::1".into(), 80));
        assert!(parse_host_port("nohost").is_err());
        assert!(parse_host_port(":1").is_err());
        assert!(parse_host_port("h:99999").is_err());
    }

    #[test]
    fn walk_sorts_skips_links_and_drops_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("b/deep")).unwrap();
        std::fs::create_dir_all(top.join("empty/inner")).unwrap();
        std::fs::write(top.join("b/deep/x"), b"12").unwrap();
        std::fs::write(top.join("a"), b"").unwrap();
        std::fs::write(top.join("c"), b"3").unwrap();
        std::os::unix::fs::symlink("/etc", top.join("link")).unwrap();
        let tree = walk(top).unwrap();
        let paths: Vec<(String, u64)> = tree
            .files
            .iter()
            .map(|f| (f.display_path(), f.length))
            .collect();
        assert_eq!(
            paths,
            [("a".into(), 0), ("b/deep/x".into(), 2), ("c".into(), 1)]
        );
        assert_eq!(tree.links, ["link"]);
        assert_eq!(tree.empty_dirs, ["empty/inner", "empty"]);
    }
}
