//! The Claude CLI's stream-json lines ([`personas_core::stream::parse_line`]).

use crate::r#gen::{Kind, awkward_text, deep_json, exact_float, json_value, wrong_for};
use personas_core::stream::{Block, ClaudeLine, ToolResult, parse_line};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The line fields the parser reads, with the JSON type each expects.
const FIELDS: &[(&str, Kind)] = &[
    ("subtype", Kind::Str),
    ("session_id", Kind::Str),
    ("model", Kind::Str),
    ("cwd", Kind::Str),
    ("permissionMode", Kind::Str),
    ("tools", Kind::StrList),
    ("claude_code_version", Kind::Str),
    ("attempt", Kind::UInt),
    ("max_retries", Kind::UInt),
    ("retry_delay_ms", Kind::Float),
    ("error_status", Kind::UInt),
    ("error", Kind::Str),
    ("message", Kind::Object),
    ("parent_tool_use_id", Kind::Str),
    ("is_error", Kind::Bool),
    ("result", Kind::Str),
    ("errors", Kind::StrList),
    ("num_turns", Kind::UInt),
    ("total_cost_usd", Kind::Float),
    ("usage", Kind::Object),
    ("duration_ms", Kind::UInt),
    ("api_error_status", Kind::UInt),
    ("terminal_reason", Kind::Str),
    ("stop_reason", Kind::Str),
];

fn line_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "system",
        "assistant",
        "user",
        "result",
        "stream_event",
    ])
}

/// One field of a line with a value of the wrong type.
fn mistyped_field() -> impl Strategy<Value = (&'static str, Value)> {
    prop::sample::select(FIELDS).prop_flat_map(|(name, kind)| (Just(name), wrong_for(kind)))
}

fn content_block() -> impl Strategy<Value = (Value, Block)> {
    prop_oneof![
        awkward_text().prop_map(|t| (json!({"type": "text", "text": t}), Block::Text(t))),
        awkward_text().prop_map(|t| (
            json!({"type": "thinking", "thinking": t, "signature": "x"}),
            Block::Thinking(t)
        )),
        ("[a-zA-Z0-9_]{1,20}", "[A-Za-z]{1,12}", json_value()).prop_map(|(id, name, input)| (
            json!({"type": "tool_use", "id": id, "name": name, "input": input}),
            Block::ToolUse { id, name, input }
        )),
        ("[a-zA-Z0-9_]{1,20}", awkward_text(), any::<bool>()).prop_map(|(id, content, is_error)| (
            json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error}),
            Block::ToolResult(ToolResult { tool_use_id: id, content, is_error })
        )),
        "[a-z_]{1,12}"
            .prop_filter("a block type the parser does not know", |t| {
                !["text", "thinking", "tool_use", "tool_result"].contains(&t.as_str())
            })
            .prop_map(|t| (json!({"type": t}), Block::Other(t))),
    ]
}

proptest! {
    #![proptest_config(crate::r#gen::config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value(), ty in line_type()) {
        let _ = parse_line(v.to_string().as_bytes());
        // The same value as any field of a line of each type.
        if let Value::Object(mut m) = v {
            m.insert("type".into(), Value::from(ty));
            let _ = parse_line(Value::Object(m).to_string().as_bytes());
        }
    }

    /// A field the parser reads, holding the wrong type, fails the line with an error that
    /// names the field (the runner records it as raw output with that reason).
    #[test]
    fn a_mistyped_field_is_named_in_the_error(ty in line_type(), (field, wrong) in mistyped_field()) {
        let line = json!({"type": ty, field: wrong}).to_string();
        let e = parse_line(line.as_bytes()).expect_err(&line);
        prop_assert!(e.to_string().contains(field), "{} -> {}", line, e);
    }

    #[test]
    fn a_line_without_a_type_or_with_a_mistyped_one_names_type(v in json_value()) {
        let e = parse_line(b"{\"subtype\": \"init\"}").expect_err("no type");
        prop_assert!(e.to_string().contains("type"), "{}", e);
        if !v.is_string() {
            let line = json!({"type": v}).to_string();
            let e = parse_line(line.as_bytes()).expect_err(&line);
            prop_assert!(e.to_string().contains("type"), "{} -> {}", line, e);
        }
    }

    /// Deep nesting in a field the parser skips is skipped (serde_json skips iteratively); in
    /// a field it keeps (a tool's input) it is refused past serde_json's recursion limit, naming
    /// the field, never overflowing the stack.
    #[test]
    fn deep_nesting_never_overflows(depth in 1usize..2000, objects in any::<bool>()) {
        let nested = deep_json(depth, objects);
        let skipped = format!("{{\"type\": \"result\", \"modelUsage\": {nested}}}");
        prop_assert!(matches!(parse_line(skipped.as_bytes()), Ok(ClaudeLine::Result(_))));
        let kept = format!(
            "{{\"type\": \"assistant\", \"message\": {{\"content\": \
             [{{\"type\": \"tool_use\", \"id\": \"t\", \"name\": \"X\", \"input\": {nested}}}]}}}}"
        );
        match parse_line(kept.as_bytes()) {
            Ok(ClaudeLine::Assistant(a)) => prop_assert!(depth < 128, "depth {} kept: {:?}", depth, a.blocks.len()),
            Ok(other) => prop_assert!(false, "{:?}", other),
            Err(e) => {
                let e = e.to_string();
                prop_assert!(depth > 100 && e.contains("recursion") && e.contains("input"), "{}", e);
            }
        }
    }

    /// An assistant line built from generated blocks parses back to the same blocks.
    #[test]
    fn assistant_lines_built_from_values_parse_back(
        blocks in prop::collection::vec(content_block(), 0..6),
        id in "msg_[a-zA-Z0-9]{1,24}",
        parent in proptest::option::of("[a-z0-9_]{1,16}"),
    ) {
        let (wire, want): (Vec<Value>, Vec<Block>) = blocks.into_iter().unzip();
        let line = json!({
            "type": "assistant",
            "message": {"id": id, "model": "claude-x", "role": "assistant", "content": wire},
            "parent_tool_use_id": parent,
            "session_id": "s",
        });
        let ClaudeLine::Assistant(a) = parse_line(line.to_string().as_bytes()).expect("valid") else {
            return Err(TestCaseError::fail("not an assistant line"));
        };
        prop_assert_eq!(a.blocks, want);
        prop_assert_eq!(a.message_id, Some(id));
        prop_assert_eq!(a.parent_tool_use_id, parent);
    }

    /// A result line built from generated values parses back to the same values, large numbers
    /// and unicode included.
    #[test]
    fn result_lines_built_from_values_parse_back(
        is_error in any::<bool>(),
        subtype in "[a-z_]{1,24}",
        result in proptest::option::of(awkward_text()),
        errors in prop::collection::vec(awkward_text(), 0..3),
        num_turns in any::<u32>(),
        cost in exact_float().prop_map(f64::abs),
        tokens in any::<[u64; 4]>(),
        duration in proptest::option::of(any::<u64>()),
        api_status in proptest::option::of(any::<u16>()),
        tool_input in json_value(),
    ) {
        let line = json!({
            "type": "result", "subtype": subtype, "is_error": is_error, "result": result,
            "errors": errors, "num_turns": num_turns, "total_cost_usd": cost,
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1],
                      "cache_read_input_tokens": tokens[2], "cache_creation_input_tokens": tokens[3]},
            "duration_ms": duration, "api_error_status": api_status,
            "permission_denials": [{"tool_name": "Bash", "tool_use_id": "t1", "tool_input": tool_input}],
            "session_id": "s-1",
        });
        let ClaudeLine::Result(r) = parse_line(line.to_string().as_bytes()).expect("valid") else {
            return Err(TestCaseError::fail("not a result line"));
        };
        prop_assert_eq!(r.subtype, subtype);
        prop_assert_eq!(r.is_error, is_error);
        prop_assert_eq!(r.result, result);
        prop_assert_eq!(r.errors, errors);
        prop_assert_eq!(r.num_turns, num_turns);
        prop_assert_eq!(r.total_cost_usd, cost);
        prop_assert_eq!([r.usage.input, r.usage.output, r.usage.cache_read, r.usage.cache_creation], tokens);
        prop_assert_eq!(r.duration_ms, duration);
        prop_assert_eq!(r.api_error_status, api_status);
        prop_assert_eq!(&r.permission_denials[0].tool_input, &tool_input);
        prop_assert_eq!(r.session_id.as_deref(), Some("s-1"));
    }

    /// `api_retry` delays arrive as floats from the CLI; any non-negative float is kept whole,
    /// a negative or absurd one is clamped rather than failing the line.
    #[test]
    fn retry_delays_of_any_size_are_read(delay in prop_oneof![any::<f64>(), 0f64..1e6], attempt in any::<u32>()) {
        let line = json!({"type": "system", "subtype": "api_retry", "attempt": attempt, "retry_delay_ms": delay});
        // serde_json writes a non-finite float as null, which means "no delay".
        let ClaudeLine::ApiRetry(r) = parse_line(line.to_string().as_bytes()).expect("valid") else {
            return Err(TestCaseError::fail("not an api_retry line"));
        };
        prop_assert_eq!(r.attempt, attempt);
        if (0.0..1e15).contains(&delay) {
            prop_assert_eq!(r.retry_delay_ms, delay as u64);
        }
    }
}
