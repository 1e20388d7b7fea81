//! Dispatching work to workers. The database is the source of truth for events, executions and
//! steps; a queue only carries ids, at least once. Two dispatchers sit behind one trait: Redis
//! Streams (scale-out) and the SQLite file itself (the embedded default). Workers read either one
//! as an apalis backend, `executor::backend::QueueBackend`.

pub mod redis;
pub mod sqlite;

use std::time::Duration;

pub use crate::domain::job::{Job, JobEnvelope};

/// A job handed to a worker, with what the dispatcher needs to acknowledge it. In the apalis
/// worker it travels in the task's extensions (`task.data().get::<Delivery>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub job: Job,
    /// Opaque to workers: a Redis stream entry id, or empty for the SQLite dispatcher.
    pub receipt: String,
}

/// Counts for `/metrics` and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Runnable now.
    pub ready: u64,
    /// Scheduled for later (retries, delays).
    pub delayed: u64,
    /// Delivered to a worker and not yet acknowledged.
    pub in_flight: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// A way of getting jobs to workers. Delivery is at least once: a job may arrive twice (a worker
/// died before acknowledging, the sweeper re-dispatched it), so whoever runs a job first claims its
/// row in the database and a second delivery finds nothing to do.
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// Makes each job runnable at its time (Unix ms; now or earlier means at once). Called after
    /// the transaction that created the work committed.
    async fn dispatch(&self, jobs: &[(Job, i64)]) -> Result<(), QueueError>;

    /// Up to `max` jobs for `worker`, waiting up to `wait` when none is ready.
    async fn fetch(
        &self,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// The job's outcome is committed: forget it.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Forgets several jobs at once (workers acknowledge in batches).
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        for delivery in deliveries {
            self.ack(delivery).await?;
        }
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Reachable, for `/readyz`.
    async fn ping(&self) -> Result<(), QueueError>;

    /// Forgets workers that are gone: consumers other than `keep` with nothing pending that have
    /// been idle longer than `idle` (ended worker processes otherwise stay registered forever).
    /// A live worker that was merely idle is registered again by its next fetch. Returns how many
    /// were removed.
    async fn prune_workers(&self, _keep: &str, _idle: Duration) -> Result<usize, QueueError> {
        Ok(0)
    }

    /// Whether the queue can lose jobs the database still owes, so the sweeper must dispatch due
    /// work again when it has waited too long. A dispatcher that reads the database itself cannot.
    fn can_lose_jobs(&self) -> bool {
        true
    }
}
