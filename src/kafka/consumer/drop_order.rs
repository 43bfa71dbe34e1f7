//! Commands that must keep their order while others overtake them: a queue per key.
//!
//! **A drop's commands** (`DropOrder`). A meso drop's reservation asks the party service before
//! it is applied, beside the partition (contract-head §4): the partition's other commands go on
//! meanwhile. Commands on *that* drop must not overtake it (a second reservation would win a
//! race it lost, a pick-up would find no reservation), so they queue behind it, each in turn,
//! and only that drop waits. A drop's commands may come on several partitions (peers key
//! reservations by drop id, the rest by map): the queue is the handler's, for all of them.
//!
//! **A map's commands** (`Lanes`). A partition applies commands of different maps at once (the
//! shared store's steps wait on Redis, and one step at a time left Redis idle between them), and
//! those of one map in the order they came: a drop's commands all name its map, so they never
//! overtake each other.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use futures_util::future::{FutureExt, Shared};
use tokio::sync::oneshot;

use crate::drop::model::{Location, TenantRef};

/// A drop as its tenant's commands name it.
pub type DropKey = (TenantRef, u32);
/// The queue of each drop with a command waiting for a peer.
pub type DropOrder = KeyedOrder<DropKey>;
/// A map of a tenant, as commands name it.
pub type Lane = (TenantRef, Location);
/// The queue of each map with commands of a partition being applied.
pub type Lanes = KeyedOrder<Lane>;

/// Resolves when the command before is applied (or given up).
type Turn = Shared<oneshot::Receiver<()>>;

pub struct KeyedOrder<K> {
    /// The last command queued under each key that has one waiting, with its number.
    last: Mutex<HashMap<K, (u64, Turn)>>,
    numbered: std::sync::atomic::AtomicU64,
}

impl<K> Default for KeyedOrder<K> {
    fn default() -> Self {
        KeyedOrder {
            last: Mutex::default(),
            numbered: std::sync::atomic::AtomicU64::default(),
        }
    }
}

/// A command's place in its key's queue: wait for `before`, apply, then let the next go.
pub struct Place<K> {
    key: K,
    number: u64,
    before: Option<Turn>,
    done: oneshot::Sender<()>,
}

impl<K: Hash + Eq + Clone> KeyedOrder<K> {
    /// Whether a command under this key is waiting (a new one must queue behind it).
    pub fn is_waiting(&self, key: &K) -> bool {
        let last = self.last.lock().expect("not poisoned");
        last.contains_key(key)
    }

    /// Queues a command under the key: it goes after every one queued before.
    pub fn queue(&self, key: K) -> Place<K> {
        let number = (self.numbered).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (done, turn) = oneshot::channel();
        let mut last = self.last.lock().expect("not poisoned");
        let before = last.insert(key.clone(), (number, turn.shared()));
        Place {
            key,
            number,
            before: before.map(|(_, turn)| turn),
            done,
        }
    }

    /// Lets the next command under the key go; forgets the key when none is queued after.
    pub fn finish(&self, place: Place<K>) {
        let mut last = self.last.lock().expect("not poisoned");
        if last
            .get(&place.key)
            .is_some_and(|(number, _)| *number == place.number)
        {
            last.remove(&place.key);
        }
        drop(last);
        // The next may have gone away (its partition stopped): nobody to tell then.
        let _ = place.done.send(());
    }
}

impl<K> Place<K> {
    /// Waits until the command queued before this one is applied.
    pub async fn turn(&mut self) {
        if let Some(before) = self.before.take() {
            // An error is a command before that was dropped unapplied (shutdown): go on.
            let _ = before.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::drop::model::Tenant;

    fn tenant() -> TenantRef {
        Arc::new(Tenant {
            id: Uuid::nil(),
            region: "GMS".into(),
            major_version: 83,
            minor_version: 1,
        })
    }

    #[tokio::test]
    async fn a_drops_commands_go_in_the_order_they_queued_and_others_do_not_wait() {
        let order = DropOrder::default();
        let (seven, eight) = ((tenant(), 7), (tenant(), 8));
        assert!(!order.is_waiting(&seven));
        let mut first = order.queue(seven.clone());
        assert!(order.is_waiting(&seven));
        assert!(!order.is_waiting(&eight), "another drop");
        let mut second = order.queue(seven.clone());
        first.turn().await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.turn()).await;
        assert!(waiting.is_err(), "the second waits for the first");
        order.finish(first);
        assert!(order.is_waiting(&seven), "the second is still queued");
        second.turn().await;
        order.finish(second);
        assert!(!order.is_waiting(&seven), "forgotten once the last is done");
    }

    #[tokio::test]
    async fn a_command_dropped_before_its_turn_does_not_hold_the_next() {
        let order = DropOrder::default();
        let first = order.queue((tenant(), 7));
        let mut second = order.queue((tenant(), 7));
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), second.turn())
            .await
            .expect("not held");
    }
}
