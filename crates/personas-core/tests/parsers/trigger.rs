//! Trigger definitions and the small languages inside them: missed-run policies, event types
//! and patterns, chain conditions ([`personas_core::trigger`]).

use crate::r#gen::{awkward_text, config, json_value};
use personas_core::PersonaId;
use personas_core::trigger::{
    ChainOn, EventPattern, MAX_CATCH_UP, MissedPolicy, SourceFilter, SourceKind, TriggerConfig,
    normalize_event_type, validate_event_type,
};
use proptest::prelude::*;

fn event_type() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:/-]{1,60}"
}

fn config_value() -> impl Strategy<Value = TriggerConfig> {
    prop_oneof![
        Just(TriggerConfig::Manual),
        any::<bool>().prop_map(|github| TriggerConfig::Webhook { github }),
        (
            awkward_text(),
            awkward_text(),
            prop_oneof![
                Just(MissedPolicy::Skip),
                Just(MissedPolicy::Once),
                (1..=MAX_CATCH_UP).prop_map(MissedPolicy::CatchUp)
            ]
        )
            .prop_map(|(expr, tz, missed)| TriggerConfig::Cron { expr, tz, missed }),
        (
            awkward_text(),
            proptest::option::of((
                prop::sample::select(SourceKind::ALL.to_vec()),
                proptest::option::of(awkward_text())
            ))
        )
            .prop_map(|(pattern, source)| TriggerConfig::Event {
                pattern,
                source: source.map(|(kind, id)| SourceFilter { kind, id }),
            }),
        prop::sample::select(vec![ChainOn::Completed, ChainOn::Failed, ChainOn::Any]).prop_map(
            |on| TriggerConfig::Chain {
                after_persona_id: PersonaId::new(),
                on
            }
        ),
        (awkward_text(), proptest::option::of(awkward_text()))
            .prop_map(|(path, glob)| TriggerConfig::Watch { path, glob }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// A missed-run policy that parses prints back to itself; anything else is refused naming
    /// `missed`.
    #[test]
    fn missed_policies_round_trip_or_name_the_field(
        s in prop_oneof![
            awkward_text(),
            any::<i64>().prop_map(|n| format!("catch-up:{n}")),
            Just("catch-up:".to_string()),
            Just("catch-up:+5".to_string()),
            Just("catch-up:99999999999999999999".to_string()),
        ]
    ) {
        match s.parse::<MissedPolicy>() {
            Ok(p) => {
                prop_assert_eq!(p.to_string().parse::<MissedPolicy>(), Ok(p));
                let json = serde_json::to_value(p).expect("json");
                prop_assert_eq!(serde_json::from_value::<MissedPolicy>(json).expect("back"), p);
                prop_assert!(p.keep() <= MAX_CATCH_UP as usize);
            }
            Err(e) => prop_assert_eq!(e.field, "missed"),
        }
    }

    /// An event type a persona publishes either is refused naming `type`, or subscribing to it
    /// by name (in any spelling of `-`, `_` and case) matches it.
    #[test]
    fn event_types_are_checked_and_match_their_own_pattern(s in prop_oneof![awkward_text(), event_type()]) {
        match validate_event_type(&s) {
            Ok(()) => {
                let p = EventPattern::parse(&s).expect("a publishable type is a valid pattern");
                prop_assert!(p.matches(&normalize_event_type(&s)));
                let respelt = s.replace('.', "_").to_uppercase();
                prop_assert!(p.matches(&normalize_event_type(&respelt)));
            }
            Err(e) => prop_assert_eq!(e.field, "type"),
        }
    }

    /// A pattern either is refused naming `event`, or a `prefix*` pattern matches every type
    /// that starts with the prefix.
    #[test]
    fn patterns_name_the_field_or_match_by_prefix(
        s in prop_oneof![awkward_text(), event_type().prop_map(|t| t + "*"), Just("*".to_string())],
        tail in event_type(),
    ) {
        match EventPattern::parse(&s) {
            Ok(p) if p.prefix => {
                let typed = format!("{}{}", &s[..s.len() - 1], tail);
                prop_assert!(p.matches(&normalize_event_type(&typed)), "{} vs {}", s, typed);
            }
            Ok(p) => prop_assert!(p.matches(&normalize_event_type(&s))),
            Err(e) => prop_assert_eq!(e.field, "event"),
        }
    }

    #[test]
    fn chain_conditions_parse_or_name_the_field(s in awkward_text()) {
        match s.parse::<ChainOn>() {
            Ok(on) => prop_assert_eq!(on.as_str(), s.as_str()),
            Err(e) => prop_assert_eq!(e.field, "on"),
        }
    }

    /// A stored trigger definition reads back as written; arbitrary JSON never panics.
    #[test]
    fn trigger_definitions_round_trip(c in config_value(), junk in json_value()) {
        let json = serde_json::to_string(&c).expect("json");
        prop_assert_eq!(serde_json::from_str::<TriggerConfig>(&json).expect("back"), c.clone());
        let _ = c.validate();
        if let Ok(parsed) = serde_json::from_value::<TriggerConfig>(junk) {
            let _ = parsed.validate();
        }
    }
}
