//! Logging (tracing, to stderr so stdout carries only the ready line and CLI answers), the
//! Prometheus recorder behind `/metrics`, and the background refresh of the execution gauges.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use switchyard_schemas::execution::ExecutionStatus;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests start several servers in one process) is not an error.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder; the `metrics` macros write to it wherever they are.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only when another recorder is installed, in which case ours stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// How often the execution gauges are refreshed (a Prometheus scrape interval is usually 15-60 s).
pub const EXECUTION_GAUGE_INTERVAL: Duration = Duration::from_secs(10);

/// The execution statuses shown as `switchyard_executions{status}`: the live ones. Terminal
/// executions only ever accumulate; counting them would scan the table.
const GAUGED_STATUSES: [ExecutionStatus; 4] = [
    ExecutionStatus::Queued,
    ExecutionStatus::Running,
    ExecutionStatus::Waiting,
    ExecutionStatus::Paused,
];

/// Sets `switchyard_executions{status}` from an index-only count of the non-terminal executions
/// every `interval` until `stop`, so `GET /metrics` (unauthenticated, callable at any rate) never
/// queries the database: its cost no longer depends on who calls it or how big the table is.
pub async fn refresh_execution_gauges(
    store: crate::store::Store,
    interval: Duration,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut stop = std::pin::pin!(stop);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = ticks.tick() => {}
        }
        match store.execution_counts().await {
            Ok(counts) => {
                for status in GAUGED_STATUSES {
                    let count = counts
                        .iter()
                        .find(|(s, _)| *s == status)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!("switchyard_executions", "status" => status.as_str())
                        .set(count as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count executions for /metrics"),
        }
    }
}
