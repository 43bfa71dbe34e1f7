//! PLACEHOLDER until the helper's split lands: the meso split (contract-head §4).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MesoAward {
    pub character_id: u32,
    pub amount: u32,
    pub picker: bool,
}

pub fn split(picker: u32, meso: u32, present: &[u32]) -> Vec<MesoAward> {
    let mut ids: Vec<u32> = present.iter().copied().chain([picker]).collect();
    ids.sort_unstable();
    ids.dedup();
    let share = meso / ids.len() as u32;
    let rest = meso - share * ids.len() as u32;
    ids.into_iter()
        .map(|id| MesoAward {
            character_id: id,
            amount: share + if id == picker { rest } else { 0 },
            picker: id == picker,
        })
        .filter(|award| award.amount > 0 || award.picker)
        .collect()
}
