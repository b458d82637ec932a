//! The TypeScript in apps/ui/src/generated must be exactly what the Rust declarations produce.
//! After changing an API type or the operation table, regenerate with
//! `PERSONAS_UPDATE_GENERATED=1 cargo test -p personas-api --test generated`.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn generated_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../apps/ui/src/generated")
}

fn committed() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    personas_api::schema::read_ts_files(&generated_dir(), "", &mut out)
        .expect("read generated files");
    out
}

#[test]
fn typescript_types_match_the_rust_declarations() {
    let fresh = personas_api::schema::typescript().expect("generate TypeScript");
    assert!(fresh.contains_key("operations.ts") && fresh.contains_key("ApiEvent.ts"));
    if std::env::var_os("PERSONAS_UPDATE_GENERATED").is_some() {
        let dir = generated_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create generated dir");
        for (name, text) in &fresh {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create generated subdir");
            }
            std::fs::write(path, text).expect("write generated file");
        }
        return;
    }
    let old = committed();
    let missing: Vec<_> = fresh.keys().filter(|k| !old.contains_key(*k)).collect();
    let extra: Vec<_> = old.keys().filter(|k| !fresh.contains_key(*k)).collect();
    let changed: Vec<_> = fresh
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "apps/ui/src/generated is out of date (missing {missing:?}, stale {extra:?}, changed {changed:?}); \
         run PERSONAS_UPDATE_GENERATED=1 cargo test -p personas-api --test generated"
    );
}

#[test]
fn every_operation_is_in_the_typescript_map_and_the_openapi_document() {
    let ts = personas_api::schema::typescript().expect("generate TypeScript");
    let map = &ts["operations.ts"];
    let doc = personas_api::schema::openapi();
    for op in personas_api::OPERATIONS {
        assert!(
            map.contains(&format!("  {}: {{ request:", op.name)),
            "{} not in operations.ts",
            op.name
        );
        let path = format!("/api/{}", op.name);
        assert_eq!(
            doc["paths"][&path]["post"]["operationId"], op.name,
            "{path}"
        );
        let resp = &doc["paths"][&path]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert!(resp.is_object(), "{path} has no response schema");
    }
    assert!(doc["components"]["schemas"]["ApiError"].is_object());
    assert!(doc["components"]["schemas"]["StreamFrame"].is_object());
    assert!(doc["components"]["schemas"]["Persona"].is_object());
}
