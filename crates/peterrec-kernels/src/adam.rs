//! Adam's update of a parameter and its two moments in one pass over `f32` slices, with the
//! same formula in the same order of `f32` operations as Burn's `Adam` (so the same values).

use rayon::prelude::*;

/// The scalars of one update, as Burn's `AdaptiveMomentum` forms them for a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamCoefficients {
    /// `β₁`.
    pub beta_1: f32,
    /// `1 − β₁`.
    pub one_minus_beta_1: f32,
    /// `β₂`.
    pub beta_2: f32,
    /// `1 − β₂`.
    pub one_minus_beta_2: f32,
    /// `√(1 − β₂ᵗ) / (1 − β₁ᵗ)`.
    pub combined: f32,
    /// `ε·√(1 − β₂ᵗ)`.
    pub epsilon: f32,
    /// The learning rate.
    pub lr: f32,
    /// The L2 penalty `λ` (the gradient becomes `g + λ·θ`), if any.
    pub weight_decay: Option<f32>,
}

impl AdamCoefficients {
    /// The coefficients of step `time` (from 1) with learning rate `lr`.
    pub fn new(
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        weight_decay: Option<f32>,
        time: usize,
        lr: f64,
    ) -> Self {
        let t = time as i32;
        let bias_correction2_sqrt = (1.0 - beta_2.powi(t)).sqrt();
        Self {
            beta_1,
            one_minus_beta_1: 1.0 - beta_1,
            beta_2,
            one_minus_beta_2: 1.0 - beta_2,
            combined: bias_correction2_sqrt / (1.0 - beta_1.powi(t)),
            epsilon: epsilon * bias_correction2_sqrt,
            lr: lr as f32,
            weight_decay,
        }
    }
}

/// Values per Rayon task: large enough to amortise the hand-off, small enough to share a
/// parameter of a few million values between the threads evenly.
const CHUNK: usize = 1 << 15;

/// The Adam update of `theta` in place, with its moments `m` and `v` (overwritten, not read, on
/// the `first` step), in Burn's order of operations:
/// `g ← g + λθ`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ − lr·(m·c)/(√v + ε')`.
///
/// # Panics
/// If the four slices differ in length.
pub fn update(
    theta: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    first: bool,
    k: &AdamCoefficients,
) {
    assert!(
        g.len() == theta.len() && m.len() == theta.len() && v.len() == theta.len(),
        "parameter, gradient and moments have one length"
    );
    theta
        .par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((theta, g), m), v)| match (first, k.weight_decay) {
            (false, None) => chunk::<false, false>(theta, g, m, v, k, 0.0),
            (false, Some(l)) => chunk::<false, true>(theta, g, m, v, k, l),
            (true, None) => chunk::<true, false>(theta, g, m, v, k, 0.0),
            (true, Some(l)) => chunk::<true, true>(theta, g, m, v, k, l),
        });
}

#[inline(always)]
fn chunk<const FIRST: bool, const DECAY: bool>(
    theta: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: &AdamCoefficients,
    penalty: f32,
) {
    for (((theta, &g), m), v) in theta.iter_mut().zip(g).zip(m).zip(v) {
        let g = if DECAY { *theta * penalty + g } else { g };
        // Burn's first step forms the moments from the gradient alone.
        *m = if FIRST {
            g * k.one_minus_beta_1
        } else {
            *m * k.beta_1 + g * k.one_minus_beta_1
        };
        *v = if FIRST {
            (g * g) * k.one_minus_beta_2
        } else {
            *v * k.beta_2 + (g * g) * k.one_minus_beta_2
        };
        let step = (*m * k.combined) / (v.sqrt() + k.epsilon);
        *theta -= step * k.lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps of one value against the textbook formula in `f64`; the first step moves the
    /// parameter by about `lr` against the gradient's sign.
    #[test]
    fn two_steps_match_the_formula() {
        let (b1, b2, eps, lr) = (0.9f32, 0.999f32, 1e-8f32, 0.01);
        let (mut theta, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
        let (mut m64, mut v64, mut theta64) = (0.0f64, 0.0f64, 1.0f64);
        for (t, g) in [(1usize, 0.5f32), (2, -0.25)] {
            let k = AdamCoefficients::new(b1, b2, eps, None, t, lr);
            update(&mut theta, &[g], &mut m, &mut v, t == 1, &k);
            let g = g as f64;
            m64 = b1 as f64 * m64 + (1.0 - b1 as f64) * g;
            v64 = b2 as f64 * v64 + (1.0 - b2 as f64) * g * g;
            let mhat = m64 / (1.0 - (b1 as f64).powi(t as i32));
            let vhat = v64 / (1.0 - (b2 as f64).powi(t as i32));
            theta64 -= lr * mhat / (vhat.sqrt() + eps as f64);
            assert!((theta[0] as f64 - theta64).abs() < 1e-6, "step {t}");
        }
        assert!(theta[0] < 1.0);
    }

    /// Weight decay adds `λθ` to the gradient: a zero gradient with decay moves the parameter
    /// as the gradient `λθ` would without.
    #[test]
    fn weight_decay_adds_to_the_gradient() {
        let k = |decay| AdamCoefficients::new(0.9, 0.999, 1e-5, decay, 1, 0.1);
        let (mut a, mut b) = ([2.0f32; 3], [2.0f32; 3]);
        let (mut m, mut v) = ([0.0f32; 3], [0.0f32; 3]);
        update(&mut a, &[0.0; 3], &mut m, &mut v, true, &k(Some(0.5)));
        update(&mut b, &[1.0; 3], &mut m, &mut v, true, &k(None));
        assert_eq!(a, b);
    }
}
