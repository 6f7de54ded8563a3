//! The live feed behind `/api/events`: one bounded broadcast channel, a cap
//! on subscribers.
//!
//! - A message is serialised once, when it is published, and shared by every
//!   subscriber (`Arc<str>`). With nobody subscribed, publishing costs one
//!   atomic load.
//! - The channel keeps the last [`FEED_CAPACITY`] messages. A subscriber
//!   that falls further behind is dropped (its stream ends, and the page
//!   reconnects and reloads the status); nothing is buffered per subscriber.
//! - At most `max_subscribers` at once: one more gets [`Full`] (the server
//!   answers 503).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::stats::{Count, Counters};

/// Messages kept for subscribers that are behind.
pub const FEED_CAPACITY: usize = 256;

/// Default cap on event-stream subscribers.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 32;

/// Another subscriber would exceed the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{max} event subscribers already, try again later")]
pub struct Full {
    pub max: usize,
}

/// The publishing side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<str>>,
    slots: Arc<Semaphore>,
    max_subscribers: usize,
    counters: Arc<Counters>,
}

impl Feed {
    /// A feed for at most `max_subscribers`, counting refusals and drops in
    /// `counters`.
    pub fn new(max_subscribers: usize, counters: Arc<Counters>) -> Self {
        Feed {
            tx: broadcast::Sender::new(FEED_CAPACITY),
            slots: Arc::new(Semaphore::new(max_subscribers)),
            max_subscribers,
            counters,
        }
    }

    /// Sends `message` (as one JSON object) to every subscriber.
    pub fn publish<M: Serialize>(&self, message: &M) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(message) {
            // An error only means that nobody is subscribed any more.
            Ok(json) => drop(self.tx.send(json.into())),
            Err(e) => warn!("cannot encode a feed message: {e}"),
        }
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A new subscriber, or [`Full`] at the cap (counted).
    pub fn subscribe(&self) -> Result<Subscription, Full> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.counters.add(Count::SubscriberRefused);
            return Err(Full {
                max: self.max_subscribers,
            });
        };
        Ok(Subscription {
            rx: self.tx.subscribe(),
            _slot: slot,
            counters: self.counters.clone(),
        })
    }
}

/// One subscriber: the messages published since it subscribed. Dropping it
/// frees its slot.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<str>>,
    _slot: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Subscription {
    /// The next message; `None` once this subscriber fell too far behind
    /// (counted) or the feed is gone.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        match self.rx.recv().await {
            Ok(message) => Some(message),
            Err(RecvError::Lagged(missed)) => {
                debug!("dropping an event subscriber {missed} messages behind");
                self.counters.add(Count::SubscriberDropped);
                None
            }
            Err(RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_messages_published_after_they_subscribed() {
        let counters = Arc::new(Counters::default());
        let feed = Feed::new(2, counters.clone());
        feed.publish(&"before anyone listens");
        let mut a = feed.subscribe().unwrap();
        feed.publish(&serde_json::json!({"event": "join"}));
        assert_eq!(a.next().await.as_deref(), Some(r#"{"event":"join"}"#));
        assert_eq!(feed.subscribers(), 1);
    }

    #[test]
    fn the_cap_refuses_and_a_dropped_subscription_frees_its_slot() {
        let counters = Arc::new(Counters::default());
        let feed = Feed::new(2, counters.clone());
        let a = feed.subscribe().unwrap();
        let _b = feed.subscribe().unwrap();
        assert_eq!(feed.subscribe().unwrap_err(), Full { max: 2 });
        assert_eq!(counters.get(Count::SubscriberRefused), 1);
        drop(a);
        assert!(feed.subscribe().is_ok());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_not_buffered() {
        let counters = Arc::new(Counters::default());
        let feed = Feed::new(2, counters.clone());
        let mut slow = feed.subscribe().unwrap();
        for i in 0..FEED_CAPACITY * 4 {
            feed.publish(&i);
        }
        assert_eq!(slow.next().await, None);
        assert_eq!(counters.get(Count::SubscriberDropped), 1);
    }
}
