//! `relu(LayerNorm(x))` row by row on host buffers, forward and backward.
//!
//! The forward pass writes each row's mean and `1/σ`; the backward pass recomputes `x̂` from the
//! input and those statistics and writes, per row,
//!
//! ```text
//! g  = ∂y ⊙ [γ·x̂ + β > 0]                   (the ReLU's mask)
//! ∂γ += g ⊙ x̂,  ∂β += g
//! ∂x = (1/σ) · (γ⊙g − mean(γ⊙g) − x̂ · mean(γ⊙g⊙x̂))
//! ```

use rayon::prelude::*;

/// Rows per Rayon task: enough to amortise the task, small enough to split a batch of a few
/// thousand rows over the threads.
const ROWS_PER_TASK: usize = 64;

/// Normalises, scales, shifts and rectifies each row of `x` (rows of `gamma.len()` values) into
/// `y`, writing `[mean, 1/σ]` of each row to `stats`.
///
/// # Panics
/// If `beta` is not as long as `gamma`, or `x`, `y` and `stats` do not hold the same rows.
pub fn forward_rows(
    x: &[f32],
    stats: &mut [[f32; 2]],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
) {
    let c = gamma.len();
    assert_eq!(beta.len(), c, "γ and β have one length");
    assert!(
        x.len() == y.len() && x.len() == stats.len() * c,
        "x, y and the statistics hold the same rows"
    );
    let task = ROWS_PER_TASK * c;
    y.par_chunks_mut(task.max(1))
        .zip(x.par_chunks(task.max(1)))
        .zip(stats.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|((y, x), stats)| {
            for ((y, x), stat) in y.chunks_mut(c).zip(x.chunks(c)).zip(stats) {
                let mean = sum(x) / c as f32;
                let var = sum_sq_dev(x, mean) / c as f32;
                let rstd = 1.0 / (var + eps).sqrt();
                *stat = [mean, rstd];
                for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                    *y = ((x - mean) * rstd * g + b).max(0.0);
                }
            }
        });
}

/// Writes the input's gradient for the upstream gradient `g` into `gx` (rows of `gamma.len()`
/// values), from the input `x` and the `stats` of [`forward_rows`]; returns the gradients of
/// `γ` and `β`.
///
/// # Panics
/// If `beta` is not as long as `gamma`, or `g`, `x`, `gx` and `stats` do not hold the same rows.
pub fn backward_rows(
    g: &[f32],
    x: &[f32],
    stats: &[[f32; 2]],
    gamma: &[f32],
    beta: &[f32],
    gx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let c = gamma.len();
    assert_eq!(beta.len(), c, "γ and β have one length");
    assert!(
        g.len() == gx.len() && x.len() == gx.len() && gx.len() == stats.len() * c,
        "the upstream gradient has the input's shape"
    );
    let task = ROWS_PER_TASK * c;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = gx
        .par_chunks_mut(task.max(1))
        .zip(g.par_chunks(task.max(1)))
        .zip(x.par_chunks(task.max(1)))
        .zip(stats.par_chunks(ROWS_PER_TASK))
        .map(|(((gx, g), x), stats)| {
            let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
            for (((gx, g), x), &[mean, rstd]) in gx
                .chunks_mut(c)
                .zip(g.chunks(c))
                .zip(x.chunks(c))
                .zip(stats)
            {
                let (s1, s2) =
                    row_backward(g, x, mean, rstd, gamma, beta, &mut dgamma, &mut dbeta, gx);
                let (m1, m2) = (s1 / c as f32, s2 / c as f32);
                for (gx, &x) in gx.iter_mut().zip(x) {
                    *gx = rstd * (*gx - m1 - (x - mean) * rstd * m2);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
    for (pg, pb) in partials {
        dgamma.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    (dgamma, dbeta)
}

/// The first backward passes over one row: masks `g` by the ReLU, accumulates `∂γ` and `∂β`,
/// writes `γ ⊙ g` to `out` and returns `(Σ γ⊙g, Σ γ⊙g⊙x̂)`. Branch-free (the ReLU's mask is a
/// coin flip per value): an element-wise pass that vectorises, then the two sums in eight lanes.
#[allow(clippy::too_many_arguments)]
fn row_backward(
    g: &[f32],
    x: &[f32],
    mean: f32,
    rstd: f32,
    gamma: &[f32],
    beta: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    out: &mut [f32],
) -> (f32, f32) {
    for ((((((out, &g), &x), &gamma), &beta), dg), db) in out
        .iter_mut()
        .zip(g)
        .zip(x)
        .zip(gamma)
        .zip(beta)
        .zip(dgamma.iter_mut())
        .zip(dbeta.iter_mut())
    {
        let xhat = (x - mean) * rstd;
        // All ones when the output passed the ReLU, else zero: `g` or +0 without a branch.
        let keep = 0u32.wrapping_sub(u32::from(xhat * gamma + beta > 0.0));
        let gi = f32::from_bits(g.to_bits() & keep);
        *dg += gi * xhat;
        *db += gi;
        *out = gi * gamma;
    }
    let (mut s1, mut s2) = ([0.0f32; 8], [0.0f32; 8]);
    let (g8, x8) = (out.chunks_exact(8), x.chunks_exact(8));
    let (g_tail, x_tail) = (g8.remainder(), x8.remainder());
    for (g, x) in g8.zip(x8) {
        for lane in 0..8 {
            s1[lane] += g[lane];
            s2[lane] += g[lane] * ((x[lane] - mean) * rstd);
        }
    }
    for (g, x) in g_tail.iter().zip(x_tail) {
        s1[0] += g;
        s2[0] += g * ((x - mean) * rstd);
    }
    (s1.iter().sum(), s2.iter().sum())
}

/// Σ x, in eight lanes.
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ (x − mean)², in eight lanes.
fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += (v - mean) * (v - mean);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row by hand: x = (1, 2, 3, 6), mean 3, σ² = 3.5; γ = 1, β = 0 cuts the two values
    /// below the mean; the β gradient counts the two that passed, and ∂x sums to zero.
    #[test]
    fn a_row_by_hand() {
        let x = [1.0f32, 2.0, 3.0, 6.0];
        let (gamma, beta) = ([1.0f32; 4], [0.0f32; 4]);
        let (mut y, mut stats) = ([0.0f32; 4], [[0.0f32; 2]; 1]);
        forward_rows(&x, &mut stats, &gamma, &beta, 0.0, &mut y);
        let rstd = 1.0 / 3.5f32.sqrt();
        assert_eq!(stats[0], [3.0, rstd]);
        assert_eq!(y[..3], [0.0, 0.0, 0.0]);
        assert!((y[3] - 3.0 * rstd).abs() < 1e-6);
        let mut gx = [0.0f32; 4];
        let (dgamma, dbeta) = backward_rows(&[1.0; 4], &x, &stats, &gamma, &beta, &mut gx);
        assert_eq!(dbeta, [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(dgamma[..3], [0.0, 0.0, 0.0]);
        assert!((dgamma[3] - 3.0 * rstd).abs() < 1e-6);
        assert!(gx.iter().sum::<f32>().abs() < 1e-6);
    }

    /// Many rows (several Rayon tasks, a width with a remainder past the eight lanes) give the
    /// same values as the rows one at a time.
    #[test]
    fn rows_are_independent_of_the_split() {
        let (n, c) = (150, 11);
        let x: Vec<f32> = (0..n * c)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.1)
            .collect();
        let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..c).map(|i| i as f32 * 0.05 - 0.2).collect();
        let (mut y, mut stats) = (vec![0.0f32; n * c], vec![[0.0f32; 2]; n]);
        forward_rows(&x, &mut stats, &gamma, &beta, 1e-5, &mut y);
        for r in 0..n {
            let (mut y1, mut s1) = (vec![0.0f32; c], [[0.0f32; 2]]);
            forward_rows(
                &x[r * c..(r + 1) * c],
                &mut s1,
                &gamma,
                &beta,
                1e-5,
                &mut y1,
            );
            assert_eq!(y1, y[r * c..(r + 1) * c]);
            assert_eq!(s1[0], stats[r]);
        }
    }
}
