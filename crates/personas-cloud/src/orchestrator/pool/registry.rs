//! The registry of the workers connected to this orchestrator: their capacity, what each runs,
//! the channel to its connection task, and idle slots for the dispatcher.
//!
//! A slot is reserved before the dispatcher takes an exec message and either filled (the run
//! starts) or released, so two messages never race for one idle worker.

use chrono::{DateTime, Utc};
use personas_cloud_api::wire::OrchestratorFrame;
use personas_core::ExecutionId;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc};

/// What a connection task is told to do.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Box<OrchestratorFrame>),
    /// Close the connection (a newer connection of the same worker replaced it).
    Close(String),
}

struct Entry {
    conn: u64,
    version: String,
    capacity: u32,
    reserved: u32,
    running: BTreeMap<ExecutionId, u32>,
    connected_at: DateTime<Utc>,
    tx: mpsc::UnboundedSender<Outgoing>,
}

/// A reserved slot on one worker's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub worker_id: String,
    conn: u64,
}

/// A connected worker, for `get_cluster`.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub id: String,
    pub version: String,
    pub capacity: u32,
    pub running: Vec<ExecutionId>,
    pub connected_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct Registry {
    workers: Mutex<BTreeMap<String, Entry>>,
    next_conn: AtomicU64,
    idle: Notify,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves consistent data (each change is one insert or
        // field update), so a poisoned lock is still usable.
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a worker's connection; a previous connection of the same worker is told to
    /// close. Returns the connection's number (for [`Registry::unregister`]).
    pub fn register(
        &self,
        worker_id: &str,
        version: &str,
        capacity: u32,
        running: impl IntoIterator<Item = (ExecutionId, u32)>,
        tx: mpsc::UnboundedSender<Outgoing>,
    ) -> u64 {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Entry {
            conn,
            version: version.to_string(),
            capacity,
            reserved: 0,
            running: running.into_iter().collect(),
            connected_at: Utc::now(),
            tx,
        };
        if let Some(old) = self.lock().insert(worker_id.to_string(), entry) {
            let _ = old
                .tx
                .send(Outgoing::Close("replaced by a newer connection".into()));
        }
        self.idle.notify_waiters();
        conn
    }

    /// Forgets a connection (if it is still the worker's current one).
    pub fn unregister(&self, worker_id: &str, conn: u64) {
        let mut workers = self.lock();
        if workers.get(worker_id).is_some_and(|e| e.conn == conn) {
            workers.remove(worker_id);
        }
    }

    /// Reserves a free slot on the least busy worker.
    pub fn reserve(&self) -> Option<Slot> {
        let mut workers = self.lock();
        let (id, entry) = workers
            .iter_mut()
            .filter(|(_, e)| (e.running.len() as u32 + e.reserved) < e.capacity)
            .min_by_key(|(_, e)| e.running.len() as u32 + e.reserved)?;
        entry.reserved += 1;
        Some(Slot {
            worker_id: id.clone(),
            conn: entry.conn,
        })
    }

    /// Gives a reserved slot back unused.
    pub fn release(&self, slot: &Slot) {
        if let Some(e) = self.lock().get_mut(&slot.worker_id)
            && e.conn == slot.conn
        {
            e.reserved = e.reserved.saturating_sub(1);
        }
        self.idle.notify_waiters();
    }

    /// Fills a reserved slot with a run and sends its `assign`. False when the worker's
    /// connection went away meanwhile (the run's attempt is then lost by the reaper or at the
    /// worker's next hello).
    pub fn fill(
        &self,
        slot: &Slot,
        execution_id: &ExecutionId,
        attempt: u32,
        frame: OrchestratorFrame,
    ) -> bool {
        let mut workers = self.lock();
        let Some(e) = workers
            .get_mut(&slot.worker_id)
            .filter(|e| e.conn == slot.conn)
        else {
            return false;
        };
        e.reserved = e.reserved.saturating_sub(1);
        e.running.insert(execution_id.clone(), attempt);
        e.tx.send(Outgoing::Frame(Box::new(frame))).is_ok()
    }

    /// The worker no longer runs `execution_id`.
    pub fn finished(&self, worker_id: &str, execution_id: &ExecutionId) {
        if let Some(e) = self.lock().get_mut(worker_id) {
            e.running.remove(execution_id);
        }
        self.idle.notify_waiters();
    }

    /// Sends a frame to a connected worker; false if it is not connected here.
    pub fn send(&self, worker_id: &str, frame: OrchestratorFrame) -> bool {
        self.lock()
            .get(worker_id)
            .is_some_and(|e| e.tx.send(Outgoing::Frame(Box::new(frame))).is_ok())
    }

    /// The connected worker running `execution_id` (and the attempt), if any.
    pub fn holder_of(&self, execution_id: &ExecutionId) -> Option<(String, u32)> {
        self.lock()
            .iter()
            .find_map(|(id, e)| e.running.get(execution_id).map(|a| (id.clone(), *a)))
    }

    /// Whether some worker has a free slot.
    pub fn has_idle(&self) -> bool {
        self.lock()
            .values()
            .any(|e| (e.running.len() as u32 + e.reserved) < e.capacity)
    }

    /// Waits until a slot may have freed (a worker connected, finished a run or a reservation
    /// was released). Check [`Registry::has_idle`] after.
    pub async fn idle_changed(&self) {
        self.idle.notified().await
    }

    /// The same as a future to `enable` before checking, so no wake-up is missed between the
    /// check and the wait.
    pub fn idle_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.idle.notified()
    }

    /// Ids of the connected workers.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The connected workers.
    pub fn snapshot(&self) -> Vec<WorkerInfo> {
        self.lock()
            .iter()
            .map(|(id, e)| WorkerInfo {
                id: id.clone(),
                version: e.version.clone(),
                capacity: e.capacity,
                running: e.running.keys().cloned().collect(),
                connected_at: e.connected_at,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_reserved_once_and_freed_by_release_or_finish() {
        let r = Registry::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        r.register("w1", "v", 1, [], tx);
        let slot = r.reserve().expect("one idle slot");
        assert!(r.reserve().is_none(), "the only slot is reserved");
        r.release(&slot);
        let slot = r.reserve().expect("released slot is free again");
        let id = ExecutionId::new();
        let frame = OrchestratorFrame::Heartbeat { at: Utc::now() };
        assert!(r.fill(&slot, &id, 1, frame));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Frame(_))));
        assert!(!r.has_idle());
        assert_eq!(r.holder_of(&id), Some(("w1".to_string(), 1)));
        r.finished("w1", &id);
        assert!(r.has_idle());
    }

    #[test]
    fn a_newer_connection_replaces_and_closes_the_older() {
        let r = Registry::new();
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let (tx2, _rx2) = mpsc::unbounded_channel();
        let c1 = r.register("w1", "v", 1, [], tx1);
        let _c2 = r.register("w1", "v", 1, [], tx2);
        assert!(matches!(rx1.try_recv(), Ok(Outgoing::Close(_))));
        r.unregister("w1", c1);
        assert_eq!(
            r.len(),
            1,
            "the old connection's exit does not remove the new one"
        );
    }
}
