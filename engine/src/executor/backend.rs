//! Our queues as an apalis backend. [`QueueBackend`] implements `apalis_core`'s [`Backend`] over
//! any [`Dispatch`] (Redis Streams or the SQLite tables), so `switchyard worker` is an apalis
//! worker reading the queue itself: `poll_next` drives the fetch, tasks carry our versioned
//! [`Job`] (ids only) with the [`Delivery`] in their extensions, the acknowledgement is the
//! backend's middleware ([`AcknowledgeLayer`]) feeding the executor's batched ack, and
//! [`TaskSink`](apalis_core::backend::TaskSink) pushes go to [`Dispatch::dispatch`].
//!
//! The database stays the source of truth: a job is acknowledged once its run ended, whatever
//! the result, because the rows say what is left to do (leases, the sweeper).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::BoxDynError;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::{ExecutionContext, Task};
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::ext::ack::{Acknowledge, AcknowledgeLayer};
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use futures::{FutureExt, Sink};

use super::BATCHES_IN_FLIGHT;
use super::batch::Batcher;
use crate::queue::{Delivery, Dispatch, Job, QueueError};
use crate::store::now_ms;

/// How long one fetch waits for work when the queue is empty. A stop does not wait for it: the
/// fetch in flight is dropped.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// Under load, a fetch for every job taken from the buffer would cost a queue round trip per
/// job: when the buffer has room for fewer than an eighth of the worker's concurrency, wait this
/// long for more room, so fetches come in batches. An idle worker has room and fetches at once.
const BATCH_PAUSE: Duration = Duration::from_millis(2);
/// Back-off after a failed fetch (Redis down), doubling up to `BACKOFF_MAX`.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Tasks pushed through the sink are dispatched in one call once this many are waiting.
const SINK_BATCH: usize = 256;

/// Stops a [`QueueBackend`] from fetching. After [`StopFetching::stop`] the backend hands out the
/// jobs it already fetched, then ends the worker's stream (the worker finishes the jobs it runs and
/// stops). Clones share the signal.
#[derive(Clone, Default)]
pub struct StopFetching(Arc<StopState>);

#[derive(Default)]
struct StopState {
    stopped: AtomicBool,
    waker: AtomicWaker,
}

impl StopFetching {
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.waker.wake();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Whether stopped; if not, `cx` is woken by the stop.
    fn poll_stopped(&self, cx: &Context<'_>) -> bool {
        self.0.waker.register(cx.waker());
        self.is_stopped()
    }
}

/// Where the backend is in getting more jobs.
enum Fetch {
    /// Nothing started: the next `poll_next` with an empty buffer fetches (or pauses first).
    Idle,
    /// Fetches when the timer fires: a batching pause, or the back-off after a failure.
    Paused(Pin<Box<tokio::time::Sleep>>),
    /// A fetch in flight.
    Fetching(BoxFuture<'static, Result<Vec<Delivery>, QueueError>>),
}

/// The queue as an apalis backend: `Args` is [`Job`], the [`Delivery`] (job and the queue's
/// receipt) travels in the task's extensions (`task.data().get::<Delivery>()`), and the task id
/// is the receipt (a Redis stream entry id) or, on SQLite, the job's row id.
///
/// Build a worker on it with `apalis_core::worker::builder::WorkerBuilder`, add your own tower
/// layers, and run it with [`super::worker::supervise`] (the sweeper, graceful stop and hand-back
/// of leases); [`super::worker::run`] does exactly that with no extra layer:
///
/// ```no_run
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # async fn example(executor: Arc<switchyard::executor::Executor>) -> anyhow::Result<()> {
/// use apalis::prelude::WorkerBuilderExt;
/// use apalis_core::worker::builder::WorkerBuilder;
/// use switchyard::executor::backend::QueueBackend;
/// use switchyard::executor::worker;
///
/// let concurrency = 32;
/// let backend = QueueBackend::new(executor.dispatch.clone(), &executor.worker_id, concurrency);
/// let stop = backend.stop_handle();
/// let pool = WorkerBuilder::new(executor.worker_id.clone())
///     .backend(backend)
///     // .layer(YourLayer::new(..)) — sees every job (`Task<Job>`) before it runs
///     .concurrency(concurrency)
///     .data(executor.clone())
///     .build(worker::run_job);
/// let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
/// worker::supervise(executor, stop, pool.run(), Duration::from_secs(10), shutdown).await
/// # }
/// ```
///
/// Queue errors never end the worker (any backend error would end `Worker::run`): a failed fetch
/// is logged and retried after a back-off. Pushing through [`apalis_core::backend::TaskSink`]
/// dispatches the job at the task's `run_at` (Unix seconds; none means now).
pub struct QueueBackend {
    dispatch: Arc<dyn Dispatch>,
    worker_id: Arc<str>,
    acks: Batcher<Delivery, ()>,
    concurrency: usize,
    /// Fetched and not yet handed to the worker.
    ready: VecDeque<Delivery>,
    fetch: Fetch,
    backoff: Duration,
    stop: StopFetching,
    /// Pushed through the sink, not yet dispatched.
    outgoing: Vec<(Job, i64)>,
    flushing: Option<BoxFuture<'static, Result<(), QueueError>>>,
}

impl QueueBackend {
    /// A backend reading `dispatch` as the queue consumer `worker_id` (use the executor's:
    /// `executor.dispatch`, `executor.worker_id`, also the lease owner), sized for a worker that
    /// runs up to `concurrency` jobs at once. Needs a Tokio runtime: acknowledgements are sent by a
    /// task of their own, in batches.
    pub fn new(dispatch: Arc<dyn Dispatch>, worker_id: &str, concurrency: usize) -> Self {
        let acks = {
            let dispatch = dispatch.clone();
            Batcher::start_parallel(BATCHES_IN_FLIGHT, move |deliveries: Vec<Delivery>| {
                let dispatch = dispatch.clone();
                async move {
                    if let Err(e) = dispatch.ack_many(&deliveries).await {
                        tracing::warn!(error = %e, count = deliveries.len(), "ack failed");
                    }
                    vec![(); deliveries.len()]
                }
            })
        };
        Self {
            dispatch,
            worker_id: worker_id.into(),
            acks,
            concurrency: concurrency.max(1),
            ready: VecDeque::new(),
            fetch: Fetch::Idle,
            backoff: BACKOFF_FIRST,
            stop: StopFetching::default(),
            outgoing: Vec::new(),
            flushing: None,
        }
    }

    /// The handle that stops this backend's fetching (a graceful stop of its worker).
    pub fn stop_handle(&self) -> StopFetching {
        self.stop.clone()
    }

    /// What one fetch may take: the backend holds at most `concurrency` fetched jobs beyond the
    /// ones running, so a slot that frees starts its next job at once (no queue round trip in
    /// between), while jobs a worker cannot start soon stay in the queue for other workers.
    fn room(&self) -> usize {
        self.concurrency.saturating_sub(self.ready.len())
    }

    /// Moves the fetching on as far as it goes without waiting: starts a fetch when there is
    /// room (after a short pause when there is little, so fetches come in batches), buffers what
    /// it returns, backs off after a failure. Whatever it waits on wakes `cx`. Called from
    /// `poll_ready` too, so the next batch is fetched while every slot is busy.
    fn drive(&mut self, cx: &mut Context<'_>) {
        loop {
            if self.stop.is_stopped() {
                // A fetch in flight is dropped: on Redis, entries it had taken stay pending and
                // `XAUTOCLAIM` hands them to a live worker; on SQLite the rows are the queue.
                self.fetch = Fetch::Idle;
                return;
            }
            match &mut self.fetch {
                Fetch::Idle => {
                    let room = self.room();
                    if room == 0 {
                        // Polled again when the worker takes a job from the buffer.
                        return;
                    }
                    if room < (self.concurrency / 8).max(1) {
                        self.fetch = Fetch::Paused(Box::pin(tokio::time::sleep(BATCH_PAUSE)));
                    } else {
                        self.start_fetch(room);
                    }
                }
                Fetch::Paused(timer) => {
                    if timer.as_mut().poll(cx).is_pending() {
                        return;
                    }
                    match self.room() {
                        0 => self.fetch = Fetch::Idle,
                        room => self.start_fetch(room),
                    }
                }
                Fetch::Fetching(fetching) => match fetching.poll_unpin(cx) {
                    Poll::Pending => return,
                    Poll::Ready(Ok(deliveries)) => {
                        self.backoff = BACKOFF_FIRST;
                        self.ready.extend(deliveries);
                        self.fetch = Fetch::Idle;
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(error = %e, "fetching jobs failed; retrying");
                        self.fetch = Fetch::Paused(Box::pin(tokio::time::sleep(self.backoff)));
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    }
                },
            }
        }
    }

    fn start_fetch(&mut self, max: usize) {
        let dispatch = self.dispatch.clone();
        let worker_id = self.worker_id.clone();
        self.fetch = Fetch::Fetching(
            async move { dispatch.fetch(&worker_id, max, FETCH_WAIT).await }.boxed(),
        );
    }
}

/// The task that carries `delivery` through the worker.
fn task_for(delivery: Delivery) -> Task<Job> {
    let id = if delivery.receipt.is_empty() {
        match delivery.job {
            Job::ProcessEvent { event_id, .. } => event_id.to_string(),
            Job::RunStep { step_id, .. } => step_id.to_string(),
        }
    } else {
        delivery.receipt.clone()
    };
    TaskBuilder::new(delivery.job)
        .task_id(TaskId::String(id))
        .data(delivery)
        .build()
}

impl Backend for QueueBackend {
    type Task = Task<Job>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        self.drive(cx);
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Job>, QueueError>>> {
        loop {
            // Fetched jobs are handed out even after a stop: they are ours until acknowledged.
            if let Some(delivery) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(task_for(delivery))));
            }
            if self.stop.poll_stopped(cx) {
                self.fetch = Fetch::Idle;
                // The worker ends once the jobs it runs are done (it waits for `stop`).
                let _ = worker.stop();
                return Poll::Ready(None);
            }
            self.drive(cx);
            if self.ready.is_empty() {
                // `drive` left a fetch or a timer that wakes `cx`, and so does a stop.
                return Poll::Pending;
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        self.fetch = Fetch::Idle;
        // Tasks pushed through this backend are not dropped silently.
        Sink::<Task<Job>>::poll_close(Pin::new(self), cx)
    }
}

impl BackendConfig for QueueBackend {
    type Args = Job;
    /// The receipt, or the job's row id.
    type Id = String;
    /// The dispatcher encodes jobs itself (`Job::encode`): apalis needs no codec.
    type Kind = Ephemeral;
    type Config = ();
    type Layer = AcknowledgeLayer<QueueAck>;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        AcknowledgeLayer::new(QueueAck {
            acks: self.acks.clone(),
        })
    }
}

/// Acknowledges a job once its run ended, successful or not, through the backend's batched
/// acknowledgement (one queue call per batch). A run that failed (the database was down, a layer
/// refused the job) is acknowledged too: its rows still say what is left to do, and the sweeper
/// dispatches it again.
#[derive(Clone)]
pub struct QueueAck {
    acks: Batcher<Delivery, ()>,
}

impl<Res> Acknowledge<Res> for QueueAck {
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<(), Infallible>>;

    fn ack(&mut self, _: &Result<Res, BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        let Some(delivery) = ctx.data().get::<Delivery>().cloned() else {
            return futures::future::ready(Ok(())).boxed();
        };
        let acks = self.acks.clone();
        async move {
            // `None` only when the batcher is gone (the process is ending): the job comes back.
            let _ = acks.call(delivery).await;
            Ok(())
        }
        .boxed()
    }
}

/// Pushing through apalis (`TaskSink::push`, `push_task` with a `run_at`): jobs are collected and
/// dispatched together on flush.
impl Sink<Task<Job>> for QueueBackend {
    type Error = QueueError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        if self.outgoing.len() >= SINK_BATCH {
            self.poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, task: Task<Job>) -> Result<(), QueueError> {
        let at = match task.run_at() {
            Some(secs) => i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000,
            None => now_ms(),
        };
        self.get_mut().outgoing.push((task.args, at));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        let this = self.get_mut();
        loop {
            if let Some(flushing) = &mut this.flushing {
                let result = ready!(flushing.poll_unpin(cx));
                this.flushing = None;
                result?;
            }
            if this.outgoing.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let jobs = std::mem::take(&mut this.outgoing);
            let dispatch = this.dispatch.clone();
            this.flushing = Some(async move { dispatch.dispatch(&jobs).await }.boxed());
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        self.poll_flush(cx)
    }
}
