//! `custom_server`: the `switchyard` server with one more action type, `slack_message`. It takes
//! the same flags and environment as `switchyard` (CONTRACT §2):
//!
//! ```sh
//! custom_server tenant create --name Acme          # prints {"tenantId", "apiKey"}
//! custom_server serve --listen 127.0.0.1:8080      # then configure workflows with slack_message
//! ```
//!
//! Every process that runs steps (`serve`, `worker`) must be built with the same registry, or it
//! fails `slack_message` steps as "not registered in this worker".

use clap::Parser;
use switchyard::{Cli, Command, Roles, cli, server};

fn main() -> anyhow::Result<()> {
    let args = Cli::parse();
    switchyard::telemetry::init_logging(args.settings.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Cli) -> anyhow::Result<()> {
    let settings = args.settings;
    let (roles, answer) = match args.command {
        Command::Serve { no_worker, .. } => (
            Roles {
                api: true,
                workers: !no_worker,
                scheduler: true,
            },
            None,
        ),
        Command::Worker => (
            Roles {
                api: false,
                workers: true,
                scheduler: false,
            },
            None,
        ),
        // The administrative commands need no actions: the engine's own do.
        Command::Migrate => (NO_ROLES, Some(cli::migrate(&settings).await?)),
        Command::Tenant { command } => (NO_ROLES, Some(cli::tenant(&settings, command).await?)),
        Command::Key { command } => (NO_ROLES, Some(cli::key(&settings, command).await?)),
        _ => anyhow::bail!("use the `switchyard` binary for this command"),
    };
    if let Some(answer) = answer {
        println!("{answer}");
        return Ok(());
    }

    let listen = settings.listen;
    let app = switchyard_examples::build_app(settings).await?;
    let listener = if roles.api {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        println!("switchyard listening on http://{}", listener.local_addr()?);
        Some(listener)
    } else {
        None
    };
    app.serve(listener, roles, server::shutdown_signal()).await
}

const NO_ROLES: Roles = Roles {
    api: false,
    workers: false,
    scheduler: false,
};
