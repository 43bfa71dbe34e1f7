//! Connections to Redis, one per concurrent caller, and the retry that keeps a command from
//! being lost while Redis is unreachable.
//!
//! A failed call is repeated until it succeeds: the caller (a partition, the sweep) waits rather
//! than skip a command. Repeating is safe even when the failure hid a success (the reply was
//! lost): a command's step records its offset, so the repeat finds it applied; a sweep's step
//! finds the drop gone.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::io::tcp::TcpSettings;
use redis::{Client, Connection, IntoConnectionInfo, RedisResult};

/// First pause after a failure; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long connecting and each reply may take before the call counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Pool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
}

/// A client of the Redis at `url`. Without TCP_NODELAY, a command written after another whose
/// reply is pending waits for the delayed ACK: a step of several round trips then takes a
/// millisecond instead of a few dozen microseconds.
pub fn client(url: &str) -> Result<Client, String> {
    let info = url
        .into_connection_info()
        .map_err(|error| format!("REDIS_URL {url:?}: {error}"))?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    Client::open(info).map_err(|error| format!("REDIS_URL {url:?}: {error}"))
}

impl Pool {
    pub fn new(url: &str) -> Result<Pool, String> {
        let client = client(url)?;
        Ok(Pool {
            client,
            idle: Mutex::default(),
        })
    }

    fn connect(&self) -> RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    fn take(&self) -> RedisResult<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.map_or_else(|| self.connect(), Ok)
    }

    /// Runs `call` on a connection until it succeeds. A connection that failed is dropped: it
    /// may hold a WATCH or half a reply.
    pub fn run<T>(&self, what: &str, mut call: impl FnMut(&mut Connection) -> RedisResult<T>) -> T {
        let mut pause = FIRST_PAUSE;
        loop {
            match self
                .take()
                .and_then(|mut connection| call(&mut connection).map(|value| (value, connection)))
            {
                Ok((value, connection)) => {
                    let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                    idle.push(connection);
                    return value;
                }
                Err(error) => {
                    tracing::warn!(%error, what, retry_in_ms = pause.as_millis() as u64, "Redis call failed");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Checks once that Redis answers: start-up fails fast on a wrong URL.
    pub fn ping(&self) -> Result<(), String> {
        let mut connection = self.take().map_err(|error| format!("Redis: {error}"))?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(|error| format!("Redis: {error}"))?;
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
        Ok(())
    }
}
