//! `personas tool add|list|show|remove`: custom tools personas can be given
//! (`persona create|update --tool NAME`); each attached tool is documented in the run's prompt.
//! Each subcommand is one operation (`create_tool`, `list_tools`, `get_tool`, `delete_tool`).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{CreateTool, Empty, ToolCall, ToolRef};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ToolCmd {
    /// Define a tool: a command line (--command) or an HTTP request (--url). Credential values
    /// are referenced as environment variables, e.g. -H "Authorization: Bearer $GITHUB_TOKEN".
    Add {
        name: String,
        /// What it does; the agent reads this.
        #[arg(long)]
        description: String,
        /// The command line the agent runs.
        #[arg(long, conflicts_with_all = ["url", "method", "header", "body"])]
        command: Option<String>,
        /// The request URL.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "GET")]
        method: String,
        /// "Name: value", repeatable.
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
        header: Vec<String>,
        #[arg(long)]
        body: Option<String>,
        /// JSON Schema of the tool's input.
        #[arg(long, value_name = "JSON")]
        input_schema: Option<String>,
    },
    List,
    Show {
        name: String,
    },
    /// Delete a tool (it is detached from every persona).
    Remove {
        name: String,
    },
}

/// The call `tool add` describes: a command line, or an HTTP request.
fn call_of(
    command: Option<String>,
    url: Option<String>,
    method: String,
    header: Vec<String>,
    body: Option<String>,
) -> CliResult<ToolCall> {
    match (command, url) {
        (Some(command), None) => Ok(ToolCall::Command { command }),
        (None, Some(url)) => {
            let mut headers = Vec::new();
            for h in header {
                let (k, v) = h.split_once(':').ok_or_else(|| {
                    CliError::usage(format!("--header {h:?}: write \"Name: value\""))
                })?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            Ok(ToolCall::Http {
                method: method.to_ascii_uppercase(),
                url,
                headers,
                body,
            })
        }
        _ => Err(CliError::usage(
            "a tool needs exactly one of --command or --url",
        )),
    }
}

pub async fn run(ctx: &mut Context, cmd: ToolCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let st = Style::detect();
    match cmd {
        ToolCmd::Add {
            name,
            description,
            command,
            url,
            method,
            header,
            body,
            input_schema,
        } => {
            let call = call_of(command, url, method, header, body)?;
            let input_schema = match input_schema {
                Some(s) => Some(
                    serde_json::from_str(&s)
                        .map_err(|e| CliError::usage(format!("--input-schema is not JSON: {e}")))?,
                ),
                None => None,
            };
            let req = CreateTool {
                name,
                description,
                call,
                input_schema,
            };
            let t = client.create_tool(req).await.map_err(super::flag_error)?;
            if ctx.json {
                print_json(&t);
            } else {
                println!("defined tool {}", st.bold(&t.name));
            }
        }
        ToolCmd::List => {
            let list = client.list_tools(Empty {}).await?;
            if ctx.json {
                print_json(&list);
            } else if list.tools.is_empty() {
                println!(
                    "no tools yet — define one with `personas tool add NAME --description TEXT --command CMD`"
                );
            } else {
                let rows: Vec<Vec<String>> = list
                    .tools
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            match t.call {
                                ToolCall::Command { .. } => "command".into(),
                                ToolCall::Http { .. } => "http".into(),
                            },
                            t.description.clone(),
                        ]
                    })
                    .collect();
                println!("{}", render::table(&["NAME", "KIND", "DESCRIPTION"], &rows));
            }
        }
        ToolCmd::Show { name } => {
            let t = client.get_tool(ToolRef { tool: name }).await?;
            if ctx.json {
                print_json(&t);
            } else {
                let schema = match t.input_schema.as_object() {
                    Some(o) if !o.is_empty() => {
                        format!("\nInput (JSON Schema): {}", t.input_schema)
                    }
                    _ => String::new(),
                };
                println!(
                    "{}\n{}{schema}\n\n{}",
                    st.bold(&t.name),
                    t.description.trim(),
                    t.usage
                );
            }
        }
        ToolCmd::Remove { name } => {
            let t = client.delete_tool(ToolRef { tool: name }).await?;
            if ctx.json {
                print_json(&t);
            } else {
                println!("deleted tool {}", t.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
