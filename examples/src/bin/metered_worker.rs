//! `metered_worker`: `switchyard worker` (CONTRACT §2: same flags and environment) whose jobs
//! pass through the integrator's own tower layer, `JobMeterLayer` (`src/metered.rs`). It runs
//! beside `switchyard serve --no-worker` or `custom_server serve --no-worker` on the same database
//! (and Redis, if any) and, when it stops, prints what it ran per tenant and kind, one JSON line
//! each:
//!
//! ```sh
//! metered_worker worker --database-url sqlite://switchyard.db
//! ```

use clap::Parser;
use serde_json::json;
use switchyard::{Cli, Command, server};
use switchyard_examples::metered::{JobMeter, run_worker};

fn main() -> anyhow::Result<()> {
    let args = Cli::parse();
    switchyard::telemetry::init_logging(args.settings.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Cli) -> anyhow::Result<()> {
    let Command::Worker = args.command else {
        anyhow::bail!("metered_worker only runs `worker`; use `switchyard` for the rest");
    };
    let settings = args.settings;
    let (concurrency, grace) = (settings.concurrency, settings.shutdown_grace);
    // The same registry as the example's server, so `slack_message` steps run here too.
    let app = switchyard_examples::build_app(settings).await?;
    let executor = app.state.executor.clone();
    let meter = JobMeter::new();
    run_worker(
        executor,
        concurrency,
        grace,
        meter.clone(),
        server::shutdown_signal(),
    )
    .await?;
    for ((tenant, kind), stats) in meter.snapshot() {
        let line = json!({"tenantId": tenant, "kind": kind, "runs": stats.runs,
                          "busyMs": u64::try_from(stats.busy.as_millis()).unwrap_or(u64::MAX)});
        println!("{line}");
    }
    app.state.store.close().await;
    Ok(())
}
