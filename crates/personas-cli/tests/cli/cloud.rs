//! The cloud commands without an orchestrator: what they say when there is none to reach, and
//! that a refused connection leaves nothing behind. The whole path against a real cloud is in
//! tests/cloud.rs.

use super::{Env, text};

/// A loopback URL nothing listens on (bound, then released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_commands_without_a_reachable_orchestrator_say_what_to_do() {
    let env = Env::new().await;
    let status = env.json(&["cloud", "status"]);
    assert_eq!(status["connected"], false);
    assert_eq!(status["reachable"], false);
    let out = env.run(&["cloud", "status"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("not connected"),
        "{}",
        text(&out.stdout)
    );

    // Unreachable: exit 1 naming the URL; nothing is stored.
    let url = dead_url();
    let token = "pc-cli-token-5e1d9a7b3c";
    let out = env.run(&["cloud", "connect", &url, "--token", token]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&url), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains(token), "{}", text(&out.stderr));
    assert_eq!(env.json(&["cloud", "status"])["connected"], false);
    // Not a URL: a usage error (exit 2) naming it.
    let out = env.run(&["cloud", "connect", "ftp://example.org", "--token", token]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ftp://example.org"),
        "{}",
        text(&out.stderr)
    );

    // What needs a connection says how to make one.
    for args in [
        &["execution", "list", "--cloud"][..],
        &["run", "Anyone", "--cloud"][..],
    ] {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("personas cloud connect"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let gone = env.json(&["cloud", "disconnect"]);
    assert_eq!(gone["was_connected"], false);
}
