//! `personas credential add|list|show|test|remove|types` and `personas vault status|rotate`.
//!
//! Values are never printed, never taken from a listing, and a value left out of `--field`
//! is prompted for without echo (or read as one line from a non-terminal stdin, for scripts).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_core::Secret;
use personas_core::connector::TEMPLATES;
use personas_engine::credentials::{self, CredentialError, CredentialInput, check};
use personas_engine::vault::{Vault, VaultError, VaultOptions};
use personas_store::{CredentialRow, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Store a credential in the vault (values are encrypted; secrets never shown again).
    Add {
        /// Name personas refer to it by (letters, digits, '_', '-', '.').
        name: String,
        /// Credential type; `personas credential types` lists them.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// KEY=VALUE, or just KEY to be prompted without echo (or to read one line from stdin
        /// when it is not a terminal). Repeatable. Required fields left out are prompted for.
        #[arg(long = "field", value_name = "KEY[=VALUE]")]
        fields: Vec<String>,
        /// FIELD=VARIABLE: expose a field under another environment variable name.
        #[arg(long = "env", value_name = "FIELD=VARIABLE")]
        env: Vec<String>,
    },
    /// List credentials: names, types, variables, last check. Never values.
    List,
    /// One credential: fields (non-secret values only), variables, linked personas.
    Show { name: String },
    /// Run the credential's health check now and record the result.
    Test {
        name: String,
        /// Seconds to wait for the service.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        timeout: f64,
    },
    /// Delete a credential and its encrypted values.
    Remove {
        name: String,
        /// Also unlink it from the personas that use it.
        #[arg(long)]
        force: bool,
    },
    /// The credential types, their fields and variables.
    Types,
}

#[derive(Subcommand, Debug)]
pub enum VaultCmd {
    /// Where the vault key lives and its generation (does not unlock it).
    Status,
    /// Re-encrypt every credential under a new random key (all or nothing).
    /// With PERSONAS_VAULT_NEW_PASSPHRASE set, a passphrase vault also gets a new passphrase.
    Rotate,
}

impl From<CredentialError> for CliError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Store(s) => s.into(),
            CredentialError::Vault(v) => v.into(),
            other => {
                if other.is_user_error() {
                    CliError::usage(other.to_string())
                } else {
                    CliError::runtime(other.to_string())
                }
            }
        }
    }
}

impl From<VaultError> for CliError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(s) => s.into(),
            e if e.is_user_error() => CliError::usage(e.to_string()),
            e => CliError::runtime(e.to_string()),
        }
    }
}

pub(crate) fn vault_options() -> VaultOptions {
    VaultOptions::from_env(|k| std::env::var(k).ok())
}

/// Parses `--field` values: `KEY=VALUE` pairs, and keys whose value must be read.
fn parse_fields(raw: &[String]) -> CliResult<(BTreeMap<String, Secret>, Vec<String>)> {
    let mut given = BTreeMap::new();
    let mut ask = Vec::new();
    for f in raw {
        match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                given.insert(k.to_string(), Secret::new(v));
            }
            None if !f.is_empty() => ask.push(f.clone()),
            _ => {
                return Err(CliError::usage(format!(
                    "--field {f:?}: write KEY=VALUE, or KEY to be prompted"
                )));
            }
        }
    }
    Ok((given, ask))
}

/// Reads a value: prompt without echo on a terminal, else one line of stdin.
fn read_value(kind: &str, field: &str, secret: bool) -> CliResult<Secret> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let prompt = format!("{kind} {field}: ");
        let v = if secret {
            rpassword::prompt_password(&prompt)
        } else {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
            let mut s = String::new();
            stdin.lock().read_line(&mut s).map(|_| s)
        }
        .map_err(|e| CliError::runtime(format!("cannot read {field}: {e}")))?;
        Ok(Secret::new(v.trim_end_matches(['\r', '\n'])))
    } else {
        let mut line = String::new();
        let n = stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("cannot read field {field} from stdin: {e}")))?;
        if n == 0 {
            return Err(CliError::usage(format!(
                "field {field}: no value given and stdin is empty; pass --field {field}=VALUE"
            )));
        }
        Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
    }
}

/// Variables of the fields a credential sets (stored or defaulted).
fn variables(row: &CredentialRow, store: &Store) -> CliResult<Vec<String>> {
    Ok(credentials::field_states(store, row)?
        .into_iter()
        .filter(|f| f.set)
        .map(|f| f.variable)
        .collect())
}

pub async fn run(ctx: &mut Context, cmd: CredentialCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        CredentialCmd::Add {
            name,
            kind,
            fields,
            env,
        } => {
            let (mut values, ask) = parse_fields(&fields)?;
            let mut env_overrides = BTreeMap::new();
            for e in env {
                let (f, v) = e
                    .split_once('=')
                    .ok_or_else(|| CliError::usage(format!("--env {e:?}: write FIELD=VARIABLE")))?;
                env_overrides.insert(f.to_string(), v.to_string());
            }
            let t = credentials::template(&kind)?;
            let on_command_line: Vec<&str> = values
                .keys()
                .filter(|k| t.field(k).is_some_and(|f| f.secret))
                .map(String::as_str)
                .collect();
            if !on_command_line.is_empty() {
                eprintln!(
                    "warning: the value of {} was given on the command line, where process \
                     listings and shell history can show it; next time write --field {} \
                     alone to be prompted for it",
                    on_command_line.join(", "),
                    on_command_line[0]
                );
            }
            let mut input = CredentialInput {
                name,
                kind: kind.clone(),
                fields: values.clone(),
                env_overrides,
            };
            // Everything checkable is checked before anyone is asked to type a secret.
            for f in &ask {
                if t.field(f).is_none() {
                    input.fields.insert(f.clone(), Secret::new("placeholder"));
                }
            }
            let mut missing: Vec<String> = credentials::check_input(&input)?
                .into_iter()
                .map(String::from)
                .collect();
            if !std::io::stdin().is_terminal() && !missing.is_empty() && ask.is_empty() {
                return Err(CliError::usage(format!(
                    "field {}: is required for {kind} credentials",
                    missing[0]
                ))
                .with_hint(format!(
                    "pass --field {0}=VALUE, or --field {0} to read it from stdin",
                    missing[0]
                )));
            }
            missing.retain(|m| !ask.contains(m));
            for f in ask.iter().chain(missing.iter()) {
                let secret = t.field(f).is_some_and(|s| s.secret);
                values.insert(f.clone(), read_value(&kind, f, secret)?);
            }
            input.fields = values;
            let opts = vault_options();
            let row = tokio::task::spawn_blocking(move || credentials::add(&store, &opts, &input))
                .await
                .map_err(|e| CliError::runtime(format!("adding the credential failed: {e}")))??;
            if ctx.json {
                print_json(&row);
            } else {
                println!("stored credential {} ({})", st.bold(&row.name), row.kind);
            }
        }
        CredentialCmd::List => {
            let list = store.credentials().list()?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                println!(
                    "no credentials yet — add one with `personas credential add NAME --type TYPE --field KEY=VALUE`"
                );
            } else {
                let mut rows = Vec::new();
                for c in &list {
                    let vars = variables(c, &store)?.join(", ");
                    rows.push(vec![c.name.clone(), c.kind.clone(), vars, check_text(c)]);
                }
                println!(
                    "{}",
                    render::table(&["NAME", "TYPE", "VARIABLES", "LAST CHECK"], &rows)
                );
            }
        }
        CredentialCmd::Show { name } => {
            let c = store.credentials().find(&name)?;
            let personas = store.credentials().linked_personas(&c.id)?;
            let fields: Vec<serde_json::Value> = credentials::field_states(&store, &c)?
                .into_iter()
                .filter(|f| f.set)
                .map(|f| {
                    json!({"field": f.field, "variable": f.variable, "secret": f.secret, "value": f.value})
                })
                .collect();
            if ctx.json {
                print_json(&json!({"credential": c, "fields": fields, "personas": personas}));
            } else {
                println!("{} {}", st.bold(&c.name), st.dim(&c.kind));
                let rows: Vec<Vec<String>> = fields
                    .iter()
                    .map(|f| {
                        vec![
                            f["field"].as_str().unwrap_or_default().to_string(),
                            f["variable"].as_str().unwrap_or_default().to_string(),
                            match f["value"].as_str() {
                                Some(v) => v.to_string(),
                                None => "•••••• (encrypted)".into(),
                            },
                        ]
                    })
                    .collect();
                println!("{}", render::table(&["FIELD", "VARIABLE", "VALUE"], &rows));
                println!("last check: {}", check_text(&c));
                println!(
                    "used by: {}",
                    if personas.is_empty() {
                        "-".into()
                    } else {
                        personas.join(", ")
                    }
                );
            }
        }
        CredentialCmd::Test { name, timeout } => {
            if !(timeout.is_finite() && timeout > 0.0 && timeout <= 300.0) {
                return Err(CliError::usage(format!(
                    "--timeout {timeout}: must be between 0 and 300 seconds"
                )));
            }
            let opts = vault_options();
            let s2 = store.clone();
            let opened = tokio::task::spawn_blocking(move || {
                credentials::open_named(&s2, &name, &mut || {
                    Vault::open(&s2, &opts)?.map(Arc::new).ok_or_else(|| {
                        VaultError::Corrupt(
                            "credentials exist but the vault record is missing".into(),
                        )
                    })
                })
            })
            .await
            .map_err(|e| CliError::runtime(format!("opening the credential failed: {e}")))??;
            let outcome = check::run(&opened, Duration::from_secs_f64(timeout)).await;
            check::record(&store, &opened, &outcome)?;
            if ctx.json {
                print_json(&json!({"credential": opened.row.name, "check": outcome}));
            }
            return Ok(match outcome {
                check::CheckOutcome::Ok { detail } => {
                    if !ctx.json {
                        println!("{} {}: {detail}", st.green("ok"), opened.row.name);
                    }
                    ExitCode::SUCCESS
                }
                check::CheckOutcome::Failed { error } => {
                    if !ctx.json {
                        println!("{} {}: {error}", st.red("failed"), opened.row.name);
                    }
                    ExitCode::from(1)
                }
                check::CheckOutcome::Unsupported { reason } => {
                    if !ctx.json {
                        println!("{} {}: {reason}", st.yellow("not checked"), opened.row.name);
                    }
                    ExitCode::SUCCESS
                }
            });
        }
        CredentialCmd::Remove { name, force } => {
            let c = store.credentials().remove(&name, force)?;
            if ctx.json {
                print_json(&json!({"deleted": c.id, "name": c.name}));
            } else {
                println!("deleted credential {} and its encrypted values", c.name);
            }
        }
        CredentialCmd::Types => {
            if ctx.json {
                print_json(&TEMPLATES);
            } else {
                for t in TEMPLATES {
                    println!("{} — {}", st.bold(t.kind), t.label);
                    for f in t.fields {
                        let mut notes = Vec::new();
                        if f.secret {
                            notes.push("secret".to_string());
                        }
                        if !f.required {
                            notes.push("optional".into());
                        }
                        if let Some(d) = f.default {
                            notes.push(format!("default {d}"));
                        }
                        println!(
                            "    {:<10} {:<22} {}{}",
                            f.name,
                            f.env,
                            f.description,
                            if notes.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", notes.join(", "))
                            }
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_text(c: &CredentialRow) -> String {
    match (c.last_checked_at, c.last_check_ok) {
        (Some(at), Some(true)) => format!("ok {}", render::ago(at)),
        (Some(at), Some(false)) => format!(
            "failed {}: {}",
            render::ago(at),
            c.last_check_error.as_deref().unwrap_or("?")
        ),
        _ => "never".into(),
    }
}

pub async fn vault(ctx: &mut Context, cmd: VaultCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        VaultCmd::Status => {
            let s = Vault::status(&store)?;
            if ctx.json {
                print_json(&s);
            } else if !s.created {
                println!(
                    "no vault yet: it is created with the first credential (in the OS keychain, or under PERSONAS_VAULT_PASSPHRASE)"
                );
            } else {
                println!(
                    "vault key: {} · generation {}{}",
                    match s.key_source.as_deref() {
                        Some("keychain") => "in the OS keychain",
                        _ => "wrapped under a passphrase (Argon2id)",
                    },
                    s.generation.unwrap_or(0),
                    s.rotated_at
                        .map(|t| format!(" · rotated {}", render::ago(t)))
                        .unwrap_or_default()
                );
            }
        }
        VaultCmd::Rotate => {
            if !Vault::status(&store)?.created {
                return Err(CliError::usage(
                    "there is no vault yet: nothing to rotate (it is created with the first credential)",
                ));
            }
            let opts = vault_options();
            let s2 = store.clone();
            let (n, generation) = tokio::task::spawn_blocking(move || {
                let mut v = Vault::open(&s2, &opts)?.ok_or_else(|| {
                    VaultError::Corrupt("there is no vault yet: nothing to rotate".into())
                })?;
                let n = v.rotate(&opts)?;
                Ok::<_, VaultError>((n, v.generation()))
            })
            .await
            .map_err(|e| CliError::runtime(format!("the rotation failed: {e}")))??;
            if ctx.json {
                print_json(&json!({"resealed": n, "generation": generation}));
            } else {
                println!(
                    "rotated the vault key: {n} value(s) re-encrypted, generation {generation}"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
