//! The dilated convolution on host buffers: the tap gather, the product with the bias folded
//! in, and the backward products with a scatter of the taps' gradient back to the input rows.
//!
//! - forward: the taps are gathered into one `[B·O, k·C_in]` buffer (sequences split over
//!   Rayon's threads, zeros written for positions outside the sequence), the output starts as
//!   the bias in every row and one product adds `taps · W`;
//! - backward: `∂b` is the column sums of `∂y` ([`crate::column_sums`]), `∂W = tapsᵀ · ∂y`, and
//!   `∂x` is `∂y · Wᵀ` (one product into a `[B·O, k·C_in]` buffer) scattered back to the input
//!   rows, sequences split over the threads (a sequence's taps read only its own rows, so no two
//!   threads write one row).
//!
//! Which input row feeds tap `j` of output `o` is `sources[o·k + j]` (`None`: a zero tap), the
//! same for every sequence of the batch.

use rayon::prelude::*;

use crate::gemm::{new_product, product, MatMut, MatRef};

/// The shapes of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Sequences.
    pub batch: usize,
    /// Input positions per sequence.
    pub inputs: usize,
    /// Output positions per sequence.
    pub outputs: usize,
    /// Taps per output.
    pub k: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
}

impl ConvDims {
    /// Width of a taps row, `k·C_in`.
    pub fn width(&self) -> usize {
        self.k * self.c_in
    }

    /// Output rows, `B·O`.
    pub fn output_rows(&self) -> usize {
        self.batch * self.outputs
    }
}

/// The taps `[B·O, k·C_in]` of `x` (`[B·I, C_in]`): row `b·O + o`, columns `j·C_in..`, hold
/// input row `b·I + s` for source `s` of tap `j` of output `o`, or zeros.
///
/// # Panics
/// If a source is not below `d.inputs` or `x` is shorter than `[B·I, C_in]`.
pub fn gather(x: &[f32], sources: &[Option<usize>], d: ConvDims) -> Vec<f32> {
    let (c, width) = (d.c_in, d.width());
    let mut taps = vec![0.0f32; d.batch * d.outputs * width];
    taps.par_chunks_mut((d.outputs * width).max(1))
        .enumerate()
        .for_each(|(b, seq)| {
            let base = b * d.inputs;
            for (tap, source) in seq.chunks_mut(c).zip(sources) {
                if let Some(s) = source {
                    let at = (base + s) * c;
                    tap.copy_from_slice(&x[at..at + c]);
                }
            }
        });
    taps
}

/// `y = taps · W + b` (`[B·O, C_out]`) for `W: [k·C_in, C_out]` and `b: [C_out]`.
///
/// # Panics
/// If a slice's length disagrees with `d`.
pub fn forward(taps: &[f32], w: &[f32], b: &[f32], d: ConvDims) -> Vec<f32> {
    let (m, n, k) = (d.output_rows(), d.c_out, d.width());
    assert_eq!(taps.len(), m * k, "taps are [B·O, k·C]");
    assert_eq!(w.len(), k * n, "the weight is [k·C, C_out]");
    assert_eq!(b.len(), n, "the bias is [C_out]");
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    for _ in 0..m {
        y.extend_from_slice(b);
    }
    if m > 0 {
        let dst = MatMut::rows(&mut y, m, n);
        product(dst, MatRef::rows(taps, m, k), MatRef::rows(w, k, n), true);
    }
    y
}

/// `∂W = tapsᵀ · ∂y` (`[k·C_in, C_out]`).
///
/// # Panics
/// If `taps` or `gy` is shorter than `d` says.
pub fn weight_gradient(taps: &[f32], gy: &[f32], d: ConvDims) -> Vec<f32> {
    let (m, n, width) = (d.output_rows(), d.c_out, d.width());
    new_product(MatRef::transposed(taps, m, width), MatRef::rows(gy, m, n))
}

/// `∂x` (`[B·I, C_in]`) for the upstream gradient `gy` (`[B·O, C_out]`) and the weight `w`
/// (`[k·C_in, C_out]`): the taps' gradient `∂y · Wᵀ` scattered back along `sources`.
///
/// # Panics
/// If `gy` or `w` is shorter than `d` says.
pub fn input_gradient(gy: &[f32], w: &[f32], sources: &[Option<usize>], d: ConvDims) -> Vec<f32> {
    let (m, n, width) = (d.output_rows(), d.c_out, d.width());
    let gtaps = new_product(MatRef::rows(gy, m, n), MatRef::transposed(w, width, n));
    scatter(&gtaps, sources, d)
}

/// `∂x` from the taps' gradient: the reverse of [`gather`], summing where taps share a row.
fn scatter(gtaps: &[f32], sources: &[Option<usize>], d: ConvDims) -> Vec<f32> {
    let (c, width) = (d.c_in, d.width());
    let mut gx = vec![0.0f32; d.batch * d.inputs * c];
    if d.inputs == 0 || c == 0 {
        return gx;
    }
    gx.par_chunks_mut(d.inputs * c)
        .zip(gtaps.par_chunks((d.outputs * width).max(1)))
        .for_each(|(gx, seq)| {
            for (tap, source) in seq.chunks(c).zip(sources) {
                if let Some(s) = source {
                    gx[s * c..(s + 1) * c]
                        .iter_mut()
                        .zip(tap)
                        .for_each(|(g, t)| *g += t);
                }
            }
        });
    gx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A causal convolution of width 2, dilation 1, by hand: `y[o] = x[o−1]·W₀ + x[o]·W₁ + b`.
    #[test]
    fn a_causal_convolution_by_hand() {
        let d = ConvDims {
            batch: 2,
            inputs: 3,
            outputs: 3,
            k: 2,
            c_in: 1,
            c_out: 1,
        };
        let sources = [None, Some(0), Some(0), Some(1), Some(1), Some(2)];
        let x = [1.0f32, 2.0, 3.0, 10.0, 20.0, 30.0];
        let (w, b) = ([0.5f32, 2.0], [1.0f32]);
        let taps = gather(&x, &sources, d);
        assert_eq!(
            taps,
            [0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 0.0, 10.0, 10.0, 20.0, 20.0, 30.0]
        );
        let y = forward(&taps, &w, &b, d);
        assert_eq!(y, [3.0, 5.5, 8.0, 21.0, 46.0, 71.0]);
        let gy = [1.0f32; 6];
        // ∂W₀ = Σ x[o−1], ∂W₁ = Σ x[o].
        assert_eq!(weight_gradient(&taps, &gy, d), [33.0, 66.0]);
        // ∂x[i] = W₁ + W₀ where a next output exists.
        assert_eq!(
            input_gradient(&gy, &w, &sources, d),
            [2.5, 2.5, 2.0, 2.5, 2.5, 2.0]
        );
    }
}
