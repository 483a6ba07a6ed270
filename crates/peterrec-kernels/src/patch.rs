//! A model patch's bottleneck `W_up·GELU(W_down·x + b_down) + b_up` on host buffers.
//!
//! The forward pass is two products (each output starting as its bias) with the tanh GELU in
//! between, keeping the pre-activation and the activation; the backward pass is
//!
//! ```text
//! ∂b_up = Σ_rows g,  ∂W_up = aᵀ·g,  ∂a = g·W_upᵀ,  ∂p = ∂a ⊙ GELU′(p),
//! ∂b_down = Σ_rows ∂p,  ∂W_down = xᵀ·∂p,  ∂x = ∂p·W_downᵀ
//! ```
//!
//! one function per gradient, so that a caller computes only what a trained parameter needs
//! (the bias gradients are [`crate::column_sums`]).

use rayon::prelude::*;

use crate::gemm::{new_product, product, MatMut, MatRef};
use crate::softmax::exp_nonpositive;

/// `2·√(2/π)` and that times 0.044715: GELU(x) = x·σ(LINEAR·x + CUBIC·x³).
const LINEAR: f32 = 2.0 * 0.797_884_6;
const CUBIC: f32 = LINEAR * 0.044715;

/// Values per Rayon task in the element-wise passes.
const TASK: usize = 1 << 14;

/// The logistic function without a libm call (the `exp` of [`exp_nonpositive`] on `−|z|`).
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    let e = exp_nonpositive(-z.abs());
    let s = 1.0 / (1.0 + e);
    if z >= 0.0 {
        s
    } else {
        e * s
    }
}

/// The tanh GELU and its derivative at `p`.
#[inline(always)]
fn gelu_and_slope(p: f32) -> (f32, f32) {
    let s = sigmoid(p * (LINEAR + CUBIC * p * p));
    (
        p * s,
        s + p * s * (1.0 - s) * (LINEAR + 3.0 * CUBIC * p * p),
    )
}

/// The tanh GELU at `p`: `p·σ(2·√(2/π)·(p + 0.044715·p³))`.
pub fn gelu(p: f32) -> f32 {
    gelu_and_slope(p).0
}

/// The shapes of one patch call: `rows` rows of `c` channels, bottleneck `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchDims {
    /// Rows.
    pub rows: usize,
    /// Channels.
    pub c: usize,
    /// Bottleneck width.
    pub b: usize,
}

/// The patch's parameters, row-major.
#[derive(Debug, Clone, Copy)]
pub struct PatchWeights<'a> {
    /// `W_down`, `[C, b]`.
    pub down_w: &'a [f32],
    /// `b_down`, `[b]`.
    pub down_b: &'a [f32],
    /// `W_up`, `[b, C]`.
    pub up_w: &'a [f32],
    /// `b_up`, `[C]`.
    pub up_b: &'a [f32],
}

/// What the forward pass computes.
#[derive(Debug, Clone)]
pub struct PatchForward {
    /// The pre-activation `p = x·W_down + b_down`, `[rows, b]`.
    pub pre: Vec<f32>,
    /// The activation `a = GELU(p)`, `[rows, b]`.
    pub act: Vec<f32>,
    /// The output `y = a·W_up + b_up`, `[rows, C]`.
    pub y: Vec<f32>,
}

/// The forward pass of `x` (`[rows, C]`).
///
/// # Panics
/// If a slice's length disagrees with `d`.
pub fn forward(x: &[f32], p: PatchWeights<'_>, d: PatchDims) -> PatchForward {
    let PatchDims { rows, c, b } = d;
    let PatchWeights {
        down_w: dw,
        down_b: db,
        up_w: uw,
        up_b: ub,
    } = p;
    assert_eq!(x.len(), rows * c, "x is [rows, C]");
    assert!(
        dw.len() == c * b && db.len() == b,
        "the down projection is [C, b] and [b]"
    );
    assert!(
        uw.len() == b * c && ub.len() == c,
        "the up projection is [b, C] and [C]"
    );
    let mut pre = rows_of(db, rows);
    let mut y = rows_of(ub, rows);
    if rows > 0 && b > 0 && c > 0 {
        let dst = MatMut::rows(&mut pre, rows, b);
        product(dst, MatRef::rows(x, rows, c), MatRef::rows(dw, c, b), true);
    }
    let mut act = vec![0.0f32; pre.len()];
    act.par_chunks_mut(TASK)
        .zip(pre.par_chunks(TASK))
        .for_each(|(a, p)| {
            for (a, &p) in a.iter_mut().zip(p) {
                *a = gelu_and_slope(p).0;
            }
        });
    if rows > 0 && b > 0 && c > 0 {
        let dst = MatMut::rows(&mut y, rows, c);
        product(
            dst,
            MatRef::rows(&act, rows, b),
            MatRef::rows(uw, b, c),
            true,
        );
    }
    PatchForward { pre, act, y }
}

/// `rows` copies of `row`, one after the other.
fn rows_of(row: &[f32], rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * row.len());
    for _ in 0..rows {
        out.extend_from_slice(row);
    }
    out
}

/// `∂W_up = aᵀ·g` (`[b, C]`) for the activation `act` and the upstream gradient `g`
/// (`[rows, C]`).
///
/// # Panics
/// If a slice is shorter than `d` says.
pub fn up_weight_gradient(act: &[f32], g: &[f32], d: PatchDims) -> Vec<f32> {
    let PatchDims { rows, c, b } = d;
    new_product(MatRef::transposed(act, rows, b), MatRef::rows(g, rows, c))
}

/// `∂p = (g·W_upᵀ) ⊙ GELU′(p)` (`[rows, b]`) for the upstream gradient `g` (`[rows, C]`) and
/// the pre-activation `pre`.
///
/// # Panics
/// If a slice is shorter than `d` says.
pub fn pre_activation_gradient(g: &[f32], up_w: &[f32], pre: &[f32], d: PatchDims) -> Vec<f32> {
    let PatchDims { rows, c, b } = d;
    let mut gp = new_product(MatRef::rows(g, rows, c), MatRef::transposed(up_w, b, c));
    gp.par_chunks_mut(TASK)
        .zip(pre.par_chunks(TASK))
        .for_each(|(gp, p)| {
            for (gp, &p) in gp.iter_mut().zip(p) {
                *gp *= gelu_and_slope(p).1;
            }
        });
    gp
}

/// `∂W_down = xᵀ·∂p` (`[C, b]`).
///
/// # Panics
/// If a slice is shorter than `d` says.
pub fn down_weight_gradient(x: &[f32], gp: &[f32], d: PatchDims) -> Vec<f32> {
    let PatchDims { rows, c, b } = d;
    new_product(MatRef::transposed(x, rows, c), MatRef::rows(gp, rows, b))
}

/// `∂x = ∂p·W_downᵀ` (`[rows, C]`).
///
/// # Panics
/// If a slice is shorter than `d` says.
pub fn input_gradient(gp: &[f32], down_w: &[f32], d: PatchDims) -> Vec<f32> {
    let PatchDims { rows, c, b } = d;
    new_product(MatRef::rows(gp, rows, b), MatRef::transposed(down_w, c, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GELU against its tanh form, and its slope against a central difference.
    #[test]
    fn gelu_and_its_slope_match_the_tanh_form() {
        for i in -80..=80 {
            let p = i as f32 * 0.1;
            let tanh_form = |p: f64| {
                0.5 * p
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (p + 0.044715 * p * p * p)).tanh())
            };
            let (g, s) = gelu_and_slope(p);
            assert!((g as f64 - tanh_form(p as f64)).abs() < 1e-5, "GELU({p})");
            let h = 1e-3;
            let slope = (tanh_form(p as f64 + h) - tanh_form(p as f64 - h)) / (2.0 * h);
            assert!((s as f64 - slope).abs() < 1e-4, "GELU′({p})");
        }
    }

    /// One row, one channel, bottleneck one, by hand.
    #[test]
    fn a_scalar_patch_by_hand() {
        let d = PatchDims {
            rows: 1,
            c: 1,
            b: 1,
        };
        let w = PatchWeights {
            down_w: &[2.0],
            down_b: &[0.5],
            up_w: &[3.0],
            up_b: &[-1.0],
        };
        let f = forward(&[0.25], w, d);
        assert_eq!(f.pre, [1.0]);
        assert_eq!(f.act, [gelu(1.0)]);
        assert!((f.y[0] - (3.0 * gelu(1.0) - 1.0)).abs() < 1e-6);
        assert_eq!(up_weight_gradient(&f.act, &[1.0], d), [gelu(1.0)]);
        let gp = pre_activation_gradient(&[1.0], w.up_w, &f.pre, d);
        assert_eq!(gp, [3.0 * gelu_and_slope(1.0).1]);
        assert_eq!(down_weight_gradient(&[0.25], &gp, d), [0.25 * gp[0]]);
        assert_eq!(input_gradient(&gp, w.down_w, d), [2.0 * gp[0]]);
    }
}
