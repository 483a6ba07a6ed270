//! Pretraining: the backbone with its softmax head over the items ([`lm::NextItNetLM`]) and the
//! objectives it is trained with (next item at every position, masked next item, cloze), full or
//! sampled softmax.

pub mod lm;
pub mod loss;
