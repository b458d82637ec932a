//! Generators shared by the parser properties: arbitrary JSON, awkward text, deep nesting, and
//! values of the wrong JSON type for a field of a given kind.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value};

/// The runner configuration of every property: `cases` cases, failures kept next to the test's
/// source file (`<file>.proptest-regressions`) so they replay first on every later run.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Text that tends to break parsers: unicode, control characters, quotes, YAML and JSON syntax,
/// and long runs.
pub fn awkward_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        2 => any::<String>(),
        1 => prop::sample::select(vec![
            "", " ", "\t", "yes", "no", "null", "~", "true", "0x1F", "1e400", "-0", ".inf", "NaN",
            "- item", "key: value", "# comment", "'", "\"", "\\", "{", "}", "[", "]", "&anchor",
            "*alias", "!tag", "|", ">", "%YAML 1.2", "---", "...", "\u{feff}", "\u{2028}", "é",
            "𝄞", "日本語", "\r\n", "\0",
        ])
        .prop_map(str::to_owned),
        1 => ("[a-zA-Zé ]{1,4}", 500usize..3000).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Any JSON value, a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        exact_float().prop_map(Value::from),
        awkward_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("\\PC{0,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A float whose JSON text reads back as the same float. serde_json (without its
/// `float_roundtrip` feature) may read a 17-digit float one unit in the last place off, so values
/// compared after a round trip keep to fewer digits.
pub fn exact_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        (any::<i32>(), 0i32..6).prop_map(|(m, e)| f64::from(m) / 10f64.powi(e)),
        Just(1e300),
    ]
}

/// `depth` nested arrays or objects around a scalar, as JSON text (past serde_json's recursion
/// limit when deep enough).
pub fn deep_json(depth: usize, objects: bool) -> String {
    let (open, close) = if objects {
        ("{\"a\":", "}")
    } else {
        ("[", "]")
    };
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

/// The JSON type a field expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A non-negative integer that fits the field (u8..u64).
    UInt,
    Float,
    Bool,
    StrList,
    Object,
}

/// A value of another JSON type than `kind` accepts (never `null`: optional fields accept it).
pub fn wrong_for(kind: Kind) -> BoxedStrategy<Value> {
    let string = awkward_text().prop_map(Value::String);
    let int = any::<i64>().prop_map(Value::from);
    let float = (-1e300f64..1e300).prop_map(Value::from);
    let boolean = any::<bool>().prop_map(Value::Bool);
    let list = prop::collection::vec(any::<i32>(), 0..4)
        .prop_map(|v| Value::Array(v.into_iter().map(Value::from).collect()));
    let object = Just(serde_json::json!({"nested": {"deeper": [1, "two"]}}));
    match kind {
        Kind::Str => prop_oneof![int, float, boolean, list, object].boxed(),
        Kind::UInt => prop_oneof![
            string,
            boolean,
            list,
            object,
            // Out of range: negative, fractional, or past u64.
            (i64::MIN..-1).prop_map(Value::from),
            Just(serde_json::json!(2.5)),
            Just(serde_json::json!(1e300)),
        ]
        .boxed(),
        Kind::Float => prop_oneof![string, boolean, list, object].boxed(),
        Kind::Bool => prop_oneof![string, int, list, object].boxed(),
        Kind::StrList => prop_oneof![
            string,
            int,
            object,
            prop::collection::vec(any::<i32>(), 1..4)
                .prop_map(|v| Value::Array(v.into_iter().map(Value::from).collect())),
        ]
        .boxed(),
        // Not a list either way: serde lets a list stand for a struct's fields in order.
        Kind::Object => prop_oneof![string, int, boolean].boxed(),
    }
}
