//! The mean softmax cross-entropy of `x·W (+ b)` against targets, with its gradients, on host
//! buffers.
//!
//! Per chunk of rows the logits `x·W (+ b)` go into one buffer that is reused for every chunk,
//! the softmax turns it into `G = P / n` in place ([`crate::softmax::softmax_row`]), and three
//! products with it write `∂x` in place and accumulate `∂W` and `∂b` across chunks. The one-hot
//! part of `G = (P − onehot) / n` is applied last, row by row. No `[n, V]` buffer is ever
//! allocated: at most `rows · V` logits are alive at a time.

use rayon::prelude::*;

use crate::gemm::{product, MatMut, MatRef};
use crate::softmax::softmax_row;

/// How the class weights are stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WeightLayout {
    /// `[C, V]`: one column per class (a `Linear` weight).
    Columns,
    /// `[V, C]`: one row per class (an embedding table).
    Rows,
}

/// Loss and gradients of the mean softmax cross-entropy of `x·W + b` against `targets`.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// The mean loss.
    pub loss: f32,
    /// `[n, C]`, row-major; empty unless wanted.
    pub x: Vec<f32>,
    /// In the weight's own layout (`[C, V]` or `[V, C]`), row-major; empty unless wanted.
    pub w: Vec<f32>,
    /// `[V]`, when there is a bias and its gradient is wanted.
    pub b: Option<Vec<f32>>,
}

/// The inputs of [`gradients`], as row-major slices.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// `[n, C]`.
    pub x: &'a [f32],
    /// `[C, V]` or `[V, C]`, see `layout`.
    pub w: &'a [f32],
    /// How `w` is stored.
    pub layout: WeightLayout,
    /// `[V]`.
    pub b: Option<&'a [f32]>,
    /// `[n]`, each in `0..V`.
    pub targets: &'a [usize],
    /// Classes.
    pub v: usize,
    /// Rows per chunk (clamped to `1..=n`).
    pub rows: usize,
    /// Whether `∂x` is wanted (else [`Gradients::x`] is empty and its product skipped).
    pub want_x: bool,
    /// Whether `∂W` is wanted (else [`Gradients::w`] is empty and its product skipped).
    pub want_w: bool,
    /// Whether `∂b` is wanted, when there is a bias (else [`Gradients::b`] is `None`).
    pub want_b: bool,
}

/// Loss and gradients (see the module docs). The buffer of logits holds at most `rows · V`
/// values.
///
/// # Panics
/// If there are no targets (`C` is read off `x` as `x.len() / n`), a slice's length disagrees
/// with `n`, `C`, `V`, or a target is not below `V`.
pub fn gradients(input: Inputs<'_>) -> Gradients {
    let Inputs {
        x,
        w,
        layout,
        b,
        targets,
        v,
        rows,
        want_x,
        want_w,
        want_b,
    } = input;
    let n = targets.len();
    let c = x.len().checked_div(n).unwrap_or(0);
    assert_eq!(x.len(), n * c, "input is [n, C]");
    assert_eq!(w.len(), c * v, "weight is [C, V] or [V, C]");
    assert!(b.is_none_or(|b| b.len() == v), "bias is [V]");
    assert!(targets.iter().all(|&t| t < v), "targets lie in 0..V");
    let scale = 1.0 / n.max(1) as f32;
    // `W` seen as `[C, V]`, and `Wᵀ` as `[V, C]`, whichever way it is stored.
    let w_cv = match layout {
        WeightLayout::Columns => MatRef::rows(w, c, v),
        WeightLayout::Rows => MatRef::transposed(w, v, c),
    };
    let w_vc = w_cv.t();
    let mut grad_x = if want_x {
        vec![0f32; n * c]
    } else {
        Vec::new()
    };
    let mut grad_w = if want_w {
        vec![0f32; c * v]
    } else {
        Vec::new()
    };
    let mut grad_b = b.filter(|_| want_b).map(|_| vec![0f32; v]);
    let rows = rows.clamp(1, n.max(1));
    let mut logits = vec![0f32; rows.min(n) * v];
    let ones = vec![1f32; rows];
    let mut log_sum_exp = vec![0f32; rows];
    // Rows per Rayon task in the softmax: about 64 Ki logits, enough to amortise the hand-off.
    let rows_per_task = ((1usize << 16) / v.max(1)).max(1);
    let mut loss_sum = 0f64;
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let g = &mut logits[..len * v];
        let xc = MatRef::rows(&x[start * c..], len, c);
        // Logits, then G = softmax / n in place, one row per task.
        product(MatMut::rows(g, len, v), xc, w_cv, false);
        g.par_chunks_mut(v.max(1))
            .zip(log_sum_exp[..len].par_iter_mut())
            .with_min_len(rows_per_task)
            .for_each(|(row, lse)| *lse = softmax_row(row, b, scale));
        loss_sum += log_sum_exp[..len].iter().map(|&l| l as f64).sum::<f64>();
        let g = MatRef::rows(g, len, v);
        if want_x {
            let dst = MatMut::rows(&mut grad_x[start * c..], len, c);
            product(dst, g, w_vc, false);
        }
        match layout {
            _ if !want_w => {}
            // ∂W[C, V] += xcᵀ·G
            WeightLayout::Columns => product(MatMut::rows(&mut grad_w, c, v), xc.t(), g, true),
            // ∂W[V, C] += Gᵀ·xc
            WeightLayout::Rows => product(MatMut::rows(&mut grad_w, v, c), g.t(), xc, true),
        }
        if let Some(grad_b) = grad_b.as_mut() {
            // ∂b[1, V] += 1ᵀ·G
            let ones = MatRef::new(&ones, 1, len, len, 1);
            product(MatMut::rows(grad_b, 1, v), ones, g, true);
        }
    }
    // The one-hot part of G = P/n − onehot/n, row by row: the picked logit leaves the loss,
    // −W[:, t]/n goes to ∂x, −x/n to W's class-t weights in ∂W, −1/n to ∂b[t].
    let w_at = |ci: usize, j: usize| match layout {
        WeightLayout::Columns => ci * v + j,
        WeightLayout::Rows => j * c + ci,
    };
    for (i, &t) in targets.iter().enumerate() {
        let xi = &x[i * c..(i + 1) * c];
        let mut picked = b.map_or(0.0, |b| b[t] as f64);
        for (ci, &xv) in xi.iter().enumerate() {
            let wv = w[w_at(ci, t)];
            picked += xv as f64 * wv as f64;
            if want_x {
                grad_x[i * c + ci] -= wv * scale;
            }
            if want_w {
                grad_w[w_at(ci, t)] -= xv * scale;
            }
        }
        loss_sum -= picked;
        if let Some(grad_b) = grad_b.as_mut() {
            grad_b[t] -= scale;
        }
    }
    Gradients {
        loss: (loss_sum * scale as f64) as f32,
        x: grad_x,
        w: grad_w,
        b: grad_b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss and gradients by a naive double loop in `f64`, `[C, V]` weights.
    fn naive(x: &[f32], w: &[f32], b: &[f32], t: &[usize], v: usize) -> (f64, Vec<f64>, Vec<f64>) {
        let n = t.len();
        let c = x.len() / n;
        let (mut loss, mut gx, mut gw) = (0.0, vec![0.0; n * c], vec![0.0; c * v]);
        for (i, &ti) in t.iter().enumerate() {
            let z: Vec<f64> = (0..v)
                .map(|j| {
                    b[j] as f64
                        + (0..c)
                            .map(|k| (x[i * c + k] * w[k * v + j]) as f64)
                            .sum::<f64>()
                })
                .collect();
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|z| (z - max).exp()).sum();
            loss += max + sum.ln() - z[ti];
            for j in 0..v {
                let g = ((z[j] - max).exp() / sum - f64::from(u8::from(j == ti))) / n as f64;
                for k in 0..c {
                    gx[i * c + k] += g * w[k * v + j] as f64;
                    gw[k * v + j] += g * x[i * c + k] as f64;
                }
            }
        }
        (loss / n as f64, gx, gw)
    }

    /// Both layouts, in one chunk and across chunks, against the naive loop.
    #[test]
    fn matches_a_naive_loop_in_both_layouts_and_chunkings() {
        let (n, c, v) = (7, 3, 5);
        let x: Vec<f32> = (0..n * c)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let w: Vec<f32> = (0..c * v)
            .map(|i| ((i * 17 % 13) as f32 - 6.0) * 0.2)
            .collect();
        let b: Vec<f32> = (0..v).map(|j| j as f32 * 0.1).collect();
        let t: Vec<usize> = (0..n).map(|i| (i * 3) % v).collect();
        let (loss, gx, gw) = naive(&x, &w, &b, &t, v);
        // The same weights stored as rows, `[V, C]`.
        let w_rows: Vec<f32> = (0..v * c).map(|i| w[(i % c) * v + i / c]).collect();
        for (layout, weights) in [(WeightLayout::Columns, &w), (WeightLayout::Rows, &w_rows)] {
            for rows in [n, 3, 1] {
                let got = gradients(Inputs {
                    x: &x,
                    w: weights,
                    layout,
                    b: Some(&b),
                    targets: &t,
                    v,
                    rows,
                    want_x: true,
                    want_w: true,
                    want_b: true,
                });
                assert!((got.loss as f64 - loss).abs() < 1e-5, "{layout:?} {rows}");
                for (g, want) in got.x.iter().zip(&gx) {
                    assert!((*g as f64 - want).abs() < 1e-5, "{layout:?} {rows}: ∂x");
                }
                for (i, &g) in got.w.iter().enumerate() {
                    let want = match layout {
                        WeightLayout::Columns => gw[i],
                        WeightLayout::Rows => gw[(i % c) * v + i / c],
                    };
                    assert!((g as f64 - want).abs() < 1e-5, "{layout:?} {rows}: ∂W");
                }
                let sum_b: f32 = got.b.unwrap().iter().sum();
                assert!(sum_b.abs() < 1e-5, "∂b sums to 0 over the classes");
            }
        }
    }
}
