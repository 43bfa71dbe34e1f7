use atlas_drops::cli::{self, Cli, Command};
use atlas_drops::config::Settings;
use atlas_drops::startup::{Failed, Service};
use atlas_drops::telemetry;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// glibc's allocator was a quarter of the service's time under load on the shared store (a
/// profile of the closed loop: `_int_malloc`, `free`, `malloc_consolidate`), measured in
/// README "The shared store's speed".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let Cli { settings, command } = Cli::parse();
    let settings = settings.with_environment();
    // Refused as a setting that does not parse is: clap's message, exit 2, nothing started.
    if let Err(conflict) = settings.check() {
        Cli::command()
            .error(ErrorKind::ArgumentConflict, conflict)
            .exit();
    }
    let code = match command {
        None | Some(Command::Serve) => match serve(settings).await {
            Ok(()) => 0,
            Err(error) => {
                tracing::error!(%error, "atlas-drops failed");
                1
            }
        },
        Some(tool) => match cli::run(tool, &settings).await {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("atlas-drops: {error}");
                1
            }
        },
    };
    // Exit here, not by unwinding: dropping the runtime and the Kafka clients could wait on a
    // broker that is gone, and shutdown already did everything it could within its deadline.
    std::process::exit(code);
}

/// The service, from start to stop: `Err` when it could not start, or not stop cleanly.
async fn serve(settings: Settings) -> Result<(), Failed> {
    telemetry::init(settings.log_level, settings.log_format);
    let service = Service::start(settings).await?;
    service.run_until_stopped().await.into_result()
}
