//! Persona files, YAML and JSON ([`personas_core::persona_file`]).

use crate::r#gen::{Kind, awkward_text, config, deep_json, exact_float, wrong_for};
use personas_core::model::{PermissionMode, PersonaSpec, PromptSection};
use personas_core::persona_file::{FORMAT, PersonaFile, Syntax, parse};
use proptest::prelude::*;
use serde_json::{Value, json};

fn name() -> impl Strategy<Value = String> {
    awkward_text().prop_map(|s| {
        let s: String = s.chars().filter(|c| !c.is_control()).take(120).collect();
        let s = s.trim().to_string();
        if s.is_empty() { "A".to_string() } else { s }
    })
}

fn non_blank() -> impl Strategy<Value = String> {
    awkward_text().prop_filter("not blank", |s| !s.trim().is_empty())
}

fn tool_rule() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9_-]{0,15}",
        ("[A-Za-z][A-Za-z0-9_]{0,10}", "[^\\n]{1,20}").prop_map(|(t, p)| format!("{t}({p})")),
    ]
}

fn mode() -> impl Strategy<Value = PermissionMode> {
    prop::sample::select(PermissionMode::ALL.to_vec())
}

/// A spec `validate::persona_spec` accepts, with awkward text wherever text is free.
fn valid_spec() -> impl Strategy<Value = PersonaSpec> {
    (
        (name(), non_blank(), awkward_text()),
        prop::collection::vec((non_blank(), awkward_text()), 0..3),
        proptest::option::of("[a-z0-9.-]{1,30}"),
        (1u32..=64, 1u64..=86_400, proptest::option::of(1u32..)),
        proptest::option::of(exact_float().prop_filter_map("positive", |f| {
            let f = f.abs();
            (f > 0.0).then_some(f)
        })),
        (
            mode(),
            prop::collection::vec(tool_rule(), 0..3),
            prop::collection::vec(tool_rule(), 0..3),
        ),
        any::<bool>(),
    )
        .prop_map(
            |(
                (name, instructions, description),
                sections,
                model,
                (max_concurrent, timeout_secs, max_turns),
                max_budget_usd,
                (mode, allow, deny),
                enabled,
            )| {
                let mut s = PersonaSpec::new(name, instructions);
                s.description = description;
                s.sections = sections
                    .into_iter()
                    .map(|(title, body)| PromptSection { title, body })
                    .collect();
                s.model = model;
                s.max_concurrent = max_concurrent;
                s.timeout_secs = timeout_secs;
                s.max_turns = max_turns;
                s.max_budget_usd = max_budget_usd;
                s.permissions.mode = mode;
                s.permissions.allow = allow;
                s.permissions.deny = deny;
                s.enabled = enabled;
                s
            },
        )
        .prop_filter("a name that does not look like an id", |s| {
            uuid::Uuid::parse_str(&s.name).is_err()
        })
}

/// The keys of a persona file, with where they sit and the JSON type each expects.
const KEYS: &[(&[&str], Kind)] = &[
    (&["format"], Kind::Str),
    (&["name"], Kind::Str),
    (&["description"], Kind::Str),
    (&["instructions"], Kind::Str),
    (&["model"], Kind::Str),
    (&["limits"], Kind::Object),
    (&["limits", "max_concurrent"], Kind::UInt),
    (&["limits", "timeout_secs"], Kind::UInt),
    (&["limits", "max_turns"], Kind::UInt),
    (&["limits", "max_budget_usd"], Kind::Float),
    (&["permissions"], Kind::Object),
    (&["permissions", "mode"], Kind::Str),
    (&["permissions", "allow"], Kind::StrList),
    (&["permissions", "deny"], Kind::StrList),
    (&["enabled"], Kind::Bool),
    (&["sections", "0", "title"], Kind::Str),
    (&["sections", "0", "body"], Kind::Str),
];

/// A valid file as a JSON value, with every key present.
fn full_file() -> Value {
    json!({
        "format": FORMAT, "name": "Writer", "description": "d", "instructions": "Do it.",
        "sections": [{"title": "Format", "body": "Bullets"}], "model": "sonnet",
        "limits": {"max_concurrent": 2, "timeout_secs": 300, "max_turns": 4, "max_budget_usd": 0.5},
        "permissions": {"mode": "default", "allow": ["Read"], "deny": ["WebFetch"]},
        "enabled": true,
    })
}

/// `a.b[0].c`, as errors name fields.
fn dotted(path: &[&str]) -> String {
    let mut out = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

fn slot<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Value {
    path.iter().fold(v, |v, seg| match seg.parse::<usize>() {
        Ok(i) => &mut v[i],
        Err(_) => &mut v[*seg],
    })
}

fn remove(v: &mut Value, path: &[&str]) {
    let (last, parent) = path.split_last().expect("a path");
    if let Some(m) = slot(v, parent).as_object_mut() {
        m.remove(*last);
    }
}

fn render(v: &Value, syntax: Syntax) -> String {
    match syntax {
        Syntax::Json => serde_json::to_string_pretty(v).expect("json"),
        Syntax::Yaml => serde_yaml_ng::to_string(v).expect("yaml"),
    }
}

/// True for plain scalars (numbers, booleans), or lists of them, which YAML reads as text where
/// text is expected: `name: 5` is the name "5".
fn yaml_reads_as_text(v: &Value) -> bool {
    match v {
        Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => items.iter().all(|i| i.is_number() || i.is_boolean()),
        _ => false,
    }
}

fn syntax() -> impl Strategy<Value = Syntax> {
    prop::sample::select(vec![Syntax::Yaml, Syntax::Json])
}

/// YAML-looking lines, to reach the YAML parser's corners (anchors, aliases, tags, merges).
fn yaml_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "format: personas/v1",
            "name: A",
            "instructions: x",
            "limits:",
            "  max_concurrent: 99999999999999999999999",
            "  timeout_secs: -1",
            "permissions: {mode: yolo}",
            "sections:",
            "  - title: t",
            "    body: b",
            "- a",
            "&a [1, 2]",
            "*a",
            "<<: *a",
            "!!binary aGk=",
            "? complex",
            ": v",
            "---",
            "...",
            "key: |",
            "  block",
            "enabled: yes",
            "model: ~",
            "\t",
            "\"unterminated",
            "{",
            "[",
            "description: &x [*x]",
        ])
        .prop_map(str::to_owned),
        awkward_text(),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = parse(&s);
        let _ = parse(&format!("{{{s}"));
    }

    #[test]
    fn yaml_like_line_soup_never_panics(lines in prop::collection::vec(yaml_line(), 0..20)) {
        if let Err(e) = parse(&lines.join("\n")) {
            prop_assert!(!e.field.is_empty() && !e.message.is_empty());
        }
    }

    /// Export then import gives the same persona, in both syntaxes.
    #[test]
    fn export_then_import_gives_the_same_persona(spec in valid_spec(), syntax in syntax()) {
        let text = PersonaFile::from(&spec).render(syntax);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, spec, "{}", text);
    }

    /// A key holding a value of the wrong type is refused naming that key's path (JSON), or,
    /// where YAML reads a plain scalar as text, accepted as that text.
    #[test]
    fn a_mistyped_key_is_named_by_its_path(
        ((path, _), wrong) in prop::sample::select(KEYS).prop_flat_map(|k| (Just(k), wrong_for(k.1))),
        syntax in syntax(),
    ) {
        let mut file = full_file();
        *slot(&mut file, path) = wrong.clone();
        let text = render(&file, syntax);
        match parse(&text) {
            Err(e) => {
                // The key, or an item inside it (`permissions.allow[0]`).
                let key = dotted(path);
                prop_assert!(
                    e.field == key || e.field.starts_with(&format!("{key}[")),
                    "{} names {} not {}\n{}", e, e.field, key, text
                );
            }
            Ok(spec) => prop_assert!(
                syntax == Syntax::Yaml && yaml_reads_as_text(&wrong),
                "{:?} accepted as {:?}", text, spec
            ),
        }
    }

    /// A missing required key, or an unknown one at any level, is named by its path.
    #[test]
    fn missing_and_unknown_keys_are_named(
        required in prop::sample::select(vec![&["format"][..], &["name"], &["instructions"],
                                               &["sections", "0", "title"], &["sections", "0", "body"]]),
        at in prop::sample::select(vec![&[][..], &["limits"], &["permissions"], &["sections", "0"]]),
        unknown in "[a-z_]{1,12}",
        syntax in syntax(),
    ) {
        let mut file = full_file();
        remove(&mut file, required);
        let e = parse(&render(&file, syntax)).expect_err("missing");
        prop_assert_eq!(&e.field, &dotted(required), "{}", e);

        let mut file = full_file();
        let target = slot(&mut file, at).as_object_mut().expect("object");
        prop_assume!(!target.contains_key(&unknown));
        target.insert(unknown.clone(), json!(1));
        let mut path = at.to_vec();
        path.push(&unknown);
        let e = parse(&render(&file, syntax)).expect_err("unknown");
        prop_assert_eq!(&e.field, &dotted(&path), "{}", e);
    }

    /// A value of the right type that the spec refuses is named by its key in the file.
    #[test]
    fn a_refused_value_is_named_by_its_key(
        (path, bad) in prop_oneof![
            Just((&["name"][..], json!("  "))),
            Just((&["name"][..], json!(" padded"))),
            Just((&["name"][..], json!("0190a5b2-0000-7000-8000-000000000000"))),
            "[a-z]{121,140}".prop_map(|s| (&["name"][..], json!(s))),
            Just((&["instructions"][..], json!("\n\t "))),
            Just((&["sections", "0", "title"][..], json!(""))),
            Just((&["model"][..], json!("my model"))),
            prop_oneof![Just(0u64), 65u64..].prop_map(|n| (&["limits", "max_concurrent"][..], json!(n))),
            prop_oneof![Just(0u64), 86_401u64..].prop_map(|n| (&["limits", "timeout_secs"][..], json!(n))),
            Just((&["limits", "max_turns"][..], json!(0))),
            prop_oneof![Just(0.0), -1e300..0.0].prop_map(|f| (&["limits", "max_budget_usd"][..], json!(f))),
            "[(][a-z]{0,3}|[A-Z]{1,3}[ *!][a-z]{0,3}".prop_map(|r| (&["permissions", "allow"][..], json!([r]))),
            "[(][a-z]{0,3}|[A-Z]{1,3}[ *!][a-z]{0,3}".prop_map(|r| (&["permissions", "deny"][..], json!([r]))),
            "[a-z]{1,10}".prop_filter("not a mode", |m| m.parse::<PermissionMode>().is_err())
                .prop_map(|m| (&["permissions", "mode"][..], json!(m))),
            "personas/v[02-9]|[a-z]{1,8}".prop_map(|f| (&["format"][..], json!(f))),
        ],
        syntax in syntax(),
    ) {
        let mut file = full_file();
        *slot(&mut file, path) = bad;
        let text = render(&file, syntax);
        let e = parse(&text).expect_err(&text);
        prop_assert_eq!(&e.field, &dotted(path), "{}\n{}", e, text);
    }

}

proptest! {
    // Each case parses a few hundred kilobytes; fewer cases keep the suite fast.
    #![proptest_config(config(32))]

    /// Deep nesting anywhere is refused (past the parsers' recursion limits) without
    /// overflowing the stack, and very long text is read whole.
    #[test]
    fn deep_nesting_and_long_text_are_handled(depth in 1usize..1000, objects in any::<bool>(), n in 1usize..90_000) {
        let json = format!(
            "{{\"format\": \"{FORMAT}\", \"name\": \"A\", \"instructions\": \"x\", \"description\": {}}}",
            deep_json(depth, objects)
        );
        let e = parse(&json).expect_err("description is text");
        prop_assert_eq!(e.field, "description");
        let yaml = format!("format: {FORMAT}\nname: A\ninstructions: x\ndescription: {}\n", deep_json(depth, objects));
        let e = parse(&yaml).expect_err("description is text");
        prop_assert!(!e.message.is_empty());
        let long = "é".repeat(n);
        let spec = parse(&format!("format: {FORMAT}\nname: A\ninstructions: {long}\n")).expect("long");
        prop_assert_eq!(spec.instructions.chars().count(), n);
    }
}

#[test]
fn alias_bombs_are_refused_quickly() {
    // "Billion laughs": nine levels of ten aliases each.
    let mut yaml = format!("format: {FORMAT}\nname: A\ninstructions: x\nsections: []\n");
    yaml.push_str("x0: &a0 [lol]\n");
    for i in 1..9 {
        let p = i - 1;
        yaml.push_str(&format!(
            "x{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    let e = parse(&yaml).expect_err("refused");
    assert!(!e.message.is_empty(), "{e}");
}
