//! The order of the commands on one drop while one of them waits for a peer, and one command
//! of a partition applied at a time.
//!
//! A meso drop's reservation asks the party service before it is applied, beside the partition
//! (contract-head §4): the partition's other commands go on meanwhile. Commands on *that* drop
//! must not overtake it (a second reservation would win a race it lost, a pick-up would find no
//! reservation), so they queue behind it, each in turn, and only that drop waits. A drop's
//! commands may come on several partitions (peers key reservations by drop id, the rest by
//! map): the queue is the handler's, for all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::{FutureExt, Shared};
use tokio::sync::oneshot;

use crate::drop::model::TenantRef;

/// A drop as its tenant's commands name it.
type DropKey = (TenantRef, u32);

/// Resolves when the command before is applied (or given up).
type Turn = Shared<oneshot::Receiver<()>>;

#[derive(Default)]
pub struct DropOrder {
    /// The last command queued on each drop that has one waiting, with its number.
    last: Mutex<HashMap<DropKey, (u64, Turn)>>,
    numbered: std::sync::atomic::AtomicU64,
}

/// A command's place in its drop's queue: wait for `before`, apply, then let the next go.
pub struct Place {
    key: DropKey,
    number: u64,
    before: Option<Turn>,
    done: oneshot::Sender<()>,
}

impl DropOrder {
    /// Whether a command on this drop is waiting (a new one must queue behind it).
    pub fn is_waiting(&self, tenant: &TenantRef, drop_id: u32) -> bool {
        let last = self.last.lock().expect("not poisoned");
        last.contains_key(&(tenant.clone(), drop_id))
    }

    /// Queues a command on the drop: it goes after every one queued before.
    pub fn queue(&self, tenant: &TenantRef, drop_id: u32) -> Place {
        let key = (tenant.clone(), drop_id);
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

    /// Lets the next command on the drop go; forgets the drop when none is queued after.
    pub fn finish(&self, place: Place) {
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

impl Place {
    /// Waits until the command queued before this one is applied.
    pub async fn turn(&mut self) {
        if let Some(before) = self.before.take() {
            // An error is a command before that was dropped unapplied (shutdown): go on.
            let _ = before.await;
        }
    }
}

/// One command of a partition applied at a time, whether in the partition's own turn or by a
/// future that waited beside it for a peer: the shared store's transaction watches the
/// partition's applied record, so two commands of one partition applied at once only undo each
/// other's transaction and try again (measured: a closed loop of meso reservations, each waiting
/// for the party service, fell to 131 lifecycles/s with its transactions retried over and over).
#[derive(Default)]
pub struct OnePerPartition {
    turns: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
}

impl OnePerPartition {
    /// Waits for the partition's turn to apply a command; the turn lasts as long as the guard.
    pub async fn turn(&self, partition: &Arc<str>) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self.turns.lock().expect("not poisoned");
            turns.entry(partition.clone()).or_default().clone()
        };
        turn.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
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
        let order = Arc::new(DropOrder::default());
        let tenant = tenant();
        assert!(!order.is_waiting(&tenant, 7));
        let mut first = order.queue(&tenant, 7);
        assert!(order.is_waiting(&tenant, 7));
        assert!(!order.is_waiting(&tenant, 8), "another drop");
        let mut second = order.queue(&tenant, 7);
        first.turn().await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.turn()).await;
        assert!(waiting.is_err(), "the second waits for the first");
        order.finish(first);
        assert!(order.is_waiting(&tenant, 7), "the second is still queued");
        second.turn().await;
        order.finish(second);
        assert!(
            !order.is_waiting(&tenant, 7),
            "forgotten once the last is done"
        );
    }

    #[tokio::test]
    async fn a_command_dropped_before_its_turn_does_not_hold_the_next() {
        let order = DropOrder::default();
        let tenant = tenant();
        let first = order.queue(&tenant, 7);
        let mut second = order.queue(&tenant, 7);
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), second.turn())
            .await
            .expect("not held");
    }
}
