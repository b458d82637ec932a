// Generated from the operation table in crates/personas-api. Do not edit.
import type { AddChannel } from "./AddChannel";
import type { AddMemory } from "./AddMemory";
import type { AddTrigger } from "./AddTrigger";
import type { Backup } from "./Backup";
import type { BackupStore } from "./BackupStore";
import type { CanvasLayout } from "./CanvasLayout";
import type { Channel } from "./Channel";
import type { ChannelList } from "./ChannelList";
import type { ChannelRef } from "./ChannelRef";
import type { ChannelTest } from "./ChannelTest";
import type { CloudConnect } from "./CloudConnect";
import type { CloudDisconnected } from "./CloudDisconnected";
import type { CloudExecute } from "./CloudExecute";
import type { CloudExecutionList } from "./CloudExecutionList";
import type { CloudStatus } from "./CloudStatus";
import type { CreateCredential } from "./CreateCredential";
import type { CreateFromTemplate } from "./CreateFromTemplate";
import type { CreatePersona } from "./CreatePersona";
import type { CreateTool } from "./CreateTool";
import type { Credential } from "./Credential";
import type { CredentialList } from "./CredentialList";
import type { CredentialRef } from "./CredentialRef";
import type { CredentialTest } from "./CredentialTest";
import type { CredentialTypeList } from "./CredentialTypeList";
import type { CronPreview } from "./CronPreview";
import type { Dashboard } from "./Dashboard";
import type { DashboardRequest } from "./DashboardRequest";
import type { DecideReview } from "./DecideReview";
import type { DecidedReview } from "./DecidedReview";
import type { DeleteCredential } from "./DeleteCredential";
import type { EmitEvent } from "./EmitEvent";
import type { Empty } from "./Empty";
import type { EventList } from "./EventList";
import type { EventRef } from "./EventRef";
import type { EventRow } from "./EventRow";
import type { EventView } from "./EventView";
import type { Execution } from "./Execution";
import type { ExecutionList } from "./ExecutionList";
import type { ExecutionOutputRequest } from "./ExecutionOutputRequest";
import type { ExecutionRef } from "./ExecutionRef";
import type { ExportPersona } from "./ExportPersona";
import type { FireTrigger } from "./FireTrigger";
import type { GcResult } from "./GcResult";
import type { HealingList } from "./HealingList";
import type { ImportPersona } from "./ImportPersona";
import type { ImportedPersona } from "./ImportedPersona";
import type { IssueRef } from "./IssueRef";
import type { IssueRow } from "./IssueRow";
import type { ListChannels } from "./ListChannels";
import type { ListCloudExecutions } from "./ListCloudExecutions";
import type { ListEvents } from "./ListEvents";
import type { ListExecutions } from "./ListExecutions";
import type { ListHealing } from "./ListHealing";
import type { ListMemories } from "./ListMemories";
import type { ListMessages } from "./ListMessages";
import type { ListReviews } from "./ListReviews";
import type { ListTriggers } from "./ListTriggers";
import type { MarkMessagesRead } from "./MarkMessagesRead";
import type { MemoryList } from "./MemoryList";
import type { MemoryRef } from "./MemoryRef";
import type { MemoryRow } from "./MemoryRow";
import type { MessageList } from "./MessageList";
import type { Metrics } from "./Metrics";
import type { OutputPage } from "./OutputPage";
import type { PermissionTemplateList } from "./PermissionTemplateList";
import type { Persona } from "./Persona";
import type { PersonaFileText } from "./PersonaFileText";
import type { PersonaLinks } from "./PersonaLinks";
import type { PersonaList } from "./PersonaList";
import type { PersonaPolicy } from "./PersonaPolicy";
import type { PersonaRef } from "./PersonaRef";
import type { PreviewCron } from "./PreviewCron";
import type { PromptVersionList } from "./PromptVersionList";
import type { PushPersona } from "./PushPersona";
import type { PushedPersona } from "./PushedPersona";
import type { ReviewList } from "./ReviewList";
import type { RotateVault } from "./RotateVault";
import type { RunGc } from "./RunGc";
import type { RunPersona } from "./RunPersona";
import type { RunStats } from "./RunStats";
import type { SetTriggerEnabled } from "./SetTriggerEnabled";
import type { Settings } from "./Settings";
import type { StatsRequest } from "./StatsRequest";
import type { SystemReport } from "./SystemReport";
import type { TemplateList } from "./TemplateList";
import type { TestCredential } from "./TestCredential";
import type { Tool } from "./Tool";
import type { ToolList } from "./ToolList";
import type { ToolRef } from "./ToolRef";
import type { TriggerList } from "./TriggerList";
import type { TriggerRef } from "./TriggerRef";
import type { TriggerView } from "./TriggerView";
import type { UpdateCredential } from "./UpdateCredential";
import type { UpdateMemory } from "./UpdateMemory";
import type { UpdatePersona } from "./UpdatePersona";
import type { UpdatePolicy } from "./UpdatePolicy";
import type { UpdateSettings } from "./UpdateSettings";
import type { Updated } from "./Updated";
import type { VaultRotated } from "./VaultRotated";
import type { VaultStatus } from "./VaultStatus";
import type { WebhookSecretShown } from "./WebhookSecretShown";

/** Every operation: its request and response types. */
export interface Operations {
  /** Checks the installation: Claude CLI, its version and auth, data dir, store, runtime. */
  system_check: { request: Empty; response: SystemReport };
  /** The runtime's configuration. */
  get_settings: { request: Empty; response: Settings };
  /** Saves settings to config.toml (applied at the next start). */
  update_settings: { request: UpdateSettings; response: Settings };
  /** Every persona, by name. */
  list_personas: { request: Empty; response: PersonaList };
  /** One persona by id or name. */
  get_persona: { request: PersonaRef; response: Persona };
  /** Creates a persona (prompt version 1). */
  create_persona: { request: CreatePersona; response: Persona };
  /** Replaces a persona's settings; a prompt change adds a prompt version. */
  update_persona: { request: UpdatePersona; response: Persona };
  /** Deletes a persona (refused while it runs; history is kept). */
  delete_persona: { request: PersonaRef; response: Persona };
  /** Every prompt version of a persona, oldest first. */
  list_prompt_versions: { request: PersonaRef; response: PromptVersionList };
  /** The template gallery. */
  list_templates: { request: Empty; response: TemplateList };
  /** Creates a persona from a template. */
  create_from_template: { request: CreateFromTemplate; response: Persona };
  /** Queues a run of a persona now. */
  run_persona: { request: RunPersona; response: Execution };
  /** Executions, newest first. */
  list_executions: { request: ListExecutions; response: ExecutionList };
  /** One execution by id or unique prefix. */
  get_execution: { request: ExecutionRef; response: Execution };
  /** A page of an execution's stored output. */
  execution_output: { request: ExecutionOutputRequest; response: OutputPage };
  /** Cancels a queued or running execution. */
  cancel_execution: { request: ExecutionRef; response: Execution };
  /** The inbox, newest first. */
  list_messages: { request: ListMessages; response: MessageList };
  /** Marks messages read. */
  mark_messages_read: { request: MarkMessagesRead; response: Updated };
  /** Memories of one persona or all. */
  list_memories: { request: ListMemories; response: MemoryList };
  /** Adds a memory by hand. */
  add_memory: { request: AddMemory; response: MemoryRow };
  /** Edits a memory. */
  update_memory: { request: UpdateMemory; response: MemoryRow };
  /** Forgets a memory. */
  delete_memory: { request: MemoryRef; response: MemoryRow };
  /** Review requests, oldest first. */
  list_reviews: { request: ListReviews; response: ReviewList };
  /** Triggers of one persona or all, with schedules' next fires and webhooks' URL (never a secret). */
  list_triggers: { request: ListTriggers; response: TriggerList };
  /** Adds a trigger: manual, cron, webhook, event subscription, chain or file watcher. A webhook's secret is in this answer only. */
  add_trigger: { request: AddTrigger; response: TriggerView };
  /** Shows a webhook trigger's secret (sealed in the vault) to its owner. */
  reveal_webhook_secret: { request: TriggerRef; response: WebhookSecretShown };
  /** Gives a webhook trigger a new secret and shows it; the old one stops working at once. */
  rotate_webhook_secret: { request: TriggerRef; response: WebhookSecretShown };
  /** Removes a trigger (events it fired stay in history). */
  remove_trigger: { request: TriggerRef; response: TriggerView };
  /** Turns a trigger on or off. */
  set_trigger_enabled: { request: SetTriggerEnabled; response: TriggerView };
  /** Fires a trigger by hand now: its persona runs with the payload. */
  fire_trigger: { request: FireTrigger; response: EventRow };
  /** Checks a cron expression and time zone and returns its next fire times. */
  preview_cron: { request: PreviewCron; response: CronPreview };
  /** Bus events, newest first, with the executions each caused. */
  list_events: { request: ListEvents; response: EventList };
  /** One bus event by id or unique prefix, with its deliveries. */
  get_event: { request: EventRef; response: EventView };
  /** Publishes an event on the bus (durable before it answers). */
  emit_event: { request: EmitEvent; response: EventRow };
  /** Re-queues a dead-lettered, failed or skipped event with fresh attempts. */
  retry_event: { request: EventRef; response: EventRow };
  /** Approves or rejects a paused run's review; the run resumes its Claude session. */
  decide_review: { request: DecideReview; response: DecidedReview };
  /** Run statistics for charts. */
  get_stats: { request: StatsRequest; response: RunStats };
  /** The home screen in one round trip. */
  get_dashboard: { request: DashboardRequest; response: Dashboard };
  /** The team canvas layout. */
  get_canvas: { request: Empty; response: CanvasLayout };
  /** Saves the team canvas layout. */
  save_canvas: { request: CanvasLayout; response: CanvasLayout };
  /** The credential types: fields, which are secret, their variables, the check. */
  list_credential_types: { request: Empty; response: CredentialTypeList };
  /** Stored credentials: names, types, variables, non-secret values, last check. */
  list_credentials: { request: Empty; response: CredentialList };
  /** One credential (never a secret value). */
  get_credential: { request: CredentialRef; response: Credential };
  /** Stores a credential; secret values are sealed and never returned. */
  create_credential: { request: CreateCredential; response: Credential };
  /** Replaces a credential's fields; secret fields left out keep their value. */
  update_credential: { request: UpdateCredential; response: Credential };
  /** Deletes a credential (refused while personas use it, unless forced). */
  delete_credential: { request: DeleteCredential; response: Credential };
  /** Runs a credential's health check now and records the result. */
  test_credential: { request: TestCredential; response: CredentialTest };
  /** Where the vault key is, and whether secrets can be stored (with a fix if not). */
  vault_status: { request: Empty; response: VaultStatus };
  /** Custom tools and the personas they are attached to. */
  list_tools: { request: Empty; response: ToolList };
  /** Defines a custom tool (a command line or an HTTP request). */
  create_tool: { request: CreateTool; response: Tool };
  /** Deletes a custom tool (detached from every persona). */
  delete_tool: { request: ToolRef; response: Tool };
  /** The credentials and tools a persona is given. */
  get_persona_links: { request: PersonaRef; response: PersonaLinks };
  /** The permission policy templates (read-only, edit-in-workspace, full-trust). */
  list_permission_templates: { request: Empty; response: PermissionTemplateList };
  /** Notification channels of one persona or all (secret fields are references, never values). */
  list_channels: { request: ListChannels; response: ChannelList };
  /** Adds a notification channel (Slack, Telegram, email, webhook, desktop) to a persona. */
  add_channel: { request: AddChannel; response: Channel };
  /** Removes a persona's notification channel. */
  remove_channel: { request: ChannelRef; response: Channel };
  /** Sends a test notification through a channel now and reports the result. */
  test_channel: { request: ChannelRef; response: ChannelTest };
  /** A persona's review, budget and healing policy, the defaults, and its circuit breaker. */
  get_policy: { request: PersonaRef; response: PersonaPolicy };
  /** Replaces a persona's policy (daily/monthly budget caps, review deadline, healing). */
  update_policy: { request: UpdatePolicy; response: PersonaPolicy };
  /** Closes a paused persona's circuit breaker so it runs again. */
  resume_persona: { request: PersonaRef; response: PersonaPolicy };
  /** Open healing issues (all with `all`) and circuit breakers that are not closed. */
  list_healing: { request: ListHealing; response: HealingList };
  /** Marks a healing issue resolved. */
  resolve_issue: { request: IssueRef; response: IssueRow };
  /** The runtime's counters (named internal events) and gauges; `GET /metrics` serves them as Prometheus text. */
  get_metrics: { request: Empty; response: Metrics };
  /** One custom tool: its call, the usage text a run's prompt gets, the personas it is attached to. */
  get_tool: { request: ToolRef; response: Tool };
  /** Re-encrypts every credential and webhook secret under a new vault key (all or nothing). */
  rotate_vault: { request: RotateVault; response: VaultRotated };
  /** Writes a consistent copy of the store to a new file (0600) while it is in use. */
  backup_store: { request: BackupStore; response: Backup };
  /** Applies the `[retention]` policy now and reports what it removed (or would). */
  run_gc: { request: RunGc; response: GcResult };
  /** A persona as a shareable file (YAML or JSON); the personas it may start by name. */
  export_persona: { request: ExportPersona; response: PersonaFileText };
  /** Creates (or with `replace`, updates) a persona from a file; refused naming each grant beyond what it holds unless `grant`. */
  import_persona: { request: ImportPersona; response: ImportedPersona };
  /** Connects to a Personas cloud: checks the orchestrator answers the token (`whoami`), keeps the URL in the store and the token sealed in the vault. */
  cloud_connect: { request: CloudConnect; response: CloudStatus };
  /** The cloud connection and, when the orchestrator answers, its cluster and this month's usage; an unreachable one is a status, not an error. */
  cloud_status: { request: Empty; response: CloudStatus };
  /** Forgets the cloud connection and its token (mirrored runs stay in history). */
  cloud_disconnect: { request: Empty; response: CloudDisconnected };
  /** Pushes a persona (its file and linked credentials, sealed in the cloud on arrival) under its local id. */
  push_persona: { request: PushPersona; response: PushedPersona };
  /** Runs a pushed persona in the cloud; the run is mirrored into the local store as it goes (same id, statuses and output, trigger `cloud`). */
  cloud_execute: { request: CloudExecute; response: Execution };
  /** The cloud's executions with their attempts and workers, newest first. */
  list_cloud_executions: { request: ListCloudExecutions; response: CloudExecutionList };
}

export type OperationName = keyof Operations;

/** Operation names in table order. */
export const OPERATION_NAMES: OperationName[] = [
  "system_check",
  "get_settings",
  "update_settings",
  "list_personas",
  "get_persona",
  "create_persona",
  "update_persona",
  "delete_persona",
  "list_prompt_versions",
  "list_templates",
  "create_from_template",
  "run_persona",
  "list_executions",
  "get_execution",
  "execution_output",
  "cancel_execution",
  "list_messages",
  "mark_messages_read",
  "list_memories",
  "add_memory",
  "update_memory",
  "delete_memory",
  "list_reviews",
  "list_triggers",
  "add_trigger",
  "reveal_webhook_secret",
  "rotate_webhook_secret",
  "remove_trigger",
  "set_trigger_enabled",
  "fire_trigger",
  "preview_cron",
  "list_events",
  "get_event",
  "emit_event",
  "retry_event",
  "decide_review",
  "get_stats",
  "get_dashboard",
  "get_canvas",
  "save_canvas",
  "list_credential_types",
  "list_credentials",
  "get_credential",
  "create_credential",
  "update_credential",
  "delete_credential",
  "test_credential",
  "vault_status",
  "list_tools",
  "create_tool",
  "delete_tool",
  "get_persona_links",
  "list_permission_templates",
  "list_channels",
  "add_channel",
  "remove_channel",
  "test_channel",
  "get_policy",
  "update_policy",
  "resume_persona",
  "list_healing",
  "resolve_issue",
  "get_metrics",
  "get_tool",
  "rotate_vault",
  "backup_store",
  "run_gc",
  "export_persona",
  "import_persona",
  "cloud_connect",
  "cloud_status",
  "cloud_disconnect",
  "push_persona",
  "cloud_execute",
  "list_cloud_executions",
];
