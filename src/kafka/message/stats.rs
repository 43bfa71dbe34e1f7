//! The sixteen equipment stats as the newer peers write them, flattened into a body after its
//! other fields, in the contract's order (contract-head §2): read from spawns, written in
//! `RESERVED`, `PICKED_UP` and the REST attributes. Missing ones read as 0; a negative, a
//! fraction or a value above 65535 is bad input (serde's `u16`).

use serde::{Deserialize, Serialize};

use crate::drop::model::EquipmentStats;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StatsWire {
    strength: u16,
    dexterity: u16,
    intelligence: u16,
    luck: u16,
    hp: u16,
    mp: u16,
    weapon_attack: u16,
    magic_attack: u16,
    weapon_defense: u16,
    magic_defense: u16,
    accuracy: u16,
    avoidability: u16,
    hands: u16,
    speed: u16,
    jump: u16,
    slots: u16,
}

impl From<StatsWire> for EquipmentStats {
    fn from(wire: StatsWire) -> EquipmentStats {
        EquipmentStats([
            wire.strength,
            wire.dexterity,
            wire.intelligence,
            wire.luck,
            wire.hp,
            wire.mp,
            wire.weapon_attack,
            wire.magic_attack,
            wire.weapon_defense,
            wire.magic_defense,
            wire.accuracy,
            wire.avoidability,
            wire.hands,
            wire.speed,
            wire.jump,
            wire.slots,
        ])
    }
}

impl From<EquipmentStats> for StatsWire {
    fn from(EquipmentStats(values): EquipmentStats) -> StatsWire {
        let [strength, dexterity, intelligence, luck, hp, mp, weapon_attack, magic_attack, weapon_defense, magic_defense, accuracy, avoidability, hands, speed, jump, slots] =
            values;
        StatsWire {
            strength,
            dexterity,
            intelligence,
            luck,
            hp,
            mp,
            weapon_attack,
            magic_attack,
            weapon_defense,
            magic_defense,
            accuracy,
            avoidability,
            hands,
            speed,
            jump,
            slots,
        }
    }
}
