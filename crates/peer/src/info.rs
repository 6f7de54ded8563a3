//! `peer info`: what a torrent describes, for people and for scripts.
//!
//! `peer info T --json | jq -r .info_hash` names the swarm.

use lanio::{BadInput, EventWriter};
use wire::Torrent;

use crate::cli::InfoArgs;
use crate::events::{Event, TorrentFile, TorrentInfo};
use crate::output::{human_bytes, FLUSH_AT_EXIT};

/// Reads and validates a torrent file; a bad one is bad input.
pub fn load(path: &std::path::Path) -> anyhow::Result<Torrent> {
    let bytes = std::fs::read(path)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())))?;
    Torrent::from_json(&bytes).map_err(|e| BadInput(format!("{}: {e}", path.display())).into())
}

/// The summary of a torrent.
pub fn describe(t: &Torrent) -> TorrentInfo {
    TorrentInfo {
        name: t.info.file_name.clone(),
        info_hash: t.info_hash().to_hex(),
        directory: t.info.is_directory(),
        piece_length: t.info.piece_length,
        pieces: t.info.piece_count(),
        total_length: t.info.file_length,
        files: match &t.info.files {
            None => vec![TorrentFile {
                path: t.info.file_name.clone(),
                length: t.info.file_length,
            }],
            Some(files) => files
                .iter()
                .map(|f| TorrentFile {
                    path: f.display_path(),
                    length: f.length,
                })
                .collect(),
        },
        trackers: vec![format!("{}:{}", t.announce, t.port)],
        comment: t.comment.clone(),
    }
}

/// The human form: a few aligned lines, then the files.
pub fn render(info: &TorrentInfo) -> String {
    let kind = if info.directory {
        format!("directory, {} files", info.files.len())
    } else {
        "one file".to_string()
    };
    let mut out = format!(
        "name:       {} ({kind})\ninfo hash:  {}\npieces:     {} x {}\ntotal size: {} ({} bytes)\ntracker:    {}\n",
        escape(&info.name),
        info.info_hash,
        info.pieces,
        human_bytes(info.piece_length),
        human_bytes(info.total_length),
        info.total_length,
        info.trackers.join(", "),
    );
    if !info.comment.is_empty() {
        out.push_str(&format!("comment:    {}\n", escape(&info.comment)));
    }
    if info.directory {
        out.push_str("files:\n");
        for f in &info.files {
            out.push_str(&format!(
                "  {:>10}  {}\n",
                human_bytes(f.length),
                escape(&f.path)
            ));
        }
    }
    out
}

/// Control characters from a torrent never reach the terminal as such.
fn escape(text: &str) -> String {
    lanio::escape::escape_str(text)
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let torrent = load(&args.torrent)?;
    let info = describe(&torrent);
    let out = EventWriter::<Event>::stdout(args.json);
    if args.json {
        out.emit(&Event::Info(info));
    } else {
        out.say(render(&info).trim_end());
    }
    out.finish(FLUSH_AT_EXIT);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_with_escapes_are_shown_escaped() {
        assert_eq!(escape("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
        assert_eq!(escape("plain — text"), "plain — text");
    }
}
