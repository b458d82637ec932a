//! `personas_api::Client`: its two transports — HTTP to this server and the in-process `Api`
//! over the same data dir — answer alike, values and errors, and `call_json` is the HTTP body.

use super::{Server, vault};
use personas_api::{ApiError, Client, Code, HostInfo, Operations, ops};
use personas_engine::EngineConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_transports_answer_alike() {
    let server = Server::start().await;
    let remote = Client::http(&server.base, &server.token).expect("http client");
    assert_eq!(remote.url(), Some(server.base.as_str()));
    let local = Client::local(
        personas_api::Api::open(
            EngineConfig::for_data_dir(server.data_dir()),
            vault::passphrase(),
            HostInfo::default(),
        )
        .expect("open the store in process"),
    );
    assert!(local.url().is_none() && local.local_api().is_some());

    // A change through one transport is seen, identical, through the other.
    let created = remote
        .create_persona(
            serde_json::from_value(json!({
                "spec": {"name": "Client twin", "instructions": "Say hello."}
            }))
            .expect("request"),
        )
        .await
        .expect("create over HTTP");
    let by_http = remote
        .list_personas(ops::Empty {})
        .await
        .expect("list over HTTP");
    let in_process = local
        .list_personas(ops::Empty {})
        .await
        .expect("list in process");
    assert_eq!(by_http, in_process);
    assert_eq!(by_http.personas, vec![created.clone()]);

    // The generic call is exactly the HTTP body.
    let raw = server
        .ok("get_persona", json!({"persona": "client twin"}))
        .await;
    let generic = remote
        .call_json("get_persona", json!({"persona": "client twin"}))
        .await
        .expect("call_json");
    assert_eq!(raw, generic);
    assert_eq!(
        local
            .call_json("get_persona", json!({"persona": "client twin"}))
            .await
            .expect("call_json in process"),
        raw
    );

    // Errors keep their code, message and field across the wire.
    let missing = ops::PersonaRef {
        persona: "nobody".into(),
    };
    let e_http: ApiError = remote
        .get_persona(missing.clone())
        .await
        .expect_err("missing");
    let e_local: ApiError = local.get_persona(missing).await.expect_err("missing");
    assert_eq!(e_http, e_local);
    assert_eq!(e_http.code, Code::NotFound);
    let bad = remote
        .call_json("get_persona", json!({"persona": 7}))
        .await
        .expect_err("wrong type");
    assert_eq!(
        (bad.code, bad.field.as_deref()),
        (Code::Invalid, Some("persona"))
    );

    // A runtime that is gone is `unavailable`, not a crash or a hang.
    drop(server);
    let gone = remote
        .list_personas(ops::Empty {})
        .await
        .expect_err("server stopped");
    assert_eq!(gone.code, Code::Unavailable, "{gone}");
}
