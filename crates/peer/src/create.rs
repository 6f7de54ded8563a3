//! `peer create`: hashing a file into a torrent.

use std::fs::File;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
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

pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let (announce, port) = parse_host_port(&args.tracker)?;
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!(BadInput(format!(
            "{} is not a regular file",
            args.file.display()
        )));
    }
    let file_length = meta.len();
    let piece_length = args
        .piece_length
        .unwrap_or_else(|| Info::suggested_piece_length(file_length));
    if piece_length == 0 || piece_length > MAX_PIECE_LENGTH {
        bail!(BadInput(format!(
            "--piece-length must be between 1 and {MAX_PIECE_LENGTH}, got {piece_length}"
        )));
    }
    let file_name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BadInput(format!("{} has no usable file name", args.file.display())))?
        .to_string();
    wire::torrent::validate_file_name(&file_name).map_err(|e| BadInput(e.to_string()))?;

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
    let piece_hash = hashing::hash_pieces(file, piece_length, |n| {
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
        comment: args.comment,
        info: Info {
            piece_length,
            piece_hash,
            file_name: file_name.clone(),
            file_length,
            files: None,
        },
    };
    torrent
        .info
        .validate()
        .map_err(|e| BadInput(e.to_string()))?;
    let out = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{file_name}.torrent")));
    std::fs::write(&out, torrent.to_json_pretty())
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
            seconds: elapsed,
        });
        events.finish(crate::output::FLUSH_AT_EXIT);
    } else {
        println!(
            "wrote {} ({} pieces of {}, info hash {}) in {:.2}s",
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
}
