//! What the broker (Tansu) does with librdkafka — the features the core relies on.

use super::support::TestBroker;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_creates_topics_takes_idempotent_writes_and_serves_a_group() {
    let broker = TestBroker::start_temp();
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", broker.bootstrap());
    let admin: AdminClient<DefaultClientContext> = base.create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new("probe", 3, TopicReplication::Fixed(-1));
    let r = admin
        .create_topics([&topic], &opts)
        .await
        .expect("CreateTopics answers");
    eprintln!("create: {r:?}");
    let r = admin
        .create_topics([&topic], &opts)
        .await
        .expect("CreateTopics answers");
    eprintln!("create again: {r:?}");

    let producer: FutureProducer = base
        .clone()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for i in 0..10 {
        let key = format!("k{}", i % 4);
        let payload = format!("m{i}");
        let r = producer
            .send(
                FutureRecord::to("probe").key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await;
        eprintln!("send {i}: {:?}", r.as_ref().map_err(|(e, _)| e.to_string()));
        assert!(r.is_ok(), "idempotent send {i}");
    }

    let consumer: StreamConsumer = base
        .clone()
        .set("group.id", "probe-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["probe"]).expect("subscribe");
    let mut got = 0;
    while got < 10 {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("a message within 20 s")
            .expect("message");
        eprintln!(
            "got p{} o{} {:?}",
            m.partition(),
            m.offset(),
            m.payload_view::<str>()
        );
        consumer
            .commit_message(&m, CommitMode::Sync)
            .expect("commit");
        got += 1;
    }
    let committed = consumer
        .committed(Duration::from_secs(5))
        .expect("committed");
    eprintln!("committed: {committed:?}");
    for p in 0..3 {
        let w = consumer.fetch_watermarks("probe", p, Duration::from_secs(5));
        eprintln!("watermarks p{p}: {w:?}");
    }
    // Pause and resume the assignment.
    let assignment = consumer.assignment().expect("assignment");
    eprintln!("assignment: {assignment:?}");
    consumer.pause(&assignment).expect("pause");
    consumer.resume(&assignment).expect("resume");
}
