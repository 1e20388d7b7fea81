//! `hostile`: what the hostile template corpus (`tests/fixtures/hostile-templates.txt`, CONTRACT
//! §7) costs. Renders every template in this process with the default limits and prints each
//! one's slowest render and the error that stopped it; renders every built-in email template over
//! a 1 MiB entity; then starts the real `switchyard serve` (SQLite, or PostgreSQL + Redis with a
//! separate worker), throws the corpus at it — dry runs from several connections at once, then
//! saved in workflows whose steps run on the worker — and prints the processes' peak resident set
//! size (VmHWM) before and after, and the slowest dry-run answer.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use switchyard_actions::builtin::email::{EmailConfig, TEMPLATES, compose};
use switchyard_actions::template::{TemplateLimits, render};
use switchyard_actions::{StepContext, TenantView};
use switchyard_bench::setup;
use uuid::Uuid;

const CORPUS: &str = include_str!("../../../tests/fixtures/hostile-templates.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(
    about = "Memory and time of the hostile template corpus, in process and against the server"
)]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    mode: Mode,
    /// Renders of each template in process (the slowest is kept).
    #[arg(long, default_value_t = 5)]
    renders: usize,
    /// Rounds of the whole corpus as dry runs against the server.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Connections sending dry runs at once.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[command(flatten)]
    target: switchyard_bench::Target,
}

fn entity() -> Value {
    json!({"name": "abcdefghij", "total": 1})
}

fn short(text: &str) -> String {
    let text: String = text.chars().take(70).collect();
    text.replace('\n', " ")
}

/// Every corpus template rendered in this process; returns the slowest render.
fn in_process(renders: usize) -> Duration {
    let limits = TemplateLimits::default();
    let scope = json!({"entity": entity(), "event": {"trigger": "order_created"}});
    let mut worst = Duration::ZERO;
    println!("in process, default limits, slowest of {renders} renders:");
    for template in CORPUS.lines() {
        let mut slowest = Duration::ZERO;
        let mut outcome = String::new();
        for _ in 0..renders {
            let started = Instant::now();
            let result = render(template, &scope, &limits);
            slowest = slowest.max(started.elapsed());
            outcome = match result {
                Ok(text) => format!("rendered {} bytes", text.len()),
                Err(e) => short(&e),
            };
        }
        worst = worst.max(slowest);
        println!(
            "  {:>8.2} ms  {:<48} {outcome}",
            slowest.as_secs_f64() * 1000.0,
            short(template).chars().take(48).collect::<String>()
        );
    }
    worst
}

/// Every built-in email template over an entity of 1 MiB; returns the slowest composition.
fn builtin_emails(renders: usize) -> anyhow::Result<Duration> {
    let big = "x".repeat(1024 * 1024);
    let ctx = StepContext {
        step_id: Uuid::nil(),
        execution_id: Uuid::nil(),
        workflow_id: Uuid::nil(),
        attempt: 1,
        entity_type: "Order".into(),
        entity_id: "1042".into(),
        entity: json!({"id": "1042", "number": "#1042", "total": 120.5, "currency": "EUR",
                       "customer": {"firstName": "Ana", "email": "ana@example.com"},
                       "note": big}),
        event: json!({"trigger": "order_paid"}),
        workflow: json!({"name": "bench"}),
        tenant: TenantView::default(),
        template_limits: TemplateLimits::default(),
    };
    let mut worst = Duration::ZERO;
    println!("built-in email templates over a 1 MiB entity, slowest of {renders}:");
    for template in TEMPLATES {
        let config: EmailConfig =
            serde_json::from_value(json!({"recipient": "customer", "template": template.name}))?;
        let mut slowest = Duration::ZERO;
        for _ in 0..renders {
            let started = Instant::now();
            compose(&config, &ctx).map_err(|e| anyhow::anyhow!("{}: {e}", template.name))?;
            slowest = slowest.max(started.elapsed());
        }
        worst = worst.max(slowest);
        println!(
            "  {:>8.2} ms  {}",
            slowest.as_secs_f64() * 1000.0,
            template.name
        );
    }
    Ok(worst)
}

fn workflow(name: &str, template: &str) -> Value {
    json!({"name": name, "entityType": "Order", "triggerId": "order_created",
           "action": {"type": "webhook", "url": "https://hooks.example.com/in",
                      "headers": {"X-Hostile": template}}})
}

fn event(id: &str) -> Value {
    json!({"entityType": "Order", "trigger": "order_created", "entityId": id, "eventId": id,
           "data": entity()})
}

fn peaks(servers: &[switchyard_bench::server::Server]) -> String {
    servers
        .iter()
        .map(|s| {
            s.peak_rss_mib()
                .map(|m| format!("{m:.1} MiB"))
                .unwrap_or_else(|| "?".into())
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.target.check_binary()?;
    let worst_render = in_process(args.renders);
    let worst_email = builtin_emails(args.renders)?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let (dir, prefix) = setup::run_scratch("hostile")?;
    let mut common = setup::common_flags();
    match args.mode {
        Mode::Sqlite => common.extend([
            "--database-url".into(),
            format!("sqlite://{}/switchyard.db?mode=rwc", dir.display()),
        ]),
        Mode::Postgres => {
            let (_schema, url) =
                setup::postgres_schema(&args.target.postgres_url, "hostile").await?;
            common.extend(setup::postgres_flags(&url, &args.target.redis_url, &prefix));
        }
    }
    let key = setup::create_tenant(&args.target.binary, &common, "hostile").await?;
    let serve_args = |first: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = first.iter().map(|s| s.to_string()).collect();
        a.extend(["--listen".into(), "127.0.0.1:0".into()]);
        a.extend(common.clone());
        a
    };
    let servers =
        setup::start_engine(&args.target.binary, args.mode == Mode::Postgres, serve_args).await?;
    let base = servers[0].base.clone().context("API address")?;

    // A benign dry run first, so the baseline includes a warm server.
    let benign = json!({"workflow": workflow("benign", "{{ entity.name }}"), "event": event("o0")});
    for _ in 0..20 {
        let reply = http
            .post(format!("{base}/api/workflows/test"))
            .bearer_auth(&key)
            .json(&benign)
            .send()
            .await?;
        if reply.status() != 200 {
            bail!("benign dry run: {}", reply.text().await?);
        }
    }
    let baseline = peaks(&servers);

    // Dry runs: every template, `rounds` times, from several connections at once.
    let templates: Vec<String> = CORPUS.lines().map(str::to_owned).collect();
    let mut jobs = Vec::new();
    for round in 0..args.rounds {
        for (i, template) in templates.iter().enumerate() {
            jobs.push((round, i, template.clone()));
        }
    }
    let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (http, base, key, jobs) = (http.clone(), base.clone(), key.clone(), jobs.clone());
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            loop {
                let Some((round, i, template)) = jobs.lock().ok().and_then(|mut j| j.pop()) else {
                    return Ok::<_, anyhow::Error>(slowest);
                };
                let body = json!({"workflow": workflow(&format!("dry {round} {i}"), &template),
                                  "event": event("o1")});
                let started = Instant::now();
                let reply = http
                    .post(format!("{base}/api/workflows/test"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await?;
                let status = reply.status().as_u16();
                slowest = slowest.max(started.elapsed());
                if status >= 500 {
                    bail!("{template}: answered {status}: {}", reply.text().await?);
                }
            }
        }));
    }
    let mut slowest_dry_run = Duration::ZERO;
    for task in tasks {
        slowest_dry_run = slowest_dry_run.max(task.await??);
    }
    let after_dry_runs = peaks(&servers);

    // Saved in workflows: each template's step runs on the worker and pauses with its error.
    let mut saved = 0;
    for (i, template) in templates.iter().enumerate() {
        let reply = http
            .post(format!("{base}/api/workflows/configure"))
            .bearer_auth(&key)
            .json(&workflow(&format!("saved {i}"), template))
            .send()
            .await?;
        match reply.status().as_u16() {
            201 => saved += 1,
            400 => {}
            status => bail!("{template}: configure answered {status}"),
        }
    }
    let started = Instant::now();
    let reply = http
        .post(format!("{base}/api/events"))
        .bearer_auth(&key)
        .json(&event("o2"))
        .send()
        .await?;
    if reply.status() != 202 {
        bail!("event: {}", reply.text().await?);
    }
    let paused = loop {
        let page: Value = http
            .get(format!("{base}/api/executions?status=paused&limit=200"))
            .bearer_auth(&key)
            .send()
            .await?
            .json()
            .await?;
        let paused = page["data"].as_array().map_or(0, Vec::len);
        if paused >= saved {
            break paused;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("only {paused} of {saved} saved hostile steps paused in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let steps_time = started.elapsed();
    let after_steps = peaks(&servers);

    println!("mode                                   {:?}", args.mode);
    println!(
        "slowest render in process              {:.1} ms (corpus of {})",
        worst_render.as_secs_f64() * 1000.0,
        templates.len()
    );
    println!(
        "slowest built-in email (1 MiB entity)  {:.2} ms",
        worst_email.as_secs_f64() * 1000.0
    );
    println!(
        "slowest dry-run answer                 {:.1} ms ({} dry runs over {} connections)",
        slowest_dry_run.as_secs_f64() * 1000.0,
        templates.len() * args.rounds,
        args.connections
    );
    println!(
        "saved workflows (others refused 400)   {saved}; all {paused} steps paused in {:.2} s",
        steps_time.as_secs_f64()
    );
    let which = if servers.len() > 1 {
        "serve / worker"
    } else {
        "serve"
    };
    println!("peak RSS ({which}), warm                {baseline}");
    println!("peak RSS after the dry runs            {after_dry_runs}");
    println!("peak RSS after the saved steps ran     {after_steps}");
    if args.mode == Mode::Postgres {
        println!("(PostgreSQL schema and Redis prefix `{prefix}` are left for inspection)");
    }
    drop(servers);
    Ok(())
}
