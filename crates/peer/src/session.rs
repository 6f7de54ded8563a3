//! A peer's session in one swarm: start-up (torrent, listener, storage,
//! signal handlers), the background tasks (accepting and dialing peers,
//! tracker announces, choking rounds, progress reports) and the orderly
//! shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use wire::tracker::PeerEntry;
use wire::{Bitfield, Disconnect, InfoHash, Torrent};

use lanio::BadInput;

use crate::announcer::{After, Announcer, Step};
use crate::cli::SwarmArgs;
use crate::events::{Event as PeerEvent, Progress, Started};
use crate::output::Output;
use crate::storage::{StartState, Storage};
use crate::swarm::{ProgressSnapshot, Swarm};
use crate::{discover, peer_conn, tracker_client};
use lanio::Signals;
use wire::discovery::{Discovery, DiscoveryConfig};

/// Seconds between choking rounds.
const CHOKE_ROUND: Duration = Duration::from_secs(5);
/// With `--exit-when-done`, how long after the download completes we keep
/// trying to tell the trackers before leaving anyway: a tracker that does
/// not answer must not keep a finished peer alive.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Joins the swarm described by `args` and runs until done (with
/// `--exit-when-done`) or until Ctrl-C/SIGTERM.
pub async fn run(args: SwarmArgs) -> anyhow::Result<()> {
    let path = args
        .torrent
        .clone()
        .ok_or_else(|| BadInput("--torrent FILE.torrent is required (see `peer --help`)".into()))?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let torrent =
        Torrent::from_json(&bytes).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    // --tracker, else the torrent's announce_list, else its announce/port.
    let trackers = if !args.tracker.is_empty() {
        args.tracker.clone()
    } else if !torrent.announce_list.is_empty() {
        torrent.announce_list.clone()
    } else {
        torrent.tracker().into_iter().collect()
    };
    let tracker = (!trackers.is_empty()).then(|| trackers.join(","));
    if tracker.is_none() && args.discover.no_discover {
        return Err(BadInput(format!(
            "{} names no tracker and --no-discover is set: no way to find peers (give --tracker)",
            path.display()
        ))
        .into());
    }
    let iface = args
        .discover
        .iface
        .as_deref()
        .map(lanio::iface::Iface::resolve)
        .transpose()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let listen_addr = listener.local_addr()?;
    // Before anything announces that we are up: a script may signal us at once.
    let mut signals = Signals::install().context("installing the signal handlers")?;
    let info_hash = torrent.info_hash();
    let out = Output::new(args.json, torrent.info.file_length);

    let (storage, have, start_state) =
        open_storage(&args.dir, &torrent, info_hash, args.recheck, &out).await?;
    let piece_count = torrent.info.piece_count();
    let mut swarm = Swarm::new(
        torrent,
        storage,
        have,
        out,
        listen_addr,
        args.upload_slots,
        args.exit_when_done,
    );
    if args.super_seed {
        if swarm.super_seed(args.super_seed_window.into()) {
            tracing::info!("super-seeding");
        } else {
            tracing::warn!("--super-seed ignored: the file is not complete");
        }
    }
    let swarm = Arc::new(swarm);
    let have_count = swarm.progress().have;
    swarm.out.emit(&PeerEvent::Started(Started {
        info_hash: info_hash.to_hex(),
        pieces: piece_count,
        have: have_count,
        listen: listen_addr.to_string(),
        peer_id: swarm.peer_id.to_hex(),
        file: swarm.storage.data_path().to_path_buf(),
        resume: matches!(start_state, StartState::Resumed),
        tracker: tracker.clone().unwrap_or_default(),
    }));
    tracing::info!(
        "swarm {info_hash}: {have_count}/{piece_count} pieces, listening on {listen_addr}, tracker {}",
        tracker.as_deref().unwrap_or("none")
    );
    if !swarm.out.is_json() {
        swarm.out.say(&format!(
            "{}: {have_count}/{piece_count} pieces, listening on {listen_addr}",
            swarm.torrent.info.file_name
        ));
    }

    let exit_when_done = args.exit_when_done;
    swarm.tasks.spawn(accept_loop(swarm.clone(), listener));
    swarm.tasks.spawn(choke_loop(swarm.clone()));
    swarm.tasks.spawn(progress_loop(swarm.clone()));
    if !args.discover.no_discover {
        start_discovery(&swarm, iface, args.discover.discover_ttl);
    }
    let tracker_task = if trackers.is_empty() {
        tokio::spawn(exit_when_complete(swarm.clone(), exit_when_done))
    } else {
        tokio::spawn(tracker_loop(
            swarm.clone(),
            trackers,
            args.announce_ip,
            exit_when_done,
        ))
    };
    if swarm.is_complete() {
        swarm.download_complete();
    }

    tokio::select! {
        stop = signals.recv() => tracing::info!("{stop:?}: shutting down"),
        _ = swarm.shutdown.cancelled() => {}
    }
    shutdown(&swarm, tracker_task).await;
    Ok(())
}

/// Without a tracker, `--exit-when-done` ends the session once the data is complete.
async fn exit_when_complete(swarm: Arc<Swarm>, exit_when_done: bool) {
    if !exit_when_done {
        return;
    }
    tokio::select! {
        _ = swarm.download_completed() => swarm.shutdown.cancel(),
        _ = swarm.shutdown.cancelled() => {}
    }
}

/// LAN discovery: announces the swarm, dials the peers heard. A failure to
/// start (no multicast interface, say) is logged; the tracker may still work.
fn start_discovery(swarm: &Arc<Swarm>, iface: Option<lanio::iface::Iface>, ttl: u32) {
    let opts = match discover::Options::new(iface, ttl) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("LAN discovery is off: {e:#}");
            return;
        }
    };
    let mut disc = Discovery::new(
        swarm.listen_addr.port(),
        discover::new_cookie(),
        DiscoveryConfig::default(),
    );
    disc.add_swarm(swarm.info_hash, Instant::now());
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let stop = swarm.shutdown.clone();
    swarm.tasks.spawn(async move {
        if let Err(e) = discover::run(disc, opts, tx, stop).await {
            tracing::warn!("LAN discovery stopped: {e:#}");
        }
    });
    let swarm = swarm.clone();
    swarm.tasks.clone().spawn(async move {
        while let Some(found) = rx.recv().await {
            swarm.out.emit(&PeerEvent::PeerDiscovered {
                addr: found.addr.to_string(),
                info_hash: found.info_hash.to_hex(),
                via: found.via.to_string(),
            });
            dial(
                &swarm,
                &PeerEntry {
                    peer_id: String::new(),
                    peer_ip: found.addr.ip().to_string(),
                    peer_port: found.addr.port(),
                    proto: Some(1),
                },
            );
        }
    });
}

async fn open_storage(
    dir: &Path,
    torrent: &Torrent,
    info_hash: InfoHash,
    recheck: bool,
    out: &Output,
) -> anyhow::Result<(Storage, Bitfield, StartState)> {
    let dir = dir.to_path_buf();
    let info = torrent.info.clone();
    let total = info.file_length;
    // Hashing may take seconds; keep it off the async workers.
    let progress = {
        let json = out.is_json();
        move |n: u64| {
            if !json {
                tracing::debug!("verified {n}/{total} bytes");
            }
        }
    };
    tokio::task::spawn_blocking(move || {
        Storage::open_with(&dir, &info, info_hash, recheck, progress)
    })
    .await
    .context("storage task failed")?
}

/// Close peers, tell the tracker, flush the resume file.
async fn shutdown(swarm: &Arc<Swarm>, tracker_task: tokio::task::JoinHandle<()>) {
    swarm.shutdown.cancel();
    swarm.close_all(Disconnect::ShuttingDown);
    swarm.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), swarm.tasks.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker_task).await;
    if let Err(e) = swarm.storage.save_resume(&swarm.have_snapshot()) {
        tracing::warn!("cannot write resume file: {e}");
    }
    swarm.out.finish();
    let (downloaded, peers, others) = swarm.summary();
    let seconds = swarm.elapsed().as_secs_f64();
    swarm.out.emit(&PeerEvent::Stopped {
        seconds,
        downloaded,
        uploaded: swarm.uploaded(),
        peers,
        others,
    });
    swarm.say_summary("session", seconds, downloaded);
    swarm.out.close();
}

async fn accept_loop(swarm: Arc<Swarm>, listener: TcpListener) {
    loop {
        tokio::select! {
            _ = swarm.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    // A banned address gets nothing, whatever its source port.
                    if swarm.is_banned(addr, false) {
                        drop(stream);
                        tracing::debug!("{addr}: refused: {}", Disconnect::BannedPeer);
                        swarm.out.emit(&PeerEvent::PeerRefused {
                            addr: addr.to_string(),
                            reason: Disconnect::BannedPeer.to_string(),
                        });
                        continue;
                    }
                    swarm.tasks.spawn(peer_conn::accepted(swarm.clone(), stream, addr));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Offers a peer from the tracker's list for dialing, and starts the dials
/// the swarm allows.
fn dial(swarm: &Arc<Swarm>, entry: &PeerEntry) {
    if swarm.offer_dial(entry) {
        start_dials(swarm);
    }
}

/// Starts queued dials while the swarm allows (a bounded number connecting
/// at once); each, once its connect is over, starts the next.
fn start_dials(swarm: &Arc<Swarm>) {
    while let Some((addr, legacy, connecting)) = swarm.next_dial() {
        swarm.out.emit(&PeerEvent::DialStarted {
            addr: addr.to_string(),
            connecting,
        });
        let swarm = swarm.clone();
        swarm.tasks.clone().spawn(async move {
            let began = Instant::now();
            let stream = peer_conn::connect(addr).await;
            swarm.connect_ended();
            start_dials(&swarm);
            if let Some(stream) = stream {
                peer_conn::dialed(swarm.clone(), stream, addr, legacy).await;
            }
            swarm.dial_ended(addr, began.elapsed());
            start_dials(&swarm);
        });
    }
}

/// Announces as the [`Announcer`] says, dials the peers the trackers list,
/// and says goodbye to them when the session ends. With `--exit-when-done`,
/// telling the trackers that the download is complete gets
/// [`EXIT_GRACE`]; then the session ends whatever they say.
async fn tracker_loop(
    swarm: Arc<Swarm>,
    trackers: Vec<String>,
    announce_ip: Option<std::net::Ipv4Addr>,
    exit_when_done: bool,
) {
    let mut plan = Announcer::new(trackers, exit_when_done, Instant::now());
    // Set once the download is complete, with --exit-when-done.
    let mut exit_by: Option<Instant> = None;
    let completed = |plan: &mut Announcer, exit_by: &mut Option<Instant>| {
        if exit_when_done {
            exit_by.get_or_insert(Instant::now() + EXIT_GRACE);
        }
        plan.download_complete()
    };
    let mut after = if swarm.is_complete() {
        completed(&mut plan, &mut exit_by)
    } else {
        After::Continue
    };
    while after == After::Continue && !swarm.shutdown.is_cancelled() {
        if exit_by.is_some_and(|t| t <= Instant::now()) {
            tracing::warn!("the trackers were not told that the download is complete; leaving");
            after = After::Exit;
            break;
        }
        let announce = match plan.next(Instant::now()) {
            Step::Announce(a) => a,
            Step::WaitUntil(at) => {
                let at = exit_by.map_or(at, |t| t.min(at));
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = swarm.download_completed() => after = completed(&mut plan, &mut exit_by),
                    _ = swarm.shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let req = swarm.announce_request(announce.event, announce_ip);
        let exchange = tracker_client::announce(&announce.tracker, &req);
        let result = match exit_by {
            Some(t) => tokio::time::timeout_at(t.into(), exchange)
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "tracker {} did not answer before the exit",
                        announce.tracker
                    ))
                }),
            None => exchange.await,
        };
        after = match result {
            Ok(resp) => {
                tracing::debug!("tracker {}: {} peers", announce.tracker, resp.peers.len());
                swarm.out.emit(&PeerEvent::Announced {
                    tracker: announce.tracker.clone(),
                    announce: announce.event.map(|e| e.as_str().to_string()),
                    peers: resp.peers.len(),
                });
                // We asked for NUMWANT: a longer list is not ours to dial.
                for entry in resp.peers.iter().take(crate::admission::NUMWANT) {
                    dial(&swarm, entry);
                }
                plan.answered(
                    &announce.tracker,
                    announce.event,
                    resp.interval,
                    Instant::now(),
                )
            }
            Err(e) => {
                tracing::warn!("announce failed: {e:#}");
                swarm.out.emit(&PeerEvent::TrackerError {
                    error: format!("{e:#}"),
                });
                plan.failed(&announce.tracker, Instant::now())
            }
        };
    }
    if after == After::Exit {
        swarm.shutdown.cancel();
    }
    // A tracker that just failed us is not waited for again on the way out.
    let leaving = plan
        .leaving()
        .into_iter()
        .filter(|bye| !(exit_by.is_some() && plan.failing(&bye.tracker)));
    let goodbyes = leaving.map(|bye| {
        let req = swarm.announce_request(bye.event, announce_ip);
        let swarm = &swarm;
        async move {
            match tracker_client::announce(&bye.tracker, &req).await {
                Ok(resp) => swarm.out.emit(&PeerEvent::Announced {
                    tracker: bye.tracker.clone(),
                    announce: bye.event.map(|e| e.as_str().to_string()),
                    peers: resp.peers.len(),
                }),
                Err(e) => tracing::debug!("leaving {}: {e:#}", bye.tracker),
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(3), futures::future::join_all(goodbyes)).await;
}

async fn choke_loop(swarm: Arc<Swarm>) {
    let mut tick = tokio::time::interval(CHOKE_ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = swarm.shutdown.cancelled() => return,
            _ = tick.tick() => swarm.choke_round(CHOKE_ROUND.as_secs_f64()),
        }
    }
}

async fn progress_loop(swarm: Arc<Swarm>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_bytes = 0u64;
    // Pieces held at the previous tick, and in the last resume record.
    let mut last_count = 0;
    let mut saved_count = 0;
    let mut last_at = Instant::now();
    loop {
        tokio::select! {
            _ = swarm.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ProgressSnapshot {
            have: count,
            downloaded,
            peers,
            done,
        } = swarm.progress();
        let now = Instant::now();
        let rate =
            (downloaded - last_bytes) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        let info = &swarm.torrent.info;
        let bytes = if count == info.piece_count() {
            info.file_length
        } else {
            (count as u64 * info.piece_length).min(info.file_length)
        };
        if !done {
            swarm.out.progress(bytes, peers);
            swarm.out.emit(&PeerEvent::Progress(Progress::Swarm {
                have: count,
                pieces: info.piece_count(),
                bytes,
                rate: rate.round(),
                peers,
            }));
        }
        // A resume record holds only while the data's mtime is the one it
        // recorded: the next write makes it stale, and the data is hashed
        // again at start (nothing is lost either way). So a save while
        // pieces keep arriving buys nothing, and costs a sync of all written
        // since the last one on the cores the transfer needs. Save when
        // pieces have stopped arriving for a tick (and at done and shutdown).
        if count != saved_count && count == last_count {
            let have = swarm.have_snapshot();
            // Syncing the data it vouches for may take a while: off the
            // async workers, which keep serving the connections meanwhile.
            let saver = swarm.clone();
            match tokio::task::spawn_blocking(move || saver.storage.save_resume(&have)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("cannot write resume file: {e}"),
                Err(e) => tracing::warn!("resume file task failed: {e}"),
            }
            saved_count = count;
        }
        last_count = count;
        last_bytes = downloaded;
        last_at = now;
    }
}
