//! `QueueBackend`, the queue as an apalis backend, driven by a real apalis worker: jobs fetched
//! in batches no larger than the worker's concurrency (the next batch fetched while every slot is
//! busy), each acknowledged once its run ended, queue errors retried without ending the worker, a
//! stop that runs what was fetched and then ends the worker, and pushes through apalis's `TaskSink` reaching Redis (a delayed one at its
//! time). The fake dispatcher below stands for a queue whose behaviour a test scripts; the last
//! test uses the real Redis dispatcher (`SWITCHYARD_TEST_REDIS`, default `redis://127.0.0.1:6379`)
//! under a random key prefix.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::WorkerBuilderExt;
use apalis_core::backend::TaskSink;
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::worker::builder::WorkerBuilder;
use redis::AsyncCommands;
use switchyard::executor::backend::QueueBackend;
use switchyard::queue::redis::{RedisDispatch, RedisOptions};
use switchyard::queue::{Delivery, Dispatch, Job, QueueDepth, QueueError};
use tokio::sync::Semaphore;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// A queue a test fills and watches: jobs in a list, receipts `r-<n>`, a number of fetches that
/// fail first, and a record of every fetch's size and every acknowledgement.
#[derive(Default)]
struct ScriptedQueue {
    jobs: Mutex<VecDeque<Job>>,
    failures_left: AtomicUsize,
    receipts: AtomicUsize,
    fetch_sizes: Mutex<Vec<usize>>,
    acked: Mutex<Vec<Delivery>>,
}

impl ScriptedQueue {
    fn with_jobs(n: usize) -> Arc<Self> {
        let queue = Self::default();
        queue
            .jobs
            .lock()
            .expect("lock")
            .extend((0..n).map(|_| step()));
        Arc::new(queue)
    }

    fn left(&self) -> usize {
        self.jobs.lock().expect("lock").len()
    }

    fn acked(&self) -> Vec<Delivery> {
        self.acked.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl Dispatch for ScriptedQueue {
    async fn dispatch(&self, jobs: &[(Job, i64)]) -> Result<(), QueueError> {
        self.jobs
            .lock()
            .expect("lock")
            .extend(jobs.iter().map(|(job, _)| *job));
        Ok(())
    }

    async fn fetch(
        &self,
        _worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError::Unavailable("scripted failure".to_owned()));
        }
        let deadline = Instant::now() + wait;
        loop {
            let taken: Vec<Job> = {
                let mut jobs = self.jobs.lock().expect("lock");
                let n = max.min(jobs.len());
                jobs.drain(..n).collect()
            };
            if !taken.is_empty() || Instant::now() >= deadline {
                self.fetch_sizes.lock().expect("lock").push(max);
                return Ok(taken
                    .into_iter()
                    .map(|job| Delivery {
                        job,
                        receipt: format!("r-{}", self.receipts.fetch_add(1, Ordering::SeqCst)),
                    })
                    .collect());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.acked.lock().expect("lock").push(delivery.clone());
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Ok(QueueDepth::default())
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

fn step() -> Job {
    Job::RunStep {
        tenant_id: Uuid::from_u128(1),
        step_id: Uuid::now_v7(),
    }
}

/// What the worker's service saw: each job with its delivery (from the task's extensions).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Job, Delivery)>>>);

impl Seen {
    fn record(&self, task: &Task<Job>) {
        let delivery = task
            .data()
            .get::<Delivery>()
            .cloned()
            .expect("the delivery travels with the task");
        assert_eq!(delivery.job, task.args);
        self.0.lock().expect("lock").push((task.args, delivery));
    }

    fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.len() < n {
            assert!(Instant::now() < deadline, "{} of {n} jobs ran", self.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A tower layer that records every task before the service runs it: an integrator's layer.
#[derive(Clone)]
struct RecordLayer(Seen);

impl<S> tower::Layer<S> for RecordLayer {
    type Service = RecordService<S>;
    fn layer(&self, inner: S) -> RecordService<S> {
        RecordService {
            inner,
            seen: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct RecordService<S> {
    inner: S,
    seen: Seen,
}

impl<S: tower::Service<Task<Job>>> tower::Service<Task<Job>> for RecordService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, task: Task<Job>) -> S::Future {
        self.seen.record(&task);
        self.inner.call(task)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_come_in_batches_sized_to_the_free_slots_and_each_is_acknowledged_once() {
    let queue = ScriptedQueue::with_jobs(300);
    let seen = Seen::default();
    let concurrency = 16;
    let backend = QueueBackend::new(queue.clone(), "worker-a", concurrency);
    let stop = backend.stop_handle();
    let worker = WorkerBuilder::new("worker-a")
        .backend(backend)
        .layer(RecordLayer(seen.clone()))
        .concurrency(concurrency)
        .build(|_job: Job| async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<(), Infallible>(())
        });
    let running = tokio::spawn(worker.run());

    seen.wait_for(300).await;
    let deadline = Instant::now() + WAIT;
    while queue.acked().len() < 300 {
        assert!(Instant::now() < deadline, "{} acks", queue.acked().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.stop();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker ends after a stop")
        .expect("worker task")
        .expect("worker result");

    // Every job ran once, and its own delivery (receipt) was acknowledged once.
    let ran = seen.0.lock().expect("lock").clone();
    let mut receipts: HashMap<String, usize> = HashMap::new();
    for (_, delivery) in &ran {
        *receipts.entry(delivery.receipt.clone()).or_default() += 1;
    }
    assert_eq!(receipts.len(), 300);
    let acked = queue.acked();
    assert_eq!(acked.len(), 300);
    for delivery in &acked {
        assert_eq!(receipts.get(&delivery.receipt), Some(&1), "{delivery:?}");
    }
    // Never more than the worker had room for; and in batches, not a queue call per job.
    let sizes = queue.fetch_sizes.lock().expect("lock").clone();
    assert!(sizes.iter().all(|&n| n <= concurrency), "{sizes:?}");
    let fetches_with_work = sizes.len();
    assert!(
        fetches_with_work < 300 / 3,
        "{fetches_with_work} fetches for 300 jobs: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_errors_are_retried_and_do_not_end_the_worker() {
    let queue = ScriptedQueue::with_jobs(5);
    queue.failures_left.store(3, Ordering::SeqCst);
    let seen = Seen::default();
    let backend = QueueBackend::new(queue.clone(), "worker-b", 4);
    let stop = backend.stop_handle();
    let worker = WorkerBuilder::new("worker-b")
        .backend(backend)
        .layer(RecordLayer(seen.clone()))
        .build(|_job: Job| async { Ok::<(), Infallible>(()) });
    let started = Instant::now();
    let running = tokio::spawn(worker.run());

    seen.wait_for(5).await;
    // Three failed fetches, backing off 100 + 200 + 400 ms.
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(!running.is_finished(), "a queue error ended the worker");
    // Still fetching: work dispatched now runs too.
    queue.dispatch(&[(step(), 0)]).await.expect("dispatch");
    seen.wait_for(6).await;

    stop.stop();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker ends after a stop")
        .expect("worker task")
        .expect("worker result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_runs_what_was_fetched_and_fetches_nothing_more() {
    let queue = ScriptedQueue::with_jobs(10);
    let seen = Seen::default();
    let gate = Arc::new(Semaphore::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let backend = QueueBackend::new(queue.clone(), "worker-c", 2);
    let stop = backend.stop_handle();
    let worker = {
        let gate = gate.clone();
        let finished = finished.clone();
        WorkerBuilder::new("worker-c")
            .backend(backend)
            .layer(RecordLayer(seen.clone()))
            .concurrency(2)
            .build(move |_job: Job| {
                let gate = gate.clone();
                let finished = finished.clone();
                async move {
                    gate.acquire().await.expect("gate").forget();
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), Infallible>(())
                }
            })
    };
    let running = tokio::spawn(worker.run());

    seen.wait_for(2).await;
    // Give the backend the moment it needs to fetch its next batch while both slots are busy.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fetched = 10 - queue.left();
    assert_eq!(fetched, 4, "two running, two waiting in the buffer");
    stop.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!running.is_finished(), "the worker ended with jobs running");
    gate.add_permits(100);
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker ends once its jobs are done")
        .expect("worker task")
        .expect("worker result");

    // What was fetched ran and was acknowledged; nothing more was fetched after the stop.
    assert_eq!(seen.len(), fetched);
    assert_eq!(finished.load(Ordering::SeqCst), fetched);
    assert_eq!(queue.acked().len(), fetched);
    assert_eq!(queue.left(), 10 - fetched, "the rest stays in the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_pushed_through_apalis_reach_redis_and_a_delayed_one_waits_for_its_time() {
    let url = std::env::var("SWITCHYARD_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("switchyard-test:{}", Uuid::new_v4().simple());
    let dispatch: Arc<RedisDispatch> = Arc::new(
        RedisDispatch::connect(&url, &prefix, RedisOptions::default())
            .await
            .expect("connect to the test Redis"),
    );

    // A producer pushes through apalis's sink: three jobs now, one two seconds from now.
    let mut producer = QueueBackend::new(dispatch.clone(), "producer", 1);
    let now_jobs: Vec<Job> = (0..3).map(|_| step()).collect();
    producer
        .push_bulk(now_jobs.clone())
        .await
        .expect("push_bulk");
    let later = step();
    let pushed_at = Instant::now();
    producer
        .push_task(
            TaskBuilder::new(later)
                .run_after(Duration::from_secs(2))
                .build(),
        )
        .await
        .expect("push_task");
    let depth = dispatch.depth().await.expect("depth");
    assert_eq!((depth.ready, depth.delayed), (3, 1));

    let seen = Seen::default();
    let arrived: Arc<Mutex<HashMap<Job, Duration>>> = Arc::default();
    let backend = QueueBackend::new(dispatch.clone(), "worker-d", 4);
    let stop = backend.stop_handle();
    let worker = {
        let arrived = arrived.clone();
        WorkerBuilder::new("worker-d")
            .backend(backend)
            .layer(RecordLayer(seen.clone()))
            .concurrency(4)
            .build(move |job: Job| {
                let arrived = arrived.clone();
                async move {
                    arrived
                        .lock()
                        .expect("lock")
                        .insert(job, pushed_at.elapsed());
                    Ok::<(), Infallible>(())
                }
            })
    };
    let running = tokio::spawn(worker.run());
    seen.wait_for(4).await;

    let arrived = arrived.lock().expect("lock").clone();
    for job in &now_jobs {
        assert!(arrived[job] < Duration::from_secs(1), "{:?}", arrived[job]);
    }
    // `run_at` is in whole seconds: due between one and two seconds after the push.
    assert!(
        arrived[&later] >= Duration::from_millis(900),
        "{:?}",
        arrived[&later]
    );
    // Receipts are the stream entry ids, and every entry was acknowledged and deleted.
    for (_, delivery) in seen.0.lock().expect("lock").iter() {
        assert!(delivery.receipt.contains('-'), "{delivery:?}");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let depth = dispatch.depth().await.expect("depth");
        if depth == QueueDepth::default() {
            break;
        }
        assert!(Instant::now() < deadline, "left in Redis: {depth:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.stop();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker ends after a stop")
        .expect("worker task")
        .expect("worker result");
    let mut raw = redis::Client::open(url.as_str())
        .expect("test Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let keys: Vec<String> = raw.keys(format!("{prefix}:*")).await.expect("KEYS");
    if !keys.is_empty() {
        let _: () = raw.del(&keys).await.expect("DEL");
    }
}
