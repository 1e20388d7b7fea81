//! Assembling a Switchyard process from its settings and running it until shutdown.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, bail};
use switchyard_actions::ActionRegistry;
use switchyard_actions::builtin::BuiltinSettings;
use switchyard_triggers::{ConditionEngine, ScriptLimits};
use tokio::net::TcpListener;

use crate::api::{self, AppState, TenantRateLimiter};
use crate::config::Settings;
use crate::executor::{Executor, ExecutorSettings};
use crate::queue::Dispatch;
use crate::queue::sqlite::SqliteDispatch;
use crate::secrets::{MasterKey, key_file_for_sqlite};
use crate::store::{Backend, Store};

/// Which parts of the process run; `serve` runs API + scheduler + workers, `serve --no-worker`
/// API + scheduler, `worker` workers only.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub workers: bool,
    pub scheduler: bool,
}

/// A built process: connected, migrated, keys loaded.
pub struct App {
    pub settings: Settings,
    pub state: AppState,
}

/// The built-in actions configured from the settings. Integrators build their own registry (this
/// one plus theirs) and pass it to [`App::build_with`].
pub fn builtin_actions(settings: &Settings) -> anyhow::Result<ActionRegistry> {
    switchyard_actions::builtin::registry(&BuiltinSettings {
        allow_private_targets: settings.allow_private_targets,
        smtp_url: settings.smtp_url.clone(),
        email_from: settings.email_from.clone(),
        vapid_private_key: settings.vapid_private_key.clone(),
        vapid_subject: settings.vapid_subject.clone(),
    })
    .context("configuring the built-in actions")
}

/// Connects to the database named by the settings and applies migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database_url, 16)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Loads the master key (CONTRACT §2) and checks it against the database.
pub async fn load_master_key(settings: &Settings, store: &Store) -> anyhow::Result<MasterKey> {
    let key = match (&settings.master_key, store.backend()) {
        (Some(text), _) => {
            MasterKey::from_base64(text).context("--master-key / SWITCHYARD_MASTER_KEY")?
        }
        (None, Backend::Postgres) => bail!(
            "a master key is required with PostgreSQL: set --master-key or SWITCHYARD_MASTER_KEY \
             (32 bytes, base64; e.g. `openssl rand -base64 32`)"
        ),
        (None, Backend::Sqlite) => match key_file_for_sqlite(&settings.database_url) {
            Some(path) => MasterKey::load_or_create(&path)?,
            None => MasterKey::from_base64(&MasterKey::generate_base64())?,
        },
    };
    store.check_master_key(&key).await?;
    // Secrets written before they were bound to their records are re-encrypted once, before
    // anything reads them (the engine reads only record-bound values).
    if let Some(done) = store
        .bind_secrets_to_records(&key)
        .await
        .context("binding stored secrets to their records")?
    {
        tracing::info!(
            integrations = done.integrations,
            workflow_secrets = done.workflow_secrets,
            "stored secrets re-encrypted, bound to their records"
        );
    }
    Ok(key)
}

impl App {
    /// Builds a process with the built-in actions.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let actions = builtin_actions(&settings)?;
        Self::build_with(settings, actions).await
    }

    /// Builds a process with the given action registry (built-ins plus an integrator's own).
    pub async fn build_with(settings: Settings, actions: ActionRegistry) -> anyhow::Result<App> {
        let store = open_store(&settings).await?;
        let master_key = load_master_key(&settings, &store).await?;
        let dispatch = open_dispatch(&settings, &store).await?;
        let actions = Arc::new(actions);
        let conditions = Arc::new(ConditionEngine::new(ScriptLimits::default()));
        let executor = Arc::new(Executor::new(
            store.clone(),
            dispatch,
            actions.clone(),
            conditions.clone(),
            master_key.clone(),
            ExecutorSettings {
                lease: settings.lease,
                retry_schedule: settings.retry_schedule.0.clone(),
                sweep_interval: settings.sweep_interval,
                redispatch_after: settings.redispatch_after,
                matching: crate::executor::matching::MatchLimits {
                    budget: settings.match_budget,
                    max_chain_executions: settings.max_chain_executions,
                },
                template_limits: switchyard_actions::template::TemplateLimits {
                    max_rendered_bytes: settings.max_rendered_bytes,
                },
                ..ExecutorSettings::default()
            },
        ));
        let state = AppState {
            keys: crate::api::key_lookup(store.clone()),
            unknown: Arc::new(crate::api::extract::NegativeCache::new(
                crate::api::NEGATIVE_CACHE_TTL,
                crate::api::NEGATIVE_CACHE_CAPACITY,
            )),
            unknown_integrations: Arc::new(crate::api::extract::NegativeCache::new(
                crate::api::NEGATIVE_CACHE_TTL,
                crate::api::NEGATIVE_CACHE_CAPACITY,
            )),
            store,
            actions,
            conditions,
            master_key,
            limiter: Arc::new(TenantRateLimiter::new(settings.rate_limit)),
            metrics: crate::telemetry::metrics_handle(),
            executor,
            settings: Arc::new(settings.clone()),
        };
        Ok(App { settings, state })
    }

    /// Runs the roles asked for until `shutdown` resolves: the API on `listener` (drained on
    /// shutdown), the worker pool (running steps finish or are handed back) and the scheduler.
    pub async fn serve(
        self,
        listener: Option<TcpListener>,
        roles: Roles,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(listener) = listener.filter(|_| roles.api) {
            let router = api::router(self.state.clone());
            let signal = stopped();
            let header_timeout = self.settings.header_timeout;
            tasks.spawn(async move { serve_http(listener, router, header_timeout, signal).await });
            let store = self.state.store.clone();
            let signal = stopped();
            tasks.spawn(async move {
                crate::telemetry::refresh_execution_gauges(
                    store,
                    crate::telemetry::EXECUTION_GAUGE_INTERVAL,
                    signal,
                )
                .await
            });
        }
        if roles.workers {
            let executor = self.state.executor.clone();
            let concurrency = self.settings.concurrency;
            let grace = self.settings.shutdown_grace;
            let signal = stopped();
            tasks.spawn(async move {
                crate::executor::worker::run(executor, concurrency, grace, signal).await
            });
        }
        if roles.scheduler {
            let executor = &self.state.executor;
            let scheduler = crate::scheduler::Scheduler::new(
                executor.store.clone(),
                executor.dispatch.clone(),
                executor.worker_id.clone(),
            );
            let interval = self.settings.scheduler_interval;
            let signal = stopped();
            tasks.spawn(async move { scheduler.run(interval, signal).await });
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(anyhow::anyhow!("a task of the server failed: {e}")),
            }
        }
        self.state.store.close().await;
        result
    }
}

/// Accepts HTTP/1.1 connections on `listener` until `shutdown`, then lets the open ones finish
/// their requests. Not `axum::serve`: it has no header-read timeout, so a client that sends its
/// headers a byte at a time could hold a connection (and its task) for ever. Here a connection
/// that has not sent a request's headers within `header_timeout` is closed, idle keep-alive
/// connections included; the whole-request limit (`--request-timeout`) is a layer of the router.
async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    // HTTP/1.1 only: the header timeout is an HTTP/1 notion, and sniffing for the HTTP/2 preface
    // (what `axum::serve` does) would itself wait for bytes without a deadline.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (socket, _peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin, keep serving.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(socket), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or times out is not the server's error.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The dispatcher the settings ask for: Redis when `--redis-url` is set, else the SQLite file.
pub async fn open_dispatch(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<Arc<dyn Dispatch>> {
    match (&settings.redis_url, store.backend()) {
        (Some(url), _) => {
            let dispatch = crate::queue::redis::RedisDispatch::connect(
                url,
                &settings.redis_prefix,
                crate::queue::redis::RedisOptions::default(),
            )
            .await
            .context("connecting to Redis")?;
            Ok(Arc::new(dispatch))
        }
        (None, Backend::Sqlite) => Ok(Arc::new(SqliteDispatch::new(store.clone()))),
        (None, Backend::Postgres) => bail!(
            "PostgreSQL needs Redis to dispatch jobs: set --redis-url / REDIS_URL \
             (the database-backed queue is for the embedded SQLite default only)"
        ),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed here, before the future is first polled: a SIGTERM that arrives
    // between the ready line and the first poll must still mean a graceful stop, not the default
    // action (exit without cleanup).
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(terminate) => {},
                () = wait(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
