//! What this instance last saw of drop records and of partitions' floors: what its own steps
//! committed, or read and found still so when they committed.
//!
//! A step on a drop it knows decides on what it knows and commits at once, the commit's guards
//! checking that it is still so, exactly as they check what a read gave: one round trip instead
//! of two. When it is not so (another instance changed the drop, the floor rose, the command was
//! applied already), the commit writes nothing, what was known is forgotten, and the step reads
//! and decides again, as after any failed guard. So what is known can be out of date, never
//! wrong in effect.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Most drop records kept; past it all are forgotten (they are learned again as steps commit).
const MOST_RECORDS: usize = 100_000;

/// A drop's record as committed (`None`: the drop is gone from the map).
pub(super) struct RecordChange {
    pub map: String,
    pub id: u32,
    pub record: Option<Vec<u8>>,
}

#[derive(Default)]
pub(super) struct Known {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (map, id) → the drop's record.
    records: HashMap<(String, u32), Vec<u8>>,
    /// Applied record's key → its floor's score (`None`: it has none).
    floors: HashMap<String, Option<f64>>,
}

impl Known {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of drop `id` on `map`, if known.
    pub fn record(&self, map: &str, id: u32) -> Option<Vec<u8>> {
        let inner = self.inner();
        inner.records.get(&(map.to_owned(), id)).cloned()
    }

    /// The floor of the applied record `key`, if known.
    pub fn floor(&self, key: &str) -> Option<Option<f64>> {
        self.inner().floors.get(key).copied()
    }

    /// Forgets what a commit found changed: the drop's record and the floor.
    pub fn forget(&self, map: &str, id: u32, applied: &str) {
        let mut inner = self.inner();
        inner.records.remove(&(map.to_owned(), id));
        inner.floors.remove(applied);
    }

    /// Forgets a floor that may have risen (see `RedisStore::note_committed`).
    pub fn forget_floor(&self, applied: &str) {
        self.inner().floors.remove(applied);
    }

    /// Learns what a commit wrote or found still so: records in order (a later one wins), and
    /// the floor of its applied record.
    pub fn committed(
        &self,
        records: impl IntoIterator<Item = RecordChange>,
        floor: Option<(&str, Option<f64>)>,
    ) {
        let mut inner = self.inner();
        for RecordChange { map, id, record } in records {
            match record {
                Some(record) => {
                    if inner.records.len() >= MOST_RECORDS {
                        inner.records.clear();
                    }
                    inner.records.insert((map, id), record);
                }
                None => {
                    inner.records.remove(&(map, id));
                }
            }
        }
        if let Some((key, floor)) = floor {
            inner.floors.insert(key.to_owned(), floor);
        }
    }
}
