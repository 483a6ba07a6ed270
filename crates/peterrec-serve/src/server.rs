//! [`TaskServer`]: one backbone, many task files, batched requests that share the frozen
//! computation (see the [crate documentation](crate)).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::tensor::{backend::Backend, Int, Tensor};
use peterrec_data::batch::{cls_affixes, input_tensor};
use peterrec_model::finetune::cls_positions;
use peterrec_model::io::persist::load_backbone;
use peterrec_model::{content_hash, FineTuneModel, HeadKind, NextItNet, NextItNetConfig, Strategy};

use crate::error::{Result, ServeError};
use crate::request::{Answer, BatchStats, Query, Request};

struct ServedTask<B: Backend> {
    model: FineTuneModel<B>,
    /// Leading blocks that are the server's frozen backbone blocks.
    shared_blocks: usize,
}

/// One backbone, many tasks: see the [crate documentation](crate).
pub struct TaskServer<B: Backend> {
    backbone: NextItNet<B>,
    config: NextItNetConfig,
    hash: u64,
    max_len: usize,
    tasks: BTreeMap<String, ServedTask<B>>,
    device: B::Device,
}

impl<B: Backend> TaskServer<B> {
    /// A server for `backbone`, reading the last `max_len` items of each history (use the
    /// fine-tuning runs' `max_len`).
    pub fn new(backbone: NextItNet<B>, max_len: usize, device: B::Device) -> Result<Self> {
        let config = backbone.config().clone();
        config.validate()?;
        if max_len == 0 {
            return Err(ServeError::Config("max_len must be positive".into()));
        }
        config.check_matches(&backbone)?;
        let backbone = backbone.without_patches();
        let hash = content_hash(&backbone);
        Ok(Self {
            backbone,
            config,
            hash,
            max_len,
            tasks: BTreeMap::new(),
            device,
        })
    }

    /// A server for the backbone file at `path` (written by
    /// [`peterrec_model::save_backbone`]).
    pub fn open(path: impl AsRef<Path>, max_len: usize, device: B::Device) -> Result<Self> {
        let backbone = load_backbone::<B>(path.as_ref(), &device)?;
        Self::new(backbone, max_len, device)
    }

    /// The backbone's configuration.
    pub fn config(&self) -> &NextItNetConfig {
        &self.config
    }

    /// The shared backbone.
    pub fn backbone(&self) -> &NextItNet<B> {
        &self.backbone
    }

    /// Items read from the end of each history.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Names of the loaded tasks, sorted.
    pub fn tasks(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// The model of task `name`.
    pub fn task(&self, name: &str) -> Option<&FineTuneModel<B>> {
        self.tasks.get(name).map(|t| &t.model)
    }

    /// Loads the task file at `path` (written by [`FineTuneModel::save_task`]) as task `name`,
    /// replacing a task of that name. A task trained on another backbone is
    /// [`peterrec_model::ModelError::BackboneMismatch`].
    pub fn load_task(&mut self, name: impl Into<String>, path: impl AsRef<Path>) -> Result<()> {
        let model = FineTuneModel::load_task(self.backbone.clone(), path, &self.device)?;
        self.insert(name.into(), model);
        Ok(())
    }

    /// Adds an in-memory fine-tuned model as task `name`, replacing a task of that name. It
    /// must have been built on this server's backbone (same configuration and content hash).
    pub fn add_task(&mut self, name: impl Into<String>, model: FineTuneModel<B>) -> Result<()> {
        let name = name.into();
        if model.meta.backbone != self.config || model.meta.backbone_hash != self.hash {
            return Err(ServeError::Config(format!(
                "task `{name}` was built on another backbone (hash {:016x}, this server's is {:016x})",
                model.meta.backbone_hash, self.hash
            )));
        }
        self.insert(name, model);
        Ok(())
    }

    fn insert(&mut self, name: String, model: FineTuneModel<B>) {
        let blocks = self.backbone.blocks.len();
        let shared_blocks = match model.strategy() {
            Strategy::FineCls => blocks,
            Strategy::FineLast(n) => blocks.saturating_sub(n),
            Strategy::PeterRec { .. } | Strategy::FineAll | Strategy::Scratch => 0,
        };
        self.tasks.insert(
            name,
            ServedTask {
                model,
                shared_blocks,
            },
        );
    }

    /// The `k` best target items of task `task` for a user with `history` (vocabulary indices,
    /// oldest first): `(target index, score)`, best first.
    pub fn recommend(&self, history: &[u32], task: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        match self.answer_one(history, task, Query::Recommend { k })? {
            Answer::Items(items) => Ok(items),
            Answer::Classes(_) => unreachable!("a recommendation query gets items"),
        }
    }

    /// The class probabilities of task `task` for a user with `history`.
    pub fn classify(&self, history: &[u32], task: &str) -> Result<Vec<f32>> {
        match self.answer_one(history, task, Query::Classify)? {
            Answer::Classes(p) => Ok(p),
            Answer::Items(_) => unreachable!("a classification query gets classes"),
        }
    }

    fn answer_one(&self, history: &[u32], task: &str, query: Query) -> Result<Answer> {
        let request = Request {
            task: task.to_string(),
            history: history.to_vec(),
            query,
        };
        Ok(self.answer(std::slice::from_ref(&request))?.remove(0))
    }

    /// Answers a batch of requests, possibly for several tasks, in request order.
    pub fn answer(&self, requests: &[Request]) -> Result<Vec<Answer>> {
        Ok(self.answer_with_stats(requests)?.0)
    }

    /// [`TaskServer::answer`], and how the batch was computed.
    pub fn answer_with_stats(&self, requests: &[Request]) -> Result<(Vec<Answer>, BatchStats)> {
        let mut by_task: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, r) in requests.iter().enumerate() {
            self.check(i, r)?;
            by_task.entry(r.task.as_str()).or_default().push(i);
        }
        let mut stats = BatchStats::default();
        let mut scores: Vec<Option<Vec<f32>>> = vec![None; requests.len()];

        // The shared pass: every row of every task that starts with frozen backbone blocks.
        let shared: Vec<(&str, &Vec<usize>, usize)> = by_task
            .iter()
            .map(|(name, rows)| (*name, rows, self.tasks[*name].shared_blocks))
            .filter(|(_, _, depth)| *depth > 0)
            .collect();
        if !shared.is_empty() {
            let order: Vec<usize> = shared
                .iter()
                .flat_map(|(_, rows, _)| rows.iter().copied())
                .collect();
            let depths: BTreeSet<usize> = shared.iter().map(|(_, _, d)| *d).collect();
            let deepest = *depths.last().unwrap_or(&0);
            // Every task reads the same `[CLS]` positions, so one plan of the positions they
            // depend on serves the shared blocks and every task's own blocks.
            let tokens = self.rows(requests, &order);
            let length = tokens.dims()[1];
            let plan = self
                .backbone
                .plan(length, &cls_positions(self.backbone.causal(), length));
            let mut x = self.backbone.embed_planned(tokens, &plan);
            let mut at_depth = BTreeMap::new();
            for (i, block) in self.backbone.blocks[..deepest].iter().enumerate() {
                x = block.forward_planned(x, &plan.blocks[i]);
                if depths.contains(&(i + 1)) {
                    at_depth.insert(i + 1, x.clone());
                }
            }
            stats.shared_rows = order.len();
            stats.shared_blocks = deepest;
            let mut offset = 0;
            for (name, rows, depth) in shared {
                let task = &self.tasks[name].model;
                let mut h = at_depth[&depth].clone().narrow(0, offset, rows.len());
                offset += rows.len();
                for (block, block_plan) in task.backbone.blocks[depth..]
                    .iter()
                    .zip(&plan.blocks[depth..])
                {
                    h = block.forward_planned(h, block_plan);
                }
                let s = task.head.forward(task.pool_cls(h));
                self.scatter(s, rows, &mut scores)?;
                stats.task_runs += 1;
            }
        }
        // Tasks that change the first block: their own pass.
        for (name, rows) in &by_task {
            let served = &self.tasks[*name];
            if served.shared_blocks > 0 {
                continue;
            }
            let s = served.model.forward(self.rows(requests, rows));
            self.scatter(s, rows, &mut scores)?;
            stats.task_runs += 1;
        }

        let answers = requests
            .iter()
            .zip(scores)
            .map(|(r, s)| {
                let s = s.unwrap_or_default();
                match r.query {
                    Query::Recommend { k } => Answer::Items(peterrec_model::rank::top_k(&s, k)),
                    Query::Classify => Answer::Classes(probabilities(&s)),
                }
            })
            .collect();
        Ok((answers, stats))
    }

    fn check(&self, i: usize, r: &Request) -> Result<()> {
        let bad = |m: String| Err(ServeError::Request(format!("request {i}: {m}")));
        let Some(task) = self.tasks.get(&r.task) else {
            let known: Vec<&str> = self.tasks().collect();
            return bad(format!("unknown task `{}` (loaded: {known:?})", r.task));
        };
        match (r.query, task.model.head.kind()) {
            (Query::Recommend { k: 0 }, _) => return bad("k must be positive".into()),
            (Query::Recommend { .. }, HeadKind::Classifier { .. }) => {
                return bad(format!(
                    "task `{}` is a classifier: ask it to classify",
                    r.task
                ))
            }
            (Query::Classify, HeadKind::TargetItems { .. }) => {
                return bad(format!(
                    "task `{}` recommends target items: ask it to recommend",
                    r.task
                ))
            }
            _ => {}
        }
        let vocab = self.config.num_tokens;
        if let Some(&t) = r.history.iter().find(|&&t| t as usize >= vocab) {
            return bad(format!(
                "history token {t} is outside the backbone's vocabulary of {vocab} tokens"
            ));
        }
        Ok(())
    }

    /// The model inputs of the requests at `which`, as in fine-tuning.
    fn rows(&self, requests: &[Request], which: &[usize]) -> Tensor<B, 2, Int> {
        let histories: Vec<&[u32]> = which
            .iter()
            .map(|&i| requests[i].history.as_slice())
            .collect();
        let (prefix, suffix) = cls_affixes(self.backbone.causal());
        input_tensor(&histories, self.max_len, prefix, suffix, &self.device)
    }

    fn scatter(
        &self,
        scores: Tensor<B, 2>,
        rows: &[usize],
        out: &mut [Option<Vec<f32>>],
    ) -> Result<()> {
        let [_, n] = scores.dims();
        let flat: Vec<f32> = scores
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| ServeError::Scores(format!("{e:?}")))?;
        for (chunk, &i) in flat.chunks(n.max(1)).zip(rows) {
            out[i] = Some(chunk.to_vec());
        }
        Ok(())
    }
}

/// Softmax of one row of scores, on the host.
fn probabilities(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}
