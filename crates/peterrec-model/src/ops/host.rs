//! Routing and buffer access for the host operations on the CPU backends.
//!
//! NdArray and Flex keep their tensors in host memory. The host operations of [`crate::ops`]
//! read their inputs in place ([`values`]; the full-softmax head's surrogate route, for other
//! autodiff backends, copies them out with [`host_values`]), compute with `peterrec_kernels`,
//! and hand the results back as new tensors: one node of the autodiff graph with its own
//! backward step where they train. This module says which backend a generic `B` is ([`route`],
//! [`route_for`]) and moves values in and out.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::NodeId;
use burn::backend::ndarray::NdArrayTensor;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor, TensorData, TensorMetadata, TensorPrimitive};

/// The CPU backends whose float tensors are buffers in host memory: `into_data` hands one over
/// without a copy when nothing else holds it, `from_data` takes a `Vec` without a copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HostBackend {
    /// NdArray. It copies a *shared* tensor out value by value through a dynamic-rank iterator.
    NdArray,
    /// Flex (with the `flex` feature). It copies a shared tensor out with one `memcpy`.
    #[cfg(feature = "flex")]
    Flex,
}

/// Which [`HostBackend`] `B` is, if any.
pub(crate) fn host_backend<B: Backend>() -> Option<HostBackend> {
    let primitive = TypeId::of::<B::FloatTensorPrimitive>();
    if primitive == TypeId::of::<burn::backend::ndarray::NdArrayTensor>() {
        return Some(HostBackend::NdArray);
    }
    #[cfg(feature = "flex")]
    if primitive == TypeId::of::<burn::backend::flex::FlexTensor>() {
        return Some(HostBackend::Flex);
    }
    None
}

/// A tensor's `f32` values, row-major, for `B` the CPU backend `backend`.
///
/// The tensors passed here are often shared (the autodiff graph holds them too). NdArray copies a
/// shared tensor out value by value, so on NdArray a multiplication by one first makes a fresh,
/// unshared tensor (one vectorised pass) that it then hands over without a further copy. Flex
/// copies a shared tensor with one `memcpy`.
pub(crate) fn host_values<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    backend: HostBackend,
) -> Vec<f32> {
    let tensor = match backend {
        HostBackend::NdArray => tensor.mul_scalar(1.0),
        #[cfg(feature = "flex")]
        HostBackend::Flex => tensor,
    };
    tensor.into_data().into_vec().expect("an f32 tensor")
}

/// Where a fused operation runs for a backend `B`.
pub(crate) enum Route {
    /// The autodiff operation over NdArray.
    AutodiffNdArray,
    /// The autodiff operation over Flex.
    #[cfg(feature = "flex")]
    AutodiffFlex,
    /// The forward pass on host buffers, without autodiff.
    Host,
    /// Burn's tensor operations (any other backend, or a dtype other than `f32`).
    Tensor,
}

/// The [`Route`] for `B`.
pub(crate) fn route<B: Backend>() -> Route {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<NdArray<f32>>>() {
        return Route::AutodiffNdArray;
    }
    #[cfg(feature = "flex")]
    if backend == TypeId::of::<Autodiff<burn::backend::Flex>>() {
        return Route::AutodiffFlex;
    }
    host_backend::<B>().map_or(Route::Tensor, |_| Route::Host)
}

/// The `f32` values of a host backend's float tensor, row-major, borrowed in place when the
/// tensor is a contiguous `f32` buffer (shared or not), else copied out.
///
/// Borrowing beats [`host_values`] for inputs that are only read: Flex hands a buffer over only
/// when nothing else holds it and then still copies it into a `Vec<f32>` (its buffers are
/// 64-byte aligned, a `Vec<f32>` is not), and NdArray copies a shared tensor value by value.
pub(crate) fn values<I: Backend>(primitive: &I::FloatTensorPrimitive) -> Cow<'_, [f32]> {
    if let Some(values) = borrow_f32(primitive) {
        return Cow::Borrowed(values);
    }
    let n = primitive.shape().num_elements();
    let flat = I::float_reshape(primitive.clone(), Shape::new([n]));
    let data = Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(flat)).into_data();
    Cow::Owned(data.convert::<f32>().into_vec().expect("converted to f32"))
}

/// The values of a contiguous `f32` NdArray or Flex tensor, in place.
fn borrow_f32<P: 'static>(primitive: &P) -> Option<&[f32]> {
    let any = primitive as &dyn Any;
    if let Some(tensor) = any.downcast_ref::<NdArrayTensor>() {
        return match tensor {
            NdArrayTensor::F32(storage) => storage.view().to_slice(),
            _ => None,
        };
    }
    #[cfg(feature = "flex")]
    if let Some(tensor) = any.downcast_ref::<burn::backend::flex::FlexTensor>() {
        return tensor.as_slice::<f32>();
    }
    None
}

/// A host backend's float tensor held for writing in place (the fused optimizer's parameters
/// and moments): its contiguous `f32` buffer, copied first only when the tensor shares it or is
/// not one contiguous buffer.
pub(crate) enum Writable {
    /// An NdArray array in standard layout.
    NdArray(burn::backend::ndarray::SharedArray<f32>),
    /// A Flex tensor covering its whole buffer.
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
}

impl Writable {
    /// Takes `primitive`, a float tensor of the host backend `I`.
    ///
    /// # Panics
    /// If `I` is not NdArray or Flex or the tensor is not `f32` (callers check [`route_for`]).
    pub(crate) fn new<I: Backend>(primitive: I::FloatTensorPrimitive) -> Self {
        let any: Box<dyn Any> = Box::new(primitive);
        let any = match any.downcast::<NdArrayTensor>() {
            Ok(tensor) => {
                let NdArrayTensor::F32(storage) = *tensor else {
                    panic!("an f32 NdArray tensor");
                };
                let mut array = storage.into_owned();
                if !array.is_standard_layout() {
                    array = array.as_standard_layout().into_owned().into_shared();
                }
                return Self::NdArray(array);
            }
            Err(any) => any,
        };
        #[cfg(feature = "flex")]
        if let Ok(tensor) = any.downcast::<burn::backend::flex::FlexTensor>() {
            assert_eq!(tensor.dtype(), DType::F32, "an f32 Flex tensor");
            // The same buffer when it is contiguous and exactly the tensor's, else a copy.
            return Self::Flex(tensor.to_contiguous());
        }
        #[cfg(not(feature = "flex"))]
        let _ = any;
        panic!("a host backend's float tensor");
    }

    /// The values, row-major, for writing (a shared buffer is copied here first).
    pub(crate) fn values(&mut self) -> &mut [f32] {
        match self {
            Self::NdArray(array) => array.as_slice_mut().expect("standard layout"),
            #[cfg(feature = "flex")]
            Self::Flex(tensor) => tensor.storage_mut::<f32>(),
        }
    }

    /// The tensor back, with its shape.
    pub(crate) fn into_tensor<I: Backend, const D: usize>(self) -> Tensor<I, D> {
        let primitive: I::FloatTensorPrimitive = match self {
            Self::NdArray(array) => cast(NdArrayTensor::from(array)),
            #[cfg(feature = "flex")]
            Self::Flex(tensor) => cast(tensor),
        };
        Tensor::from_primitive(TensorPrimitive::Float(primitive))
    }
}

/// The [`Route`] for `B` and an operation on tensors of types `dtypes` (host routes need all of
/// them `f32`: the backward steps hand back `f32` gradients).
pub(crate) fn route_for<B: Backend>(dtypes: &[DType]) -> Route {
    if dtypes.iter().all(|&d| d == DType::F32) {
        route::<B>()
    } else {
        Route::Tensor
    }
}

/// Moves `t` into type `U`, which the caller has checked is `T` itself.
///
/// # Panics
/// If `U` is not `T`.
pub(crate) fn cast<T: 'static, U: 'static>(t: T) -> U {
    *(Box::new(t) as Box<dyn Any>)
        .downcast::<U>()
        .expect("the caller checked the types are equal")
}

/// The state of a host operation's backward step (Burn's `Backward::State`): shared, so cloning
/// it is a reference count.
pub(crate) struct Saved<T>(pub(crate) Arc<T>);

impl<T> Clone for Saved<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> std::fmt::Debug for Saved<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Saved<{}>", std::any::type_name::<T>())
    }
}

/// Registers `values` (row-major, of `shape`) as the gradient of node `id`, a tensor of the host
/// backend `I` on `device`.
pub(crate) fn register<I: Backend>(
    grads: &mut Gradients,
    id: NodeId,
    values: Vec<f32>,
    shape: Vec<usize>,
    device: &I::Device,
) {
    grads.register::<I>(
        id,
        I::float_from_data(TensorData::new(values, shape), device),
    );
}

#[cfg(test)]
thread_local! {
    static HOST_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts, in test builds, a host operation run on this thread (tests check that the host
/// route really ran, not the tensor route twice). Nothing in other builds.
#[inline]
pub(crate) fn note_host_run() {
    #[cfg(test)]
    HOST_RUNS.with(|runs| runs.set(runs.get() + 1));
}

/// Host operations run on this thread so far ([`note_host_run`]).
#[cfg(test)]
pub(crate) fn host_runs() -> usize {
    HOST_RUNS.with(|runs| runs.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_backends_are_recognised() {
        assert_eq!(host_backend::<NdArray<f32>>(), Some(HostBackend::NdArray));
        assert_eq!(host_backend::<NdArray<f64>>(), Some(HostBackend::NdArray));
        assert_eq!(
            host_backend::<burn::backend::Autodiff<NdArray<f32>>>(),
            None
        );
    }

    #[test]
    fn values_are_borrowed_from_contiguous_tensors_and_copied_from_others() {
        type I = NdArray<f32>;
        let device = Default::default();
        let t = Tensor::<I, 2>::from_data([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &device);
        let p = t.clone().into_primitive().tensor();
        assert!(matches!(
            values::<I>(&p),
            Cow::Borrowed([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        ));
        let p = t.transpose().into_primitive().tensor();
        assert!(matches!(values::<I>(&p), Cow::Owned(v) if v == [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    }

    #[test]
    fn the_routes_are_recognised() {
        assert!(matches!(
            route::<Autodiff<NdArray<f32>>>(),
            Route::AutodiffNdArray
        ));
        assert!(matches!(route::<NdArray<f32>>(), Route::Host));
        assert!(matches!(route::<Autodiff<NdArray<f64>>>(), Route::Tensor));
        assert!(matches!(
            route_for::<NdArray<f32>>(&[DType::F32, DType::F64]),
            Route::Tensor
        ));
        assert!(matches!(
            route_for::<NdArray<f32>>(&[DType::F32, DType::F32]),
            Route::Host
        ));
    }
}
