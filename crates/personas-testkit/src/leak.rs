//! Searching for secrets: the forms a value can take (raw, base64 in both alphabets, padded or
//! not, percent-encoded, JSON-escaped once and twice) and the places a test can read (files
//! under a directory, every text column of every table of a SQLite database, any text).
//!
//! Every search returns what it found, described (where and which form), so an assertion
//! `assert!(hits.is_empty(), "{hits:#?}")` says exactly what leaked.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::path::Path;

/// A secret and the forms of it to look for, each with a name.
#[derive(Debug, Clone)]
pub struct Needle {
    /// What the secret is (e.g. "vault credential"), for messages.
    pub what: String,
    pub forms: Vec<(String, Vec<u8>)>,
}

fn json_inner(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string encodes");
    quoted[1..quoted.len() - 1].to_string()
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Needle {
    /// `value` in every form a leak could take.
    pub fn new(what: &str, value: &str) -> Needle {
        let once = json_inner(value);
        let mut forms = vec![
            ("raw".to_string(), value.as_bytes().to_vec()),
            ("json".to_string(), once.clone().into_bytes()),
            ("json twice".to_string(), json_inner(&once).into_bytes()),
            ("percent-encoded".to_string(), percent(value).into_bytes()),
            (
                "percent-encoded (lower case)".to_string(),
                percent(value).to_lowercase().into_bytes(),
            ),
        ];
        for (name, enc) in [
            ("base64", STANDARD.encode(value)),
            ("base64 (no padding)", STANDARD_NO_PAD.encode(value)),
            ("base64url", URL_SAFE.encode(value)),
            ("base64url (no padding)", URL_SAFE_NO_PAD.encode(value)),
        ] {
            forms.push((name.to_string(), enc.into_bytes()));
        }
        // Distinct forms only (a plain alphanumeric value is its own JSON and percent form).
        let mut seen = std::collections::HashSet::new();
        forms.retain(|(_, f)| seen.insert(f.clone()));
        Needle {
            what: what.to_string(),
            forms,
        }
    }

    /// The forms of this needle found in `haystack`, described with `place`.
    pub fn find(&self, place: &str, haystack: &[u8]) -> Vec<String> {
        self.forms
            .iter()
            .filter(|(_, f)| contains(haystack, f))
            .map(|(form, _)| format!("{} ({form}) in {place}", self.what))
            .collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every needle in every form, found in `text`.
pub fn in_text(needles: &[Needle], place: &str, text: &[u8]) -> Vec<String> {
    needles.iter().flat_map(|n| n.find(place, text)).collect()
}

/// Every needle found in any file under `dir` (recursively): the database, its WAL and
/// shared-memory files, configs, run files, logs.
pub fn in_files(needles: &[Needle], dir: &Path) -> Vec<String> {
    crate::files::files_under(dir)
        .into_iter()
        .filter_map(|p| Some((std::fs::read(&p).ok()?, p)))
        .flat_map(|(bytes, p)| in_text(needles, &p.display().to_string(), &bytes))
        .collect()
}

/// Every needle found in any text or blob value of any column of any table of the SQLite
/// database at `db` (opened read-only). Also returns how many values were read, so a test can
/// show the search really looked at something.
pub fn in_database(needles: &[Needle], db: &Path) -> (Vec<String>, usize) {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("list tables");
    let mut hits = Vec::new();
    let mut values = 0;
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{}\"", t.replace('"', "\"\"")))
            .unwrap_or_else(|e| panic!("read {t}: {e}"));
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.query([]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            for (i, col) in names.iter().enumerate() {
                let bytes: Option<Vec<u8>> = match row.get_ref(i).expect("value") {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        Some(b.to_vec())
                    }
                    _ => None,
                };
                if let Some(b) = bytes {
                    values += 1;
                    hits.extend(in_text(needles, &format!("table {t}, column {col}"), &b));
                }
            }
        }
    }
    (hits, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_found_and_named() {
        let n = Needle::new("token", "a/b+c \"d\"");
        let b64 = STANDARD.encode("a/b+c \"d\"");
        assert_eq!(
            n.find("x", format!("..{b64}..").as_bytes()),
            ["token (base64) in x"]
        );
        assert_eq!(
            n.find("y", b"a%2Fb%2Bc%20%22d%22"),
            ["token (percent-encoded) in y"]
        );
        assert_eq!(n.find("z", br#"a/b+c \"d\""#), ["token (json) in z"]);
        assert!(n.find("w", b"nothing").is_empty());
    }

    #[test]
    fn the_database_search_reads_every_text_column() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch(
            "CREATE TABLE a (x TEXT, y BLOB, z INTEGER); \
             INSERT INTO a VALUES ('clean', X'00', 1), ('has s3cret-value inside', NULL, 2);",
        )
        .expect("seed");
        drop(conn);
        let (hits, values) = in_database(&[Needle::new("secret", "s3cret-value")], &db);
        assert_eq!(hits, ["secret (raw) in table a, column x"]);
        assert_eq!(values, 3);
    }
}
