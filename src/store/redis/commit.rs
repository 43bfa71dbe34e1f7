//! The commits of steps in flight together, sent as one call of the commit script (`COMMIT`).
//!
//! Every step ends with a commit, and each was a call of its own: under load most of the
//! shared store's work — Redis's and ours — went to calling the script, not to what it checks
//! and writes. One task (`Committer::start`) sends the commits waiting, all of them, as one
//! call, and the next batch once that call is answered: alone, a commit goes at once, as
//! before; under load the batches grow with it, as a database's group commit does. The script
//! runs the commits in the order they came, each as it would alone — its guards, then its
//! writes, or nothing — so a batch changes what is written no more than the same calls sent
//! one after another; one whose guard fails is answered so and decided again by its step, and
//! one that meets an error (a key of the wrong type) is answered that error, the others going on.

use redis::aio::ConnectionLike;
use redis::{
    Arg, Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind, Value,
};
use tokio::sync::{mpsc, oneshot};

use super::pool::Connection;

/// Most commits one call carries: a batch is one reply's worth of work for Redis, which answers
/// nothing else meanwhile.
const MOST_AT_ONCE: usize = 64;

/// One step's commit: its arguments (see `COMMIT`), the connection it was read on, and where
/// its answer goes (whether its guards held).
struct Waiting {
    args: Cmd,
    connection: Connection,
    answer: oneshot::Sender<RedisResult<bool>>,
}

/// The handle steps commit through; the task ends when the store that holds it is dropped.
pub(super) struct Committer {
    waiting: mpsc::UnboundedSender<Waiting>,
}

impl Committer {
    /// Starts the task that sends the batches (on the runtime this is called on).
    pub fn start(script: Script) -> Committer {
        let (waiting, queue) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(script, queue));
        Committer { waiting }
    }

    /// Commits one step (`args`: the guards and the writes, as `COMMIT` takes one commit) on
    /// `connection`: whether its guards held and its writes were made. An error is the call's:
    /// the commit may or may not have been made (its step, run again, finds out).
    pub async fn commit(&self, connection: Connection, args: Cmd) -> RedisResult<bool> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            args,
            connection,
            answer,
        };
        if self.waiting.send(waiting).is_err() {
            return Err(gone());
        }
        answered.await.unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> RedisError {
    RedisError::from(std::io::Error::other("the committer stopped"))
}

async fn send_batches(script: Script, mut queue: mpsc::UnboundedReceiver<Waiting>) {
    let mut batch = Vec::with_capacity(MOST_AT_ONCE);
    while queue.recv_many(&mut batch, MOST_AT_ONCE).await > 0 {
        // `EVALSHA` written here, not by `Script::invoke_async`, which copies each argument
        // twice, once into an allocation of its own.
        let mut call = redis::cmd("EVALSHA");
        call.arg(script.get_hash()).arg(0).arg(batch.len());
        for waiting in &batch {
            let args = waiting.args.args_iter();
            call.arg(args.len());
            for arg in args {
                if let Arg::Simple(arg) = arg {
                    call.arg(arg);
                }
            }
        }
        // The connection the latest step took: after a reconnection, the pool's current one.
        let mut connection = batch[batch.len() - 1].connection.clone();
        let mut answers = call_script(&mut connection, &call).await;
        if let Err(error) = &answers {
            if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) {
                // Redis restarted, or its scripts were flushed: load it and call again.
                answers = match script.load_async(&mut connection).await {
                    Ok(_) => call_script(&mut connection, &call).await,
                    Err(error) => Err(error),
                };
            }
        }
        match answers {
            Ok(answers) if answers.len() == batch.len() => {
                for (waiting, answer) in batch.drain(..).zip(answers) {
                    let held = answer
                        .extract_error()
                        .and_then(|answer| Ok(bool::from_redis_value(answer)?));
                    let _ = waiting.answer.send(held);
                }
            }
            answers => {
                let error = answers.err().unwrap_or_else(|| {
                    RedisError::from(std::io::Error::other(
                        "the commit script answered for another number of commits",
                    ))
                });
                for waiting in batch.drain(..) {
                    let _ = waiting.answer.send(Err(error.clone()));
                }
            }
        }
    }
}

/// The script's answers, one a commit (each 1, 0 or the error that commit met), or the error
/// of the call.
async fn call_script(connection: &mut Connection, call: &Cmd) -> RedisResult<Vec<Value>> {
    match connection.req_packed_command(call).await? {
        Value::Array(answers) => Ok(answers),
        other => Err(other.extract_error().err().unwrap_or_else(|| {
            RedisError::from(std::io::Error::other("the commit script answered no list"))
        })),
    }
}
