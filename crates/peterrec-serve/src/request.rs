//! What a [`TaskServer`](crate::TaskServer) is asked and what it answers.

/// What a request asks of its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The `k` best target items (a task with a target-item head).
    Recommend {
        /// How many items (at most the task's number of target items).
        k: usize,
    },
    /// Class probabilities (a task with a classifier head).
    Classify,
}

/// One user's request to one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The task's name, as given to [`TaskServer::load_task`](crate::TaskServer::load_task) or
    /// [`TaskServer::add_task`](crate::TaskServer::add_task).
    pub task: String,
    /// The user's history, oldest first, as vocabulary indices of the backbone.
    pub history: Vec<u32>,
    /// What is asked.
    pub query: Query,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `(target item index, score)`, best first; ties go to the lower index.
    Items(Vec<(u32, f32)>),
    /// The probability of each class.
    Classes(Vec<f32>),
}

/// How a batch was computed (what
/// [`TaskServer::answer_with_stats`](crate::TaskServer::answer_with_stats) reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Rows that went through the shared pass of the frozen backbone.
    pub shared_rows: usize,
    /// Blocks of the backbone that the shared pass ran (0 when there was none).
    pub shared_blocks: usize,
    /// Passes through a task's own blocks or model (one per task in the batch).
    pub task_runs: usize,
}
