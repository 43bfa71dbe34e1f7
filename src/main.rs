use std::process::ExitCode;

use atlas_drops::config::Settings;
use atlas_drops::{startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::load();
    telemetry::init(settings.log_level, settings.log_format);
    match startup::run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "atlas-drops failed");
            ExitCode::FAILURE
        }
    }
}
