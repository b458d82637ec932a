//! The live journal: every journal entry of every tenant, sent once to this orchestrator's client
//! streams as soon as it is known to be committed.
//!
//! Two ways in. The outbox relay hands over the entries it reads from committed outbox rows
//! ([`super::outbox::Relay`]) before it publishes them, so a client of the orchestrator that
//! committed an entry sees it without a round trip through the broker. The broadcast consumers
//! hand over what every orchestrator committed, read back from the `output`, `lifecycle` and
//! `events` topics. Whichever comes second finds the entry in a bounded memory of recently sent
//! `(tenant, seq)` pairs and is dropped; should an entry outlive that memory, the client stream
//! still drops a duplicate by its sequence number.

use super::journal::JournalEntry;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// How many sent entries are remembered to drop their second copy.
const REMEMBERED: usize = 65_536;

pub struct LiveJournal {
    sender: broadcast::Sender<JournalEntry>,
    sent: Mutex<Sent>,
}

#[derive(Default)]
struct Sent {
    keys: HashSet<(String, i64)>,
    order: VecDeque<(String, i64)>,
}

impl LiveJournal {
    /// A live journal whose slowest subscriber may fall `capacity` entries behind.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            sent: Mutex::new(Sent::default()),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JournalEntry> {
        self.sender.subscribe()
    }

    /// The channel itself, bypassing the memory of what was sent: for tests of the client
    /// stream's own ordering and duplicate handling.
    pub fn sender(&self) -> &broadcast::Sender<JournalEntry> {
        &self.sender
    }

    /// Sends `entry` unless it was sent already; `true` when it was sent now.
    pub fn publish(&self, entry: JournalEntry) -> bool {
        let key = (entry.tenant_id.clone(), entry.seq);
        {
            // Insertions and evictions keep the two collections in step even after a panic
            // elsewhere, so a poisoned lock is still usable.
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            if !sent.keys.insert(key.clone()) {
                return false;
            }
            sent.order.push_back(key);
            if sent.order.len() > REMEMBERED
                && let Some(old) = sent.order.pop_front()
            {
                sent.keys.remove(&old);
            }
        }
        // No subscriber is fine: no client of this orchestrator is streaming.
        let _ = self.sender.send(entry);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_cloud_api::model::CloudEvent;
    use personas_cloud_api::stream::ClientEvent;

    fn entry(tenant: &str, seq: i64) -> JournalEntry {
        JournalEntry {
            tenant_id: tenant.into(),
            seq,
            event: ClientEvent::Event {
                event: CloudEvent {
                    id: format!("e{seq}"),
                    event_type: "t".into(),
                    payload: None,
                    source: "test".into(),
                    created_at: chrono::Utc::now(),
                    executions: Vec::new(),
                },
            },
        }
    }

    #[test]
    fn each_entry_is_sent_once_whichever_way_it_comes_in() {
        let live = LiveJournal::new(16);
        let mut rx = live.subscribe();
        assert!(live.publish(entry("a", 1)));
        assert!(!live.publish(entry("a", 1)), "the second copy is dropped");
        assert!(
            live.publish(entry("b", 1)),
            "another tenant's seq 1 is another entry"
        );
        assert_eq!(
            rx.try_recv().map(|e| (e.tenant_id, e.seq)).ok(),
            Some(("a".into(), 1))
        );
        assert_eq!(
            rx.try_recv().map(|e| (e.tenant_id, e.seq)).ok(),
            Some(("b".into(), 1))
        );
        assert!(rx.try_recv().is_err());
    }
}
