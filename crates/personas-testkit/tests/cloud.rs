//! The cloud stack's backing services start for real: a PostgreSQL cluster of the test's own
//! (as the `postgres` user when root) and the Tansu broker, which keeps its topics across a
//! restart.

use personas_testkit::cloud::{Broker, Postgres};
use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn postgres_starts_creates_a_database_and_answers_queries() {
    let pg = Postgres::start_temp();
    pg.create_database("personas_test");
    pg.create_database("personas_test"); // twice is fine
    pg.psql(
        "personas_test",
        "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('needle-42')",
    );
    assert_eq!(
        pg.psql("personas_test", "SELECT v FROM t").trim(),
        "needle-42"
    );
    assert!(pg.dump("personas_test").contains("needle-42"));
    assert!(
        pg.url("personas_test")
            .starts_with("postgres://personas@127.0.0.1:")
    );
}

/// A Kafka ApiVersions request (v0) for a connection check: size, api key 18, version 0,
/// correlation id 7, client id "t".
fn api_versions(addr: &str) -> i32 {
    let mut s = TcpStream::connect(addr).expect("connect");
    let body: Vec<u8> = [
        &18i16.to_be_bytes()[..],
        &0i16.to_be_bytes(),
        &7i32.to_be_bytes(),
        &1i16.to_be_bytes(),
        b"t",
    ]
    .concat();
    s.write_all(&(body.len() as i32).to_be_bytes())
        .expect("write");
    s.write_all(&body).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("read size");
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).expect("read body");
    i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]])
}

#[test]
fn the_broker_speaks_kafka_and_comes_back_after_a_restart() {
    let mut broker = Broker::start_temp();
    assert_eq!(
        api_versions(&broker.bootstrap()),
        7,
        "the correlation id comes back"
    );
    broker.restart();
    assert_eq!(api_versions(&broker.bootstrap()), 7);
    assert!(
        broker.storage_file().exists(),
        "topics live in a file that outlives the process"
    );
}
