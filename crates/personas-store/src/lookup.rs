//! Finding one row by its id or a unique prefix of it: the one rule every "show / cancel /
//! retry / approve <id>" in every front-end follows, so a user can type the first few
//! characters of an id they saw in a listing.
//!
//! The rule: an exact id wins; otherwise a prefix of at least [`MIN_PREFIX`] characters that
//! matches exactly one row names it; a prefix matching several is a conflict naming how many;
//! anything else is not found. Ids are the store's lowercase UUIDs, so the prefix is compared
//! lowercased.
//!
//! The prefix is matched as a range over the id column (`id >= prefix AND id < successor`), not
//! with `LIKE`: the range walks the primary-key index instead of scanning the table, and the
//! user's text is compared byte for byte, so `%` and `_` are ordinary characters that match
//! nothing rather than wildcards that match everything.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// The shortest prefix accepted: shorter ones match too much to be meant.
pub const MIN_PREFIX: usize = 4;

/// Where to look: the query that selects the row's columns (joins allowed) and the id column
/// to match, as written in that query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lookup<'q> {
    /// The noun in errors: "execution", "event", "review", …
    pub what: &'static str,
    /// `SELECT <columns> FROM <table> [joins]`, without `WHERE`.
    pub select: &'q str,
    /// The id column, qualified if the query joins (`t.id`).
    pub id_column: &'q str,
}

impl Lookup<'_> {
    /// The row whose id is `key`, or the only row whose id starts with `key`.
    pub(crate) fn find<T>(
        &self,
        conn: &Connection,
        key: &str,
        map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let Lookup {
            what,
            select,
            id_column,
        } = *self;
        let exact = conn
            .query_row(&format!("{select} WHERE {id_column} = ?1"), [key], &map)
            .optional()?;
        if let Some(row) = exact {
            return Ok(row);
        }
        if key.chars().count() < MIN_PREFIX {
            return Err(StoreError::not_found(what, key));
        }
        let prefix = key.to_ascii_lowercase();
        // Without a successor (never for a real id) the range is open above and `?2` is
        // bound but unused, so both forms take the same parameters.
        let upper = successor(&prefix);
        let range = match upper {
            Some(_) => format!("{id_column} >= ?1 AND {id_column} < ?2"),
            None => format!("{id_column} >= ?1 AND ?2 IS NULL"),
        };
        let mut stmt = conn.prepare(&format!(
            "{select} WHERE {range} ORDER BY {id_column} LIMIT 2"
        ))?;
        let mut found: Vec<T> = stmt
            .query_map(params![prefix, upper], &map)?
            .collect::<Result<_, _>>()?;
        match found.len() {
            0 => Err(StoreError::not_found(what, key)),
            1 => Ok(found.remove(0)),
            _ => {
                let count: u64 = conn.query_row(
                    &format!("SELECT COUNT(*) FROM ({select} WHERE {range})"),
                    params![prefix, upper],
                    |r| r.get(0),
                )?;
                Err(StoreError::conflict(
                    what,
                    format!(
                        "{key:?} matches more than one {what} ({count} ids start with it); \
                         give more of the id"
                    ),
                ))
            }
        }
    }
}

/// The smallest string greater than every string starting with `prefix`: the prefix with its
/// last character stepped up by one (UTF-8 orders bytes as code points, which is SQLite's
/// binary order). `None` when no such string exists (a prefix of only `char::MAX`).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 4] = [
        "0190aaaa-0000-7000-8000-000000000001",
        "0190aaab-0000-7000-8000-000000000002",
        "0190aaab-1111-7000-8000-000000000003",
        "0190%_zz-0000-7000-8000-000000000004",
    ];

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory db");
        conn.execute_batch("CREATE TABLE things (id TEXT PRIMARY KEY, label TEXT NOT NULL)")
            .expect("test step");
        for (i, id) in IDS.iter().enumerate() {
            conn.execute(
                "INSERT INTO things (id, label) VALUES (?1, ?2)",
                params![id, format!("thing {i}")],
            )
            .expect("test step");
        }
        conn
    }

    const THINGS: Lookup<'static> = Lookup {
        what: "thing",
        select: "SELECT id, label FROM things",
        id_column: "id",
    };

    fn find(key: &str) -> Result<String, StoreError> {
        THINGS.find(&conn(), key, |r| r.get::<_, String>(1))
    }

    #[test]
    fn an_exact_id_wins() {
        assert_eq!(find(IDS[1]).expect("found"), "thing 1");
    }

    #[test]
    fn a_unique_prefix_names_its_row_in_any_case() {
        assert_eq!(find("0190aaaa").expect("found"), "thing 0");
        assert_eq!(find("0190AAAA-0").expect("found"), "thing 0");
        assert_eq!(find("0190aaab-1").expect("found"), "thing 2");
    }

    #[test]
    fn an_ambiguous_prefix_is_a_conflict_naming_the_candidates() {
        let err = find("0190aaab").expect_err("ambiguous");
        match &err {
            StoreError::Conflict { field, message } => {
                assert_eq!(field, "thing");
                assert!(message.contains("\"0190aaab\""), "{message}");
                assert!(message.contains("more than one thing (2 ids"), "{message}");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(err.is_user_error());
        let err = find("0190").expect_err("ambiguous");
        assert!(err.to_string().contains("(4 ids start with it)"), "{err}");
    }

    #[test]
    fn short_empty_and_unknown_keys_are_not_found() {
        for key in ["", "0", "019", "ffff", "0190aaac", &format!("{}0", IDS[0])] {
            match find(key) {
                Err(StoreError::NotFound { what, key: k }) => {
                    assert_eq!(what, "thing");
                    assert_eq!(k, key);
                }
                other => panic!("{key:?}: expected not found, got {other:?}"),
            }
        }
    }

    #[test]
    fn like_wildcards_in_the_key_are_plain_characters() {
        // As LIKE patterns these would match every id; as prefixes they match none...
        for key in ["%%%%", "____", "0190%%%%", "0190____", "0190aaa_"] {
            assert!(
                matches!(find(key), Err(StoreError::NotFound { .. })),
                "{key:?} matched"
            );
        }
        // ...except an id that really starts with them.
        assert_eq!(find("0190%_").expect("found"), "thing 3");
    }

    #[test]
    fn a_joined_query_matches_on_its_qualified_id_column() {
        let conn = conn();
        let joined = Lookup {
            what: "thing",
            select: "SELECT t.id, t.label, o.label FROM things t LEFT JOIN things o ON o.id = t.id",
            id_column: "t.id",
        };
        let label = joined.find(&conn, "0190aaab-1", |r| r.get::<_, String>(2));
        assert_eq!(label.expect("test step"), "thing 2");
    }

    #[test]
    fn the_successor_bounds_exactly_the_strings_with_the_prefix() {
        assert_eq!(successor("abc").as_deref(), Some("abd"));
        assert_eq!(successor("ab-").as_deref(), Some("ab."));
        assert_eq!(successor("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(successor("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10ffff}"), None);
        assert_eq!(successor(""), None);
    }
}
