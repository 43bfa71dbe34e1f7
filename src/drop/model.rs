//! The plain data of a drop: what it is, where it lies, who owns it, and its state.
//!
//! Types here cannot hold values the contract forbids (a drop that is both item and meso,
//! an id outside the id range): they are built once, at the edge, by parsing.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use uuid::Uuid;

/// Milliseconds since the Unix epoch. The domain never reads a clock: callers pass `now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    pub fn saturating_add(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A drop's id, as a source of ours hands it out: our own counter's `FIRST..=LAST`
/// (1000000001..=2000000000, wrapping: contract §5), or the Atlas allocator's
/// `ATLAS_FIRST..=ATLAS_LAST` (1000000..=2147483647, shared with monsters and reactors:
/// contract-head §7), which holds the first.
///
/// One type admits both ranges, whichever source the service runs with: the type says what can
/// be a drop id of ours at all, and is parsed once, at the edge (a command's id, a stored
/// record). Whether a drop has the id is the store's to say, by (tenant, id): an id of the other
/// source's range names no drop there, exactly as an id of the right range that nobody holds.
/// A range that followed the setting would only move that answer from the lookup to the parse,
/// and make a stored record unreadable to an instance of the other setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DropId(u32);

impl DropId {
    /// The first id of our own counter.
    pub const FIRST: DropId = DropId(1_000_000_001);
    /// The last id of our own counter, after which it wraps to `FIRST`.
    pub const LAST: DropId = DropId(2_000_000_000);
    /// The Atlas allocator's first id: a fresh counter starts here.
    pub const ATLAS_FIRST: DropId = DropId(1_000_000);
    /// The Atlas allocator's last id (the client's object ids are `i32`).
    pub const ATLAS_LAST: DropId = DropId(i32::MAX as u32);

    /// Ids that no source of ours hands out are refused: they can never name a drop.
    pub fn new(raw: u32) -> Option<DropId> {
        (Self::ATLAS_FIRST.0..=Self::ATLAS_LAST.0)
            .contains(&raw)
            .then_some(DropId(raw))
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// How many ids our own counter's range holds.
    pub const COUNT: u64 = (Self::LAST.0 - Self::FIRST.0 + 1) as u64;

    /// How fast the clock moves the ids of a store that forgets them at a restart (see
    /// `floor`): 10 a millisecond, 10 000 a second, above the ~7 500 spawns a second the
    /// service was measured to take at most; once round the range in `COUNT / IDS_PER_MS` ms
    /// (about 28 hours).
    pub const IDS_PER_MS: u64 = 10;

    /// The id `position` steps after `FIRST`, round the range as often as it takes: ids wrap
    /// from `LAST` back to `FIRST`.
    pub fn at(position: u64) -> DropId {
        DropId(Self::FIRST.0 + (position % Self::COUNT) as u32)
    }

    /// Where this id stands in the first round of the range: `DropId::at(id.position()) == id`.
    pub fn position(self) -> u64 {
        u64::from(self.0 - Self::FIRST.0)
    }

    /// The least position of an id handed out at `now` by a store that remembers nothing across
    /// a restart (contract §5: ids do not repeat across a restart). Its ids follow the clock:
    /// each is the later of the next after the last and this floor, which moves `IDS_PER_MS`
    /// a millisecond. Spawning slower than that, the store's ids stay at the floor of their
    /// time, so an id handed out at `t` comes again only from `t` plus one round of the range
    /// (~28 h) on, in this run or a later one: a run started later starts past every id an
    /// earlier run handed out since. Spawning faster, the ids run ahead of the floor by the
    /// excess, and a restart soon after may meet that many of them again. The floor assumes a
    /// clock that does not go back: a wall clock stepped back between two runs moves the second
    /// run's ids back as far.
    pub fn floor(now: Millis) -> u64 {
        now.0.saturating_mul(Self::IDS_PER_MS)
    }
}

impl fmt::Display for DropId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The tenant a command or drop belongs to. Drops of one tenant are invisible to every other.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub id: Uuid,
    pub region: String,
    pub major_version: u16,
    pub minor_version: u16,
}

/// Kafka and HTTP carry a tenant's id and region alike, as text; both read them here.
impl Tenant {
    pub const REGION_MAX_BYTES: usize = 32;

    /// The id must be a 36-character UUID.
    pub fn parse_id(text: &str) -> Result<Uuid, String> {
        Some(text)
            .filter(|text| text.len() == 36)
            .and_then(|text| Uuid::try_parse(text).ok())
            .ok_or_else(|| "header TENANT_ID is not a 36-character UUID".to_owned())
    }

    /// The region is 1 to `REGION_MAX_BYTES` bytes of text (contract §2). Measured in bytes, not
    /// characters: it travels in every event's headers and names the store's keys.
    pub fn parse_region(text: &str) -> Result<String, String> {
        if text.is_empty() {
            return Err("header REGION is empty".to_owned());
        }
        if text.len() > Self::REGION_MAX_BYTES {
            return Err(format!(
                "header REGION is {} bytes, more than {}",
                text.len(),
                Self::REGION_MAX_BYTES
            ));
        }
        Ok(text.to_owned())
    }
}

/// Tenants are shared by every drop and event of theirs, so they are reference counted.
pub type TenantRef = Arc<Tenant>;

/// Where a drop lies: world, channel, map and the map's instance (contract-head §1). Everything
/// the rules say of "the map" means this whole location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub world_id: u8,
    pub channel_id: u8,
    pub map_id: u32,
    /// The nil UUID for a map that is not instanced (every older peer's).
    pub instance: Uuid,
}

/// The sixteen stats an equip drop may carry inline (contract-head §2), in the contract's order:
/// strength, dexterity, intelligence, luck, hp, mp, weapon attack, magic attack, weapon defense,
/// magic defense, accuracy, avoidability, hands, speed, jump, slots. All zero for anything else,
/// and for an equip whose stats live in the equipment service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EquipmentStats(pub [u16; 16]);

impl EquipmentStats {
    pub fn is_zero(&self) -> bool {
        *self == EquipmentStats::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Point {
    pub x: i16,
    pub y: i16,
}

/// What a drop holds: an item (possibly an equip, with its equipment id or its stats inline) or
/// mesos, never both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    Item {
        item_id: NonZeroU32,
        equipment_id: u32,
        quantity: u32,
        stats: EquipmentStats,
    },
    Meso {
        amount: NonZeroU32,
    },
}

impl Contents {
    /// Builds the contents from the wire's four numbers, refusing "both" and "neither".
    pub fn new(
        item_id: u32,
        equipment_id: u32,
        quantity: u32,
        mesos: u32,
    ) -> Result<Contents, &'static str> {
        match (NonZeroU32::new(item_id), NonZeroU32::new(mesos)) {
            (Some(item_id), None) => Ok(Contents::Item {
                item_id,
                equipment_id,
                quantity,
                stats: EquipmentStats::default(),
            }),
            (None, Some(amount)) => Ok(Contents::Meso { amount }),
            (Some(_), Some(_)) => Err("a drop holds an item or mesos, not both"),
            (None, None) => Err("a drop must hold an item or mesos"),
        }
    }

    /// An equip item: item id / 1 000 000 = 1 (contract §5).
    pub fn is_equip(&self) -> bool {
        matches!(self, Contents::Item { item_id, .. } if item_id.get() / 1_000_000 == 1)
    }

    /// The same item, carrying the equipment created for it.
    pub fn with_equipment(mut self, equipment: u32) -> Contents {
        if let Contents::Item { equipment_id, .. } = &mut self {
            *equipment_id = equipment;
        }
        self
    }

    /// The same item, carrying `stats` inline. Mesos have none: they stay as they are.
    pub fn with_stats(mut self, inline: EquipmentStats) -> Contents {
        if let Contents::Item { stats, .. } = &mut self {
            *stats = inline;
        }
        self
    }

    /// The stats inline (all zero for mesos).
    pub fn stats(&self) -> EquipmentStats {
        match self {
            Contents::Item { stats, .. } => *stats,
            Contents::Meso { .. } => EquipmentStats::default(),
        }
    }

    pub fn item_id(&self) -> u32 {
        match self {
            Contents::Item { item_id, .. } => item_id.get(),
            Contents::Meso { .. } => 0,
        }
    }

    pub fn equipment_id(&self) -> u32 {
        match self {
            Contents::Item { equipment_id, .. } => *equipment_id,
            Contents::Meso { .. } => 0,
        }
    }

    pub fn quantity(&self) -> u32 {
        match self {
            Contents::Item { quantity, .. } => *quantity,
            Contents::Meso { .. } => 0,
        }
    }

    pub fn meso(&self) -> u32 {
        match self {
            Contents::Item { .. } => 0,
            Contents::Meso { amount } => amount.get(),
        }
    }
}

/// Who dropped it (a monster or a character) and from where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dropper {
    pub id: u32,
    pub position: Point,
}

/// Opaque correlation carried from a command to the events it causes: the transaction id, the
/// W3C trace context headers, passed on unchanged, and the Atlas environment (contract-head §6).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Correlation {
    pub transaction_id: Uuid,
    pub traceparent: Option<Vec<u8>>,
    pub tracestate: Option<Vec<u8>>,
    /// The command's `ENVIRONMENT` (else this instance's `ATLAS_ENVIRONMENT`); on an event about a
    /// drop, the drop's own (`Event::about`).
    pub environment: Option<Environment>,
}

/// An Atlas environment's name (`ENVIRONMENT` header): shared by a drop and all its events.
pub type Environment = Arc<str>;

/// The longest environment name taken: a drop keeps it and every event of the drop carries it,
/// so a longer one is refused as bad input rather than copied into every event.
pub const ENVIRONMENT_MAX_BYTES: usize = 128;

/// An environment's name: 1 to `ENVIRONMENT_MAX_BYTES` bytes of text.
pub fn parse_environment(text: &str) -> Result<Environment, String> {
    if text.is_empty() || text.len() > ENVIRONMENT_MAX_BYTES {
        return Err(format!(
            "an environment is 1 to {ENVIRONMENT_MAX_BYTES} bytes, not {}",
            text.len()
        ));
    }
    Ok(text.into())
}

/// Everything a spawn command says about the drop to create, beyond its tenant and map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropSpec {
    pub contents: Contents,
    /// 0: owner only for a while, 1: owner's party for a while, 2: free for all, 3: explosive (free for all).
    pub drop_type: u8,
    pub position: Point,
    pub owner_id: u32,
    pub owner_party_id: u32,
    pub dropper: Dropper,
    pub player_drop: bool,
    pub mod_: u8,
}

/// A reservation held on a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub character_id: u32,
    /// -1 for a manual pick-up, the pet's slot for a pet's.
    pub pet_slot: i8,
    pub reserved_at: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Available,
    Reserved(Reservation),
}

/// A drop lying on a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drop {
    pub id: DropId,
    pub tenant: TenantRef,
    pub location: Location,
    pub spec: DropSpec,
    pub dropped_at: Millis,
    /// The spawning command's transaction id: `EXPIRED` echoes it.
    pub transaction_id: Uuid,
    /// The spawning command's environment: every event of the drop carries it.
    pub environment: Option<Environment>,
    /// Its meso was shared out (`MESO_AWARDED`): a later reservation, after a cancel or a lapse,
    /// awards nobody again, so no meso is credited twice.
    pub meso_awarded: bool,
    /// As last changed; whether a reservation has lapsed since is `Rules::holding`'s to say.
    pub status: Status,
}
