//! `chaos`: Switchyard under a steady load while its processes and services fail, on loopback.
//!
//! Starts the real `switchyard` binary on PostgreSQL + Redis (`serve --no-worker` and two
//! `worker`s, short recovery timings, a fresh schema and Redis prefix), posts events at a steady
//! rate for a fixed time and, meanwhile, kills a worker with SIGKILL every `--kill-every` seconds
//! (restarting it at once), restarts Redis once (it keeps nothing on disk: every queued job is
//! lost) and restarts the PostgreSQL server once, probing the API during that restart. Then it
//! waits for quiescence and checks, from the receiver's log of `webhook-id`s and the executions
//! API, that every event's execution succeeded and no step was lost, and counts duplicate
//! deliveries.
//!
//! It restarts the machine's shared PostgreSQL and Redis: do not run it beside other tests. Both
//! are started again at the end whatever happened. Exit status: 0 when nothing was lost and the
//! API never answered 500; 1 otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::Value;
use switchyard_bench::receiver::{SharedSeen, delivered, start_receiver};
use switchyard_bench::server::Server;
use switchyard_bench::{bar, setup};
use tokio::process::Command;

#[derive(Debug, Clone, Parser)]
#[command(
    about = "Chaos run of Switchyard: kills workers, restarts Redis and PostgreSQL under load"
)]
struct Args {
    /// Events posted per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds of posting (the chaos happens meanwhile).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// A worker is killed (SIGKILL) and restarted every this many seconds.
    #[arg(long, default_value_t = 10)]
    kill_every: u64,
    /// When Redis is restarted, in seconds from the first event.
    #[arg(long, default_value_t = 25)]
    redis_restart_at: u64,
    /// When the PostgreSQL server is restarted, in seconds from the first event.
    #[arg(long, default_value_t = 45)]
    postgres_restart_at: u64,
    /// Instead of `pg_ctlcluster restart`: stop PostgreSQL, keep it down this many seconds, then
    /// start it (a longer outage than a restart, to see the API answer 503).
    #[arg(long, default_value_t = 0)]
    postgres_down_for: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 64)]
    worker_concurrency: usize,
    /// Recovery timings of every process.
    #[arg(long, default_value = "3s")]
    lease: String,
    #[arg(long, default_value = "500ms")]
    sweep_interval: String,
    #[arg(long, default_value = "5s")]
    redispatch_after: String,
    /// How long to wait for quiescence after the last event was posted.
    #[arg(long, default_value_t = 300)]
    quiescence_timeout: u64,
    /// Keep the run's schema, Redis keys and process logs.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    target: switchyard_bench::Target,
}

// ---------------------------------------------------------------------------------------------
// The machine's services: restarted on purpose, and always left running.

/// Redis's port, from `--redis-url`.
fn redis_port(url: &str) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("redis://")
        .context("--redis-url must be redis://HOST:PORT")?;
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = host_port.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().context("Redis port")?),
        None => (host_port, 6379),
    };
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!("the chaos run restarts Redis and so only runs against a loopback Redis");
    }
    Ok(port)
}

/// The PostgreSQL version whose `main` cluster serves the database (`ls /etc/postgresql`).
fn postgres_version() -> anyhow::Result<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .context("reading /etc/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    versions.sort();
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one PostgreSQL version in /etc/postgresql, found {versions:?}"),
    }
}

async fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

async fn redis_up(port: u16) -> bool {
    run_quiet("redis-cli", &["-p", &port.to_string(), "ping"])
        .await
        .is_ok_and(|out| out == "PONG")
}

/// The machine's documented start command.
async fn start_redis(port: u16) -> anyhow::Result<()> {
    std::fs::create_dir_all("/var/lib/redis")?;
    std::fs::create_dir_all("/var/log/redis")?;
    let port = port.to_string();
    run_quiet(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    )
    .await?;
    Ok(())
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("{what} not up after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `redis-cli shutdown nosave`, then the documented start command: everything queued is lost.
async fn restart_redis(port: u16) -> anyhow::Result<()> {
    // The connection drops as the server exits, so redis-cli may report an error: ignore it.
    let _ = run_quiet(
        "redis-cli",
        &["-p", &port.to_string(), "shutdown", "nosave"],
    )
    .await;
    wait_until("Redis shutdown", Duration::from_secs(10), || async {
        !redis_up(port).await
    })
    .await?;
    start_redis(port).await?;
    wait_until("Redis", Duration::from_secs(20), || redis_up(port)).await
}

async fn postgres_up(url: &str) -> bool {
    <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .is_ok()
}

async fn pg_ctlcluster(version: &str, action: &str) -> anyhow::Result<()> {
    run_quiet(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", version, "main", action],
    )
    .await
    .map(drop)
}

/// Leaves both services running, whatever the run did to them.
async fn restore_services(args: &Args) {
    if let Ok(port) = redis_port(&args.target.redis_url)
        && !redis_up(port).await
    {
        eprintln!("chaos: Redis is down: starting it");
        if let Err(e) = start_redis(port).await {
            eprintln!("chaos: could not start Redis: {e:#}");
        } else if let Err(e) = wait_until("Redis", Duration::from_secs(20), || redis_up(port)).await
        {
            eprintln!("chaos: {e:#}");
        }
    }
    if !postgres_up(&args.target.postgres_url).await {
        eprintln!("chaos: PostgreSQL is down: starting it");
        match postgres_version() {
            Ok(version) => {
                if let Err(e) = pg_ctlcluster(&version, "start").await {
                    eprintln!("chaos: could not start PostgreSQL: {e:#}");
                }
                if let Err(e) = wait_until("PostgreSQL", Duration::from_secs(60), || {
                    postgres_up(&args.target.postgres_url)
                })
                .await
                {
                    eprintln!("chaos: {e:#}");
                }
            }
            Err(e) => eprintln!("chaos: {e:#}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the API answered.

#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    /// No HTTP answer: a timeout or a refused or dropped connection.
    Transport(String),
}

#[derive(Debug, Clone)]
struct Call {
    sent: Instant,
    took: Duration,
    answer: Answer,
}

type Calls = Arc<Mutex<Vec<Call>>>;

fn record(calls: &Calls, sent: Instant, answer: Answer) {
    if let Ok(mut calls) = calls.lock() {
        calls.push(Call {
            sent,
            took: sent.elapsed(),
            answer,
        });
    }
}

fn transport(e: &reqwest::Error) -> Answer {
    Answer::Transport(if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "other".into()
    })
}

/// Counts by answer and the longest response time, of calls that overlap `[from, to]`.
struct Tally {
    by_answer: BTreeMap<String, usize>,
    max: Duration,
    count: usize,
}

impl Tally {
    fn of(calls: &[Call], from: Instant, to: Instant) -> Tally {
        let mut by_answer = BTreeMap::new();
        let mut max = Duration::ZERO;
        let mut count = 0;
        for call in calls {
            if call.sent > to || call.sent + call.took < from {
                continue;
            }
            count += 1;
            max = max.max(call.took);
            let key = match &call.answer {
                Answer::Status(s) => s.to_string(),
                Answer::Transport(kind) => format!("no answer ({kind})"),
            };
            *by_answer.entry(key).or_default() += 1;
        }
        Tally {
            by_answer,
            max,
            count,
        }
    }

    fn line(&self) -> String {
        let parts: Vec<String> = self
            .by_answer
            .iter()
            .map(|(answer, n)| format!("{answer}: {n}"))
            .collect();
        format!(
            "{} requests — {} — max response {:.2} s",
            self.count,
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            },
            self.max.as_secs_f64()
        )
    }
}

/// Posts an event until it is accepted, as a well-behaved client does: 503, 429 and transport
/// errors are retried with the same `eventId` (so a retry never doubles it), after the
/// `Retry-After` the API gave (250 ms when it gave none), with some jitter. The stored event's id,
/// or `None` if it was never accepted.
async fn post_until_accepted(
    http: reqwest::Client,
    base: String,
    key: String,
    id: String,
    calls: Calls,
) -> Option<(String, Instant)> {
    let give_up = Instant::now() + Duration::from_secs(120);
    let body = setup::event(&id);
    loop {
        let sent = Instant::now();
        let result = http
            .post(format!("{base}/api/events"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await;
        let mut wait = Duration::from_millis(250);
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                if let Some(seconds) = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    wait = Duration::from_secs(seconds.min(30));
                }
                let text = response.text().await.unwrap_or_default();
                record(&calls, sent, Answer::Status(status));
                if status == 202 {
                    let accepted: Value = serde_json::from_str(&text).unwrap_or_default();
                    return accepted["data"]["id"]
                        .as_str()
                        .map(|stored| (stored.to_owned(), Instant::now()));
                }
                if status >= 500 && status != 503 {
                    eprintln!("chaos: POST /api/events answered {status}: {text}");
                }
            }
            Err(e) => record(&calls, sent, transport(&e)),
        }
        if Instant::now() > give_up {
            eprintln!("chaos: event {id} not accepted within 120 s");
            return None;
        }
        let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]));
        tokio::time::sleep(wait + jitter).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Kill {
    at: Duration,
    /// Steps the killed worker held a lease on just before the kill.
    leased: i64,
}

struct Timeline {
    kills: Vec<Kill>,
    redis: Option<(Instant, Instant)>,
    postgres: Option<(Instant, Instant)>,
}

/// Steps `pid`'s worker holds (worker ids are `host-pid-random`).
async fn leased_by(database_url: &str, pid: u32) -> i64 {
    let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await else {
        return -1;
    };
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM steps WHERE status = 'running' AND lease_owner LIKE $1",
    )
    .bind(format!("%-{pid}-%"))
    .fetch_one(&mut conn)
    .await
    .unwrap_or(-1)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The run in a task of its own, so that even a panic comes back here and the services are
    // restored before exiting.
    let run = tokio::spawn(run(args.clone()));
    let result = tokio::select! {
        joined = run => match joined {
            Ok(result) => result,
            Err(e) => Err(anyhow::anyhow!("the run panicked: {e}")),
        },
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    restore_services(&args).await;
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole run; `Ok(false)` when a check failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    args.target.check_binary()?;
    let port = redis_port(&args.target.redis_url)?;
    let pg_version = postgres_version()?;
    if !redis_up(port).await || !postgres_up(&args.target.postgres_url).await {
        bail!("PostgreSQL and Redis must be running before the chaos run");
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let (hook, seen) = start_receiver().await?;
    let (dir, prefix) = setup::run_scratch("chaos")?;
    let (schema, database_url) = setup::postgres_schema(&args.target.postgres_url, "chaos").await?;
    let mut common = setup::common_flags();
    common.extend([
        "--lease".into(),
        args.lease.clone(),
        "--sweep-interval".into(),
        args.sweep_interval.clone(),
        "--redispatch-after".into(),
        args.redispatch_after.clone(),
        "--concurrency".into(),
        args.worker_concurrency.to_string(),
        "--log-format".into(),
        "json".into(),
    ]);
    common.extend(setup::postgres_flags(
        &database_url,
        &args.target.redis_url,
        &prefix,
    ));
    println!(
        "chaos: schema {schema}, Redis prefix {prefix}, logs in {}",
        dir.display()
    );

    let result = chaos(
        &args,
        &http,
        &hook,
        &seen,
        &dir,
        &common,
        &database_url,
        port,
        &pg_version,
    )
    .await;

    if !args.keep {
        // Best effort: the services may be down if the run failed half-way (restored later).
        let _ = setup::drop_postgres_schema(&args.target.postgres_url, &schema).await;
        let _ = run_quiet(
            "redis-cli",
            &[
                "-p",
                &port.to_string(),
                "del",
                &format!("{prefix}:ready"),
                &format!("{prefix}:delayed"),
            ],
        )
        .await;
        if result.as_ref().is_ok_and(|passed| *passed) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn chaos(
    args: &Args,
    http: &reqwest::Client,
    hook: &str,
    seen: &SharedSeen,
    dir: &Path,
    common: &[String],
    database_url: &str,
    redis_port: u16,
    pg_version: &str,
) -> anyhow::Result<bool> {
    let key = setup::create_tenant(&args.target.binary, common, "chaos").await?;
    let with = |sub: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
        a.extend(["--listen".into(), "127.0.0.1:0".into()]);
        a.extend(common.iter().cloned());
        a
    };
    let api = Server::start_logged(
        &args.target.binary,
        &with(&["serve", "--no-worker"]),
        &dir.join("api.log"),
    )
    .await?;
    let base = api.base.clone().context("API address")?;
    let worker_log = |n: usize| dir.join(format!("worker-{n}.log"));
    let mut workers = Vec::new();
    for n in 0..args.workers.max(1) {
        workers.push(
            Server::start_logged(&args.target.binary, &with(&["worker"]), &worker_log(n)).await?,
        );
    }
    setup::configure_webhook_workflow(http, &base, &key, "chaos", hook).await?;

    // Events at a steady rate, and a probe of the API every 100 ms.
    let posts: Calls = Calls::default();
    let probes: Calls = Calls::default();
    let total = (args.rate * args.duration as f64).round() as usize;
    println!(
        "chaos: {total} events at {:.0}/s for {} s; a worker killed every {} s, Redis restarted at {} s, PostgreSQL at {} s",
        args.rate, args.duration, args.kill_every, args.redis_restart_at, args.postgres_restart_at
    );
    let started = Instant::now();
    let poster = {
        let (http, base, key, posts) = (http.clone(), base.clone(), key.clone(), posts.clone());
        let rate = args.rate.max(1.0);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..total {
                ticker.tick().await;
                let (http, base, key, posts) =
                    (http.clone(), base.clone(), key.clone(), posts.clone());
                let id = format!("c{i}");
                tasks.spawn(async move {
                    let stored = post_until_accepted(http, base, key, id.clone(), posts).await;
                    (id, stored)
                });
            }
            let mut accepted = HashMap::new();
            let mut accepted_at = HashMap::new();
            let mut rejected = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((id, Some((stored, at)))) => {
                        accepted_at.insert(id.clone(), at);
                        accepted.insert(stored, id);
                    }
                    Ok((id, None)) => rejected.push(id),
                    Err(e) => rejected.push(format!("task: {e}")),
                }
            }
            (accepted, accepted_at, rejected)
        })
    };
    let (probe_stop, mut probe_stopped) = tokio::sync::watch::channel(false);
    let prober = {
        let (http, base, key, probes) = (http.clone(), base.clone(), key.clone(), probes.clone());
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {},
                    _ = probe_stopped.changed() => break,
                }
                let (http, base, key, probes) =
                    (http.clone(), base.clone(), key.clone(), probes.clone());
                tasks.spawn(async move {
                    let sent = Instant::now();
                    let answer = match http
                        .get(format!("{base}/api/executions?limit=1"))
                        .bearer_auth(&key)
                        .send()
                        .await
                    {
                        Ok(r) => Answer::Status(r.status().as_u16()),
                        Err(e) => transport(&e),
                    };
                    record(&probes, sent, answer);
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };

    // The disruptions, in time order.
    enum Act {
        Kill,
        Redis,
        Postgres,
    }
    let mut plan: Vec<(u64, Act)> = Vec::new();
    let mut t = args.kill_every.max(1);
    while t <= args.duration {
        plan.push((t * 1000, Act::Kill));
        t += args.kill_every.max(1);
    }
    plan.push((args.redis_restart_at * 1000, Act::Redis));
    plan.push((args.postgres_restart_at * 1000, Act::Postgres));
    plan.sort_by_key(|(at, _)| *at);
    let mut timeline = Timeline {
        kills: Vec::new(),
        redis: None,
        postgres: None,
    };
    // Each killed worker (`-pid-` of its worker id) and when it was killed.
    let mut killed: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut next_victim = 0;
    let mut problems: Vec<String> = Vec::new();
    for (at_ms, act) in plan {
        tokio::time::sleep_until((started + Duration::from_millis(at_ms)).into()).await;
        match act {
            Act::Kill => {
                let n = next_victim % workers.len();
                next_victim += 1;
                if let Ok(Some(status)) = workers[n].child.try_wait() {
                    problems.push(format!("worker {n} had exited by itself ({status})"));
                }
                let pid = workers[n].pid().unwrap_or(0);
                let leased = leased_by(database_url, pid).await;
                let at = started.elapsed();
                let _ = workers[n].child.start_kill();
                let _ = workers[n].child.wait().await;
                killed.insert(format!("-{pid}-"), chrono::Utc::now());
                workers[n] =
                    Server::start_logged(&args.target.binary, &with(&["worker"]), &worker_log(n))
                        .await?;
                println!(
                    "  {:>5.1} s  kill -9 worker {n} (pid {pid}, {leased} steps leased); restarted",
                    at.as_secs_f64()
                );
                timeline.kills.push(Kill { at, leased });
            }
            Act::Redis => {
                let begin = Instant::now();
                restart_redis(redis_port).await?;
                let end = Instant::now();
                println!(
                    "  {:>5.1} s  Redis restarted (nosave) in {:.2} s",
                    (begin - started).as_secs_f64(),
                    (end - begin).as_secs_f64()
                );
                timeline.redis = Some((begin, end));
            }
            Act::Postgres => {
                let begin = Instant::now();
                if args.postgres_down_for == 0 {
                    pg_ctlcluster(pg_version, "restart").await?;
                } else {
                    pg_ctlcluster(pg_version, "stop").await?;
                    tokio::time::sleep(Duration::from_secs(args.postgres_down_for)).await;
                    pg_ctlcluster(pg_version, "start").await?;
                }
                let end = Instant::now();
                println!(
                    "  {:>5.1} s  PostgreSQL restarted in {:.2} s",
                    (begin - started).as_secs_f64(),
                    (end - begin).as_secs_f64()
                );
                timeline.postgres = Some((begin, end));
            }
        }
    }

    let (accepted, accepted_at, rejected) = poster.await.context("the poster")?;
    // When the last event was accepted.
    let posted_at = posts
        .lock()
        .ok()
        .and_then(|calls| {
            calls
                .iter()
                .filter(|c| matches!(c.answer, Answer::Status(202)))
                .map(|c| c.sent + c.took)
                .max()
        })
        .unwrap_or_else(Instant::now);
    println!(
        "chaos: posting done after {:.1} s; waiting for quiescence…",
        started.elapsed().as_secs_f64()
    );
    // Keep probing a little past the PostgreSQL restart, to see the API recover.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = probe_stop.send(true);
    let _ = prober.await;

    // Quiescence: every accepted event delivered, then every execution succeeded per the API.
    let deadline = Instant::now() + Duration::from_secs(args.quiescence_timeout);
    let progress = bar(accepted.len() as u64, "deliveries");
    while delivered(seen) < accepted.len() && Instant::now() < deadline {
        progress.set_position(delivered(seen) as u64);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.finish_and_clear();
    // Quiescent when the last event was delivered, if the API then confirms every execution
    // succeeded (listing them all takes a while: that time is not counted); else when a later
    // check confirmed it.
    let mut quiescent_at = seen
        .lock()
        .ok()
        .and_then(|s| s.last)
        .unwrap_or_else(Instant::now);
    let verifying = Instant::now();
    println!("chaos: deliveries complete; checking every execution through the API…");
    let mut check = verify(http, &base, &key, seen, &accepted, &killed).await?;
    println!(
        "chaos: listed {} executions in {:.1} s",
        check.executions,
        verifying.elapsed().as_secs_f64()
    );
    while !check.settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        quiescent_at = Instant::now();
        check = verify(http, &base, &key, seen, &accepted, &killed).await?;
    }
    for (n, worker) in workers.iter_mut().enumerate() {
        if let Ok(Some(status)) = worker.child.try_wait() {
            problems.push(format!("worker {n} exited by itself ({status})"));
        }
    }
    let mut api = api;
    if let Ok(Some(status)) = api.child.try_wait() {
        problems.push(format!("the API process exited by itself ({status})"));
    }

    // The report.
    let posts = posts.lock().map(|c| c.clone()).unwrap_or_default();
    let probes = probes.lock().map(|c| c.clone()).unwrap_or_default();
    let count_status = |calls: &[Call], pred: &dyn Fn(u16) -> bool| {
        calls
            .iter()
            .filter(|c| matches!(c.answer, Answer::Status(s) if pred(s)))
            .count()
    };
    let server_errors = count_status(&posts, &|s| s >= 500 && s != 503)
        + count_status(&probes, &|s| s >= 500 && s != 503);
    let last_disruption = [
        timeline.kills.last().map(|k| started + k.at),
        timeline.redis.map(|r| r.1),
        timeline.postgres.map(|p| p.1),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(started);

    println!();
    println!("events posted                {total}");
    println!(
        "events accepted              {} ({} never accepted)",
        accepted.len(),
        rejected.len()
    );
    println!(
        "executions succeeded         {} of {} (other statuses: {:?})",
        check.succeeded, check.executions, check.other_statuses
    );
    println!(
        "steps lost                   {}   (events without an execution {}, steps not succeeded {}, succeeded but never delivered {})",
        check.lost(),
        check.events_without_execution,
        check.steps_not_succeeded,
        check.undelivered
    );
    println!(
        "deliveries                   {} for {} webhook-ids ({} unknown to the API)",
        check.deliveries, check.webhook_ids, check.unknown_webhook_ids
    );
    println!(
        "duplicate deliveries         {}   ({} of steps in flight at a kill, {} other)",
        check.duplicates, check.duplicates_at_kill, check.duplicates_other
    );
    let kills_in_flight = timeline.kills.iter().filter(|k| k.leased > 0).count();
    println!(
        "kills                        {} ({} while steps were in flight: {} steps leased; {} attempts abandoned by killed workers)",
        timeline.kills.len(),
        kills_in_flight,
        timeline.kills.iter().map(|k| k.leased.max(0)).sum::<i64>(),
        check.abandoned_by_killed
    );
    if let Some((begin, end)) = timeline.redis {
        println!(
            "Redis restart ({:.2} s)       posts: {}",
            (end - begin).as_secs_f64(),
            Tally::of(&posts, begin, end + Duration::from_secs(1)).line()
        );
    }
    if let Some((begin, end)) = timeline.postgres {
        println!("PostgreSQL restart ({:.2} s)", (end - begin).as_secs_f64());
        println!(
            "  probes (GET /api/executions)  {}",
            Tally::of(&probes, begin, end).line()
        );
        println!(
            "  posts (POST /api/events)      {}",
            Tally::of(&posts, begin, end).line()
        );
        let recovered = probes
            .iter()
            .filter(|c| c.sent >= end && matches!(c.answer, Answer::Status(200)))
            .map(|c| c.sent + c.took)
            .min();
        match recovered {
            Some(at) => println!(
                "  API recovered                 first 200 {:.2} s after the restart finished",
                at.saturating_duration_since(end).as_secs_f64()
            ),
            None => problems.push("the API did not answer 200 after the PostgreSQL restart".into()),
        }
        let after = Tally::of(&probes, end + Duration::from_secs(3), Instant::now());
        if after.by_answer.keys().any(|k| k != "200") {
            problems.push(format!(
                "the API still failed more than 3 s after the PostgreSQL restart: {}",
                after.line()
            ));
        }
    }
    println!(
        "all requests                 posts: {}",
        Tally::of(&posts, started, Instant::now()).line()
    );
    println!(
        "                             probes: {}",
        Tally::of(&probes, started, Instant::now()).line()
    );
    // How long events waited for their delivery: the recoveries show in the tail.
    let mut waits: Vec<Duration> = seen
        .lock()
        .map(|s| {
            accepted_at
                .iter()
                .filter_map(|(id, at)| {
                    s.arrivals
                        .get(id)
                        .map(|got| got.saturating_duration_since(*at))
                })
                .collect()
        })
        .unwrap_or_default();
    waits.sort();
    let quantile = |q: f64| {
        waits
            .get(((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "event accepted → delivered   p50 {:.0} ms   p99 {:.0} ms   p99.9 {:.0} ms   max {:.0} ms",
        quantile(0.5),
        quantile(0.99),
        quantile(0.999),
        quantile(1.0)
    );
    println!(
        "time to quiescence           {:.1} s after the last event was accepted ({:.1} s after the last disruption): the last delivery",
        quiescent_at
            .saturating_duration_since(posted_at)
            .as_secs_f64(),
        quiescent_at
            .saturating_duration_since(last_disruption)
            .as_secs_f64()
    );

    if server_errors > 0 {
        problems.push(format!("{server_errors} answers were 5xx other than 503"));
    }
    if !rejected.is_empty() {
        problems.push(format!("{} events were never accepted", rejected.len()));
    }
    if check.lost() > 0 || check.succeeded != accepted.len() {
        problems.push(format!(
            "{} steps lost; {} of {} executions succeeded",
            check.lost(),
            check.succeeded,
            accepted.len()
        ));
    }
    if check.duplicates_other > 0 {
        problems.push(format!(
            "{} duplicate deliveries of steps that were not in flight at a kill",
            check.duplicates_other
        ));
    }
    if check.unknown_webhook_ids > 0 {
        problems.push(format!(
            "{} delivered webhook-ids belong to no step",
            check.unknown_webhook_ids
        ));
    }
    if !check.settled() {
        problems.push(format!(
            "not quiescent within {} s",
            args.quiescence_timeout
        ));
    }
    println!();
    if problems.is_empty() {
        println!("PASS: nothing lost, no 500");
        Ok(true)
    } else {
        for p in &problems {
            println!("FAIL: {p}");
        }
        println!("process logs: {}", dir.display());
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------------
// The checks, from the executions API and the receiver's log.

#[derive(Default)]
struct Check {
    executions: usize,
    succeeded: usize,
    other_statuses: BTreeMap<String, usize>,
    events_without_execution: usize,
    steps_not_succeeded: usize,
    undelivered: usize,
    deliveries: usize,
    webhook_ids: usize,
    unknown_webhook_ids: usize,
    duplicates: usize,
    duplicates_at_kill: usize,
    duplicates_other: usize,
    abandoned_by_killed: usize,
}

impl Check {
    fn lost(&self) -> usize {
        self.events_without_execution + self.steps_not_succeeded + self.undelivered
    }

    fn settled(&self) -> bool {
        self.lost() == 0 && self.other_statuses.is_empty()
    }
}

/// Every execution of the tenant through the API (newest first, 200 a page).
async fn all_executions(
    http: &reqwest::Client,
    base: &str,
    key: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/executions?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = http.get(&url).bearer_auth(key).send().await?;
        if !response.status().is_success() {
            bail!(
                "GET /api/executions answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let mut page: Value = response.json().await?;
        if let Value::Array(items) = page["data"].take() {
            out.extend(items);
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(out),
        }
    }
}

async fn verify(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    seen: &SharedSeen,
    accepted: &HashMap<String, String>,
    killed: &HashMap<String, chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<Check> {
    let executions = all_executions(http, base, key).await?;
    let (log, deliveries) = seen
        .lock()
        .map(|s| (s.webhook_ids.clone(), s.total))
        .map_err(|_| anyhow::anyhow!("receiver lock"))?;
    let mut check = Check {
        executions: executions.len(),
        deliveries,
        webhook_ids: log.len(),
        ..Check::default()
    };
    let mut with_execution = HashSet::new();
    let mut known_ids = HashSet::new();
    for execution in &executions {
        if let Some(event) = execution["eventId"].as_str() {
            with_execution.insert(event.to_owned());
        }
        let status = execution["status"].as_str().unwrap_or("?");
        if status == "succeeded" {
            check.succeeded += 1;
        } else {
            *check.other_statuses.entry(status.to_owned()).or_default() += 1;
        }
        for step in execution["steps"].as_array().into_iter().flatten() {
            let step_id = step["id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .map(|u| u.simple().to_string())
                .unwrap_or_default();
            let webhook_id = format!("msg_{step_id}");
            known_ids.insert(webhook_id.clone());
            if step["status"].as_str() != Some("succeeded") {
                check.steps_not_succeeded += 1;
            } else if !log.contains_key(&webhook_id) {
                check.undelivered += 1;
            }
            let attempts: Vec<&Value> = step["attempts"].as_array().into_iter().flatten().collect();
            // An attempt in flight at a kill: left open by a killed worker and closed as
            // abandoned (when the step was taken over) after that kill. One abandoned by a live
            // worker (its outcome could not be recorded) is not.
            let abandoned_at_kill = attempts
                .iter()
                .filter(|a| a["outcome"].as_str() == Some("abandoned"))
                .filter(|a| {
                    let worker = a["worker"].as_str().unwrap_or_default();
                    let ended = a["endedAt"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                    killed.iter().any(|(mark, at)| {
                        worker.contains(mark.as_str()) && ended.is_some_and(|e| e >= *at)
                    })
                })
                .count();
            check.abandoned_by_killed += abandoned_at_kill;
            let extra = log.get(&webhook_id).map_or(0, |n| n.saturating_sub(1)) as usize;
            check.duplicates += extra;
            // A re-delivery is explained by a kill only if an earlier attempt was abandoned by a
            // killed worker, once per such attempt.
            let explained = extra.min(abandoned_at_kill);
            check.duplicates_at_kill += explained;
            check.duplicates_other += extra - explained;
        }
    }
    check.events_without_execution = accepted
        .keys()
        .filter(|id| !with_execution.contains(*id))
        .count();
    check.unknown_webhook_ids = log.keys().filter(|id| !known_ids.contains(*id)).count();
    Ok(check)
}
