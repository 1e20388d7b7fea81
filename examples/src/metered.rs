//! An integrator's worker: Switchyard's apalis worker on the engine's queue backend, wrapped in a
//! tower layer of the integrator's own, [`JobMeterLayer`], which counts the jobs the worker runs
//! per tenant and kind and how long they took. Any tower layer fits the same place (a per-tenant
//! rate limit, tracing, a circuit breaker): it sees every job as an apalis `Task<Job>`, with the
//! queue's `Delivery` in the task's extensions.
//!
//! [`run_worker`] is what `switchyard worker` does (`switchyard::executor::worker::run`) plus the
//! layer: build a [`QueueBackend`] on the executor's queue, build the worker on it with the
//! engine's service [`worker::run_job`], and run it under [`worker::supervise`] (the sweeper, a
//! graceful stop, running steps handed back).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis::prelude::WorkerBuilderExt;
use apalis_core::task::Task;
use apalis_core::worker::builder::WorkerBuilder;
use futures::future::BoxFuture;
use switchyard::executor::Executor;
use switchyard::executor::backend::QueueBackend;
use switchyard::executor::worker;
use switchyard::queue::Job;
use tower::{Layer, Service};
use uuid::Uuid;

/// The two kinds of job the queue carries, as the meter names them.
pub fn job_kind(job: &Job) -> &'static str {
    match job {
        Job::ProcessEvent { .. } => "process_event",
        Job::RunStep { .. } => "run_step",
    }
}

/// Jobs of one tenant and kind run by this worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Runs ended (successful or not).
    pub runs: u64,
    /// Time spent running them.
    pub busy: Duration,
}

/// What the layer observed, shared with whoever reads it (a metrics endpoint, a test).
#[derive(Debug, Default)]
pub struct JobMeter {
    stats: Mutex<BTreeMap<(Uuid, &'static str), JobStats>>,
}

impl JobMeter {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Everything counted so far, by tenant and kind.
    pub fn snapshot(&self) -> BTreeMap<(Uuid, &'static str), JobStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Runs of `kind` for `tenant` so far.
    pub fn runs(&self, tenant: Uuid, kind: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((t, k), _)| *t == tenant && *k == kind)
            .map(|(_, stats)| stats.runs)
            .sum()
    }

    fn record(&self, key: (Uuid, &'static str), took: Duration) {
        if let Ok(mut stats) = self.stats.lock() {
            let entry = stats.entry(key).or_default();
            entry.runs += 1;
            entry.busy += took;
        }
    }
}

/// Counts every job the wrapped service runs in a [`JobMeter`].
#[derive(Clone)]
pub struct JobMeterLayer {
    meter: Arc<JobMeter>,
}

impl JobMeterLayer {
    pub fn new(meter: Arc<JobMeter>) -> Self {
        Self { meter }
    }
}

impl<S> Layer<S> for JobMeterLayer {
    type Service = JobMeterService<S>;

    fn layer(&self, inner: S) -> JobMeterService<S> {
        JobMeterService {
            inner,
            meter: self.meter.clone(),
        }
    }
}

#[derive(Clone)]
pub struct JobMeterService<S> {
    inner: S,
    meter: Arc<JobMeter>,
}

impl<S> Service<Task<Job>> for JobMeterService<S>
where
    S: Service<Task<Job>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, task: Task<Job>) -> Self::Future {
        let key = (task.args.tenant_id(), job_kind(&task.args));
        let meter = self.meter.clone();
        let started = Instant::now();
        let run = self.inner.call(task);
        Box::pin(async move {
            let result = run.await;
            meter.record(key, started.elapsed());
            result
        })
    }
}

/// Runs a worker pool on `executor`'s queue with [`JobMeterLayer`] around every job, until
/// `shutdown` resolves; then stops like `switchyard worker` (running jobs get `grace`, steps
/// still held are handed back).
pub async fn run_worker(
    executor: Arc<Executor>,
    concurrency: usize,
    grace: Duration,
    meter: Arc<JobMeter>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let backend = QueueBackend::new(executor.dispatch.clone(), &executor.worker_id, concurrency);
    let stop = backend.stop_handle();
    let pool = WorkerBuilder::new(executor.worker_id.clone())
        .backend(backend)
        .layer(JobMeterLayer::new(meter))
        .concurrency(concurrency)
        .data(executor.clone())
        .build(worker::run_job);
    worker::supervise(executor, stop, pool.run(), grace, shutdown).await
}
