//! Redaction of known secret values from text.
//!
//! A [`Redactor`] is built per run from the secret values that run was given. It replaces every
//! occurrence of each value — and of its common encodings — with `[redacted:<label>]` (the label
//! is `<credential>.<field>`, never the value). Encodings covered, because a tool or an agent can
//! print a value through any of them:
//!
//! - the value itself, and each line of a multi-line value (PEM keys);
//! - JSON-escaped, once and twice (a value inside a JSON string inside a JSON string, as in a
//!   `stream-json` tool result that echoes JSON);
//! - percent-encoded (upper- and lower-case hex, `%20` and `+` for spaces);
//! - base64, standard and URL-safe alphabets, padded or not — including the value appearing at
//!   any offset inside a longer base64 text (e.g. `Authorization: Basic base64(user:token)`), by
//!   matching the part of the encoding that depends only on the value's bytes at each of the
//!   three possible alignments.
//!
//! Matching is one Aho-Corasick pass, leftmost-longest, so overlapping values redact to the
//! longest one and the cost per line does not grow with the number of secrets. A Bloom filter
//! over each pattern's first bytes ([`window`]) first rejects the text that cannot hold any
//! pattern — nearly every line — several times faster than the automaton would.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::borrow::Cow;
use std::collections::HashMap;

use crate::secret::Secret;

mod window;
use window::WindowFilter;

/// Values shorter than this are not redacted in encoded forms (too likely to match by chance).
const MIN_ENCODED_LEN: usize = 6;
/// Shortest base64 fragment matched inside a longer base64 text.
const MIN_B64_FRAGMENT: usize = 8;
/// Shortest line of a multi-line value redacted on its own.
const MIN_LINE_LEN: usize = 8;
/// Shortest secret value accepted at all (see `validate::secret_value`).
pub const MIN_SECRET_LEN: usize = 3;

/// Replaces known secret values in text. Cheap to share (`Arc`) across a run's tasks.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
    /// Rejects most text that cannot contain a pattern before the automaton runs
    /// ([`window`]); `None` when some pattern is too short to filter on.
    filter: Option<WindowFilter>,
    /// Replacement text per pattern index.
    markers: Vec<String>,
    /// Every (pattern, label), kept so a redactor can be extended with one more value.
    patterns: Vec<(String, String)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.markers.len())
            .finish()
    }
}

/// The marker that replaces a value.
pub fn marker(label: &str) -> String {
    format!("[redacted:{label}]")
}

impl Redactor {
    /// A redactor that changes nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// A redactor for `(label, value)` pairs.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>) -> Self {
        Self::build(HashMap::new(), secrets)
    }

    /// This redactor plus one more value.
    pub fn with_secret(&self, label: &str, secret: &Secret) -> Self {
        self.with_secrets([(label, secret)])
    }

    /// This redactor plus more values; a value it already knows keeps its first label.
    pub fn with_secrets<'a>(
        &self,
        secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
    ) -> Self {
        let known: HashMap<String, String> = self.patterns.iter().cloned().collect();
        Self::build(known, secrets)
    }

    fn build<'a>(
        // pattern -> label; the first label seen for a pattern wins.
        mut patterns: HashMap<String, String>,
        secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
    ) -> Self {
        for (label, secret) in secrets {
            for p in variants(secret.expose()) {
                patterns.entry(p).or_insert_with(|| label.to_string());
            }
        }
        if patterns.is_empty() {
            return Self::none();
        }
        let mut list: Vec<(String, String)> = patterns.into_iter().collect();
        list.sort(); // deterministic build
        let pats: Vec<&str> = list.iter().map(|(p, _)| p.as_str()).collect();
        match AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)
        {
            Ok(ac) => Redactor {
                matcher: Some(ac),
                filter: WindowFilter::new(pats.iter().copied()),
                markers: list.iter().map(|(_, l)| marker(l)).collect(),
                patterns: list,
            },
            // Building only fails past internal size limits (gigabytes of patterns). Fail closed:
            // a redactor that cannot match must not let text through unredacted.
            Err(_) => Redactor {
                matcher: None,
                filter: None,
                markers: vec![marker("all")],
                patterns: list,
            },
        }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// `text` with every known value replaced by its marker.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.matcher {
            None if self.markers.is_empty() => Cow::Borrowed(text),
            // Fail closed (see `new`).
            None => Cow::Owned(self.markers[0].clone()),
            Some(ac) => {
                if let Some(f) = &self.filter
                    && !f.may_match(text.as_bytes())
                {
                    return Cow::Borrowed(text);
                }
                if !ac.is_match(text) {
                    return Cow::Borrowed(text);
                }
                let mut out = String::with_capacity(text.len());
                let mut last = 0;
                for m in ac.find_iter(text) {
                    out.push_str(&text[last..m.start()]);
                    out.push_str(&self.markers[m.pattern().as_usize()]);
                    last = m.end();
                }
                out.push_str(&text[last..]);
                Cow::Owned(out)
            }
        }
    }

    /// Redacts in place; returns true when something was replaced.
    pub fn redact_string(&self, text: &mut String) -> bool {
        match self.redact(text) {
            Cow::Borrowed(_) => false,
            Cow::Owned(s) => {
                *text = s;
                true
            }
        }
    }
}

/// Redacts every string (object keys included) inside a JSON value, in place; returns true
/// when something was replaced. Text that arrives as JSON (a tool call's arguments, an event
/// payload) is redacted after decoding, so escapes cannot hide a value.
pub fn redact_json(redactor: &Redactor, value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    if redactor.is_empty() {
        return false;
    }
    match value {
        Value::String(s) => redactor.redact_string(s),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| redact_json(redactor, v) | changed),
        Value::Object(map) => {
            let mut changed = false;
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let new_key = redactor.redact(&k).into_owned();
                if let Some(mut v) = map.remove(&k) {
                    changed |= redact_json(redactor, &mut v);
                    changed |= new_key != k;
                    map.insert(new_key, v);
                }
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Every form of `value` to look for.
fn variants(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if value.len() < MIN_SECRET_LEN {
        // Refused at input; a stored short value is still redacted in its plain form.
        if !value.is_empty() {
            out.push(value.to_string());
        }
        return out;
    }
    out.push(value.to_string());
    if value.contains('\n') {
        for line in value.lines().map(str::trim) {
            if line.len() >= MIN_LINE_LEN {
                out.push(line.to_string());
            }
        }
    }
    let once = json_escape(value);
    let twice = json_escape(&once);
    out.push(once);
    out.push(twice);
    if value.len() >= MIN_ENCODED_LEN {
        out.push(percent_encode(value, false, true));
        out.push(percent_encode(value, false, false));
        out.push(percent_encode(value, true, true));
        for engine in [&STANDARD, &URL_SAFE] {
            out.push(engine.encode(value));
        }
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            out.push(engine.encode(value));
            for shift in 0..3 {
                if let Some(f) = b64_fragment(engine, value.as_bytes(), shift) {
                    out.push(f);
                }
            }
        }
    }
    out.retain(|p| !p.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The inside of a JSON string literal holding `s`.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_string()
}

/// Percent-encoding of everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str, plus_for_space: bool, upper: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if plus_for_space => out.push('+'),
            _ if upper => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// The characters of base64(prefix ‖ value) that depend on `value`'s bytes alone, where the
/// prefix is `shift` bytes long (its content does not matter). Those characters appear in the
/// encoding of any text that holds `value` at an offset ≡ `shift` (mod 3).
fn b64_fragment<E: base64::Engine>(engine: &E, value: &[u8], shift: usize) -> Option<String> {
    let mut buf = vec![0u8; shift];
    buf.extend_from_slice(value);
    let enc = engine.encode(&buf);
    // Whole 3-byte groups made only of value bytes.
    let first_group = shift.div_ceil(3);
    let last_group = buf.len() / 3; // exclusive
    if last_group <= first_group {
        return None;
    }
    let (start, end) = (first_group * 4, last_group * 4);
    let frag = enc.get(start..end)?;
    (frag.len() >= MIN_B64_FRAGMENT).then(|| frag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn red(pairs: &[(&str, &str)]) -> Redactor {
        let secrets: Vec<(String, Secret)> = pairs
            .iter()
            .map(|(l, v)| (l.to_string(), Secret::new(*v)))
            .collect();
        Redactor::new(secrets.iter().map(|(l, s)| (l.as_str(), s)))
    }

    const TOKEN: &str = "ghp_R3alT0ken/with+odd chars&\"quotes\"";

    #[test]
    fn plain_and_every_encoding_become_the_marker() {
        let r = red(&[("github.token", TOKEN)]);
        let m = "[redacted:github.token]";
        let json_once = serde_json::to_string(TOKEN).expect("json");
        let json_twice = serde_json::to_string(&json_once).expect("json");
        let cases = [
            format!("token={TOKEN}!"),
            format!("{{\"text\":{json_once}}}"),
            format!("{{\"content\":{json_twice}}}"),
            format!("url?t={}", percent_encode(TOKEN, false, true)),
            format!("url?t={}", percent_encode(TOKEN, true, true)),
            format!("b64 {}", STANDARD.encode(TOKEN)),
            format!("b64url {}", URL_SAFE_NO_PAD.encode(TOKEN)),
        ];
        for c in &cases {
            let out = r.redact(c);
            assert!(out.contains(m), "{c} -> {out}");
            assert!(!out.contains("R3alT0ken"), "{c} -> {out}");
        }
    }

    #[test]
    fn a_value_inside_longer_base64_is_found_at_every_offset() {
        let r = red(&[("jira.api_token", "ATATT3xFfGF0t0k3nV4lue")]);
        for prefix in ["a:", "ab:", "abc:", "me@example.com:"] {
            let basic = STANDARD.encode(format!("{prefix}ATATT3xFfGF0t0k3nV4lue"));
            let header = format!("Authorization: Basic {basic}");
            let out = r.redact(&header);
            assert!(out.contains("[redacted:jira.api_token]"), "{prefix}: {out}");
        }
    }

    #[test]
    fn a_redactor_can_learn_one_more_value() {
        let r = red(&[("a.b", "first-secret")]).with_secret("c.d", &Secret::new("second-secret"));
        assert_eq!(
            r.redact("first-secret second-secret"),
            "[redacted:a.b] [redacted:c.d]"
        );
        let only = Redactor::none().with_secret("x.y", &Secret::new("lonely-value"));
        assert_eq!(only.redact("lonely-value"), "[redacted:x.y]");
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let r = red(&[("x.y", "sekret-value")]);
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert!(Redactor::none().is_empty());
        assert_eq!(Redactor::none().redact("sekret-value"), "sekret-value");
    }

    #[test]
    fn the_longest_overlapping_value_wins_and_lines_of_pem_keys_match() {
        let r = red(&[("a.short", "abcdef12"), ("b.long", "abcdef1234567890")]);
        assert_eq!(r.redact("x abcdef1234567890 y"), "x [redacted:b.long] y");
        let pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----";
        let r = red(&[("k.pem", pem)]);
        let out = r.redact("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
        assert_eq!(out, "line: [redacted:k.pem]");
    }

    #[test]
    fn json_strings_and_keys_are_redacted_after_decoding() {
        let r = red(&[("slack.url", "https://hooks.example/T0/B0/secret")]);
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"u": "https:\/\/hooks.example\/T0\/B0\/secret", "list": [1, "x https://hooks.example/T0/B0/secret"],
                "https://hooks.example/T0/B0/secret": true}"#,
        )
        .expect("json");
        assert!(redact_json(&r, &mut v));
        let text = v.to_string();
        assert!(
            !text.contains("B0/secret") && !text.contains("B0\\/secret"),
            "{text}"
        );
        assert_eq!(v["u"], "[redacted:slack.url]");
        assert_eq!(v["list"][0], 1);
        assert_eq!(v["[redacted:slack.url]"], true);
    }

    proptest! {
        #[test]
        fn no_value_survives_in_any_surrounding_text(
            value in "[ -~]{8,40}",
            before in "[ -~]{0,20}",
            after in "[ -~]{0,20}",
        ) {
            let r = red(&[("c.f", &value)]);
            let text = format!("{before}{value}{after}");
            let out = r.redact(&text);
            prop_assert!(!out.contains(value.as_str()), "{} -> {}", text, out);
            let b64 = STANDARD.encode(text.as_bytes());
            let out = r.redact(&b64);
            prop_assert!(out.contains("[redacted:c.f]"), "{} -> {}", b64, out);
        }
    }
}
