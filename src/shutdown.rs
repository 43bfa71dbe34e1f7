//! The shutdown signal every long-running task listens for.
//!
//! `startup::Service` waits for SIGTERM or SIGINT, then pulls the trigger; each task finishes its
//! current step, and the service then expires the drops, waits for the broker and commits, a
//! stage at a time (see `Service::stop`).

use tokio::sync::watch;

/// Pulled once, by `startup::Service`, when the process is asked to stop.
pub struct Trigger(watch::Sender<bool>);

/// A listener for the trigger; clone one per task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger(sender), Shutdown(receiver))
}

impl Trigger {
    pub fn pull(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Whether shutdown began (or the trigger is gone, so it never can be told).
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown began (at once if it already has, or if the trigger is gone).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|&stopping| stopping).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
}
