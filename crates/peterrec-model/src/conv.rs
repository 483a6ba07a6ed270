//! The dilated 1-D convolution of NextItNet, in matrix-multiplication form.
//!
//! # Formulation
//! Burn's `Conv1d` works on `[batch, channels, length]` and forces a layout swap around every
//! LayerNorm and Linear. This module keeps activations as `[batch, length, channels]`: it pads the
//! length axis by `(k−1)·d` (left only when causal), takes the `k` shifted views
//! `narrow(1, j·d, L)`, concatenates them on channels to `[B, L, k·C]` and applies one
//! `Linear(k·C → C_out)` with bias. It is the same operator as a dilated convolution (weight
//! `W_lin[j·C + i, o] = W_conv[o, i, j]`). Measured on the ndarray backend, one training step at
//! B=32, L=20, C=64, V=10k, 4 blocks: `Conv1d` 650 ms, this form 265 ms (`../shared/notes`);
//! our own measurement is in `docs/benchmarks.md`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, ops::PadMode, Tensor};

use crate::init::{tn_param, zeros_param, DEFAULT_INIT_STD};

/// Configuration of a [`DilatedConv1d`].
#[derive(Config, Debug)]
pub struct DilatedConv1dConfig {
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Kernel width `k`.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Dilation `d`.
    #[config(default = 1)]
    pub dilation: usize,
    /// Causal (left padding only: output `t` sees inputs `≤ t`) or centred (symmetric padding).
    #[config(default = true)]
    pub causal: bool,
    /// Standard deviation of the truncated-normal weight init.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Seed of the weight init.
    #[config(default = 0)]
    pub seed: u64,
}

impl DilatedConv1dConfig {
    /// Builds the layer; `name` makes the init stream unique within a model.
    pub fn init_named<B: Backend>(&self, name: &str, device: &B::Device) -> DilatedConv1d<B> {
        let d_in = self.kernel_size * self.channels_in;
        let std = if self.init_std > 0.0 {
            self.init_std
        } else {
            DEFAULT_INIT_STD
        };
        let linear = Linear {
            weight: tn_param([d_in, self.channels_out], std, self.seed, name, device),
            bias: Some(zeros_param([self.channels_out], device)),
        };
        DilatedConv1d {
            linear,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            causal: self.causal,
        }
    }

    /// Builds the layer.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DilatedConv1d<B> {
        self.init_named("conv", device)
    }
}

/// A dilated 1-D convolution over `[batch, length, channels]`, causal or centred.
#[derive(Module, Debug)]
pub struct DilatedConv1d<B: Backend> {
    /// The `k·C_in → C_out` projection (weight `[k·C_in, C_out]`, row `j·C_in + i` is tap `j`,
    /// input channel `i`; tap `k−1` is the current position in causal mode).
    pub linear: Linear<B>,
    /// Kernel width `k`.
    pub kernel_size: usize,
    /// Dilation `d`.
    pub dilation: usize,
    /// Causal (left padding) or centred.
    pub causal: bool,
}

impl<B: Backend> DilatedConv1d<B> {
    /// Total padding `(k−1)·d` added on the length axis.
    pub fn padding(&self) -> usize {
        (self.kernel_size - 1) * self.dilation
    }

    /// Applies the convolution.
    ///
    /// # Shapes
    /// - input: `[batch, length, channels_in]`
    /// - output: `[batch, length, channels_out]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [_, length, _] = x.dims();
        let k = self.kernel_size;
        if k == 1 {
            return self.linear.forward(x);
        }
        let total = self.padding();
        let (left, right) = if self.causal {
            (total, 0)
        } else {
            (total / 2, total - total / 2)
        };
        let padded = pad_length(x, left, right);
        let taps: Vec<Tensor<B, 3>> = (0..k)
            .map(|j| padded.clone().narrow(1, j * self.dilation, length))
            .collect();
        self.linear.forward(Tensor::cat(taps, 2))
    }
}

/// Zero-pads the length axis (dim 1) of `[B, L, C]`.
fn pad_length<B: Backend>(x: Tensor<B, 3>, left: usize, right: usize) -> Tensor<B, 3> {
    if left == 0 && right == 0 {
        return x;
    }
    x.pad([(left, right), (0, 0)], PadMode::Constant(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    /// Direct evaluation of the dilated convolution, on the host.
    fn reference(conv: &DilatedConv1d<B>, x: &[f32], b: usize, l: usize, c: usize) -> Vec<f32> {
        let w: Vec<f32> = conv.linear.weight.val().into_data().to_vec().unwrap();
        let bias: Vec<f32> = conv
            .linear
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        let co = bias.len();
        let k = conv.kernel_size;
        let d = conv.dilation as isize;
        let total = conv.padding() as isize;
        let left = if conv.causal { total } else { total / 2 };
        let mut out = vec![0f32; b * l * co];
        for bi in 0..b {
            for t in 0..l as isize {
                for o in 0..co {
                    let mut acc = bias[o];
                    for j in 0..k as isize {
                        let src = t + j * d - left;
                        if src < 0 || src >= l as isize {
                            continue;
                        }
                        for i in 0..c {
                            acc += x[(bi * l + src as usize) * c + i]
                                * w[((j as usize) * c + i) * co + o];
                        }
                    }
                    out[(bi * l + t as usize) * co + o] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution_causal_and_centred() {
        let device = Default::default();
        let (b, l, c) = (2, 9, 3);
        let x: Vec<f32> = (0..b * l * c)
            .map(|i| ((i * 7 % 11) as f32) - 5.0)
            .collect();
        for causal in [true, false] {
            for d in [1, 2, 4] {
                let conv = DilatedConv1dConfig::new(c, 4)
                    .with_dilation(d)
                    .with_causal(causal)
                    .with_init_std(0.5)
                    .init::<B>(&device);
                let input =
                    Tensor::<B, 3>::from_data(TensorData::new(x.clone(), [b, l, c]), &device);
                let got: Vec<f32> = conv.forward(input).into_data().to_vec().unwrap();
                let want = reference(&conv, &x, b, l, c);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4, "causal={causal} d={d}: {g} vs {w}");
                }
            }
        }
    }
}
