//! The layers the backbone and the task models are built from: the dilated convolution, the
//! residual block, the model patch, the heads and their initialisation.

pub mod block;
pub mod conv;
pub mod head;
pub mod init;
pub mod patch;
