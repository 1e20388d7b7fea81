//! The custom `slack_message` action end to end: a server built with the example's registry, in
//! process on port 0 over a temporary SQLite file, runs a workflow that uses it against a real HTTP
//! receiver; a bad `webhookUrl` is refused at configure time.

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use switchyard::config::TenantCommand;
use switchyard::{Cli, Roles, Settings};
use switchyard_tests::receiver::Receiver;
use switchyard_tests::{Reply, send};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(20);

/// The example's server, running in this process.
struct Server {
    base: String,
    key: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("db.sqlite").display()
        );
        let args = [
            "custom_server",
            "serve",
            "--database-url",
            &url,
            "--listen",
            "127.0.0.1:0",
            // The receiver is on loopback.
            "--allow-private-targets",
            "--retry-schedule",
            "100ms",
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

        let app = switchyard_examples::build_app(settings)
            .await
            .expect("the server builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let roles = Roles {
            api: true,
            workers: true,
            scheduler: true,
        };
        let task = tokio::spawn(app.serve(Some(listener), roles, async move {
            let _ = stopped.await;
        }));
        Server {
            base,
            key,
            http: reqwest::Client::new(),
            stop,
            task,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        let request = self.http.post(format!("{}{path}", self.base));
        send(request.bearer_auth(&self.key).json(body)).await
    }

    async fn get(&self, path: &str) -> Reply {
        let request = self.http.get(format!("{}{path}", self.base));
        send(request.bearer_auth(&self.key)).await
    }

    /// Polls `GET path` until `check` accepts its data.
    async fn eventually(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = self.get(path).await;
            if reply.status == 200 && check(&reply.body["data"]) {
                return reply.body["data"].clone();
            }
            assert!(Instant::now() < deadline, "{path}: {}", reply.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(WAIT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("the server did not stop cleanly: {other:?}"),
        }
    }
}

fn slack_workflow(webhook_url: &str) -> Value {
    json!({
        "name": "Tell the team",
        "entityType": "Order",
        "triggerId": "order_paid",
        "action": {
            "type": "slack_message",
            "webhookUrl": webhook_url,
            "text": "Order {{ entity.number }} paid: {{ entity.total }} {{ entity.currency }}",
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_message_runs_end_to_end() {
    let server = Server::start().await;
    let receiver = Receiver::start().await;

    let created = server
        .post("/api/workflows/configure", &slack_workflow(&receiver.url))
        .await;
    let workflow = created.assert_ok(201);
    assert_eq!(workflow["action"], "slack_message");
    assert_eq!(workflow["actions"][0]["webhookUrl"], receiver.url);

    let event = json!({"entityType": "Order", "trigger": "order_paid", "entityId": "ord_1042",
                       "eventId": "evt-1",
                       "data": {"number": "1042", "total": 87.5, "currency": "EUR"}});
    server.post("/api/events", &event).await.assert_ok(202);

    let delivered = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        delivered[0].body,
        json!({"text": "Order 1042 paid: 87.5 EUR"})
    );
    assert_eq!(delivered[0].header("content-type"), "application/json");

    let event = server
        .eventually("/api/events/evt-1", |e| e["state"] == "processed")
        .await;
    let id = event["executions"][0]["id"].as_str().expect("an execution");
    let execution = server
        .eventually(&format!("/api/executions/{id}"), |e| {
            e["status"] == "succeeded"
        })
        .await;
    let step = &execution["steps"][0];
    assert_eq!(step["actionType"], "slack_message");
    assert_eq!(step["attempts"][0]["output"]["summary"], "posted (200)");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_webhook_url_is_refused_at_configure_time() {
    let server = Server::start().await;
    for bad in [
        "not a url",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/",
    ] {
        let reply = server
            .post("/api/workflows/configure", &slack_workflow(bad))
            .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("webhookUrl"), "{bad}: {message}");
        assert_eq!(reply.body["error"]["details"]["param"], "webhookUrl");
    }
    let mut empty = slack_workflow("https://hooks.example.com/services/T0/B0/X");
    empty["action"]["text"] = json!("  ");
    let reply = server.post("/api/workflows/configure", &empty).await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.body["error"]["details"]["param"], "text");
    server.stop().await;
}
