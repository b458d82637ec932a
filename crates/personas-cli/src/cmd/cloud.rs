//! The cloud from the command line: `personas cloud connect|status|disconnect`
//! (`cloud_connect`, `cloud_status`, `cloud_disconnect`), `personas persona push`
//! (`push_persona`), `personas run --cloud` (`cloud_execute`, followed like a local run through
//! its local mirror) and `personas execution list --cloud` (`list_cloud_executions`).

use super::print_json;
use crate::context::Context;
use crate::error::CliResult;
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{
    CloudConnect, CloudExecutionList, CloudStatus, Empty, ListCloudExecutions, PushPersona,
    WorkerState,
};
use personas_core::ExecutionStatus;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum CloudCmd {
    /// Connect this data dir to a Personas cloud: checks the orchestrator accepts the token,
    /// keeps the URL in the store and the token sealed in the vault.
    Connect {
        /// The orchestrator's URL, e.g. http://127.0.0.1:9500.
        url: String,
        /// A bearer JWT, or the deployment's admin token.
        #[arg(long, env = "PERSONAS_CLOUD_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// The connection, orchestrators, workers (idle/busy), queued runs, Kafka lag, usage.
    Status,
    /// Forget the connection and its token (mirrored runs stay in history).
    Disconnect,
}

pub async fn run(ctx: &mut Context, cmd: CloudCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        CloudCmd::Connect { url, token } => {
            let status = client.cloud_connect(CloudConnect { url, token }).await?;
            if ctx.json {
                print_json(&status);
            } else {
                print_status(&status);
            }
        }
        CloudCmd::Status => {
            let status = client.cloud_status(Empty {}).await?;
            if ctx.json {
                print_json(&status);
            } else {
                print_status(&status);
            }
            // Connected but unreachable is worth a non-zero exit for scripts.
            if status.connected && !status.reachable {
                return Ok(ExitCode::from(1));
            }
        }
        CloudCmd::Disconnect => {
            let gone = client.cloud_disconnect(Empty {}).await?;
            if ctx.json {
                print_json(&gone);
            } else {
                match gone.url {
                    Some(url) => println!("disconnected from {url}"),
                    None => println!("not connected"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &CloudStatus) {
    let st = Style::detect();
    let Some(url) = &s.url else {
        println!("not connected (personas cloud connect URL --token T)");
        return;
    };
    let state = if s.reachable {
        st.bold("reachable")
    } else {
        "unreachable".to_string()
    };
    println!("cloud       {url} ({state})");
    if let Some(e) = &s.error {
        println!("error       {e}");
    }
    if let Some(i) = &s.identity {
        println!("tenant      {} (as {})", i.tenant_id, i.subject);
    }
    if let Some(c) = &s.cluster {
        let busy = c
            .workers
            .iter()
            .filter(|w| w.state == WorkerState::Busy)
            .count();
        println!(
            "cluster     {} orchestrator(s), {} worker(s) ({} busy, {} idle), {} queued, exec lag {}",
            c.orchestrators.len(),
            c.workers.len(),
            busy,
            c.workers.len() - busy,
            c.queued,
            c.exec_lag
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into())
        );
        if !c.workers.is_empty() {
            let rows: Vec<Vec<String>> = c
                .workers
                .iter()
                .map(|w| {
                    vec![
                        w.id.clone(),
                        w.orchestrator_id.clone(),
                        match w.state {
                            WorkerState::Idle => "idle".into(),
                            WorkerState::Busy => "busy".into(),
                        },
                        w.running
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            println!(
                "{}",
                render::table(&["WORKER", "ORCHESTRATOR", "STATE", "RUNNING"], &rows)
            );
        }
    }
    if let Some(u) = &s.usage {
        println!(
            "usage       {}: {} execution(s), {} event(s), ${:.4}, {}",
            u.month,
            u.executions,
            u.events,
            u.cost_usd,
            render::duration_ms(i64::try_from(u.duration_ms).unwrap_or(i64::MAX))
        );
    }
    if s.mirrors_pending > 0 {
        println!(
            "mirroring   {} cloud run(s) not ended yet",
            s.mirrors_pending
        );
    }
}

/// `personas persona push NAME`.
pub async fn push(ctx: &mut Context, persona: String) -> CliResult<ExitCode> {
    let pushed = ctx.client()?.push_persona(PushPersona { persona }).await?;
    if ctx.json {
        print_json(&pushed);
    } else {
        let creds = if pushed.credentials.is_empty() {
            "no credentials".to_string()
        } else {
            format!("credentials {}", pushed.credentials.join(", "))
        };
        println!(
            "pushed {} ({}) revision {}, {creds}",
            pushed.name, pushed.id, pushed.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `personas execution list --cloud`.
pub async fn list_executions(
    ctx: &mut Context,
    persona: Option<String>,
    status: Option<ExecutionStatus>,
    limit: u32,
) -> CliResult<ExitCode> {
    let list: CloudExecutionList = ctx
        .client()?
        .list_cloud_executions(ListCloudExecutions {
            persona,
            status,
            limit: Some(limit),
        })
        .await?;
    if ctx.json {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    if list.executions.is_empty() {
        println!("no cloud executions");
        return Ok(ExitCode::SUCCESS);
    }
    let st = Style::detect();
    let rows: Vec<Vec<String>> = list
        .executions
        .iter()
        .map(|c| {
            let e = &c.execution;
            vec![
                e.id.to_string(),
                e.persona_name.clone(),
                render::status(e.status, st),
                format!("{}/{}", c.attempt, c.max_attempts),
                c.worker_id.clone().unwrap_or_else(|| "-".into()),
                render::ago(e.queued_at),
                e.duration_ms(chrono::Utc::now())
                    .map(render::duration_ms)
                    .unwrap_or_else(|| "-".into()),
                format!("${:.4}", e.cost_usd),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "ID", "PERSONA", "STATUS", "ATTEMPT", "WORKER", "QUEUED", "DURATION", "COST"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
