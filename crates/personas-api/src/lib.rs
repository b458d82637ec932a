//! `personas-api`: every operation a Personas UI or CLI can call, declared once.
//!
//! - [`for_each_operation!`] is THE table: name, request type, response type, doc. Everything
//!   else is expanded from it — the [`Operations`] trait (so an implementation that misses one
//!   does not compile), [`OPERATIONS`] (names and docs), [`dispatch`] (by name, for generic
//!   hosts), the TypeScript map `operations.ts` and the OpenAPI document ([`schema`]). A host
//!   expands the same table into its own routes (the HTTP server) or commands (the desktop
//!   shell), so it cannot miss one either.
//! - [`error`]: `{code, message, field}` with the closed [`Code`] enum.
//! - [`event`]: [`ApiEvent`], the one enum for everything streamed, and [`StreamFrame`].
//! - [`api`]: [`Api`], the implementation over the store and the engine.
//! - [`bus`]: the trigger and event-bus operations' types and implementation.
//! - [`system`]: the installation checks shared with `personas doctor`.
//! - [`templates`]: the persona template gallery.
//! - [`local`]: what needs a data dir no process holds (restoring a backup).
//! - [`schema`]: TypeScript (ts-rs) and OpenAPI (schemars) generation.
//!
//! Adding an operation: add its request/response types to [`ops`], a line to the table, and
//! an inherent `pub async fn <name>(&self, req) -> Result<Resp, ApiError>` on [`Api`] in the
//! module that owns the concept (`impl Operations for Api` is generated from the table and
//! calls it); regenerate the TypeScript
//! (`PERSONAS_UPDATE_GENERATED=1 cargo test -p personas-api --test generated`). The server
//! route, the OpenAPI entry and the typed UI client follow by themselves.
#![forbid(unsafe_code)]

pub mod api;
pub mod bus;
pub mod client;
pub mod error;
pub mod event;
pub mod local;
pub mod ops;
pub mod schema;
pub mod system;
pub mod templates;

pub use api::{Api, HostInfo};
pub use client::Client;
pub use error::{ApiError, Code};
pub use event::{ApiEvent, StreamFrame};

/// The operation table. Calls `$callback! { $( docs name: Request => Response, )* }`.
///
/// The callback receives, for each operation, its doc comments (`#[doc = ".."]` attributes),
/// its snake_case name, and its request and response types (paths under `$crate::ops` and
/// `personas_core`, so a front-end expanding the table needs no store dependency).
#[macro_export]
macro_rules! for_each_operation {
    ($callback:ident) => {
        $callback! {
            /// Checks the installation: Claude CLI, its version and auth, data dir, store, runtime.
            system_check: $crate::ops::Empty => $crate::ops::SystemReport,
            /// The runtime's configuration.
            get_settings: $crate::ops::Empty => $crate::ops::Settings,
            /// Saves settings to config.toml (applied at the next start).
            update_settings: $crate::ops::UpdateSettings => $crate::ops::Settings,
            /// Every persona, by name.
            list_personas: $crate::ops::Empty => $crate::ops::PersonaList,
            /// One persona by id or name.
            get_persona: $crate::ops::PersonaRef => personas_core::Persona,
            /// Creates a persona (prompt version 1).
            create_persona: $crate::ops::CreatePersona => personas_core::Persona,
            /// Replaces a persona's settings; a prompt change adds a prompt version.
            update_persona: $crate::ops::UpdatePersona => personas_core::Persona,
            /// Deletes a persona (refused while it runs; history is kept).
            delete_persona: $crate::ops::PersonaRef => personas_core::Persona,
            /// Every prompt version of a persona, oldest first.
            list_prompt_versions: $crate::ops::PersonaRef => $crate::ops::PromptVersionList,
            /// The template gallery.
            list_templates: $crate::ops::Empty => $crate::ops::TemplateList,
            /// Creates a persona from a template.
            create_from_template: $crate::ops::CreateFromTemplate => personas_core::Persona,
            /// Queues a run of a persona now.
            run_persona: $crate::ops::RunPersona => personas_core::Execution,
            /// Executions, newest first.
            list_executions: $crate::ops::ListExecutions => $crate::ops::ExecutionList,
            /// One execution by id or unique prefix.
            get_execution: $crate::ops::ExecutionRef => personas_core::Execution,
            /// A page of an execution's stored output.
            execution_output: $crate::ops::ExecutionOutputRequest => $crate::ops::OutputPage,
            /// Cancels a queued or running execution.
            cancel_execution: $crate::ops::ExecutionRef => personas_core::Execution,
            /// The inbox, newest first.
            list_messages: $crate::ops::ListMessages => $crate::ops::MessageList,
            /// Marks messages read.
            mark_messages_read: $crate::ops::MarkMessagesRead => $crate::ops::Updated,
            /// Memories of one persona or all.
            list_memories: $crate::ops::ListMemories => $crate::ops::MemoryList,
            /// Adds a memory by hand.
            add_memory: $crate::ops::AddMemory => $crate::ops::MemoryRow,
            /// Edits a memory.
            update_memory: $crate::ops::UpdateMemory => $crate::ops::MemoryRow,
            /// Forgets a memory.
            delete_memory: $crate::ops::MemoryRef => $crate::ops::MemoryRow,
            /// Review requests, oldest first.
            list_reviews: $crate::ops::ListReviews => $crate::ops::ReviewList,
            /// Triggers of one persona or all, with schedules' next fires and webhooks' URL (never a secret).
            list_triggers: $crate::bus::ListTriggers => $crate::bus::TriggerList,
            /// Adds a trigger: manual, cron, webhook, event subscription, chain or file watcher. A webhook's secret is in this answer only.
            add_trigger: $crate::bus::AddTrigger => $crate::bus::TriggerView,
            /// Shows a webhook trigger's secret (sealed in the vault) to its owner.
            reveal_webhook_secret: $crate::bus::TriggerRef => $crate::bus::WebhookSecretShown,
            /// Gives a webhook trigger a new secret and shows it; the old one stops working at once.
            rotate_webhook_secret: $crate::bus::TriggerRef => $crate::bus::WebhookSecretShown,
            /// Removes a trigger (events it fired stay in history).
            remove_trigger: $crate::bus::TriggerRef => $crate::bus::TriggerView,
            /// Turns a trigger on or off.
            set_trigger_enabled: $crate::bus::SetTriggerEnabled => $crate::bus::TriggerView,
            /// Fires a trigger by hand now: its persona runs with the payload.
            fire_trigger: $crate::bus::FireTrigger => $crate::ops::EventRow,
            /// Checks a cron expression and time zone and returns its next fire times.
            preview_cron: $crate::bus::PreviewCron => $crate::bus::CronPreview,
            /// Bus events, newest first, with the executions each caused.
            list_events: $crate::bus::ListEvents => $crate::bus::EventList,
            /// One bus event by id or unique prefix, with its deliveries.
            get_event: $crate::bus::EventRef => $crate::bus::EventView,
            /// Publishes an event on the bus (durable before it answers).
            emit_event: $crate::bus::EmitEvent => $crate::ops::EventRow,
            /// Re-queues a dead-lettered, failed or skipped event with fresh attempts.
            retry_event: $crate::bus::EventRef => $crate::ops::EventRow,
            /// Approves or rejects a paused run's review; the run resumes its Claude session.
            decide_review: $crate::ops::DecideReview => $crate::ops::DecidedReview,
            /// Run statistics for charts.
            get_stats: $crate::ops::StatsRequest => $crate::ops::RunStats,
            /// The home screen in one round trip.
            get_dashboard: $crate::ops::DashboardRequest => $crate::ops::Dashboard,
            /// The team canvas layout.
            get_canvas: $crate::ops::Empty => $crate::ops::CanvasLayout,
            /// Saves the team canvas layout.
            save_canvas: $crate::ops::CanvasLayout => $crate::ops::CanvasLayout,
            /// The credential types: fields, which are secret, their variables, the check.
            list_credential_types: $crate::ops::Empty => $crate::ops::CredentialTypeList,
            /// Stored credentials: names, types, variables, non-secret values, last check.
            list_credentials: $crate::ops::Empty => $crate::ops::CredentialList,
            /// One credential (never a secret value).
            get_credential: $crate::ops::CredentialRef => $crate::ops::Credential,
            /// Stores a credential; secret values are sealed and never returned.
            create_credential: $crate::ops::CreateCredential => $crate::ops::Credential,
            /// Replaces a credential's fields; secret fields left out keep their value.
            update_credential: $crate::ops::UpdateCredential => $crate::ops::Credential,
            /// Deletes a credential (refused while personas use it, unless forced).
            delete_credential: $crate::ops::DeleteCredential => $crate::ops::Credential,
            /// Runs a credential's health check now and records the result.
            test_credential: $crate::ops::TestCredential => $crate::ops::CredentialTest,
            /// Where the vault key is, and whether secrets can be stored (with a fix if not).
            vault_status: $crate::ops::Empty => $crate::ops::VaultStatus,
            /// Custom tools and the personas they are attached to.
            list_tools: $crate::ops::Empty => $crate::ops::ToolList,
            /// Defines a custom tool (a command line or an HTTP request).
            create_tool: $crate::ops::CreateTool => $crate::ops::Tool,
            /// Deletes a custom tool (detached from every persona).
            delete_tool: $crate::ops::ToolRef => $crate::ops::Tool,
            /// The credentials and tools a persona is given.
            get_persona_links: $crate::ops::PersonaRef => $crate::ops::PersonaLinks,
            /// The permission policy templates (read-only, edit-in-workspace, full-trust).
            list_permission_templates: $crate::ops::Empty => $crate::ops::PermissionTemplateList,
            /// Notification channels of one persona or all (secret fields are references, never values).
            list_channels: $crate::ops::ListChannels => $crate::ops::ChannelList,
            /// Adds a notification channel (Slack, Telegram, email, webhook, desktop) to a persona.
            add_channel: $crate::ops::AddChannel => $crate::ops::Channel,
            /// Removes a persona's notification channel.
            remove_channel: $crate::ops::ChannelRef => $crate::ops::Channel,
            /// Sends a test notification through a channel now and reports the result.
            test_channel: $crate::ops::ChannelRef => $crate::ops::ChannelTest,
            /// A persona's review, budget and healing policy, the defaults, and its circuit breaker.
            get_policy: $crate::ops::PersonaRef => $crate::ops::PersonaPolicy,
            /// Replaces a persona's policy (daily/monthly budget caps, review deadline, healing).
            update_policy: $crate::ops::UpdatePolicy => $crate::ops::PersonaPolicy,
            /// Closes a paused persona's circuit breaker so it runs again.
            resume_persona: $crate::ops::PersonaRef => $crate::ops::PersonaPolicy,
            /// Open healing issues (all with `all`) and circuit breakers that are not closed.
            list_healing: $crate::ops::ListHealing => $crate::ops::HealingList,
            /// Marks a healing issue resolved.
            resolve_issue: $crate::ops::IssueRef => $crate::ops::IssueRow,
            /// The runtime's counters (named internal events) and gauges; `GET /metrics` serves them as Prometheus text.
            get_metrics: $crate::ops::Empty => $crate::ops::Metrics,
            /// One custom tool: its call, the usage text a run's prompt gets, the personas it is attached to.
            get_tool: $crate::ops::ToolRef => $crate::ops::Tool,
            /// Re-encrypts every credential and webhook secret under a new vault key (all or nothing).
            rotate_vault: $crate::ops::RotateVault => $crate::ops::VaultRotated,
            /// Writes a consistent copy of the store to a new file (0600) while it is in use.
            backup_store: $crate::ops::BackupStore => $crate::ops::Backup,
            /// Applies the `[retention]` policy now and reports what it removed (or would).
            run_gc: $crate::ops::RunGc => $crate::ops::GcResult,
            /// A persona as a shareable file (YAML or JSON); the personas it may start by name.
            export_persona: $crate::ops::ExportPersona => $crate::ops::PersonaFileText,
            /// Creates (or with `replace`, updates) a persona from a file; refused naming each grant beyond what it holds unless `grant`.
            import_persona: $crate::ops::ImportPersona => $crate::ops::ImportedPersona,
            /// Connects to a Personas cloud: checks the orchestrator answers the token (`whoami`), keeps the URL in the store and the token sealed in the vault.
            cloud_connect: $crate::ops::CloudConnect => $crate::ops::CloudStatus,
            /// The cloud connection and, when the orchestrator answers, its cluster and this month's usage; an unreachable one is a status, not an error.
            cloud_status: $crate::ops::Empty => $crate::ops::CloudStatus,
            /// Forgets the cloud connection and its token (mirrored runs stay in history).
            cloud_disconnect: $crate::ops::Empty => $crate::ops::CloudDisconnected,
            /// Pushes a persona (its file and linked credentials, sealed in the cloud on arrival) under its local id.
            push_persona: $crate::ops::PushPersona => $crate::ops::PushedPersona,
            /// Runs a pushed persona in the cloud; the run is mirrored into the local store as it goes (same id, statuses and output, trigger `cloud`).
            cloud_execute: $crate::ops::CloudExecute => personas_core::Execution,
            /// The cloud's executions with their attempts and workers, newest first.
            list_cloud_executions: $crate::ops::ListCloudExecutions => $crate::ops::CloudExecutionList,
        }
    };
}

/// Name and documentation of one operation.
#[derive(Debug, Clone, Copy)]
pub struct OperationInfo {
    pub name: &'static str,
    pub doc: &'static str,
}

macro_rules! define_operations {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        /// One method per operation of the table. Implemented by [`Api`] (generated below from its
        /// inherent methods) and by remote clients; a host calls these.
        pub trait Operations: Send + Sync {
            $(
                $(#[doc = $doc])*
                fn $name(&self, req: $req)
                    -> impl std::future::Future<Output = Result<$resp, ApiError>> + Send;
            )*
        }

        /// The table calls the implementation directly: each operation is an inherent
        /// `Api::<name>` in the module that owns it (`api.rs`, `api/access.rs`,
        /// `api/oversight.rs`, `bus.rs`), so a missing one fails to compile here.
        impl Operations for Api {
            $(
                fn $name(&self, req: $req)
                    -> impl std::future::Future<Output = Result<$resp, ApiError>> + Send {
                    Api::$name(self, req)
                }
            )*
        }

        /// Every operation, in table order.
        pub const OPERATIONS: &[OperationInfo] = &[
            $( OperationInfo { name: stringify!($name), doc: concat!($($doc),*) } ),*
        ];

        /// Calls an operation by name with a JSON request; for hosts that route generically.
        pub async fn dispatch<O: Operations>(
            ops: &O,
            name: &str,
            input: serde_json::Value,
        ) -> Result<serde_json::Value, ApiError> {
            match name {
                $(
                    stringify!($name) => {
                        let req: $req = schema::parse_request(input)?;
                        let resp = ops.$name(req).await?;
                        serde_json::to_value(resp)
                            .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))
                    }
                )*
                other => Err(ApiError::new(
                    Code::UnknownOperation,
                    format!("no operation named {other:?}"),
                )),
            }
        }

        /// An operation's request type as a self-contained JSON Schema ([`schema::json_schema`]);
        /// `None` for a name that is not an operation.
        pub(crate) fn request_schema_of(name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
            match name {
                $( stringify!($name) => Some(schema::json_schema::<$req>()), )*
                _ => None,
            }
        }

        impl schema::Generator {
            /// Visits every operation's request and response types.
            pub(crate) fn visit_operations(&mut self) -> Result<(), String> {
                $( self.operation::<$req, $resp>(stringify!($name), concat!($($doc),*))?; )*
                Ok(())
            }
        }
    };
}

for_each_operation!(define_operations);
