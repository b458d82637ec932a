//! `personas credential add|update|list|show|test|remove|types` and `personas vault status|rotate`.
//!
//! Values are never printed, never taken from a listing, and a value left out of `--field`
//! is prompted for without echo (or read as one line from a non-terminal stdin, for scripts) —
//! reading them stays here; storing them is the `create_credential` operation, which seals
//! them in the vault of the process holding the data dir.

use super::{flag_error, print_json};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{
    CreateCredential, Credential, CredentialRef, CredentialType, DeleteCredential, Empty,
    RotateVault, TestCredential, TestStatus, UpdateCredential, VaultMode,
};
use personas_engine::vault::VaultOptions;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

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
    /// Change a credential: new values (secret fields left out keep theirs), variables, name.
    Update {
        name: String,
        /// KEY=VALUE, or just KEY to be prompted without echo (or to read one line from stdin
        /// when it is not a terminal). Repeatable.
        #[arg(long = "field", value_name = "KEY[=VALUE]")]
        fields: Vec<String>,
        /// FIELD=VARIABLE: expose a field under another environment variable name.
        #[arg(long = "env", value_name = "FIELD=VARIABLE")]
        env: Vec<String>,
        /// Remove an optional field's value. Repeatable.
        #[arg(long, value_name = "FIELD")]
        clear: Vec<String>,
        /// A new name.
        #[arg(long, value_name = "NAME")]
        rename: Option<String>,
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
    /// Where the vault key lives, its generation, and whether credentials can be used now.
    Status,
    /// Re-encrypt every credential under a new random key (all or nothing).
    /// With PERSONAS_VAULT_NEW_PASSPHRASE set, a passphrase vault also gets a new passphrase.
    Rotate,
}

pub(crate) fn vault_options() -> VaultOptions {
    VaultOptions::from_env(|k| std::env::var(k).ok())
}

/// Parses `--field` values: `KEY=VALUE` pairs, and keys whose value must be read.
fn parse_fields(raw: &[String]) -> CliResult<(BTreeMap<String, String>, Vec<String>)> {
    let mut given = BTreeMap::new();
    let mut ask = Vec::new();
    for f in raw {
        match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                given.insert(k.to_string(), v.to_string());
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
fn read_value(kind: &str, field: &str, secret: bool) -> CliResult<String> {
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
        Ok(v.trim_end_matches(['\r', '\n']).to_string())
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
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// The credential type `kind`, from the `list_credential_types` operation.
async fn credential_type(client: &personas_api::Client, kind: &str) -> CliResult<CredentialType> {
    let types = client.list_credential_types(Empty {}).await?.types;
    let known: Vec<&str> = types.iter().map(|t| t.kind.as_str()).collect();
    let hint = format!("types: {}", known.join(", "));
    types.into_iter().find(|t| t.kind == kind).ok_or_else(|| {
        CliError::usage(format!("--type: unknown credential type {kind:?}")).with_hint(format!(
            "{hint}; `personas credential types` describes them"
        ))
    })
}

/// `credential add`: checks what can be checked, asks for the values not given, stores.
async fn add(
    ctx: &mut Context,
    name: String,
    kind: String,
    fields: Vec<String>,
    env: Vec<String>,
) -> CliResult<()> {
    let client = ctx.client()?;
    let (mut values, ask) = parse_fields(&fields)?;
    let env_overrides = parse_env(&env)?;
    let t = credential_type(&client, &kind).await?;
    let field = |name: &str| t.fields.iter().find(|f| f.name == name);
    // Everything checkable is checked before anyone is asked to type a secret.
    if let Some(unknown) = values.keys().chain(ask.iter()).find(|k| field(k).is_none()) {
        let names: Vec<&str> = t.fields.iter().map(|f| f.name.as_str()).collect();
        return Err(CliError::usage(format!(
            "--field {unknown}: {kind} credentials have no field {unknown:?}; fields: {}",
            names.join(", ")
        )));
    }
    let on_command_line: Vec<&str> = values
        .keys()
        .filter(|k| field(k).is_some_and(|f| f.secret))
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
    let missing: Vec<String> = t
        .fields
        .iter()
        .filter(|f| f.required && !values.contains_key(&f.name) && !ask.contains(&f.name))
        .map(|f| f.name.clone())
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
    for f in ask.iter().chain(missing.iter()) {
        let secret = field(f).is_some_and(|s| s.secret);
        values.insert(f.clone(), read_value(&kind, f, secret)?);
    }
    let req = CreateCredential {
        name,
        kind,
        fields: values,
        env: (!env_overrides.is_empty()).then_some(env_overrides),
    };
    let c = client
        .create_credential(req)
        .await
        .map_err(credential_error)?;
    if ctx.json {
        print_json(&c);
    } else {
        println!(
            "stored credential {} ({})",
            Style::detect().bold(&c.name),
            c.kind
        );
    }
    Ok(())
}

/// Parses `--env FIELD=VARIABLE` values.
fn parse_env(raw: &[String]) -> CliResult<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for e in raw {
        let (f, v) = e
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--env {e:?}: write FIELD=VARIABLE")))?;
        env.insert(f.to_string(), v.to_string());
    }
    Ok(env)
}

/// `credential update`: asks for the values named without one, then replaces what was given.
async fn update(
    ctx: &mut Context,
    name: String,
    fields: Vec<String>,
    env: Vec<String>,
    clear: Vec<String>,
    rename: Option<String>,
) -> CliResult<()> {
    let client = ctx.client()?;
    let (mut values, ask) = parse_fields(&fields)?;
    let env = parse_env(&env)?;
    if !ask.is_empty() {
        let c = client
            .get_credential(CredentialRef {
                credential: name.clone(),
            })
            .await?;
        for f in &ask {
            let spec = c.fields.iter().find(|x| &x.field == f).ok_or_else(|| {
                CliError::usage(format!(
                    "--field {f}: {} credentials have no field {f:?}",
                    c.kind
                ))
            })?;
            values.insert(f.clone(), read_value(&c.kind, f, spec.secret)?);
        }
    }
    let req = UpdateCredential {
        credential: name,
        name: rename,
        fields: values,
        env: (!env.is_empty()).then_some(env),
        clear: (!clear.is_empty()).then_some(clear),
    };
    let c = client
        .update_credential(req)
        .await
        .map_err(credential_error)?;
    if ctx.json {
        print_json(&c);
    } else {
        println!(
            "updated credential {} ({})",
            Style::detect().bold(&c.name),
            c.kind
        );
    }
    Ok(())
}

/// Request fields named like the command's flags: `kind` is `--type`, `fields.X` `--field X`.
fn credential_error(e: personas_api::ApiError) -> CliError {
    match e.field.as_deref() {
        Some("kind") => CliError::usage(format!(
            "--type{}",
            e.message.strip_prefix("kind").unwrap_or(&e.message)
        )),
        Some(f) if f.starts_with("fields.") || f.starts_with("env.") => {
            CliError::usage(e.message.clone())
        }
        _ => flag_error(e),
    }
}

/// Variables a credential sets (its fields with a value, stored or defaulted).
fn variables(c: &Credential) -> String {
    c.fields
        .iter()
        .filter(|f| f.set)
        .map(|f| f.variable.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_text(c: &Credential) -> String {
    match &c.last_check {
        Some(check) if check.ok => format!("ok {}", render::ago(check.at)),
        Some(check) => format!(
            "failed {}: {}",
            render::ago(check.at),
            check.error.as_deref().unwrap_or("?")
        ),
        None => "never".into(),
    }
}

pub async fn run(ctx: &mut Context, cmd: CredentialCmd) -> CliResult<ExitCode> {
    let st = Style::detect();
    let client = ctx.client()?;
    match cmd {
        CredentialCmd::Add {
            name,
            kind,
            fields,
            env,
        } => add(ctx, name, kind, fields, env).await?,
        CredentialCmd::Update {
            name,
            fields,
            env,
            clear,
            rename,
        } => update(ctx, name, fields, env, clear, rename).await?,
        CredentialCmd::List => {
            let list = client.list_credentials(Empty {}).await?;
            if ctx.json {
                print_json(&list);
            } else if list.credentials.is_empty() {
                println!(
                    "no credentials yet — add one with `personas credential add NAME --type TYPE --field KEY=VALUE`"
                );
            } else {
                let rows: Vec<Vec<String>> = list
                    .credentials
                    .iter()
                    .map(|c| vec![c.name.clone(), c.kind.clone(), variables(c), check_text(c)])
                    .collect();
                println!(
                    "{}",
                    render::table(&["NAME", "TYPE", "VARIABLES", "LAST CHECK"], &rows)
                );
            }
        }
        CredentialCmd::Show { name } => {
            let c = client
                .get_credential(CredentialRef { credential: name })
                .await?;
            if ctx.json {
                print_json(&c);
            } else {
                print_credential(&c, st);
            }
        }
        CredentialCmd::Test { name, timeout } => {
            let req = TestCredential {
                credential: name,
                timeout_secs: Some(timeout),
            };
            let t = client.test_credential(req).await.map_err(|e| {
                if e.field.as_deref() == Some("timeout_secs") {
                    CliError::usage(format!("--timeout {timeout}: {}", e.message))
                } else {
                    e.into()
                }
            })?;
            if ctx.json {
                print_json(&t);
            }
            let name = &t.credential.name;
            return Ok(match t.status {
                TestStatus::Ok => {
                    if !ctx.json {
                        println!("{} {name}: {}", st.green("ok"), t.detail);
                    }
                    ExitCode::SUCCESS
                }
                TestStatus::Failed => {
                    if !ctx.json {
                        println!("{} {name}: {}", st.red("failed"), t.detail);
                    }
                    ExitCode::from(1)
                }
                TestStatus::Unsupported => {
                    if !ctx.json {
                        println!("{} {name}: {}", st.yellow("not checked"), t.detail);
                    }
                    ExitCode::SUCCESS
                }
            });
        }
        CredentialCmd::Remove { name, force } => {
            let req = DeleteCredential {
                credential: name,
                force: Some(force),
            };
            let c = client.delete_credential(req).await?;
            if ctx.json {
                print_json(&c);
            } else {
                println!("deleted credential {} and its encrypted values", c.name);
            }
        }
        CredentialCmd::Types => {
            let list = client.list_credential_types(Empty {}).await?;
            if ctx.json {
                print_json(&list);
            } else {
                print_types(&list.types, st);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_credential(c: &Credential, st: Style) {
    println!("{} {}", st.bold(&c.name), st.dim(&c.kind));
    let rows: Vec<Vec<String>> = c
        .fields
        .iter()
        .filter(|f| f.set)
        .map(|f| {
            vec![
                f.field.clone(),
                f.variable.clone(),
                match &f.value {
                    Some(v) => v.clone(),
                    None => "•••••• (encrypted)".into(),
                },
            ]
        })
        .collect();
    println!("{}", render::table(&["FIELD", "VARIABLE", "VALUE"], &rows));
    println!("last check: {}", check_text(c));
    println!(
        "used by: {}",
        if c.personas.is_empty() {
            "-".into()
        } else {
            c.personas.join(", ")
        }
    );
}

fn print_types(types: &[CredentialType], st: Style) {
    for t in types {
        println!("{} — {}", st.bold(&t.kind), t.label);
        for f in &t.fields {
            let mut notes = Vec::new();
            if f.secret {
                notes.push("secret".to_string());
            }
            if !f.required && f.default.is_none() {
                notes.push("optional".into());
            }
            if let Some(d) = &f.default {
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

pub async fn vault(ctx: &mut Context, cmd: VaultCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        VaultCmd::Status => {
            let s = client.vault_status(Empty {}).await?;
            if ctx.json {
                print_json(&s);
            } else if !s.created {
                println!(
                    "no vault yet: it is created with the first credential (in the OS keychain, or under PERSONAS_VAULT_PASSPHRASE)"
                );
            } else {
                println!(
                    "vault key: {} · generation {}{}",
                    match s.mode {
                        VaultMode::Keychain => "in the OS keychain",
                        _ => "wrapped under a passphrase (Argon2id)",
                    },
                    s.generation.unwrap_or(0),
                    s.rotated_at
                        .map(|t| format!(" · rotated {}", render::ago(t)))
                        .unwrap_or_default()
                );
                if let Some(problem) = &s.problem {
                    println!("problem: {problem}");
                }
            }
        }
        VaultCmd::Rotate => {
            // The new passphrase goes to whichever process holds the data dir (over the
            // runtime's loopback API, behind its token), like a credential's values.
            let req = RotateVault {
                new_passphrase: std::env::var("PERSONAS_VAULT_NEW_PASSPHRASE")
                    .ok()
                    .filter(|p| !p.is_empty()),
            };
            let r = client.rotate_vault(req).await?;
            if ctx.json {
                print_json(&r);
            } else {
                println!(
                    "rotated the vault key: {} value(s) re-encrypted, generation {}",
                    r.resealed, r.generation
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
