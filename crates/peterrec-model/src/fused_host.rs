//! The fused cross-entropy's loss and gradients computed on host buffers, for the CPU backends.
//!
//! [`crate::fused`] needs, per chunk of rows, the logits `x·W (+ b)`, their softmax, and two
//! products with it. On NdArray and Flex every one of those is a fresh `[rows, V]` tensor (at
//! shape A 26 MB, at the paper's shape up to 256 MiB): allocated, page-faulted in, and on Flex
//! zeroed and then copied once more to realign it. Here the same arithmetic runs on plain
//! `f32` slices (`x` and `W` read in place by [`autodiff_loss`], the gradients handed back without a
//! copy):
//! the logits go into one buffer that is reused for every chunk, the softmax turns
//! it into `G = P / n` in place ([`crate::softmax_rows`]), and the three products are `gemm`
//! calls (the crate Flex itself uses, with its AVX-512 kernels) that write `∂x` in place and
//! accumulate `∂W` and `∂b` across chunks.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::fused::WeightLayout as Layout;
use crate::host::{note_host_run, register, values, Saved};
use crate::softmax_rows::softmax_row;

/// Loss and gradients of the mean softmax cross-entropy of `x·W + b` against `targets`.
#[derive(Clone)]
pub(crate) struct HostGradients {
    /// The mean loss.
    pub loss: f32,
    /// `[n, C]`, row-major.
    pub x: Vec<f32>,
    /// In the weight's own layout (`[C, V]` or `[V, C]`), row-major.
    pub w: Vec<f32>,
    /// `[V]`, when there is a bias.
    pub b: Option<Vec<f32>>,
}

/// The inputs of [`gradients`], as row-major host slices.
pub(crate) struct HostInputs<'a> {
    /// `[n, C]`.
    pub x: &'a [f32],
    /// `[C, V]` or `[V, C]`, see `layout`.
    pub w: &'a [f32],
    /// How `w` is stored.
    pub layout: Layout,
    /// `[V]`.
    pub b: Option<&'a [f32]>,
    /// `[n]`, each in `0..V`.
    pub targets: &'a [usize],
    /// Classes.
    pub v: usize,
    /// Rows per chunk (at least one).
    pub rows: usize,
    /// Whether `∂x` is wanted (else [`HostGradients::x`] is empty and its product skipped).
    pub want_x: bool,
    /// Whether `∂W` is wanted (else [`HostGradients::w`] is empty and its product skipped).
    pub want_w: bool,
    /// Whether `∂b` is wanted, when there is a bias (else [`HostGradients::b`] is `None`).
    pub want_b: bool,
}

/// Products below this many multiply-adds run on one thread (as Flex decides).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

pub(crate) fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    }
}

/// A strided matrix view for [`product`]: element `(i, j)` at `i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub(crate) ptr: *const f32,
    pub(crate) row_stride: isize,
    pub(crate) col_stride: isize,
}

impl View {
    /// A row-major `[rows, cols]` matrix (`cols` values per row) held in `values`.
    pub(crate) fn rows(values: &[f32], cols: usize) -> Self {
        Self {
            ptr: values.as_ptr(),
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major matrix of `cols` columns held in `values`.
    pub(crate) fn transposed(values: &[f32], cols: usize) -> Self {
        Self {
            ptr: values.as_ptr(),
            row_stride: 1,
            col_stride: cols as isize,
        }
    }
}

/// `dst ← (accumulate ? dst : 0) + lhs·rhs` for `dst: [m, n]` row-major (contiguous rows of
/// `n`), `lhs: [m, k]`, `rhs: [k, n]`.
///
/// # Safety
/// `dst` must hold `m·n` values; each view must address `[m, k]` / `[k, n]` valid values.
pub(crate) unsafe fn product(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    lhs: View,
    rhs: View,
    accumulate: bool,
) {
    debug_assert!(dst.len() >= m * n);
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
}

/// `lhs·rhs` in a new row-major `[m, n]` buffer (zeros when `m`, `n` or `k` is 0: `gemm` is not
/// called then).
///
/// # Safety
/// Each view must address `[m, k]` / `[k, n]` valid values, as for [`product`].
pub(crate) unsafe fn new_product(m: usize, n: usize, k: usize, lhs: View, rhs: View) -> Vec<f32> {
    let mut dst = vec![0.0f32; m * n];
    if m > 0 && n > 0 && k > 0 {
        // SAFETY: `dst` holds `m·n` values; the views are the caller's.
        unsafe { product(&mut dst, m, n, k, lhs, rhs, false) };
    }
    dst
}

/// Loss and gradients on the host (see the module docs). The buffer of logits holds at most
/// `rows · V` values.
///
/// # Panics
/// If there are no targets (`C` is read off `x` as `x.len() / n`), a slice's length disagrees
/// with `n`, `C`, `V`, or a target is not below `V`.
pub(crate) fn gradients(input: HostInputs<'_>) -> HostGradients {
    let HostInputs {
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
    // Element (c, j) of `W` seen as `[C, V]`, and of `Wᵀ` seen as `[V, C]`.
    let (w_cs, w_js) = match layout {
        Layout::Columns => (v as isize, 1),
        Layout::Rows => (1, c as isize),
    };
    let w_cv = View {
        ptr: w.as_ptr(),
        row_stride: w_cs,
        col_stride: w_js,
    };
    let w_vc = View {
        ptr: w.as_ptr(),
        row_stride: w_js,
        col_stride: w_cs,
    };
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
        let xc = View {
            ptr: x[start * c..].as_ptr(),
            row_stride: c as isize,
            col_stride: 1,
        };
        // Logits, then G = softmax / n in place, one row per task.
        // SAFETY: `g` is [len, V]; `xc` addresses rows start..start+len of `x` ([n, C]); `w_cv`
        // addresses `w` ([C, V] either way round).
        unsafe { product(g, len, v, c, xc, w_cv, false) };
        g.par_chunks_mut(v.max(1))
            .zip(log_sum_exp[..len].par_iter_mut())
            .with_min_len(rows_per_task)
            .for_each(|(row, lse)| *lse = softmax_row(row, b, scale));
        loss_sum += log_sum_exp[..len].iter().map(|&l| l as f64).sum::<f64>();
        let g = View {
            ptr: g.as_ptr(),
            row_stride: v as isize,
            col_stride: 1,
        };
        if want_x {
            // SAFETY: as above; `grad_x[start·C..]` holds the `[len, C]` rows of this chunk.
            unsafe { product(&mut grad_x[start * c..], len, c, v, g, w_vc, false) };
        }
        // SAFETY: as above; `grad_w` holds `C·V` values (when wanted), `grad_b` `V`.
        unsafe {
            match layout {
                _ if !want_w => {}
                // ∂W[C, V] += xcᵀ·G
                Layout::Columns => product(
                    &mut grad_w,
                    c,
                    v,
                    len,
                    View {
                        ptr: xc.ptr,
                        row_stride: 1,
                        col_stride: c as isize,
                    },
                    g,
                    true,
                ),
                // ∂W[V, C] += Gᵀ·xc
                Layout::Rows => product(
                    &mut grad_w,
                    v,
                    c,
                    len,
                    View {
                        ptr: g.ptr,
                        row_stride: 1,
                        col_stride: v as isize,
                    },
                    xc,
                    true,
                ),
            }
            if let Some(grad_b) = grad_b.as_mut() {
                // ∂b[1, V] += 1ᵀ·G
                let ones = View {
                    ptr: ones.as_ptr(),
                    row_stride: len as isize,
                    col_stride: 1,
                };
                product(grad_b, 1, v, len, ones, g, true);
            }
        }
    }
    // The one-hot part of G = P/n − onehot/n, row by row: the picked logit leaves the loss,
    // −W[:, t]/n goes to ∂x, −x/n to W's class-t weights in ∂W, −1/n to ∂b[t].
    let w_at = |ci: usize, j: usize| match layout {
        Layout::Columns => ci * v + j,
        Layout::Rows => j * c + ci,
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
    HostGradients {
        loss: (loss_sum * scale as f64) as f32,
        x: grad_x,
        w: grad_w,
        b: grad_b,
    }
}

/// A targets tensor's values as indices.
///
/// # Panics
/// If a target is negative (the callers check the range `0..V` against the weight).
pub(crate) fn target_indices<B: Backend>(targets: Tensor<B, 1, Int>) -> Vec<usize> {
    targets
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .expect("integer targets")
        .into_iter()
        .map(|t| usize::try_from(t).expect("targets lie in 0..V"))
        .collect()
}

/// What the backward step of [`autodiff_loss`] keeps: the gradients, already computed.
struct SavedInner<I: Backend> {
    grads: HostGradients,
    x_dims: [usize; 2],
    w_dims: [usize; 2],
    device: I::Device,
}

/// The backward step of the host fused cross-entropy (parents: `x`, `W` and, with a bias, `b`):
/// the saved gradients scaled by the upstream one.
#[derive(Debug)]
struct FusedBackward;

impl FusedBackward {
    fn step<I: Backend, const N: usize>(ops: Ops<Saved<SavedInner<I>>, N>, grads: &mut Gradients) {
        // Parents: x, W and, when N is 3, b.
        let ids: Vec<Option<NodeId>> = ops
            .parents
            .iter()
            .map(|p| p.as_ref().map(|n| n.id))
            .collect();
        let upstream = grads.consume::<I>(&ops.node);
        let u = values::<I>(&upstream)[0];
        // The node is consumed once, so the gradients are moved out, not copied.
        let saved = Arc::try_unwrap(ops.state.0).unwrap_or_else(|shared| SavedInner {
            grads: shared.grads.clone(),
            x_dims: shared.x_dims,
            w_dims: shared.w_dims,
            device: shared.device.clone(),
        });
        let scaled = |mut g: Vec<f32>| {
            if u != 1.0 {
                g.par_iter_mut().for_each(|g| *g *= u);
            }
            g
        };
        let device = &saved.device;
        let HostGradients { x, w, b, .. } = saved.grads;
        if let Some(id) = ids[0] {
            register::<I>(grads, id, scaled(x), saved.x_dims.to_vec(), device);
        }
        if let Some(id) = ids[1] {
            register::<I>(grads, id, scaled(w), saved.w_dims.to_vec(), device);
        }
        if let (Some(id), Some(b)) = (ids.get(2).copied().flatten(), b) {
            let v = b.len();
            register::<I>(grads, id, scaled(b), vec![v], device);
        }
    }
}

impl<I: Backend> Backward<I, 2> for FusedBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        Self::step(ops, grads);
    }
}

impl<I: Backend> Backward<I, 3> for FusedBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        Self::step(ops, grads);
    }
}

/// The fused cross-entropy as one node of the autodiff graph over the host backend `I`: the
/// loss and the gradients of the tracked inputs are computed here, on buffers read in place, and
/// the backward step hands them over (scaled by the upstream gradient).
///
/// # Shapes
/// - x: `[n, C]` (at least one row)
/// - w: `[C, V]` or `[V, C]`, see `layout`
/// - b: `[V]`
/// - targets: `[n]`, each in `0..V`
/// - output: `[1]`
pub(crate) fn autodiff_loss<I: Backend>(
    x: Tensor<Autodiff<I>, 2>,
    w: Tensor<Autodiff<I>, 2>,
    b: Option<Tensor<Autodiff<I>, 1>>,
    targets: Tensor<Autodiff<I>, 1, Int>,
    layout: Layout,
    rows: usize,
) -> Tensor<Autodiff<I>, 1> {
    note_host_run();
    let (x_dims, w_dims) = (x.dims(), w.dims());
    let v = match layout {
        Layout::Columns => w_dims[1],
        Layout::Rows => w_dims[0],
    };
    let targets = target_indices(targets);
    let (x, w) = (x.into_primitive().tensor(), w.into_primitive().tensor());
    let b = b.map(|b| b.into_primitive().tensor());
    let want_x = !x.node.requirement.is_none();
    let want_w = !w.node.requirement.is_none();
    let want_b = b.as_ref().is_some_and(|b| !b.node.requirement.is_none());
    let device = I::float_device(&x.primitive);
    let grads = {
        let b_values = b.as_ref().map(|b| values::<I>(&b.primitive));
        gradients(HostInputs {
            x: &values::<I>(&x.primitive),
            w: &values::<I>(&w.primitive),
            layout,
            b: b_values.as_deref(),
            targets: &targets,
            v,
            rows,
            want_x,
            want_w,
            want_b,
        })
    };
    let loss = I::float_from_data(TensorData::new(vec![grads.loss], [1]), &device);
    // Dropped unused when nothing upstream trains.
    let saved = Saved(Arc::new(SavedInner {
        grads,
        x_dims,
        w_dims,
        device,
    }));
    let output = match b {
        Some(b) => match FusedBackward
            .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        },
        None => match FusedBackward
            .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        },
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
