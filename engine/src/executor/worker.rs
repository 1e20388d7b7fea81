//! The worker pool: an apalis worker on [`QueueBackend`] (the queue itself is the apalis
//! backend; see `backend.rs`), with apalis's concurrency limit and graceful stop, plus the sweeper
//! that re-dispatches whatever the queue lost and hands back steps whose worker died.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::WorkerBuilderExt;
use apalis_core::error::WorkerError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use futures::FutureExt;
use tokio::sync::watch;

use super::Executor;
use super::backend::{QueueBackend, StopFetching};
use crate::queue::Job;
use crate::store::now_ms;

/// The worker's service: runs one job to completion (its outcome committed). Never fails: a job
/// whose run failed (the database was down) or panicked is logged, its rows still say what is
/// left to do, and the sweeper dispatches it again. The backend's middleware acknowledges it.
pub async fn run_job(job: Job, executor: Data<Arc<Executor>>) -> Result<(), Infallible> {
    // A panic in an action must not take the worker down: it is caught here and the step's lease
    // runs out, so the sweeper hands it to a worker again.
    let run = std::panic::AssertUnwindSafe(executor.run(job)).catch_unwind();
    match run.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, ?job, "job failed; it will be re-dispatched"),
        Err(_) => tracing::error!(?job, "job panicked; it will be re-dispatched"),
    }
    Ok(())
}

/// Every `sweep_interval`: steps whose lease ran out go back to the queue, and work the queue may
/// have lost (due steps and pending events left untouched too long) is dispatched again.
async fn sweep(executor: Arc<Executor>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(executor.settings.sweep_interval);
    let mut pruned_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = interval.tick() => {},
            _ = stop.changed() => return,
        }
        if let Err(e) = sweep_once(&executor).await {
            tracing::warn!(error = %e, "sweep failed");
        }
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = tokio::time::Instant::now();
            match executor
                .dispatch
                .prune_workers(&executor.worker_id, PRUNE_IDLE)
                .await
            {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "forgot queue consumers of ended workers"),
                Err(e) => tracing::warn!(error = %e, "pruning queue consumers failed"),
            }
        }
    }
}

/// How often a worker forgets the queue consumers of ended workers.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// A consumer with nothing pending and idle this long belongs to an ended worker (a live worker
/// fetches at least every second; one that was only idle registers again by fetching).
const PRUNE_IDLE: Duration = Duration::from_secs(600);

pub async fn sweep_once(executor: &Executor) -> Result<(), crate::store::StoreError> {
    let now = now_ms();
    let expired = executor.store.requeue_expired_leases(1000).await?;
    if !expired.is_empty() {
        tracing::info!(
            count = expired.len(),
            "re-queued steps whose worker stopped"
        );
        metrics::counter!("switchyard_steps_recovered_total").increment(expired.len() as u64);
    }
    let mut jobs: Vec<(Job, i64)> = expired
        .into_iter()
        .map(|(tenant_id, step_id)| (Job::RunStep { tenant_id, step_id }, now))
        .collect();
    // Work the queue may have lost (a Redis restart): due steps and pending events left
    // untouched too long are dispatched again. The SQLite dispatcher reads the tables itself.
    if executor.dispatch.can_lose_jobs() {
        let stale_ms = super::millis(executor.settings.redispatch_after);
        jobs.extend(
            executor
                .store
                .stale_queued_steps(stale_ms, 1000)
                .await?
                .into_iter()
                .map(|(tenant_id, step_id, at)| (Job::RunStep { tenant_id, step_id }, at)),
        );
        jobs.extend(
            executor
                .store
                .pending_events(now - stale_ms, 1000)
                .await?
                .into_iter()
                .map(|(tenant_id, event_id)| {
                    (
                        Job::ProcessEvent {
                            tenant_id,
                            event_id,
                        },
                        now,
                    )
                }),
        );
    }
    executor.dispatch(&jobs).await;
    if let Ok(depth) = executor.dispatch.depth().await {
        metrics::gauge!("switchyard_queue_ready").set(depth.ready as f64);
        metrics::gauge!("switchyard_queue_delayed").set(depth.delayed as f64);
        metrics::gauge!("switchyard_queue_in_flight").set(depth.in_flight as f64);
    }
    Ok(())
}

/// Runs the worker pool until `shutdown` resolves: an apalis worker on [`QueueBackend`] running
/// up to `concurrency` jobs at once, under [`supervise`].
pub async fn run(
    executor: Arc<Executor>,
    concurrency: usize,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let backend = QueueBackend::new(executor.dispatch.clone(), &executor.worker_id, concurrency);
    let stop = backend.stop_handle();
    let worker = WorkerBuilder::new(executor.worker_id.clone())
        .backend(backend)
        .concurrency(concurrency)
        .data(executor.clone())
        .build(run_job);
    supervise(executor, stop, worker.run(), grace, shutdown).await
}

/// Runs a worker built on a [`QueueBackend`] (`worker` is its `Worker::run()`, `stop` the
/// backend's [`QueueBackend::stop_handle`]) beside the sweeper until `shutdown` resolves. Then it
/// stops fetching, lets the jobs already fetched start and the running ones finish for up to
/// `grace`, and hands back any step still held so another worker runs it at once. An integrator
/// who wraps the worker in layers of their own runs it through this function.
pub async fn supervise(
    executor: Arc<Executor>,
    stop: StopFetching,
    worker: impl Future<Output = Result<(), WorkerError>> + Send,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (stop_sweeper, sweeper_stopped) = watch::channel(false);
    let sweeper = tokio::spawn(sweep(executor.clone(), sweeper_stopped));
    let mut worker = Box::pin(worker);
    let ended_early = tokio::select! {
        result = &mut worker => {
            if let Err(e) = result {
                tracing::error!(error = %e, "worker ended early");
            }
            true
        }
        () = shutdown => false,
    };
    stop.stop();
    let _ = stop_sweeper.send(true);
    let _ = sweeper.await;
    if !ended_early {
        // The backend no longer fetches; the worker ends once its jobs are done.
        tokio::select! {
            result = &mut worker => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "worker ended with an error");
                }
            }
            () = tokio::time::sleep(grace) => {
                tracing::warn!("jobs still running after the grace period; handing them back");
            }
        }
    }
    // Dropped before the leases are released: a job cut short must not hold a transaction open.
    drop(worker);
    match executor.store.release_leases(&executor.worker_id).await {
        Ok(released) if !released.is_empty() => {
            tracing::info!(count = released.len(), "handed back running steps");
            let now = now_ms();
            let jobs: Vec<_> = released
                .into_iter()
                .map(|(tenant_id, step_id)| (Job::RunStep { tenant_id, step_id }, now))
                .collect();
            executor.dispatch(&jobs).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not hand back running steps"),
    }
    Ok(())
}
