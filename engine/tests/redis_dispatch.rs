//! The Redis Streams dispatcher against a real Redis (`SWITCHYARD_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`). Each test works under a random key prefix and deletes its keys; the
//! Redis may be shared, so nothing here flushes it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use switchyard::queue::redis::{RedisDispatch, RedisOptions};
use switchyard::queue::{Delivery, Dispatch, Job, QueueDepth, QueueError};
use uuid::Uuid;

struct Harness {
    queue: Arc<RedisDispatch>,
    raw: MultiplexedConnection,
    prefix: String,
    ready: String,
    delayed: String,
}

impl Harness {
    async fn new(options: RedisOptions) -> Self {
        let url = std::env::var("SWITCHYARD_TEST_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("switchyard-test:{}", Uuid::new_v4().simple());
        let queue = RedisDispatch::connect(&url, &prefix, options)
            .await
            .expect("connect to the test Redis");
        let raw = redis::Client::open(url.as_str())
            .expect("test Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection to the test Redis");
        Self {
            queue: Arc::new(queue),
            raw,
            ready: format!("{prefix}:ready"),
            delayed: format!("{prefix}:delayed"),
            prefix,
        }
    }

    /// Deletes this test's keys (stream, delayed set, lanes, tenant list, wake stream) — also how
    /// the tests simulate a Redis wipe.
    async fn wipe(&self) {
        let mut raw = self.raw.clone();
        let keys: Vec<String> = raw.keys(format!("{}:*", self.prefix)).await.expect("KEYS");
        if !keys.is_empty() {
            let _: () = raw.del(&keys).await.expect("DEL");
        }
    }

    async fn xlen(&self) -> u64 {
        self.raw.clone().xlen(&self.ready).await.expect("XLEN")
    }

    async fn depth(&self) -> QueueDepth {
        self.queue.depth().await.expect("depth")
    }

    async fn ack_all(&self, deliveries: &[Delivery]) {
        for d in deliveries {
            self.queue.ack(d).await.expect("ack");
        }
    }
}

/// A step of one fixed tenant (the queue's order within a tenant is what most tests look at).
fn step() -> Job {
    step_of(Uuid::from_u128(1))
}

fn step_of(tenant_id: Uuid) -> Job {
    Job::RunStep {
        tenant_id,
        step_id: Uuid::now_v7(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn depth(ready: u64, delayed: u64, in_flight: u64) -> QueueDepth {
    QueueDepth {
        ready,
        delayed,
        in_flight,
    }
}

fn jobs_of(deliveries: &[Delivery]) -> HashSet<Job> {
    deliveries.iter().map(|d| d.job).collect()
}

#[tokio::test]
async fn dispatch_fetch_ack_round_trip() {
    let h = Harness::new(RedisOptions::default()).await;
    h.queue.ping().await.unwrap();
    let jobs = [step(), step(), step()];
    let later = step();
    let mut batch: Vec<(Job, i64)> = jobs.iter().map(|j| (*j, now_ms())).collect();
    batch.push((later, now_ms() + 3_600_000));
    h.queue.dispatch(&batch).await.unwrap();
    assert_eq!(h.depth().await, depth(3, 1, 0));

    let got = h.queue.fetch("w1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(jobs_of(&got), HashSet::from(jobs));
    assert!(got.iter().all(|d| !d.receipt.is_empty()));
    assert_eq!(h.depth().await, depth(0, 1, 3));

    h.ack_all(&got).await;
    assert_eq!(h.depth().await, depth(0, 1, 0));
    assert_eq!(h.xlen().await, 0, "acknowledged entries are deleted");
    assert!(
        h.queue
            .fetch("w1", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    h.wipe().await;
}

#[tokio::test]
async fn consumers_of_ended_workers_are_forgotten_but_not_ones_with_pending_jobs() {
    let h = Harness::new(RedisOptions::default()).await;
    let consumers = |h: &Harness| {
        let mut raw = h.raw.clone();
        let ready = h.ready.clone();
        async move {
            let reply: redis::streams::StreamInfoConsumersReply = raw
                .xinfo_consumers(&ready, "workers")
                .await
                .expect("XINFO CONSUMERS");
            let mut names: Vec<String> = reply.consumers.into_iter().map(|c| c.name).collect();
            names.sort();
            names
        }
    };
    h.queue
        .dispatch(&[(step(), now_ms()), (step(), now_ms()), (step(), now_ms())])
        .await
        .unwrap();
    // `ended` ran its job and acknowledged it; `busy` still holds one; `me` is the live worker.
    let done = h.queue.fetch("ended", 1, Duration::ZERO).await.unwrap();
    h.ack_all(&done).await;
    let held = h.queue.fetch("busy", 1, Duration::ZERO).await.unwrap();
    assert_eq!(held.len(), 1);
    let mine = h.queue.fetch("me", 1, Duration::ZERO).await.unwrap();
    h.ack_all(&mine).await;
    assert_eq!(consumers(&h).await, ["busy", "ended", "me"]);

    // Not idle long enough yet: nobody is forgotten.
    let removed = h
        .queue
        .prune_workers("me", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(removed, 0);
    assert_eq!(
        h.queue.prune_workers("me", Duration::ZERO).await.unwrap(),
        1
    );
    assert_eq!(consumers(&h).await, ["busy", "me"]);
    h.wipe().await;
}

#[tokio::test]
async fn delayed_job_arrives_at_its_time_not_before() {
    let h = Harness::new(RedisOptions::default()).await;
    let job = step();
    let at = now_ms() + 300;
    h.queue.dispatch(&[(job, at)]).await.unwrap();
    assert_eq!(h.depth().await, depth(0, 1, 0));

    let give_up = Instant::now() + Duration::from_secs(3);
    let got = loop {
        let got = h
            .queue
            .fetch("w1", 10, Duration::from_millis(50))
            .await
            .unwrap();
        let fetched_at = now_ms();
        if !got.is_empty() {
            assert!(fetched_at >= at, "fetched {} ms early", at - fetched_at);
            break got;
        }
        assert!(Instant::now() < give_up, "delayed job never arrived");
    };
    assert_eq!(jobs_of(&got), HashSet::from([job]));
    h.ack_all(&got).await;

    // An idle fetch with a long wait wakes for a delayed job coming due, not at the end of wait.
    let job = step();
    let at = now_ms() + 300;
    h.queue.dispatch(&[(job, at)]).await.unwrap();
    let started = Instant::now();
    let got = h
        .queue
        .fetch("w1", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(now_ms() >= at);
    assert_eq!(jobs_of(&got), HashSet::from([job]));
    println!(
        "delayed job (300 ms) delivered to a blocked fetch after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    h.ack_all(&got).await;
    assert_eq!(h.depth().await, depth(0, 0, 0));
    h.wipe().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_of_fifty_thousand_due_jobs_is_delivered_once_each() {
    const N: usize = 50_000;
    const WORKERS: usize = 4;
    let h = Harness::new(RedisOptions::default()).await;
    let at = now_ms() + 100;
    let jobs: Vec<(Job, i64)> = (0..N).map(|_| (step(), at)).collect();
    h.queue.dispatch(&jobs).await.unwrap();
    assert_eq!(h.depth().await, depth(0, N as u64, 0));
    // Every job must take the delayed path and come due at the same moment.
    tokio::time::sleep(Duration::from_millis(150)).await;

    let seen = Arc::new(std::sync::Mutex::new(HashSet::<Job>::new()));
    let duplicates = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let give_up = started + Duration::from_secs(25);
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let queue = h.queue.clone();
        let seen = seen.clone();
        let duplicates = duplicates.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("burst-{w}");
            while seen.lock().unwrap().len() < N && Instant::now() < give_up {
                let got = queue
                    .fetch(&name, 500, Duration::from_millis(100))
                    .await
                    .unwrap();
                futures::future::try_join_all(got.iter().map(|d| queue.ack(d)))
                    .await
                    .unwrap();
                let mut seen = seen.lock().unwrap();
                for d in &got {
                    if !seen.insert(d.job) {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let delivered = seen.lock().unwrap().len();
    println!(
        "burst: {delivered} jobs in {elapsed:?} = {:.0} jobs/s ({WORKERS} fetchers, fetch 500, ack each)",
        delivered as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        duplicates.load(Ordering::Relaxed),
        0,
        "duplicate deliveries"
    );
    assert_eq!(delivered, N, "lost jobs");
    let expected: HashSet<Job> = jobs.iter().map(|(j, _)| *j).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(h.depth().await, depth(0, 0, 0));
    assert_eq!(h.xlen().await, 0);
    h.wipe().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_fetch_wakes_up_when_work_is_dispatched() {
    let h = Harness::new(RedisOptions::default()).await;
    let queue = h.queue.clone();
    let waiter = tokio::spawn(async move {
        let got = queue
            .fetch("idle", 10, Duration::from_secs(2))
            .await
            .unwrap();
        (got, Instant::now())
    });
    // Let the fetch reach its blocking read; an earlier dispatch would only make this test easier.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let job = step();
    let sent = Instant::now();
    h.queue.dispatch(&[(job, now_ms())]).await.unwrap();
    let (got, woke) = waiter.await.unwrap();
    let latency = woke.duration_since(sent);
    println!("idle fetch woke {latency:?} after dispatch");
    assert_eq!(jobs_of(&got), HashSet::from([job]));
    assert!(latency < Duration::from_secs(1), "woke after {latency:?}");
    h.ack_all(&got).await;

    // Meanwhile the shared connection is not stalled by a blocked fetch.
    let queue = h.queue.clone();
    let blocked =
        tokio::spawn(async move { queue.fetch("idle", 10, Duration::from_secs(2)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    h.queue.ping().await.unwrap();
    h.queue.depth().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(blocked.await.unwrap().unwrap().is_empty());
    h.wipe().await;
}

#[tokio::test]
async fn a_dead_workers_deliveries_are_taken_over() {
    let h = Harness::new(RedisOptions {
        reclaim_after: Duration::from_millis(300),
        ..RedisOptions::default()
    })
    .await;
    let jobs = [step(), step(), step()];
    let now = now_ms();
    h.queue.dispatch(&jobs.map(|j| (j, now))).await.unwrap();
    let taken = h.queue.fetch("A", 10, Duration::ZERO).await.unwrap();
    let taken_at = Instant::now();
    assert_eq!(taken.len(), 3);
    // Worker A dies here, never acknowledging.
    assert!(
        h.queue
            .fetch("B", 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );

    let give_up = Instant::now() + Duration::from_secs(3);
    let got = loop {
        let got = h
            .queue
            .fetch("B", 10, Duration::from_millis(50))
            .await
            .unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < give_up, "never reclaimed");
    };
    assert!(taken_at.elapsed() >= Duration::from_millis(300));
    assert_eq!(jobs_of(&got), HashSet::from(jobs));
    let receipts = |ds: &[Delivery]| ds.iter().map(|d| d.receipt.clone()).collect::<HashSet<_>>();
    assert_eq!(receipts(&got), receipts(&taken), "same stream entries");
    h.ack_all(&got).await;
    assert_eq!(h.depth().await, depth(0, 0, 0));
    assert_eq!(h.xlen().await, 0);
    h.wipe().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_stream_and_group_are_recreated() {
    let h = Harness::new(RedisOptions::default()).await;
    let job = step();
    h.queue.dispatch(&[(job, now_ms())]).await.unwrap();
    let got = h.queue.fetch("w1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(jobs_of(&got), HashSet::from([job]));

    // A restart of a Redis that keeps nothing: stream, group, delayed set and pending list gone.
    h.wipe().await;
    h.ack_all(&got).await; // acknowledging what the wipe already forgot is harmless
    assert_eq!(h.depth().await, depth(0, 0, 0));
    h.wipe().await;

    // The dispatch recreates the stream without its group; the fetch must still see the entry.
    let (now_job, later_job) = (step(), step());
    h.queue
        .dispatch(&[(now_job, now_ms()), (later_job, now_ms() + 200)])
        .await
        .unwrap();
    let got = h.queue.fetch("w1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(jobs_of(&got), HashSet::from([now_job]));
    h.ack_all(&got).await;
    let got = h
        .queue
        .fetch("w1", 10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(jobs_of(&got), HashSet::from([later_job]));
    h.ack_all(&got).await;

    // A wipe while a fetch is blocked on the stream (Redis answers it with UNBLOCKED).
    let queue = h.queue.clone();
    let waiter = tokio::spawn(async move { queue.fetch("w1", 10, Duration::from_secs(3)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.wipe().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let job = step();
    h.queue.dispatch(&[(job, now_ms())]).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(jobs_of(&got), HashSet::from([job]));
    h.ack_all(&got).await;
    assert_eq!(h.depth().await, depth(0, 0, 0));
    assert_eq!(h.xlen().await, 0);
    h.wipe().await;
}

#[tokio::test]
async fn garbage_entries_are_acknowledged_and_dropped() {
    let h = Harness::new(RedisOptions::default()).await;
    let mut raw = h.raw.clone();
    let _: String = raw
        .xadd(&h.ready, "*", &[("job", "nonsense")])
        .await
        .unwrap();
    let _: String = raw
        .xadd(&h.ready, "*", &[("something", "else")])
        .await
        .unwrap();
    let _: String = raw
        .xadd(
            &h.ready,
            "*",
            &[("job", r#"{"v":9,"kind":"run_step","step_id":"x"}"#)],
        )
        .await
        .unwrap();
    let job = step();
    h.queue.dispatch(&[(job, now_ms())]).await.unwrap();

    let got = h.queue.fetch("w1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(jobs_of(&got), HashSet::from([job]));
    assert_eq!(h.depth().await, depth(0, 0, 1), "garbage is not pending");
    assert_eq!(h.xlen().await, 1, "garbage is deleted");
    h.ack_all(&got).await;
    assert_eq!(h.xlen().await, 0);
    h.wipe().await;
}

#[tokio::test]
async fn both_job_kinds_survive_the_stream_and_the_delayed_set() {
    let h = Harness::new(RedisOptions::default()).await;
    let event = Job::ProcessEvent {
        tenant_id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
    };
    let run = step();
    let now = now_ms();
    // Each kind both ways, the same job twice in the delayed set (the nonce keeps both).
    h.queue
        .dispatch(&[
            (event, now),
            (run, now),
            (event, now + 100),
            (run, now + 100),
            (run, now + 100),
        ])
        .await
        .unwrap();
    assert_eq!(h.depth().await, depth(2, 3, 0));

    let mut got = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(3);
    while got.len() < 5 && Instant::now() < give_up {
        let batch = h
            .queue
            .fetch("w1", 10, Duration::from_millis(500))
            .await
            .unwrap();
        h.ack_all(&batch).await;
        got.extend(batch.into_iter().map(|d| d.job));
    }
    got.sort_by_key(|j| j.encode());
    let mut expected = vec![event, event, run, run, run];
    expected.sort_by_key(|j| j.encode());
    assert_eq!(got, expected);
    assert_eq!(h.depth().await, depth(0, 0, 0));
    h.wipe().await;
}

#[tokio::test]
async fn tenants_are_served_in_turn_not_in_arrival_order() {
    let h = Harness::new(RedisOptions::default()).await;
    let (noisy, quiet, third) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let now = now_ms();
    let backlog: Vec<(Job, i64)> = (0..2_000).map(|_| (step_of(noisy), now)).collect();
    h.queue.dispatch(&backlog).await.unwrap();
    // Work of the noisy tenant taken by a worker before the others arrive changes nothing.
    let first = h.queue.fetch("w1", 10, Duration::ZERO).await.unwrap();
    assert!(first.iter().all(|d| d.job.tenant_id() == noisy));
    h.ack_all(&first).await;

    let fresh = step_of(quiet);
    let later = [step_of(third), step_of(third)];
    h.queue.dispatch(&[(fresh, now_ms())]).await.unwrap();
    h.queue
        .dispatch(&later.map(|j| (j, now_ms() + 100)))
        .await
        .unwrap();
    assert_eq!(h.depth().await, depth(1_991, 2, 0));

    // The quiet tenant's fresh step is in the very next batch, behind one noisy step at most.
    let next = h.queue.fetch("w1", 4, Duration::ZERO).await.unwrap();
    let tenants: Vec<Uuid> = next.iter().map(|d| d.job.tenant_id()).collect();
    assert!(next.iter().any(|d| d.job == fresh), "{tenants:?}");
    assert_eq!(tenants.iter().filter(|t| **t == noisy).count(), 3);
    h.ack_all(&next).await;

    // Delayed steps join their tenant's turn when they come due, not the back of the backlog.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let next = h.queue.fetch("w1", 6, Duration::ZERO).await.unwrap();
    let tenants: Vec<Uuid> = next.iter().map(|d| d.job.tenant_id()).collect();
    assert_eq!(
        tenants.iter().filter(|t| **t == third).count(),
        2,
        "{tenants:?}"
    );
    assert_eq!(
        jobs_of(&next).intersection(&HashSet::from(later)).count(),
        2
    );
    h.ack_all(&next).await;
    assert_eq!(h.depth().await, depth(1_983, 0, 0));
    h.wipe().await;
}

#[tokio::test]
async fn version_one_jobs_left_by_an_upgrade_still_run() {
    let h = Harness::new(RedisOptions::default()).await;
    let mut raw = h.raw.clone();
    // What the previous version left: an undelivered entry in the stream, a delayed member due.
    let (in_stream, in_delayed) = (Uuid::now_v7(), Uuid::now_v7());
    let v1 = |step: Uuid| format!(r#"{{"v":1,"kind":"run_step","step_id":"{step}"}}"#);
    let _: String = raw
        .xadd(&h.ready, "*", &[("job", v1(in_stream))])
        .await
        .unwrap();
    let _: () = raw
        .zadd(
            &h.delayed,
            format!("{}#{:016x}", v1(in_delayed), 7),
            now_ms() - 10,
        )
        .await
        .unwrap();
    let fresh = step();
    h.queue.dispatch(&[(fresh, now_ms())]).await.unwrap();
    assert_eq!(h.depth().await, depth(2, 1, 0));

    let got = h.queue.fetch("w1", 10, Duration::ZERO).await.unwrap();
    let old = |step_id| Job::RunStep {
        tenant_id: Job::UNKNOWN_TENANT,
        step_id,
    };
    assert_eq!(
        jobs_of(&got),
        HashSet::from([old(in_stream), old(in_delayed), fresh])
    );
    h.ack_all(&got).await;
    assert_eq!(h.depth().await, depth(0, 0, 0));
    assert_eq!(h.xlen().await, 0);
    h.wipe().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    let started = Instant::now();
    // Port 1 on loopback: nothing listens there.
    let result =
        RedisDispatch::connect("redis://127.0.0.1:1", "unused", RedisOptions::default()).await;
    let Err(QueueError::Unavailable(reason)) = result else {
        panic!("connected to nothing");
    };
    println!(
        "unreachable Redis: {reason:?} after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
