//! The limits a peer connection keeps in time, as data.
//!
//! [`Timeouts`] holds the durations; a [`crate::Connection`] turns them into
//! deadlines from the instants its driver passes in, reports the nearest one
//! through `poll_timeout` and acts in `handle_timeout`. Nothing here reads a
//! clock.

use std::time::{Duration, Instant};

/// How long a peer connection waits for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the start until the handshake completes.
    pub handshake: Duration,
    /// How long one request waits for its piece, until the driver sets a
    /// deadline from the rate the peer has shown (`set_request_timeout`).
    pub piece: Duration,
    /// Silence from a peer (of either protocol) after which it is gone.
    pub idle: Duration,
    /// Silence towards a peer of our protocol after which we send KeepAlive.
    pub keep_alive: Duration,
}

impl Default for Timeouts {
    /// 10 s handshake, 30 s per piece, 120 s idle, keep-alive at a third of idle.
    fn default() -> Self {
        let idle = Duration::from_secs(120);
        Self {
            handshake: Duration::from_secs(10),
            piece: Duration::from_secs(30),
            idle,
            keep_alive: idle / 3,
        }
    }
}

/// The connection's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The handshake must complete.
    Handshake,
    /// A requested piece must arrive.
    Piece,
    /// The peer must send something.
    Idle,
    /// We must send something (a KeepAlive if nothing else).
    KeepAlive,
}

impl Timer {
    pub const ALL: [Timer; 4] = [
        Timer::Handshake,
        Timer::Piece,
        Timer::Idle,
        Timer::KeepAlive,
    ];
}

/// `start + after`, or `None` (never) when that is beyond what an
/// [`Instant`] can hold.
pub(crate) fn deadline(start: Instant, after: Duration) -> Option<Instant> {
    start.checked_add(after)
}

/// Whether `deadline` has come at `now`.
pub(crate) fn expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_limits() {
        let t = Timeouts::default();
        assert_eq!(t.handshake, Duration::from_secs(10));
        assert_eq!(t.piece, Duration::from_secs(30));
        assert_eq!(t.idle, Duration::from_secs(120));
        assert_eq!(t.keep_alive, Duration::from_secs(40));
    }

    #[test]
    fn a_deadline_too_far_never_comes() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), None);
        assert!(!expired(None, now));
        assert!(expired(Some(now), now));
        assert!(!expired(deadline(now, Duration::from_secs(1)), now));
    }
}
