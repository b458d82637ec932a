//! The cloud operations over HTTP with no orchestrator to reach: what each answers, and that a
//! refused connection stores nothing. Against a real cloud: crates/personas-cli/tests/cloud.rs.

use super::Server;
use serde_json::json;

/// Called from the every-operation round trip.
pub async fn round_trips(s: &Server) {
    let status = s.ok("cloud_status", json!({})).await;
    assert_eq!(
        (&status["connected"], &status["reachable"]),
        (&json!(false), &json!(false)),
        "{status}"
    );
    // Nothing listens there (bound, then released): unavailable, naming the URL field.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let (code, e) = s
        .call(
            "cloud_connect",
            json!({"url": url, "token": "pc-srv-token-0a1b2c3d"}),
        )
        .await;
    assert_eq!(code, 503, "{e}");
    assert_eq!(
        (&e["code"], &e["field"]),
        (&json!("unavailable"), &json!("url"))
    );
    assert!(!e.to_string().contains("pc-srv-token-0a1b2c3d"), "{e}");
    let (code, e) = s
        .call("cloud_connect", json!({"url": "ftp://x", "token": "t0ken"}))
        .await;
    assert_eq!((code, &e["field"]), (400, &json!("url")), "{e}");
    // What needs a connection is a conflict that says how to connect.
    for (op, body) in [
        ("push_persona", json!({"persona": "anyone"})),
        ("cloud_execute", json!({"persona": "anyone"})),
        ("list_cloud_executions", json!({})),
    ] {
        let (code, e) = s.call(op, body).await;
        let wanted = if op == "push_persona" { 404 } else { 409 };
        assert_eq!(code, wanted, "{op}: {e}");
        if code == 409 {
            assert!(
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("personas cloud connect")),
                "{op}: {e}"
            );
        }
    }
    let gone = s.ok("cloud_disconnect", json!({})).await;
    assert_eq!(gone["was_connected"], false);
}
