//! The one place that reads the clock; the domain is handed `now`.
//!
//! `now` is the wall clock read once, at the first call, plus the monotonic time elapsed since:
//! so the durations the rules measure (expiry, lapse, ownership) follow a clock that never
//! jumps, however the wall clock is stepped while the process runs, and `dropTime` stays wall
//! time (it departs from the wall clock only by what the wall clock was stepped during the run).
//! Processes that compare times — instances of the shared store, a run and the next — agree as
//! far as their wall clocks agreed when each started: keep them synchronised (NTP).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::drop::model::Millis;

/// The wall clock and the monotonic clock, read together once.
struct Anchor {
    wall: Millis,
    instant: Instant,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// Now, in milliseconds since the Unix epoch; never less than an earlier answer of this process.
pub fn now() -> Millis {
    let anchor = ANCHOR.get_or_init(|| Anchor {
        wall: wall_clock(),
        instant: Instant::now(),
    });
    anchored(anchor.wall, anchor.instant.elapsed())
}

/// The time `elapsed` after the wall clock read `started`.
fn anchored(started: Millis, elapsed: Duration) -> Millis {
    let elapsed = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    started.saturating_add(elapsed)
}

fn wall_clock() -> Millis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_the_start_plus_the_monotonic_time_since() {
        let started = Millis(1_768_499_985_123);
        assert_eq!(anchored(started, Duration::ZERO), started);
        assert_eq!(
            anchored(started, Duration::from_micros(2_500_999)),
            Millis(1_768_499_987_623)
        );
        assert_eq!(anchored(started, Duration::MAX), Millis(u64::MAX));
    }

    #[test]
    fn now_never_goes_back_and_starts_at_the_wall_clock() {
        let first = now();
        let wall = wall_clock();
        assert!(first.0.abs_diff(wall.0) < 60_000, "{first:?} {wall:?}");
        let mut last = first;
        for _ in 0..10_000 {
            let next = now();
            assert!(next >= last, "{next:?} after {last:?}");
            last = next;
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(now().since(first) >= 20);
    }
}
