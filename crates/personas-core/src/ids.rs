//! Typed identifiers. Each is a UUIDv7 in its canonical text form, so ids sort by creation time
//! and read the same in SQLite, JSON, logs and URLs.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Wraps an id read from storage or from a user. Validity is checked by the lookup
            /// that uses it: an unknown id is simply "not found".
            pub fn from_string(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// True when `s` has the shape of an id (a UUID), as opposed to a name.
            pub fn looks_like_id(s: &str) -> bool {
                uuid::Uuid::parse_str(s).is_ok()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// Identifies a persona.
    PersonaId
);
id_type!(
    /// Identifies one execution (one run of a persona).
    ExecutionId
);
id_type!(
    /// Identifies a trigger (cron, webhook, event subscription, chain, file watcher).
    TriggerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_recognisable() {
        let a = PersonaId::new();
        let b = PersonaId::new();
        assert!(a < b, "UUIDv7 ids sort by creation");
        assert!(PersonaId::looks_like_id(a.as_str()));
        assert!(!PersonaId::looks_like_id("Release notes writer"));
    }
}
