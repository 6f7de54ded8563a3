//! # wire: the lanswarm protocol, without sockets
//!
//! Everything that crosses a lanswarm TCP connection (or a tracker
//! replication datagram) is defined here, as pure
//! data transformations. The binaries (`tracker`, `peer`) own the sockets and
//! the clock, and drive these types from one tokio task per connection: time
//! comes in as an `Instant` parameter, never from a clock read here.
//! The multicast group management formats `mcast` reads and writes (IGMP,
//! MLD, the kernel's membership tables, the querier election) are here too,
//! equally sans-IO.
//!
//! | module | holds |
//! |---|---|
//! | [`frame`] | the 8-byte big-endian length-prefixed framing ([`FrameCodec`]) |
//! | [`message`] | peer-wire messages (Have, Piece, Handshake, …) and their byte layout |
//! | [`codec`] | [`PeerCodec`]: framing plus peer-message decoding, for `Framed` |
//! | [`bitfield`] | the set of pieces a peer has |
//! | [`ids`] | [`InfoHash`] and [`PeerId`], 20-byte identifiers with hex forms |
//! | [`tracker`] | tracker requests and responses (JSON in one frame) with typed validation |
//! | [`replica`] | tracker replication datagrams (binary, multicast) and their status types |
//! | [`chat`] | `peer chat`: room hashes, names, the members' messages (JSON in one frame) |
//! | [`seed_chat`] | the seed's chat directory over UDP text: client requests, server exchange, address tuples |
//! | [`torrent`] | torrent metadata (one file or a directory): JSON read/write, validation, info hash |
//! | [`layout`] | where a piece's bytes lie among a torrent's files |
//! | [`pyrepr`] | reading Python `bytes` reprs, the seed tool's piece-hash form |
//! | [`discovery`] | LAN peer discovery (BEP 14 `BT-SEARCH` datagrams) and its sans-IO state machine |
//! | [`connection`] | one peer connection's protocol: handshake (ours and legacy), choke/interest, requests, timers, close |
//! | [`upload`] | the queue of pieces a peer asked us for, with their cancels |
//! | [`timers`] | a connection's time limits (handshake, piece, idle, keep-alive), as data |
//! | [`disconnect`] | [`Disconnect`]: why a connection ended, one typed variant per cause |
//! | [`membership`] | what IGMPv3 and MLDv2 share: queries, group records, code fields, the Internet checksum |
//! | [`igmp`] | IGMP v1/v2/v3 messages (RFC 1112, 2236, 3376): decode, encode, checksum |
//! | [`mld`] | MLD v1/v2 messages (RFC 2710, 3810): decode, encode, checksum with the pseudo-header |
//! | [`inet`] | the IPv4/IPv6 header around a captured IGMP or MLD message |
//! | [`procnet`] | `/proc/net/igmp`, `igmp6`, `mcfilter`, `mcfilter6`: this host's memberships |
//! | [`querier`] | the IGMP querier election state machine, driven by hand-fed time |
//!
//! Nothing in this crate panics on input from the network: every decoder
//! returns a typed error instead, and no decoder allocates more than the
//! configured frame limit, whatever a length field claims (nor, for IGMP and
//! MLD, more than the datagram holds, whatever a count field claims).

pub mod bitfield;
pub mod chat;
pub mod codec;
pub mod connection;
pub mod disconnect;
pub mod discovery;
pub mod frame;
pub mod ids;
pub mod igmp;
pub mod inet;
pub mod layout;
pub mod membership;
pub mod message;
pub mod mld;
pub mod procnet;
pub mod pyrepr;
pub mod querier;
pub mod replica;
pub mod seed_chat;
pub mod timers;
pub mod torrent;
pub mod tracker;
pub mod upload;

pub use bitfield::Bitfield;
pub use codec::{Head, PeerCodec, WireError};
pub use connection::{Config, ConnEvent, Connection, ProtocolError, RequestRefused, Role};
pub use disconnect::{BanReason, Disconnect};
pub use frame::{FrameCodec, FrameError, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN};
pub use ids::{InfoHash, PeerId};
pub use layout::{Layout, Span};
pub use message::{Message, MessageError};
pub use timers::{Timeouts, Timer};
pub use torrent::{FileEntry, Info, Torrent, TorrentError, MAX_PIECE_LENGTH};
