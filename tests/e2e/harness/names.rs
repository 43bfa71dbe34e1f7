//! Fresh names for one test (topics, consumer group, Redis key prefix), and the tests' Redis.

use uuid::Uuid;

/// Fresh topic and group names for one test.
#[derive(Clone)]
pub struct Names {
    pub commands: String,
    pub events: String,
    pub dead_letters: String,
    pub group: String,
    /// Key prefix of the shared store (`STORE=redis`) in Redis.
    pub redis_prefix: String,
}

impl Names {
    pub fn fresh() -> Names {
        let id = Uuid::new_v4().simple().to_string();
        Names {
            commands: format!("drop-commands-{id}"),
            events: format!("drop-events-{id}"),
            dead_letters: format!("drop-dead-letters-{id}"),
            group: format!("drops-{id}"),
            redis_prefix: format!("atlas-drops-test:{id}"),
        }
    }

    /// Deletes the shared store's keys of this test.
    pub fn clean_redis(&self) {
        let Ok(mut redis) = redis_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.redis_prefix))
            .query(&mut redis)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut redis);
        }
    }
}

/// The Redis of the tests: `ATLAS_TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("ATLAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A connection to the tests' Redis.
pub fn redis_connection() -> redis::RedisResult<redis::Connection> {
    redis::Client::open(redis_url()).and_then(|client| client.get_connection())
}
