//! Run-time choice of backend and device.
//!
//! The CPU backend (Burn's `NdArray`) is always compiled. The CUDA backend is compiled with
//! this crate's `cuda` feature (`cargo run --features cuda ...`); it needs no CUDA toolkit at
//! build time, and loads the driver library (`libcuda`) at run time. The `flex` feature adds
//! Burn's `Flex` CPU backend (pure Rust, SIMD kernels, the `gemm` crate), chosen with
//! `--device flex`: faster than `NdArray` on our shapes (`docs/benchmarks.md`); the test suite
//! runs on `NdArray`.
//!
//! Burn's CUDA device constructor succeeds even without a GPU and the first operation then
//! panics, so CUDA is probed first with the driver API ([`cuda_available`]), which never
//! panics: asking for CUDA where none works is a [`TrainError`], not a crash.
//!
//! Generic code runs on the chosen backend with [`with_backend!`](crate::with_backend) or
//! [`run_on`] + [`BackendTask`].

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The CPU backend: Burn's `NdArray` with `f32` floats (and `i64` ints).
pub type Cpu = burn::backend::NdArray<f32>;
/// The CPU backend with automatic differentiation, for training.
pub type CpuAutodiff = burn::backend::Autodiff<Cpu>;

/// The CUDA backend: Burn's `Cuda` with `f32` floats and `i32` ints (fused when Burn's
/// `fusion` feature is on).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
/// The CUDA backend with automatic differentiation, for training.
#[cfg(feature = "cuda")]
pub type GpuAutodiff = burn::backend::Autodiff<Gpu>;

/// Burn's `Flex` CPU backend with `f32` floats and `i32` ints (the `flex` feature).
#[cfg(feature = "flex")]
pub type FlexCpu = burn::backend::Flex;
/// The `Flex` CPU backend with automatic differentiation, for training.
#[cfg(feature = "flex")]
pub type FlexAutodiff = burn::backend::Autodiff<FlexCpu>;

/// Whether this build includes the `Flex` CPU backend (the `flex` feature).
pub const FLEX_COMPILED: bool = cfg!(feature = "flex");

/// Whether this build includes the CUDA backend (the `cuda` feature).
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// Which device to run on: `cpu`, `flex` (the CPU through Burn's `Flex` backend), `cuda`
/// (= `cuda:0`) or `cuda:N`.
///
/// Parsed with [`FromStr`] (case-insensitive, surrounding spaces ignored), printed with
/// [`Display`](fmt::Display) in the same syntax, and (de)serialised as that string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The CPU (`NdArray` backend).
    #[default]
    Cpu,
    /// The CPU through Burn's `Flex` backend (needs the `flex` feature).
    Flex,
    /// The CUDA GPU with this index.
    Cuda(usize),
}

/// Why a device string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseDeviceError {
    /// The string was empty.
    #[error("empty device name (expected \"cpu\", \"flex\", \"cuda\" or \"cuda:N\")")]
    Empty,
    /// The device kind is not known.
    #[error("unknown device {0:?} (expected \"cpu\", \"flex\", \"cuda\" or \"cuda:N\")")]
    Unknown(String),
    /// `cuda:` was followed by something that is not a non-negative integer.
    #[error("invalid CUDA device index in {0:?} (expected \"cuda:N\" with N = 0, 1, ...)")]
    BadIndex(String),
}

impl FromStr for DeviceChoice {
    type Err = ParseDeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "" => Err(ParseDeviceError::Empty),
            "cpu" => Ok(DeviceChoice::Cpu),
            "flex" => Ok(DeviceChoice::Flex),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match t.strip_prefix("cuda:") {
                Some(idx) => idx
                    .parse::<usize>()
                    .map(DeviceChoice::Cuda)
                    .map_err(|_| ParseDeviceError::BadIndex(s.to_string())),
                None => Err(ParseDeviceError::Unknown(s.to_string())),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Flex => f.write_str("flex"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = ParseDeviceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        d.to_string()
    }
}

impl DeviceChoice {
    /// Whether this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, DeviceChoice::Cuda(_))
    }
}

/// Number of usable CUDA devices, probed through the driver API without touching Burn.
///
/// Never panics. Errors:
/// * [`TrainError::CudaNotCompiled`] when built without the `cuda` feature (the message says to
///   rebuild with `--features cuda`);
/// * [`TrainError::DeviceUnavailable`] when the driver library is missing, fails to
///   initialise, or reports no device.
pub fn cuda_available() -> Result<usize, TrainError> {
    #[cfg(feature = "cuda")]
    {
        let unavailable = |reason: String| TrainError::DeviceUnavailable {
            device: "cuda".into(),
            reason,
        };
        let probe = std::panic::catch_unwind(|| -> Result<usize, String> {
            if !peterrec_kernels::cuda::cuda_driver_present() {
                return Err("the CUDA driver library (libcuda) was not found".into());
            }
            cudarc::driver::result::init()
                .map_err(|e| format!("the CUDA driver failed to initialise: {e:?}"))?;
            let n = cudarc::driver::result::device::get_count()
                .map_err(|e| format!("the CUDA driver could not count devices: {e:?}"))?;
            Ok(n.max(0) as usize)
        });
        match probe {
            Ok(Ok(0)) => Err(unavailable("the CUDA driver reports no device".into())),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(reason)) => Err(unavailable(reason)),
            Err(_) => Err(unavailable("the CUDA driver probe panicked".into())),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(TrainError::CudaNotCompiled {
            device: "cuda".into(),
        })
    }
}

/// Checks that `choice` can be used here: always true for the CPU; `flex` needs the `flex`
/// feature; for `cuda:N`, CUDA must be compiled in and working with more than `N` devices.
/// Never panics.
pub fn check_device(choice: DeviceChoice) -> Result<(), TrainError> {
    match choice {
        DeviceChoice::Cpu => Ok(()),
        DeviceChoice::Flex if FLEX_COMPILED => Ok(()),
        DeviceChoice::Flex => Err(TrainError::FlexNotCompiled),
        DeviceChoice::Cuda(i) => {
            let name = choice.to_string();
            let n = cuda_available().map_err(|e| match e {
                TrainError::CudaNotCompiled { .. } => TrainError::CudaNotCompiled {
                    device: name.clone(),
                },
                TrainError::DeviceUnavailable { reason, .. } => TrainError::DeviceUnavailable {
                    device: name.clone(),
                    reason,
                },
                other => other,
            })?;
            if i < n {
                Ok(())
            } else {
                Err(TrainError::DeviceUnavailable {
                    device: name,
                    reason: format!("only {n} CUDA device(s) found"),
                })
            }
        }
    }
}

/// The CPU device of [`Cpu`] / [`CpuAutodiff`].
pub fn cpu_device() -> burn::backend::ndarray::NdArrayDevice {
    burn::backend::ndarray::NdArrayDevice::Cpu
}

/// The device of [`FlexCpu`] / [`FlexAutodiff`].
#[cfg(feature = "flex")]
pub fn flex_device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

/// The CUDA device `index` of [`Gpu`] / [`GpuAutodiff`]. Call [`check_device`] first: Burn
/// panics on the first operation if the device does not work.
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> burn::backend::cuda::CudaDevice {
    burn::backend::cuda::CudaDevice::new(index)
}

/// A computation generic over the training backend, for [`run_on`].
///
/// Implement it on a struct holding the inputs; `run` is monomorphised once per compiled
/// backend. Use `B::InnerBackend` for inference-only work.
pub trait BackendTask {
    /// What the computation returns (must not depend on the backend).
    type Output;

    /// Runs the computation on backend `B` and `device`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on the backend and device of `choice` ([`CpuAutodiff`], `FlexAutodiff` or
/// `GpuAutodiff`), after [`check_device`]; a choice that cannot work is an error, never a panic.
pub fn run_on<T: BackendTask>(choice: DeviceChoice, task: T) -> Result<T::Output, TrainError> {
    check_device(choice)?;
    match choice {
        DeviceChoice::Cpu => Ok(task.run::<CpuAutodiff>(cpu_device())),
        #[cfg(feature = "flex")]
        DeviceChoice::Flex => Ok(task.run::<FlexAutodiff>(flex_device())),
        #[cfg(not(feature = "flex"))]
        DeviceChoice::Flex => unreachable!("check_device rejects flex without the feature"),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda(i) => Ok(task.run::<GpuAutodiff>(cuda_device(i))),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda(_) => unreachable!("check_device rejects CUDA without the feature"),
    }
}

/// Runs a block with a backend type and device chosen at run time.
///
/// `with_backend!(choice, |B, device| body)` expands to a `Result<T, TrainError>`: on
/// [`DeviceChoice::Cpu`], `B` is [`CpuAutodiff`] and `device` its device; on `flex` (with the
/// `flex` feature) `B` is `FlexAutodiff`; on `cuda:N` (with the
/// `cuda` feature) `B` is `GpuAutodiff` and `device` the CUDA device `N`, after
/// [`check_device`]. Without the feature, a CUDA choice gives
/// [`TrainError::CudaNotCompiled`]. `body` is compiled once per backend, so it usually calls
/// a generic function: `train::<B>(&config, device)`. `B` is an autodiff backend; use
/// `<B as AutodiffBackend>::InnerBackend` for inference.
///
/// ```no_run
/// use burn::tensor::{backend::Backend, ElementConversion, Tensor};
/// use peterrec_train::{with_backend, DeviceChoice};
///
/// fn sum<B: Backend>(device: B::Device) -> f32 {
///     Tensor::<B, 1>::from_floats([1.0, 2.0, 3.0], &device).sum().into_scalar().elem()
/// }
///
/// let choice: DeviceChoice = "cpu".parse().unwrap();
/// let total = with_backend!(choice, |B, device| sum::<B>(device)).unwrap();
/// assert_eq!(total, 6.0);
/// ```
#[cfg(feature = "cuda")]
#[macro_export]
macro_rules! with_backend {
    ($choice:expr, |$b:ident, $device:ident| $body:expr) => {{
        match $choice {
            $crate::device::DeviceChoice::Cpu => {
                #[allow(dead_code)]
                type $b = $crate::device::CpuAutodiff;
                let $device = $crate::device::cpu_device();
                ::core::result::Result::Ok::<_, $crate::TrainError>($body)
            }
            $crate::device::DeviceChoice::Flex => $crate::__with_flex!(|$b, $device| $body),
            choice @ $crate::device::DeviceChoice::Cuda(index) => {
                match $crate::device::check_device(choice) {
                    ::core::result::Result::Ok(()) => {
                        #[allow(dead_code)]
                        type $b = $crate::device::GpuAutodiff;
                        let $device = $crate::device::cuda_device(index);
                        ::core::result::Result::Ok::<_, $crate::TrainError>($body)
                    }
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
                }
            }
        }
    }};
}

/// Runs a block with a backend type and device chosen at run time.
///
/// `with_backend!(choice, |B, device| body)` expands to a `Result<T, TrainError>`: on
/// [`DeviceChoice::Cpu`], `B` is [`CpuAutodiff`] and `device` its device; on `flex` (with the
/// `flex` feature) `B` is `FlexAutodiff`; on `cuda:N` (with the
/// `cuda` feature) `B` is `GpuAutodiff` and `device` the CUDA device `N`, after
/// [`check_device`]. Without the feature, a CUDA choice gives
/// [`TrainError::CudaNotCompiled`]. `body` is compiled once per backend, so it usually calls
/// a generic function: `train::<B>(&config, device)`. `B` is an autodiff backend; use
/// `<B as AutodiffBackend>::InnerBackend` for inference.
///
/// ```no_run
/// use burn::tensor::{backend::Backend, ElementConversion, Tensor};
/// use peterrec_train::{with_backend, DeviceChoice};
///
/// fn sum<B: Backend>(device: B::Device) -> f32 {
///     Tensor::<B, 1>::from_floats([1.0, 2.0, 3.0], &device).sum().into_scalar().elem()
/// }
///
/// let choice: DeviceChoice = "cpu".parse().unwrap();
/// let total = with_backend!(choice, |B, device| sum::<B>(device)).unwrap();
/// assert_eq!(total, 6.0);
/// ```
#[cfg(not(feature = "cuda"))]
#[macro_export]
macro_rules! with_backend {
    ($choice:expr, |$b:ident, $device:ident| $body:expr) => {{
        match $choice {
            $crate::device::DeviceChoice::Cpu => {
                #[allow(dead_code)]
                type $b = $crate::device::CpuAutodiff;
                let $device = $crate::device::cpu_device();
                ::core::result::Result::Ok::<_, $crate::TrainError>($body)
            }
            $crate::device::DeviceChoice::Flex => $crate::__with_flex!(|$b, $device| $body),
            choice @ $crate::device::DeviceChoice::Cuda(_) => {
                ::core::result::Result::Err($crate::TrainError::CudaNotCompiled {
                    device: ::std::string::ToString::to_string(&choice),
                })
            }
        }
    }};
}

/// The `flex` arm of [`with_backend!`](crate::with_backend): the `Flex` backend when the
/// `flex` feature is compiled in, else [`TrainError::FlexNotCompiled`].
#[cfg(feature = "flex")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_flex {
    (|$b:ident, $device:ident| $body:expr) => {{
        #[allow(dead_code)]
        type $b = $crate::device::FlexAutodiff;
        let $device = $crate::device::flex_device();
        ::core::result::Result::Ok::<_, $crate::TrainError>($body)
    }};
}

/// The `flex` arm of [`with_backend!`](crate::with_backend): the `Flex` backend when the
/// `flex` feature is compiled in, else [`TrainError::FlexNotCompiled`].
#[cfg(not(feature = "flex"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_flex {
    (|$b:ident, $device:ident| $body:expr) => {{
        ::core::result::Result::Err($crate::TrainError::FlexNotCompiled)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{backend::Backend, ElementConversion, Tensor};

    #[test]
    fn parse_valid() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!(" CPU ".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        assert_eq!(
            "CUDA:12".parse::<DeviceChoice>(),
            Ok(DeviceChoice::Cuda(12))
        );
        assert_eq!(" Flex".parse::<DeviceChoice>(), Ok(DeviceChoice::Flex));
        assert_eq!(DeviceChoice::default(), DeviceChoice::Cpu);
        assert!(DeviceChoice::Cuda(0).is_cuda() && !DeviceChoice::Cpu.is_cuda());
        assert!(!DeviceChoice::Flex.is_cuda());
    }

    #[test]
    fn parse_invalid_is_typed() {
        assert_eq!("".parse::<DeviceChoice>(), Err(ParseDeviceError::Empty));
        assert_eq!(
            "tpu".parse::<DeviceChoice>(),
            Err(ParseDeviceError::Unknown("tpu".into()))
        );
        for bad in ["cuda:", "cuda:x", "cuda:-1", "cuda:1:2"] {
            assert_eq!(
                bad.parse::<DeviceChoice>(),
                Err(ParseDeviceError::BadIndex(bad.into())),
                "{bad}"
            );
        }
        let err: TrainError = "gpu0".parse::<DeviceChoice>().unwrap_err().into();
        assert!(err.to_string().contains("gpu0"));
    }

    #[test]
    fn display_and_serde_round_trip() {
        for d in [
            DeviceChoice::Cpu,
            DeviceChoice::Flex,
            DeviceChoice::Cuda(0),
            DeviceChoice::Cuda(3),
        ] {
            assert_eq!(d.to_string().parse::<DeviceChoice>(), Ok(d));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{d}\""));
            assert_eq!(serde_json::from_str::<DeviceChoice>(&json).unwrap(), d);
        }
        assert!(serde_json::from_str::<DeviceChoice>("\"tpu\"").is_err());
    }

    fn sum<B: Backend>(device: B::Device) -> f32 {
        Tensor::<B, 1>::from_floats([1.0, 2.0, 3.5], &device)
            .sum()
            .into_scalar()
            .elem()
    }

    struct Sum;
    impl BackendTask for Sum {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> f32 {
            sum::<B>(device)
        }
    }

    #[test]
    fn cpu_runs_everywhere() {
        assert!(check_device(DeviceChoice::Cpu).is_ok());
        assert_eq!(run_on(DeviceChoice::Cpu, Sum).unwrap(), 6.5);
        let total = crate::with_backend!(DeviceChoice::Cpu, |B, device| sum::<B>(device)).unwrap();
        assert_eq!(total, 6.5);
    }

    #[cfg(not(feature = "flex"))]
    #[test]
    fn flex_without_feature_is_a_clear_error() {
        const { assert!(!FLEX_COMPILED) };
        let err = run_on(DeviceChoice::Flex, Sum).unwrap_err();
        assert!(matches!(err, TrainError::FlexNotCompiled), "{err}");
        let err =
            crate::with_backend!(DeviceChoice::Flex, |B, device| sum::<B>(device)).unwrap_err();
        assert!(err.to_string().contains("--features flex"), "{err}");
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_runs_the_same_computation() {
        const { assert!(FLEX_COMPILED) };
        assert!(check_device(DeviceChoice::Flex).is_ok());
        assert_eq!(run_on(DeviceChoice::Flex, Sum).unwrap(), 6.5);
        let total = crate::with_backend!(DeviceChoice::Flex, |B, device| sum::<B>(device)).unwrap();
        assert_eq!(total, 6.5);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        const { assert!(!CUDA_COMPILED) };
        let err = cuda_available().unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
        let err = run_on(DeviceChoice::Cuda(1), Sum).unwrap_err();
        assert!(matches!(err, TrainError::CudaNotCompiled { ref device } if device == "cuda:1"));
        let err =
            crate::with_backend!(DeviceChoice::Cuda(0), |B, device| sum::<B>(device)).unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_probe_never_panics() {
        const { assert!(CUDA_COMPILED) };
        match cuda_available() {
            Ok(n) => {
                assert!(n > 0);
                assert!(check_device(DeviceChoice::Cuda(n)).is_err());
                assert_eq!(run_on(DeviceChoice::Cuda(0), Sum).unwrap(), 6.5);
                let total =
                    crate::with_backend!(DeviceChoice::Cuda(0), |B, device| sum::<B>(device))
                        .unwrap();
                assert_eq!(total, 6.5);
            }
            Err(e) => {
                assert!(matches!(e, TrainError::DeviceUnavailable { .. }), "{e}");
                assert!(run_on(DeviceChoice::Cuda(0), Sum).is_err());
                assert!(
                    crate::with_backend!(DeviceChoice::Cuda(0), |B, device| sum::<B>(device))
                        .is_err()
                );
            }
        }
    }
}
