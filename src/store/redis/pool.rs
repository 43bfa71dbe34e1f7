//! The connection to Redis, shared by every caller, and the retry that keeps a command from
//! being lost while Redis is unreachable.
//!
//! The calls are asynchronous: a partition waiting on Redis holds no runtime thread, so the
//! other partitions' calls go out meanwhile. They all go out on one multiplexed connection: no
//! step holds state on a connection (a step's commit is one script that checks what it read,
//! not a WATCH, see `store::redis`), and requests in flight together are written and answered
//! in batches — one connection's task, a few system calls, where a connection per caller cost a
//! task, a socket and its wake-ups each (measured: half the service's time was in the kernel).
//!
//! A failed call is repeated until it succeeds: the caller (a partition, the sweep) waits rather
//! than skip a command. Repeating is safe even when the failure hid a success (the reply was
//! lost): a command's step records its offset, so the repeat finds it applied; a sweep's step
//! finds the drop gone.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, RedisResult};

/// Why the shared store cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("REDIS_URL {url:?}: {source}")]
    Url { url: String, source: RedisError },
    #[error("Redis: {0}")]
    Redis(#[from] RedisError),
}

/// First pause after a failure; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long connecting and each reply may take before the call counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared connection (its handle is cheap to clone: every clone is the same connection).
pub type Connection = MultiplexedConnection;

pub struct Pool {
    client: Client,
    config: AsyncConnectionConfig,
    /// The connection in use, with its number (none until first used, or after it failed).
    shared: Mutex<Option<(u64, Connection)>>,
    connected: AtomicU64,
}

/// A client of the Redis at `url`. Without TCP_NODELAY, a command written after another whose
/// reply is pending waits for the delayed ACK: a step of several round trips then takes a
/// millisecond instead of a few dozen microseconds.
pub fn client(url: &str) -> Result<Client, StoreError> {
    let bad_url = |source| StoreError::Url {
        url: url.to_owned(),
        source,
    };
    let info = (url.into_connection_info())
        .map_err(bad_url)?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    Client::open(info).map_err(bad_url)
}

impl Pool {
    pub fn new(url: &str) -> Result<Pool, StoreError> {
        Ok(Pool {
            client: client(url)?,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(IO_TIMEOUT))
                .set_response_timeout(Some(IO_TIMEOUT)),
            shared: Mutex::default(),
            connected: AtomicU64::new(0),
        })
    }

    /// The shared connection, connecting first if there is none.
    async fn take(&self) -> RedisResult<(u64, Connection)> {
        if let Some(shared) = self.lock().clone() {
            return Ok(shared);
        }
        let connection = (self.client)
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let number = self.connected.fetch_add(1, Ordering::Relaxed);
        // Callers that connected at the same time each use their own once; the last one stays.
        *self.lock() = Some((number, connection.clone()));
        Ok((number, connection))
    }

    /// Forgets connection `number` after it failed (unless another replaced it already): the
    /// next call connects afresh rather than wait on a socket that may be dead.
    fn forget(&self, number: u64) {
        let mut shared = self.lock();
        if shared.as_ref().is_some_and(|(kept, _)| *kept == number) {
            *shared = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Connection)>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `call` on the shared connection until it succeeds.
    pub async fn run<T, Call>(&self, what: &str, mut call: impl FnMut(Connection) -> Call) -> T
    where
        Call: Future<Output = RedisResult<T>>,
    {
        let mut pause = FIRST_PAUSE;
        loop {
            let outcome = match self.take().await {
                Ok((number, connection)) => {
                    call(connection).await.inspect_err(|_| self.forget(number))
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(value) => return value,
                Err(error) => {
                    tracing::warn!(%error, what, retry_in_ms = pause.as_millis() as u64, "Redis call failed");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Checks once that Redis answers: start-up fails fast on a wrong URL, and readiness
    /// answers rather than waits for Redis.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (number, mut connection) = self.take().await?;
        let pong = redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await;
        pong.inspect_err(|_| self.forget(number))?;
        Ok(())
    }
}
