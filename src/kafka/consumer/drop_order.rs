//! Commands that must keep their order while others overtake them: a queue per key.
//!
//! **A drop's commands** (`DropOrder`). A meso drop's reservation asks the party service before
//! it is applied, beside the partition (contract-head §4): the partition's other commands go on
//! meanwhile. Commands on *that* drop must not overtake it (a second reservation would win a
//! race it lost, a pick-up would find no reservation), so they queue behind it, each in turn,
//! and only that drop waits. A drop's commands may come on several partitions (peers key
//! reservations by drop id, the rest by map): the queue is the handler's, for all of them.
//!
//! **A partition's commands** (`Lanes`). A partition applies its commands at once (the shared
//! store's steps wait on Redis, and one step at a time left Redis idle between them), but those
//! on one drop in the order they came, and a map's spawns in the order they came: on a full map
//! each pushes out the oldest drop, its step guarding the whole map, so spawns at once would fail
//! each other's guards and decide again. (A spawn that waits for a peer, an equip's equipment or
//! a character drop's floor, waits beside its lane, as any such command does.) A spawn does not
//! wait for the commands on its map's drops, nor they for it: each step guards what it read (a
//! spawn with room, that the map has room still), and no peer may rely on the partition order
//! across command types (contract §1). One map's commands in turn, each a round trip to Redis,
//! made a busy map's commands queue behind each other: at 65 commands a second on a map, most
//! of the shared store's latency. What that costs: on a full map, a spawn's step guards every
//! drop of the map, and a pick-up on the map meanwhile makes it decide again.

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
/// What a command keeps its order with (see `Lanes`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The commands on the drop it names.
    Drop(DropKey),
    /// The spawns on its map.
    Spawns(TenantRef, Location),
}
/// The queue of each lane with commands of a partition being applied.
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

    /// A drop's commands wait for each other, and a map's spawns; a spawn and a command on a
    /// drop of its map, or commands on two drops of a map, do not.
    #[tokio::test]
    async fn lanes_order_a_drops_commands_and_a_maps_spawns_only() {
        let lanes = Lanes::default();
        let map = Location {
            world_id: 0,
            channel_id: 1,
            map_id: 100_000_000,
            instance: Uuid::nil(),
        };
        let spawns = || Lane::Spawns(tenant(), map);
        let on_drop = |id| Lane::Drop((tenant(), id));
        let mut spawn = lanes.queue(spawns());
        let mut seven = lanes.queue(on_drop(7));
        let mut eight = lanes.queue(on_drop(8));
        let mut seven_again = lanes.queue(on_drop(7));
        let mut spawn_again = lanes.queue(spawns());
        let at_once = Duration::from_millis(50);
        for first in [&mut spawn, &mut seven, &mut eight] {
            tokio::time::timeout(at_once, first.turn())
                .await
                .expect("goes at once");
        }
        let waits = tokio::time::timeout(at_once, seven_again.turn()).await;
        assert!(
            waits.is_err(),
            "the drop's second command waits for its first"
        );
        let waits = tokio::time::timeout(at_once, spawn_again.turn()).await;
        assert!(waits.is_err(), "the map's second spawn waits for its first");
        lanes.finish(seven);
        seven_again.turn().await;
        lanes.finish(spawn);
        spawn_again.turn().await;
        for done in [eight, seven_again, spawn_again] {
            lanes.finish(done);
        }
        assert!(!lanes.is_waiting(&spawns()) && !lanes.is_waiting(&on_drop(7)));
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
