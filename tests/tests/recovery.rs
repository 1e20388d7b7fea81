//! Crash safety, on SQLite and on PostgreSQL + Redis: a worker killed mid-step, a wiped queue, a
//! restart after work finished, a graceful stop that hands running steps back, a burst past the
//! size that stalls apalis-redis 1.0, and how fast an idle worker starts a new step.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_tests::process::Process;
use switchyard_tests::receiver::{Answer, Receiver};
use switchyard_tests::{Db, TestDb, TestServer, on_both_databases, send};

on_both_databases! {
    a_killed_workers_step_runs_again => a_killed_workers_step_runs_again;
    sigterm_hands_running_steps_back => sigterm_hands_running_steps_back;
    finished_steps_never_run_again_after_restart => finished_steps_never_run_again_after_restart;
    a_burst_past_8000_events_all_complete => a_burst_past_8000_events_all_complete;
    an_idle_worker_starts_at_once => an_idle_worker_starts_at_once;
}

const WAIT: Duration = Duration::from_secs(45);

async fn tenant(db: &TestDb) -> String {
    let settings = switchyard_tests::settings(db, &[]);
    let answer = switchyard::cli::tenant(
        &settings,
        switchyard::config::TenantCommand::Create {
            name: "Acme".to_owned(),
        },
    )
    .await
    .expect("tenant create");
    answer["apiKey"].as_str().expect("apiKey").to_owned()
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = send(request).await;
    assert!(reply.status < 300, "{} {:?}", reply.status, reply.body);
    reply.body["data"].clone()
}

async fn webhook_workflow(http: &reqwest::Client, base: &str, key: &str, url: &str) -> String {
    let body = json!({"name": "hook", "entityType": "Order", "triggerId": "order_paid",
        "action": {"type": "webhook", "url": url}});
    call(
        http,
        reqwest::Method::POST,
        format!("{base}/api/workflows/configure"),
        key,
        Some(body),
    )
    .await["guid"]
        .as_str()
        .expect("guid")
        .to_owned()
}

fn event(id: &str) -> Value {
    json!({"entityType": "Order", "trigger": "order_paid", "entityId": format!("ord_{id}"), "eventId": id,
        "data": {"status": "paid", "total": 10}})
}

/// Polls the event until its execution reaches `status`; returns the execution.
async fn execution_status(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    event_id: &str,
    status: &str,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = send(
            http.get(format!("{base}/api/events/{event_id}"))
                .bearer_auth(key),
        )
        .await;
        if let Some(id) = reply.body["data"]["executions"][0]["id"].as_str() {
            let execution = send(
                http.get(format!("{base}/api/executions/{id}"))
                    .bearer_auth(key),
            )
            .await;
            if execution.body["data"]["status"] == status {
                return execution.body["data"].clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "execution of {event_id} never became {status}: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_killed_workers_step_runs_again(db: Db) {
    let tdb = TestDb::new(db).await.expect("db");
    let http = reqwest::Client::new();
    let key = tenant(&tdb).await;
    let receiver = Receiver::start().await;
    // The first delivery hangs: the worker is inside the step when it is killed.
    receiver.script(&[Answer::Slow(Duration::from_secs(60))]);

    let (api, worker) = match db {
        Db::Postgres => (
            Process::start(&["serve", "--no-worker"], &tdb, &[]).await,
            Some(Process::start(&["worker"], &tdb, &[]).await),
        ),
        Db::Sqlite => (Process::start(&["serve"], &tdb, &[]).await, None),
    };
    let base = api.base().to_owned();
    webhook_workflow(&http, &base, &key, &receiver.url).await;
    call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/events"),
        &key,
        Some(event("crash-1")),
    )
    .await;
    receiver.wait_for(1, WAIT).await;

    let killed = Instant::now();
    let (base, _keep) = match worker {
        Some(worker) => {
            worker.kill9().await;
            (
                base,
                vec![api, Process::start(&["worker"], &tdb, &[]).await],
            )
        }
        None => {
            api.kill9().await;
            let restarted = Process::start(&["serve"], &tdb, &[]).await;
            (restarted.base().to_owned(), vec![restarted])
        }
    };
    let execution = execution_status(&http, &base, &key, "crash-1", "succeeded").await;
    let recovered_in = killed.elapsed();
    println!("recovered {db:?} step {recovered_in:?} after kill -9");
    assert!(
        recovered_in < Duration::from_secs(30),
        "took {recovered_in:?}"
    );

    let deliveries = receiver.received();
    assert_eq!(deliveries.len(), 2, "one hung attempt, one after recovery");
    assert_eq!(
        deliveries[0].header("webhook-id"),
        deliveries[1].header("webhook-id")
    );
    let attempts = execution["steps"][0]["attempts"]
        .as_array()
        .expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["outcome"], "abandoned");
    assert_eq!(attempts[1]["outcome"], "succeeded");
    tdb.cleanup().await;
}

async fn sigterm_hands_running_steps_back(db: Db) {
    let tdb = TestDb::new(db).await.expect("db");
    let http = reqwest::Client::new();
    let key = tenant(&tdb).await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Slow(Duration::from_secs(60))]);
    let first = Process::start(
        &["serve"],
        &tdb,
        &["--shutdown-grace", "500ms", "--lease", "30s"],
    )
    .await;
    let base = first.base().to_owned();
    webhook_workflow(&http, &base, &key, &receiver.url).await;
    call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/events"),
        &key,
        Some(event("term-1")),
    )
    .await;
    receiver.wait_for(1, WAIT).await;

    // Graceful stop: the running step outlives the grace period and is handed back, so the next
    // process runs it at once instead of waiting for the 30 s lease to run out.
    let status = first.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let started = Instant::now();
    let second = Process::start(&["serve"], &tdb, &["--lease", "30s"]).await;
    let execution = execution_status(&http, second.base(), &key, "term-1", "succeeded").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not handed back: {:?}",
        started.elapsed()
    );
    let attempts = execution["steps"][0]["attempts"]
        .as_array()
        .expect("attempts");
    assert_eq!(attempts[0]["outcome"], "abandoned");
    assert!(
        attempts[0]["error"]
            .as_str()
            .expect("error")
            .contains("shutdown"),
        "{attempts:?}"
    );
    assert_eq!(second.terminate().await.code(), Some(0));
    tdb.cleanup().await;
}

async fn finished_steps_never_run_again_after_restart(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    webhook_workflow(&server.http, &server.base, &key, &receiver.url).await;
    for i in 0..20 {
        call(
            &server.http,
            reqwest::Method::POST,
            server.url("/api/events"),
            &key,
            Some(event(&format!("r{i}"))),
        )
        .await;
    }
    receiver.wait_for(20, WAIT).await;
    execution_status(&server.http, &server.base, &key, "r19", "succeeded").await;
    // A restart on the same database: the sweeper and dispatcher find nothing to redo.
    let restarted = Process::start(&["serve"], &server.db, &[]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.count(),
        20,
        "a finished step ran again after a restart"
    );
    drop(restarted);
    server.stop().await;
}

async fn a_burst_past_8000_events_all_complete(db: Db) {
    let server = TestServer::start_with(db, &["--rate-limit", "100000"]).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    webhook_workflow(&server.http, &server.base, &key, &receiver.url).await;
    const N: usize = 8_500;
    let started = Instant::now();
    let posted = futures::stream::iter(0..N)
        .map(|i| {
            let http = server.http.clone();
            let url = server.url("/api/events");
            let key = key.clone();
            async move {
                let reply = send(
                    http.post(url)
                        .bearer_auth(key)
                        .json(&event(&format!("b{i}"))),
                )
                .await;
                assert_eq!(reply.status, 202, "{:?}", reply.body);
            }
        })
        .buffer_unordered(32)
        .count()
        .await;
    assert_eq!(posted, N);
    let accepted = started.elapsed();
    // At least once: every step delivered; a duplicate is possible only for a step whose lease
    // ran out while it was in flight, and is reported.
    let deadline = Instant::now() + Duration::from_secs(240);
    let (unique, total) = loop {
        let deliveries = receiver.received();
        let ids: HashSet<String> = deliveries
            .iter()
            .map(|d| d.header("webhook-id").to_owned())
            .collect();
        if ids.len() >= N || Instant::now() > deadline {
            break (ids.len(), deliveries.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = started.elapsed();
    println!(
        "{db:?}: {N} events accepted in {accepted:?} ({:.0}/s), all delivered in {done:?} ({:.0}/s), {} duplicate deliveries",
        N as f64 / accepted.as_secs_f64(),
        N as f64 / done.as_secs_f64(),
        total - unique
    );
    assert_eq!(unique, N, "every event delivered");
    server.stop().await;
}

async fn an_idle_worker_starts_at_once(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    webhook_workflow(&server.http, &server.base, &key, &receiver.url).await;
    // Let the worker go idle, then time event → delivery.
    let mut latencies = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let sent = Instant::now();
        call(
            &server.http,
            reqwest::Method::POST,
            server.url("/api/events"),
            &key,
            Some(event(&format!("idle{i}"))),
        )
        .await;
        let got = receiver.wait_for(i + 1, WAIT).await;
        latencies.push(got[i].at.duration_since(sent));
    }
    latencies.sort();
    println!("{db:?}: idle event→delivery latencies {latencies:?}");
    // Far below any heartbeat or poll interval a stalled design would show (apalis-redis: 30 s).
    assert!(latencies[2] < Duration::from_millis(500), "{latencies:?}");
    server.stop().await;
}

/// Redis here keeps nothing on disk: a restart loses every queued job. Simulated by deleting this
/// test's queue keys while steps wait in the delayed set; the sweeper re-dispatches them from the
/// database and every execution completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_wiped_redis_loses_nothing() {
    let server = TestServer::start(Db::Postgres).await;
    let (_, key) = server.tenant("Acme").await;
    let receiver = Receiver::start().await;
    // The delay outlasts posting all the events even on a loaded machine, so every execution is
    // parked on it at once.
    let body = json!({"name": "later", "entityType": "Order", "triggerId": "order_paid",
        "actions": [{"type": "delay", "duration": "8s"}, {"type": "webhook", "url": receiver.url}]});
    call(
        &server.http,
        reqwest::Method::POST,
        server.url("/api/workflows/configure"),
        &key,
        Some(body),
    )
    .await;
    const N: usize = 100;
    for i in 0..N {
        call(
            &server.http,
            reqwest::Method::POST,
            server.url("/api/events"),
            &key,
            Some(event(&format!("w{i}"))),
        )
        .await;
    }
    // Wait until every execution is parked on its delay, i.e. its next step sits in Redis.
    let deadline = Instant::now() + WAIT;
    loop {
        let waiting = send(
            server
                .http
                .get(server.url("/api/executions?status=waiting&limit=200"))
                .bearer_auth(&key),
        )
        .await;
        if waiting.body["data"].as_array().map(Vec::len) == Some(N) {
            break;
        }
        if Instant::now() >= deadline {
            let all = send(
                server
                    .http
                    .get(server.url("/api/executions?limit=200"))
                    .bearer_auth(&key),
            )
            .await;
            let mut counts = std::collections::BTreeMap::new();
            for execution in all.body["data"].as_array().into_iter().flatten() {
                *counts
                    .entry(execution["status"].as_str().unwrap_or("?").to_owned())
                    .or_insert(0) += 1;
            }
            panic!("executions did not all reach `waiting`: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = redis::Client::open(switchyard_tests::redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let prefix = &server.db.redis_prefix;
    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:ready"))
        .arg(format!("{prefix}:delayed"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
    // Normally both keys exist here; either way nothing the queue held survives the wipe.
    println!("deleted {deleted} queue keys");
    let deliveries = receiver.wait_for(N, WAIT).await;
    let ids: HashSet<String> = deliveries
        .iter()
        .map(|d| d.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), N);
    // A delivery arrives just before its step's outcome is committed: wait for the commits.
    switchyard_tests::eventually(
        &server,
        &key,
        "/api/executions?status=succeeded&limit=200",
        WAIT,
        |data| data.as_array().map(Vec::len) == Some(N),
    )
    .await;
    server.stop().await;
}
