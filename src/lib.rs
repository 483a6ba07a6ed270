//! peterrec facade
