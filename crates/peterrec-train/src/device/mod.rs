//! Run-time choice of backend and device.
//!
//! The CPU backend Burn's `NdArray` is always compiled. The `flex` feature (on by default in the
//! `peterrec` facade) adds Burn's `Flex` CPU backend (pure Rust, SIMD kernels, the `gemm`
//! crate), which trains faster on our shapes (`docs/benchmarks.md`) and is then the default
//! ([`DefaultBackend`], [`DeviceChoice::default`]). The CUDA backend is compiled with the `cuda`
//! feature (`cargo run --features cuda ...`); it needs no CUDA toolkit at build time, and loads
//! the driver library (`libcuda`) at run time.
//!
//! Burn's CUDA device constructor succeeds even without a GPU and the first operation then
//! panics, so CUDA is probed first with the driver API ([`cuda_available`]), which never
//! panics: asking for CUDA where none works is a [`TrainError`], not a crash.
//!
//! Generic code runs on the chosen backend with [`with_backend!`](crate::with_backend).

pub(crate) mod choice;

pub use choice::{DeviceChoice, ParseDeviceError};

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

/// The CPU backend that trains fastest in this build: `Flex` with the `flex` feature, else
/// `NdArray`.
#[cfg(feature = "flex")]
pub type DefaultBackend = FlexCpu;
/// The CPU backend that trains fastest in this build: `Flex` with the `flex` feature, else
/// `NdArray`.
#[cfg(not(feature = "flex"))]
pub type DefaultBackend = Cpu;
/// [`DefaultBackend`] with automatic differentiation, for training.
pub type DefaultAutodiffBackend = burn::backend::Autodiff<DefaultBackend>;

/// Whether this build includes the `Flex` CPU backend (the `flex` feature).
pub const FLEX_COMPILED: bool = cfg!(feature = "flex");

/// Whether this build includes the CUDA backend (the `cuda` feature).
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

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

/// Runs a block with a backend type and device chosen at run time.
///
/// `with_backend!(choice, |B, device| body)` expands to a `Result<T, TrainError>`, where `T` is
/// the type of `body`. `B` is an autodiff backend and `device` its device:
///
/// * on [`DeviceChoice::Cpu`], `B` is [`CpuAutodiff`];
/// * on [`DeviceChoice::Flex`], `B` is `FlexAutodiff` with the `flex` feature, else the result is
///   [`TrainError::FlexNotCompiled`];
/// * on [`DeviceChoice::Cuda`], `B` is `GpuAutodiff` on CUDA device `N` with the `cuda` feature,
///   after [`check_device`] (a device that does not work is an error, never a panic), else the
///   result is [`TrainError::CudaNotCompiled`].
///
/// `body` is compiled once per backend, so it usually calls a generic function:
/// `train::<B>(&config, device)`. Use `<B as AutodiffBackend>::InnerBackend` for inference.
///
/// ```
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
                $crate::__with_cuda!(choice, index, |$b, $device| $body)
            }
        }
    }};
}

/// The `flex` arm of [`with_backend!`](crate::with_backend): the `Flex` backend when the
/// `flex` feature is compiled in, else [`TrainError::FlexNotCompiled`]. (A `#[cfg]` inside
/// `with_backend!` would be read with the calling crate's features, so the choice is made here,
/// where this crate's features decide which definition exists.)
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

/// The `flex` arm of [`with_backend!`](crate::with_backend) without the `flex` feature.
#[cfg(not(feature = "flex"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_flex {
    (|$b:ident, $device:ident| $body:expr) => {{
        ::core::result::Result::Err($crate::TrainError::FlexNotCompiled)
    }};
}

/// The CUDA arm of [`with_backend!`](crate::with_backend): CUDA device `N` after
/// [`check_device`] when the `cuda` feature is compiled in, else
/// [`TrainError::CudaNotCompiled`].
#[cfg(feature = "cuda")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cuda {
    ($choice:expr, $index:expr, |$b:ident, $device:ident| $body:expr) => {{
        match $crate::device::check_device($choice) {
            ::core::result::Result::Ok(()) => {
                #[allow(dead_code)]
                type $b = $crate::device::GpuAutodiff;
                let $device = $crate::device::cuda_device($index);
                ::core::result::Result::Ok::<_, $crate::TrainError>($body)
            }
            ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
        }
    }};
}

/// The CUDA arm of [`with_backend!`](crate::with_backend) without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cuda {
    ($choice:expr, $index:expr, |$b:ident, $device:ident| $body:expr) => {{
        let _ = $index;
        ::core::result::Result::Err($crate::TrainError::CudaNotCompiled {
            device: ::std::string::ToString::to_string(&$choice),
        })
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{backend::Backend, ElementConversion, Tensor};

    fn sum<B: Backend>(device: B::Device) -> f32 {
        Tensor::<B, 1>::from_floats([1.0, 2.0, 3.5], &device)
            .sum()
            .into_scalar()
            .elem()
    }

    #[test]
    fn cpu_runs_everywhere() {
        assert!(check_device(DeviceChoice::Cpu).is_ok());
        let total = crate::with_backend!(DeviceChoice::Cpu, |B, device| sum::<B>(device)).unwrap();
        assert_eq!(total, 6.5);
    }

    #[cfg(not(feature = "flex"))]
    #[test]
    fn flex_without_feature_is_a_clear_error() {
        const { assert!(!FLEX_COMPILED) };
        let err =
            crate::with_backend!(DeviceChoice::Flex, |B, device| sum::<B>(device)).unwrap_err();
        assert!(matches!(err, TrainError::FlexNotCompiled), "{err}");
        assert!(err.to_string().contains("--features flex"), "{err}");
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_runs_the_same_computation() {
        const { assert!(FLEX_COMPILED) };
        assert!(check_device(DeviceChoice::Flex).is_ok());
        let total = crate::with_backend!(DeviceChoice::Flex, |B, device| sum::<B>(device)).unwrap();
        assert_eq!(total, 6.5);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        const { assert!(!CUDA_COMPILED) };
        let err = cuda_available().unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
        let err =
            crate::with_backend!(DeviceChoice::Cuda(1), |B, device| sum::<B>(device)).unwrap_err();
        assert!(matches!(err, TrainError::CudaNotCompiled { ref device } if device == "cuda:1"));
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
                let total =
                    crate::with_backend!(DeviceChoice::Cuda(0), |B, device| sum::<B>(device))
                        .unwrap();
                assert_eq!(total, 6.5);
            }
            Err(e) => {
                assert!(matches!(e, TrainError::DeviceUnavailable { .. }), "{e}");
                assert!(
                    crate::with_backend!(DeviceChoice::Cuda(0), |B, device| sum::<B>(device))
                        .is_err()
                );
            }
        }
    }
}
