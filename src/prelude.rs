//! The names most programs need, in one import: `use peterrec::prelude::*;`.

pub use crate::{Error, Result};

pub use crate::data::split::{leave_one_out, SplitConfig};
pub use crate::data::synthetic::SyntheticConfig;
pub use crate::data::{DataFormat, Dataset, Task, TaskKind, UserSequence, Vocab};

pub use crate::model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, NextItNet, NextItNetConfig, NextItNetLM,
    ParamReport, Strategy,
};

pub use crate::train::{
    finetune, pretrain, Cpu, CpuAutodiff, DefaultAutodiffBackend, DefaultBackend, DeviceChoice,
    FineTuneLoss, FineTuneTrainConfig, FineTuned, FineTuner, LrSchedule, PretrainConfig,
    Pretrained, Pretrainer, RankingOptions, TaskEvaluation, TrainConfig,
};

pub use crate::serve::TaskServer;
