//! `scale`: two figures of how Switchyard scales, on this machine.
//!
//! 1. **Matching cost vs workflow count.** Starts the real `switchyard` binary (one `serve`, on an
//!    embedded SQLite file or on PostgreSQL + Redis), creates a tenant and 10 workflows on
//!    `order_paid` whose Rhai condition never holds (so no execution is ever created), and
//!    measures per-event matching: the mean of the server's `switchyard_event_match_seconds`
//!    (Δsum / Δcount from `GET /metrics`; one sample per event, or per ingest batch where the
//!    engine records a batch's per-event mean), the server's CPU time per event, and events/s
//!    from the first post until the events API shows every event processed — once with events
//!    posted flat out, once at a fixed low rate. Then it creates workflows through the API until the tenant has 100,000
//!    (the others spread over every other event trigger) and measures again. A second tenant with
//!    the same 10 workflows is measured last, on the same (now large) database, as a control for
//!    drift in the machine's load. It prints the query plans of the matching query
//!    (`Store::active_workflows`) and of the scheduler's query, and what each costs on its own.
//! 2. **Redis memory of delayed steps.** Dispatches 100,000 `Job::RunStep` jobs due in an hour
//!    through the engine's own `RedisDispatch` under a fresh key prefix, measures `INFO memory`
//!    and `MEMORY USAGE` of the prefix's keys, then deletes them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use switchyard::queue::redis::{RedisDispatch, RedisOptions};
use switchyard::queue::{Dispatch, Job};
use switchyard_bench::bar;
use switchyard_bench::server::Server;
use switchyard_bench::setup::{self, post_event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One `switchyard serve` on an embedded SQLite file.
    Sqlite,
    /// One `switchyard serve` (API and worker, so `/metrics` shows matching) on PostgreSQL +
    /// Redis.
    Postgres,
}

#[derive(Debug, Parser)]
#[command(about = "Scale figures of Switchyard: matching vs workflow count, Redis delayed steps")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    mode: Mode,
    /// Events posted flat out per measurement.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// Concurrent HTTP requests while posting flat out and creating workflows.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Events posted (and waited for) before each measurement.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Events/s of the paced measurement (0: skip it).
    #[arg(long, default_value_t = 100.0)]
    paced_rate: f64,
    /// Seconds of the paced measurement.
    #[arg(long, default_value_t = 5)]
    paced_seconds: u64,
    /// Workflows in the tenant for the second measurement.
    #[arg(long, default_value_t = 100_000)]
    workflows: usize,
    /// Workflows on the events' trigger (`order_paid`), in both measurements.
    #[arg(long, default_value_t = 10)]
    on_trigger: usize,
    /// Worker concurrency of the server.
    #[arg(long, default_value_t = 64)]
    worker_concurrency: usize,
    /// Delayed jobs for the Redis figure.
    #[arg(long, default_value_t = 100_000)]
    redis_jobs: usize,
    /// Skip the matching figure.
    #[arg(long)]
    skip_matching: bool,
    /// Skip the Redis figure.
    #[arg(long)]
    skip_redis: bool,
    #[command(flatten)]
    target: switchyard_bench::Target,
}

/// Every event trigger but `order_paid` (schedule triggers cannot be posted and start the
/// scheduler's work, so the filler workflows stay off them).
const OTHER_TRIGGERS: [(&str, &str); 14] = [
    ("Order", "order_created"),
    ("Order", "order_status_changed"),
    ("Order", "order_cancelled"),
    ("Order", "order_fulfilled"),
    ("Shipment", "shipment_created"),
    ("Shipment", "shipment_status_changed"),
    ("Shipment", "shipment_shipped"),
    ("Shipment", "shipment_delivered"),
    ("Shipment", "shipment_exception"),
    ("Customer", "customer_created"),
    ("Customer", "customer_updated"),
    ("Product", "product_created"),
    ("Product", "product_updated"),
    ("Product", "product_out_of_stock"),
];

/// The schedule triggers the scheduler asks for (the catalog's, in catalog order).
const SCHEDULE_TRIGGERS: [&str; 4] = [
    "order_schedule",
    "shipment_schedule",
    "customer_schedule",
    "product_schedule",
];

/// A webhook target that is never called (no workflow here ever matches).
const HOOK: &str = "https://hooks.example.com/switchyard";

/// The `order_paid` workflow that never matches: the conditions map holds and the Rhai
/// condition does not, so both are evaluated for every event.
fn never_matching(i: usize) -> Value {
    json!({"name": format!("scale order_paid {i}"), "entityType": "Order", "triggerId": "order_paid",
        "conditions": {"status": "paid"}, "condition": "entity.total > 1000000",
        "action": {"type": "webhook", "url": HOOK}})
}

/// A filler workflow on another trigger.
fn filler(i: usize) -> Value {
    let (entity, trigger) = OTHER_TRIGGERS[i % OTHER_TRIGGERS.len()];
    json!({"name": format!("scale {trigger} {i}"), "entityType": entity, "triggerId": trigger,
        "conditions": {"status": "flagged"}, "condition": "entity.total > 100",
        "action": {"type": "webhook", "url": HOOK}})
}

/// Creates workflows through the API, `concurrency` requests at a time; workflows/s.
async fn create_workflows(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    bodies: Vec<Value>,
    concurrency: usize,
    what: &str,
) -> anyhow::Result<f64> {
    let n = bodies.len();
    let progress = bar(n as u64, what);
    let started = Instant::now();
    let results = futures::stream::iter(bodies)
        .map(|body| {
            let request = http
                .post(format!("{base}/api/workflows/configure"))
                .bearer_auth(key)
                .json(&body);
            let progress = progress.clone();
            async move {
                let response = request.send().await?;
                progress.inc(1);
                if response.status().is_success() {
                    Ok(())
                } else {
                    bail!(
                        "configure answered {}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    progress.finish_and_clear();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(e.context("creating workflows"));
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// What `GET /metrics` says about matching.
#[derive(Debug, Clone, Copy)]
struct MatchMetrics {
    sum: f64,
    count: f64,
    matches: f64,
}

/// Sums a metric over its label sets (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<MatchMetrics> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(MatchMetrics {
        sum: metric(&text, "switchyard_event_match_seconds_sum"),
        count: metric(&text, "switchyard_event_match_seconds_count"),
        matches: metric(&text, "switchyard_matches_total"),
    })
}

/// One page of the tenant's events, newest first.
async fn events_page(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    cursor: Option<&str>,
) -> anyhow::Result<(Vec<Value>, Option<String>)> {
    // Cursors are URL-safe base64 (`[A-Za-z0-9_-]`): no escaping needed.
    let url = match cursor {
        Some(c) => format!("{base}/api/events?limit=200&cursor={c}"),
        None => format!("{base}/api/events?limit=200"),
    };
    let mut page: Value = http
        .get(url)
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let events = match page["data"].take() {
        Value::Array(events) => events,
        _ => bail!("events page without data"),
    };
    Ok((events, page["cursor"].as_str().map(str::to_owned)))
}

/// Waits, through the events API, until the `n` events `prefix0…` are all processed (none
/// `pending`); when the scan that found them so started. The list is newest first and these are
/// the newest events, so a scan stops at the first pending one (the queue runs roughly in order)
/// or once it has seen all `n`.
async fn wait_processed(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Instant> {
    let progress = bar(n as u64, "processed");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let scan_started = Instant::now();
        let (mut seen, mut pending) = (0, 0);
        let mut cursor: Option<String> = None;
        loop {
            let (events, next) = events_page(http, base, key, cursor.as_deref()).await?;
            for event in &events {
                let ours = event["eventId"]
                    .as_str()
                    .and_then(|id| id.strip_prefix(prefix))
                    .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()));
                if ours {
                    seen += 1;
                    if event["state"] == "pending" {
                        pending += 1;
                    }
                }
            }
            if pending > 0 || seen >= n {
                break;
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if pending == 0 && seen >= n {
            progress.finish_and_clear();
            return Ok(scan_started);
        }
        progress.set_position(seen.saturating_sub(pending) as u64);
        if Instant::now() > deadline {
            bail!("{pending} of {n} events still pending (or {seen} seen) after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks through the events API that every event of the tenant is processed and started
/// nothing; the number of events seen.
async fn verify_events(http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<usize> {
    let mut cursor: Option<String> = None;
    let (mut seen, mut pending, mut started) = (0, 0, 0);
    loop {
        let (events, next) = events_page(http, base, key, cursor.as_deref()).await?;
        for event in &events {
            seen += 1;
            if event["state"] != "processed" {
                pending += 1;
            }
            if event["outcome"]["matched"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
            {
                started += 1;
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if pending > 0 || started > 0 {
        bail!("of {seen} events, {pending} are not processed and {started} started executions");
    }
    Ok(seen)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: Option<u32>, ticks_per_second: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// One measurement: flat out and paced.
#[derive(Debug, Clone)]
struct Figures {
    label: String,
    workflows: usize,
    /// Mean `switchyard_event_match_seconds`, flat out.
    flat_match_ms: f64,
    /// Server CPU ms per event (ingest + match), flat out.
    flat_cpu_ms: f64,
    /// Events / (first post → last processed), flat out.
    flat_rate: f64,
    /// Mean `switchyard_event_match_seconds` at the paced rate.
    paced_match_ms: f64,
    paced_cpu_ms: f64,
    load: String,
}

struct Target<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    server: &'a Server,
    ticks: f64,
    args: &'a Args,
    /// The SQLite file, to report its size and its WAL's.
    sqlite_file: Option<PathBuf>,
}

/// "db N MB, WAL M MB" of a SQLite file.
fn sqlite_sizes(file: &std::path::Path) -> String {
    let mb = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| format!("{:.1}", m.len() as f64 / 1e6))
            .unwrap_or_else(|_| "?".into())
    };
    let wal = PathBuf::from(format!("{}-wal", file.display()));
    format!("db {} MB, WAL {} MB", mb(file), mb(&wal))
}

impl Target<'_> {
    /// Posts events `prefix0…` flat out; (Δmetrics, Δcpu, seconds first post → all matched).
    async fn flat(&self, key: &str, prefix: &str, n: usize) -> anyhow::Result<(f64, f64, f64)> {
        let before = scrape(self.http, self.base).await?;
        let cpu_before = cpu_seconds(self.server.pid(), self.ticks).unwrap_or(0.0);
        let started = Instant::now();
        let posted = futures::stream::iter(0..n)
            .map(|i| {
                let id = format!("{prefix}{i}");
                async move { post_event(self.http, self.base, key, &id).await }
            })
            .buffer_unordered(self.args.concurrency)
            .collect::<Vec<_>>()
            .await;
        if let Some(Err(e)) = posted.into_iter().find(Result::is_err) {
            return Err(e.context("posting events"));
        }
        let done = wait_processed(self.http, self.base, key, prefix, n).await?;
        let cpu = cpu_seconds(self.server.pid(), self.ticks).unwrap_or(0.0) - cpu_before;
        let after = scrape(self.http, self.base).await?;
        if after.matches > before.matches {
            bail!("an event matched a workflow: the measurement needs none to");
        }
        let mean = (after.sum - before.sum) / (after.count - before.count);
        Ok((mean, cpu, done.duration_since(started).as_secs_f64()))
    }

    /// Posts events at a fixed rate; (mean match seconds, cpu seconds, events).
    async fn paced(&self, key: &str, prefix: &str) -> anyhow::Result<(f64, f64, usize)> {
        let rate = self.args.paced_rate;
        let n = (rate * self.args.paced_seconds as f64) as usize;
        if n == 0 {
            return Ok((f64::NAN, f64::NAN, 0));
        }
        let before = scrape(self.http, self.base).await?;
        let cpu_before = cpu_seconds(self.server.pid(), self.ticks).unwrap_or(0.0);
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            ticker.tick().await;
            let (http, base, key, id) = (
                self.http.clone(),
                self.base.to_owned(),
                key.to_owned(),
                format!("{prefix}{i}"),
            );
            tasks.spawn(async move { post_event(&http, &base, &key, &id).await });
        }
        while let Some(joined) = tasks.join_next().await {
            joined??;
        }
        wait_processed(self.http, self.base, key, prefix, n).await?;
        let cpu = cpu_seconds(self.server.pid(), self.ticks).unwrap_or(0.0) - cpu_before;
        let after = scrape(self.http, self.base).await?;
        if after.matches > before.matches {
            bail!("an event matched a workflow: the measurement needs none to");
        }
        Ok((
            (after.sum - before.sum) / (after.count - before.count),
            cpu,
            n,
        ))
    }

    async fn measure(
        &self,
        key: &str,
        label: &str,
        tag: &str,
        workflows: usize,
    ) -> anyhow::Result<Figures> {
        let load = load_average();
        println!(
            "{label}: warm-up {} events, then {} flat out ({} concurrent), then {:.0}/s for {} s (load average {load})…",
            self.args.warmup,
            self.args.events,
            self.args.concurrency,
            self.args.paced_rate,
            self.args.paced_seconds
        );
        self.flat(key, &format!("{tag}w"), self.args.warmup).await?;
        let (mean, cpu, secs) = self.flat(key, &format!("{tag}f"), self.args.events).await?;
        let (paced_mean, paced_cpu, paced_n) = self.paced(key, &format!("{tag}p")).await?;
        if let Some(file) = &self.sqlite_file {
            println!("  {}", sqlite_sizes(file));
        }
        let seen = verify_events(self.http, self.base, key).await?;
        println!("  events API: all {seen} events of the tenant processed, none started anything");
        let n = self.args.events as f64;
        Ok(Figures {
            label: label.to_owned(),
            workflows,
            flat_match_ms: mean * 1000.0,
            flat_cpu_ms: cpu * 1000.0 / n,
            flat_rate: n / secs,
            paced_match_ms: paced_mean * 1000.0,
            paced_cpu_ms: paced_cpu * 1000.0 / paced_n as f64,
            load,
        })
    }
}

/// The matching query of `Store::active_workflows`.
const MATCH_SQL: &str = "SELECT id, current_version FROM workflows WHERE tenant_id = $1 \
    AND entity_type = $2 AND trigger_code = $3 AND is_active = 1 AND deleted_at IS NULL";
/// The scheduler's query (`Store::active_schedules`), every `--scheduler-interval`.
const SCHEDULE_SQL: &str = "SELECT id, tenant_id, entity_type, trigger_code, current_version, \
    updated_at FROM workflows WHERE trigger_code IN ($1, $2, $3, $4) AND is_active = 1 \
    AND deleted_at IS NULL";

/// Plans (when `plans`) and timings of the two queries over `workflows`, straight on the
/// database; the matching query's mean time in ms.
async fn explain(mode: Mode, url: &str, when: &str, plans: bool) -> anyhow::Result<f64> {
    const RUNS: u32 = 2_000;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let tenant: String = sqlx::query(
        "SELECT tenant_id FROM workflows GROUP BY tenant_id ORDER BY COUNT(*) DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await?
    .try_get(0)?;
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM workflows")
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
    let matching = || {
        sqlx::query(MATCH_SQL)
            .bind(tenant.clone())
            .bind("Order")
            .bind("order_paid")
    };
    let schedules = || {
        SCHEDULE_TRIGGERS
            .iter()
            .fold(sqlx::query(SCHEDULE_SQL), |q, t| q.bind(*t))
    };
    if plans {
        let (explain, column, stats) = match mode {
            Mode::Sqlite => (
                "EXPLAIN QUERY PLAN",
                3,
                "SQLite, no ANALYZE statistics, as the engine leaves it",
            ),
            Mode::Postgres => ("EXPLAIN (ANALYZE, BUFFERS)", 0, "PostgreSQL"),
        };
        println!("query plans ({total} workflows in the table, {stats}):");
        for (what, sql) in [
            ("active_workflows", MATCH_SQL),
            ("active_schedules", SCHEDULE_SQL),
        ] {
            let query = sqlx::query(sqlx::AssertSqlSafe(format!("{explain} {sql}")));
            let query = if what == "active_workflows" {
                query.bind(tenant.clone()).bind("Order").bind("order_paid")
            } else {
                SCHEDULE_TRIGGERS.iter().fold(query, |q, t| q.bind(*t))
            };
            for row in query.fetch_all(&mut conn).await? {
                println!("  {what:<18} {}", row.try_get::<String, _>(column)?);
            }
        }
    }
    let mut rows = 0;
    let started = Instant::now();
    for _ in 0..RUNS {
        rows = matching().fetch_all(&mut conn).await?.len();
    }
    let match_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(RUNS);
    let started = Instant::now();
    for _ in 0..RUNS / 10 {
        schedules().fetch_all(&mut conn).await?;
    }
    let schedule_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(RUNS / 10);
    println!(
        "  queries alone, {when} ({total} workflows in the table): active_workflows {match_ms:.3} ms \
         ({rows} rows), active_schedules {schedule_ms:.3} ms"
    );
    Ok(match_ms)
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The matching figure: both measurements and the control.
async fn matching(args: &Args) -> anyhow::Result<()> {
    args.target.check_binary()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let (dir, prefix) = setup::run_scratch("scale")?;
    let mut common = setup::common_flags();
    let mut schema = None;
    let db_url = match args.mode {
        Mode::Sqlite => {
            let url = format!("sqlite://{}/switchyard.db?mode=rwc", dir.display());
            common.extend(["--database-url".into(), url.clone()]);
            url
        }
        Mode::Postgres => {
            let (name, url) = setup::postgres_schema(&args.target.postgres_url, "scale").await?;
            schema = Some(name);
            common.extend(setup::postgres_flags(&url, &args.target.redis_url, &prefix));
            url
        }
    };
    let result = matching_on(args, &http, &common, &db_url).await;
    if let Some(schema) = schema {
        setup::drop_postgres_schema(&args.target.postgres_url, &schema).await?;
        delete_prefix(&args.target.redis_url, &prefix).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn matching_on(
    args: &Args,
    http: &reqwest::Client,
    common: &[String],
    db_url: &str,
) -> anyhow::Result<()> {
    let key = setup::create_tenant(&args.target.binary, common, "scale").await?;
    let control_key = setup::create_tenant(&args.target.binary, common, "scale-control").await?;
    let mut serve: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--concurrency".into(),
        args.worker_concurrency.to_string(),
    ];
    serve.extend(common.iter().cloned());
    let server = Server::start(&args.target.binary, &serve).await?;
    let base = server.base.clone().context("API address")?;
    let target = Target {
        http,
        base: &base,
        server: &server,
        ticks: ticks_per_second(),
        args,
        sqlite_file: db_url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split('?').next())
            .map(PathBuf::from),
    };

    for k in [&key, &control_key] {
        let bodies = (0..args.on_trigger).map(never_matching).collect();
        create_workflows(
            http,
            &base,
            k,
            bodies,
            args.concurrency,
            "order_paid workflows",
        )
        .await?;
    }
    let a = target
        .measure(
            &key,
            &format!("A: {} workflows", args.on_trigger),
            "a",
            args.on_trigger,
        )
        .await?;
    let explain_url = match args.mode {
        Mode::Sqlite => db_url.replace("mode=rwc", "mode=ro"),
        Mode::Postgres => db_url.to_owned(),
    };
    let query_a = explain(args.mode, &explain_url, "after A", false).await;

    let fill = args.workflows.saturating_sub(args.on_trigger);
    println!(
        "creating {fill} workflows on {} other triggers ({} concurrent requests)…",
        OTHER_TRIGGERS.len(),
        args.concurrency
    );
    let bodies = (0..fill).map(filler).collect();
    let create_rate =
        create_workflows(http, &base, &key, bodies, args.concurrency, "workflows").await?;
    println!("  {create_rate:.0} workflows/s created");

    let b = target
        .measure(
            &key,
            &format!("B: {} workflows", args.workflows),
            "b",
            args.workflows,
        )
        .await?;
    let control = target
        .measure(
            &control_key,
            &format!("A': control tenant, {} workflows", args.on_trigger),
            "c",
            args.on_trigger,
        )
        .await?;
    let query_b = explain(args.mode, &explain_url, "after B and A'", true).await;
    drop(server);
    match (query_a, query_b) {
        (Ok(a), Ok(b)) => println!(
            "  active_workflows alone: {b:.3} ms with {} workflows / {a:.3} ms with {} = {:.2}",
            args.workflows,
            args.on_trigger,
            b / a
        ),
        (Err(e), _) | (_, Err(e)) => println!("query plans unavailable: {e:#}"),
    }
    println!();
    println!(
        "mode {:?}; {} events flat out per measurement, paced at {:.0}/s for {} s",
        args.mode, args.events, args.paced_rate, args.paced_seconds
    );
    println!(
        "{:<34} {:>9} {:>13} {:>12} {:>10} {:>13} {:>12} {:>5}",
        "measurement",
        "workflows",
        "match ms flat",
        "cpu ms/event",
        "events/s",
        "match ms paced",
        "cpu ms/event",
        "load"
    );
    for f in [&a, &b, &control] {
        println!(
            "{:<34} {:>9} {:>13.3} {:>12.3} {:>10.0} {:>13.3} {:>12.3} {:>5}",
            f.label,
            f.workflows,
            f.flat_match_ms,
            f.flat_cpu_ms,
            f.flat_rate,
            f.paced_match_ms,
            f.paced_cpu_ms,
            f.load
        );
    }
    // B's cost over the baseline's, for each measure (events/s inverted: time per event).
    let measures = |base: &Figures| {
        [
            ("match ms, flat", b.flat_match_ms / base.flat_match_ms),
            ("cpu ms/event, flat", b.flat_cpu_ms / base.flat_cpu_ms),
            ("1/(events/s), flat", base.flat_rate / b.flat_rate),
            ("match ms, paced", b.paced_match_ms / base.paced_match_ms),
            ("cpu ms/event, paced", b.paced_cpu_ms / base.paced_cpu_ms),
        ]
    };
    for (name, base) in [("B/A ", &a), ("B/A'", &control)] {
        let cells: Vec<String> = measures(base)
            .iter()
            .map(|(what, r)| format!("{what} {r:.2}{}", if *r <= 1.5 { "" } else { " (>1.5)" }))
            .collect();
        println!("ratio {name}  {}", cells.join(", "));
    }
    let over = |base: &Figures| -> Vec<&str> {
        measures(base)
            .iter()
            .filter(|(_, r)| *r > 1.5)
            .map(|(what, _)| *what)
            .collect()
    };
    let (over_a, over_control) = (over(&a), over(&control));
    println!(
        "target (B's per-event cost within 1.5x of A's): {}",
        if over_a.is_empty() {
            "met on every measure".to_owned()
        } else {
            format!("above 1.5x on {}", over_a.join(", "))
        }
    );
    if !over_a.is_empty() && over_control.is_empty() {
        println!(
            "  but B is within 1.5x of A' on every measure: A' has {} workflows on the same \
             database at the same time, so the difference is not the tenant's workflow count \
             (the database's size, or the machine's load, changed between A and B)",
            args.on_trigger
        );
    }
    Ok(())
}

/// Deletes every key under `prefix:`.
async fn delete_prefix(url: &str, prefix: &str) -> anyhow::Result<usize> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(keys.len())
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("used_memory in INFO memory")
}

/// The Redis figure.
async fn redis_memory(args: &Args) -> anyhow::Result<()> {
    let prefix = format!("switchyard-scale:{}", uuid::Uuid::new_v4().simple());
    let n = args.redis_jobs;
    println!("redis: {n} RunStep jobs due in one hour under {prefix}…");
    let queue =
        RedisDispatch::connect(&args.target.redis_url, &prefix, RedisOptions::default()).await?;
    let mut conn = redis::Client::open(args.target.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let result = async {
        let before = used_memory(&mut conn).await?;
        let due = chrono::Utc::now().timestamp_millis() + 3_600_000;
        let jobs: Vec<(Job, i64)> = (0..n)
            .map(|_| {
                (
                    Job::RunStep {
                        tenant_id: uuid::Uuid::now_v7(),
                        step_id: uuid::Uuid::now_v7(),
                    },
                    due,
                )
            })
            .collect();
        let started = Instant::now();
        queue.dispatch(&jobs).await?;
        let secs = started.elapsed().as_secs_f64();
        let after = used_memory(&mut conn).await?;
        let delayed = format!("{prefix}:delayed");
        let zcard: i64 = redis::cmd("ZCARD").arg(&delayed).query_async(&mut conn).await?;
        if zcard != n as i64 {
            bail!("{delayed} holds {zcard} jobs, not {n}");
        }
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await?;
        let mut usage = 0i64;
        let mut lines = Vec::new();
        for key in &keys {
            let bytes: Option<i64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn)
                .await?;
            let bytes = bytes.unwrap_or(0);
            usage += bytes;
            lines.push(format!("{key}: {bytes} bytes"));
        }
        let encoding: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(&delayed)
            .query_async(&mut conn)
            .await?;
        let sample: Vec<String> = redis::cmd("ZRANGE")
            .arg(&delayed)
            .arg(0)
            .arg(0)
            .query_async(&mut conn)
            .await?;
        let per_100k = |bytes: i64| bytes as f64 / n as f64 * 100_000.0 / 1e6;
        println!();
        println!("dispatch of {n} delayed jobs     {secs:.2} s ({:.0} jobs/s)", n as f64 / secs);
        println!(
            "a member                         {} ({} bytes), zset encoding {encoding}",
            sample.first().map(String::as_str).unwrap_or("?"),
            sample.first().map(String::len).unwrap_or(0)
        );
        for line in lines {
            println!("MEMORY USAGE                     {line}");
        }
        println!(
            "INFO used_memory                 {before} → {after} bytes (Δ {} bytes, {:.0} bytes/job)",
            after - before,
            (after - before) as f64 / n as f64
        );
        println!(
            "per 100,000 delayed steps        {:.1} MB by MEMORY USAGE, {:.1} MB by used_memory Δ (target ≤ 50 MB: {})",
            per_100k(usage),
            per_100k(after - before),
            if per_100k(usage.max(after - before)) <= 50.0 { "met" } else { "NOT met" }
        );
        Ok(())
    }
    .await;
    let deleted = delete_prefix(&args.target.redis_url, &prefix).await?;
    println!("deleted {deleted} keys under {prefix}");
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.skip_matching {
        matching(&args).await?;
    }
    if !args.skip_redis {
        println!();
        redis_memory(&args).await?;
    }
    Ok(())
}
