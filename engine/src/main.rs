//! The `switchyard` binary: parses settings (flags and environment) and runs one subcommand.

use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{Command, VapidCommand};
use switchyard::{App, Cli, Roles, cli, server, telemetry};

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
        Command::Serve { no_worker } => {
            let roles = Roles {
                api: true,
                workers: !no_worker,
                scheduler: true,
            };
            return serve(settings, roles).await;
        }
        Command::Worker => {
            let roles = Roles {
                api: false,
                workers: true,
                scheduler: false,
            };
            return serve(settings, roles).await;
        }
        Command::Migrate => cli::migrate(&settings).await?,
        Command::Tenant { command } => cli::tenant(&settings, command).await?,
        Command::Key { command } => cli::key(&settings, command).await?,
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

async fn serve(settings: switchyard::Settings, roles: Roles) -> anyhow::Result<()> {
    let listen = settings.listen;
    let app = App::build(settings).await?;
    let listener = if roles.api {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        println!("switchyard listening on http://{}", listener.local_addr()?);
        Some(listener)
    } else {
        tracing::info!("worker started");
        None
    };
    app.serve(listener, roles, server::shutdown_signal()).await
}
