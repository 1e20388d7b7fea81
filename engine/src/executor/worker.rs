//! The worker pool: apalis's worker (concurrency limit, panic catching, graceful stop) fed by our
//! dispatcher through [`DispatchBackend`], plus the sweeper that re-dispatches whatever the queue
//! lost and hands back steps whose worker died.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::WorkerBuilderExt;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::data::Data;
use apalis_core::task::task_id::RandomId;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tower::layer::util::Identity;

use super::Executor;
use crate::queue::{Delivery, Job};
use crate::store::now_ms;

/// An apalis backend whose tasks come from a channel that the feeder fills from the dispatcher.
/// The channel is bounded by the worker's concurrency, so a worker never holds more jobs than it
/// can start soon (others stay in the queue for other workers).
pub struct DispatchBackend {
    rx: mpsc::Receiver<Task<Delivery>>,
}

impl Backend for DispatchBackend {
    type Task = Task<Delivery>;
    type Error = Infallible;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Infallible>>> {
        self.rx.poll_recv(cx).map(|task| task.map(Ok))
    }

    fn poll_close(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for DispatchBackend {
    type Args = Delivery;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}

/// Runs one delivered job, then acknowledges it. A job whose run failed (the database was down)
/// is acknowledged too: its rows still say what is left to do, and the sweeper re-dispatches it.
async fn handle(delivery: Delivery, executor: Data<Arc<Executor>>) -> Result<(), Infallible> {
    // A panic in an action must not take the worker down: it is caught here and the step's lease
    // runs out, so the sweeper hands it to a worker again.
    let run = std::panic::AssertUnwindSafe(executor.run(delivery.job)).catch_unwind();
    match run.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, job = ?delivery.job, "job failed; it will be re-dispatched")
        }
        Err(_) => tracing::error!(job = ?delivery.job, "job panicked; it will be re-dispatched"),
    }
    executor.acks.call(delivery).await;
    executor.jobs_in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

/// Fetches jobs for this worker while there is room for them.
async fn feed(
    executor: Arc<Executor>,
    tx: mpsc::Sender<Task<Delivery>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        // Wait for room before fetching, so jobs are not taken from other workers for nothing.
        let permit = tokio::select! {
            permit = tx.reserve() => match permit { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        // Under load, fetching for every single freed slot costs a queue round trip per job:
        // give other slots a moment to free up so fetches come in batches. An idle worker has
        // every slot free and fetches at once.
        let batch = (tx.max_capacity() / 8).max(1);
        if tx.capacity() + 1 < batch {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let room = tx.capacity() + 1;
        let fetched = tokio::select! {
            fetched = executor.dispatch.fetch(&executor.worker_id, room, Duration::from_secs(1)) => fetched,
            _ = stop.changed() => return,
        };
        match fetched {
            Ok(deliveries) => {
                backoff = Duration::from_millis(100);
                let mut deliveries = deliveries.into_iter();
                executor
                    .jobs_in_flight
                    .fetch_add(deliveries.len(), Ordering::SeqCst);
                if let Some(first) = deliveries.next() {
                    permit.send(Task::new(first));
                } else {
                    drop(permit);
                }
                for delivery in deliveries {
                    if tx.send(Task::new(delivery)).await.is_err() {
                        executor.jobs_in_flight.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "fetching jobs failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {},
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
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

/// Runs the worker pool until `shutdown` resolves: then stops fetching, lets running jobs finish
/// for up to `grace`, and hands back any step still held so another worker runs it at once.
pub async fn run(
    executor: Arc<Executor>,
    concurrency: usize,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let (tx, rx) = mpsc::channel(concurrency);
    let (stop_tx, stop_rx) = watch::channel(false);
    let feeder = tokio::spawn(feed(executor.clone(), tx, stop_rx.clone()));
    let sweeper = tokio::spawn(sweep(executor.clone(), stop_rx));

    let worker = WorkerBuilder::new(executor.worker_id.clone())
        .backend(DispatchBackend { rx })
        .data(executor.clone())
        .concurrency(concurrency)
        .build(handle);
    let worker_run = worker.run();
    tokio::pin!(worker_run);
    let ended_early = tokio::select! {
        result = &mut worker_run => {
            if let Err(e) = result {
                tracing::error!(error = %e, "worker ended early");
            }
            true
        }
        () = shutdown => false,
    };
    let _ = stop_tx.send(true);
    let _ = feeder.await;
    let _ = sweeper.await;
    // The feeder dropped its sender: the worker drains what it holds and ends.
    if !ended_early {
        // The feeder has stopped: let the jobs already handed to the worker finish, for up to
        // `grace`, while the worker keeps running them.
        let drained = async {
            while executor.jobs_in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = drained => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!("jobs still running after the grace period; handing them back");
            }
            result = &mut worker_run => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "worker ended with an error");
                }
            }
        }
    }
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
