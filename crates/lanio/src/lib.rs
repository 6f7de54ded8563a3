//! # lanio: the I/O kit every lanswarm program shares
//!
//! `wire` holds the byte formats and state machines without sockets; this
//! crate holds the I/O side that `tracker`, `peer` and `mcast` have in
//! common. The arrows run one way: programs → `lanio` → `wire`.
//!
//! | module | holds |
//! |---|---|
//! | [`cidr`] | address ranges (`10.0.0.0/8`): parsing and membership ([`Cidr`]) |
//! | [`exit`] | the one error type behind the exit codes: 0 success, 1 runtime failure, 2 bad input ([`BadInput`]) |
//! | [`harness`] | a program's `main`: `RUST_LOG` logging, the runtime, error printing, the exit code ([`harness::run`]) |
//! | [`signals`] | SIGINT and SIGTERM handlers, installed before a program says it is ready ([`Signals`]) |
//! | [`escape`] | control characters in untrusted text shown as escapes before printing |
//! | [`events`] | the JSON event line writer: one serde enum per program, never blocking the runtime ([`EventWriter`]) |
//! | [`frame`] | reading and writing one 8-byte-length frame, blocking and async |
//! | [`group`] | multicast group addresses: validation, datagram size limits, destinations |
//! | [`iface`] | `--iface NAME|ADDR` to an interface index and its addresses; the subnets of all local interfaces |
//! | [`multicast`] | multicast UDP sockets: any-source and source-specific joins, IPv4 and IPv6, TTL, loopback, interface, `recvmsg` with the arrival TTL |

pub mod cidr;
pub mod escape;
pub mod events;
pub mod exit;
pub mod frame;
pub mod group;
pub mod harness;
pub mod iface;
pub mod multicast;
pub mod signals;

pub use cidr::Cidr;
pub use events::EventWriter;
pub use exit::{bad_input, BadInput, EXIT_BAD_INPUT, EXIT_FAILURE};
pub use signals::{Signals, Stop};
