//! Where drops live. A store loads what a rule of `drop::transition` reads and commits the
//! `Transition` the rule returns, atomically: the rules decide once, for every store, and the
//! stores only keep drops and indexes.
//!
//! The in-memory store hands events to `out` *inside* the atomic step: an event sink that keeps
//! the order it is called in (see `kafka::events`, `kafka::producer`) then publishes a drop's
//! events in the order of its state changes, even when its commands arrive on different
//! partitions and are handled concurrently. A shared store writes them to its outbox in the
//! atomic step instead (relayed to Kafka by `kafka::outbox`), and calls `out` once they are
//! written, for what else must follow (metrics, equipment clean-up).

#[cfg(test)]
mod contract_tests;
mod memory;
pub mod redis;

use std::sync::Arc;

pub use self::memory::MemoryStore;
pub use self::redis::{IdSource, RedisStore, RedisStoreConfig, StoreError};

use crate::drop::command::DropRequest;
use crate::drop::event::Event;
use crate::drop::model::{
    Correlation, Drop, DropId, DropSpec, Location, Millis, Status, TenantRef,
};
use crate::drop::rules::Refusal;
use crate::drop::transition::Asker;

/// Receives the events of a state change, in order (the in-memory store calls it while the
/// change is being made, under its lock).
pub type EventOut<'a> = &'a mut (dyn FnMut(Event) + Send);

/// Who is asking, where, and with which correlation to echo; and where in the command log the
/// command was read, so that a store outliving the process can recognise it when it comes again.
#[derive(Clone, Debug)]
pub struct Origin {
    pub tenant: TenantRef,
    pub location: Location,
    pub correlation: Correlation,
    pub position: Option<LogPosition>,
}

impl Origin {
    /// Who asked, as an answer names them.
    pub fn asker(&self) -> Asker<'_> {
        Asker {
            tenant: &self.tenant,
            location: self.location,
            correlation: &self.correlation,
        }
    }

    /// The drop this origin's spawn makes as `id`: AVAILABLE, dropped `now`, carrying the
    /// spawn's transaction id (its `EXPIRED` echoes it) and environment (all its events carry it).
    pub fn spawned(&self, id: DropId, spec: DropSpec, now: Millis) -> Drop {
        Drop {
            id,
            tenant: self.tenant.clone(),
            location: self.location,
            spec,
            dropped_at: now,
            transaction_id: self.correlation.transaction_id,
            environment: self.correlation.environment.clone(),
            meso_awarded: false,
            status: Status::Available,
        }
    }
}

/// A command's place in its partition of the command topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// Names the consumer group, topic and partition.
    pub partition: Arc<str>,
    pub offset: i64,
    /// The group's committed offset of the partition, as the broker confirmed it to the reader
    /// (`i64::MIN` when none is known). Records come again only from there on.
    pub committed: i64,
    /// Applied beside the partition, after it went on (a command that waited for a peer): its
    /// partition may have been committed past it meanwhile, by this reader or by one that
    /// took the partition over and applied it again.
    pub late: bool,
}

impl LogPosition {
    /// Whether a record at an offset the applied record counts as applied is of a log that
    /// started again, given the highest committed offset known for the partition.
    ///
    /// A partition's log can start again (topic deleted and re-created, a broker that lost its
    /// log): its offsets then repeat, and the applied record would skip the new commands as if
    /// they were old ones. Records come again from the group's committed offset, never from
    /// below it: a record below an offset that was committed is of another log. (An operator
    /// who rewinds the group on purpose gets the same: the commands are applied again.)
    /// A late command (`late`) is never taken for one of another log: below the committed
    /// offset, it was applied and committed while it waited (see `was_committed_while_late`).
    pub fn is_of_another_log(&self, committed: i64) -> bool {
        !self.late && self.offset < committed
    }

    /// Whether a late command finds its partition committed past it: it was applied meanwhile
    /// (by the reader that took the partition over while it waited), so it must not be again.
    pub fn was_committed_while_late(&self, committed: i64) -> bool {
        self.late && self.offset < committed
    }

    /// The same position, for a command applied beside its partition.
    pub fn late(self) -> LogPosition {
        LogPosition { late: true, ..self }
    }
}

/// Where the drops live: chosen once, at start-up. Each command is one atomic step: the store
/// loads what the rule of `drop::transition` reads and commits the transition the rule returns,
/// under its lock (in memory) or by a script that first checks that what was read is still so
/// (Redis). The in-memory store does it under a lock and returns; the
/// shared store speaks Redis asynchronously, so a partition waiting on Redis holds no thread.
pub enum DropStore {
    Memory(MemoryStore),
    Shared(Box<RedisStore>),
}

impl DropStore {
    /// Creates a drop (`CREATED`), first expiring the map's oldest AVAILABLE drops (`EXPIRED`)
    /// when the map is full. Refused, with no event, when the store holds its most drops.
    pub async fn spawn(
        &self,
        origin: &Origin,
        spec: DropSpec,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<Drop, Refusal> {
        match self {
            DropStore::Memory(store) => store.spawn(origin, spec, now, out),
            DropStore::Shared(store) => store.spawn(origin, spec, now, out).await,
        }
    }

    /// Makes the change a command asks of the drop it names (`Rules::on_drop`); its events
    /// go to `out`.
    pub async fn on_drop(
        &self,
        origin: &Origin,
        request: &DropRequest,
        now: Millis,
        out: EventOut<'_>,
    ) -> Result<(), Refusal> {
        match self {
            DropStore::Memory(store) => store.on_drop(origin, request, now, out),
            DropStore::Shared(store) => store.on_drop(origin, request, now, out).await,
        }
    }

    /// Expires the drops whose time came by `now` (reservations lapse by themselves, see
    /// `Rules::holding`). Returns how many expired. Costs what comes due, not what lies on the ground.
    pub async fn expire_due(&self, now: Millis, out: EventOut<'_>) -> usize {
        match self {
            DropStore::Memory(store) => store.expire_due(now, out),
            DropStore::Shared(store) => store.expire_due(now, out).await,
        }
    }

    /// What becomes of the drops as the process stops; returns how many expired. A store that
    /// forgets everything expires them all, so no client keeps a drop that no longer exists; a
    /// shared store keeps them for the other instances and the next start.
    pub fn expire_on_shutdown(&self, out: EventOut<'_>) -> usize {
        match self {
            DropStore::Memory(store) => store.expire_on_shutdown(out),
            DropStore::Shared(_) => 0,
        }
    }

    /// A drop of this tenant, by id, as it is at `now` (none once its reservation lapsed).
    pub async fn get(&self, tenant: &TenantRef, id: u32, now: Millis) -> Option<Drop> {
        match self {
            DropStore::Memory(store) => store.get(tenant, id, now),
            DropStore::Shared(store) => store.get(tenant, id, now).await,
        }
    }

    /// A map's drops, sorted by id, as they are at `now`.
    pub async fn list(&self, tenant: &TenantRef, location: Location, now: Millis) -> Vec<Drop> {
        match self {
            DropStore::Memory(store) => store.list(tenant, location, now),
            DropStore::Shared(store) => store.list(tenant, location, now).await,
        }
    }

    /// How many drops lie on all maps of all tenants, how many of them are reserved at `now`,
    /// and how many events wait in the outbox.
    pub async fn counts(&self, now: Millis) -> DropCounts {
        match self {
            DropStore::Memory(store) => store.counts(now),
            DropStore::Shared(store) => store.counts(now).await,
        }
    }

    /// Whether the command at `position` took effect already (the shared store records
    /// applied commands; the in-memory store answers no).
    pub async fn was_applied(&self, position: &LogPosition) -> bool {
        match self {
            DropStore::Memory(_) => false,
            DropStore::Shared(store) => store.was_applied(position).await,
        }
    }

    /// Notes the group's committed offset of a partition (`LogPosition::partition`), for a
    /// store that records applied commands: it tells a record met again from one of a log
    /// that started again (`LogPosition::is_of_another_log`), also to a reader that comes
    /// after this one.
    pub async fn note_committed(&self, partition: &str, committed: i64) {
        if let DropStore::Shared(store) = self {
            store.note_committed(partition, committed).await;
        }
    }

    /// Whether the store answers now (for readiness): the in-memory store always does.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            DropStore::Memory(_) => Ok(()),
            DropStore::Shared(store) => store.check().await,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub live: usize,
    pub reserved: usize,
    /// Events written to a shared store's outbox and not yet acknowledged by the broker.
    pub outbox: usize,
}
