//! `personas persona …`: create, list, show, update, delete, export, import.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::{Args, Subcommand};
use personas_core::persona_file::{PersonaFile, Syntax};
use personas_core::{PermissionMode, PermissionTemplate, Persona, PersonaSpec};
use personas_store::{ExecutionFilter, PersonaLinks, Store};
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
    /// Show one persona (by name or id), with its prompt versions.
    Show { persona: String },
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
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        PersonaCmd::Create {
            name,
            prompt,
            settings,
        } => {
            let mut spec = PersonaSpec::new(name, prompt);
            // Resolve links first: a bad name must not leave a half-made persona behind.
            let links =
                Links::resolve(&store, None, &settings.credential, &[], &settings.tool, &[])?;
            settings.apply(&mut spec)?;
            let p = store.personas().create_linked(&spec, &links)?;
            warn_full_trust(&p);
            warn_any_persona(&p);
            if ctx.json {
                print_json(&p);
            } else {
                println!("created persona {} ({})", st.bold(&p.name), p.id);
            }
        }
        PersonaCmd::List => {
            let list = store.personas().list()?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                println!(
                    "no personas yet — create one with `personas persona create --name NAME --prompt TEXT`"
                );
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.id.to_string(),
                            p.model.clone().unwrap_or_else(|| "default".into()),
                            enabled_text(&store, p),
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
            let p = store.personas().find(&persona)?;
            let versions = store.personas().prompt_versions(&p.id)?;
            let creds: Vec<String> = store
                .credentials()
                .of_persona(&p.id)?
                .into_iter()
                .map(|c| c.name)
                .collect();
            let tools: Vec<String> = store
                .tools()
                .of_persona(&p.id)?
                .into_iter()
                .map(|t| t.name)
                .collect();
            let recent = store.executions().list(&ExecutionFilter {
                persona_id: Some(p.id.clone()),
                limit: Some(5),
                ..Default::default()
            })?;
            if ctx.json {
                print_json(
                    &serde_json::json!({"persona": p, "prompt_versions": versions, "recent_executions": recent, "credentials": creds, "tools": tools,
                        "may_start": store.personas().target_names(&p.permissions)?,
                        "policy": store.policies().get(&p.id)?, "breaker": store.healing().persona_breaker(&p.id)?}),
                );
            } else {
                show(&store, &p, versions.len(), &recent, st);
                println!(
                    "\n{} {}\n{} {}",
                    st.bold("Credentials:"),
                    if creds.is_empty() {
                        "-".into()
                    } else {
                        creds.join(", ")
                    },
                    st.bold("Tools:"),
                    if tools.is_empty() {
                        "-".into()
                    } else {
                        tools.join(", ")
                    }
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
            let current = store.personas().find(&persona)?;
            let links = Links::resolve(
                &store,
                Some(&current),
                &settings.credential,
                &remove_credential,
                &settings.tool,
                &remove_tool,
            )?;
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
            for name in &disallow_persona {
                let id = if name == personas_core::ANY_PERSONA {
                    name.clone()
                } else {
                    store
                        .personas()
                        .find(name)
                        .map_err(|e| CliError::usage(format!("--disallow-persona: {e}")))?
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
            let p = store
                .personas()
                .update_linked(current.id.as_str(), &spec, &links)?;
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
            let p = store.personas().delete(&persona)?;
            if ctx.json {
                print_json(&serde_json::json!({"deleted": p.id, "name": p.name}));
            } else {
                println!("deleted persona {} ({})", p.name, p.id);
            }
        }
        PersonaCmd::Export {
            persona,
            output,
            format,
        } => {
            let p = store.personas().find(&persona)?;
            let syntax = match (format.as_deref(), &output) {
                (Some("json"), _) => Syntax::Json,
                (Some(_), _) => Syntax::Yaml,
                (None, Some(path)) => Syntax::for_path(&path.to_string_lossy()),
                (None, None) if ctx.json => Syntax::Json,
                (None, None) => Syntax::Yaml,
            };
            // Files name the personas it may start: ids differ between machines.
            let mut spec = PersonaSpec::from(&p);
            spec.permissions.allow_personas = store.personas().target_names(&p.permissions)?;
            let text = PersonaFile::from(&spec).render(syntax);
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| {
                        CliError::runtime(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!("exported {} to {}", p.name, path.display());
                }
                None => print!("{text}"),
            }
        }
        PersonaCmd::Resume { persona } => {
            let p = store.personas().find(&persona)?;
            store.healing().resume_persona(&p.id, &p.name)?;
            if ctx.json {
                print_json(&serde_json::json!({"resumed": p.id, "name": p.name}));
            } else {
                println!("resumed persona {}: it runs again", st.bold(&p.name));
            }
        }
        PersonaCmd::Policy { persona, policy } => {
            let p = store.personas().find(&persona)?;
            super::policy::run(ctx, &store, &p, policy)?;
        }
        PersonaCmd::Import {
            file,
            replace,
            grant,
        } => {
            super::persona_import::run(ctx, &store, &file, replace, grant)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Credential and tool links asked for on the command line, resolved before anything is
/// stored, and stored in the same transaction as the persona.
struct Links;
impl Links {
    fn resolve(
        store: &Store,
        current: Option<&Persona>,
        add_creds: &[String],
        remove_creds: &[String],
        add_tools: &[String],
        remove_tools: &[String],
    ) -> CliResult<PersonaLinks> {
        let credentials = if add_creds.is_empty() && remove_creds.is_empty() {
            None
        } else {
            let mut rows = match current {
                Some(p) => store.credentials().of_persona(&p.id)?,
                None => Vec::new(),
            };
            for name in remove_creds {
                let c = store.credentials().find(name).map_err(|e| {
                    CliError::from(e).with_hint("`personas credential list` shows the credentials")
                })?;
                rows.retain(|r| r.id != c.id);
            }
            for name in add_creds {
                let c = store.credentials().find(name).map_err(|e| {
                    CliError::usage(format!("--credential: {e}"))
                        .with_hint("`personas credential list` shows the credentials")
                })?;
                if !rows.iter().any(|r| r.id == c.id) {
                    rows.push(c);
                }
            }
            personas_engine::credentials::check_env_clashes(store, &rows)
                .map_err(|e| CliError::usage(format!("--credential: {e}")))?;
            Some(rows.into_iter().map(|r| r.id).collect())
        };
        let tools = if add_tools.is_empty() && remove_tools.is_empty() {
            None
        } else {
            let mut ids: Vec<String> = match current {
                Some(p) => store
                    .tools()
                    .of_persona(&p.id)?
                    .into_iter()
                    .map(|t| t.id)
                    .collect(),
                None => Vec::new(),
            };
            for name in remove_tools {
                let t = store.tools().find(name)?;
                ids.retain(|i| *i != t.id);
            }
            for name in add_tools {
                let t = store.tools().find(name).map_err(|e| {
                    CliError::usage(format!("--tool: {e}"))
                        .with_hint("`personas tool list` shows the tools")
                })?;
                if !ids.contains(&t.id) {
                    ids.push(t.id);
                }
            }
            Some(ids)
        };
        Ok(PersonaLinks { credentials, tools })
    }
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
fn enabled_text(store: &personas_store::Store, p: &Persona) -> String {
    let paused = store
        .healing()
        .persona_breaker(&p.id)
        .ok()
        .flatten()
        .is_some_and(|b| b.state == personas_core::BreakerState::Open);
    match (p.enabled, paused) {
        (false, _) => "no".into(),
        (true, true) => "paused (`personas persona resume`)".into(),
        (true, false) => "yes".into(),
    }
}

fn show(
    store: &personas_store::Store,
    p: &Persona,
    versions: usize,
    recent: &[personas_core::Execution],
    st: Style,
) {
    println!("{} {}", st.bold(&p.name), st.dim(p.id.as_str()));
    if !p.description.is_empty() {
        println!("{}", p.description);
    }
    println!();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = vec![
        vec!["enabled".into(), enabled_text(store, p)],
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
        vec![
            "allowed tools".into(),
            if p.permissions.allow.is_empty() {
                "-".into()
            } else {
                p.permissions.allow.join(", ")
            },
        ],
        vec![
            "denied tools".into(),
            if p.permissions.deny.is_empty() {
                "-".into()
            } else {
                p.permissions.deny.join(", ")
            },
        ],
        vec![
            "may start".into(),
            match store.personas().target_names(&p.permissions) {
                Ok(names) if !names.is_empty() => names.join(", "),
                Ok(_) => "-".into(),
                Err(e) => format!("? ({e})"),
            },
        ],
        vec![
            "prompt version".into(),
            format!("v{} ({versions} stored)", p.prompt_version),
        ],
    ];
    println!("{}", render::table(&["SETTING", "VALUE"], &rows));
    println!("\n{}\n{}", st.bold("Instructions"), p.instructions.trim());
    for s in &p.sections {
        println!("\n{}\n{}", st.bold(&s.title), s.body.trim());
    }
    if !recent.is_empty() {
        println!("\n{}", st.bold("Recent executions"));
        for e in recent {
            println!(
                "  {}  {}  {}",
                e.id,
                render::status(e.status, st),
                render::ago(e.queued_at)
            );
        }
    }
}
