//! The integrator's metered worker end to end: a server in process on port 0 over a temporary
//! SQLite file runs the API only (`serve --no-worker`); the example's worker — the engine's apalis
//! worker on its queue backend, wrapped in `JobMeterLayer` — runs every job. An order paid starts
//! workflow A (`update_status` → fulfilled), whose emitted `order_fulfilled` event starts workflow
//! B (a webhook to a real receiver): the receiver gets the call, and the layer counted both kinds
//! of job for the tenant. Then the worker stops gracefully.

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use switchyard::config::TenantCommand;
use switchyard::{Cli, Roles, Settings};
use switchyard_examples::metered::{JobMeter, run_worker};
use switchyard_tests::receiver::Receiver;
use switchyard_tests::{Reply, send};
use tokio::sync::oneshot;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

async fn post(http: &reqwest::Client, base: &str, key: &str, path: &str, body: &Value) -> Reply {
    send(
        http.post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metered_worker_runs_the_jobs_and_its_layer_sees_each_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let args = [
        "custom_server",
        "serve",
        "--no-worker",
        "--database-url",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--allow-private-targets",
        "--shutdown-grace",
        "2s",
    ];
    let settings: Settings = Cli::try_parse_from(args).expect("settings").settings;
    let tenant = switchyard::cli::tenant(
        &settings,
        TenantCommand::Create {
            name: "Acme".to_owned(),
        },
    )
    .await
    .expect("tenant create");
    let key = tenant["apiKey"].as_str().expect("apiKey").to_owned();
    let tenant_id: Uuid = tenant["tenantId"]
        .as_str()
        .expect("tenantId")
        .parse()
        .expect("a tenant id");

    // The API alone: no worker pool in the server.
    let app = switchyard_examples::build_app(settings)
        .await
        .expect("the server builds");
    let executor = app.state.executor.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let roles = Roles {
        api: true,
        workers: false,
        scheduler: false,
    };
    let server = tokio::spawn(app.serve(Some(listener), roles, async move {
        let _ = server_stopped.await;
    }));

    // The integrator's worker, on the same executor and queue.
    let meter = JobMeter::new();
    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(
        executor,
        4,
        Duration::from_secs(2),
        meter.clone(),
        async move {
            let _ = worker_stopped.await;
        },
    ));

    let http = reqwest::Client::new();
    let receiver = Receiver::start().await;
    let a = json!({"name": "A", "entityType": "Order", "triggerId": "order_paid",
                   "action": {"type": "update_status", "status": "fulfilled"}});
    let b = json!({"name": "B", "entityType": "Order", "triggerId": "order_fulfilled",
                   "action": {"type": "webhook", "url": receiver.url}});
    for workflow in [a, b] {
        post(&http, &base, &key, "/api/workflows/configure", &workflow)
            .await
            .assert_ok(201);
    }
    let event = json!({"entityType": "Order", "trigger": "order_paid", "entityId": "ord_7",
                       "eventId": "evt-7", "data": {"status": "paid", "total": 10.0}});
    post(&http, &base, &key, "/api/events", &event)
        .await
        .assert_ok(202);

    // B's webhook arrives: the worker ran A's step, matched the emitted event, ran B's step.
    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(delivered[0].body["type"], "order_fulfilled");
    assert_eq!(delivered[0].body["data"]["entity"]["status"], "fulfilled");

    // The layer saw the steps (A's, B's) and the emitted events' matching, for this tenant.
    let deadline = Instant::now() + WAIT;
    loop {
        let steps = meter.runs(tenant_id, "run_step");
        let events = meter.runs(tenant_id, "process_event");
        if steps >= 2 && events >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the layer counted {steps} steps and {events} events: {:?}",
            meter.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        meter
            .snapshot()
            .keys()
            .all(|(tenant, _)| *tenant == tenant_id),
        "{:?}",
        meter.snapshot()
    );

    let _ = stop_worker.send(());
    match tokio::time::timeout(WAIT, worker).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the worker did not stop cleanly: {other:?}"),
    }
    let _ = stop_server.send(());
    match tokio::time::timeout(WAIT, server).await {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the server did not stop cleanly: {other:?}"),
    }
}
