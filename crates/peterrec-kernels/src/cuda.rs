//! Whether the CUDA driver can be used, without touching any GPU framework (feature
//! `cuda-probe`).

/// Whether the CUDA driver library (libcuda) can be loaded.
pub fn cuda_driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}
