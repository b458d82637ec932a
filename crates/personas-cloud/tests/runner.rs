//! The worker's runner on the real Claude CLI (against the scripted Messages API): an
//! assignment runs with its sealed credentials opened in memory, its lines numbered from the
//! assignment's first sequence number and redacted, its scratch dir removed; cancel stops the
//! CLI and its tools; a credential sealed for another tenant does not open.

use personas_cloud::config::WorkerSettings;
use personas_cloud::seal;
use personas_cloud::worker::run::Runner;
use personas_cloud_api::model::{ModelCredentialKind, WireSecret};
use personas_cloud_api::wire::{Assignment, SealedCredential, SealedModelCredential, WireLine};
use personas_core::{Execution, ExecutionId, ExecutionStatus, LineKind, PersonaId, TriggerKind};
use personas_testkit::claude::{claude_bin, isolated_env};
use personas_testkit::{
    IsolatedEnv, ScriptedApi, Step, ToolCall, files_containing, process_table_has,
};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

const WAIT: Duration = Duration::from_secs(90);
const TENANT: &str = "tenant-a";

struct Harness {
    api: ScriptedApi,
    _env: IsolatedEnv,
    scratch: tempfile::TempDir,
    runner: Runner,
    key: Zeroizing<[u8; 32]>,
}

impl Harness {
    async fn new() -> Harness {
        let api = ScriptedApi::start().await;
        let env = isolated_env(&api);
        let scratch = tempfile::tempdir().expect("tempdir");
        let key = Zeroizing::new([7u8; 32]);
        let settings = WorkerSettings {
            orchestrators: vec!["http://127.0.0.1:1".into()],
            id: "w-test".into(),
            token: Zeroizing::new([1u8; 32]),
            master_key: key.clone(),
            capacity: 1,
            data_dir: Some(scratch.path().to_path_buf()),
            claude_path: Some(claude_bin()),
        };
        let runner = Runner::new(&settings)
            .expect("runner")
            .with_cli_env(env.vars.clone());
        Harness {
            api,
            _env: env,
            scratch,
            runner,
            key,
        }
    }

    /// An assignment of a persona scripted with `steps` (Bash allowed).
    fn assignment(&self, steps: Vec<Step>, first_seq: i64) -> Assignment {
        let script = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
        self.api.script(&script, steps);
        let text = format!(
            "format: personas/v1\nname: Cloud runner\ninstructions: Follow script {script}.\npermissions:\n  allow: [Bash]\n"
        );
        Assignment {
            execution_id: ExecutionId::new(),
            attempt: 1,
            tenant_id: TENANT.into(),
            persona_id: PersonaId::new(),
            persona_text: text,
            input: None,
            trigger: TriggerKind::Manual,
            trigger_ref: None,
            first_seq,
            credentials: Vec::new(),
            model_credential: None,
            timeout_ms: Some(60_000),
        }
    }

    fn seal_github(&self, a: &Assignment, tenant: &str, token: &str) -> SealedCredential {
        let mut fields = BTreeMap::new();
        fields.insert("token".to_string(), WireSecret::new(token));
        let aad = seal::credential_aad(tenant, a.persona_id.as_str(), "github");
        SealedCredential {
            name: "github".into(),
            service_type: "github".into(),
            sealed: seal::to_base64(&seal::seal_fields(&self.key, &fields, &aad).expect("seal")),
        }
    }

    async fn run(&self, a: Assignment, cancel: CancellationToken) -> (Execution, Vec<WireLine>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let done =
            tokio::time::timeout(WAIT, self.runner.run(a, cancel, move |l| drop(tx.send(l))))
                .await
                .expect("the run ended in time");
        let mut lines = Vec::new();
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        (done, lines)
    }
}

fn text_of(lines: &[WireLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {:?} {}", l.seq, l.kind, l.text))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_runs_with_its_sealed_credential_in_the_cli_environment_and_redacted() {
    let h = Harness::new().await;
    let secret = format!("ghp_cloud{}", uuid::Uuid::new_v4().simple());
    let mut a = h.assignment(
        vec![
            Step::tool_use(vec![ToolCall::bash("t1", "echo \"seen=$GITHUB_TOKEN\"")]),
            Step::text("done"),
        ],
        5,
    );
    a.credentials = vec![h.seal_github(&a, TENANT, &secret)];
    let (id, persona) = (a.execution_id.clone(), a.persona_id.clone());
    let (done, lines) = h.run(a, CancellationToken::new()).await;
    let all = text_of(&lines);
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}\n{all}",
        done.error_message
    );
    assert_eq!(
        (&done.id, &done.persona_id),
        (&id, &persona),
        "the cloud's ids"
    );
    // Numbered from first_seq without gaps.
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (5..5 + lines.len() as i64).collect::<Vec<_>>(),
        "{all}"
    );
    assert_eq!(
        lines.last().map(|l| l.kind),
        Some(LineKind::Result),
        "{all}"
    );
    // The CLI had the value (the tool saw a non-empty variable), the output never shows it.
    let tool = lines
        .iter()
        .find(|l| l.kind == LineKind::ToolResult)
        .expect("tool result line");
    assert!(
        tool.text.contains("seen=["),
        "the value was redacted where printed: {}",
        tool.text
    );
    assert!(
        !all.contains(&secret),
        "the secret leaked into the output:\n{all}"
    );
    // Nothing of the run is left on disk, the secret least of all.
    assert!(
        files_containing(h.scratch.path(), secret.as_bytes()).is_empty(),
        "a file under the worker's scratch dir holds the secret"
    );
    assert!(
        !h.scratch
            .path()
            .join("runs")
            .join(done.id.as_str())
            .exists(),
        "the run's scratch dir is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_model_credential_replaces_the_workers_own() {
    let h = Harness::new().await;
    let token = format!("sk-ant-oat01-{}", uuid::Uuid::new_v4().simple());
    let mut a = h.assignment(
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "t1",
                "echo \"oauth=${CLAUDE_CODE_OAUTH_TOKEN:-none}\"",
            )]),
            Step::text("done"),
        ],
        1,
    );
    let aad = seal::model_aad(TENANT, ModelCredentialKind::OauthToken);
    a.model_credential = Some(SealedModelCredential {
        kind: ModelCredentialKind::OauthToken,
        sealed: seal::to_base64(&seal::seal_value(&h.key, &token, &aad).expect("seal")),
    });
    let (done, lines) = h.run(a, CancellationToken::new()).await;
    let all = text_of(&lines);
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}\n{all}",
        done.error_message
    );
    // The CLI called the model with the tenant's token, not the worker's own API key (the CLI
    // keeps its credentials out of its tools' environment, so the tool sees none).
    let requests = h.api.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            auth,
            Some(format!("Bearer {token}").as_str()),
            "{:?}",
            r.headers
        );
        assert!(
            !r.headers.iter().any(|(k, _)| k == "x-api-key"),
            "the worker's own key was withheld: {:?}",
            r.headers
        );
    }
    assert!(!all.contains(&token), "the token leaked:\n{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_sealed_for_another_tenant_does_not_open_and_the_cli_never_starts() {
    let h = Harness::new().await;
    let mut a = h.assignment(vec![Step::text("must not run")], 1);
    a.credentials = vec![h.seal_github(&a, "tenant-b", "ghp_other")];
    let (done, lines) = h.run(a, CancellationToken::new()).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let msg = done.error_message.unwrap_or_default();
    assert!(
        msg.contains("credential github"),
        "names the credential: {msg}"
    );
    assert_eq!(lines.len(), 1, "only the explanation: {}", text_of(&lines));
    assert!(
        h.api.requests().is_empty(),
        "the CLI never called the model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_cli_and_its_tools() {
    let h = Harness::new().await;
    let marker = format!("personas-cloud-cancel-{}", uuid::Uuid::new_v4().simple());
    let a = h.assignment(
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "s1",
                format!("exec -a {marker} sleep 300"),
            )]),
            Step::text("woke"),
        ],
        1,
    );
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<WireLine>();
    let run = h.runner.run(a, cancel.clone(), move |l| drop(tx.send(l)));
    let watch = async {
        // Cancel once the tool's process is alive.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !process_table_has(&marker) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the tool never started"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        }
        cancel.cancel();
    };
    let (done, ()) = tokio::time::timeout(WAIT, async { tokio::join!(run, watch) })
        .await
        .expect("the run ended in time");
    assert_eq!(
        done.status,
        ExecutionStatus::Cancelled,
        "{:?}",
        done.error_message
    );
    assert!(
        !process_table_has(&marker),
        "the tool's process was stopped"
    );
}
