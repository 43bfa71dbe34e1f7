//! The names of our Redis keys, all under one prefix (`REDIS_KEY_PREFIX`), so that several
//! deployments (or test runs) can share a Redis without meeting.
//!
//! A map's drops are one hash, named by the whole tenant (id, region, versions: contract §2)
//! and carrying a hash tag of the map: on a Redis Cluster a map stays on one slot. The id index,
//! the deadline index, the live count, the applied offsets and the outbox are shared by all maps.

use crate::drop::model::{Location, Tenant};

/// Events of a drop always go to the same outbox stream (by drop id), which keeps their order.
pub const OUTBOX_SHARDS: u32 = 8;

/// The names, the fixed ones written once: a step names several of them, and the relay reads
/// every outbox stream each round.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    ids: String,
    deadlines: String,
    reservations: String,
    live: String,
    outboxes: Vec<String>,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            ids: format!("{prefix}:ids"),
            deadlines: format!("{prefix}:deadlines"),
            reservations: format!("{prefix}:reservations"),
            live: format!("{prefix}:live"),
            outboxes: (0..OUTBOX_SHARDS)
                .map(|shard| format!("{prefix}:outbox:{shard}"))
                .collect(),
        }
    }

    /// Hash: drop id → drop record, for every drop lying on the map. Named by the whole tenant:
    /// tenants sharing an id but not a region or version must not share a map (its cap would
    /// evict one's drops for the other's). The region is escaped (`tenant_name`), so no region
    /// can break the hash tag or make two tenants' names meet. An instance of a map is a map of
    /// its own (contract-head §1); the nil instance keeps the name maps had before instances,
    /// so that drops written by an older version are found after an upgrade.
    pub fn map(&self, tenant: &Tenant, location: Location) -> String {
        let Location {
            world_id,
            channel_id,
            map_id,
            instance,
        } = location;
        let tenant = tenant_name(tenant);
        let prefix = &self.prefix;
        if instance.is_nil() {
            format!("{prefix}:tenant:{tenant}:map:{{{tenant}/{world_id}/{channel_id}/{map_id}}}")
        } else {
            format!(
                "{prefix}:tenant:{tenant}:map:{{{tenant}/{world_id}/{channel_id}/{map_id}/{instance}}}"
            )
        }
    }

    /// Hash: drop id → the key of its map. Also the record of which ids are in use.
    pub fn ids(&self) -> &str {
        &self.ids
    }

    /// The last id handed out.
    pub fn last_id(&self) -> String {
        format!("{}:last-id", self.prefix)
    }

    /// Sorted set: drop id, scored by when the sweep must next look at it (`Rules::due`).
    pub fn deadlines(&self) -> &str {
        &self.deadlines
    }

    /// Sorted set: drop id, scored by when its reservation was made, for every reserved drop.
    pub fn reservations(&self) -> &str {
        &self.reservations
    }

    /// How many drops lie on all maps (against `MAX_LIVE_DROPS`).
    pub fn live(&self) -> &str {
        &self.live
    }

    /// Sorted set: the applied offsets of one partition of the command topic (see `applied`).
    pub fn applied(&self, partition: &str) -> String {
        format!("{}:applied:{partition}", self.prefix)
    }

    /// Stream: the events written but not yet acknowledged by the broker (`shard` below
    /// `OUTBOX_SHARDS`).
    pub fn outbox(&self, shard: u32) -> &str {
        &self.outboxes[shard as usize]
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

/// A tenant in a key: `<id>/<region>/<major>.<minor>`, the region percent-encoded (every byte
/// but ASCII letters, digits, `-`, `_` and `.`). The region is any text up to 32 bytes: a `{`
/// or `}` in it would move the Cluster hash tag, and a `/` or `:` could make two tenants' names
/// one. Escaped, the name holds neither braces nor a separator of ours, and different tenants
/// always have different names.
fn tenant_name(tenant: &Tenant) -> String {
    let mut region = String::with_capacity(tenant.region.len());
    for byte in tenant.region.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            region.push(char::from(byte));
        } else {
            region.push_str(&format!("%{byte:02X}"));
        }
    }
    format!(
        "{}/{region}/{}.{}",
        tenant.id, tenant.major_version, tenant.minor_version
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use uuid::Uuid;

    use super::*;

    fn tenant(region: &str, major_version: u16, minor_version: u16) -> Tenant {
        Tenant {
            id: Uuid::from_u128(7),
            region: region.to_owned(),
            major_version,
            minor_version,
        }
    }

    /// The part of a key Redis Cluster hashes: from the first `{` to the first `}` after it.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("a hash tag");
        let close = open + key[open..].find('}').expect("closed");
        &key[open + 1..close]
    }

    #[test]
    fn a_maps_key_names_the_whole_tenant_whatever_its_region() {
        let keys = Keys::new("atlas-drops");
        let here = Location {
            world_id: 1,
            channel_id: 2,
            map_id: 100_000_000,
            instance: Uuid::nil(),
        };
        let tenants = [
            tenant("GMS", 83, 1),
            tenant("GMS", 84, 1),
            tenant("GMS", 83, 2),
            tenant("EMS", 83, 1),
            tenant("G}S", 83, 1),
            tenant("G{S", 83, 1),
            tenant("{GMS}", 83, 1),
            tenant("G/1/2", 83, 1),
            tenant("G%2F1%2F2", 83, 1),
            tenant("G:S", 83, 1),
            tenant("Ünïcode", 83, 1),
        ];
        let names: HashSet<String> = tenants.iter().map(|t| keys.map(t, here)).collect();
        assert_eq!(names.len(), tenants.len(), "{names:#?}");
        for key in &names {
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert_eq!(key.matches('}').count(), 1, "{key}");
            assert!(hash_tag(key).ends_with("/1/2/100000000"), "{key}");
        }
        assert_eq!(
            keys.map(&tenants[0], here),
            "atlas-drops:tenant:00000000-0000-0000-0000-000000000007/GMS/83.1:map:\
             {00000000-0000-0000-0000-000000000007/GMS/83.1/1/2/100000000}"
        );
        let instanced = Location {
            instance: Uuid::from_u128(0xab),
            ..here
        };
        assert_eq!(
            keys.map(&tenants[0], instanced),
            "atlas-drops:tenant:00000000-0000-0000-0000-000000000007/GMS/83.1:map:\
             {00000000-0000-0000-0000-000000000007/GMS/83.1/1/2/100000000/\
             00000000-0000-0000-0000-0000000000ab}"
        );
        assert_eq!(
            tenant_name(&tenants[4]),
            "00000000-0000-0000-0000-000000000007/G%7DS/83.1"
        );
    }
}
