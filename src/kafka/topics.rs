//! Creates our topics when they are missing: at start-up, and again when the broker says they
//! went missing (deleted, or a broker that lost its state). Not every broker creates them on
//! use, and one that does would give them its own partition count; our clients never ask it to.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::context::KafkaContext;

/// Why our topics could not all be made sure of.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("admin client: {0}")]
    Client(KafkaError),
    #[error("creating topics: {0}")]
    Request(KafkaError),
    #[error("creating topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Our topics, and how to create them.
#[derive(Clone)]
pub struct OurTopics {
    pub admin: ClientConfig,
    pub names: Vec<String>,
    pub partitions: i32,
    pub replication: i32,
}

impl OurTopics {
    /// Creates those of our topics that are missing.
    pub async fn ensure(&self) -> Result<(), TopicsError> {
        let admin: AdminClient<KafkaContext> = self
            .admin
            .create_with_context(KafkaContext::default())
            .map_err(TopicsError::Client)?;
        let new: Vec<NewTopic> = (self.names.iter())
            .map(|name| {
                NewTopic::new(
                    name,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let results = admin
            .create_topics(&new, &AdminOptions::new())
            .await
            .map_err(TopicsError::Request)?;
        for result in results {
            match result {
                Ok(topic) => tracing::info!(topic, partitions = self.partitions, "topic created"),
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(topic, "topic exists")
                }
                Err((topic, code)) => return Err(TopicsError::Topic { topic, code }),
            }
        }
        Ok(())
    }
}
