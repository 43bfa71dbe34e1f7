//! The load generator, `atlas-drops-load` (a binary of this package), on a test's topics.

use std::process::Command;

use super::Names;

/// `atlas-drops-load` with nothing in its environment but the broker and the test's topics.
pub fn load_generator(bootstrap: &str, names: &Names) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_atlas-drops-load"));
    command
        .env_clear()
        .env("BOOTSTRAP_SERVERS", bootstrap)
        .env("COMMAND_TOPIC_DROP", &names.commands)
        .env("EVENT_TOPIC_DROP_STATUS", &names.events);
    command
}
