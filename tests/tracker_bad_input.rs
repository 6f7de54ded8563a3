//! Every bad request of the tracker issue gets `error_code: 1` with a message
//! naming the problem; the same connection then still answers a good
//! request, and another client on another connection is served too.

use lanswarm::fixture::start_tracker;
use lanswarm::tracker_client::{announce_body, assert_serves, Client};

/// Sends `bad`, expects an error naming `needle`, then a good request on the
/// same connection, then a good client on another connection.
fn refused_then_still_served(bad: &[u8], needle: &str) {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.expect_error(bad, needle);
    let ok = c.request(&announce_body(7000, "same-conn", r#","event":"started""#));
    assert_eq!(ok.error_code, 0, "{ok:?}");
    assert_serves(addr);
}

#[test]
fn bad_json() {
    refused_then_still_served(b"{\"port\": 1, \"peer_id\":", "bad JSON");
}

#[test]
fn not_utf8() {
    refused_then_still_served(b"\xff\xfe\x00garbage", "bad JSON");
}

#[test]
fn not_an_object() {
    refused_then_still_served(b"[1,2,3]", "JSON object");
}

#[test]
fn missing_port() {
    refused_then_still_served(br#"{"peer_id":"a","event":"started"}"#, "'port'");
}

#[test]
fn missing_peer_id() {
    refused_then_still_served(br#"{"port":7001,"event":"started"}"#, "'peer_id'");
}

#[test]
fn mistyped_port() {
    refused_then_still_served(br#"{"port":"7001","peer_id":"a"}"#, "'port'");
}

#[test]
fn mistyped_peer_id() {
    refused_then_still_served(br#"{"port":7001,"peer_id":42}"#, "'peer_id'");
}

#[test]
fn mistyped_numwant() {
    refused_then_still_served(
        br#"{"port":7001,"peer_id":"a","numwant":"lots"}"#,
        "'numwant'",
    );
}

#[test]
fn port_zero() {
    refused_then_still_served(br#"{"port":0,"peer_id":"a"}"#, "'port'");
}

#[test]
fn port_above_65535() {
    refused_then_still_served(br#"{"port":65536,"peer_id":"a"}"#, "'port'");
}

#[test]
fn bad_ip() {
    refused_then_still_served(br#"{"port":7001,"peer_id":"a","ip":"300.1.2.3"}"#, "'ip'");
}

#[test]
fn bad_info_hash() {
    refused_then_still_served(
        br#"{"port":7001,"peer_id":"a","info_hash":"not-hex"}"#,
        "'info_hash'",
    );
}

#[test]
fn unknown_event() {
    refused_then_still_served(
        br#"{"port":7001,"peer_id":"a","event":"paused"}"#,
        "'event'",
    );
}

#[test]
fn string_over_256_bytes() {
    let long = "x".repeat(257);
    let body = format!(r#"{{"port":7001,"peer_id":"{long}"}}"#);
    refused_then_still_served(body.as_bytes(), "'peer_id'");
}

#[test]
fn a_256_byte_string_is_still_fine() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    let r = c.request(&announce_body(7001, &"x".repeat(256), ""));
    assert_eq!(r.error_code, 0, "{r:?}");
}

#[test]
fn unknown_request_kind() {
    refused_then_still_served(br#"{"request":"reboot"}"#, "reboot");
}

#[test]
fn refused_requests_register_nobody() {
    let tracker = start_tracker(&[]);
    let addr = tracker.addr;
    let mut c = Client::connect(addr);
    c.expect_error(br#"{"port":0,"peer_id":"ghost"}"#, "'port'");
    c.expect_error(
        br#"{"port":7002,"peer_id":"ghost","event":"paused"}"#,
        "'event'",
    );
    let r = c.request(&announce_body(7003, "real", ""));
    assert_eq!(r.num_of_peer, 0, "a refused request was registered: {r:?}");
}
