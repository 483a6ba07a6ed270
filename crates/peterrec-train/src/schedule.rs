//! Learning-rate schedules.
//!
//! A schedule is a pure function of the global step (`(epoch − 1) · steps_per_epoch + step`) and
//! the planned number of steps (`epochs · steps_per_epoch`), so a run resumed with the same
//! `epochs` follows exactly the rates of an uninterrupted one. (Resuming with more epochs than
//! planned stretches a cosine: the rate goes back up.)

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// How the learning rate moves over a run of `TrainConfig::epochs` epochs.
///
/// Deserialising a missing value (a configuration saved before the schedule existed) or `null`
/// gives [`LrSchedule::Constant`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub enum LrSchedule {
    /// The base rate at every step.
    #[default]
    Constant,
    /// Linear warm-up from `base / warmup_steps` to `base` over the first `warmup_steps` steps,
    /// then a half cosine from `base` down to `base · final_ratio` at the last planned step.
    /// Early stopping may end the run before the rate gets there.
    WarmupCosine {
        /// Steps of linear warm-up (0 for none).
        warmup_steps: usize,
        /// The rate at the last planned step, as a fraction of the base rate (in `[0, 1]`).
        final_ratio: f64,
    },
    /// [`LrSchedule::WarmupCosine`] with the warm-up given as a share of the plan: the first
    /// `warmup_percent` percent of the planned steps (rounded to the nearest step), so that the
    /// same schedule suits a data set of 60 steps an epoch and one of 600.
    WarmupShareCosine {
        /// Percent of the planned steps spent warming up (in `[0, 100]`).
        warmup_percent: f64,
        /// The rate at the last planned step, as a fraction of the base rate (in `[0, 1]`).
        final_ratio: f64,
    },
}

/// The serialised form of [`LrSchedule`], read through an `Option` so that a missing value loads
/// as [`LrSchedule::Constant`]: serde gives a missing field to `deserialize_option` as `None`,
/// which a plain enum would reject, and Burn's `Config` derive cannot mark a field
/// `#[serde(default)]`.
#[derive(Deserialize)]
#[serde(rename = "LrSchedule")]
enum LrScheduleRepr {
    Constant,
    WarmupCosine {
        warmup_steps: usize,
        final_ratio: f64,
    },
    WarmupShareCosine {
        warmup_percent: f64,
        final_ratio: f64,
    },
}

impl<'de> Deserialize<'de> for LrSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<LrScheduleRepr>::deserialize(deserializer)? {
            None | Some(LrScheduleRepr::Constant) => LrSchedule::Constant,
            Some(LrScheduleRepr::WarmupCosine {
                warmup_steps,
                final_ratio,
            }) => LrSchedule::WarmupCosine {
                warmup_steps,
                final_ratio,
            },
            Some(LrScheduleRepr::WarmupShareCosine {
                warmup_percent,
                final_ratio,
            }) => LrSchedule::WarmupShareCosine {
                warmup_percent,
                final_ratio,
            },
        })
    }
}

impl LrSchedule {
    /// A half cosine from the base rate down to 0 at the last planned step, without warm-up
    /// (`cosine` on the command line).
    pub const COSINE: LrSchedule = LrSchedule::WarmupCosine {
        warmup_steps: 0,
        final_ratio: 0.0,
    };

    /// The pretraining recipe's schedule: a linear warm-up over the first 10% of the planned
    /// steps, then a half cosine down to 0 (`cosine:10%` on the command line).
    pub const WARMUP_10_COSINE: LrSchedule = LrSchedule::WarmupShareCosine {
        warmup_percent: 10.0,
        final_ratio: 0.0,
    };

    /// The rate at 0-based `step` of a run planned for `total_steps` steps, for base rate `base`.
    ///
    /// Steps at or past `total_steps` get the final rate (unless still warming up, when
    /// `warmup_steps` exceeds the plan).
    pub fn lr_at(&self, base: f64, step: usize, total_steps: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::WarmupShareCosine {
                warmup_percent,
                final_ratio,
            } => LrSchedule::WarmupCosine {
                warmup_steps: (warmup_percent / 100.0 * total_steps as f64).round() as usize,
                final_ratio,
            }
            .lr_at(base, step, total_steps),
            LrSchedule::WarmupCosine {
                warmup_steps,
                final_ratio,
            } => {
                if step < warmup_steps {
                    return base * (step + 1) as f64 / warmup_steps as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps);
                if span <= 1 {
                    return base * final_ratio;
                }
                let progress = ((step - warmup_steps) as f64 / (span - 1) as f64).min(1.0);
                let cosine = 0.5 * (1.0 + (PI * progress).cos());
                base * (final_ratio + (1.0 - final_ratio) * cosine)
            }
        }
    }

    /// Checks the parameters (`final_ratio` in `[0, 1]`, `warmup_percent` in `[0, 100]`).
    pub fn validate(&self) -> Result<(), TrainError> {
        let (final_ratio, percent) = match *self {
            LrSchedule::Constant => return Ok(()),
            LrSchedule::WarmupCosine { final_ratio, .. } => (final_ratio, 0.0),
            LrSchedule::WarmupShareCosine {
                warmup_percent,
                final_ratio,
            } => (final_ratio, warmup_percent),
        };
        if !(0.0..=1.0).contains(&final_ratio) {
            return Err(TrainError::Config(format!(
                "learning-rate schedule: final ratio {final_ratio} is not in [0, 1]"
            )));
        }
        if !(0.0..=100.0).contains(&percent) {
            return Err(TrainError::Config(format!(
                "learning-rate schedule: warm-up of {percent}% is not in [0, 100]"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LrSchedule::Constant => write!(f, "constant"),
            LrSchedule::WarmupCosine {
                warmup_steps,
                final_ratio,
            } => write!(f, "cosine:{warmup_steps}:{final_ratio}"),
            LrSchedule::WarmupShareCosine {
                warmup_percent,
                final_ratio,
            } => write!(f, "cosine:{warmup_percent}%:{final_ratio}"),
        }
    }
}

impl FromStr for LrSchedule {
    type Err = TrainError;

    /// Parses `constant`, `cosine` (no warm-up, decay to 0), `cosine:W` (W warm-up steps),
    /// `cosine:P%` (warm-up over P percent of the planned steps) or either followed by `:R`
    /// (final rate R × base), as the examples' `--lr-schedule` flags take it.
    fn from_str(s: &str) -> Result<Self, TrainError> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            TrainError::Config(format!(
                "unknown learning-rate schedule `{s}` (expected `constant`, `cosine`, `cosine:WARMUP`, \
                 or `cosine:WARMUP:FINAL_RATIO`, WARMUP in steps or as a percentage such as `10%`)"
            ))
        };
        if s == "constant" {
            return Ok(LrSchedule::Constant);
        }
        let mut parts = s.split(':');
        if parts.next() != Some("cosine") {
            return Err(bad());
        }
        let warmup = parts.next();
        let final_ratio = match parts.next() {
            Some(r) => r.parse::<f64>().map_err(|_| bad())?,
            None => 0.0,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        let schedule = match warmup {
            Some(w) if w.ends_with('%') => LrSchedule::WarmupShareCosine {
                warmup_percent: w[..w.len() - 1].parse::<f64>().map_err(|_| bad())?,
                final_ratio,
            },
            Some(w) => LrSchedule::WarmupCosine {
                warmup_steps: w.parse::<usize>().map_err(|_| bad())?,
                final_ratio,
            },
            None => LrSchedule::WarmupCosine {
                warmup_steps: 0,
                final_ratio,
            },
        };
        schedule.validate()?;
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_the_base_rate_everywhere() {
        for step in [0, 5, 99, 1000] {
            assert_eq!(LrSchedule::Constant.lr_at(1e-3, step, 100), 1e-3);
        }
    }

    #[test]
    fn warmup_cosine_hand_computed_points() {
        let s = LrSchedule::WarmupCosine {
            warmup_steps: 4,
            final_ratio: 0.1,
        };
        // Warm-up: 1/4, 2/4, 3/4, 4/4 of the base rate.
        let base = 2.0;
        assert_eq!(s.lr_at(base, 0, 14), 0.5);
        assert_eq!(s.lr_at(base, 1, 14), 1.0);
        assert_eq!(s.lr_at(base, 3, 14), 2.0);
        // Cosine over steps 4..14 (10 steps): 4 → base, 13 → final, the midpoint (8.5) would be
        // halfway; step 9 is at progress 5/9.
        assert_eq!(s.lr_at(base, 4, 14), 2.0);
        assert!((s.lr_at(base, 13, 14) - 0.2).abs() < 1e-12);
        let p: f64 = 5.0 / 9.0;
        let want = base * (0.1 + 0.9 * 0.5 * (1.0 + (PI * p).cos()));
        assert!((s.lr_at(base, 9, 14) - want).abs() < 1e-12);
        // Past the plan: the final rate.
        assert!((s.lr_at(base, 50, 14) - 0.2).abs() < 1e-12);
    }

    /// A warm-up share is the step schedule with `round(percent · plan / 100)` warm-up steps,
    /// whatever the plan's length.
    #[test]
    fn warmup_share_is_a_share_of_the_plan() {
        let share = LrSchedule::WARMUP_10_COSINE;
        for total in [20, 95, 600, 5810] {
            let steps = LrSchedule::WarmupCosine {
                warmup_steps: (total as f64 / 10.0).round() as usize,
                final_ratio: 0.0,
            };
            for step in 0..total + 3 {
                assert_eq!(
                    share.lr_at(3.0, step, total),
                    steps.lr_at(3.0, step, total),
                    "{total} {step}"
                );
            }
        }
        // 10% of 600 steps: 60 warm-up steps, the base rate reached at step 59.
        assert_eq!(share.lr_at(3.0, 0, 600), 3.0 / 60.0);
        assert_eq!(share.lr_at(3.0, 59, 600), 3.0);
        assert!(share.lr_at(3.0, 60, 600) <= 3.0);
    }

    #[test]
    fn warmup_cosine_decreases_monotonically_after_warmup() {
        let s = LrSchedule::WarmupCosine {
            warmup_steps: 0,
            final_ratio: 0.0,
        };
        let rates: Vec<f64> = (0..50).map(|i| s.lr_at(1.0, i, 50)).collect();
        assert_eq!(rates[0], 1.0);
        assert!(rates[49].abs() < 1e-12);
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(
            "constant".parse::<LrSchedule>().unwrap(),
            LrSchedule::Constant
        );
        assert_eq!(
            "cosine".parse::<LrSchedule>().unwrap(),
            LrSchedule::WarmupCosine {
                warmup_steps: 0,
                final_ratio: 0.0
            }
        );
        let s: LrSchedule = "Cosine:200:0.05".parse().unwrap();
        assert_eq!(
            s,
            LrSchedule::WarmupCosine {
                warmup_steps: 200,
                final_ratio: 0.05
            }
        );
        assert_eq!(s.to_string().parse::<LrSchedule>().unwrap(), s);
        let share: LrSchedule = "cosine:10%".parse().unwrap();
        assert_eq!(share, LrSchedule::WARMUP_10_COSINE);
        assert_eq!(share.to_string(), "cosine:10%:0");
        assert_eq!(share.to_string().parse::<LrSchedule>().unwrap(), share);
        let s: LrSchedule = "cosine:2.5%:0.1".parse().unwrap();
        assert_eq!(s.to_string().parse::<LrSchedule>().unwrap(), s);
        for bad in [
            "",
            "cos",
            "cosine:x",
            "cosine:x%",
            "cosine:101%",
            "cosine:-1%",
            "cosine:10:2",
            "cosine:1:0.5:3",
            "linear",
        ] {
            assert!(bad.parse::<LrSchedule>().is_err(), "{bad}");
        }
    }
}
