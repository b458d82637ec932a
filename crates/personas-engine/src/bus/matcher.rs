//! Matching events to subscriptions in memory.
//!
//! The dispatcher keeps a [`SubscriptionIndex`] of the live subscriptions and rebuilds it when
//! the store's `subscriptions` change counter moves. Exact patterns sit in a hash map keyed by
//! the normalised type; `*` patterns in a second map keyed by their prefix, probed once per
//! distinct prefix length. Matching an event costs a handful of hash lookups however many
//! subscriptions there are.

use personas_core::trigger::{SourceKind, normalize_event_type};
use personas_store::bus::SubscriptionRow;
use personas_store::{EventRow, Recipient};
use std::collections::{BTreeSet, HashMap};

use super::trigger_kind_for;

/// Live subscriptions, indexed for matching.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    exact: HashMap<String, Vec<SubscriptionRow>>,
    prefix: HashMap<String, Vec<SubscriptionRow>>,
    prefix_lens: BTreeSet<usize>,
    len: usize,
}

impl SubscriptionIndex {
    pub fn new(rows: Vec<SubscriptionRow>) -> Self {
        let mut index = SubscriptionIndex {
            len: rows.len(),
            ..Default::default()
        };
        for row in rows {
            if row.is_prefix {
                index.prefix_lens.insert(row.match_key.len());
                index
                    .prefix
                    .entry(row.match_key.clone())
                    .or_default()
                    .push(row);
            } else {
                index
                    .exact
                    .entry(row.match_key.clone())
                    .or_default()
                    .push(row);
            }
        }
        index
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The recipients of an event that is not addressed to one persona, one per matching
    /// subscription, in a stable order.
    ///
    /// A persona's own events do not reach its own subscriptions unless the subscription names
    /// that persona as its source: a persona that emits what it listens to would otherwise
    /// start itself over and over.
    pub fn recipients(&self, event: &EventRow) -> Vec<Recipient> {
        let normalized = normalize_event_type(&event.event_type);
        let mut found: Vec<&SubscriptionRow> = Vec::new();
        if let Some(subs) = self.exact.get(&normalized) {
            found.extend(subs);
        }
        for &len in &self.prefix_lens {
            if len > normalized.len() {
                break;
            }
            if !normalized.is_char_boundary(len) {
                continue;
            }
            if let Some(subs) = self.prefix.get(&normalized[..len]) {
                found.extend(subs);
            }
        }
        found.sort_by(|a, b| a.trigger_id.cmp(&b.trigger_id));
        let trigger = trigger_kind_for(event.source_kind);
        found
            .into_iter()
            .filter(|s| accepts(s, event))
            .map(|s| Recipient {
                target: s.trigger_id.clone(),
                persona_id: s.persona_id.clone(),
                trigger,
            })
            .collect()
    }
}

fn accepts(sub: &SubscriptionRow, event: &EventRow) -> bool {
    if let Some(kind) = &sub.source_kind {
        if kind != &event.source_kind {
            return false;
        }
        if let Some(id) = &sub.source_id
            && event.source_id.as_deref() != Some(id.as_str())
        {
            return false;
        }
    }
    let own_event = event.source_kind == SourceKind::Persona
        && event.source_id.as_deref() == Some(sub.persona_id.as_str());
    let names_itself = sub.source_kind == Some(SourceKind::Persona)
        && sub.source_id.as_deref() == Some(sub.persona_id.as_str());
    !own_event || names_itself
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_core::trigger::EventPattern;
    use personas_core::{PersonaId, TriggerKind};
    use serde_json::json;

    fn sub(
        id: &str,
        persona: &str,
        pattern: &str,
        source: Option<(&str, Option<&str>)>,
    ) -> SubscriptionRow {
        let p = EventPattern::parse(pattern).expect("pattern");
        SubscriptionRow {
            trigger_id: id.into(),
            persona_id: PersonaId::from_string(persona),
            pattern: pattern.into(),
            match_key: p.key,
            is_prefix: p.prefix,
            source_kind: source.map(|s| s.0.parse().expect("source kind")),
            source_id: source.and_then(|s| s.1.map(str::to_string)),
        }
    }

    fn event(ty: &str, kind: &str, source: Option<&str>) -> EventRow {
        EventRow {
            id: "e1".into(),
            event_type: ty.into(),
            source_kind: kind.parse().expect("source kind"),
            source_id: source.map(str::to_string),
            source_execution_id: None,
            target_persona_id: None,
            payload: json!({}),
            status: personas_core::EventStatus::Processing,
            attempts: 1,
            error: None,
            created_at: chrono::Utc::now(),
            trigger_id: None,
            depth: 0,
            next_attempt_at: None,
            processed_at: None,
        }
    }

    fn targets(index: &SubscriptionIndex, e: &EventRow) -> Vec<String> {
        index.recipients(e).into_iter().map(|r| r.target).collect()
    }

    #[test]
    fn exact_and_wildcard_subscriptions_match_with_separators_alike() {
        let index = SubscriptionIndex::new(vec![
            sub("s1", "p1", "ticket.created", None),
            sub("s2", "p2", "ticket.*", None),
            sub("s3", "p3", "*", None),
            sub("s4", "p4", "deploy.done", None),
        ]);
        assert_eq!(
            targets(&index, &event("Ticket_Created", "user", None)),
            ["s1", "s2", "s3"]
        );
        assert_eq!(
            targets(&index, &event("ticket.closed", "user", None)),
            ["s2", "s3"]
        );
        assert_eq!(targets(&index, &event("other", "user", None)), ["s3"]);
        let r = &index.recipients(&event("deploy-done", "webhook", None))[1];
        assert_eq!((r.target.as_str(), r.trigger), ("s4", TriggerKind::Webhook));
    }

    #[test]
    fn source_filters_narrow_by_kind_and_id() {
        let index = SubscriptionIndex::new(vec![
            sub("s1", "p1", "x", Some(("webhook", None))),
            sub("s2", "p2", "x", Some(("persona", Some("pa")))),
        ]);
        assert_eq!(targets(&index, &event("x", "webhook", Some("t1"))), ["s1"]);
        assert_eq!(targets(&index, &event("x", "persona", Some("pa"))), ["s2"]);
        assert!(targets(&index, &event("x", "persona", Some("pb"))).is_empty());
        assert!(targets(&index, &event("x", "user", None)).is_empty());
    }

    #[test]
    fn a_persona_does_not_hear_itself_unless_it_asks_to() {
        let index =
            SubscriptionIndex::new(vec![sub("s1", "pa", "x", None), sub("s2", "pb", "x", None)]);
        assert_eq!(targets(&index, &event("x", "persona", Some("pa"))), ["s2"]);
        let index =
            SubscriptionIndex::new(vec![sub("s1", "pa", "x", Some(("persona", Some("pa"))))]);
        assert_eq!(targets(&index, &event("x", "persona", Some("pa"))), ["s1"]);
    }
}
