//! The `switchyard` binary: parses settings (flags and environment) and runs one subcommand.

use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{Command, VapidCommand};
use switchyard::{App, Cli, Roles, cli, server, telemetry};

/// mimalloc instead of glibc's malloc: under load both processes spent about a quarter of their
/// CPU in glibc's allocator (its consolidation and free lists across tokio's threads);
/// docs/benchmarks.md has the profile and the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Cli::parse();
    telemetry::init_logging(args.settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Cli) -> anyhow::Result<()> {
    let settings = args.settings;
    let answer = match args.command {
        Command::Serve {
            no_worker,
            no_bootstrap,
        } => {
            let roles = Roles {
                api: true,
                workers: !no_worker,
                scheduler: true,
            };
            return serve(settings, roles, !no_bootstrap).await;
        }
        Command::Worker => {
            let roles = Roles {
                api: false,
                workers: true,
                scheduler: false,
            };
            return serve(settings, roles, false).await;
        }
        Command::Migrate => cli::migrate(&settings).await?,
        Command::Tenant { command } => cli::tenant(&settings, command).await?,
        Command::Key { command } => cli::key(&settings, command).await?,
        Command::RotateMasterKey { new_key } => cli::rotate_master_key(&settings, &new_key).await?,
        Command::Vapid {
            command: VapidCommand::Generate,
        } => {
            let keys = switchyard_actions::vapid::generate_keypair();
            serde_json::json!({"privateKey": keys.private_key, "publicKey": keys.public_key})
        }
    };
    println!("{answer}");
    Ok(())
}

async fn serve(
    settings: switchyard::Settings,
    roles: Roles,
    bootstrap: bool,
) -> anyhow::Result<()> {
    let listen = settings.listen;
    // Before anything can announce readiness: SIGTERM/SIGINT from here on stop gracefully.
    let shutdown = server::shutdown_signal();
    let app = App::build(settings).await?;
    let listener = if roles.api {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        // Created after the bind (a failed bind must not swallow the only copy of a key) and
        // printed after the ready line, which stays the first line.
        let first_key = if bootstrap {
            first_run_tenant(&app.state.store).await?
        } else {
            None
        };
        println!("switchyard listening on http://{addr}");
        if let Some(key) = first_key {
            print_first_run(&key, addr);
        }
        Some(listener)
    } else {
        tracing::info!("worker started");
        None
    };
    app.serve(listener, roles, shutdown).await
}

/// The first run's tenant: `default`, created only on a database without any tenant. The store
/// checks and inserts under one lock, so of several processes starting at once only one creates
/// it; the quick count first keeps every later start from taking that lock.
async fn first_run_tenant(
    store: &switchyard::store::Store,
) -> anyhow::Result<Option<switchyard::store::NewApiKey>> {
    if store.tenant_count().await? > 0 {
        return Ok(None);
    }
    Ok(store.create_first_tenant("default").await?)
}

/// The key goes to stdout only (never to the log), once.
fn print_first_run(key: &switchyard::store::NewApiKey, addr: std::net::SocketAddr) {
    let mut shown = addr;
    if shown.ip().is_unspecified() {
        shown.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    println!(
        "first run: created the tenant `default` ({}); its API key is shown only this once:",
        key.tenant_id
    );
    println!("api key: {}", key.api_key);
    println!("dashboard: http://{shown}/ (sign in with that key)");
}
