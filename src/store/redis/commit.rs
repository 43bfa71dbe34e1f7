//! The commits of steps in flight together, sent as one call of the commit script (`COMMIT`).
//!
//! Every step ends with a commit, and each was a call of its own: under load most of the
//! shared store's work — Redis's and ours — went to calling the script, not to what it checks
//! and writes. While fewer than `MOST_IN_FLIGHT` calls are out, a step sends its commit itself,
//! at once, as before; past that, its commit waits for one task (`Committer::start`), which
//! sends the commits waiting, up to `MOST_AT_ONCE`, as one call, with up to `MOST_IN_FLIGHT`
//! calls of its own out: under load the batches grow with it, as a database's group commit
//! does. (A task alone halved the store's transitions a second with eight steps in flight: each
//! commit waited for two task hops and for the call before it.) The script runs the commits in
//! the order they came, each as it would alone — its guards, then its writes, or nothing — so a
//! batch changes what is written no more than the same calls sent one after another; one whose
//! guard fails is answered so and decided again by its step, and one that meets an error (a key
//! of the wrong type) is answered that error, the others going on.
//!
//! A step writes its commit's arguments once, as it decides them (`CommitArgs`): its writes went
//! first into a `Pipeline` of commands, then were copied out of it, an allocation and a copy
//! per argument more.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::ConnectionLike;
use redis::{
    Arg, Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind,
    ToRedisArgs, Value,
};
use tokio::sync::{mpsc, oneshot};

use super::pool::Connection;
use super::Guard;

/// Most commits one call carries: a batch is one reply's worth of work for Redis, which answers
/// nothing else meanwhile.
const MOST_AT_ONCE: usize = 64;
/// Most calls in flight at once: below it a commit goes alone, at once; past it, the commits
/// waiting make the task's next batch (the task has as many calls of its own out at most).
const MOST_IN_FLIGHT: usize = 4;

/// Room made for one commit's arguments, and their bytes, at once: a reservation's are 37
/// arguments, some 1 500 bytes (two guards, five writes, its record twice and its event).
const USUAL_ARGS: usize = 48;
const USUAL_BYTES: usize = 2048;

/// One step's commit as `COMMIT` takes it, written as the step builds it: its guards' number,
/// its guards, then each write as its number of arguments and the command.
pub(super) struct CommitArgs(Cmd);

impl CommitArgs {
    /// A commit of what `guards` checks, and no write yet.
    pub fn new(guards: &[Guard]) -> CommitArgs {
        let mut args = Cmd::with_capacity(USUAL_ARGS, USUAL_BYTES);
        args.arg(guards.len());
        for guard in guards {
            guard.add_to(&mut args);
        }
        CommitArgs(args)
    }

    /// Starts a write of `count` arguments, the command's name included.
    fn write(&mut self, count: usize) -> &mut Cmd {
        self.0.arg(count)
    }

    pub fn hset(&mut self, key: &str, field: impl ToRedisArgs, value: impl ToRedisArgs) {
        self.write(4).arg("HSET").arg(key).arg(field).arg(value);
    }

    pub fn hdel(&mut self, key: &str, field: impl ToRedisArgs) {
        self.write(3).arg("HDEL").arg(key).arg(field);
    }

    pub fn zadd(&mut self, key: &str, member: impl ToRedisArgs, score: impl ToRedisArgs) {
        self.write(4).arg("ZADD").arg(key).arg(score).arg(member);
    }

    /// Sets the member's score unless it has a lower one.
    pub fn zadd_lower(&mut self, key: &str, member: impl ToRedisArgs, score: impl ToRedisArgs) {
        (self.write(5).arg("ZADD").arg(key).arg("LT"))
            .arg(score)
            .arg(member);
    }

    pub fn zrem(&mut self, key: &str, member: impl ToRedisArgs) {
        self.write(3).arg("ZREM").arg(key).arg(member);
    }

    /// Removes the members scored below `score`.
    pub fn zrem_below(&mut self, key: &str, score: i64) {
        (self.write(4).arg("ZREMRANGEBYSCORE").arg(key))
            .arg("-inf")
            .arg(format!("({score}"));
    }

    pub fn incr_by(&mut self, key: &str, by: i64) {
        self.write(3).arg("INCRBY").arg(key).arg(by);
    }

    pub fn del(&mut self, key: &str) {
        self.write(2).arg("DEL").arg(key);
    }

    /// Appends an entry of one field to a stream.
    pub fn xadd(&mut self, stream: &str, field: &str, value: impl ToRedisArgs) {
        (self.write(5).arg("XADD").arg(stream).arg("*"))
            .arg(field)
            .arg(value);
    }

    /// Gives an Atlas id back (`atlas-release` of `COMMIT`, see `Ids::release`).
    pub fn atlas_release(&mut self, counter: &str, free_list: &str, id: u32, threshold: u32) {
        (self.write(5).arg("atlas-release").arg(counter))
            .arg(free_list)
            .arg(id)
            .arg(threshold);
    }
}

/// One step's commit: its arguments, the connection it was read on, and where its answer goes
/// (whether its guards held).
struct Waiting {
    args: Cmd,
    connection: Connection,
    answer: oneshot::Sender<RedisResult<bool>>,
}

/// The handle steps commit through; the task ends when the store that holds it is dropped.
pub(super) struct Committer {
    waiting: mpsc::UnboundedSender<Waiting>,
    script: Arc<Script>,
    /// Calls unanswered, a step's own or the task's.
    in_flight: Arc<AtomicUsize>,
}

impl Committer {
    /// Starts the task that sends the batches (on the runtime this is called on).
    pub fn start(script: Script) -> Committer {
        let (waiting, queue) = mpsc::unbounded_channel();
        let (script, in_flight) = (Arc::new(script), Arc::new(AtomicUsize::new(0)));
        tokio::spawn(send_batches(script.clone(), in_flight.clone(), queue));
        Committer {
            waiting,
            script,
            in_flight,
        }
    }

    /// Commits one step on `connection`: whether its guards held and its writes were made. An
    /// error is the call's: the commit may or may not have been made (its step, run again,
    /// finds out).
    pub async fn commit(&self, connection: Connection, args: CommitArgs) -> RedisResult<bool> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            args: args.0,
            connection,
            answer,
        };
        // With few calls out, a commit goes at once, as a call of its own: one task hop fewer
        // each way, which is what a step waits for when few are in flight.
        if let Some(_counted) = Counted::below(&self.in_flight, MOST_IN_FLIGHT) {
            send(&self.script, vec![waiting]).await;
        } else if self.waiting.send(waiting).is_err() {
            return Err(gone());
        }
        answered.await.unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> RedisError {
    RedisError::from(std::io::Error::other("the committer stopped"))
}

/// A call counted in flight for as long as it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count.clone())
    }

    /// Counted, if fewer than `most` calls were out.
    fn below(count: &Arc<AtomicUsize>, most: usize) -> Option<Counted> {
        let counted = Counted::new(count);
        (count.load(Ordering::Relaxed) <= most).then_some(counted)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn send_batches(
    script: Arc<Script>,
    calls: Arc<AtomicUsize>,
    mut queue: mpsc::UnboundedReceiver<Waiting>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            // Answers first: a batch is taken only when a call may go out.
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            batch = next_batch(&mut queue), if open && in_flight.len() < MOST_IN_FLIGHT => {
                match batch {
                    Some(batch) => {
                        let counted = Counted::new(&calls);
                        in_flight.push(async { send(&script, batch).await; drop(counted) })
                    }
                    None => open = false,
                }
            }
            else => break,
        }
    }
}

/// The commits waiting, as many as one call carries (`None`: the store is gone).
async fn next_batch(queue: &mut mpsc::UnboundedReceiver<Waiting>) -> Option<Vec<Waiting>> {
    let mut batch = Vec::with_capacity(MOST_AT_ONCE);
    (queue.recv_many(&mut batch, MOST_AT_ONCE).await > 0).then_some(batch)
}

/// Sends one batch as one call, and each commit's answer to its step.
async fn send(script: &Script, batch: Vec<Waiting>) {
    // `EVALSHA` written here, not by `Script::invoke_async`, which copies each argument
    // twice, once into an allocation of its own.
    let mut call = Cmd::with_capacity(4 + batch.len() * USUAL_ARGS, batch.len() * USUAL_BYTES);
    call.arg("EVALSHA")
        .arg(script.get_hash())
        .arg(0)
        .arg(batch.len());
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
            for (waiting, answer) in batch.into_iter().zip(answers) {
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
            for waiting in batch {
                let _ = waiting.answer.send(Err(error.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The script finds each write where the count before it says: a count that is not its
    /// write's number of arguments would run the rest of the commit as the wrong commands.
    #[test]
    fn each_write_is_counted_as_written() {
        let mut commit = CommitArgs::new(&[]);
        commit.hset("map", 1, "record");
        commit.hdel("map", 1);
        commit.zadd("deadlines", "entry", 5);
        commit.zadd_lower("deadlines", "entry", 4);
        commit.zrem("deadlines", "entry");
        commit.zrem_below("applied", 7);
        commit.incr_by("live", -1);
        commit.del("applied");
        commit.xadd("outbox", "e", "event");
        commit.atlas_release("next", "free", 1, 2);
        let args: Vec<String> = (commit.0.args_iter())
            .map(|arg| match arg {
                Arg::Simple(arg) => String::from_utf8(arg.to_vec()).expect("text"),
                _ => unreachable!("only plain arguments in a commit"),
            })
            .collect();
        assert_eq!(args[0], "0", "no guards");
        let (mut at, mut commands) = (1, Vec::new());
        while at < args.len() {
            let count: usize = args[at].parse().expect("a count");
            commands.push(args[at + 1..=at + count].join(" "));
            at += count + 1;
        }
        assert_eq!(at, args.len());
        assert_eq!(
            commands,
            [
                "HSET map 1 record",
                "HDEL map 1",
                "ZADD deadlines 5 entry",
                "ZADD deadlines LT 4 entry",
                "ZREM deadlines entry",
                "ZREMRANGEBYSCORE applied -inf (7",
                "INCRBY live -1",
                "DEL applied",
                "XADD outbox * e event",
                "atlas-release next free 1 2",
            ]
        );
    }
}
