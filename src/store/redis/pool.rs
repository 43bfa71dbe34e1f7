//! Connections to Redis, one per caller in flight, and the retry that keeps a command from
//! being lost while Redis is unreachable.
//!
//! The calls are asynchronous: a partition waiting on Redis holds no runtime thread, so the
//! other partitions' calls go out meanwhile. Each caller has a connection to itself while it
//! runs (a step WATCHes keys, and WATCH belongs to a connection); the connections are kept for
//! the next caller.
//!
//! A failed call is repeated until it succeeds: the caller (a partition, the sweep) waits rather
//! than skip a command. Repeating is safe even when the failure hid a success (the reply was
//! lost): a command's step records its offset, so the repeat finds it applied; a sweep's step
//! finds the drop gone.

use std::future::Future;
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

/// A connection used by one caller at a time (its handle is cheap to clone: the clone a call
/// is given is the same connection).
pub type Connection = MultiplexedConnection;

pub struct Pool {
    client: Client,
    config: AsyncConnectionConfig,
    idle: Mutex<Vec<Connection>>,
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
            idle: Mutex::default(),
        })
    }

    async fn take(&self) -> RedisResult<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => {
                (self.client)
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
            }
        }
    }

    fn keep(&self, connection: Connection) {
        (self.idle.lock().unwrap_or_else(PoisonError::into_inner)).push(connection);
    }

    /// Runs `call` on a connection of its own until it succeeds. A connection that failed is
    /// dropped: it may hold a WATCH or half a reply.
    pub async fn run<T, Call>(&self, what: &str, mut call: impl FnMut(Connection) -> Call) -> T
    where
        Call: Future<Output = RedisResult<T>>,
    {
        let mut pause = FIRST_PAUSE;
        loop {
            let outcome = match self.take().await {
                Ok(connection) => call(connection.clone())
                    .await
                    .map(|value| (value, connection)),
                Err(error) => Err(error),
            };
            match outcome {
                Ok((value, connection)) => {
                    self.keep(connection);
                    return value;
                }
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
        let mut connection = self.take().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        self.keep(connection);
        Ok(())
    }
}
