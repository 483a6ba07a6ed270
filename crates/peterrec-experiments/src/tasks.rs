//! The MovieLens fine-tuning tasks of the experiment programs, and the head each needs.

use std::str::FromStr;

use burn::tensor::backend::AutodiffBackend;
use peterrec_data::movielens::ProfileAttribute;
use peterrec_data::{Task, TaskKind};
use peterrec_model::{FineTuneConfig, FineTuneModel, HeadKind, NextItNetLM, ParamReport, Strategy};
use peterrec_train::{finetune, FineTuneReport, FineTuneTrainConfig, Result};

/// Every task, as the programs' `--tasks` default lists them.
pub const ALL_TASKS: &str = "gender,age,occupation,cold-start";

/// Every fine-tuning strategy of the tables, as the programs' `--strategies` default lists them.
pub const ALL_STRATEGIES: &str =
    "peterrec-serial,peterrec-parallel,fineall,finecls,finelast-1,scratch";

/// A fine-tuning task of the MovieLens programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskName {
    /// Gender (2 classes).
    Gender,
    /// Age (7 buckets).
    Age,
    /// Occupation (21 classes).
    Occupation,
    /// Cold-start recommendation of the Animation and Children's movies.
    ColdStart,
}

impl TaskName {
    /// The name in tables, files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TaskName::Gender => "gender",
            TaskName::Age => "age",
            TaskName::Occupation => "occupation",
            TaskName::ColdStart => "cold-start",
        }
    }

    /// The user attribute of a profile task; `None` for cold start.
    pub fn attribute(self) -> Option<ProfileAttribute> {
        match self {
            TaskName::Gender => Some(ProfileAttribute::Gender),
            TaskName::Age => Some(ProfileAttribute::Age),
            TaskName::Occupation => Some(ProfileAttribute::Occupation),
            TaskName::ColdStart => None,
        }
    }
}

impl FromStr for TaskName {
    type Err = String;

    /// Parses `gender`, `age`, `occupation` or `cold-start` (also `coldstart`, `cold_start`), in
    /// any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gender" => Ok(TaskName::Gender),
            "age" => Ok(TaskName::Age),
            "occupation" => Ok(TaskName::Occupation),
            "cold-start" | "coldstart" | "cold_start" => Ok(TaskName::ColdStart),
            other => Err(format!(
                "unknown task `{other}` (expected gender, age, occupation or cold-start)"
            )),
        }
    }
}

/// The head a task needs: a classifier over its classes or a scorer of its target items.
pub fn head_for(task: &Task) -> HeadKind {
    match task.kind {
        TaskKind::Classification { num_classes, .. } => HeadKind::Classifier {
            outputs: num_classes,
        },
        TaskKind::TargetItems { num_targets, .. } => HeadKind::TargetItems {
            outputs: num_targets,
        },
    }
}

/// One fine-tuning run of the tables: `strategy` on `task`, from a clone of `lm`'s backbone,
/// with a new head of the task's kind (seeded by `cfg.train.seed`). Returns the tuned model, its
/// report and the trainable and total parameter counts of the model before training.
pub fn fine_tune_strategy<B: AutodiffBackend>(
    lm: &NextItNetLM<B>,
    task: &Task,
    strategy: Strategy,
    cfg: &FineTuneTrainConfig,
    device: &B::Device,
) -> Result<(FineTuneModel<B::InnerBackend>, FineTuneReport, ParamReport)> {
    let model = FineTuneConfig::new(strategy, head_for(task))
        .with_seed(cfg.train.seed)
        .init(lm.backbone.clone(), device)?;
    let params = ParamReport::of(&model);
    let (tuned, report) = finetune(model, task, cfg, device)?;
    Ok((tuned, report, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_parse_in_any_spelling_of_cold_start() {
        for (s, t) in [
            ("gender", TaskName::Gender),
            (" Age ", TaskName::Age),
            ("OCCUPATION", TaskName::Occupation),
            ("cold-start", TaskName::ColdStart),
            ("coldstart", TaskName::ColdStart),
            ("cold_start", TaskName::ColdStart),
        ] {
            assert_eq!(s.parse::<TaskName>(), Ok(t), "{s}");
            assert_eq!(t.name().parse::<TaskName>(), Ok(t));
        }
        assert!("zip".parse::<TaskName>().is_err());
        assert_eq!(TaskName::ColdStart.attribute(), None);
        assert_eq!(TaskName::Age.attribute(), Some(ProfileAttribute::Age));
    }
}
