//! [`Secret`]: a credential value in memory.
//!
//! It cannot be printed by accident (`Debug` and `Display` show a marker), cannot be serialised
//! (its `Serialize` fails, so it never reaches JSON, the store or the wire by way of a derive),
//! and its bytes are overwritten when it is dropped. The only way to the value is
//! [`Secret::expose`], which is easy to find in review.

use serde::{Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// A secret string. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The plaintext. Call only where the value must leave as plaintext: into a child process
    /// environment, an outgoing authenticated request, or the cipher.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes (safe to show: it is how the fixtures redact API keys, too).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a Secret is never serialised; read it with Secret::expose where it must leave",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("ghp_supersecretvalue");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        let h = format!("{:?}", Holder { token: s.clone() });
        assert!(!h.contains("supersecret"), "{h}");
        assert_eq!(s.expose(), "ghp_supersecretvalue");
    }

    #[test]
    fn serialising_fails_even_inside_a_struct() {
        #[derive(Serialize)]
        struct Holder {
            name: &'static str,
            token: Secret,
        }
        let err = serde_json::to_string(&Holder {
            name: "github",
            token: Secret::new("ghp_x"),
        })
        .expect_err("a secret must not serialise");
        assert!(err.to_string().contains("never serialised"), "{err}");
    }
}
