//! Idle timeouts: "stop once this long passes without a datagram".

use std::time::Duration;
use tokio::time::Instant;

/// An optional idle timeout, restarted whenever something arrives.
#[derive(Debug, Clone, Copy)]
pub struct IdleTimeout {
    timeout: Option<Duration>,
}

impl IdleTimeout {
    /// `None` never expires.
    pub fn new(timeout: Option<Duration>) -> Self {
        IdleTimeout { timeout }
    }

    /// The deadline if the last activity happened now (a year ahead without a timeout).
    pub fn deadline_from_now(&self) -> Instant {
        Instant::now() + self.timeout.unwrap_or(Duration::from_secs(86_400 * 365))
    }
}
