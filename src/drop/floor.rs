//! Where a character's drop lands (contract-head §5): on the floor below the point it was
//! dropped at. The data service names the foothold below; this says where on it the drop lies.

use super::model::Point;

/// A segment of floor, from `first` to `second` (`first.x ≤ second.x` as the data service
/// answers it; a segment the other way round holds no `x`, so nothing lands on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Foothold {
    pub first: Point,
    pub second: Point,
}

impl Foothold {
    /// The floor's `y` at `x`: none on a wall (`x1 == x2`) or outside `[x1, x2]`; otherwise the
    /// point on the segment, `y1 + sign(y2 − y1) · ⌊|y2 − y1| · (x − x1) / (x2 − x1)⌋`, in exact
    /// integers (the older service used trigonometry in floats and truncated). Computed in
    /// `i64`: the product of two `i16` spans cannot overflow it.
    pub fn y_at(&self, x: i16) -> Option<i16> {
        let (x1, y1) = (i64::from(self.first.x), i64::from(self.first.y));
        let (x2, y2) = (i64::from(self.second.x), i64::from(self.second.y));
        let x = i64::from(x);
        if x1 == x2 || x < x1 || x > x2 {
            return None;
        }
        let rise = y2 - y1;
        let y = y1 + rise.signum() * (rise.abs() * (x - x1) / (x2 - x1));
        // Between y1 and y2, so always an i16.
        i16::try_from(y).ok()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn foothold(x1: i16, y1: i16, x2: i16, y2: i16) -> Foothold {
        Foothold {
            first: Point { x: x1, y: y1 },
            second: Point { x: x2, y: y2 },
        }
    }

    #[test]
    fn a_flat_foothold_is_its_height_everywhere_on_it() {
        let flat = foothold(-100, 250, 300, 250);
        for x in [-100, 0, 77, 300] {
            assert_eq!(flat.y_at(x), Some(250), "{x}");
        }
    }

    #[test]
    fn a_slope_down_rounds_towards_the_first_point() {
        // y grows downwards on a map: 0 → 10 over 0 → 3.
        let down = foothold(0, 0, 3, 10);
        let ys: Vec<_> = (0..=3).map(|x| down.y_at(x)).collect();
        assert_eq!(ys, [Some(0), Some(3), Some(6), Some(10)]);
    }

    #[test]
    fn a_slope_up_rounds_towards_the_first_point() {
        let up = foothold(0, 0, 3, -10);
        let ys: Vec<_> = (0..=3).map(|x| up.y_at(x)).collect();
        assert_eq!(ys, [Some(0), Some(-3), Some(-6), Some(-10)]);
        // A gentle slope: 100 → 95 over 100 → 200, at 150 is 100 − ⌊5 · 50 / 100⌋ = 98.
        assert_eq!(foothold(100, 100, 200, 95).y_at(150), Some(98));
    }

    #[test]
    fn nothing_lands_on_a_wall_or_beside_the_foothold() {
        assert_eq!(foothold(40, 0, 40, 100).y_at(40), None, "a wall");
        let slope = foothold(0, 0, 10, 10);
        assert_eq!(slope.y_at(-1), None);
        assert_eq!(slope.y_at(11), None);
        assert_eq!(foothold(10, 0, 0, 10).y_at(5), None, "the wrong way round");
    }

    #[test]
    fn the_extremes_of_i16_do_not_overflow() {
        let (min, max) = (i16::MIN, i16::MAX);
        let steep = foothold(min, min, max, max);
        assert_eq!(steep.y_at(min), Some(min));
        assert_eq!(steep.y_at(max), Some(max));
        assert_eq!(
            steep.y_at(0),
            Some(0),
            "⌊65535 · 32768 / 65535⌋ = 32768 above min"
        );
        let falling = foothold(min, max, max, min);
        assert_eq!(falling.y_at(max - 1), Some(min + 1));
        assert_eq!(falling.y_at(min + 1), Some(max - 1));
    }

    proptest! {
        /// On the segment, the landing is the floor of the exact point: its distance from y1
        /// times the run is at most the rise times the way along, and one more is past it.
        #[test]
        fn the_landing_is_the_exact_point_rounded_towards_y1(
            x1 in any::<i16>(), y1 in any::<i16>(), x2 in any::<i16>(), y2 in any::<i16>(),
            at in 0.0f64..=1.0,
        ) {
            let (x1, x2) = (x1.min(x2), x1.max(x2));
            prop_assume!(x1 < x2);
            let run = i64::from(x2) - i64::from(x1);
            let x = (i64::from(x1) + (run as f64 * at) as i64).clamp(x1.into(), x2.into()) as i16;
            let y = foothold(x1, y1, x2, y2).y_at(x).expect("on the segment");
            let (rise, along) = ((i64::from(y2) - i64::from(y1)).abs(), i64::from(x) - i64::from(x1));
            let moved = (i64::from(y) - i64::from(y1)).abs();
            prop_assert!(moved * run <= rise * along);
            prop_assert!((moved + 1) * run > rise * along);
            prop_assert!(y >= y1.min(y2) && y <= y1.max(y2));
        }
    }
}
