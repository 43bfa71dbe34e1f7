//! Creates our topics at start-up when they are missing: not every broker creates them on use.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::context::KafkaContext;

pub async fn ensure(
    config: &ClientConfig,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> Result<(), String> {
    let admin: AdminClient<KafkaContext> = config
        .create_with_context(KafkaContext::default())
        .map_err(|error| format!("admin client: {error}"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .map_err(|error| format!("creating topics: {error}"))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "topic exists")
            }
            Err((topic, code)) => return Err(format!("creating topic {topic}: {code}")),
        }
    }
    Ok(())
}
