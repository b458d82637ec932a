//! Property tests of request decoding ([`parse_request`]) for every operation in the table.
//!
//! The operations are not listed by hand: the table macro lists them, and each request type's
//! JSON schema (the one published in the OpenAPI document) says which properties it has, which
//! are required and what JSON types each takes. From that the properties generate, for every
//! operation: arbitrary JSON (never a panic, always an `invalid` error or a request), a value of
//! the wrong type in each property (the error names that property), a body missing its required
//! properties (the error names one of them), and a would-be secret placed anywhere (never echoed).

use super::{openapi, parse_request};
use crate::error::{ApiError, Code};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

type Decoder = fn(Value) -> Result<(), ApiError>;

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<(), ApiError> {
    parse_request::<T>(v).map(|_| ())
}

macro_rules! decoders {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        /// Every operation's name and request decoder, in table order.
        fn decoders() -> Vec<(&'static str, Decoder)> {
            vec![ $( (stringify!($name), decode::<$req> as Decoder) ),* ]
        }
    };
}
crate::for_each_operation!(decoders);

/// What the published schema says about one operation's request.
#[derive(Debug, Clone)]
struct RequestShape {
    /// Property name → the JSON types it takes (`None`: any, or not worked out).
    properties: Vec<(String, Option<BTreeSet<&'static str>>)>,
    required: BTreeSet<String>,
}

struct Operation {
    name: &'static str,
    decode: Decoder,
    shape: RequestShape,
}

fn resolve<'a>(schema: &'a Value, components: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            resolve(&components[name], components)
        }
        None => schema,
    }
}

fn type_name(t: &str) -> Option<&'static str> {
    [
        "string", "integer", "number", "boolean", "array", "object", "null",
    ]
    .into_iter()
    .find(|k| *k == t)
}

/// The JSON types a schema accepts, when it says.
fn json_types(schema: &Value, components: &Value) -> Option<BTreeSet<&'static str>> {
    let s = resolve(schema, components);
    let mut out = BTreeSet::new();
    if let Some(t) = s.get("type") {
        match t {
            Value::String(t) => out.insert(type_name(t)?),
            Value::Array(ts) => {
                for t in ts {
                    out.insert(type_name(t.as_str()?)?);
                }
                true
            }
            _ => return None,
        };
    } else if let Some(values) = s.get("enum").and_then(Value::as_array) {
        for v in values {
            out.insert(kind_of(v));
        }
    } else if let Some(v) = s.get("const") {
        out.insert(kind_of(v));
    } else {
        let subs = ["anyOf", "oneOf", "allOf"]
            .into_iter()
            .find_map(|k| s.get(k).and_then(Value::as_array))?;
        for sub in subs {
            out.extend(json_types(sub, components)?);
        }
    }
    if s.get("nullable") == Some(&Value::Bool(true)) {
        out.insert("null");
    }
    if out.contains("number") {
        out.insert("integer");
    }
    Some(out)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shape_of(schema: &Value, components: &Value) -> RequestShape {
    let s = resolve(schema, components);
    let mut properties = Vec::new();
    let mut required = BTreeSet::new();
    // A struct, or (for an enum of structs) every variant's properties.
    let parts: Vec<&Value> = match ["oneOf", "anyOf"]
        .into_iter()
        .find_map(|k| s.get(k).and_then(Value::as_array))
    {
        Some(variants) => variants.iter().map(|v| resolve(v, components)).collect(),
        None => vec![s],
    };
    for part in &parts {
        if let Some(props) = part.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                if !properties.iter().any(|(n, _)| n == name) {
                    properties.push((name.clone(), json_types(p, components)));
                }
            }
        }
    }
    if parts.len() == 1
        && let Some(req) = s.get("required").and_then(Value::as_array)
    {
        required.extend(req.iter().filter_map(Value::as_str).map(str::to_string));
    }
    RequestShape {
        properties,
        required,
    }
}

/// The operations, worked out once (building the OpenAPI document is not free).
fn operations() -> &'static [Operation] {
    static OPS: std::sync::OnceLock<Vec<Operation>> = std::sync::OnceLock::new();
    OPS.get_or_init(build_operations)
}

fn build_operations() -> Vec<Operation> {
    let doc = openapi();
    let components = &doc["components"]["schemas"];
    decoders()
        .into_iter()
        .map(|(name, decode)| {
            let schema = &doc["paths"][format!("/api/{name}")]["post"]["requestBody"]["content"]
                ["application/json"]["schema"];
            assert!(!schema.is_null(), "{name} has a request schema");
            Operation {
                name,
                decode,
                shape: shape_of(schema, components),
            }
        })
        .collect()
}

/// Values of every JSON type, awkward ones included.
fn samples() -> Vec<Value> {
    vec![
        json!("text"),
        json!(""),
        json!("日本語 é 𝄞"),
        json!(7),
        json!(-3),
        json!(u64::MAX),
        json!(2.5),
        json!(1e300),
        json!(true),
        json!([1, 2]),
        json!(["a"]),
        json!({"nested": {"deeper": [1, "two"]}}),
    ]
}

/// A sample whose JSON type `allowed` does not include.
fn mistyped(allowed: &BTreeSet<&'static str>) -> Vec<Value> {
    samples()
        .into_iter()
        .filter(|v| !allowed.contains(kind_of(v)))
        // serde reads a list as a struct's fields in order; that is not a type error.
        .filter(|v| !(v.is_array() && allowed.contains("object")))
        .collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn first_segment(field: &str) -> &str {
    field.split(['.', '[']).next().unwrap_or(field)
}

#[test]
fn every_operation_has_a_decoder_and_a_schema() {
    let ops = operations();
    assert_eq!(ops.len(), crate::OPERATIONS.len());
    // The schema walk found properties where requests have them (not vacuous).
    let with_props = ops
        .iter()
        .filter(|o| !o.shape.properties.is_empty())
        .count();
    assert!(with_props > ops.len() / 2, "{with_props} of {}", ops.len());
}

/// A request is an object of named fields; any other JSON is refused as a whole (serde alone
/// would read a list as a struct's fields in order).
#[test]
fn a_body_that_is_not_an_object_is_refused_in_every_operation() {
    for op in operations() {
        for body in [
            json!(["Reviewer"]),
            json!([]),
            json!("x"),
            json!(1),
            json!(true),
        ] {
            let e = (op.decode)(body.clone()).expect_err(op.name);
            assert_eq!(
                (e.code, e.field.as_deref()),
                (Code::Invalid, None),
                "{}: {body}",
                op.name
            );
            assert!(e.message.contains("JSON object"), "{}", e.message);
        }
    }
}

/// For every operation and every property whose types the schema states: each value of
/// another type is refused naming that property.
#[test]
fn a_mistyped_property_is_named_in_every_operation() {
    let mut checked = 0;
    for op in operations() {
        for (prop, types) in &op.shape.properties {
            let Some(types) = types else { continue };
            for wrong in mistyped(types) {
                let body = json!({ prop.as_str(): wrong });
                let e = (op.decode)(body.clone())
                    .expect_err(&format!("{}: {body} is refused", op.name));
                assert_eq!(e.code, Code::Invalid);
                let field = e.field.as_deref().unwrap_or_default();
                assert_eq!(
                    first_segment(field),
                    prop,
                    "{}: {body} -> field {:?}: {}",
                    op.name,
                    e.field,
                    e.message
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} cases");
}

/// A body without the required properties is refused naming one of them.
#[test]
fn a_missing_required_property_is_named_in_every_operation() {
    for op in operations() {
        if op.shape.required.is_empty() {
            continue;
        }
        for body in [json!({}), Value::Null] {
            let e = (op.decode)(body).expect_err(op.name);
            let field = e.field.clone().unwrap_or_default();
            assert!(
                op.shape.required.contains(&field),
                "{}: field {:?} not among {:?}: {}",
                op.name,
                e.field,
                op.shape.required,
                e.message
            );
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Any JSON, for any operation, decodes or is an `invalid` error whose field (when it names
    /// one) is a property of the request or a key the body holds.
    #[test]
    fn arbitrary_json_never_panics_and_names_a_real_field(
        op in 0..crate::OPERATIONS.len(), body in json_value(), extra in json_value(),
    ) {
        let op = &operations()[op];
        // The body as it came, and the body's keys over a property of the request.
        let mut inputs = vec![body.clone()];
        if let (Some((prop, _)), Value::Object(mut m)) = (op.shape.properties.first(), body) {
            m.insert(prop.clone(), extra);
            inputs.push(Value::Object(m));
        }
        for input in inputs {
            if let Err(e) = (op.decode)(input.clone()) {
                prop_assert_eq!(e.code, Code::Invalid);
                if let Some(field) = &e.field {
                    let seg = first_segment(field);
                    // A persona spec's fields are named without their `spec.` wrapper.
                    let in_spec = input.get("spec").is_some_and(|s| s.get(seg).is_some())
                        || op.shape.properties.iter().any(|(p, _)| p == "spec");
                    let known = op.shape.properties.iter().any(|(p, _)| p == seg)
                        || input.get(seg).is_some()
                        || in_spec;
                    prop_assert!(known, "{}: {} -> {:?}", op.name, input, e);
                }
            }
        }
    }

    /// A would-be secret in any property, of any operation, never comes back in the error.
    #[test]
    fn a_value_in_the_wrong_place_is_never_echoed(
        op in 0..crate::OPERATIONS.len(), prop_index in any::<prop::sample::Index>(),
        secret in "[A-Za-z0-9]{12,24}", wrap in 0..4u8,
    ) {
        let op = &operations()[op];
        prop_assume!(!op.shape.properties.is_empty());
        let (prop, _) = &op.shape.properties[prop_index.index(op.shape.properties.len())];
        let secret = format!("sk-{secret}\\\"q");
        let value = match wrap {
            0 => json!(secret),
            1 => json!([secret]),
            2 => json!({"token": secret}),
            _ => json!({"kind": secret}),
        };
        if let Err(e) = (op.decode)(json!({ prop.as_str(): value })) {
            prop_assert!(!e.message.contains("sk-"), "{}: {}", op.name, e.message);
        }
    }
}
