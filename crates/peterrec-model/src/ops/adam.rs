//! Adam with its update fused into one pass over each parameter, on the CPU backends.
//!
//! Burn's [`Adam`] updates a parameter with about a dozen tensor operations (scale the first
//! moment, scale the gradient, add, square, scale, add, square root, add, divide, scale,
//! subtract), each a pass over the whole parameter that allocates its result. At the paper's
//! shape a model holds tens of millions of trainable values (the 50,000 × 256 item embedding
//! and softmax head alone are 12.8 M each). [`FusedAdam`] computes the same update — the same
//! formula in the same order of `f32` operations, so the same values — in one pass that reads
//! the gradient and rewrites the parameter and both moments in place (each buffer is copied first only when something else
//! still holds it; the pass is `peterrec_kernels::adam::update`). That runs on NdArray and Flex
//! with `f32` tensors; on any other backend or element type it is Burn's [`Adam`] with the same
//! settings.
//!
//! The optimizer state is Burn's [`AdamState`], so checkpoints written with either optimizer
//! load into the other.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use peterrec_model::{FusedAdamConfig, NextItNetConfig, NextItNetLM};
//!
//! type B = Autodiff<NdArray>;
//! let optim = FusedAdamConfig::new()
//!     .with_weight_decay(Some(1e-4))
//!     .init::<B, NextItNetLM<B>>();
//! # let _ = optim;
//! ```

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, SimpleOptimizer,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor, TensorData};
use peterrec_kernels::adam::{update, AdamCoefficients};

use super::host::{self, Route};

/// Settings of [`FusedAdam`]; the defaults are Burn's [`AdamConfig`]'s.
#[derive(Config, Debug)]
pub struct FusedAdamConfig {
    /// Decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Decay of the second moment.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to the root of the second moment (scaled by its bias correction, as Burn does).
    #[config(default = 1e-5)]
    pub epsilon: f32,
    /// L2 penalty `λ`: the gradient becomes `g + λ·θ` before the moments (Burn's
    /// `WeightDecay`); none when `None`.
    pub weight_decay: Option<f32>,
}

impl FusedAdamConfig {
    /// Burn's [`AdamConfig`] with the same settings (the route on other backends).
    pub fn burn(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay.map(WeightDecayConfig::new))
    }

    /// The optimizer itself.
    pub fn build(&self) -> FusedAdam {
        FusedAdam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            fallback: self.burn().build(),
        }
    }

    /// The optimizer for a module `M`, as Burn's [`AdamConfig::init`] builds one.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> OptimizerAdaptor<FusedAdam, M, B> {
        OptimizerAdaptor::from(self.build())
    }
}

/// Adam, fused on NdArray and Flex (`f32`), Burn's [`Adam`] elsewhere (see the module docs).
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: Option<f32>,
    fallback: Adam,
}

impl FusedAdam {
    /// One update on host buffers. The caller has checked that `B` is a host backend and every
    /// tensor `f32`.
    fn host_step<B: Backend, const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<AdamState<B, D>>,
    ) -> (Tensor<B, D>, AdamState<B, D>) {
        host::note_host_run();
        let shape = tensor.shape();
        let device = tensor.device();
        let grad = grad.into_primitive().tensor();
        let grad = host::values::<B>(&grad);
        let mut theta = host::Writable::new::<B>(tensor.into_primitive().tensor());
        let time = state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        let k = AdamCoefficients::new(
            self.beta_1,
            self.beta_2,
            self.epsilon,
            self.weight_decay,
            time,
            lr,
        );
        let (moment_1, moment_2) = match state {
            Some(state) => {
                let mut m =
                    host::Writable::new::<B>(state.momentum.moment_1.into_primitive().tensor());
                let mut v =
                    host::Writable::new::<B>(state.momentum.moment_2.into_primitive().tensor());
                update(theta.values(), &grad, m.values(), v.values(), false, &k);
                (m.into_tensor::<B, D>(), v.into_tensor::<B, D>())
            }
            None => {
                let n = grad.len();
                let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
                update(theta.values(), &grad, &mut m, &mut v, true, &k);
                // `f32` whatever the device's default float type (as Burn's, from the gradient).
                let tensor = |values: Vec<f32>| {
                    Tensor::<B, D>::from_data(
                        TensorData::new(values, shape.clone()),
                        (&device, DType::F32),
                    )
                };
                (tensor(m), tensor(v))
            }
        };
        let state = AdamState::new(AdaptiveMomentumState::new(time, moment_1, moment_2));
        (theta.into_tensor(), state)
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdam {
    type State<const D: usize> = AdamState<B, D>;

    /// One Adam step of `tensor` (any shape) by `grad` (the same shape).
    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let mut dtypes = vec![tensor.dtype(), grad.dtype()];
        if let Some(state) = &state {
            dtypes.push(state.momentum.moment_1.dtype());
            dtypes.push(state.momentum.moment_2.dtype());
        }
        let amsgrad = state
            .as_ref()
            .is_some_and(|s| s.momentum.max_moment_2.is_some());
        match host::route_for::<B>(&dtypes) {
            Route::Host if !amsgrad => {
                let (tensor, state) = self.host_step(lr, tensor, grad, state);
                (tensor, Some(state))
            }
            _ => self.fallback.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <Adam as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::optim::{GradientsParams, Optimizer};
    use burn::tensor::Int;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    type I = NdArray<f32>;

    fn random<Bk: Backend>(shape: [usize; 2], seed: u64, device: &Bk::Device) -> Tensor<Bk, 2> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn bits<Bk: Backend, const D: usize>(t: &Tensor<Bk, D>) -> Vec<u32> {
        t.to_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Steps Burn's Adam and the fused one side by side on a parameter of `shape` (several
    /// Rayon tasks at `[300, 257]`) and checks parameter and moments bitwise after each step.
    fn same_as_burn(config: FusedAdamConfig, shape: [usize; 2]) {
        let device = Default::default();
        let fused = config.build();
        let burn = config.burn().build();
        let mut theta_f = random::<I>(shape, 1, &device);
        let mut theta_b = theta_f.clone();
        let (mut state_f, mut state_b) = (None, None);
        for step in 0..4 {
            let grad = random::<I>(shape, 10 + step, &device).mul_scalar(0.1 * (step + 1) as f32);
            let lr = 1e-2 / (step + 1) as f64;
            let runs = host::host_runs();
            (theta_f, state_f) =
                SimpleOptimizer::<I>::step(&fused, lr, theta_f, grad.clone(), state_f);
            assert_eq!(host::host_runs(), runs + 1, "the fused route ran");
            (theta_b, state_b) = SimpleOptimizer::<I>::step(&burn, lr, theta_b, grad, state_b);
            assert_eq!(
                bits(&theta_f),
                bits(&theta_b),
                "parameter after step {step}"
            );
            let (f, b) = (
                &state_f.as_ref().unwrap().momentum,
                &state_b.as_ref().unwrap().momentum,
            );
            assert_eq!(f.time, b.time);
            assert_eq!(
                bits(&f.moment_1),
                bits(&b.moment_1),
                "first moment, step {step}"
            );
            assert_eq!(
                bits(&f.moment_2),
                bits(&b.moment_2),
                "second moment, step {step}"
            );
            assert_eq!(theta_f.dims(), shape);
        }
    }

    #[test]
    fn is_burns_adam_bitwise() {
        same_as_burn(FusedAdamConfig::new(), [3, 5]);
        same_as_burn(FusedAdamConfig::new(), [300, 257]);
        same_as_burn(
            FusedAdamConfig::new()
                .with_beta_1(0.8)
                .with_beta_2(0.99)
                .with_epsilon(1e-7)
                .with_weight_decay(Some(0.05)),
            [300, 257],
        );
    }

    /// In place only where nothing else holds the buffer: a clone of the parameter or of the
    /// moments taken before the step keeps its values.
    #[test]
    fn shared_buffers_are_not_written() {
        let device = Default::default();
        let fused = FusedAdamConfig::new().build();
        let theta = random::<I>([4, 6], 1, &device);
        let (theta, state) =
            SimpleOptimizer::<I>::step(&fused, 0.1, theta, random::<I>([4, 6], 2, &device), None);
        let kept_theta = theta.clone();
        let kept_state = state.clone().unwrap();
        let before = (
            bits(&kept_theta),
            bits(&kept_state.momentum.moment_1),
            bits(&kept_state.momentum.moment_2),
        );
        let (after, _) =
            SimpleOptimizer::<I>::step(&fused, 0.1, theta, random::<I>([4, 6], 3, &device), state);
        assert_ne!(bits(&after), before.0, "the step changed the parameter");
        assert_eq!(bits(&kept_theta), before.0);
        assert_eq!(bits(&kept_state.momentum.moment_1), before.1);
        assert_eq!(bits(&kept_state.momentum.moment_2), before.2);
    }

    /// An unshared parameter and its moments are updated in their own buffers (no copy).
    #[test]
    fn unshared_buffers_are_updated_in_place() {
        let device = Default::default();
        let fused = FusedAdamConfig::new().build();
        let address = |t: &Tensor<I, 2>| {
            let primitive = t.clone().into_primitive().tensor();
            host::values::<I>(&primitive).as_ptr() as usize
        };
        let theta = random::<I>([40, 30], 1, &device);
        let (theta, state) =
            SimpleOptimizer::<I>::step(&fused, 0.1, theta, random::<I>([40, 30], 2, &device), None);
        let state = state.unwrap();
        let before = [
            address(&theta),
            address(&state.momentum.moment_1),
            address(&state.momentum.moment_2),
        ];
        let grad = random::<I>([40, 30], 3, &device);
        let (theta, state) = SimpleOptimizer::<I>::step(&fused, 0.1, theta, grad, Some(state));
        let state = state.unwrap();
        let after = [
            address(&theta),
            address(&state.momentum.moment_1),
            address(&state.momentum.moment_2),
        ];
        assert_eq!(before, after);
    }

    /// A state carrying AMSGrad's maximum (written by Burn's `Adam` with `amsgrad`) is stepped
    /// by Burn's `Adam`, not the fused route.
    #[test]
    fn an_amsgrad_state_takes_burns_adam() {
        let device = Default::default();
        let fused = FusedAdamConfig::new().build();
        let burn = FusedAdamConfig::new().burn().build();
        let theta = random::<I>([4, 6], 1, &device);
        let (theta, state) =
            SimpleOptimizer::<I>::step(&fused, 0.1, theta, random::<I>([4, 6], 2, &device), None);
        let mut state = state.unwrap();
        state.momentum.max_moment_2 = Some(state.momentum.moment_2.clone());
        let grad = random::<I>([4, 6], 3, &device);
        let runs = host::host_runs();
        let (a, _) = SimpleOptimizer::<I>::step(
            &fused,
            0.1,
            theta.clone(),
            grad.clone(),
            Some(state.clone()),
        );
        assert_eq!(host::host_runs(), runs);
        let (b, _) = SimpleOptimizer::<I>::step(&burn, 0.1, theta, grad, Some(state));
        assert_eq!(bits(&a), bits(&b));
    }

    /// A transposed (non-contiguous) parameter is updated as its logical values.
    #[test]
    fn strided_parameters_are_updated_by_their_values() {
        let device = Default::default();
        let fused = FusedAdamConfig::new().build();
        let theta = random::<I>([5, 3], 1, &device);
        let grad = random::<I>([3, 5], 2, &device);
        let (strided, _) =
            SimpleOptimizer::<I>::step(&fused, 0.1, theta.clone().transpose(), grad.clone(), None);
        let contiguous = Tensor::<I, 2>::from_data(theta.transpose().to_data(), &device);
        let (plain, _) = SimpleOptimizer::<I>::step(&fused, 0.1, contiguous, grad, None);
        assert_eq!(strided.dims(), [3, 5]);
        assert_eq!(bits(&strided), bits(&plain));
    }

    /// `f64` parameters take Burn's Adam. (They are made on the `f32` backend with an explicit
    /// dtype: Burn 0.21 keeps one default dtype per device, shared by `NdArray<f32>` and
    /// `NdArray<f64>`, and whichever backend asks first sets it for the whole process.)
    #[test]
    fn other_element_types_take_burns_adam() {
        let device = Default::default();
        let f64_tensor = |seed| {
            let data = random::<I>([4, 6], seed, &device)
                .into_data()
                .convert::<f64>();
            Tensor::<I, 2>::from_data(data, (&device, burn::tensor::DType::F64))
        };
        let fused = FusedAdamConfig::new().build();
        let burn = FusedAdamConfig::new().burn().build();
        let (theta, grad) = (f64_tensor(1), f64_tensor(2));
        assert_eq!(theta.dtype(), burn::tensor::DType::F64);
        let runs = host::host_runs();
        let (a, _) = SimpleOptimizer::<I>::step(&fused, 0.1, theta.clone(), grad.clone(), None);
        assert_eq!(host::host_runs(), runs, "no host route for f64");
        let (b, _) = SimpleOptimizer::<I>::step(&burn, 0.1, theta, grad, None);
        assert_eq!(a.dtype(), burn::tensor::DType::F64);
        assert_eq!(bits(&a), bits(&b));
    }

    /// Through Burn's optimizer adaptor on a whole model, three steps of pretraining give the
    /// same weights as Burn's Adam.
    #[test]
    fn trains_a_model_like_burns_adam() {
        type AB = Autodiff<I>;
        let device = Default::default();
        let config = crate::NextItNetConfig::new(30, 8, vec![1, 2]).with_seed(3);
        let tokens = Tensor::<AB, 2, Int>::from_data(
            TensorData::new(vec![4i64, 5, 6, 7, 8, 9, 10, 11, 12, 13], [2, 5]),
            &device,
        );
        let targets = Tensor::<AB, 2, Int>::from_data(
            TensorData::new(vec![5i64, 6, 7, 8, 9, 10, 11, 12, 13, 14], [2, 5]),
            &device,
        );
        let mask = Tensor::<AB, 2, Int>::ones([2, 5], &device);
        let train = |fused: bool| {
            let mut model = config.init_lm::<AB>(&device).unwrap();
            let settings = FusedAdamConfig::new().with_weight_decay(Some(1e-3));
            let mut fused_optim = settings.init::<AB, crate::NextItNetLM<AB>>();
            let mut burn_optim = settings.burn().init::<AB, crate::NextItNetLM<AB>>();
            for _ in 0..3 {
                let out = model.loss(tokens.clone(), targets.clone(), &mask);
                let grads = GradientsParams::from_grads(out.loss.backward(), &model);
                let runs = host::host_runs();
                model = if fused {
                    fused_optim.step(1e-2, model, grads)
                } else {
                    burn_optim.step(1e-2, model, grads)
                };
                // The fused route ran for every parameter tensor (at least the embedding, the
                // convolutions and the head), Burn's for none.
                let fused_runs = host::host_runs() - runs;
                assert!(if fused {
                    fused_runs >= 4
                } else {
                    fused_runs == 0
                });
            }
            let m = model.valid();
            let block = &m.backbone.blocks[1];
            [
                bits(&m.backbone.embedding.weight.val()),
                bits(&block.conv2.linear.weight.val()),
                bits(&block.ln2.gamma.val()),
                bits(&m.head.weight_and_bias(&m.backbone.embedding.weight).0),
            ]
        };
        assert_eq!(train(true), train(false));
    }
}
