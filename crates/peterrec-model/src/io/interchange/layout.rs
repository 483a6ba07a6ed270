//! Layout conversions between the port's tensors and ours (exact: they only move values).

use super::*;

/// `[rows, cols]` → `[cols, rows]`.
pub(super) fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// Port `Conv1d` weight `[out, in, k]` → our `[k·in, out]`.
pub(super) fn conv_from_port(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for i in 0..c_in {
            for j in 0..k {
                out[(j * c_in + i) * c_out + o] = w[(o * c_in + i) * k + j];
            }
        }
    }
    out
}

/// Our `[k·in, out]` → port `Conv1d` weight `[out, in, k]`.
pub(super) fn conv_to_port(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for i in 0..c_in {
            for j in 0..k {
                out[(o * c_in + i) * k + j] = w[(j * c_in + i) * c_out + o];
            }
        }
    }
    out
}

pub(super) fn host<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Vec<f32> {
    p.val()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float parameter")
}

pub(super) fn param<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}
