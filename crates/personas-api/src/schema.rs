//! Generated artefacts of the operation table: the TypeScript the UI compiles against
//! (`apps/ui/src/generated/`, via ts-rs) and the OpenAPI 3 document (`/api/openapi.json`, via
//! schemars). Both come from the same Rust types, so they cannot disagree with the server.

use crate::error::{ApiError, Code};
use crate::event::{ApiEvent, StreamFrame};
use crate::system::CheckStatus;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ts_rs::TS;

/// Decodes a request, naming the field at fault (serde's path) when it does not fit.
pub fn parse_request<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, ApiError> {
    // `null` (an empty body) means "no fields": accept it for requests whose fields are all
    // optional.
    let input = match input {
        Value::Null => json!({}),
        Value::Object(_) => input,
        // serde would read a list as a struct's fields in order (`["Reviewer"]` as a persona
        // reference); a request is an object of named fields.
        other => {
            return Err(ApiError {
                code: Code::Invalid,
                message: format!(
                    "invalid request: the body must be a JSON object of named fields, not {}",
                    json_kind(&other)
                ),
                field: None,
            });
        }
    };
    // The field is the path of the value at fault (`trigger`, `fields.token`, `sections[1].title`),
    // also for a value of the wrong type, not only for a missing or unknown one.
    personas_core::decode::from_json_value(input).map_err(|e| {
        // The message must not echo a value: a request can carry a secret (a credential
        // field), and a secret in the wrong place would otherwise come back in the error.
        let text = without_values(&e.to_string());
        // A persona spec is the form the UI edits: its fields are named as validation names
        // them (`name`, `sections[0].title`), without the `spec.` wrapper.
        let field = e
            .field
            .map(|f| f.strip_prefix("spec.").map_or(f.clone(), str::to_string));
        ApiError {
            code: Code::Invalid,
            message: format!("invalid request: {text}"),
            field,
        }
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A serde message with the values it quotes left out: `invalid type: string "…"` becomes
/// `invalid type: a string`, and the quoted values of numbers, characters and unknown enum
/// variants are dropped. Field names (`missing field `x``) stay: they are the API's own.
pub fn without_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = [
            ("string \"", '"', "a string"),
            ("integer `", '`', "an integer"),
            ("floating point `", '`', "a number"),
            ("character `", '`', "a character"),
            ("variant `", '`', "variant"),
        ]
        .into_iter()
        .filter_map(|(p, end, say)| rest.find(p).map(|i| (i, p, end, say)))
        .min_by_key(|(i, ..)| *i);
        let Some((i, p, end, say)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i]);
        out.push_str(say);
        // Skip to the closing quote, honouring backslash escapes inside strings.
        let body = &rest[i + p.len()..];
        let mut escaped = false;
        let mut close = None;
        for (j, c) in body.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && end == '"' {
                escaped = true;
            } else if c == end {
                close = Some(j);
                break;
            }
        }
        match close {
            Some(j) => rest = &body[j + end.len_utf8()..],
            None => return out,
        }
    }
}

/// The settings of every JSON Schema generated here: the OpenAPI document's and the MCP tools'
/// input schemas come from these, so the two cannot describe a request differently.
fn settings() -> SchemaSettings {
    SchemaSettings::openapi3()
}

/// `T` as a self-contained JSON Schema object: the schema the OpenAPI document gives `T`, with
/// the types it refers to under `$defs` (its references point there instead of at
/// `#/components/schemas`). What an MCP tool declares as its `inputSchema`.
pub fn json_schema<T: JsonSchema>() -> Map<String, Value> {
    let generator = settings()
        .with(|s| {
            s.definitions_path = "/$defs".into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = match generator.into_root_schema_for::<T>().to_value() {
        Value::Object(m) => m,
        // `true`/`false` schemas: none of the wire types is one; keep the meaning regardless.
        Value::Bool(false) => Map::from_iter([("not".to_string(), json!({}))]),
        _ => Map::new(),
    };
    // A root schema is given its type's name as a title; the OpenAPI component has none.
    if schema.get("title").and_then(Value::as_str) == Some(T::schema_name().as_ref()) {
        schema.remove("title");
    }
    schema
}

/// The request schema of the operation `name` as a self-contained JSON Schema object (see
/// [`json_schema`]); `None` when no operation has that name.
pub fn request_schema(name: &str) -> Option<Map<String, Value>> {
    crate::request_schema_of(name)
}

struct Ts {
    cfg: ts_rs::Config,
    dir: PathBuf,
    map: Vec<(String, String, String, String)>,
    names: BTreeMap<String, ()>,
}

/// Walks the operation table (see `visit_operations`, generated in lib.rs).
pub(crate) struct Generator {
    ts: Option<Ts>,
    schemas: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Generator {
    fn new(ts_dir: Option<&Path>) -> Generator {
        Generator {
            ts: ts_dir.map(|dir| Ts {
                // JSON numbers: ids and counters never pass 2^53.
                cfg: ts_rs::Config::new()
                    .with_large_int("number")
                    .with_out_dir(dir),
                dir: dir.to_path_buf(),
                map: Vec::new(),
                names: BTreeMap::new(),
            }),
            schemas: settings().into_generator(),
            paths: Map::new(),
        }
    }

    fn export<T: TS + 'static>(&mut self) -> Result<String, String> {
        let Some(ts) = &mut self.ts else {
            return Ok(String::new());
        };
        T::export_all(&ts.cfg).map_err(|e| format!("exporting {}: {e}", T::ident(&ts.cfg)))?;
        let name = T::ident(&ts.cfg);
        ts.names.insert(name.clone(), ());
        Ok(name)
    }

    pub(crate) fn operation<Req, Resp>(&mut self, name: &str, doc: &str) -> Result<(), String>
    where
        Req: TS + JsonSchema + 'static,
        Resp: TS + JsonSchema + 'static,
    {
        let req_name = self.export::<Req>()?;
        let resp_name = self.export::<Resp>()?;
        if let Some(ts) = &mut self.ts {
            ts.map
                .push((name.into(), req_name, resp_name, doc.trim().to_string()));
        }
        let req = self.schemas.subschema_for::<Req>();
        let resp = self.schemas.subschema_for::<Resp>();
        let error = self.schemas.subschema_for::<ApiError>();
        let err_response = |what: &str| json!({"description": what, "content": {"application/json": {"schema": error}}});
        self.paths.insert(
            format!("/api/{name}"),
            json!({"post": {
                "operationId": name,
                "summary": doc.trim(),
                "requestBody": {"required": false, "content": {"application/json": {"schema": req}}},
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": resp}}},
                    "400": err_response("invalid: the request names a bad value (see `field`)"),
                    "401": err_response("unauthorized: missing or wrong API token"),
                    "403": err_response("forbidden_host / forbidden_origin"),
                    "404": err_response("not_found"),
                    "409": err_response("conflict"),
                    "413": err_response("too_large"),
                    "500": err_response("internal"),
                },
                "security": [{"token": []}],
            }}),
        );
        Ok(())
    }
}

/// The OpenAPI 3 document of every operation.
pub fn openapi() -> Value {
    let mut g = Generator::new(None);
    if let Err(e) = g.visit_operations() {
        // Cannot happen without a TypeScript export; keep the document usable regardless.
        tracing::warn!(error = %e, "building the OpenAPI document");
    }
    // Referenced from nowhere else: the stream frame joins the components by being visited.
    let _ = g.schemas.subschema_for::<StreamFrame>();
    let components = g.schemas.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Personas local API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every operation is POST /api/<name> with a JSON body. Errors are {code, message, field}. \
                The event stream is a WebSocket at /api/events: JSON arrays of StreamFrame; resume with ?after=<seq>&epoch=<epoch>.",
        },
        "servers": [{"url": "/"}],
        "paths": g.paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// Every generated TypeScript file (name → content) for `apps/ui/src/generated/`.
pub fn typescript() -> Result<BTreeMap<String, String>, String> {
    let dir = std::env::temp_dir().join(format!(
        "personas-ts-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = typescript_into(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn typescript_into(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut g = Generator::new(Some(dir));
    g.visit_operations()?;
    g.export::<ApiEvent>()?;
    g.export::<StreamFrame>()?;
    g.export::<ApiError>()?;
    g.export::<Code>()?;
    g.export::<CheckStatus>()?;
    let ts = g.ts.take().ok_or("no TypeScript state")?;

    let mut files = BTreeMap::new();
    read_ts_files(&ts.dir, "", &mut files)?;

    // The typed operation map the UI's Backend is written against.
    let mut ops = String::from(
        "// Generated from the operation table in crates/personas-api. Do not edit.\n",
    );
    let mut imported: Vec<&String> = ts
        .map
        .iter()
        .flat_map(|(_, req, resp, _)| [req, resp])
        .collect();
    imported.sort();
    imported.dedup();
    for t in &imported {
        ops.push_str(&format!("import type {{ {t} }} from \"./{t}\";\n"));
    }
    ops.push_str("\n/** Every operation: its request and response types. */\nexport interface Operations {\n");
    for (name, req, resp, doc) in &ts.map {
        ops.push_str(&format!(
            "  /** {doc} */\n  {name}: {{ request: {req}; response: {resp} }};\n"
        ));
    }
    ops.push_str("}\n\nexport type OperationName = keyof Operations;\n\n/** Operation names in table order. */\nexport const OPERATION_NAMES: OperationName[] = [\n");
    for (name, ..) in &ts.map {
        ops.push_str(&format!("  \"{name}\",\n"));
    }
    ops.push_str("];\n");
    files.insert("operations.ts".into(), ops);

    let mut index = String::from(
        "// Generated from crates/personas-api. Do not edit.\nexport * from \"./operations\";\n",
    );
    for name in files.keys() {
        if let Some(stem) = name.strip_suffix(".ts")
            && stem != "operations"
            && stem != "index"
        {
            index.push_str(&format!("export type * from \"./{stem}\";\n"));
        }
    }
    files.insert("index.ts".into(), index);
    Ok(files)
}

/// Reads every `.ts` file under `dir` into `out`, keyed by its `/`-separated relative path.
pub fn read_ts_files(
    dir: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            read_ts_files(&path, &format!("{prefix}{name}/"), out)?;
        } else if name.ends_with(".ts") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            out.insert(format!("{prefix}{name}"), text);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "request_properties.rs"]
mod request_properties;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::CreateCredential;

    /// `schema` with every `$ref` replaced by its target in `root`, so documents that keep their
    /// definitions in different places compare by meaning.
    fn inlined(schema: &Value, root: &Value) -> Value {
        match schema {
            Value::Object(m) => match m.get("$ref").and_then(Value::as_str) {
                Some(r) => inlined(root.pointer(&r[1..]).expect("ref target"), root),
                None => Value::Object(
                    m.iter()
                        .filter(|(k, _)| *k != "$defs")
                        .map(|(k, v)| (k.clone(), inlined(v, root)))
                        .collect(),
                ),
            },
            Value::Array(a) => Value::Array(a.iter().map(|v| inlined(v, root)).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn every_request_schema_is_the_one_in_the_openapi_document() {
        let doc = openapi();
        for op in crate::OPERATIONS {
            let own = Value::Object(request_schema(op.name).expect("an operation's schema"));
            let body = &doc["paths"][format!("/api/{}", op.name)]["post"]["requestBody"]["content"]
                ["application/json"]["schema"];
            assert_eq!(inlined(&own, &own), inlined(body, &doc), "{}", op.name);
            // MCP tools need an object schema at the root.
            assert_eq!(own["type"], "object", "{}: {own}", op.name);
        }
        assert!(request_schema("no_such_operation").is_none());
    }

    #[test]
    fn a_value_in_the_wrong_place_is_not_echoed_in_the_error() {
        let secret = "ghp_ThisMustNeverComeBack\\\"quoted";
        for body in [
            json!({"name": "gh", "kind": "github", "fields": secret}),
            json!({"name": "gh", "kind": "github", "fields": {"token": 12345678901_i64}}),
            json!({"name": secret, "kind": ["github"], "fields": {}}),
            json!({"name": "gh", "kind": "github", "fields": {"token": [secret]}}),
        ] {
            let e = parse_request::<CreateCredential>(body).expect_err("refused");
            assert!(!e.message.contains("ghp_"), "{}", e.message);
            assert!(!e.message.contains("12345678901"), "{}", e.message);
            assert_eq!(e.code, Code::Invalid);
        }
        let e = parse_request::<CreateCredential>(json!({"kind": "github"})).expect_err("x");
        assert_eq!(e.field.as_deref(), Some("name"), "{}", e.message);
        assert_eq!(
            without_values(r#"invalid type: string "a\"b", expected a map"#),
            "invalid type: a string, expected a map"
        );
        assert_eq!(
            without_values("unknown variant `sk-123`, expected one of `a`, `b`"),
            "unknown variant, expected one of `a`, `b`"
        );
    }
}
