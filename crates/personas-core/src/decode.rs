//! Decoding JSON and YAML into typed values so that a rejection names the field at fault.
//!
//! serde's own errors say *what* is wrong ("invalid type: string, expected u32") but, for JSON,
//! not *where*: a persona file or an API request with one wrongly typed value nested somewhere
//! gets an error its author cannot act on. These helpers track the path of the value being
//! decoded (`limits.max_concurrent`, `fields.token`, `sections[2].title`) and report it as the
//! error's field. A missing field is named by its own path (`sections[0].body`), not its parent's.
//!
//! Tracking costs a little on every value, so parsers on a hot path (the Claude stream-json
//! reader) decode without it and call these only to explain a line that failed.

use serde::de::{Deserialize, DeserializeOwned};
use std::fmt;

/// A rejected document: the path of the field at fault (when the error is inside one) and
/// serde's description of what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// `a.b[0].c`; `None` when the document as a whole is at fault (not JSON, not an object).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Decodes JSON text.
pub fn from_json_slice<'de, T: Deserialize<'de>>(text: &'de [u8]) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(located)?;
    // Trailing characters after the value are an error too, as `serde_json::from_slice` says.
    de.end().map_err(|e| DecodeError {
        field: None,
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Decodes an already parsed JSON value.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(located)
}

/// Decodes YAML text (one document).
pub fn from_yaml_str<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(located)
}

fn located<E: fmt::Display>(e: serde_path_to_error::Error<E>) -> DecodeError {
    let path = e.path().to_string();
    let mut message = e.inner().to_string();
    // serde_yaml_ng puts its own copy of the path in front; it is reported once, as the field.
    if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
        message = rest.to_string();
    }
    // "." is the document itself; "" is a key that is empty or not text (YAML's `? ` with no
    // key): neither names a field.
    let parent = (path != "." && !path.is_empty()).then_some(path);
    // serde reports a missing field at its parent; the field itself is what a person fixes.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (parent, missing) {
        (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
        (None, Some(name)) => Some(name.to_string()),
        (parent, None) => parent,
    };
    DecodeError { field, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn field_of(r: Result<Outer, DecodeError>) -> Option<String> {
        r.expect_err("refused").field
    }

    #[test]
    fn errors_name_the_nested_field_in_json_yaml_and_values() {
        let bad = json!({"name": "a", "items": [{"count": 1}, {"count": "2"}]});
        assert_eq!(
            field_of(from_json_value(bad.clone())).as_deref(),
            Some("items[1].count")
        );
        assert_eq!(
            field_of(from_json_slice(bad.to_string().as_bytes())).as_deref(),
            Some("items[1].count")
        );
        let yaml = "name: a\nitems:\n  - count: 1\n  - count: [2]\n";
        assert_eq!(
            field_of(from_yaml_str(yaml)).as_deref(),
            Some("items[1].count")
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_named_themselves() {
        let e = from_json_value::<Outer>(json!({"items": []})).expect_err("missing");
        assert_eq!(e.field.as_deref(), Some("name"), "{e}");
        let e = from_json_value::<Outer>(json!({"name": "a", "items": [{}]})).expect_err("x");
        assert_eq!(e.field.as_deref(), Some("items[0].count"), "{e}");
        let e = from_json_value::<Outer>(json!({"name": "a", "itemz": []})).expect_err("x");
        assert_eq!(e.field.as_deref(), Some("itemz"), "{e}");
    }

    #[test]
    fn an_empty_yaml_key_names_no_field() {
        let e = from_yaml_str::<Outer>("?\nname: a\n").expect_err("empty key");
        assert_eq!(e.field, None, "{e}");
    }

    #[test]
    fn a_document_that_is_not_an_object_names_no_field() {
        let e = from_json_slice::<Outer>(b"\"just text\"").expect_err("string");
        assert_eq!(e.field, None, "{e}");
        let e = from_json_slice::<Outer>(b"{\"name\": \"a\"} x").expect_err("trailing");
        assert_eq!(e.field, None, "{e}");
    }
}
