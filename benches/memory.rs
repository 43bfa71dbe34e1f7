//! Resident memory with 1 000 000 live drops across 10 000 maps.
//!
//! `cargo bench --bench memory`

use std::sync::Arc;

use atlas_drops::drop::model::{
    Contents, Correlation, DropSpec, Dropper, Location, Millis, Point, Tenant,
};
use atlas_drops::drop::rules::Rules;
use atlas_drops::store::{MemoryStore, Origin};
use uuid::Uuid;

const MAPS: u32 = 10_000;
const PER_MAP: u32 = 100;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("a number")
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this as a test: keep it small then.
    let per_map = if std::env::args().any(|a| a == "--bench") {
        PER_MAP
    } else {
        1
    };
    let before = rss_kib();
    let store = MemoryStore::new(
        Rules {
            map_drop_limit: 0,
            ..Rules::default()
        },
        0,
    );
    let tenant = Arc::new(Tenant {
        id: Uuid::new_v4(),
        region: "GMS".into(),
        major_version: 83,
        minor_version: 1,
    });
    for map in 0..MAPS {
        let origin = Origin {
            tenant: tenant.clone(),
            location: Location {
                world_id: 0,
                channel_id: (map % 20) as u8,
                map_id: 100_000_000 + map,
                instance: Uuid::nil(),
            },
            correlation: Correlation {
                transaction_id: Uuid::new_v4(),
                ..Correlation::default()
            },
            position: None,
        };
        for drop in 0..per_map {
            let spec = DropSpec {
                contents: Contents::new(2_000_000 + drop, 0, 1, 0).unwrap(),
                drop_type: 2,
                position: Point {
                    x: drop as i16,
                    y: 0,
                },
                owner_id: 0,
                owner_party_id: 0,
                dropper: Dropper::default(),
                player_drop: false,
                mod_: 1,
            };
            store
                .spawn(&origin, spec, Millis(u64::from(drop)), &mut |_| {})
                .unwrap();
        }
    }
    let after = rss_kib();
    let live = store.counts(Millis(0)).live;
    println!(
        "{live} live drops on {MAPS} maps: RSS {:.1} MiB ({:.1} MiB before filling; {:.0} bytes a drop)",
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / live as f64
    );
}
