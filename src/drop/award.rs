//! The meso split (contract-head §4): a reserved meso drop is shared by the picker and the members
//! of the picker's party who stand where the drop lies. Who stands there is the party service's
//! answer (`crate::party`); what each one gets is decided here.

use std::num::NonZeroU32;

/// One recipient's part of a meso drop: a `MESO_AWARDED` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MesoAward {
    pub character_id: u32,
    pub amount: u32,
    /// The character who reserved the drop (the newer character service then asks to pick it up).
    pub picker: bool,
}

/// Splits `meso` between the picker and the party members `present` (online at the drop's
/// location; the list may name the picker and name someone twice: nobody is counted twice).
///
/// Every recipient's share is `meso / n`, `n` the recipients; the remainder goes to the picker, so
/// the amounts always add up to `meso` (the older service lost the remainder). A recipient whose
/// share is 0 (more recipients than meso) gets no award; the picker always gets one. The awards
/// are in ascending character id order, as the events go out.
pub fn split_meso(picker: u32, meso: NonZeroU32, present: &[u32]) -> Vec<MesoAward> {
    let mut recipients: Vec<u32> = present.iter().copied().chain([picker]).collect();
    recipients.sort_unstable();
    recipients.dedup();
    let meso = meso.get();
    // Counted in u64, so no list is too long; both results are at most `meso`, and so is their
    // sum (`share * count + remainder == meso`, `count >= 1`): they fit a u32.
    let count = recipients.len() as u64;
    let share = (u64::from(meso) / count) as u32;
    let remainder = (u64::from(meso) % count) as u32;
    recipients
        .into_iter()
        .filter_map(|character_id| {
            let picker = character_id == picker;
            let amount = if picker { share + remainder } else { share };
            (amount > 0).then_some(MesoAward {
                character_id,
                amount,
                picker,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn meso(amount: u32) -> NonZeroU32 {
        NonZeroU32::new(amount).expect("a test's meso is not 0")
    }

    fn award(character_id: u32, amount: u32, picker: bool) -> MesoAward {
        MesoAward {
            character_id,
            amount,
            picker,
        }
    }

    #[test]
    fn alone_the_picker_gets_everything() {
        assert_eq!(split_meso(7, meso(250), &[]), [award(7, 250, true)]);
        // Present means the picker too, as the party service lists them.
        assert_eq!(split_meso(7, meso(250), &[7]), [award(7, 250, true)]);
    }

    #[test]
    fn shares_are_equal_in_ascending_order_and_the_remainder_is_the_pickers() {
        assert_eq!(
            split_meso(5, meso(1000), &[9, 2, 5]),
            [
                award(2, 333, false),
                award(5, 334, true),
                award(9, 333, false)
            ]
        );
        assert_eq!(
            split_meso(9, meso(10), &[1, 2]),
            [award(1, 3, false), award(2, 3, false), award(9, 4, true)]
        );
    }

    #[test]
    fn nobody_is_counted_twice() {
        assert_eq!(
            split_meso(1, meso(100), &[3, 3, 1, 3, 1]),
            [award(1, 50, true), award(3, 50, false)]
        );
    }

    #[test]
    fn more_recipients_than_meso_award_the_picker_alone() {
        // Three recipients, two meso: the share is 0, the remainder (all of it) the picker's.
        assert_eq!(split_meso(8, meso(2), &[3, 4]), [award(8, 2, true)]);
        assert_eq!(split_meso(8, meso(1), &[3]), [award(8, 1, true)]);
    }

    #[test]
    fn extreme_ids_and_amounts_split_without_overflow() {
        assert_eq!(
            split_meso(u32::MAX, meso(u32::MAX), &[0]),
            [
                award(0, u32::MAX / 2, false),
                award(u32::MAX, u32::MAX / 2 + 1, true)
            ]
        );
    }

    proptest! {
        #[test]
        fn every_split_keeps_the_contract(
            picker in 0u32..20,
            // Small amounts too, so that shares of 0 come up.
            amount in prop_oneof![1u32..30, 1u32..=u32::MAX],
            present in proptest::collection::vec(0u32..20, 0..12),
        ) {
            let awards = split_meso(picker, meso(amount), &present);
            let total: u64 = awards.iter().map(|a| u64::from(a.amount)).sum();
            prop_assert_eq!(total, u64::from(amount), "no meso vanishes: {:?}", awards);
            let pickers: Vec<_> = awards.iter().filter(|a| a.picker).collect();
            prop_assert_eq!(pickers.len(), 1, "one picker award: {:?}", awards);
            prop_assert_eq!(pickers[0].character_id, picker);
            prop_assert!(
                awards.windows(2).all(|pair| pair[0].character_id < pair[1].character_id),
                "ascending, nobody twice: {:?}", awards
            );
            prop_assert!(awards.iter().all(|a| a.amount > 0), "no empty award: {:?}", awards);
            prop_assert!(
                awards.iter().all(|a| a.picker || present.contains(&a.character_id)),
                "only the present: {:?}", awards
            );
            // Every non-picker gets the same share, and the picker at least that.
            let mut recipients = present.clone();
            recipients.push(picker);
            recipients.sort_unstable();
            recipients.dedup();
            let share = amount / recipients.len() as u32;
            let others = if share == 0 { 0 } else { recipients.len() - 1 };
            prop_assert_eq!(awards.len(), 1 + others);
            prop_assert!(awards.iter().all(|a| a.amount == share || a.picker && a.amount >= share));
        }
    }
}
