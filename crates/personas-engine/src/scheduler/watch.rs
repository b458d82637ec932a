//! File-watch triggers: files created, changed or deleted under a directory become bus events.
//!
//! One OS watcher (inotify on Linux, via the `notify` crate) per enabled watch trigger, kept in
//! step with the stored triggers by [`Watches::reconcile`]. Changes go through a debouncer: an
//! editor's save (truncate, write, write, rename…) or a burst of writes to one path becomes one
//! event once the path has been quiet for `watch_debounce_ms` (or, for a path that never goes
//! quiet, after ten such windows). Net effects are kept: created-then-modified is `created`,
//! created-then-deleted is nothing.

use crate::bus::Publisher;
use crate::component::{Wake, sleep_until};
use crate::events::{EngineEvent, EventBus};
use globset::{Glob, GlobMatcher};
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use personas_core::trigger::{SourceKind, TriggerConfig, TriggerType};
use personas_core::{PersonaId, TriggerId};
use personas_store::{NewEvent, Store, TriggerRow};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Changes waiting for the debouncer before watcher threads block (bounded memory).
const CHANGE_QUEUE: usize = 4_096;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Modified,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
        }
    }

    /// The net effect of `self` followed by `next`; `None` when they cancel out.
    pub fn then(self, next: Change) -> Option<Change> {
        use Change::*;
        match (self, next) {
            (Created, Deleted) => None,
            (Created, _) => Some(Created),
            (Deleted, Created | Modified) => Some(Modified),
            (_, n) => Some(n),
        }
    }
}

/// Checks a glob for `--glob`, naming the field.
pub fn check_glob(glob: &str) -> Result<(), personas_core::ValidationError> {
    Glob::new(glob)
        .map(|_| ())
        .map_err(|e| personas_core::ValidationError::new("glob", format!("{glob:?}: {e}")))
}

struct WatchSpec {
    trigger_id: TriggerId,
    persona_id: PersonaId,
    root: PathBuf,
    glob: Option<GlobMatcher>,
}

struct Seen {
    spec: Arc<WatchSpec>,
    path: PathBuf,
    change: Change,
}

struct Active {
    definition: (String, Option<String>),
    _watcher: RecommendedWatcher,
}

/// The running watchers of one runtime.
pub struct Watches {
    active: HashMap<TriggerId, Active>,
    tx: mpsc::Sender<Seen>,
}

impl Watches {
    /// Starts the debouncer; watchers are added by [`Watches::reconcile`].
    pub fn start(
        publisher: Publisher,
        events: EventBus,
        debounce: Duration,
        shutdown: CancellationToken,
    ) -> Watches {
        let (tx, rx) = mpsc::channel(CHANGE_QUEUE);
        tokio::spawn(debounce_loop(rx, publisher, events, debounce, shutdown));
        Watches {
            active: HashMap::new(),
            tx,
        }
    }

    /// Starts watchers for new or changed watch triggers and stops those of removed or
    /// disabled ones. A trigger whose path cannot be watched records why.
    pub fn reconcile(&mut self, triggers: Vec<TriggerRow>, store: &Store) {
        let mut wanted: HashMap<TriggerId, TriggerRow> = triggers
            .into_iter()
            .filter(|t| t.kind == TriggerType::Watch)
            .map(|t| (t.id.clone(), t))
            .collect();
        self.active.retain(|id, active| {
            wanted.get(id).is_some_and(|t| match &t.config {
                TriggerConfig::Watch { path, glob } => {
                    active.definition == (path.clone(), glob.clone())
                }
                _ => false,
            })
        });
        wanted.retain(|id, _| !self.active.contains_key(id));
        for (id, t) in wanted {
            match self.watch(&t) {
                Ok(active) => {
                    tracing::info!(trigger = %id, persona = %t.persona_name, "watching files");
                    self.active.insert(id, active);
                }
                Err(message) => {
                    tracing::warn!(trigger = %id, error = %message, "cannot watch files");
                    if let Err(e) = store.triggers().record_error(&id, &message) {
                        tracing::warn!(error = %e, "cannot record a trigger error");
                    }
                }
            }
        }
    }

    /// Number of running watchers.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    fn watch(&self, t: &TriggerRow) -> Result<Active, String> {
        let TriggerConfig::Watch { path, glob } = &t.config else {
            return Err("not a watch trigger".into());
        };
        let root = PathBuf::from(path);
        if !root.is_dir() {
            return Err(format!(
                "{path} is not a directory (it may have been removed)"
            ));
        }
        let matcher = match glob {
            Some(g) => Some(
                Glob::new(g)
                    .map_err(|e| format!("glob {g:?}: {e}"))?
                    .compile_matcher(),
            ),
            None => None,
        };
        let spec = Arc::new(WatchSpec {
            trigger_id: t.id.clone(),
            persona_id: t.persona_id.clone(),
            root: root.clone(),
            glob: matcher,
        });
        let tx = self.tx.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            for (path, change) in changes_of(&event) {
                if !spec.wants(&path) {
                    continue;
                }
                // The watcher's own thread: blocking here only slows the watcher under a flood.
                let _ = tx.blocking_send(Seen {
                    spec: Arc::clone(&spec),
                    path,
                    change,
                });
            }
        })
        .map_err(|e| format!("cannot start a file watcher: {e}"))?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {path}: {e}"))?;
        Ok(Active {
            definition: (path.clone(), glob.clone()),
            _watcher: watcher,
        })
    }
}

impl WatchSpec {
    fn wants(&self, path: &Path) -> bool {
        match &self.glob {
            None => true,
            Some(g) => path
                .strip_prefix(&self.root)
                .is_ok_and(|rel| g.is_match(rel)),
        }
    }
}

/// The changes one OS notification reports. Metadata and access notifications are not changes
/// of content and are ignored.
fn changes_of(event: &notify::Event) -> Vec<(PathBuf, Change)> {
    let one = |c: Change| event.paths.iter().map(|p| (p.clone(), c)).collect();
    match event.kind {
        EventKind::Create(_) => one(Change::Created),
        EventKind::Remove(_) => one(Change::Deleted),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => one(Change::Deleted),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => one(Change::Created),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => vec![
            (event.paths[0].clone(), Change::Deleted),
            (event.paths[1].clone(), Change::Created),
        ],
        EventKind::Modify(ModifyKind::Metadata(_)) => Vec::new(),
        EventKind::Modify(_) => one(Change::Modified),
        _ => Vec::new(),
    }
}

struct Pending {
    spec: Arc<WatchSpec>,
    change: Option<Change>,
    quiet_at: Instant,
    latest_at: Instant,
}

async fn debounce_loop(
    mut rx: mpsc::Receiver<Seen>,
    publisher: Publisher,
    events: EventBus,
    window: Duration,
    shutdown: CancellationToken,
) {
    let mut pending: HashMap<(TriggerId, PathBuf), Pending> = HashMap::new();
    loop {
        let next = pending.values().map(|p| p.quiet_at.min(p.latest_at)).min();
        let mut received = None;
        let woken = async { received = Some(rx.recv().await) };
        match sleep_until(next, woken, &shutdown).await {
            Wake::Stop => return,
            Wake::Woken => match received.flatten() {
                Some(seen) => note(&mut pending, seen, window),
                // Every watcher is gone.
                None => return,
            },
            Wake::Due => {
                let now = Instant::now();
                let due: Vec<_> = pending
                    .iter()
                    .filter(|(_, p)| p.quiet_at.min(p.latest_at) <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in due {
                    if let Some(p) = pending.remove(&key)
                        && let Some(change) = p.change
                    {
                        publish(&publisher, &events, &p.spec, &key.1, change).await;
                    }
                }
            }
        }
    }
}

/// Folds a seen change into its path's pending one and restarts its quiet period.
fn note(pending: &mut HashMap<(TriggerId, PathBuf), Pending>, seen: Seen, window: Duration) {
    let now = Instant::now();
    let key = (seen.spec.trigger_id.clone(), seen.path.clone());
    let entry = pending.entry(key).or_insert_with(|| Pending {
        spec: Arc::clone(&seen.spec),
        change: None,
        quiet_at: now,
        latest_at: now + window * 10,
    });
    entry.change = match entry.change {
        None => Some(seen.change),
        Some(c) => c.then(seen.change),
    };
    entry.quiet_at = now + window;
}

async fn publish(
    publisher: &Publisher,
    events: &EventBus,
    spec: &WatchSpec,
    path: &Path,
    change: Change,
) {
    let relative = path
        .strip_prefix(&spec.root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let mut event = NewEvent::new(
        format!("file.{}", change.as_str()),
        SourceKind::Watcher,
        json!({
            "trigger_id": spec.trigger_id,
            "path": path.to_string_lossy(),
            "relative_path": relative,
            "change": change.as_str(),
        }),
    );
    event.source_id = Some(spec.trigger_id.to_string());
    event.target_persona_id = Some(spec.persona_id.clone());
    event.trigger_id = Some(spec.trigger_id.clone());
    match publisher.publish(event).await {
        Ok((row, _)) => events.send(EngineEvent::TriggerFired {
            trigger_id: spec.trigger_id.clone(),
            persona_id: spec.persona_id.clone(),
            kind: TriggerType::Watch,
            event_id: row.id,
        }),
        Err(e) => {
            tracing::error!(trigger = %spec.trigger_id, error = %e, "a file change was not published")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_merge_to_their_net_effect() {
        use Change::*;
        assert_eq!(Created.then(Modified), Some(Created));
        assert_eq!(Created.then(Deleted), None);
        assert_eq!(Modified.then(Deleted), Some(Deleted));
        assert_eq!(Deleted.then(Created), Some(Modified));
        assert_eq!(Modified.then(Modified), Some(Modified));
    }

    #[test]
    fn globs_are_checked() {
        assert!(check_glob("**/*.md").is_ok());
        let e = check_glob("a[").expect_err("unclosed class");
        assert_eq!(e.field, "glob");
    }
}
