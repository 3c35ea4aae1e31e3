//! A member's bounded send buffer: chat must never hold up media, so a member that reads
//! too slowly loses its oldest chat instead of making anyone wait.

use std::collections::VecDeque;

/// A sensible capacity for one member's chat buffer.
pub const MEMBER_QUEUE_CAPACITY: usize = 256;

/// A FIFO of at most `capacity` items; pushing onto a full queue drops the oldest item
/// and counts it.
#[derive(Debug, Clone)]
pub struct MemberQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> MemberQueue<T> {
    /// An empty queue holding at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemberQueue {
            items: VecDeque::with_capacity(capacity.min(MEMBER_QUEUE_CAPACITY)),
            capacity,
            dropped: 0,
        }
    }

    /// Adds `item` at the back; when full, the oldest item is dropped (and returned).
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() >= self.capacity {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    /// Takes the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Takes every item, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.items.drain(..)
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many items were dropped because the queue was full, since it was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl<T> Default for MemberQueue<T> {
    fn default() -> Self {
        Self::new(MEMBER_QUEUE_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_under_capacity() {
        let mut queue = MemberQueue::new(3);
        assert_eq!(queue.push(1), None);
        assert_eq!(queue.push(2), None);
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.dropped(), 0);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let mut queue = MemberQueue::new(2);
        queue.push("a");
        queue.push("b");
        assert_eq!(queue.push("c"), Some("a"));
        assert_eq!(queue.push("d"), Some("b"));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.dropped(), 2);
        assert_eq!(queue.drain().collect::<Vec<_>>(), ["c", "d"]);
        assert!(queue.is_empty());
    }

    #[test]
    fn capacity_is_at_least_one() {
        let mut queue = MemberQueue::new(0);
        assert_eq!(queue.capacity(), 1);
        queue.push(1);
        assert_eq!(queue.push(2), Some(1));
        assert_eq!(queue.pop(), Some(2));
    }
}
