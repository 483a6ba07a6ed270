//! Files: backbone and task files ([`persist`]), the content hash that ties a task to its
//! backbone ([`hash`]), parameter paths ([`paths`]) and weight interchange with the PyTorch port
//! ([`interchange`]).

pub mod hash;
pub mod interchange;
pub mod paths;
pub mod persist;
