//! Deterministic, host-side weight initialisation.
//!
//! The original NextItNet/PeterRec code initialises embeddings, convolutions and heads from a
//! truncated normal (standard deviation 0.02, resampled outside two standard deviations). Burn 0.21
//! has no truncated-normal initializer, and its backend RNGs differ between backends, so weights are
//! drawn here on the host from a seeded ChaCha8 stream: the same seed gives the same model on every
//! backend.

use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Standard deviation of the original code's truncated-normal initializer.
pub const DEFAULT_INIT_STD: f64 = 0.02;

/// Draws `n` values from a normal(0, std) truncated at ±2·std (TF's `truncated_normal_initializer`).
pub fn truncated_normal(n: usize, std: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // Box–Muller: two independent standard normals per pair of uniforms.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        for z in [r * theta.cos(), r * theta.sin()] {
            if z.abs() <= 2.0 && out.len() < n {
                out.push((z * std) as f32);
            }
        }
    }
    out
}

/// A seeded RNG for one named parameter, so that adding a parameter does not shift the others.
pub fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = crate::hash::Fnv64::new();
    h.write_u64(seed);
    h.write(name.as_bytes());
    ChaCha8Rng::seed_from_u64(h.finish())
}

/// A truncated-normal float parameter of the given shape.
pub fn tn_param<B: Backend, const D: usize>(
    shape: [usize; D],
    std: f64,
    seed: u64,
    name: &str,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let n = shape.iter().product();
    let values = truncated_normal(n, std, &mut rng_for(seed, name));
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

/// A parameter filled with zeros.
pub fn zeros_param<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::zeros(shape, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_normal_stays_within_two_std_and_is_seeded() {
        let a = truncated_normal(10_000, 0.02, &mut rng_for(7, "w"));
        let b = truncated_normal(10_000, 0.02, &mut rng_for(7, "w"));
        let c = truncated_normal(10_000, 0.02, &mut rng_for(7, "v"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| v.abs() <= 0.04 + 1e-7));
        let mean: f64 = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let var: f64 = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        // A normal truncated at 2 sigma has std 0.88 sigma.
        let sd = var.sqrt();
        assert!((sd - 0.0176).abs() < 0.001, "sd {sd}");
    }
}
