//! Persona protocol lines in an agent's text ([`personas_core::protocol::scan_text`]) and the
//! same messages as structured calls ([`personas_core::protocol::parse_message`], the MCP path).

use crate::r#gen::{Kind, awkward_text, json_value, wrong_for};
use personas_core::protocol::{
    KEYS, Priority, ProtocolMessage, Severity, parse_message, scan_text,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn non_blank() -> impl Strategy<Value = String> {
    awkward_text().prop_filter("not blank", |s| !s.trim().is_empty())
}

fn message() -> impl Strategy<Value = ProtocolMessage> {
    let priority = prop::sample::select(vec![
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ]);
    let severity = prop::sample::select(vec![
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]);
    prop_oneof![
        (proptest::option::of(awkward_text()), non_blank(), priority).prop_map(
            |(title, content, priority)| ProtocolMessage::UserMessage {
                title,
                content,
                priority
            }
        ),
        ("[A-Za-z0-9._:-]{1,40}", json_value())
            .prop_map(|(event_type, data)| ProtocolMessage::EmitEvent { event_type, data }),
        (
            non_blank(),
            proptest::option::of(awkward_text()),
            proptest::option::of(json_value())
        )
            .prop_map(|(target, action, input)| ProtocolMessage::PersonaAction {
                target,
                action,
                input
            }),
        (non_blank(), non_blank(), awkward_text(), 1u8..=5).prop_map(
            |(title, content, category, importance)| ProtocolMessage::AgentMemory {
                title,
                content,
                category,
                importance
            }
        ),
        (
            non_blank(),
            proptest::option::of(awkward_text()),
            severity,
            prop::collection::vec(awkward_text(), 0..4)
        )
            .prop_map(|(title, description, severity, suggested_actions)| {
                ProtocolMessage::ManualReview {
                    title,
                    description,
                    severity,
                    suggested_actions,
                }
            }),
        (any::<bool>(), awkward_text()).prop_map(|(accomplished, summary)| {
            ProtocolMessage::OutcomeAssessment {
                accomplished,
                summary,
            }
        }),
    ]
}

/// The wrapper object an agent writes for `msg`, as the prompt documents it.
fn encode(msg: &ProtocolMessage) -> Value {
    let body = match msg {
        ProtocolMessage::UserMessage {
            title,
            content,
            priority,
        } => json!({"title": title, "content": content, "priority": priority.as_str()}),
        ProtocolMessage::EmitEvent { event_type, data } => {
            json!({"type": event_type, "data": data})
        }
        ProtocolMessage::PersonaAction {
            target,
            action,
            input,
        } => {
            let mut b = json!({"target": target, "action": action});
            if let Some(input) = input {
                b["input"] = input.clone();
            }
            b
        }
        ProtocolMessage::AgentMemory {
            title,
            content,
            category,
            importance,
        } => {
            json!({"title": title, "content": content, "category": category, "importance": importance})
        }
        ProtocolMessage::ManualReview {
            title,
            description,
            severity,
            suggested_actions,
        } => json!({"title": title, "description": description, "severity": severity.as_str(),
                    "suggested_actions": suggested_actions}),
        ProtocolMessage::OutcomeAssessment {
            accomplished,
            summary,
        } => json!({"accomplished": accomplished, "summary": summary}),
    };
    json!({ msg.key(): body })
}

/// How an agent may lay a message out in its text.
#[derive(Debug, Clone, Copy)]
enum Layout {
    OneLine,
    /// Pretty-printed the usual way: `{` alone on the first line.
    Pretty,
    /// Pretty-printed with the key on the first line.
    PrettyKeyFirst,
    Fenced,
    Quoted,
}

fn lay_out(v: &Value, layout: Layout) -> String {
    let line = v.to_string();
    match layout {
        Layout::OneLine => line,
        Layout::Pretty => serde_json::to_string_pretty(v).expect("json"),
        Layout::PrettyKeyFirst => {
            let pretty = serde_json::to_string_pretty(v).expect("json");
            // Join the lone `{` with the key line below it.
            pretty.replacen("{\n  ", "{", 1)
        }
        Layout::Fenced => format!("```json\n{line}\n```"),
        Layout::Quoted => format!("> {line}"),
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(vec![
        Layout::OneLine,
        Layout::Pretty,
        Layout::PrettyKeyFirst,
        Layout::Fenced,
        Layout::Quoted,
    ])
}

/// Prose around messages: no braces, so it cannot be mistaken for one.
fn prose() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?é日]{0,80}"
}

/// Fragments that steer the scanner into its branches (a key opening an object, unclosed
/// objects continuing on later lines, fences, quotes).
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(KEYS.to_vec()).prop_map(|k| format!("{{\"{k}\": {{")),
        prop::sample::select(KEYS.to_vec()).prop_map(|k| format!("{{\"{k}\"")),
        Just("\n".to_string()),
        Just("}".to_string()),
        Just("}}".to_string()),
        Just("\"".to_string()),
        Just("```json".to_string()),
        Just("> ".to_string()),
        Just("`".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        awkward_text(),
        json_value().prop_map(|v| v.to_string()),
    ]
}

/// The fields of each message body, with the JSON type each expects.
fn fields(key: &str) -> &'static [(&'static str, Kind)] {
    match key {
        "user_message" => &[
            ("title", Kind::Str),
            ("content", Kind::Str),
            ("priority", Kind::Str),
        ],
        "emit_event" => &[("type", Kind::Str)],
        "persona_action" => &[("target", Kind::Str), ("action", Kind::Str)],
        "agent_memory" => &[
            ("title", Kind::Str),
            ("content", Kind::Str),
            ("category", Kind::Str),
            ("importance", Kind::UInt),
        ],
        "manual_review" => &[
            ("title", Kind::Str),
            ("description", Kind::Str),
            ("severity", Kind::Str),
            ("suggested_actions", Kind::StrList),
        ],
        "outcome_assessment" => &[("accomplished", Kind::Bool), ("summary", Kind::Str)],
        _ => &[],
    }
}

/// A valid body for each key.
fn valid_body(key: &str) -> Map<String, Value> {
    let v = match key {
        "user_message" => json!({"title": "t", "content": "c", "priority": "high"}),
        "emit_event" => json!({"type": "a.b", "data": {}}),
        "persona_action" => json!({"target": "Reviewer", "action": "review"}),
        "agent_memory" => {
            json!({"title": "t", "content": "c", "category": "fact", "importance": 2})
        }
        "manual_review" => json!({"title": "t", "description": "d", "severity": "low",
                                  "suggested_actions": ["go"]}),
        _ => json!({"accomplished": true, "summary": "s"}),
    };
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A body with one field holding a value that field cannot take.
fn broken_body() -> impl Strategy<Value = (&'static str, &'static str, Map<String, Value>)> {
    prop::sample::select(KEYS.to_vec())
        .prop_flat_map(|key| (Just(key), prop::sample::select(fields(key))))
        .prop_flat_map(|(key, (field, kind))| {
            let wrong = prop_oneof![
                3 => wrong_for(kind),
                // Right type, wrong value: blank strings, unknown enum values, bad characters,
                // importance outside 1-5 (huge numbers included).
                1 => match (key, field) {
                    ("agent_memory", "importance") => prop_oneof![
                        Just(json!(0)), Just(json!(6)), Just(json!(u64::MAX)), Just(json!(3.0)),
                    ].boxed(),
                    (_, "priority" | "severity") => "[a-z]{1,10}"
                        .prop_filter("not a known level", |s| {
                            !["low", "normal", "medium", "high", "urgent", "critical"].contains(&s.as_str())
                        })
                        .prop_map(Value::String)
                        .boxed(),
                    ("emit_event", "type") => "[a-z]{0,4}[ /{}!é][a-z]{0,4}".prop_map(Value::String).boxed(),
                    (_, "title" | "content" | "target") if key != "user_message" || field != "title" =>
                        "[ \t\n]{0,3}".prop_map(Value::String).boxed(),
                    _ => wrong_for(kind),
                },
            ];
            (Just(key), Just(field), wrong)
        })
        .prop_map(|(key, field, wrong)| {
            let mut body = valid_body(key);
            body.insert(field.to_string(), wrong);
            (key, field, body)
        })
}

proptest! {
    #![proptest_config(crate::r#gen::config(256))]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = scan_text(&s);
    }

    #[test]
    fn text_made_of_protocol_fragments_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
        let text = parts.concat();
        for r in scan_text(&text) {
            if let Err(w) = r {
                prop_assert!(!w.reason.is_empty());
                prop_assert!(w.excerpt.chars().count() <= 161, "{}", w.excerpt);
            }
        }
    }

    /// A message written in any of the layouts agents use, between prose, scans back to the
    /// same message.
    #[test]
    fn messages_round_trip_through_text(
        msgs in prop::collection::vec((message(), layout(), prose()), 1..4),
        head in prose(),
    ) {
        let mut text = head;
        for (m, l, after) in &msgs {
            text.push('\n');
            text.push_str(&lay_out(&encode(m), *l));
            text.push('\n');
            text.push_str(after);
        }
        let got: Vec<_> = scan_text(&text).into_iter().collect::<Result<_, _>>()
            .map_err(|w| TestCaseError::fail(format!("{w:?} in {text}")))?;
        let want: Vec<_> = msgs.into_iter().map(|(m, ..)| m).collect();
        prop_assert_eq!(got, want, "{}", text);
    }

    /// The structured path accepts exactly what the text path accepts.
    #[test]
    fn structured_calls_agree_with_text(m in message()) {
        let wrapper = encode(&m);
        let (key, body) = wrapper.as_object().and_then(|o| o.iter().next()).expect("one key");
        prop_assert_eq!(parse_message(key, body.clone()), Ok(m));
    }

    /// A body with one bad field is refused, on both paths, with a reason naming that field.
    #[test]
    fn a_bad_field_is_named_in_the_warning((key, field, body) in broken_body()) {
        let line = json!({ key: body.clone() }).to_string();
        let scanned = scan_text(&line);
        prop_assert_eq!(scanned.len(), 1, "{}", line);
        let w = scanned[0].clone().expect_err(&line);
        prop_assert_eq!(w.key.as_deref(), Some(key));
        prop_assert!(w.reason.contains(field), "{} -> {}", line, w.reason);
        let e = parse_message(key, Value::Object(body)).expect_err(&line);
        prop_assert!(e.contains(field), "{} -> {}", line, e);
    }

    /// A wrapper holding something other than an object, or more than one key, is refused with
    /// a reason saying so.
    #[test]
    fn a_malformed_wrapper_is_named(key in prop::sample::select(KEYS.to_vec()), v in json_value()) {
        if !v.is_object() {
            let line = json!({ key: v }).to_string();
            let w = scan_text(&line).remove(0).expect_err(&line);
            prop_assert!(w.reason.contains("must hold an object"), "{}", w.reason);
        }
        let two = format!("{{\"{key}\": {{}}, \"other\": 1}}");
        let w = scan_text(&two).remove(0).expect_err(&two);
        prop_assert!(w.reason.contains("exactly one key"), "{}", w.reason);
    }
}

/// Text full of objects that never close (a model looping, or text written to stall the
/// runner) gets one warning per object, and a message after them is still read. Each window of
/// lines is parsed once; before, every added line re-parsed the window (quadratic: 2,000 such
/// lines took 11 s in a release build).
#[test]
fn a_flood_of_unclosed_objects_is_warned_once_each_and_a_later_message_is_read() {
    let n = 400;
    let mut text = "{\"user_message\": {\"content\": \"x\",\n\"a\": [\n".repeat(n);
    text.push_str("{\"emit_event\": {\"type\": \"done\"}}\n");
    let all = scan_text(&text);
    assert_eq!(all.len(), n + 1);
    assert!(
        all[..n]
            .iter()
            .all(|r| matches!(r, Err(w) if w.reason.contains("invalid JSON")))
    );
    assert!(
        matches!(&all[n], Ok(ProtocolMessage::EmitEvent { event_type, .. }) if event_type == "done")
    );
}
