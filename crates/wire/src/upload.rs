//! The pieces a peer asked us for, in the order asked, until the driver takes
//! them to send. A Cancel removes a piece still queued here.
//!
//! The queue holds indices only: reading the piece (from disk, with
//! `sendfile`) is the driver's business, so wire never owns file I/O.

use std::collections::VecDeque;

/// Requested pieces waiting to be sent.
#[derive(Debug, Clone, Default)]
pub struct UploadQueue {
    queue: VecDeque<u32>,
}

impl UploadQueue {
    /// Queues piece `index` (a peer may ask twice; it gets it twice).
    pub fn push(&mut self, index: u32) {
        self.queue.push_back(index);
    }

    /// Removes every queued request for `index`. Returns how many there were.
    pub fn cancel(&mut self, index: u32) -> usize {
        let before = self.queue.len();
        self.queue.retain(|&i| i != index);
        before - self.queue.len()
    }

    /// The oldest request, to send now.
    pub fn pop(&mut self) -> Option<u32> {
        self.queue.pop_front()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Forgets every request (the connection is closing).
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// The queued indices, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.queue.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_cancel_removes_every_copy() {
        let mut q = UploadQueue::default();
        for i in [3, 1, 3, 2] {
            q.push(i);
        }
        assert_eq!(q.cancel(3), 2);
        assert_eq!(q.cancel(7), 0);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.len(), 1);
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
