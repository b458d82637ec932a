//! [`Api`]: the operations implemented over the store and the engine. Hosts (the HTTP server,
//! the desktop shell) hold one and call it; it knows nothing of HTTP or Tauri.
//! Every operation is an inherent `pub async fn` on [`Api`] named as in the table
//! (`for_each_operation!`, which also documents it); `impl Operations for Api` is generated
//! from the table and calls them. This module owns settings, personas, runs, the inbox,
//! memories, reviews, stats and the canvas; credentials, the vault, tools and permission
//! templates live in [`access`]; channels, policies, healing issues and circuit breakers in
//! [`oversight`]; triggers and the event bus in [`crate::bus`].

mod access;
mod cloud;
mod files;
mod metrics;
mod mirror;
mod oversight;
pub(crate) mod upkeep;

use crate::error::{ApiError, Code};
use crate::ops::*;
use crate::system::{self, Check, CheckStatus};
use crate::templates;
use personas_core::{Execution, ExecutionId, ExecutionStatus, Persona, PersonaId};
use personas_engine::config::config_file;
use personas_engine::{Engine, EngineConfig, locate};
use personas_store::{
    ExecutionFilter, MemoryEdit, MemoryRow, NewExecution, RunStats, Store, StoreError,
};
use std::path::PathBuf;
use std::sync::Arc;

/// What the host tells the API about itself (for the `runtime` check).
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// The URL the runtime serves on, when it serves one.
    pub url: Option<String>,
}

/// The operations over one engine; cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    host: HostInfo,
    /// The saved settings as they were when this runtime started; a difference later means
    /// `update_settings` saved something that applies at the next start.
    saved_at_start: Option<SavedSettings>,
    /// Cloud runs this process is mirroring now (each followed once).
    mirrors: std::sync::Mutex<std::collections::HashSet<ExecutionId>>,
}

type SavedSettings = (u32, Option<PathBuf>);

fn saved_settings(cfg: &EngineConfig) -> Option<SavedSettings> {
    EngineConfig::load(&cfg.data_dir, |k| std::env::var(k).ok())
        .ok()
        .map(|c| (c.max_concurrent, c.claude_path))
}

/// Where the team canvas layout is kept (a UI preference, not domain data).
const CANVAS_FILE: &str = "canvas.json";
const MAX_LIMIT: u32 = 500;
const MAX_OUTPUT_PAGE: u32 = 5000;

impl Api {
    pub fn new(engine: Engine, host: HostInfo) -> Api {
        let saved_at_start = saved_settings(engine.config());
        Api {
            inner: Arc::new(Inner {
                engine,
                host,
                saved_at_start,
                mirrors: Default::default(),
            }),
        }
    }

    /// The operations over the store in `config.data_dir`, in this process, for a front-end
    /// that finds no runtime holding the data dir (the CLI, the MCP server). The engine is not
    /// started: nothing is scheduled or dispatched here; work queued through it waits for a
    /// runtime, or for the caller to run it in the foreground.
    pub fn open(
        config: EngineConfig,
        vault: personas_engine::vault::VaultOptions,
        host: HostInfo,
    ) -> Result<Api, ApiError> {
        let store = Store::open_in_dir(&config.data_dir).map_err(|e| {
            ApiError::internal(format!(
                "cannot open the store in {}: {e}",
                config.data_dir.display()
            ))
        })?;
        Ok(Api::new(Engine::with_vault(config, store, vault), host))
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The URL this runtime serves on, when it serves one.
    pub(crate) fn host_url(&self) -> Option<String> {
        self.inner.host.url.clone()
    }

    /// Marks a cloud mirror as followed by this process; false if it already is.
    pub(crate) fn claim_mirror(&self, id: &ExecutionId) -> bool {
        self.mirrors_lock().insert(id.clone())
    }

    pub(crate) fn release_mirror(&self, id: &ExecutionId) {
        self.mirrors_lock().remove(id);
    }

    fn mirrors_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<ExecutionId>> {
        // Single inserts and removes: a panic elsewhere cannot leave the set half-changed.
        self.inner.mirrors.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn config(&self) -> &EngineConfig {
        self.inner.engine.config()
    }

    /// Runs synchronous store work on the blocking pool.
    /// Every secret the runtime knows (vault, channels, `[env]`, its own environment), for text
    /// a client submits that is stored: the same gate a run's output passes
    /// (`personas_engine::known`).
    pub(crate) async fn known_secrets(&self) -> personas_core::redact::Redactor {
        let store = self.inner.engine.store().clone();
        let vault = Arc::clone(self.inner.engine.vault());
        let config = self.config().clone();
        tokio::task::spawn_blocking(move || {
            personas_engine::known::runtime_redactor(&store, &vault, &config)
        })
        .await
        .unwrap_or_default()
    }

    pub(crate) async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.inner.engine.store().clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => Err(ApiError::internal(format!("store task failed: {e}"))),
        }
    }

    pub(crate) async fn persona(&self, name_or_id: String) -> Result<Persona, ApiError> {
        if name_or_id.trim().is_empty() {
            return Err(ApiError::invalid("persona", "must name a persona"));
        }
        self.store(move |s| s.personas().find(&name_or_id)).await
    }

    fn settings_now(&self) -> Settings {
        let cfg = self.config();
        let saved = saved_settings(cfg);
        let restart_required = saved.is_some() && saved != self.inner.saved_at_start;
        let (max_concurrent, claude_path) = match saved {
            Some(s) if restart_required => s,
            _ => (cfg.max_concurrent, cfg.claude_path.clone()),
        };
        Settings {
            version: env!("CARGO_PKG_VERSION").into(),
            data_dir: cfg.data_dir.display().to_string(),
            config_file: config_file(&cfg.data_dir).display().to_string(),
            listen: cfg.listen.clone(),
            max_concurrent,
            claude_path: claude_path.map(|p| p.display().to_string()),
            claude_found: locate::find_claude(cfg.claude_path.as_deref())
                .ok()
                .map(|l| l.path.display().to_string()),
            inactivity_timeout_secs: cfg.inactivity_timeout_secs,
            restart_required,
        }
    }

    fn canvas_path(&self) -> PathBuf {
        self.config().data_dir.join(CANVAS_FILE)
    }
}

fn limit(given: Option<u32>, default: u32, max: u32) -> u32 {
    given.unwrap_or(default).clamp(1, max)
}

/// Writes `text` to `path` through a temporary file and a rename, so a crash leaves either the
/// old or the new content, never half of one. The file is private to the user (0600):
/// `config.toml` can hold `[env]` values that are secrets.
fn write_atomic(path: &std::path::Path, text: &str) -> Result<(), ApiError> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let io =
        |e: std::io::Error| ApiError::internal(format!("cannot write {}: {e}", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn check_memory_fields(
    title: &str,
    content: &str,
    category: &str,
    importance: u8,
) -> Result<(), ApiError> {
    if title.trim().is_empty() {
        return Err(ApiError::invalid("title", "must not be empty"));
    }
    if title.chars().count() > 200 {
        return Err(ApiError::invalid("title", "must be at most 200 characters"));
    }
    if content.trim().is_empty() {
        return Err(ApiError::invalid("content", "must not be empty"));
    }
    if content.len() > 64 * 1024 {
        return Err(ApiError::invalid("content", "must be at most 64 KiB"));
    }
    if category.trim().is_empty() || category.chars().count() > 60 {
        return Err(ApiError::invalid(
            "category",
            "must be a short word such as fact, preference or procedure",
        ));
    }
    if !(1..=5).contains(&importance) {
        return Err(ApiError::invalid("importance", "must be between 1 and 5"));
    }
    Ok(())
}

impl Api {
    pub async fn system_check(&self, _: Empty) -> Result<SystemReport, ApiError> {
        let cfg = self.config().clone();
        let store = self.inner.engine.store().clone();
        let mut checks = system::checks(&cfg, Ok(&store), self.inner.engine.vault()).await;
        checks.push(Check::new(
            "runtime",
            CheckStatus::Ok,
            match &self.inner.host.url {
                Some(url) => format!("running at {url} (pid {})", std::process::id()),
                None => format!("running in-process (pid {})", std::process::id()),
            },
            None,
        ));
        Ok(SystemReport {
            version: env!("CARGO_PKG_VERSION").into(),
            ok: checks.iter().all(|c| c.status != CheckStatus::Fail),
            checks,
        })
    }

    pub async fn get_settings(&self, _: Empty) -> Result<Settings, ApiError> {
        Ok(self.settings_now())
    }

    pub async fn update_settings(&self, req: UpdateSettings) -> Result<Settings, ApiError> {
        let path = config_file(&self.config().data_dir);
        let mut table: toml::Table = match std::fs::read_to_string(&path) {
            Ok(text) => text.parse().map_err(|e| {
                ApiError::new(
                    Code::Conflict,
                    format!(
                        "{} cannot be read as TOML; fix it by hand first: {e}",
                        path.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => return Err(ApiError::internal(format!("{}: {e}", path.display()))),
        };
        if let Some(n) = req.max_concurrent {
            if !(1..=personas_core::validate::MAX_CONCURRENT_LIMIT).contains(&n) {
                return Err(ApiError::invalid(
                    "max_concurrent",
                    format!(
                        "must be between 1 and {}",
                        personas_core::validate::MAX_CONCURRENT_LIMIT
                    ),
                ));
            }
            table.insert("max_concurrent".into(), toml::Value::Integer(i64::from(n)));
        }
        if let Some(p) = req.claude_path {
            let p = p.trim().to_string();
            if p.is_empty() {
                table.remove("claude_path");
            } else {
                locate::find_claude(Some(std::path::Path::new(&p))).map_err(|_| {
                    ApiError::invalid("claude_path", format!("{p} is not an executable file"))
                })?;
                table.insert("claude_path".into(), toml::Value::String(p));
            }
        }
        let text = toml::to_string_pretty(&table)
            .map_err(|e| ApiError::internal(format!("cannot encode the settings: {e}")))?;
        // The file must still load as a whole before it replaces the old one.
        let parsed: EngineConfig = toml::from_str(&text)
            .map_err(|e| ApiError::new(Code::Conflict, format!("{}: {e}", path.display())))?;
        parsed.check().map_err(|e| ApiError {
            code: Code::Invalid,
            message: e.to_string(),
            field: Some(e.source_name.clone()),
        })?;
        std::fs::create_dir_all(&self.config().data_dir)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        write_atomic(&path, &text)?;
        Ok(self.settings_now())
    }

    pub async fn list_personas(&self, _: Empty) -> Result<PersonaList, ApiError> {
        let personas = self.store(|s| s.personas().list()).await?;
        Ok(PersonaList { personas })
    }

    pub async fn get_persona(&self, req: PersonaRef) -> Result<Persona, ApiError> {
        self.persona(req.persona).await
    }

    pub async fn create_persona(&self, req: CreatePersona) -> Result<Persona, ApiError> {
        let links = self.resolve_links(req.credentials, req.tools).await?;
        let spec = access::with_template(req.spec, req.permissions_template);
        self.store(move |s| s.personas().create_linked(&spec, &links))
            .await
    }

    pub async fn update_persona(&self, req: UpdatePersona) -> Result<Persona, ApiError> {
        let links = self.resolve_links(req.credentials, req.tools).await?;
        let spec = access::with_template(req.spec, req.permissions_template);
        self.store(move |s| s.personas().update_linked(&req.persona, &spec, &links))
            .await
    }

    pub async fn delete_persona(&self, req: PersonaRef) -> Result<Persona, ApiError> {
        self.store(move |s| s.personas().delete(&req.persona)).await
    }

    pub async fn list_prompt_versions(
        &self,
        req: PersonaRef,
    ) -> Result<PromptVersionList, ApiError> {
        let p = self.persona(req.persona).await?;
        let versions = self
            .store(move |s| s.personas().prompt_versions(&p.id))
            .await?;
        Ok(PromptVersionList { versions })
    }

    pub async fn list_templates(&self, _: Empty) -> Result<TemplateList, ApiError> {
        Ok(TemplateList {
            templates: templates::all(),
        })
    }

    pub async fn create_from_template(&self, req: CreateFromTemplate) -> Result<Persona, ApiError> {
        let t = templates::find(&req.template_id).ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                format!("template not found: {}", req.template_id),
            )
        })?;
        let mut spec = t.spec;
        if let Some(name) = req.name {
            spec.name = name;
        }
        self.store(move |s| s.personas().create(&spec)).await
    }

    pub async fn run_persona(&self, mut req: RunPersona) -> Result<Execution, ApiError> {
        let p = self.persona(req.persona).await?;
        if let Some(input) = req.input.as_mut() {
            personas_core::redact::redact_json(&self.known_secrets().await, input);
        }
        Ok(self
            .inner
            .engine
            .enqueue(NewExecution::manual(p.id, req.input))
            .await?)
    }

    pub async fn list_executions(&self, req: ListExecutions) -> Result<ExecutionList, ApiError> {
        let persona_id = match req.persona {
            Some(p) => Some(self.persona(p).await?.id),
            None => None,
        };
        let filter = ExecutionFilter {
            persona_id,
            status: req.status,
            limit: Some(limit(req.limit, 50, MAX_LIMIT)),
        };
        let executions = self.store(move |s| s.executions().list(&filter)).await?;
        Ok(ExecutionList { executions })
    }

    pub async fn get_execution(&self, req: ExecutionRef) -> Result<Execution, ApiError> {
        self.store(move |s| s.executions().find(&req.id)).await
    }

    pub async fn execution_output(
        &self,
        req: ExecutionOutputRequest,
    ) -> Result<OutputPage, ApiError> {
        let n = limit(req.limit, 1000, MAX_OUTPUT_PAGE);
        let after = req.after.unwrap_or(0);
        if after < 0 {
            return Err(ApiError::invalid("after", "must be 0 or more"));
        }
        let (mut lines, id) = self
            .store(move |s| {
                let e = s.executions().find(&req.id)?;
                Ok((s.executions().output(&e.id, after, n + 1)?, e.id))
            })
            .await?;
        let more = lines.len() > n as usize;
        lines.truncate(n as usize);
        let lines: Vec<personas_core::OutputLine> = lines
            .into_iter()
            .map(personas_core::OutputLine::framed)
            .collect();
        let last_seq = lines.last().map_or(after, |l| l.seq);
        debug_assert!(lines.iter().all(|l| l.execution_id == id));
        Ok(OutputPage {
            lines,
            last_seq,
            more,
        })
    }

    pub async fn cancel_execution(&self, req: ExecutionRef) -> Result<Execution, ApiError> {
        let e = self.store(move |s| s.executions().find(&req.id)).await?;
        if e.trigger == personas_core::TriggerKind::Cloud {
            // No local process runs it: the cloud stops its worker, and the mirror records the end.
            return self.cancel_cloud_execution(e).await;
        }
        let id: ExecutionId = e.id;
        Ok(self.inner.engine.cancel(&id).await?)
    }

    pub async fn list_messages(&self, req: ListMessages) -> Result<MessageList, ApiError> {
        let n = limit(req.limit, 100, MAX_LIMIT);
        let unread_only = req.unread_only.unwrap_or(false);
        let (messages, unread) = self
            .store(move |s| {
                let p = s.protocol();
                Ok((p.inbox(unread_only, n)?, p.unread_count()?))
            })
            .await?;
        Ok(MessageList { messages, unread })
    }

    pub async fn mark_messages_read(&self, req: MarkMessagesRead) -> Result<Updated, ApiError> {
        let updated = self
            .store(move |s| s.protocol().mark_read(req.ids.as_deref()))
            .await?;
        Ok(Updated { updated })
    }

    pub async fn list_memories(&self, req: ListMemories) -> Result<MemoryList, ApiError> {
        let persona_id: Option<PersonaId> = match req.persona {
            Some(p) => Some(self.persona(p).await?.id),
            None => None,
        };
        let n = limit(req.limit, 200, MAX_LIMIT);
        let memories = self
            .store(move |s| s.memories().list(persona_id.as_ref(), n))
            .await?;
        Ok(MemoryList { memories })
    }

    pub async fn add_memory(&self, mut req: AddMemory) -> Result<MemoryRow, ApiError> {
        let known = self.known_secrets().await;
        known.redact_string(&mut req.title);
        known.redact_string(&mut req.content);
        let category = req.category.unwrap_or_else(|| "general".into());
        let importance = req.importance.unwrap_or(3);
        check_memory_fields(&req.title, &req.content, &category, importance)?;
        let p = self.persona(req.persona).await?;
        self.store(move |s| {
            s.protocol()
                .insert_memory(&p.id, None, &req.title, &req.content, &category, importance)
        })
        .await
    }

    pub async fn update_memory(&self, mut req: UpdateMemory) -> Result<MemoryRow, ApiError> {
        let known = self.known_secrets().await;
        if let Some(t) = req.title.as_mut() {
            known.redact_string(t);
        }
        if let Some(c) = req.content.as_mut() {
            known.redact_string(c);
        }
        if let Some(i) = req.importance
            && !(1..=5).contains(&i)
        {
            return Err(ApiError::invalid("importance", "must be between 1 and 5"));
        }
        // Fields left out keep their value; the store checks the merged memory.
        let edit = MemoryEdit {
            title: req.title,
            content: req.content,
            category: req.category,
            importance: req.importance,
        };
        self.store(move |s| s.memories().edit(&req.id, &edit)).await
    }

    pub async fn delete_memory(&self, req: MemoryRef) -> Result<MemoryRow, ApiError> {
        // By id or a unique prefix of it, like every other reference.
        self.store(move |s| s.memories().delete(&req.id)).await
    }

    pub async fn list_reviews(&self, req: ListReviews) -> Result<ReviewList, ApiError> {
        let reviews = self
            .store(move |s| s.protocol().reviews(req.status, None))
            .await?;
        Ok(ReviewList { reviews })
    }

    pub async fn decide_review(&self, mut req: DecideReview) -> Result<DecidedReview, ApiError> {
        if let Some(note) = req.note.as_mut() {
            self.known_secrets().await.redact_string(note);
        }
        let decision = req.decision;
        let d = self
            .inner
            .engine
            .decide_review(&req.id, decision, req.note)
            .await?;
        Ok(DecidedReview {
            review: d.review,
            execution: d.execution,
            effect: d.effect,
        })
    }

    pub async fn get_stats(&self, req: StatsRequest) -> Result<RunStats, ApiError> {
        let days = req.days.unwrap_or(14);
        if !(1..=366).contains(&days) {
            return Err(ApiError::invalid("days", "must be between 1 and 366"));
        }
        let tz = tz(req.tz_offset_minutes)?;
        let persona = match req.persona {
            Some(p) => Some(self.persona(p).await?.id),
            None => None,
        };
        self.store(move |s| s.stats().runs(days, tz, persona.as_ref()))
            .await
    }

    pub async fn get_dashboard(&self, req: DashboardRequest) -> Result<Dashboard, ApiError> {
        let tz = tz(req.tz_offset_minutes)?;
        self.store(move |s| {
            let ex = s.executions();
            let by = |status, limit| {
                ex.list(&ExecutionFilter {
                    persona_id: None,
                    status: Some(status),
                    limit: Some(limit),
                })
            };
            let mut running = by(ExecutionStatus::Running, 50)?;
            running.extend(by(ExecutionStatus::AwaitingReview, 50)?);
            let mut failures = by(ExecutionStatus::Failed, 5)?;
            failures.extend(by(ExecutionStatus::TimedOut, 5)?);
            failures.sort_by_key(|e| std::cmp::Reverse(e.queued_at));
            failures.truncate(5);
            let (runs_today, spend_today_usd) = s.stats().spend_today(tz)?;
            let p = s.protocol();
            Ok(Dashboard {
                personas: s.personas().list()?.len() as u64,
                running,
                queued: ex.count(ExecutionStatus::Queued)?,
                recent: ex.list(&ExecutionFilter {
                    limit: Some(8),
                    ..Default::default()
                })?,
                failures,
                pending_reviews: p.reviews(Some(personas_core::ReviewStatus::Pending), None)?,
                unread_messages: p.unread_count()?,
                latest_messages: p.inbox(false, 5)?,
                runs_today,
                spend_today_usd,
            })
        })
        .await
    }

    pub async fn get_canvas(&self, _: Empty) -> Result<CanvasLayout, ApiError> {
        let path = self.canvas_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| ApiError::internal(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CanvasLayout::default()),
            Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
        }
    }

    pub async fn save_canvas(&self, req: CanvasLayout) -> Result<CanvasLayout, ApiError> {
        if req.nodes.len() > 10_000 {
            return Err(ApiError::invalid("nodes", "at most 10000 nodes"));
        }
        for (i, n) in req.nodes.iter().enumerate() {
            if !(n.x.is_finite() && n.y.is_finite()) {
                return Err(ApiError::invalid(
                    format!("nodes[{i}]"),
                    "x and y must be finite numbers",
                ));
            }
        }
        let text =
            serde_json::to_string_pretty(&req).map_err(|e| ApiError::internal(e.to_string()))?;
        write_atomic(&self.canvas_path(), &text)?;
        Ok(req)
    }
}

fn tz(given: Option<i32>) -> Result<i32, ApiError> {
    let tz = given.unwrap_or(0);
    if !(-14 * 60..=14 * 60).contains(&tz) {
        return Err(ApiError::invalid(
            "tz_offset_minutes",
            "must be between -840 and 840",
        ));
    }
    Ok(tz)
}
