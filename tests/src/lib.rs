//! Harness for the end-to-end tests: a real Switchyard server on port 0 over a fresh SQLite file or
//! a fresh PostgreSQL schema, and a small HTTP client that speaks its envelope.

pub mod process;
pub mod receiver;
pub mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::Value;
use switchyard::{App, Cli, Roles};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The PostgreSQL server tests use (trust auth on the machines this project runs on).
pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database of its own for one test: a SQLite file in a temporary directory, or a PostgreSQL
/// schema with a random name (dropped by [`TestDb::cleanup`]).
pub struct TestDb {
    pub kind: Db,
    pub url: String,
    /// This test's own Redis keys (the Redis server is shared).
    pub redis_prefix: String,
    pub dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

fn random_prefix() -> String {
    format!("sytest_{}", Uuid::new_v4().simple())
}

impl TestDb {
    pub async fn new(kind: Db) -> anyhow::Result<TestDb> {
        match kind {
            Db::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("switchyard.db").display()
                );
                Ok(TestDb {
                    kind,
                    url,
                    dir: Some(dir),
                    schema: None,
                    redis_prefix: random_prefix(),
                })
            }
            Db::Postgres => {
                let schema = format!("t_{}", Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .with_context(|| format!("connecting to {admin}"))?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await?;
                let sep = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
                Ok(TestDb {
                    kind,
                    url,
                    dir: None,
                    schema: Some(schema),
                    redis_prefix: random_prefix(),
                })
            }
        }
    }

    /// The directory of the SQLite file (where `master.key` is generated).
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// The same database (and Redis prefix) for a second server. The handle owns nothing: its
    /// cleanup does nothing, and the database lives as long as the original.
    pub fn share(&self) -> TestDb {
        TestDb {
            kind: self.kind,
            url: self.url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            dir: None,
            schema: None,
        }
    }

    pub async fn cleanup(&self) {
        if let Some(schema) = &self.schema
            && let Ok(mut conn) =
                <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A fixed master key for PostgreSQL tests (SQLite tests let the server generate its own).
pub const TEST_MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Settings as the binary would parse them from `args` (after `serve`).
pub fn settings(db: &TestDb, extra: &[&str]) -> switchyard::Settings {
    let mut args: Vec<String> = vec!["switchyard".into(), "serve".into()];
    args.extend(["--database-url".into(), db.url.clone()]);
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    // A default given in `extra` is left to `extra` (clap refuses a flag given twice): a test
    // starts a guarded server with `--allow-private-targets=false`, or its own `--retry-schedule`.
    let overridden = |flag: &str| {
        extra
            .iter()
            .any(|e| *e == flag || e.starts_with(&format!("{flag}=")))
    };
    if !overridden("--allow-private-targets") {
        args.extend(["--allow-private-targets".into()]);
    }
    // Short timings so retries, recovery and sweeps happen within a test's patience.
    for (flag, value) in [
        ("--retry-schedule", "100ms,100ms,100ms"),
        ("--sweep-interval", "100ms"),
        ("--redispatch-after", "2s"),
        ("--lease", "3s"),
        ("--shutdown-grace", "2s"),
    ] {
        if !overridden(flag) {
            args.extend([flag.into(), value.into()]);
        }
    }
    if db.kind == Db::Postgres {
        args.extend(["--master-key".into(), TEST_MASTER_KEY.into()]);
        args.extend(["--redis-url".into(), redis_url()]);
        args.extend(["--redis-prefix".into(), db.redis_prefix.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.settings,
        Err(e) => panic!("bad test settings: {e}"),
    }
}

/// How long tests wait for work the engine does in the background (matching, steps).
pub const WAIT: Duration = Duration::from_secs(20);

/// A running server plus a client for it.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(kind: Db) -> TestServer {
        Self::start_with(kind, &[]).await
    }

    pub async fn start_with(kind: Db, extra: &[&str]) -> TestServer {
        let db = match TestDb::new(kind).await {
            Ok(db) => db,
            Err(e) => panic!("test database: {e:#}"),
        };
        Self::start_on(db, extra).await
    }

    /// A server on an existing database: after [`TestServer::stop_keep_db`] (a restart), or on
    /// [`TestDb::share`] beside a running one (several `serve` processes).
    pub async fn start_on(db: TestDb, extra: &[&str]) -> TestServer {
        let settings = settings(&db, extra);
        let app = match App::build(settings).await {
            Ok(app) => app,
            Err(e) => panic!("server did not build: {e:#}"),
        };
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let roles = Roles {
            api: true,
            workers: true,
            scheduler: true,
        };
        let task = tokio::spawn(app.serve(Some(listener), roles, async move {
            let _ = stopped.await;
        }));
        TestServer {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            db,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` with the tenant's key.
    pub async fn get(&self, key: &str, path: &str) -> Reply {
        send(self.http.get(self.url(path)).bearer_auth(key)).await
    }

    /// `POST path` with a JSON body and the tenant's key.
    pub async fn post(&self, key: &str, path: &str, body: &Value) -> Reply {
        send(self.http.post(self.url(path)).bearer_auth(key).json(body)).await
    }

    /// `PUT path` with a JSON body and the tenant's key.
    pub async fn put(&self, key: &str, path: &str, body: &Value) -> Reply {
        send(self.http.put(self.url(path)).bearer_auth(key).json(body)).await
    }

    /// The id of the first execution the event (by `eventId`) started, once it was matched.
    pub async fn execution_of(&self, key: &str, event_id: &str) -> String {
        let path = format!("/api/events/{event_id}");
        let event = eventually(self, key, &path, WAIT, |e| e["state"] == "processed").await;
        event["executions"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no execution: {event}"))
            .to_owned()
    }

    /// The execution, once it reached `status`.
    pub async fn execution_in(&self, key: &str, id: &str, status: &str) -> Value {
        let path = format!("/api/executions/{id}");
        eventually(self, key, &path, WAIT, |e| e["status"] == status).await
    }

    /// Creates a tenant the way `switchyard tenant create` does; returns (tenant id, API key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let settings = settings(&self.db, &[]);
        let answer = switchyard::cli::tenant(
            &settings,
            switchyard::config::TenantCommand::Create {
                name: name.to_owned(),
            },
        )
        .await
        .expect("tenant create");
        (
            answer["tenantId"].as_str().expect("tenantId").to_owned(),
            answer["apiKey"].as_str().expect("apiKey").to_owned(),
        )
    }

    pub async fn stop(mut self) {
        self.halt().await;
        self.db.cleanup().await;
    }

    /// Stops the server and hands back its database, for a server started later on it.
    pub async fn stop_keep_db(mut self) -> TestDb {
        self.halt().await;
        self.db
    }

    async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(20), task).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("server did not stop cleanly: {other:?}"),
            }
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the error envelope with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {:?}", self.body);
        assert_eq!(self.body["success"], false, "{:?}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{:?}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error message missing: {:?}",
            self.body
        );
    }

    #[track_caller]
    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.body["success"], true, "{:?}", self.body);
        &self.body["data"]
    }
}

/// Sends a request and reads the reply; JSON bodies are parsed, anything else kept as a string.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

/// Runs an async test body once per database backend, each on a fresh database.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident => $body:ident;)*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$body($crate::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$body($crate::Db::Postgres).await;
                }
            )*
        }
    };
}

/// Polls `GET path` until `check` accepts the data, or panics after `timeout`.
pub async fn eventually(
    server: &TestServer,
    key: &str,
    path: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let reply = send(server.http.get(server.url(path)).bearer_auth(key)).await;
        if reply.status == 200 && check(&reply.body["data"]) {
            return reply.body["data"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} did not reach the expected state in {timeout:?}: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `switchyard` binary built for these tests (the test command builds it first).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("switchyard");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p switchyard` first (the test script does)",
        bin.display()
    );
    bin
}
