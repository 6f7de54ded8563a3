//! `tracker --http` in a real browser: headless Chromium opens the page
//! against a tracker with a small swarm and watches it change without a
//! reload: a peer that joins later appears, one that leaves disappears.
//! It saves a screenshot (`$LANSWARM_SCREENSHOT`, else under the target
//! directory). Skips, saying why, when Chromium is missing or will not start.
//!
//! ```sh
//! LANSWARM_SCREENSHOT=docs/tracker-web.png cargo test --test tracker_web_browser
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lanswarm::chromium::Browser;
use lanswarm::fixture::{start_web_tracker, STEP};
use lanswarm::tracker_client::{announce_body, Client};
use wire::{Info, Torrent};

/// A peer id that would be markup if the page parsed it as HTML.
const HOSTILE_ID: &str = r#"<img src=x onerror="document.title='pwned'">"#;

/// A second swarm, announced by its peers only (no file name known).
const H2: &str = "2222222222222222222222222222222222222222";

/// A torrent for `movie.mkv` (1 GiB), written to `dir`; its path and info hash.
fn torrent(dir: &std::path::Path) -> (PathBuf, String) {
    let length: u64 = 1 << 30;
    let piece_length: u64 = 1 << 20;
    let t = Torrent {
        announce: "127.0.0.1".into(),
        port: 6666,
        announce_list: Vec::new(),
        comment: String::new(),
        info: Info {
            piece_length,
            piece_hash: vec![[7; 20]; (length / piece_length) as usize],
            file_name: "movie.mkv".into(),
            file_length: length,
            files: None,
        },
    };
    let path = dir.join("movie.mkv.torrent");
    std::fs::write(&path, t.to_json_pretty()).expect("write torrent");
    (path, t.info_hash().to_hex())
}

/// Announces a peer at `port` in swarm `hash` with optional progress.
fn join(c: &mut Client, hash: &str, port: u16, id: &str, event: &str, left: Option<u64>) {
    let size: u64 = 1 << 30;
    let progress = left.map_or_else(String::new, |l| {
        format!(r#","left":{l},"downloaded":{}"#, size - l)
    });
    let body = announce_body(
        port,
        &id.replace('"', "\\\""),
        &format!(r#","event":"{event}","info_hash":"{hash}","proto":1{progress}"#),
    );
    assert_eq!(c.request(&body).error_code, 0, "{body}");
}

/// Announces in the background (refreshes of one peer), so that the page
/// shows a live rate; stops when the flag is cleared.
fn keep_announcing(tracker: SocketAddr, hash: String, run: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut c = Client::connect(tracker);
        while run.load(Ordering::Relaxed) {
            join(&mut c, &hash, 7001, "seed-1", "", Some(0));
            std::thread::sleep(Duration::from_millis(40));
        }
    });
}

fn screenshot_path() -> PathBuf {
    match std::env::var_os("LANSWARM_SCREENSHOT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tracker-web.png"),
    }
}

#[test]
fn the_page_shows_peers_live_in_chromium() {
    let mut browser = match Browser::launch(1280, 860) {
        Ok(b) => b,
        Err(why) => {
            eprintln!("skipping the browser test: {why}");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, hash) = torrent(tmp.path());
    let (tracker, http) = start_web_tracker(&["--torrent", torrent.to_str().unwrap()]);
    let mut c = Client::connect(tracker.addr);
    join(&mut c, &hash, 7001, "seed-1", "completed", Some(0));
    join(&mut c, &hash, 7002, "leech-2", "started", Some(700 << 20));
    join(&mut c, &hash, 7003, HOSTILE_ID, "started", Some(200 << 20));
    // A peer of the seed's protocol: no info hash (the default swarm, the
    // torrent's), no progress.
    c.request(&announce_body(
        6881,
        "127.0.0.1:6881",
        r#","event":"started""#,
    ));
    join(&mut c, H2, 7101, "other-1", "completed", Some(0));
    join(&mut c, H2, 7102, "other-2", "started", Some(300 << 20));
    c.expect_error(br#"{"port":"80","peer_id":"bad"}"#, "'port'");

    browser
        .open(&format!("http://{http}/"))
        .unwrap_or_else(|e| panic!("{e}{}", browser.log_tail()));
    let rows = "document.querySelectorAll('tr[data-addr]').length";
    let shown = browser
        .wait_until(
            &format!("document.body.dataset.loaded && {rows} === 6 && {rows}"),
            STEP,
        )
        .unwrap_or_else(|e| panic!("{e}{}", browser.log_tail()));
    assert_eq!(shown, 6);
    let unknown = format!("document.querySelector('[data-swarm=\"{H2}\"] .title').textContent");
    assert_eq!(browser.eval(&unknown).unwrap(), "unknown file");
    let title = browser
        .eval(&format!(
            "document.querySelector('[data-swarm=\"{hash}\"] .title').textContent"
        ))
        .unwrap();
    assert_eq!(title, "movie.mkv");
    let role = |addr: &str| {
        format!("document.querySelector('tr[data-addr=\"{addr}\"] .role').textContent")
    };
    assert_eq!(browser.eval(&role("127.0.0.1:7001")).unwrap(), "seed");
    assert_eq!(browser.eval(&role("127.0.0.1:7002")).unwrap(), "leech");
    let pct = "document.querySelector('tr[data-addr=\"127.0.0.1:7002\"] .pct').textContent";
    assert_eq!(browser.eval(pct).unwrap(), "31%", "700 MiB left of 1 GiB");
    // Peer ids are text, never markup.
    let id = "document.querySelector('tr[data-addr=\"127.0.0.1:7003\"] td.id').textContent";
    assert_eq!(browser.eval(id).unwrap(), HOSTILE_ID);
    assert_eq!(
        browser
            .eval("document.querySelectorAll('img').length")
            .unwrap(),
        0
    );
    assert_eq!(browser.eval("document.title").unwrap(), "lanswarm tracker");
    browser
        .wait_until(
            "document.getElementById('live').dataset.state === 'live'",
            STEP,
        )
        .expect("the event stream connects");

    // From here on the page must not reload: this mark would be lost.
    browser.eval("window.notReloaded = true").unwrap();
    let events_before = browser
        .eval("+(document.body.dataset.peerEvents || 0)")
        .unwrap()
        .as_u64()
        .unwrap();

    join(&mut c, &hash, 7004, "late-4", "started", Some(900 << 20));
    browser
        .wait_until(
            "document.querySelector('tr[data-addr=\"127.0.0.1:7004\"]') !== null",
            STEP,
        )
        .expect("the late peer appears");
    c.request(&announce_body(
        7002,
        "leech-2",
        &format!(r#","event":"stopped","info_hash":"{hash}""#),
    ));
    browser
        .wait_until(
            "document.querySelector('tr[data-addr=\"127.0.0.1:7002\"]') === null",
            STEP,
        )
        .expect("the leaving peer disappears");
    assert_eq!(browser.eval("window.notReloaded === true").unwrap(), true);
    assert_eq!(
        browser
            .eval("performance.getEntriesByType('navigation').length")
            .unwrap(),
        1
    );
    let events_after = browser
        .eval("+(document.body.dataset.peerEvents || 0)")
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(
        events_after >= events_before + 2,
        "the join and the leave came through the event stream ({events_before} -> {events_after})"
    );

    // Let the counters show a live rate, then take the picture.
    let run = Arc::new(AtomicBool::new(true));
    keep_announcing(tracker.addr, hash.clone(), run.clone());
    browser
        .wait_until(
            "+document.querySelector('[data-key=\"announces_per_sec\"] .n').textContent > 0",
            STEP,
        )
        .expect("the rate shows");
    browser
        .wait_until(
            "document.querySelector('[data-key=\"bad_requests\"] .n').textContent === '1'",
            STEP,
        )
        .expect("the bad request is counted");
    // The next status read brings the late peer's progress (a join event
    // carries none); by then its highlight has faded too.
    browser
        .wait_until(
            "document.querySelector('tr[data-addr=\"127.0.0.1:7004\"] .pct') !== null",
            STEP,
        )
        .expect("the late peer's progress shows");
    std::thread::sleep(Duration::from_millis(1500));
    let shot = screenshot_path();
    if let Some(dir) = shot.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).unwrap();
    }
    browser.screenshot(&shot).expect("screenshot");
    run.store(false, Ordering::Relaxed);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}
