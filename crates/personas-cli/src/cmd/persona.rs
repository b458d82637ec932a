//! `personas persona …`: create, list, show, update, delete, export, import, resume, policy —
//! each a call of the operation of the same name; `--json` prints its response.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::{Args, Subcommand};
use personas_api::ops::{
    CreatePersona, Empty, ExportPersona, FileSyntax, ListExecutions, ListHealing, PersonaRef,
    UpdatePersona,
};
use personas_api::{Client, Operations};
use personas_core::{PermissionMode, PermissionTemplate, Persona, PersonaSpec};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum PersonaCmd {
    /// Create a persona.
    Create {
        /// Unique name (case-insensitive).
        #[arg(long)]
        name: String,
        /// What the persona does, in natural language.
        #[arg(long)]
        prompt: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// List personas.
    List,
    /// Show one persona (by name or id), with its links, policy and recent runs.
    Show { persona: String },
    /// Every prompt version of a persona, oldest first.
    Versions { persona: String },
    /// The credentials and custom tools a persona is given.
    Links { persona: String },
    /// Change a persona; only the options given change.
    Update {
        persona: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New instructions (adds a prompt version).
        #[arg(long)]
        prompt: Option<String>,
        #[command(flatten)]
        settings: Box<Settings>,
        /// Enable the persona.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable the persona: it cannot be run or triggered.
        #[arg(long)]
        disable: bool,
        /// Remove every allowed tool rule before applying --allow-tool.
        #[arg(long)]
        clear_allowed_tools: bool,
        /// Remove every denied tool rule before applying --deny-tool.
        #[arg(long)]
        clear_denied_tools: bool,
        /// Unlink a credential. Repeatable.
        #[arg(long = "remove-credential", value_name = "NAME")]
        remove_credential: Vec<String>,
        /// Detach a custom tool. Repeatable.
        #[arg(long = "remove-tool", value_name = "NAME")]
        remove_tool: Vec<String>,
        /// No longer let this persona start NAME. Repeatable.
        #[arg(long = "disallow-persona", value_name = "NAME")]
        disallow_persona: Vec<String>,
    },
    /// Delete a persona (its past executions stay in history).
    Delete { persona: String },
    /// Write a persona as a shareable file (YAML, or JSON for a .json path / --format json).
    Export {
        persona: String,
        /// File to write; stdout when omitted.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long, value_parser = ["yaml", "json"])]
        format: Option<String>,
    },
    /// Resume a persona its circuit breaker paused after repeated failures.
    Resume { persona: String },
    /// Send a persona to the connected cloud (its definition and linked credentials, sealed
    /// there on arrival), under its local id; pushing again replaces it.
    Push { persona: String },
    /// The permission policy templates --permissions-template accepts, with their rules.
    Templates,
    /// Show or change a persona's review, budget and healing settings.
    Policy {
        persona: String,
        #[command(flatten)]
        policy: super::policy::PolicyArgs,
    },
    /// Create a persona from a file written by `export` (YAML or JSON). A file that would grant
    /// more than the persona has (a broader permission mode, new allowed tools, lifted denials,
    /// new personas it may start, its credentials for new instructions) is refused with exit
    /// code 2, naming each grant, unless --grant is given. A new persona counts as granting
    /// everything above the default policy.
    Import {
        file: PathBuf,
        /// Update the persona of the same name instead of refusing.
        #[arg(long)]
        replace: bool,
        /// Apply what the file grants (printed) instead of refusing.
        #[arg(long)]
        grant: bool,
    },
}

#[derive(Args, Debug, Default)]
pub struct Settings {
    #[arg(long)]
    description: Option<String>,
    /// Start the permission policy from a template: read-only | edit-in-workspace |
    /// full-trust. Replaces mode and tool rules; --allow-tool/--deny-tool then add to it.
    #[arg(long, value_name = "TEMPLATE")]
    permissions_template: Option<String>,
    /// Give runs this credential (its variables in their environment). Repeatable; on update
    /// it adds to the linked ones.
    #[arg(long = "credential", value_name = "NAME")]
    credential: Vec<String>,
    /// Document this custom tool in the persona's prompt. Repeatable; on update it adds.
    #[arg(long = "tool", value_name = "NAME")]
    tool: Vec<String>,
    /// Model alias or id (e.g. sonnet, opus, claude-sonnet-4-5).
    #[arg(long)]
    model: Option<String>,
    /// Allow a tool or pattern without asking, e.g. Read or "Bash(git *)". Repeatable; given on
    /// update, it adds to the list.
    #[arg(long = "allow-tool", value_name = "RULE")]
    allow_tool: Vec<String>,
    /// Remove a tool from runs entirely, e.g. WebFetch. Repeatable.
    #[arg(long = "deny-tool", value_name = "RULE")]
    deny_tool: Vec<String>,
    /// Let runs of this persona start persona NAME (persona_action, the MCP run_persona tool).
    /// Repeatable; on update it adds. '*' allows every persona (warned: a prompt-injected run
    /// could then start any of them).
    #[arg(long = "allow-persona", value_name = "NAME")]
    allow_persona: Vec<String>,
    /// default | acceptEdits | dontAsk | plan | bypassPermissions (full trust).
    #[arg(long)]
    permission_mode: Option<String>,
    /// Runs of this persona at once.
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// Seconds a run may take.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    #[arg(long)]
    max_turns: Option<u32>,
    #[arg(long)]
    max_budget_usd: Option<f64>,
}

impl Settings {
    fn apply(self, spec: &mut PersonaSpec) -> CliResult<()> {
        if let Some(d) = self.description {
            spec.description = d;
        }
        if let Some(t) = self.permissions_template {
            let t = t
                .parse::<PermissionTemplate>()
                .map_err(|e| CliError::usage(format!("--permissions-template: {e}")))?;
            // Templates are about tools: the personas it may start stay as they are.
            let targets = std::mem::take(&mut spec.permissions.allow_personas);
            spec.permissions = t.policy();
            spec.permissions.allow_personas = targets;
        }
        if let Some(m) = self.model {
            spec.model = if m.is_empty() { None } else { Some(m) };
        }
        for rule in self.allow_tool {
            if !spec.permissions.allow.contains(&rule) {
                spec.permissions.allow.push(rule);
            }
        }
        for rule in self.deny_tool {
            if !spec.permissions.deny.contains(&rule) {
                spec.permissions.deny.push(rule);
            }
        }
        // Names are resolved to ids by the store, which refuses one naming no persona.
        for target in self.allow_persona {
            if !spec.permissions.allow_personas.contains(&target) {
                spec.permissions.allow_personas.push(target);
            }
        }
        if let Some(mode) = self.permission_mode {
            spec.permissions.mode = mode
                .parse::<PermissionMode>()
                .map_err(|e| CliError::usage(format!("--permission-mode: {e}")))?;
        }
        if let Some(n) = self.max_concurrent {
            spec.max_concurrent = n;
        }
        if let Some(t) = self.timeout {
            spec.timeout_secs = t;
        }
        if let Some(t) = self.max_turns {
            spec.max_turns = Some(t);
        }
        if let Some(b) = self.max_budget_usd {
            spec.max_budget_usd = Some(b);
        }
        Ok(())
    }
}

pub async fn run(ctx: &mut Context, cmd: PersonaCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let st = Style::detect();
    match cmd {
        PersonaCmd::Create {
            name,
            prompt,
            settings,
        } => {
            let mut settings = *settings;
            let mut spec = PersonaSpec::new(name, prompt);
            let credentials = non_empty(std::mem::take(&mut settings.credential));
            let tools = non_empty(std::mem::take(&mut settings.tool));
            settings.apply(&mut spec)?;
            // Links are resolved with the persona, in one transaction: a bad name leaves no
            // half-made persona behind.
            let p = client
                .create_persona(CreatePersona {
                    spec,
                    credentials,
                    tools,
                    permissions_template: None,
                })
                .await?;
            warn_full_trust(&p);
            warn_any_persona(&p);
            if ctx.json {
                print_json(&p);
            } else {
                println!("created persona {} ({})", st.bold(&p.name), p.id);
            }
        }
        PersonaCmd::List => {
            let list = client.list_personas(Empty {}).await?;
            if ctx.json {
                print_json(&list);
            } else if list.personas.is_empty() {
                println!(
                    "no personas yet — create one with `personas persona create --name NAME --prompt TEXT`"
                );
            } else {
                let paused = paused_personas(&client).await?;
                let rows: Vec<Vec<String>> = list
                    .personas
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.id.to_string(),
                            p.model.clone().unwrap_or_else(|| "default".into()),
                            enabled_text(p, paused.contains(p.id.as_str())),
                            format!("v{}", p.prompt_version),
                            render::ago(p.updated_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(
                        &["NAME", "ID", "MODEL", "ENABLED", "PROMPT", "UPDATED"],
                        &rows
                    )
                );
            }
        }
        PersonaCmd::Show { persona } => {
            let p = client.get_persona(PersonaRef { persona }).await?;
            if ctx.json {
                print_json(&p);
            } else {
                show(&client, &p, st).await?;
            }
        }
        PersonaCmd::Versions { persona } => {
            let list = client.list_prompt_versions(PersonaRef { persona }).await?;
            if ctx.json {
                print_json(&list);
            } else {
                for v in &list.versions {
                    println!(
                        "{} {}  {}",
                        st.bold(&format!("v{}", v.version)),
                        st.dim(&render::ago(v.created_at)),
                        v.instructions.lines().next().unwrap_or("")
                    );
                }
            }
        }
        PersonaCmd::Links { persona } => {
            let links = client.get_persona_links(PersonaRef { persona }).await?;
            if ctx.json {
                print_json(&links);
            } else {
                println!(
                    "credentials: {}\ntools: {}",
                    names_or_dash(&links.credentials),
                    names_or_dash(&links.tools)
                );
            }
        }
        PersonaCmd::Update {
            persona,
            name,
            prompt,
            settings,
            enable,
            disable,
            clear_allowed_tools,
            clear_denied_tools,
            remove_credential,
            remove_tool,
            disallow_persona,
        } => {
            let mut settings = *settings;
            let current = client.get_persona(PersonaRef { persona }).await?;
            let add_creds = std::mem::take(&mut settings.credential);
            let add_tools = std::mem::take(&mut settings.tool);
            let (credentials, tools) = if add_creds.is_empty()
                && remove_credential.is_empty()
                && add_tools.is_empty()
                && remove_tool.is_empty()
            {
                (None, None)
            } else {
                let links = client
                    .get_persona_links(PersonaRef {
                        persona: current.id.to_string(),
                    })
                    .await?;
                (
                    relink(
                        links.credentials,
                        &add_creds,
                        &remove_credential,
                        "--remove-credential",
                    )?,
                    relink(links.tools, &add_tools, &remove_tool, "--remove-tool")?,
                )
            };
            let mut spec = PersonaSpec::from(&current);
            if let Some(n) = name {
                spec.name = n;
            }
            if let Some(p) = prompt {
                spec.instructions = p;
            }
            if clear_allowed_tools {
                spec.permissions.allow.clear();
            }
            if clear_denied_tools {
                spec.permissions.deny.clear();
            }
            for name in disallow_persona {
                let id = if name == personas_core::ANY_PERSONA {
                    name
                } else {
                    client
                        .get_persona(PersonaRef { persona: name })
                        .await
                        .map_err(|e| CliError::usage(format!("--disallow-persona: {}", e.message)))?
                        .id
                        .to_string()
                };
                spec.permissions.allow_personas.retain(|t| *t != id);
            }
            settings.apply(&mut spec)?;
            if enable {
                spec.enabled = true;
            }
            if disable {
                spec.enabled = false;
            }
            let p = client
                .update_persona(UpdatePersona {
                    persona: current.id.to_string(),
                    spec,
                    credentials,
                    tools,
                    permissions_template: None,
                })
                .await?;
            if p.permissions.mode != current.permissions.mode {
                warn_full_trust(&p);
            }
            if !current.permissions.allows_any_persona() {
                warn_any_persona(&p);
            }
            if ctx.json {
                print_json(&p);
            } else {
                let note = if p.prompt_version != current.prompt_version {
                    format!(" (prompt v{})", p.prompt_version)
                } else {
                    String::new()
                };
                println!("updated persona {}{note}", st.bold(&p.name));
            }
        }
        PersonaCmd::Delete { persona } => {
            let p = client.delete_persona(PersonaRef { persona }).await?;
            if ctx.json {
                print_json(&p);
            } else {
                println!("deleted persona {} ({})", p.name, p.id);
            }
        }
        PersonaCmd::Export {
            persona,
            output,
            format,
        } => {
            let syntax = match (format.as_deref(), &output) {
                (Some("json"), _) => FileSyntax::Json,
                (Some(_), _) => FileSyntax::Yaml,
                (None, Some(path))
                    if path
                        .to_string_lossy()
                        .to_ascii_lowercase()
                        .ends_with(".json") =>
                {
                    FileSyntax::Json
                }
                (None, _) => FileSyntax::Yaml,
            };
            let file = client
                .export_persona(ExportPersona {
                    persona,
                    syntax: Some(syntax),
                })
                .await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &file.text).map_err(|e| {
                        CliError::runtime(format!("cannot write {}: {e}", path.display()))
                    })?;
                    if ctx.json {
                        print_json(&file);
                    } else {
                        eprintln!("exported {} to {}", file.name, path.display());
                    }
                }
                None if ctx.json => print_json(&file),
                None => print!("{}", file.text),
            }
        }
        PersonaCmd::Push { persona } => return super::cloud::push(ctx, persona).await,
        PersonaCmd::Resume { persona } => {
            let policy = client.resume_persona(PersonaRef { persona }).await?;
            if ctx.json {
                print_json(&policy);
            } else {
                println!(
                    "resumed persona {}: it runs again",
                    st.bold(&policy.persona_name)
                );
            }
        }
        PersonaCmd::Templates => {
            let list = client.list_permission_templates(Empty {}).await?;
            if ctx.json {
                print_json(&list);
            } else {
                for t in &list.templates {
                    println!("{} — {}", st.bold(t.id.as_str()), t.description);
                    println!("  mode: {}", t.policy.mode.as_cli_str());
                    if !t.policy.allow.is_empty() {
                        println!("  allowed: {}", t.policy.allow.join(", "));
                    }
                    if !t.policy.deny.is_empty() {
                        println!("  denied: {}", t.policy.deny.join(", "));
                    }
                    if let Some(w) = &t.warning {
                        println!("  {}", st.yellow(&format!("warning: {w}")));
                    }
                }
            }
        }
        PersonaCmd::Policy { persona, policy } => {
            super::policy::run(ctx, &client, persona, policy).await?;
        }
        PersonaCmd::Import {
            file,
            replace,
            grant,
        } => {
            super::persona_import::run(ctx, &client, &file, replace, grant).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

/// The linked names after removing and adding some; `None` when nothing changes. Removing a
/// name that is not linked is an error naming it.
fn relink(
    mut linked: Vec<String>,
    add: &[String],
    remove: &[String],
    remove_flag: &str,
) -> CliResult<Option<Vec<String>>> {
    if add.is_empty() && remove.is_empty() {
        return Ok(None);
    }
    for name in remove {
        let before = linked.len();
        linked.retain(|l| !l.eq_ignore_ascii_case(name));
        if linked.len() == before {
            return Err(CliError::usage(format!(
                "{remove_flag}: {name:?} is not linked to this persona"
            ))
            .with_hint("`personas persona show NAME` lists its credentials and tools"));
        }
    }
    for name in add {
        if !linked.iter().any(|l| l.eq_ignore_ascii_case(name)) {
            linked.push(name.clone());
        }
    }
    Ok(Some(linked))
}

/// Ids of the personas whose circuit breaker is open (paused after repeated failures).
async fn paused_personas(client: &Client) -> CliResult<HashSet<String>> {
    let healing = client.list_healing(ListHealing::default()).await?;
    Ok(healing
        .breakers
        .into_iter()
        .filter(|b| b.state == personas_core::BreakerState::Open)
        .filter_map(|b| b.scope.strip_prefix("persona:").map(str::to_string))
        .collect())
}

/// Full trust is an explicit choice; say what it means when it is made.
fn warn_full_trust(p: &Persona) {
    if p.permissions.mode == PermissionMode::BypassPermissions {
        eprintln!(
            "warning: {} runs with full trust (bypassPermissions): every tool, including shell              commands and file writes anywhere the user can write, runs without any check",
            p.name
        );
    }
}

/// Letting a persona start every persona is an explicit choice; say what it means.
fn warn_any_persona(p: &Persona) {
    if p.permissions.allows_any_persona() {
        eprintln!(
            "warning: {} may start every persona (--allow-persona '*'): a run talked into it by \
             untrusted input can start personas holding more tools and credentials than it has",
            p.name
        );
    }
}

/// "yes", "no", or "paused" when its circuit breaker is open.
fn enabled_text(p: &Persona, paused: bool) -> String {
    match (p.enabled, paused) {
        (false, _) => "no".into(),
        (true, true) => "paused (`personas persona resume`)".into(),
        (true, false) => "yes".into(),
    }
}

/// The human view of one persona: its settings, prompt versions, links and recent runs (each
/// from its own operation; `--json` prints `get_persona` alone).
async fn show(client: &Client, p: &Persona, st: Style) -> CliResult<()> {
    let me = || PersonaRef {
        persona: p.id.to_string(),
    };
    let versions = client.list_prompt_versions(me()).await?.versions.len();
    let links = client.get_persona_links(me()).await?;
    let policy = client.get_policy(me()).await?;
    let recent = client
        .list_executions(ListExecutions {
            persona: Some(p.id.to_string()),
            status: None,
            limit: Some(5),
        })
        .await?
        .executions;
    let names: HashMap<String, String> = client
        .list_personas(Empty {})
        .await?
        .personas
        .into_iter()
        .map(|q| (q.id.to_string(), q.name))
        .collect();
    let may_start: Vec<String> = p
        .permissions
        .allow_personas
        .iter()
        .map(|t| names.get(t).cloned().unwrap_or_else(|| t.clone()))
        .collect();
    println!("{} {}", st.bold(&p.name), st.dim(p.id.as_str()));
    if !p.description.is_empty() {
        println!("{}", p.description);
    }
    println!();
    let rows = setting_rows(p, policy.paused, &may_start, versions);
    println!("{}", render::table(&["SETTING", "VALUE"], &rows));
    println!("\n{}\n{}", st.bold("Instructions"), p.instructions.trim());
    for s in &p.sections {
        println!("\n{}\n{}", st.bold(&s.title), s.body.trim());
    }
    if !recent.is_empty() {
        println!("\n{}", st.bold("Recent executions"));
        for e in &recent {
            println!(
                "  {}  {}  {}",
                e.id,
                render::status(e.status, st),
                render::ago(e.queued_at)
            );
        }
    }
    println!(
        "\n{} {}\n{} {}",
        st.bold("Credentials:"),
        names_or_dash(&links.credentials),
        st.bold("Tools:"),
        names_or_dash(&links.tools)
    );
    Ok(())
}

/// The settings table of `persona show`.
fn setting_rows(
    p: &Persona,
    paused: bool,
    may_start: &[String],
    versions: usize,
) -> Vec<Vec<String>> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = vec![
        vec!["enabled".into(), enabled_text(p, paused)],
        vec![
            "model".into(),
            p.model.clone().unwrap_or_else(|| "default".into()),
        ],
        vec!["max concurrent".into(), p.max_concurrent.to_string()],
        vec!["timeout".into(), format!("{} s", p.timeout_secs)],
        vec!["max turns".into(), opt(p.max_turns.map(|t| t.to_string()))],
        vec![
            "max budget".into(),
            opt(p.max_budget_usd.map(|b| format!("${b}"))),
        ],
        vec![
            "permission mode".into(),
            p.permissions.mode.as_cli_str().into(),
        ],
        vec!["allowed tools".into(), names_or_dash(&p.permissions.allow)],
        vec!["denied tools".into(), names_or_dash(&p.permissions.deny)],
        vec!["may start".into(), names_or_dash(may_start)],
        vec![
            "prompt version".into(),
            format!("v{} ({versions} stored)", p.prompt_version),
        ],
    ];
    rows
}

fn names_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_string()
    } else {
        v.join(", ")
    }
}
