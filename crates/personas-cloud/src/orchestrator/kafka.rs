//! Kafka through librdkafka (`rdkafka`): the topics (created at start, an existing one is
//! fine), the idempotent producer the outbox relay publishes with, the execution topic's
//! consumer group (all orchestrators, [`super::dispatch`]), the per-orchestrator broadcast
//! readers of `output`, `lifecycle` and `events` that feed the live journal, and the group's
//! lag for `get_cluster`.
//!
//! Kafka carries notifications; Postgres holds the truth. Every consumer is idempotent by the
//! message's key and content (attempt numbers, journal numbers), so redelivery is harmless.

use crate::config::OrchestratorSettings;
use anyhow::Context;
use personas_cloud_api::topics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// The base client settings: the brokers and the operator's `--kafka-property` overrides.
pub fn client_config(settings: &OrchestratorSettings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.kafka_brokers);
    cfg.set("client.id", format!("personas-cloud-{}", settings.id));
    for (k, v) in &settings.kafka_properties {
        cfg.set(k, v);
    }
    cfg
}

/// The full names of the deployment's topics.
pub fn topic(settings: &OrchestratorSettings, short: &str) -> String {
    topics::name(&settings.kafka_namespace, short)
}

/// The exec topic's consumer group (every orchestrator of the deployment).
pub fn exec_group(settings: &OrchestratorSettings) -> String {
    format!("{}.orchestrators", settings.kafka_namespace)
}

/// The producer: idempotent (`enable.idempotence`, `acks=all`) so a retried send is not
/// written twice, flushing fast (the outbox relay batches already).
pub fn producer(settings: &OrchestratorSettings) -> anyhow::Result<FutureProducer> {
    let mut cfg = client_config(settings);
    set_default(&mut cfg, "enable.idempotence", "true");
    set_default(&mut cfg, "acks", "all");
    set_default(&mut cfg, "linger.ms", "2");
    set_default(&mut cfg, "message.timeout.ms", "15000");
    cfg.create().context("cannot create the Kafka producer")
}

/// Sets `key` unless the operator set it (their `--kafka-property` wins).
pub fn set_default(cfg: &mut ClientConfig, key: &str, value: &str) {
    if cfg.get(key).is_none() {
        cfg.set(key, value);
    }
}

/// Creates the deployment's topics (`kafka_partitions` partitions each; replication from the
/// broker's default). A topic that exists already is fine.
pub async fn create_topics(settings: &OrchestratorSettings) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings)
        .create()
        .context("cannot create the Kafka admin client")?;
    let names: Vec<String> = topics::ALL.iter().map(|t| topic(settings, t)).collect();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, settings.kafka_partitions, TopicReplication::Fixed(-1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .context("the broker did not answer CreateTopics (--kafka-brokers)")?;
    for r in results {
        match r {
            Ok(name) => tracing::info!("created topic {name}"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Messages on the execution topic not yet committed by the orchestrators' group: the sum over
/// partitions of (high watermark − committed offset). `None` when the broker does not answer.
pub fn exec_lag(settings: &OrchestratorSettings) -> Option<i64> {
    let mut cfg = client_config(settings);
    cfg.set("group.id", exec_group(settings));
    cfg.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().ok()?;
    let name = topic(settings, topics::EXEC);
    let timeout = Duration::from_secs(3);
    let md = consumer.fetch_metadata(Some(&name), timeout).ok()?;
    let partitions = md.topics().first()?.partitions().len() as i32;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(&name, p);
    }
    let committed = consumer.committed_offsets(tpl, timeout).ok()?;
    let mut lag = 0i64;
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(&name, p, timeout).ok()?;
        let at = committed
            .find_partition(&name, p)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(low);
        lag += (high - at).max(0);
    }
    Some(lag)
}

/// The consumer of the execution topic (not yet subscribed): the group every orchestrator with
/// workers joins, offsets committed by hand after the message is handled, from the earliest
/// message a new group has not seen.
pub fn exec_consumer(settings: &OrchestratorSettings) -> anyhow::Result<StreamConsumer> {
    let mut cfg = client_config(settings);
    cfg.set("group.id", exec_group(settings));
    cfg.set("enable.auto.commit", "false");
    cfg.set("enable.auto.offset.store", "false");
    set_default(&mut cfg, "auto.offset.reset", "earliest");
    // Runs wait for the dispatcher: a fetch answers as soon as one message is there.
    set_default(&mut cfg, "fetch.wait.max.ms", "10");
    // A dead orchestrator's partitions move to its peers within seconds.
    set_default(&mut cfg, "session.timeout.ms", "6000");
    set_default(&mut cfg, "heartbeat.interval.ms", "1000");
    cfg.create().context("cannot create the exec consumer")
}

/// Reads `output`, `lifecycle` and `events` for this orchestrator alone (every partition,
/// from the end: history comes from Postgres) and hands each message to `on_message`.
pub async fn broadcast(
    settings: OrchestratorSettings,
    stop: tokio_util::sync::CancellationToken,
    on_message: impl Fn(&str, &[u8]) + Send + 'static,
) -> anyhow::Result<()> {
    let mut cfg = client_config(&settings);
    cfg.set(
        "group.id",
        format!("{}.live.{}", settings.kafka_namespace, settings.id),
    );
    cfg.set("enable.auto.commit", "false");
    set_default(&mut cfg, "fetch.wait.max.ms", "10");
    let consumer: StreamConsumer = cfg
        .create()
        .context("cannot create the broadcast consumer")?;
    let names: Vec<String> = [topics::OUTPUT, topics::LIFECYCLE, topics::EVENTS]
        .iter()
        .map(|t| topic(&settings, t))
        .collect();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for name in &names {
        let md = consumer
            .fetch_metadata(Some(name), Duration::from_secs(10))
            .with_context(|| format!("no metadata for {name}"))?;
        let partitions = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(name, p, rdkafka::Offset::End)
                .context("cannot add a partition")?;
        }
    }
    consumer
        .assign(&tpl)
        .context("cannot assign the broadcast partitions")?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => match m {
                Ok(m) => {
                    use rdkafka::Message;
                    if let Some(payload) = m.payload() {
                        on_message(m.topic(), payload);
                    }
                }
                Err(e) => {
                    tracing::warn!("broadcast consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
