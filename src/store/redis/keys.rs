//! The names of our Redis keys, all under one prefix (`REDIS_KEY_PREFIX`), so that several
//! deployments (or test runs) can share a Redis without meeting.
//!
//! A map's drops are one hash, named by tenant and carrying a hash tag of the map: on a Redis
//! Cluster a map stays on one slot. The id index, the deadline index, the live count, the
//! applied offsets and the outbox are shared by all maps.

use crate::drop::model::{Location, Tenant};

/// Events of a drop always go to the same outbox stream (by drop id), which keeps their order.
pub const OUTBOX_SHARDS: u32 = 8;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// Hash: drop id → drop record, for every drop lying on the map.
    pub fn map(&self, tenant: &Tenant, location: Location) -> String {
        let Location {
            world_id,
            channel_id,
            map_id,
        } = location;
        let tenant = tenant.id;
        format!(
            "{}:tenant:{tenant}:map:{{{tenant}/{world_id}/{channel_id}/{map_id}}}",
            self.prefix
        )
    }

    /// Hash: drop id → the key of its map. Also the record of which ids are in use.
    pub fn ids(&self) -> String {
        format!("{}:ids", self.prefix)
    }

    /// The last id handed out.
    pub fn last_id(&self) -> String {
        format!("{}:last-id", self.prefix)
    }

    /// Sorted set: drop id, scored by when the sweep must next look at it (`Rules::due`).
    pub fn deadlines(&self) -> String {
        format!("{}:deadlines", self.prefix)
    }

    /// Sorted set: drop id, scored by when its reservation was made, for every reserved drop.
    pub fn reservations(&self) -> String {
        format!("{}:reservations", self.prefix)
    }

    /// How many drops lie on all maps (against `MAX_LIVE_DROPS`).
    pub fn live(&self) -> String {
        format!("{}:live", self.prefix)
    }

    /// Sorted set: the applied offsets of one partition of the command topic (see `applied`).
    pub fn applied(&self, partition: &str) -> String {
        format!("{}:applied:{partition}", self.prefix)
    }

    /// Stream: the events written but not yet acknowledged by the broker.
    pub fn outbox(&self, shard: u32) -> String {
        format!("{}:outbox:{shard}", self.prefix)
    }

    /// Which instance relays an outbox stream now; expires unless renewed.
    pub fn outbox_relay(&self, shard: u32) -> String {
        format!("{}:outbox:{shard}:relay", self.prefix)
    }

    /// Hash: what the relay of an outbox stream handed to the broker: `through` the last entry
    /// id sent, and for each partition of the event topic (`p<n>`) the highest offset the
    /// broker acknowledged. A relay taking the stream over learns from it what may be on the
    /// topic already.
    pub fn outbox_sent(&self, shard: u32) -> String {
        format!("{}:outbox:{shard}:sent", self.prefix)
    }
}
