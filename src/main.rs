use atlas_drops::config::Settings;
use atlas_drops::{startup, telemetry};

#[tokio::main]
async fn main() {
    let settings = Settings::load();
    telemetry::init(settings.log_level, settings.log_format);
    let code = match startup::run(settings).await {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!(%error, "atlas-drops failed");
            1
        }
    };
    // Exit here, not by unwinding: dropping the runtime and the Kafka clients could wait on a
    // broker that is gone, and shutdown already did everything it could within its deadline.
    std::process::exit(code);
}
