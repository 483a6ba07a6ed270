//! Softmax of one row with its log-sum-exp, in place and vectorised: the inner loop of the fused
//! cross-entropies ([`crate::cross_entropy`] and [`crate::sampled`]).
//!
//! [`softmax_row`] turns a row of `logits + bias` into `scale · softmax(row)` and returns
//! `log Σ exp(row)`, in three passes over the row while it is in cache (max, `exp` and sum,
//! scale; four with a bias), with the `exp` of [`exp_nonpositive`] instead of a libm call per
//! element, at the widest vectors the CPU has (AVX-512, AVX2 + FMA, or the baseline).

/// `row ← scale · softmax(row + bias)` in place; returns `log Σ exp(row + bias)`.
///
/// A NaN anywhere in the row makes the whole row and the returned value NaN.
///
/// # Panics
/// If `bias` is not as long as `row`.
pub fn softmax_row(row: &mut [f32], bias: Option<&[f32]>, scale: f32) -> f32 {
    assert!(
        bias.is_none_or(|b| b.len() == row.len()),
        "one bias per logit"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { softmax_row_avx512(row, bias, scale) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { softmax_row_avx2(row, bias, scale) };
        }
    }
    softmax_row_portable(row, bias, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row_avx512(row: &mut [f32], bias: Option<&[f32]>, scale: f32) -> f32 {
    softmax_row_portable(row, bias, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(row: &mut [f32], bias: Option<&[f32]>, scale: f32) -> f32 {
    softmax_row_portable(row, bias, scale)
}

/// Independent accumulators per reduction: lets the compiler keep one vector of partial
/// results (floating-point sums are not reassociated otherwise).
const LANES: usize = 16;

/// The row kernel, written so that each loop vectorises at whatever width the caller's target
/// features allow.
#[inline(always)]
fn softmax_row_portable(row: &mut [f32], bias: Option<&[f32]>, scale: f32) -> f32 {
    if let Some(bias) = bias {
        for (x, b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
    // Max. A NaN is skipped here, but its `exp` is NaN and so are the sum and every value.
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &x in acc.iter().chain(chunks.remainder()) {
        max = if x > max { x } else { max };
    }
    if max == f32::NEG_INFINITY {
        // Every logit is −∞ (or the row is empty): the softmax is undefined, as in the op-by-op
        // version (which computes −∞ − (−∞)).
        row.fill(f32::NAN);
        return f32::NAN;
    }
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (a, x) in acc.iter_mut().zip(chunk.iter_mut()) {
            *x = exp_nonpositive(*x - max);
            *a += *x;
        }
    }
    let mut sum = 0f32;
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - max);
        sum += *x;
    }
    sum += acc.iter().sum::<f32>();
    let factor = scale / sum;
    for x in row.iter_mut() {
        *x *= factor;
    }
    max + sum.ln()
}

/// `eᵡ` for `x ≤ 0` (or NaN), within 1 ulp of the correctly rounded value down to `x = −87`,
/// and 0 below that (where `eᵡ` is under 1.7·10⁻³⁸, at the edge of `f32`'s normal range).
///
/// Cody–Waite reduction `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, and Cephes' degree-7 polynomial for
/// `eʳ`; `2ⁿ` is built from its exponent bits. Branch-free, so a loop over it vectorises.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for |n| < 2⁹.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to the nearest integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LOWEST: f32 = -87.0;
    let clamped = if x < LOWEST { LOWEST } else { x };
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let n_bits = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((n_bits + 127) << 23) as u32);
    if x < LOWEST {
        0.0
    } else {
        er * two_n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`exp_nonpositive`] against the correctly rounded `eᵡ` (from `f64::exp`) over a dense
    /// grid of [−87, 0]: at most 1 ulp apart; exactly 0 below −87; NaN passing through.
    #[test]
    fn exp_is_accurate_on_the_nonpositive_range() {
        let mut worst = 0i64;
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = -87.0 * i as f32 / steps as f32;
            let want = (x as f64).exp() as f32;
            let got = exp_nonpositive(x);
            worst = worst.max((got.to_bits() as i64 - want.to_bits() as i64).abs());
        }
        assert!(worst <= 1, "worst distance {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-87.5), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    /// Hand-computed rows: logits (0, ln 2, ln 5) + bias (ln 2, 0, 0) = (ln 2, ln 2, ln 5), so
    /// the softmax is (2, 2, 5)/9 and log Σ exp is ln 9; and a row long enough for the vector
    /// loops (37 equal logits: 1/37 each, log Σ exp = 4 + ln 37).
    #[test]
    fn rows_match_hand_computed_values() {
        let ln = |x: f32| x.ln();
        let mut row = [0.0, ln(2.0), ln(5.0)];
        let lse = softmax_row(&mut row, Some(&[ln(2.0), 0.0, 0.0]), 3.0);
        assert!((lse - ln(9.0)).abs() < 1e-6, "{lse}");
        for (got, want) in row.iter().zip([2.0 / 3.0, 2.0 / 3.0, 5.0 / 3.0]) {
            assert!((got - want).abs() < 1e-6, "{row:?}");
        }
        // 37 equal logits (two full 16-lane chunks and a remainder of 5): 1/37 each.
        let mut row = vec![4.0f32; 37];
        let lse = softmax_row(&mut row, None, 1.0);
        assert!((lse - (4.0 + 37f32.ln())).abs() < 1e-5, "{lse}");
        assert!(row.iter().all(|p| (p - 1.0 / 37.0).abs() < 1e-7));
    }

    /// NaN anywhere (in a full chunk or in the remainder) and all −∞ give a NaN row.
    #[test]
    fn nan_and_empty_support_propagate() {
        for at in [3, 35] {
            let mut row = vec![0.5f32; 37];
            row[at] = f32::NAN;
            assert!(softmax_row(&mut row, None, 1.0).is_nan());
            assert!(row.iter().all(|p| p.is_nan()), "NaN at {at}");
        }
        let mut row = vec![f32::NEG_INFINITY; 20];
        assert!(softmax_row(&mut row, None, 1.0).is_nan());
        assert!(row.iter().all(|p| p.is_nan()));
    }
}
