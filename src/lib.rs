//! Shared helpers for the cross-binary integration tests (`tests/`), demos and
//! benchmarks (`examples/`). Not part of the shipped toolkit.
//!
//! - [`process`]: finding the built binaries, spawning them, waiting on their output lines.
//! - [`files`]: generated data files, byte-for-byte comparisons, directory listings.
//! - [`transfer`]: `peer serve` / `peer fetch` processes for the client/server tests.
//! - [`fixture`]: trackers (started and awaited through their typed events), peers,
//!   torrents and fake wire peers for swarm tests and demos.
//! - [`hostile`]: hostile peers: liars that claim every piece and never send, churns of
//!   connections under new peer ids.
//! - [`tracker_client`]: a raw, blocking client of the tracker protocol, frame by
//!   frame, for tests of the tracker itself.
//! - [`chat_lab`]: `peer chat` members typed at and read back as `peer::events::Event`,
//!   and a raw member speaking the chat wire by hand.
//! - [`netns`]: throw-away network namespaces, veth pairs and bridges, cleaned up on drop.
//! - [`mcast_lab`]: `mcast` on namespace hosts, its events read back as `mcast::events::Event`.
//! - [`tracker_lab`]: replicating trackers and peers on namespace hosts, their typed
//!   events and status, announces sent from inside a host.
//! - [`router_lab`]: two LAN segments joined by a multicast router, and the routing daemons (smcroute, pimd) run in it.
//! - [`testbed`]: the emulated LAN experiment (P2P vs client/server) and its lower bounds.
//! - [`web_client`]: a blocking HTTP client for `tracker --http`: requests and event streams.
//! - [`chromium`]: headless Chromium over the DevTools pipe, for browser tests.

pub mod chat_lab;
pub mod chromium;
pub mod files;
pub mod fixture;
pub mod hostile;
pub mod mcast_lab;
pub mod netns;
pub mod process;
pub mod router_lab;
pub mod testbed;
pub mod tracker_client;
pub mod tracker_lab;
pub mod transfer;
pub mod web_client;
